"""Kernel memory read through pointers, rewritten to ``bpf_probe_read_kernel`` as BCC does.

In a kprobe or tracepoint program, ``task->real_parent->tgid`` cannot be a plain load: the
verifier accepts loads only from the stack, maps, the context and packets. This pass takes the
typed syntax tree of the translated program from clang (``-ast-dump=json``, with the
precompiled runtime) and wraps every load from kernel memory in ``__PYBPF_KREAD(...)`` (a probe
read into a stack copy). What counts as a pointer into kernel memory ("external"):

- values read from the context of a tracing program (``PT_REGS_PARM1(ctx)``, ``ctx->args[0]``,
  a tracepoint record's pointer fields) and ``bpf_get_current_task()``;
- values loaded through an external pointer (``task->real_parent``), and addresses inside
  kernel objects (``&task->files``, ``task->comm``);
- variables, fields of local structs, parameters and results of static functions given an
  external value (a fixed point over assignments, initializers, calls and returns);
- pointers stored in a map by ``update``/``insert`` (``currsock.update(&pid, &sk)``): values
  loaded from such a map's entries are external.

Loads from the stack, map values and the context itself stay plain; ``&``, ``sizeof`` and
arrays (whose address is taken, not their content) read nothing. A load the pass cannot
rewrite (inside a macro's body) is an error naming its line.

Fields of bcc/proto.h's packet headers reached through a packet cursor (an offset, not an
address) are read with ``bpf_dext_pkt`` and written with ``bpf_dins_pkt``
(:mod:`.packets`).
"""
from __future__ import annotations

import re
from typing import Any, Iterable, Optional, Sequence

from ...errors import ToolchainError
from . import packets
from .errors import DialectError

TRACING_SECTIONS = ("kprobe", "kretprobe", "uprobe", "uretprobe", "tracepoint",
                    "raw_tracepoint", "perf_event", "usdt", "raw_tp", "tp")
KREAD = "__PYBPF_KREAD("
_SOURCES = {"bpf_get_current_task"}
_MAP_WRITES = {"bpf_map_update_elem"}
_MAP_READS = {"bpf_map_lookup_elem"}
_TRANSPARENT_CASTS = {"NoOp", "BitCast", "IntegralToPointer", "PointerToIntegral",
                      "IntegralCast", "LValueToRValue", "ArrayToPointerDecay"}
_ACCESSOR = re.compile(r"PT_REGS_(?:PARM[1-6]|RC|IP|SP|FP|RET)\s*\(")
_STRUCT_PTR = re.compile(r"struct (\w+) \*")
_PROG_SEC = re.compile(r'\bSEC\("((?!\.|license")[^"]*)"\)')   # programs' (not data's)
_NEUTRAL_SEC = 'SEC("__pybpf_program")'
_FIELD_ALIAS = re.compile(r"(?:sk|inet|ir)_\w+")   # bcc/sock.h's object-like field macros


MAIN_FILE = "<stdin>"
_SOURCE_ERROR = re.compile(r"^\S+:\d+:\d+: (fatal )?error:", re.M)


def annotate_files(node: Any, state: Optional[list[str]] = None) -> None:
    """Give every location of clang's JSON dump its file as ``_file``: the dump names a
    location's file only when it differs from the previously printed location's."""
    if state is None:
        state = [""]
    if isinstance(node, dict):
        if "offset" in node:
            state[0] = node.get("file", state[0])
            node["_file"] = state[0]
        for v in list(node.values()):
            if isinstance(v, (dict, list)):
                annotate_files(v, state)
    elif isinstance(node, list):
        for v in node:
            annotate_files(v, state)


def _offset(loc: dict[str, Any]) -> Optional[int]:
    """Offset of a location written literally in the main file (directly or as a macro's
    argument), else None (a macro's body, a header)."""
    if "spellingLoc" in loc:
        if not loc.get("expansionLoc", {}).get("isMacroArgExpansion"):
            return None
        loc = loc["spellingLoc"]
    return loc.get("offset") if loc.get("_file") == MAIN_FILE else None


def _range(node: dict[str, Any], text: str) -> Optional[tuple[int, int]]:
    r = node.get("range") or {}
    b = _offset(r.get("begin", {}))
    end = r.get("end", {})
    e = _offset(end)
    if e is not None:
        e += end.get("spellingLoc", end).get("tokLen", 0)
    else:   # ends in a field alias (sk->sk_dport): the alias's name is the end
        exp = end.get("expansionLoc", {})
        off = exp.get("offset")
        if exp.get("_file") == MAIN_FILE and isinstance(off, int) and \
                _FIELD_ALIAS.fullmatch(text, off, off + exp.get("tokLen", 0)):
            e = off + exp["tokLen"]
    if b is None or e is None or e <= b:
        return None
    return b, e


