"""The layering is true: no import cycle inside ``src/pybpf``, and imports only go down the
layers (README, architecture): the syscall layer, pure parsers, kernel objects, the
``features`` front, the front ends.

Imports are read from the source (module level and inside functions; those under ``if
TYPE_CHECKING:`` aside, as they never run). Importing ``a.b.c`` runs ``a/__init__`` and
``a/b/__init__`` too: those count as imports of the importing module (unless it lives in that
package). Names a package exports lazily (``pybpf._lazy``) are not its imports: they are
imported where used, as their modules' own imports are."""
from __future__ import annotations

import ast
from pathlib import Path

import pybpf

SRC = Path(pybpf.__file__).parent

# the lowest layer whose prefix matches decides (longest prefix first); a module may import
# its own layer and the ones below
LAYERS: dict[str, int] = {
    # 0: the syscall layer and what it needs (errors, lazy exports, records, the cache,
    # capabilities)
    "pybpf.sys": 0, "pybpf.errors": 0, "pybpf._lazy": 0, "pybpf._record": 0, "pybpf.cache": 0,
    "pybpf.caps": 0,
    # 1: pure parsers: instructions, BTF, ELF (BPF objects); the probes that need BTF use
    # them with the syscall layer only (pybpf.btf.probes)
    "pybpf.asm": 1, "pybpf.btf": 1, "pybpf.elf": 1,
    # 2: kernel objects (own fds) and tools: maps, programs, BTF objects, the ELF loader,
    # hooks, event readers, the compiler driver, host symbolization
    "pybpf.object": 2, "pybpf.codec": 2, "pybpf.maps": 2, "pybpf.programs": 2,
    "pybpf.btf.kernel": 2, "pybpf.elf.loader": 2, "pybpf.elf.attach": 2, "pybpf.links": 2,
    "pybpf.events": 2, "pybpf.compile": 2, "pybpf.symbols": 2,
    # 3: the front of the library: feature probes as users ask them, pybpf.load
    "pybpf.features": 3, "pybpf": 3,
    # 4: front ends
    "pybpf.cli": 4, "pybpf.bcc": 4, "pybpf.exporter": 4,
}

def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(SRC.rglob("*.py")):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or \
        (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement, at any depth, except under ``if TYPE_CHECKING:``."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)
    visit(tree)
    return found


def _ancestors(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def import_graph() -> dict[str, set[str]]:
    """module -> the pybpf modules importing it runs (package ``__init__`` files included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in _imports(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
                continue
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.add(sub if sub in modules else base)
        edges = set()
        for t in targets:
            if t not in modules:
                continue
            for m in [*_ancestors(t), t]:  # importing a.b.c runs a and a.b first
                if m != name and m not in _ancestors(name):
                    edges.add(m)
        graph[name] = edges
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strongconnect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            strongconnect(v)
    return sorted(found)


def layer(module: str) -> int:
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    raise AssertionError(f"{module} is in no layer: add it to LAYERS (and to the README)")


def test_the_graph_sees_what_python_sees() -> None:
    """The reader is checked on imports the code is known to have: module level, inside a
    function, relative with dots, a package's ``__init__``, TYPE_CHECKING aside."""
    graph = import_graph()
    assert "pybpf.sys.syscall" in graph["pybpf.maps"] or "pybpf.sys.commands" in graph["pybpf.maps"]
    assert "pybpf.elf" in graph["pybpf"]                   # inside pybpf.load(), a package
    assert "pybpf.btf.encode" in graph["pybpf.btf"]        # a package's eager import
    assert "pybpf.sys" in graph["pybpf.btf.types"]         # from ..sys.uapi runs sys/__init__
    assert "pybpf.btf.spec" not in graph["pybpf.btf.types"]  # TYPE_CHECKING only there
    tree = ast.parse("import os\nif TYPE_CHECKING:\n    import a\nelse:\n    import b\n"
                     "def f():\n    from . import c\n")
    assert [ast.unparse(n) for n in _imports(tree)] == ["import os", "import b", "from . import c"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_imports_only_go_down_the_layers() -> None:
    graph = import_graph()
    upward = sorted(f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
                    for m, targets in graph.items() for t in targets if layer(t) > layer(m))
    assert upward == []


def test_no_bpf_call_or_attr_above_the_syscall_layer() -> None:
    """Only ``pybpf.sys`` issues ``bpf()`` and builds its attrs: the others call the typed
    per-command functions of ``pybpf.sys.commands``."""
    from pybpf.sys import attrs
    attr_names = {n for n, v in vars(attrs).items() if isinstance(v, type)
                  and issubclass(v, attrs.Attr) and v is not attrs.Attr}
    offenders = []
    for name, path in _modules().items():
        if layer(name) == 0:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and \
                    node.module.endswith("sys.syscall"):
                used = {a.name for a in node.names} & {"bpf", "bpf_raw", "bound_calls"}
                if used:
                    offenders.append(f"{name}: imports {', '.join(sorted(used))}")
            if isinstance(node, ast.Call):  # an attr built, or bpf() issued (annotations aside)
                called = getattr(node.func, "id", getattr(node.func, "attr", ""))
                if called in attr_names | {"bpf", "bpf_raw"}:
                    offenders.append(f"{name}:{node.lineno}: {called}()")
    assert offenders == []
