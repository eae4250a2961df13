"""Packages whose exports are imported on first use (``pybpf._lazy``): every exported name
resolves to the object its module defines, and the start-up path of a program that loads an
object and reads a ring buffer imports none of the machinery it does not use."""
from __future__ import annotations

import ast
import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

import pybpf

LAZY = ["pybpf.asm", "pybpf.btf", "pybpf.elf", "pybpf.events", "pybpf.links", "pybpf.sys"]


def _module_names(package: str) -> set[str]:
    return {p.stem for p in Path(importlib.import_module(package).__path__[0]).glob("*.py")
            if p.stem != "__init__"}


def _fresh(code: str) -> list[str]:
    """``sorted(sys.modules)`` after ``code`` runs in a new interpreter."""
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.splitlines()[-1])


def _exports(package: str) -> tuple[dict[str, str], str]:
    """What a lazy ``__init__`` exports: the ``where`` and ``star`` of its ``exports()`` call,
    plus its eager ``from .module import names`` lines."""
    init = Path(importlib.import_module(package).__path__[0]) / "__init__.py"
    tree = ast.parse(init.read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call)
             and getattr(n.func, "id", "") == "exports"]
    assert len(calls) == 1, package
    star = [k.value for k in calls[0].keywords if k.arg == "star"]
    where = ast.literal_eval(calls[0].args[1])
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            assert f".{node.module}" not in where
            where[f".{node.module}"] = ", ".join(
                f"{a.name} as {a.asname}" if a.asname else a.name for a in node.names)
    return where, ast.literal_eval(star[0]) if star else ""


@pytest.mark.parametrize("package", LAZY)
def test_every_export_is_what_an_eager_import_gives(package: str) -> None:
    init = Path(importlib.import_module(package).__path__[0]) / "__init__.py"
    eager = [f"{package}.{n.module}" for n in ast.parse(init.read_text()).body
             if isinstance(n, ast.ImportFrom) and n.level == 1]
    imported = [m for m in _fresh(f"import {package}") if m.startswith(package + ".")]
    # importing the package imports only its eager imports (and what they import)
    assert imported == [m for m in _fresh(f"import {', '.join(eager)}" if eager else "")
                        if m.startswith(package + ".")]
    pkg = importlib.import_module(package)
    for sub in _module_names(package):  # importing a module binds its name in the package
        importlib.import_module(f"{package}.{sub}")
    where, star = _exports(package)
    assert {m.lstrip(".") for m in [*where, star] if m} <= _module_names(package)
    expected = {}
    for module, listed in where.items():
        for item in listed.split(","):
            attr, _, alias = item.strip().partition(" as ")
            expected[alias or attr] = getattr(importlib.import_module(module, package), attr)
    if star:
        starred = importlib.import_module(star, package)
        expected.update({n: getattr(starred, n) for n in starred.__all__})
    defined = {n.name for n in ast.parse(init.read_text()).body if isinstance(n, ast.FunctionDef)}
    for name in set(pkg.__all__) - set(expected):  # submodules (pybpf.btf.types, .values)
        expected[name] = (vars(pkg)[name] if name in defined  # pybpf.elf.load
                          else importlib.import_module(f"{package}.{name}"))
    assert sorted(pkg.__all__) == sorted(expected)
    for name, value in expected.items():
        assert getattr(pkg, name) is value, name
    assert set(pkg.__all__) <= set(dir(pkg))
    ns: dict = {}
    exec(f"from {package} import *", ns)
    assert {k: v for k, v in ns.items() if not k.startswith("__")} == expected


@pytest.mark.parametrize("package", LAZY)
def test_submodules_and_unknown_names(package: str) -> None:
    pkg = importlib.import_module(package)
    for sub in _module_names(package) - set(pkg.__all__):
        assert getattr(pkg, sub) is importlib.import_module(f"{package}.{sub}")
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        pkg.nope  # noqa: B018
    assert not hasattr(pkg, "__nope__")


def test_renamed_exports() -> None:
    from pybpf import links
    from pybpf.links import btf_tracing
    assert links.load_btf_tracing is btf_tracing.load
    assert links.attach_btf_tracing is btf_tracing.attach


def test_startup_path_imports_only_what_it_uses(bpf_objects) -> None:
    """Loading an object, attaching a tracepoint and opening a ring buffer: no pyelftools,
    assembler, netlink, sockets, uprobes or asyncio (each costs start-up time)."""
    obj = bpf_objects["elf_globals"]
    mods = _fresh(f"""
import pybpf.elf, pybpf.events, pybpf.links, pybpf.features
from pybpf.events import RingBuffer
from pybpf.links import attach_tracepoint
spec = pybpf.elf.ObjectSpec.from_file({str(obj)!r})
""")
    unwanted = ("elftools", "asyncio", "platform", "difflib", "gzip", "socket",
                "pybpf.asm.assembler", "pybpf.asm.disasm", "pybpf.asm.instructions",
                "pybpf.btf.cdump", "pybpf.links.netlink", "pybpf.links.tc", "pybpf.links.xdp",
                "pybpf.links.uprobe", "pybpf.links.usdt", "pybpf.events.trace_pipe",
                "pybpf.elf.externs", "hashlib")
    already = set(_fresh(""))  # what this interpreter imports at start (site, .pth files)
    assert not [m for m in set(mods) - already
                if m.split(".")[0] in unwanted or m in unwanted], mods
    assert "pybpf.links.tracing" in mods and "pybpf.events.ringbuf" in mods


def test_load_is_lazy_in_the_top_package() -> None:
    assert "pybpf.elf" not in _fresh("import pybpf")
    assert callable(pybpf.load)


def test_an_export_named_like_its_module_is_refused() -> None:
    """Importing ``pybpf.btf.encode`` binds the module as ``pybpf.btf.encode``: such an
    export must be imported eagerly."""
    from pybpf._lazy import exports
    with pytest.raises(ValueError, match="encode also name modules: import them eagerly"):
        exports("pybpf.btf", {".encode": "encode, encode_spec"})
