"""BCC's C dialect translated to libbpf-style C.

``translate(text)`` turns a BCC program (``BPF_HASH(config, u32, struct user_msg_t);``,
``config.lookup(&uid)``, ``TRACEPOINT_PROBE(sched, sched_switch) {...}``, kernel headers...)
into C that clang compiles against pybpf's precompiled runtime (vmlinux.h, helper
declarations, BCC's macros: see :mod:`pybpf.bcc.toolchain`):

- map macros become BTF-defined maps in ``SEC(".maps")`` with the table's name;
- ``table.method(...)`` calls become helper calls on the map;
- each program function gets an ELF section naming its program type (and attach target when
  its name or macro gives one); extra parameters of probes are read from the context;
- ``#include <...>`` of kernel headers are dropped: kernel types come from vmlinux.h;
- code in conditional branches the preprocessor skips is blanked (:mod:`.conditionals`);
- kernel memory read through pointers in tracing programs becomes ``bpf_probe_read_kernel``,
  packet header fields read or written through packet cursors ``bpf_dext_pkt``/
  ``bpf_dins_pkt`` (:mod:`.probe_read`).

Every rewrite keeps the user's line breaks, so line ``n`` of the user's text is line
``n + len(prelude)`` of the result; ``Translation.line_map`` records it for diagnostics.
"""
from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from ..scan import Token, closing, line_of, span, split_args, tokenize
from .conditionals import live_regions, resolve as resolve_conditionals
from .errors import DialectError, FallbackError
from .methods import EVENT_SECTION, rewrite as rewrite_methods
from .probe_read import TRACING_SECTIONS, rewrite_probe_reads
from .programs import Function, Kind, kind as program_kind, param_reads
from .tables import MACROS, Table, define
from .tracepoints import record_struct

__all__ = ["DialectError", "EVENT_SECTION", "Function", "Table", "Translation", "translate"]

PROBE_MACROS = {
    "TRACEPOINT_PROBE", "RAW_TRACEPOINT_PROBE", "KFUNC_PROBE", "KRETFUNC_PROBE", "LSM_PROBE",
    "KMOD_RET",
}
# BTF-typed probes: (macro, auto-attach kind, section prefix, name prefix)
_BTF_PROBES = {"KFUNC_PROBE": ("kfunc", "fentry/", "kfunc__"),
               "KRETFUNC_PROBE": ("kretfunc", "fexit/", "kretfunc__"),
               "KMOD_RET": ("kmod_ret", "fmod_ret/", "kmod_ret__"),
               "LSM_PROBE": ("lsm", "lsm/", "lsm__")}
_HELPER_SPECIFIERS = {"static", "inline", "__always_inline", "__inline", "__inline__", "extern"}
_ANGLE_INCLUDE = re.compile(r"#\s*include\s*<([^>]+)>")
# kernel headers that define (or include) net/sock.h's field aliases
SOCK_HEADERS = {"net/sock.h", "net/inet_sock.h", "net/tcp.h", "linux/tcp.h",
                "net/inet_connection_sock.h", "net/request_sock.h", "net/inet_timewait_sock.h",
                "linux/udp.h", "net/udp.h", "linux/ipv6.h", "net/ipv6.h"}
_PRINTK_SPEC = re.compile(r"%[-+ #0-9.]*((?:hh|h|ll|l|z|j|t)?[a-zA-Z])")
_PRINTK_ALLOWED = {"d", "i", "u", "x", "X", "ld", "li", "lu", "lx", "lld", "lli", "llu", "llx",
                   "p", "s", "c", "pK", "pS", "pB", "pi", "pI"}
_USDT_READS = {"bpf_usdt_readarg", "bpf_usdt_readarg_p"}
_RECORD_PARAM = re.compile(r"(?:const\s+)?struct\s+tracepoint__(\w+?)__(\w+)\s*\*")
LICENSE_SUFFIX = ("#ifndef BPF_LICENSE", "#define BPF_LICENSE GPL", "#endif",
                  'char _license[] SEC("license") = __PYBPF_STRINGIFY(BPF_LICENSE);')