def _line(node: dict[str, Any], text: str) -> int:
    r = (node.get("range") or {}).get("begin", {})
    loc = r.get("expansionLoc", r)
    if loc.get("_file") != MAIN_FILE:
        return 0
    off = loc.get("offset")
    return text.count("\n", 0, off) + 1 if isinstance(off, int) else 0


Level = Optional[int]
EXT = 0   # a taint level: the value points into kernel memory; level n > 0: it points to BPF
          # memory (stack, map value) holding a level n-1 value
CTX = -1  # memory(): the tracing program's context (read directly, holds EXT values)


def _lower(a: Level, b: Level) -> Level:
    """The more external of two levels (a probe read of BPF memory still works; a direct
    load of kernel memory does not)."""
    return b if a is None else a if b is None else min(a, b)


class _Analysis:
    def __init__(self, ast: dict[str, Any], text: str, contexts: set[str]) -> None:
        self.text = text
        self.var_taint: dict[str, int] = {}       # decl id -> level of the value it holds
        self.points_to: dict[str, str] = {}       # pointer variable -> local it was set to &
        self.ctx_ids: set[str] = set()            # context parameters of tracing programs
        self.tainted_maps: set[str] = set()       # map variables holding external pointers
        self.member_taint: dict[str, int] = {}    # struct field decl id -> level stored in it
        self.returns: dict[str, int] = {}         # function decl id -> level of its result
        self.params: dict[str, list[str]] = {}    # function decl id -> parameter decl ids
        self.functions = [n for n in ast.get("inner", []) if n.get("kind") == "FunctionDecl"
                          and any(c.get("kind") == "CompoundStmt" for c in n.get("inner", []))]
        for fn in self.functions:
            params = [c for c in fn.get("inner", []) if c.get("kind") == "ParmVarDecl"]
            self.params[fn["id"]] = [p["id"] for p in params]
            if fn.get("name") in contexts and params:
                self.ctx_ids.add(params[0]["id"])
        self.changed = False
        self.loads: list[tuple[dict[str, Any], dict[str, Any]]] = []   # (load, lvalue)
        # (read | write, field lvalue, base, struct, packet variable, assigned value)
        self.packets: list[tuple[str, dict[str, Any], dict[str, Any], str, str, Any]] = []

    # -- taint of values (rvalues) and memory (lvalues) ------------------------------------
    def value(self, n: dict[str, Any]) -> Level:
        """The level of rvalue ``n`` (None: no kernel pointer involved)."""
        k = n.get("kind")
        inner = n.get("inner", [])
        if k in ("ImplicitCastExpr", "CStyleCastExpr"):
            cast = n.get("castKind")
            if cast == "LValueToRValue":
                return self.load(inner[0])
            if cast == "ArrayToPointerDecay":
                return self.address(inner[0])
            if cast in _TRANSPARENT_CASTS:
                return self.value(inner[0])
            return None
        if k == "ParenExpr":
            return self.value(inner[0])
        if k == "UnaryOperator" and n.get("opcode") == "&":
            return self.address(inner[0])
        if k == "BinaryOperator" and n.get("opcode") in ("+", "-"):
            return _lower(self.value(inner[0]), self.value(inner[1]))
        if k == "BinaryOperator" and n.get("opcode") == ",":
            return self.value(inner[1])
        if k == "ConditionalOperator":
            return _lower(self.value(inner[1]), self.value(inner[2]))
        if k == "CallExpr":
            callee = self.callee(n)
            if callee in _SOURCES:
                return EXT
            if callee in _MAP_READS and self.map_of(inner[1]) in self.tainted_maps:
                return EXT + 1
            return self.returns.get(self.callee_id(n))
        return None

    def address(self, lv: dict[str, Any]) -> Level:
        """The level of ``&lv``."""
        mem = self.memory(lv)
        if mem == EXT:
            return EXT
        held = self.load(lv)
        return None if held is None else held + 1

    def load(self, lv: dict[str, Any]) -> Level:
        """The level of the value loaded from lvalue ``lv``."""
        while lv.get("kind") == "ParenExpr":
            lv = lv["inner"][0]
        if lv.get("kind") == "DeclRefExpr":
            return self.var_taint.get(lv.get("referencedDecl", {}).get("id", ""))
        mem = self.memory(lv)
        if mem is not None:
            return EXT if mem in (EXT, CTX) else mem - 1
        if lv.get("kind") == "MemberExpr":   # a field of a local struct given a kernel pointer
            return self.member_taint.get(lv.get("referencedMemberDecl", ""))
        return None

    def memory(self, lv: dict[str, Any]) -> Level:
        """Where lvalue ``lv`` lives: EXT (kernel memory), CTX (the context), n > 0 (BPF
        memory holding a level n-1 value), None (stack, maps, globals)."""
        k = lv.get("kind")
        inner = lv.get("inner", [])
        if k == "ParenExpr":
            return self.memory(inner[0])
        if k == "MemberExpr":
            if lv.get("isArrow"):
                base = inner[0]
                if self.is_ctx(base):
                    return CTX
                return self.value(base)
            return self.memory(inner[0])
        if k == "UnaryOperator" and lv.get("opcode") == "*":
            return self.value(inner[0])
        if k == "ArraySubscriptExpr":
            base = inner[0]
            if base.get("castKind") == "ArrayToPointerDecay":
                return self.memory(base["inner"][0])
            return self.value(base)
        return None

    def is_ctx(self, n: dict[str, Any]) -> bool:
        while n.get("kind") in ("ImplicitCastExpr", "ParenExpr", "CStyleCastExpr"):
            n = n["inner"][0]
        return n.get("kind") == "DeclRefExpr" and \
            n.get("referencedDecl", {}).get("id") in self.ctx_ids

    @staticmethod
    def _ref(n: dict[str, Any], key: str) -> str:
        while n.get("kind") in ("ImplicitCastExpr", "ParenExpr"):
            n = n["inner"][0]
        return n.get("referencedDecl", {}).get(key, "") if n.get("kind") == "DeclRefExpr" \
            else ""

    def callee(self, call: dict[str, Any]) -> str:
        return self._ref(call["inner"][0], "name")

    def callee_id(self, call: dict[str, Any]) -> str:
        return self._ref(call["inner"][0], "id")

    def map_of(self, n: dict[str, Any]) -> str:
        """The map variable ``(void *)&map`` refers to."""
        while n.get("kind") in ("ImplicitCastExpr", "CStyleCastExpr", "ParenExpr") or \
                (n.get("kind") == "UnaryOperator" and n.get("opcode") == "&"):
            n = n["inner"][0]
        return n.get("referencedDecl", {}).get("id", "") if n.get("kind") == "DeclRefExpr" \
            else ""

    # -- propagation -------------------------------------------------------------------------
    def taint_in(self, table: dict[str, int], key: str, level: Level) -> None:
        if key and level is not None:
            new = _lower(table.get(key), level)
            if new != table.get(key):
                table[key] = new  # type: ignore[assignment]
                self.changed = True

    def assign(self, lhs: dict[str, Any], level: Level) -> None:
        """``lhs = <a value of level>``."""
        while lhs.get("kind") == "ParenExpr":
            lhs = lhs["inner"][0]
        k = lhs.get("kind")
        if k == "DeclRefExpr":
            self.taint_in(self.var_taint, lhs.get("referencedDecl", {}).get("id", ""), level)
        elif k == "MemberExpr" and self.memory(lhs) is None:
            self.taint_in(self.member_taint, lhs.get("referencedMemberDecl", ""), level)
        elif k == "UnaryOperator" and lhs.get("opcode") == "*":   # *p = x, p = &local
            target = self.points_to.get(self._ref(lhs["inner"][0], "id"))
            if target:
                self.taint_in(self.var_taint, target, level)

    def note_address(self, var: str, rhs: dict[str, Any]) -> None:
        """Remember ``var = &local`` (for ``*var = ...``)."""
        while rhs.get("kind") in ("ImplicitCastExpr", "CStyleCastExpr", "ParenExpr"):
            rhs = rhs["inner"][0]
        if rhs.get("kind") == "UnaryOperator" and rhs.get("opcode") == "&":
            target = self._ref(rhs["inner"][0], "id")
            if target and var:
                self.points_to[var] = target

    def propagate(self, n: dict[str, Any], fn_id: str = "") -> None:
        k = n.get("kind")
        if k == "FunctionDecl":
            fn_id = n["id"]
        inner = n.get("inner", [])
        if k == "VarDecl" and n.get("init") and inner:
            self.note_address(n["id"], inner[-1])
            self.taint_in(self.var_taint, n["id"], self.value(inner[-1]))
        elif k == "BinaryOperator" and n.get("opcode") == "=":
            self.note_address(self._ref(inner[0], "id"), inner[1])
            self.assign(inner[0], self.value(inner[1]))
        elif k == "ReturnStmt" and inner and fn_id:
            self.taint_in(self.returns, fn_id, self.value(inner[0]))
        elif k == "CallExpr":
            name = self.callee(n)
            if name in _MAP_WRITES and len(inner) >= 4:
                m = self.map_of(inner[1])
                if self.value(inner[3]) == EXT + 1 and m and m not in self.tainted_maps:
                    self.tainted_maps.add(m)
                    self.changed = True
            params = self.params.get(self.callee_id(n))
            if params:
                for pid, arg in zip(params, inner[1:]):
                    self.taint_in(self.var_taint, pid, self.value(arg))
        for c in inner:
            if isinstance(c, dict):
                self.propagate(c, fn_id)

    # -- packet cursors ----------------------------------------------------------------------
    @staticmethod
    def packet_field(lv: dict[str, Any]) -> Optional[tuple[str, dict[str, Any]]]:
        """(struct, base expression) if ``lv`` is ``p->field`` with ``p`` a pointer to one
        of bcc/proto.h's packet header structs."""
        while lv.get("kind") == "ParenExpr":
            lv = lv["inner"][0]
        if lv.get("kind") != "MemberExpr" or not lv.get("isArrow"):
            return None
        base = lv["inner"][0]
        m = _STRUCT_PTR.fullmatch(base.get("type", {}).get("qualType", ""))
        if m is None or m.group(1) not in packets.layouts():
            return None
        return m.group(1), base

    def packet_access(self, n: dict[str, Any], skb: str) -> bool:
        """Record a read (load) or write (assignment) of a packet header field; True if ``n``
        is one (its children are then collected by the caller)."""
        k = n.get("kind")
        if k == "ImplicitCastExpr" and n.get("castKind") == "LValueToRValue":
            lv = n["inner"][0]
            found = self.packet_field(lv)
            if found:
                self.packets.append(("read", lv, found[1], found[0], skb, None))
                return True
        if k == "BinaryOperator" and n.get("opcode") == "=":
            lhs = n["inner"][0]
            found = self.packet_field(lhs)
            if found:
                self.packets.append(("write", lhs, found[1], found[0], skb, n["inner"][1]))
                return True
        return False

    # -- the loads to rewrite ----------------------------------------------------------------
    def collect(self, n: dict[str, Any], unevaluated: bool = False, skb: str = "") -> None:
        k = n.get("kind")
        inner = n.get("inner", [])
        if k == "FunctionDecl":
            params = [c for c in inner if c.get("kind") == "ParmVarDecl"]
            skb = params[0].get("name", "") if params else ""
        if not unevaluated and self.packet_access(n, skb):
            for c in inner:
                if isinstance(c, dict):
                    self.collect(c, unevaluated, skb)
            return
        if k == "UnaryExprOrTypeTraitExpr":   # sizeof, alignof: nothing is read
            unevaluated = True
        if not unevaluated and k == "ImplicitCastExpr" and n.get("castKind") == "LValueToRValue":
            lv = inner[0]
            if lv.get("kind") != "DeclRefExpr" and self.memory(lv) == EXT:
                self.loads.append((n, lv))
                for c in lv.get("inner", []):   # nested loads in the address computation
                    self.collect(c, unevaluated, skb)
                return
        for c in inner:
            if isinstance(c, dict):
                self.collect(c, unevaluated, skb)