@dataclass
class Translation:
    """The result of :func:`translate`. ``event_types``: table -> name of the BTF variable (in
    section :data:`EVENT_SECTION`, prefixed by ``<function>.``) whose type is the record the
    program submits to that table; ``line_map``: line of ``source`` (0-based) -> user's line
    (1-based), 0 for generated lines."""

    source: str
    functions: dict[str, Function]
    tables: dict[str, Table]
    event_types: dict[str, str]
    line_map: list[int]
    tracepoints: list[str] = field(default_factory=list)

    def user_line(self, line: int) -> int:
        """The user's line (1-based) of ``source`` line ``line`` (1-based), 0 if generated."""
        return self.line_map[line - 1] if 0 < line <= len(self.line_map) else 0


def _pad(new: str, old: str) -> str:
    """``new`` followed by the newlines ``old`` had beyond ``new``'s, so lines stay put."""
    missing = old.count("\n") - new.count("\n")
    if missing < 0:
        raise AssertionError("a rewrite added lines")
    return new + "\n" * missing


def _opening(tokens: list[Token], j: int) -> int:
    depth = 0
    for k in range(j, -1, -1):
        if tokens[k].text == ")":
            depth += 1
        elif tokens[k].text == "(":
            depth -= 1
            if depth == 0:
                return k
    raise ValueError("unbalanced ')'")


def _param(text: str, tokens: list[Token], rng: tuple[int, int]) -> tuple[str, str]:
    """(type, name) of one parameter declaration."""
    first, last = rng
    j = last - 1
    while j >= first and tokens[j].text in ("]",):   # array parameter: name before the dims
        while tokens[j].text != "[":
            j -= 1
        j -= 1
    if j < first or tokens[j].kind != "id" or j == first:
        return span(text, tokens, rng), ""
    return text[tokens[first].start:tokens[j].start].strip(), tokens[j].text


class _Translator:
    def __init__(self, text: str, kind_of: Mapping[str, str]) -> None:
        self.text, self.kind_of = text, kind_of
        self.tokens = tokenize(text)
        self.edits: list[tuple[int, int, str]] = []
        self.tables: dict[str, Table] = {}
        self.functions: dict[str, Function] = {}
        self.prelude: list[str] = []
        self.tracepoints: list[str] = []
        self.bodies: dict[str, tuple[int, int]] = {}   # program -> its body's token range

    def line(self, tok: Token) -> int:
        return line_of(self.text, tok.start)

    def replace(self, first: Token, last: Token, new: str) -> None:
        self.edits.append((first.start, last.end, _pad(new, self.text[first.start:last.end])))

    def run(self) -> None:
        toks, i, decl = self.tokens, 0, 0
        while i < len(toks):
            t = toks[i]
            nxt = toks[i + 1].text if i + 1 < len(toks) else ""
            if t.kind == "pp":
                m = _ANGLE_INCLUDE.match(t.text)
                if m:   # kernel types are vmlinux.h's; some headers bring macros
                    header = m.group(1).strip()
                    keep = "#include <bcc/sock.h>" if header in SOCK_HEADERS else \
                        t.text if header == "bcc/proto.h" else ""
                    self.edits.append((t.start, t.end, keep))
                decl = i + 1
            elif t.kind == "id" and nxt == "(" and t.text in MACROS:
                i = self.table(i)
                decl = i + 1
            elif t.kind == "id" and nxt == "(" and t.text in PROBE_MACROS:
                i = self.probe_macro(i)    # at the body's "{"
                i = closing(toks, i)
                decl = i + 1
            elif t.text == "{":
                end = self.closing(i)
                if i > 0 and toks[i - 1].text == ")":
                    self.function(decl, i, end)
                i, decl = end, end + 1
            elif t.text == ";":
                decl = i + 1
            i += 1

    def check_calls(self) -> None:
        """A program calling another program (a non-static function) is an error, as in BCC:
        each program loads on its own."""
        toks = self.tokens
        for name, (body, end) in self.bodies.items():
            for j in range(body, end):
                t = toks[j]
                if t.kind == "id" and t.text in self.bodies and toks[j + 1].text == "(" \
                        and toks[j - 1].text not in (".", "->"):
                    raise DialectError(f"function {name} calls {t.text}, which is a program "
                                       f"(not static): declare {t.text} static (inline) to "
                                       "call it", self.line(t))

    def printk_formats(self) -> None:
        """BCC's warnings on bpf_trace_printk formats the kernel does not take."""
        toks = self.tokens
        for j, t in enumerate(toks[:-2]):
            if t.text != "bpf_trace_printk" or toks[j + 1].text != "(":
                continue
            fmt = toks[j + 2]
            if fmt.kind != "str":
                raise DialectError("bpf_trace_printk's format must be a string literal",
                                   self.line(t))
            specs = _PRINTK_SPEC.findall(fmt.text.replace("%%", ""))
            where = f"line {self.line(fmt)}: warning: "
            if any(s not in _PRINTK_ALLOWED for s in specs):
                sys.stderr.write(where + "only %d %u %x %ld %lu %lx %lld %llu %llx %p %s "
                                 "conversion specifiers allowed\n")
            if specs.count("s") > 1:
                sys.stderr.write(where + "cannot use several %s conversion specifiers\n")

    def closing(self, i: int) -> int:
        try:
            return closing(self.tokens, i)
        except ValueError as e:
            raise DialectError(str(e), self.line(self.tokens[i])) from None

    def table(self, i: int) -> int:
        toks = self.tokens
        close = self.closing(i + 1)
        args = [span(self.text, toks, r) for r in split_args(toks, i + 1, close)]
        try:
            table, c = define(toks[i].text, args, self.tables)
        except DialectError as e:
            raise DialectError(e.reason, self.line(toks[i])) from None
        if table.name in self.tables:
            raise DialectError(f"table {table.name!r} is defined twice", self.line(toks[i]))
        self.tables[table.name] = table
        self.replace(toks[i], toks[close], c)
        return close

    def probe_macro(self, i: int) -> int:
        """Rewrite ``MACRO(...) {`` to a function header; returns the index of ``{``."""
        toks, macro = self.tokens, self.tokens[i].text
        close = self.closing(i + 1)
        line = self.line(toks[i])
        if close + 1 >= len(toks) or toks[close + 1].text != "{":
            raise DialectError(f"{macro}(...) must be followed by the function body", line)
        args = [span(self.text, toks, r) for r in split_args(toks, i + 1, close)]
        if macro == "TRACEPOINT_PROBE":
            if len(args) != 2:
                raise DialectError("TRACEPOINT_PROBE takes (category, event)", line)
            cat, ev = args
            name = f"tracepoint__{cat}__{ev}"
            self.record(cat, ev)
            section = f"tracepoint/{cat}/{ev}"
            header = f"int {name}(struct {name} *args)"
            fn = Function(name, [(f"struct {name} *", "args")], ("tracepoint", f"{cat}:{ev}"),
                          False, section, line)
        elif macro == "RAW_TRACEPOINT_PROBE":
            if len(args) != 1:
                raise DialectError("RAW_TRACEPOINT_PROBE takes (event)", line)
            name = f"raw_tracepoint__{args[0]}"
            section = f"raw_tracepoint/{args[0]}"
            header = f"int {name}(struct bpf_raw_tracepoint_args *ctx)"
            fn = Function(name, [("struct bpf_raw_tracepoint_args *", "ctx")],
                          ("raw_tracepoint", args[0]), False, section, line)
        else:
            if not args:
                raise DialectError(f"{macro} takes (function, parameters...)", line)
            attach, sec, prefix = _BTF_PROBES[macro]
            name, section = f"{prefix}{args[0]}", f"{sec}{args[0]}"
            ranges = split_args(toks, i + 1, close)[1:]
            params = [_param(self.text, toks, r) for r in ranges]
            decl = ", ".join(["unsigned long long *ctx"] + [f"{t} {n}" for t, n in params])
            unpack = ", ".join(["ctx"] + [f"({t})ctx[{k}]" for k, (t, _) in enumerate(params)])
            inner = f"____{name}"
            header = (f"static __always_inline int {inner}({decl}); "
                      f"SEC(\"{section}\") int {name}(unsigned long long *ctx) "
                      f"{{ return {inner}({unpack}); }} "
                      f"static __always_inline int {inner}({decl})")
            fn = Function(name, [("unsigned long long *", "ctx")] + params, (attach, args[0]),
                          False, section, line)
            section = ""   # the SEC() is on the wrapper already
        self.add_function(fn, line)
        self.replace(toks[i], toks[close], (f"SEC(\"{section}\") " if section else "") + header)
        return close + 1

    def record(self, cat: str, ev: str) -> None:
        """Define ``struct tracepoint__<cat>__<ev>`` (once) from the tracepoint's format."""
        if f"{cat}:{ev}" not in self.tracepoints:
            self.prelude.append(record_struct(cat, ev))
            self.tracepoints.append(f"{cat}:{ev}")

    def add_function(self, fn: Function, line: int) -> None:
        if fn.name in self.functions:
            raise DialectError(f"function {fn.name} is defined twice", line)
        self.functions[fn.name] = fn

    def function(self, decl: int, body: int, end: int) -> None:
        toks = self.tokens
        close = body - 1
        open_ = _opening(toks, close)
        while open_ > 0 and toks[open_ - 1].text == "__attribute__":   # f(...) __attribute__(())
            close = open_ - 2
            if close < 0 or toks[close].text != ")":
                return
            open_ = _opening(toks, close)
        if open_ == 0 or toks[open_ - 1].kind != "id" or decl >= open_ - 1:
            return
        name_tok = toks[open_ - 1]
        specifiers = {t.text for t in toks[decl:open_ - 1]}
        if specifiers & _HELPER_SPECIFIERS:
            if not specifiers & {"noinline", "__noinline", "extern"}:
                # as BCC: helpers are inlined (no calls with structs passed by value)
                self.edits.append((toks[decl].start, toks[decl].start,
                                   "__attribute__((always_inline)) "))
            for j in range(body, end):
                if toks[j].text in _USDT_READS:
                    raise DialectError(f"{toks[j].text}() must be called in the probe's own "
                                       f"function, not in {name_tok.text}()",
                                       self.line(toks[j]))
            return
        name, line = name_tok.text, self.line(name_tok)
        params = [_param(self.text, toks, r) for r in split_args(toks, open_, close)]
        if params == [("void", "")] or params == [("", "void")]:
            params = []
        ctx_type, ctx = params[0] if params else ("", "")
        k = program_kind(name, ctx_type, self.kind_of.get(name), line)
        for ptype, _ in params:   # as BCC: a tracepoint record parameter's struct is made
            m = _RECORD_PARAM.fullmatch(ptype)
            if m:
                try:
                    self.record(m[1], m[2])
                except DialectError as e:
                    raise DialectError(e.reason, line) from None
        fn = Function(name, params, k.auto_attach, k.is_syscall, k.section, line)
        self.add_function(fn, line)
        self.bodies[name] = (body, end)
        self.edits.append((toks[decl].start, toks[decl].start, f"SEC(\"{k.section}\") "))
        if k.args in ("sys_enter", "sys_exit"):
            self.syscall_tracepoint_body(fn, k, body, end, ctx)
        self.usdt_reads(name, body, end)
        self.checksum_updates(body, end, ctx)
        if len(params) > 1 or k.args in ("sys_enter", "sys_exit"):
            if not ctx:
                raise DialectError(f"function {name}: the context parameter has no name", line)
            first = "void *" if k.args in ("sys_enter", "sys_exit") else params[0][0]
            # a lone context of that type stays as written: the same code in each form
            if len(params) > 1 or first != params[0][0]:
                self.replace(toks[open_ + 1], toks[close - 1], f"{first} {ctx}")
            reads = param_reads(k, name, ctx, params, line)
            if reads:
                self.edits.append((toks[body].end, toks[body].end, " " + reads))

    def checksum_updates(self, body: int, end: int, ctx: str) -> None:
        """``incr_cksum_l3(off, old, new)``/``incr_cksum_l4(...)`` (bcc/proto.h) act on the
        program's packet, its context ``ctx``."""
        toks = self.tokens
        for j in range(body, end):
            t = toks[j]
            if t.text in ("incr_cksum_l3", "incr_cksum_l4") and toks[j + 1].text == "(":
                if not ctx:
                    raise DialectError(f"{t.text}() in a program without a context parameter",
                                       self.line(t))
                self.replace(t, toks[j + 1], f"__pybpf_{t.text}({ctx}, ")

    def usdt_reads(self, fname: str, body: int, end: int) -> None:
        """``bpf_usdt_readarg(N, ctx, &v)`` -> the probe's reader of argument N for function
        ``fname`` (``_bpf_readarg_<fname>_<N>``, from the USDT context's ``get_text()``);
        ``bpf_usdt_readarg_p(N, ctx, buf, len)`` reads ``len`` user bytes at the address
        argument N holds."""
        toks = self.tokens
        j = body
        while j < end:
            t = toks[j]
            if t.text not in _USDT_READS or toks[j + 1].text != "(":
                j += 1
                continue
            close = self.closing(j + 1)
            args = [span(self.text, toks, r) for r in split_args(toks, j + 1, close)]
            want = 3 if t.text == "bpf_usdt_readarg" else 4
            if len(args) != want or not args[0].isdigit():
                raise DialectError(f"{t.text}() takes {want} arguments, the first an argument "
                                   "number (1-based literal)", self.line(t))
            reader = f"_bpf_readarg_{fname}_{args[0]}"
            if want == 3:
                new = f"{reader}({args[1]}, {args[2]}, sizeof(*({args[2]})))"
            else:
                new = (f"({{ u64 ____addr = 0; {reader}({args[1]}, &____addr, "
                       f"sizeof(____addr)); bpf_probe_read_user({args[2]}, {args[3]}, "
                       f"(void *)____addr); }})")
            self.replace(t, toks[close], new)
            j = close + 1

    def syscall_tracepoint_body(self, fn: Function, k: Kind, body: int, end: int,
                                ctx: str) -> None:
        """A kprobe run on a syscall tracepoint (no kprobes): the context is the tracepoint's
        record, so register reads other than the return value of an exit cannot be kept."""
        toks = self.tokens
        for j in range(body, end):
            t = toks[j]
            if t.kind != "id":
                continue
            if t.text.startswith("PT_REGS_"):
                if k.args == "sys_exit" and t.text == "PT_REGS_RC" and j + 3 < end \
                        and toks[j + 2].text == ctx and toks[j + 3].text == ")":
                    self.replace(t, toks[j + 3],
                                 f"((struct trace_event_raw_sys_exit *){ctx})->ret")
                    continue
                raise FallbackError(
                    f"function {fn.name} reads registers ({t.text}) but runs on the "
                    f"{k.section.split('/', 1)[1]} tracepoint because this kernel has no "
                    "kprobes: declare the syscall's arguments as parameters after the "
                    "context, or use TRACEPOINT_PROBE(syscalls, ...)", self.line(t))
            if t.text == ctx and j + 1 < end and toks[j + 1].text == "->":
                raise FallbackError(
                    f"function {fn.name} reads its context's fields ({ctx}->...) but runs on "
                    f"the {k.section.split('/', 1)[1]} tracepoint because this kernel has no "
                    "kprobes; use TRACEPOINT_PROBE(syscalls, ...)", self.line(t))

    def result(self) -> tuple[str, list[int]]:
        out, pos = [], 0
        for start, end, new in sorted(self.edits, key=lambda e: (e[0], e[1])):
            if start < pos:
                raise AssertionError("overlapping rewrites")
            out.append(self.text[pos:start])
            out.append(new)
            pos = end
        out.append(self.text[pos:])
        body = "".join(out)
        if not body.endswith("\n"):
            body += "\n"
        return body, []