def rewrite(text: str, ast: dict[str, Any], contexts: set[str]) -> str:
    """``text`` with loads from kernel memory wrapped in ``__PYBPF_KREAD(...)``; ``contexts``
    names the tracing programs (their first parameter is the context)."""
    a = _Analysis(ast, text, contexts)
    for _ in range(8):
        a.changed = False
        for fn in a.functions:
            a.propagate(fn)
        if not a.changed:
            break
    for fn in a.functions:
        a.collect(fn)
    edits: list[tuple[int, int, int, int, str]] = []   # (start, rank, tie, end, text)
    for load, lv in a.loads:
        rng = _range(lv, text) or _accessor_macro(lv, text)
        if rng is None:
            raise DialectError("a read of kernel memory through a pointer inside a macro's "
                               "expansion cannot be rewritten to bpf_probe_read_kernel: read it "
                               "with bpf_probe_read_kernel() explicitly", _line(lv, text))
        start, end = rng
        edits.append((start, 2, -(end - start), start, KREAD))
        edits.append((end, 0, end - start, end, ")"))
    for kind, lv, base, struct, skb, value in a.packets:
        field, brange = _range(lv, text), _range(base, text)
        vrange = _range(value, text) if value is not None else (0, 0)
        if field is None or brange is None or vrange is None or not skb:
            raise DialectError(f"a packet header field ({struct}) used in a macro's expansion "
                               "or outside a program cannot be rewritten", _line(lv, text))
        byte, bit, width = packets.position(struct, lv["name"])
        edits.append((brange[0], 2, -(field[1] - brange[0]), brange[0],
                      f"bpf_{'dext' if kind == 'read' else 'dins'}_pkt({skb}, (u64)("))
        if kind == "read":
            edits.append((brange[1], 1, 0, field[1], f") + {byte}, {bit}, {width})"))
        else:
            edits.append((brange[1], 1, 0, vrange[0], f") + {byte}, {bit}, {width}, ("))
            edits.append((vrange[1], 0, 0, vrange[1], "))"))
    out, pos = [], 0
    # at one offset: closers first (of shorter spans first), then replacements, then openers
    # (of longer spans first)
    for start, _, _, end, new in sorted(edits):
        out.append(text[pos:start])
        out.append(new)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _accessor_macro(lv: dict[str, Any], text: str) -> Optional[tuple[int, int]]:
    """The span of a runtime accessor macro's invocation (``PT_REGS_PARM1(regs)``) whose whole
    expansion is the lvalue ``lv``, if it is one."""
    begin = (lv.get("range") or {}).get("begin", {}).get("expansionLoc", {})
    off = begin.get("offset")
    if begin.get("_file") != MAIN_FILE or not isinstance(off, int):
        return None
    m = _ACCESSOR.match(text, off)
    if m is None:
        return None
    depth = 0
    for i in range(m.end() - 1, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return off, i + 1
    return None


def ast_of(source: str, names: Iterable[str], cflags: Sequence[str]) -> Optional[dict[str, Any]]:
    """clang's JSON syntax tree of the program ``source`` (file-scope identifiers ``names``)
    compiled with its runtime (:func:`pybpf.bcc.toolchain.run_compiler`) and ``cflags``,
    from its first declaration in the program's text on (the runtime's are left out); None
    if clang rejects the program (the build then reports its errors); ToolchainError when
    clang fails without an error in a source file (the compiler, not the program: the reads
    would be left unrewritten)."""
    import json

    from ..toolchain import run_compiler

    res, _ = run_compiler(source, names, cflags,
                          ["-fsyntax-only", "-Xclang", "-ast-dump=json", "-x", "c", "-"],
                          stdin=source)
    if res.returncode != 0:
        if _SOURCE_ERROR.search(res.stderr):
            return None
        raise ToolchainError("the compiler failed to give the program's syntax tree "
                             f"(-ast-dump=json), needed to rewrite kernel memory reads: "
                             f"{res.stderr.strip()[:2000]}")
    out = res.stdout
    # a location names its file when it changes: the first naming the program's starts its
    # part; cut at the top-level declaration (indented 4) holding it
    first = out.find(f'"file": "{MAIN_FILE}"')
    start = out.rfind("\n    {\n", 0, first) if first >= 0 else -1
    data: dict[str, Any] = json.loads('{"inner": [' + out[start + 1:]) if start >= 0 \
        else json.loads(out)
    annotate_files(data)
    return data


def rewrite_probe_reads(source: str, cflags: Sequence[str], names: Iterable[str],
                        contexts: set[str]) -> str:
    """``source`` with kernel memory reads rewritten (:func:`rewrite`), from the syntax tree
    clang gives with the runtime (:mod:`pybpf.bcc.toolchain`) and ``cflags``; ``names``: the
    program's file-scope identifiers. Cached like objects. Source clang rejects is returned as
    it is (the build reports its errors)."""
    from ...cache import cache_dir
    from ..toolchain import atomic_write, cache_key, compile_ahead, drop_ahead, find_compiler

    # sections do not change the types: the translations of a function for another program
    # type (a kprobe run on a syscall tracepoint) share one analysis
    sections = _PROG_SEC.findall(source)
    neutral = _PROG_SEC.sub(_NEUTRAL_SEC, source)
    key = cache_key(find_compiler(), neutral, "\0".join(cflags), "\0".join(sorted(contexts)))
    path = cache_dir() / "bcc" / "reads" / f"{key}.c"
    try:
        out = path.read_text()
    except OSError:
        compile_ahead(source, names, cflags)   # the object, if nothing is rewritten
        ast = ast_of(neutral, names, cflags)
        if ast is None:
            drop_ahead(source, cflags)
            return source
        out = rewrite(neutral, ast, contexts)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, out.encode())
    pieces = out.split(_NEUTRAL_SEC)
    result = pieces[0] + "".join(f'SEC("{sec}")' + p for sec, p in zip(sections, pieces[1:]))
    if result != source:
        drop_ahead(source, cflags)
    return result