def translate(text: str, cflags: Sequence[str] = (), *,
              kind_of: Mapping[str, str] = {}) -> Translation:
    """Translate BCC C ``text`` (see the module's docstring). ``kind_of`` maps a function's
    name to how the Python side loads it when that changes its code: ``"kprobe"``,
    ``"tracepoint:<cat>/<event>"``, ``"xdp"``..., or ``"syscall_tracepoint:<name>"`` /
    ``"syscall_exit_tracepoint:<name>"`` for a kprobe run on the syscall's tracepoint.
    Raises :class:`DialectError` naming what it cannot translate."""
    if "#" in text:
        text = resolve_conditionals(text, lambda probe: live_regions(probe, cflags))
    tr = _Translator(text, kind_of)
    tr.run()
    tr.check_calls()
    tr.printk_formats()
    body, _ = tr.result()
    events: dict[str, str] = {}
    prelude_lines = len(tr.prelude)
    body = rewrite_methods(body, tr.tables, events)
    suffix: tuple[str, ...] = ()
    if 'SEC("license")' not in text and "_license" not in text:
        suffix = LICENSE_SUFFIX
    source = "".join(p + "\n" for p in tr.prelude) + body + "".join(s + "\n" for s in suffix)
    user_lines = body.count("\n")
    line_map = [0] * prelude_lines + list(range(1, user_lines + 1)) + [0] * len(suffix)
    contexts = {f.name for f in tr.functions.values()
                if f.section.split("/")[0] in TRACING_SECTIONS and f.params}
    if contexts or "bpf_get_current_task" in text or "bcc/proto.h" in text:
        try:
            source = rewrite_probe_reads(source, cflags,
                                         set(tr.tables) | set(tr.functions), contexts)
        except DialectError as e:
            line = line_map[e.line - 1] if 0 < e.line <= len(line_map) else 0
            raise DialectError(e.reason, line) from None
    return Translation(source, tr.functions, tr.tables, events, line_map, tr.tracepoints)
