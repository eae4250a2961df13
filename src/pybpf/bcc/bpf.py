"""BCC's ``BPF`` class on pybpf: BCC C translated (``dialect``), compiled and cached (``build``),
loaded by pybpf's ELF loader, attached through ``pybpf.links``, read through ``pybpf.events``.

The program is compiled and its maps created at construction (C errors surface there, as in
BCC); functions load on demand (``load_func``, ``attach_*``). A function needed in another
form than it was translated for (a kprobe on a syscall that falls back to the syscall's
tracepoint on a kernel without kprobes) is translated again: if only its ELF section changes,
the compiled object serves as it is, else the new translation is compiled and loaded with the
same maps.

What the Python side uses of a translation, and the object compiled from it, are cached by
the translation's inputs (``<pybpf cache>/bcc/translations``, marshal'd: read without
importing a parser): a second run of a script imports neither the translator nor the
toolchain and runs no clang.
"""
from __future__ import annotations

import atexit
import errno
import functools
import marshal
import os
import re
import sys
import weakref
import zlib
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, NamedTuple, Optional, Union

from .. import __version__, cache, features
from .._record import field, record
from ..errors import BPFError, CompileError, UnsupportedFeatureError, UsageError
from ..sys.host import SYSCALL_PREFIXES, VMLINUX_BTF, kernel_identity
from ..sys.uapi import AttachType, ProgType
from .introspect import IntrospectionMixin, resolve_module

if TYPE_CHECKING:
    from ..elf import Collection
    from ..elf.loader import ObjectProgram
    from ..elf.spec import ProgramSpec
    from .dialect import Translation
    from .table import TableBase

BPFProgType = ProgType
BPFAttachType = AttachType

StrLike = Union[str, bytes]

_SYSCALL_FN = re.compile(
    r"^(?:__x64_|__ia32_|__arm64_|__s390x_|__s390_|__riscv_|__se_|__do_)?(?:sys|compat_sys)_"
    r"(\w+)$")
"""A syscall's entry function (``__x64_sys_execve``) and the syscall's name."""

_SECTIONS = re.compile(r'SEC\("[^"]*"\)')
_SPACED_PUNCT = re.compile(r"[ \t]*([^\w\s])[ \t]*")


def _code(source: str) -> str:
    """C text without its sections and with the blanks around punctuation dropped: two
    translations equal here compile to the same code in other sections."""
    return _SPACED_PUNCT.sub(r"\1", _SECTIONS.sub('SEC("")', source))


def _skip_unused_data(spec: Any) -> None:
    """Leave out the global data maps no code refers to: clang keeps a string literal's
    section (``.rodata.str1.1`` of ``char s[] = "..."``) after folding its loads into
    immediates, and BCC, which has no global data, makes no map for it."""
    from ..elf.spec import RefKind
    used = {r.target for f in spec.functions.values() for r in f.refs
            if r.kind in (RefKind.MAP_VALUE, RefKind.MAP_FD)}
    for ms in spec.maps.values():
        if ms.is_data and ms.section != ".kconfig" and ms.name not in used:
            ms.autocreate = False


_live: "weakref.WeakSet[BPF]" = weakref.WeakSet()
_NEVER = "never"  # the fallback's form for a syscall entry function no syscall table calls


def _get_num_open_probes() -> int:
    """BCC's count of the kprobes and uprobes every live ``BPF`` object holds open (what its
    probe quota, ``BPF.get_probe_limit()``, bounds)."""
    return sum(b.num_open_kprobes() + b.num_open_uprobes() for b in list(_live))


def _check_probe_quota(kind: str, new: int) -> None:
    """UsageError when ``new`` more probes would pass the quota, as BCC refuses them."""
    limit = BPF.get_probe_limit()
    if _get_num_open_probes() + new > limit:
        raise UsageError(f"attach_{kind}: {new} more probes would exceed the quota of open "
                         f"probes ({limit}; BCC_PROBE_LIMIT sets it)")


def cleanup_all() -> None:
    """Detach and close what every live ``BPF`` object holds (at exit, on SIGTERM)."""
    for b in list(_live):
        b.cleanup()


@functools.lru_cache(maxsize=None)
def _cleanup_at_exit() -> None:
    """Register ``cleanup_all`` at exit once kernel objects exist: after the fd finalizers'
    own exit hook, so (exit hooks run last registered first) it runs before they close the
    fds one by one."""
    atexit.register(cleanup_all)


@functools.lru_cache(maxsize=None)
def _syscall_functions(prefix: str) -> frozenset[str]:
    """The names ``[prefix]sys_*`` in vmlinux BTF's strings (empty without BTF); found once per
    kernel, then read from the cache."""
    name = f"bcc/syscall-functions/{zlib.crc32(kernel_identity().encode()):08x}"
    cached = cache.read(name)
    if cached is not None:
        lines = cached.decode().split("\n")
        if lines[0] == kernel_identity() + "\1" + prefix:
            return frozenset(lines[1:])
    try:
        with open(VMLINUX_BTF, "rb") as f:
            strings = f.read()
    except OSError:
        return frozenset()
    names = set()
    for start in {b"\0sys_", b"\0" + prefix.encode() + b"sys_"}:
        at = strings.find(start)
        while at >= 0:
            end = strings.index(b"\0", at + 1)
            names.add(strings[at + 1:end].decode())
            at = strings.find(start, end)
    found = frozenset(names)
    cache.write(name, "\n".join([kernel_identity() + "\1" + prefix, *sorted(found)]).encode())
    return found


def _close_all(objs: list[Any]) -> None:
    """Close ``objs`` (attachments), each in a thread of its own when there are several:
    detaching a probe waits in the kernel for an RCU grace period (tens of ms each), and
    closes waiting together share them. The first error is raised once all are closed."""
    errors: list[BaseException] = []

    def close(obj: Any) -> None:
        try:
            obj.close()
        except BaseException as e:
            errors.append(e)
    threads = []
    if len(objs) > 1:
        import threading
        for obj in objs:
            t = threading.Thread(target=close, args=(obj,), name="pybpf-detach")
            try:
                t.start()
            except RuntimeError:  # no new threads (interpreter shutting down): in turn
                close(obj)
                continue
            threads.append(t)
    else:
        for obj in objs:
            close(obj)
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _str(s: Optional[StrLike]) -> str:
    return s.decode() if isinstance(s, (bytes, bytearray)) else (s or "")


class _Function(NamedTuple):
    """A function of the program as the Python side sees it."""

    name: str
    auto_attach: Optional[tuple[str, str]]


@record
class _Translated:
    """What the Python side uses of one translation of the program, and the object compiled
    from it once built; ``full``: the translator's own result, when translated in this
    process (a cached one has none)."""

    source: str
    functions: dict[str, _Function]
    tables: list[str]
    event_types: dict[str, str]
    obj: str = ""
    compiler: list[Any] = field(default_factory=list)  # [path, size, mtime_ns] it ran with
    full: Optional["Translation"] = None

    def record(self) -> dict[str, Any]:
        return {"source": self.source, "tables": self.tables, "event_types": self.event_types,
                "functions": {n: f.auto_attach for n, f in self.functions.items()},
                "obj": self.obj, "compiler": self.compiler}


_TRANSLATIONS = "bcc/translations"
_FORMAT = 1  # of the cached records


def _file_stamp(path: str) -> list[Any]:
    st = os.stat(path)
    return [path, st.st_size, st.st_mtime_ns]


@functools.lru_cache(maxsize=None)
def _front_end_stamp() -> str:
    """Sizes and modification times of this front end's code and headers (the translator,
    the toolchain, the runtime headers): changes whenever they do."""
    found, dirs = [], [os.path.dirname(os.path.abspath(__file__))]
    while dirs:
        with os.scandir(dirs.pop()) as entries:
            for e in entries:
                if e.is_dir():
                    if not e.name.startswith((".", "__")):
                        dirs.append(e.path)
                elif e.name.endswith((".py", ".h")):
                    st = e.stat()
                    found.append(f"{e.path}:{st.st_size}:{st.st_mtime_ns}")
    return "\n".join(sorted(found))


def _inputs(text: str, cflags: list[str], kind_of: Mapping[str, str]) -> str:
    """Everything a translation and its object depend on: the program, its flags and load
    forms, the kernel, the compiler's choice, this front end."""
    return repr([_FORMAT, __version__, sys.version, text, cflags, sorted(kind_of.items()),
                 kernel_identity(), os.environ.get("PYBPF_CC", ""), os.environ.get("PATH", ""),
                 _front_end_stamp()])


def _cache_name(inputs: str) -> str:
    data = inputs.encode()
    return f"{_TRANSLATIONS}/{zlib.crc32(data):08x}{zlib.adler32(data):08x}"


def _cached_translation(inputs: str) -> Optional[_Translated]:
    """The cached translation of ``inputs`` (its object only while the file and the compiler
    it was made with are unchanged), or None."""
    raw = cache.read(_cache_name(inputs))
    if raw is None:
        return None
    try:
        rec = marshal.loads(raw)
        if rec["inputs"] != inputs:
            return None  # another program with the same name's digest
        t = _Translated(rec["source"], {n: _Function(n, tuple(a) if a else None)
                                        for n, a in rec["functions"].items()},
                        rec["tables"], rec["event_types"], rec["obj"], rec["compiler"])
    except (ValueError, KeyError, TypeError, EOFError):
        return None
    try:
        if t.obj and (not os.path.exists(t.obj) or _file_stamp(t.compiler[0]) != t.compiler):
            t.obj = ""
    except (OSError, IndexError):
        t.obj = ""
    return t


def _store_translation(inputs: str, t: _Translated) -> None:
    cache.write(_cache_name(inputs), marshal.dumps({"inputs": inputs, **t.record()}))


class _Built(NamedTuple):
    """One translation of the program, compiled and loaded (maps; programs on demand)."""

    kind_of: dict[str, str]
    translation: _Translated
    collection: "Collection"


class BPFFunction:
    """A loaded function (BCC's ``BPF.Function``): ``name`` (bytes), ``fd``, and ``sock`` once
    ``attach_raw_socket`` bound it to a socket."""

    def __init__(self, bpf: "BPF", name: str, program: "ObjectProgram") -> None:
        self.bpf = bpf
        self.name = name.encode()
        self.program = program
        self.fd = program.fd
        self.sock: Optional[int] = None
        self._socket: Any = None

    def __repr__(self) -> str:
        return f"<Function {self.name.decode()} fd {self.fd}>"


class BPF(IntrospectionMixin):
    """A BCC program: ``BPF(text=...)`` or ``BPF(src_file=...)``; ``b["table"]``,
    ``load_func``, ``attach_*``/``detach_*``, perf/ring buffer polling, trace_pipe reading."""

    # program types (BPF_PROG_TYPE_*), as BCC's class attributes
    SOCKET_FILTER = int(ProgType.SOCKET_FILTER)
    KPROBE = int(ProgType.KPROBE)
    SCHED_CLS = int(ProgType.SCHED_CLS)
    SCHED_ACT = int(ProgType.SCHED_ACT)
    TRACEPOINT = int(ProgType.TRACEPOINT)
    XDP = int(ProgType.XDP)
    PERF_EVENT = int(ProgType.PERF_EVENT)
    CGROUP_SKB = int(ProgType.CGROUP_SKB)
    CGROUP_SOCK = int(ProgType.CGROUP_SOCK)
    LWT_IN = int(ProgType.LWT_IN)
    LWT_OUT = int(ProgType.LWT_OUT)
    LWT_XMIT = int(ProgType.LWT_XMIT)
    SOCK_OPS = int(ProgType.SOCK_OPS)
    SK_SKB = int(ProgType.SK_SKB)
    CGROUP_DEVICE = int(ProgType.CGROUP_DEVICE)
    SK_MSG = int(ProgType.SK_MSG)
    RAW_TRACEPOINT = int(ProgType.RAW_TRACEPOINT)
    CGROUP_SOCK_ADDR = int(ProgType.CGROUP_SOCK_ADDR)
    CGROUP_SOCKOPT = int(ProgType.CGROUP_SOCKOPT)
    TRACING = int(ProgType.TRACING)
    LSM = int(ProgType.LSM)

    # XDP attach flags (XDP_FLAGS_*)
    XDP_FLAGS_UPDATE_IF_NOEXIST = 1 << 0
    XDP_FLAGS_SKB_MODE = 1 << 1
    XDP_FLAGS_DRV_MODE = 1 << 2
    XDP_FLAGS_HW_MODE = 1 << 3
    XDP_FLAGS_REPLACE = 1 << 4

    Function = BPFFunction

    def __init__(self, src_file: StrLike = b"", hdr_file: StrLike = b"",
                 text: Optional[StrLike] = None, debug: int = 0, cflags: Iterable[str] = (),
                 usdt_contexts: Iterable[Any] = (), allow_rlimit: bool = True,
                 device: Any = None, attach_usdt_ignore_pid: bool = False) -> None:
        if device is not None:
            raise UsageError(f"BPF(device={device!r}): offloading programs to a device is not "
                             "supported by pybpf's BCC front end")
        self.debug = debug
        self.funcs: dict[str, BPFFunction] = {}
        self.tables: dict[str, "TableBase"] = {}
        # attachments by event as BCC keys them: {event: {function: link}}
        self.kprobe_fds: dict[str, dict[str, Any]] = {}
        self.uprobe_fds: dict[str, dict[str, Any]] = {}
        self.tracepoint_fds: dict[str, dict[str, Any]] = {}
        self.raw_tracepoint_fds: dict[str, Any] = {}
        self.kfunc_fds: dict[str, Any] = {}
        self.lsm_fds: dict[str, Any] = {}
        self.perf_event_fds: dict[tuple[str, int, int], Any] = {}
        self._others: list[Any] = []      # attachments without a BCC key (USDT, raw sockets)
        self._perf_buffers: Any = None    # events.Poller of the open perf buffers
        self._ring_buffers: Any = None    # events.Poller of the open ring buffers
        self._trace: Any = None           # events.TracePipe
        self._trace_lines: list[str] = []
        self._built: list[_Built] = []
        self._loaded: list[BPFFunction] = []
        self._kind_of: dict[str, str] = {}
        self._closed = False
        source = _str(text)
        self._name = _str(src_file) or "<text>"  # names the program in compile errors
        if src_file:
            source = self._read_source(_str(src_file))
        if hdr_file:  # (BCC uses it only for its retired B language) first, with line
            # markers: compile errors name the header's lines or the program's
            from .containers import _c_string
            hdr = _str(hdr_file)
            source = (f"#line 1 {_c_string(hdr)}\n{self._read_source(hdr)}\n"
                      f"#line 1 {_c_string(self._name)}\n{source}")
        if text is None and not src_file:  # text='' is an empty module (opensnoop's look-ups)
            raise UsageError("BPF: give the program as text= or src_file=")
        self._usdt = list(usdt_contexts)
        self._usdt_ignore_pid = attach_usdt_ignore_pid
        if self._usdt:
            from .usdt import usdt_text
            source = usdt_text(self._usdt) + source
        self.text = source
        self.cflags = [_str(f) for f in cflags]
        if any(re.match(r"-D\s*BPF_LICENSE\b", f) for f in self.cflags):  # as BCC
            raise CompileError(f"Failed to compile BPF module {self._name}: BPF_LICENSE cannot "
                               "be specified through cflags (#define it in the program)")
        first = self._translate({})
        self._functions = first.functions
        self._table_defs = first.tables
        _live.add(self)
        auto = [f for f in first.functions.values() if f.auto_attach is not None]
        for f in auto:  # loads that need another form where the kernel lacks kprobes
            kind, target = f.auto_attach or ("", "")
            fallback = self._syscall_fallback(target, kind) \
                if kind in ("kprobe", "kretprobe") else None
            if fallback is not None and fallback[0] != _NEVER:
                self._kind_of[f.name] = fallback[0]
        try:
            self._build(first if not self._kind_of else None)
            _cleanup_at_exit()
            self._trace_autoload(auto)
            self._attach_usdt()
        except BaseException:
            self.cleanup()
            raise

    @staticmethod
    def _read_source(path: str) -> str:
        """The file at ``path``: as given, else next to the running script (BCC's look-up)."""
        candidates = [path]
        if not os.path.isabs(path) and sys.argv and sys.argv[0]:
            candidates.append(os.path.join(os.path.dirname(os.path.abspath(sys.argv[0])), path))
        for c in candidates:
            if os.path.exists(c):
                with open(c) as f:
                    return f.read()
        raise UsageError(f"BPF: source file {path!r} not found (looked in "
                         f"{', '.join(map(repr, candidates))})")

    # -- building and loading ------------------------------------------------------------------
    def _translate(self, kind_of: Mapping[str, str]) -> _Translated:
        """The program translated with load forms ``kind_of``: cached, or translated now."""
        inputs = _inputs(self.text, self.cflags, kind_of)
        t = _cached_translation(inputs)
        if t is None:
            from .dialect import translate
            tr = translate(self.text, self.cflags, kind_of=kind_of)
            t = _Translated(tr.source, {n: _Function(n, f.auto_attach)
                                        for n, f in tr.functions.items()},
                            list(tr.tables), dict(tr.event_types), full=tr)
            _store_translation(inputs, t)
        return t

    def _compiled(self, t: _Translated, kind_of: Mapping[str, str]) -> str:
        """The object file of translation ``t`` (compiled now unless cached)."""
        if t.obj:
            return t.obj
        from .build import build
        from .toolchain import find_compiler
        if t.full is None:
            from .dialect import translate
            t.full = translate(self.text, self.cflags, kind_of=kind_of)
        t.obj = build(t.full, self.cflags, name=self._name)
        compiler = find_compiler().argv[0]
        t.compiler = _file_stamp(os.path.realpath(compiler))
        _store_translation(_inputs(self.text, self.cflags, kind_of), t)
        return t.obj

    def _build(self, translation: Optional[_Translated] = None) -> _Built:
        """Translate with the current load forms (unless given), compile, create the maps
        (the first build's maps are reused by later ones) and the BTF."""
        from ..elf import ObjectSpec, load
        kind_of = dict(self._kind_of)
        tr = translation or self._translate(kind_of)
        if self.debug & 0xC:  # DEBUG_PREPROCESSOR | DEBUG_SOURCE: the C clang compiles
            sys.stderr.write(tr.source)
        spec = ObjectSpec.from_file(self._compiled(tr, kind_of))
        for ps in spec.programs.values():
            ps.autoload = False
        _skip_unused_data(spec)
        from . import sharing
        if self._built:
            reuse = {n: m for n, m in self._built[0].collection.maps.items() if n in spec.maps}
        else:  # pinned tables, and those other BPF objects share (extern)
            reuse = sharing.prepare(spec)
        built = _Built(kind_of, tr, load(spec, maps=reuse))
        if not self._built:
            sharing.publish(self, built.collection)
        self._built.append(built)
        return built

    def _object_for(self, name: str) -> _Built:
        """The build whose code loads function ``name`` in its current form."""
        want = self._kind_of.get(name)
        for b in self._built:
            if b.kind_of.get(name) == want:
                return b
        assert want is not None  # the first build has every function in its default form
        tr = self._translate(dict(self._kind_of))
        code = _code(tr.source)
        for b in self._built:  # the same code in other sections: the program type differs
            if _code(b.translation.source) == code:
                b.kind_of[name] = want
                return b
        return self._build(tr)

    @property
    def _primary(self) -> _Built:
        self._check_open()
        return self._built[0]

    def _check_open(self) -> None:
        if self._closed:
            raise UsageError("BPF: this object was cleaned up (cleanup() or with-block end)")

    def load_func(self, func_name: StrLike, prog_type: int, device: Any = None,
                  attach_type: int = -1) -> BPFFunction:
        """Load function ``func_name`` as a ``prog_type`` program (BPF.KPROBE, BPF.XDP,
        ...); a function loads once per program type, later calls return it."""
        name = _str(func_name)
        fn = self.funcs.get(name)
        if fn is not None and fn.program.type == prog_type:
            return fn
        return self._load(name, ProgType(prog_type),
                          None if attach_type == -1 else AttachType(attach_type))

    def load_funcs(self, prog_type: int = KPROBE) -> list[BPFFunction]:
        """Load every function of the program (in the order defined) as a ``prog_type``
        program; their function objects."""
        return [self.load_func(name, prog_type) for name in self._functions]

    def _program_spec(self, name: str) -> tuple["_Built", "ProgramSpec"]:
        """The build holding function ``name`` in its current form, and its program."""
        if name not in self._functions:
            raise UsageError(f"BPF: no function {name!r} in the program; its functions: "
                             f"{', '.join(self._functions) or '(none)'}")
        built = self._object_for(name)
        ps = built.collection.spec.programs.get(name)
        if ps is None:
            raise UsageError(f"BPF: {name!r} is not a program of the compiled object (a static "
                             "or inlined function cannot be loaded on its own)")
        return built, ps

    def dump_func(self, func_name: StrLike) -> bytes:
        """The instructions function ``func_name`` compiled to, as BCC's ``dump_func``: its
        own code (no subprograms), its maps' 64-bit loads holding their fds."""
        from ..elf.loader import patch_map_ref
        from ..elf.spec import RefKind
        built, ps = self._program_spec(_str(func_name))
        code = bytearray(ps.function.code)
        maps = built.collection.maps
        for ref in ps.function.refs:
            if ref.kind in (RefKind.MAP_FD, RefKind.MAP_VALUE) and ref.target in maps:
                patch_map_ref(code, ref.insn, built.collection.spec.byte_order, ref.kind,
                              maps[ref.target].fd, ref.offset)
        return bytes(code)

    def disassemble_func(self, func_name: StrLike) -> str:
        """Function ``func_name``'s instructions (``dump_func``) in BCC's notation."""
        from .disassembler import disassemble_prog
        return disassemble_prog(func_name, self.dump_func(func_name))

    def decode_table(self, table_name: StrLike, sizeinfo: bool = False) -> str:
        """Table ``table_name``'s type, key and value as C declarations, as BCC prints them."""
        from .disassembler import decode_map
        table = self[table_name]
        return decode_map(table_name, table, table.map_type, sizeinfo=sizeinfo)

    def _load(self, name: str, prog_type: ProgType, attach_type: Optional[AttachType] = None,
              section: str = "") -> BPFFunction:
        self._check_open()
        from ..elf.sections import Section, SectionDef, section as section_of
        built, ps = self._program_spec(name)
        if section:
            ps.section = section_of(section)
        elif ps.type != prog_type or (attach_type is not None
                                           and ps.attach_type != attach_type):
            ps.section = Section(ps.section.name, SectionDef(ps.section.name, prog_type,
                                                             attach_type), "")
        log_level = 2 if self.debug & 0x2 else 0  # DEBUG_BPF: the verifier's log
        prog = built.collection.load_program(name, log_level)
        fn = BPFFunction(self, name, prog)
        self.funcs[name] = fn  # the latest form; every form stays open until cleanup
        self._loaded.append(fn)
        return fn

    # -- kprobes -------------------------------------------------------------------------------
    @staticmethod
    def get_syscall_prefix() -> bytes:
        """The prefix of syscall entry functions on this kernel (``b"__x64_sys_"``)."""
        return BPF.get_syscall_fnname("bpf")[:-len("bpf")]

    @staticmethod
    def get_syscall_fnname(name: StrLike) -> bytes:
        """The kernel function of syscall ``name`` (``execve`` -> ``b"__x64_sys_execve"``):
        the arch-prefixed wrapper if the kernel has it. Looked up among the syscall functions
        of vmlinux BTF's string table (every function's name is there; kept in the cache per
        kernel), else in /proc/kallsyms."""
        n = _str(name)
        prefix = SYSCALL_PREFIXES.get(os.uname().machine, "")
        known = _syscall_functions(prefix)
        for candidate in (f"{prefix}sys_{n}", f"sys_{n}"):
            if candidate in known:
                return candidate.encode()
        from ..links.kprobe import syscall_function
        return syscall_function(n).encode()  # kallsyms: functions BTF lacks, or the error

    @staticmethod
    def _syscall_fallback(event: str, kind: str) -> Optional[tuple[str, str]]:
        """On a kernel without kprobes, (load form, tracepoint) replacing a kprobe on syscall
        entry function ``event``; None where kprobes exist; (_NEVER, tracepoint) for an entry
        function no syscall table calls (the kernel made no tracepoint for it: a kprobe
        there would never fire). UnsupportedFeatureError for any other function, with the
        probe's reason."""
        support = features.kprobes()
        if support:
            return None
        m = _SYSCALL_FN.match(event)
        if m is None:
            raise UnsupportedFeatureError(
                f"{kind} {event}: {support.reason}. pybpf replaces kprobes on syscall entry "
                f"functions (__x64_sys_<name>) with the syscalls/sys_enter_<name> tracepoint, "
                f"but {event!r} is not one")
        from ..links.tracing import tracefs
        exit_ = kind == "kretprobe"
        tp = f"sys_{'exit' if exit_ else 'enter'}_{m[1]}"
        events = os.path.join(tracefs(), "events", "syscalls")
        if not os.path.isdir(os.path.join(events, tp)):
            if os.path.isdir(os.path.join(events, "sys_enter_getpid")) and \
                    BPF.ksymname(event) != -1:
                return _NEVER, tp
            raise UnsupportedFeatureError(
                f"{kind} {event}: {support.reason}; and there is no syscalls/{tp} tracepoint to "
                f"use instead (CONFIG_FTRACE_SYSCALLS)")
        form = f"syscall{'_exit' if exit_ else ''}_tracepoint:{m[1]}"
        return form, tp

    def _attach_probe(self, kind: str, event: str, fn_name: str, event_off: int = 0,
                      maxactive: int = 0) -> None:
        retprobe = kind == "kretprobe"
        fallback = self._syscall_fallback(event, kind)
        key = f"{'r' if retprobe else 'p'}_{re.sub(r'[+.]', '_', event)}"
        if key in self.kprobe_fds and fn_name in self.kprobe_fds[key]:
            raise UsageError(f"attach_{kind}: {fn_name!r} is already attached to {event}")
        if fallback is not None and fallback[0] == _NEVER:
            from ..links.link import LinkGroup
            sys.stderr.write(f"pybpf.bcc: this kernel has no kprobes, and no syscall table "
                             f"calls {event} (no syscalls/{fallback[1]} tracepoint): {kind} "
                             f"{event} would never fire; {fn_name} is not attached\n")
            link: Any = LinkGroup([], f"{kind} {event} (never fires)")
        elif fallback is not None:
            form, tp = fallback
            if event_off:
                raise UnsupportedFeatureError(
                    f"attach_{kind}: {event}+{event_off:#x}: {features.kprobes().reason}; the "
                    f"syscall tracepoint that stands in for {event} has no offsets")
            fn = self.funcs.get(fn_name)
            if fn is None or self._kind_of.get(fn_name) != form:
                previous = self._kind_of.get(fn_name)
                self._kind_of[fn_name] = form
                try:
                    fn = self._load(fn_name, ProgType.TRACEPOINT,
                                    section=f"tracepoint/syscalls/{tp}")
                except BaseException:  # the function keeps the form it had
                    if previous is None:
                        del self._kind_of[fn_name]
                    else:
                        self._kind_of[fn_name] = previous
                    raise
            from ..links import attach_tracepoint
            link = attach_tracepoint(fn.program, "syscalls", tp)
            sys.stderr.write(f"pybpf.bcc: this kernel has no kprobes: {kind} {event} runs "
                             f"{fn_name} on tracepoint syscalls/{tp} instead\n")
        else:
            fn = self.load_func(fn_name, self.KPROBE)
            from ..links import attach_kprobe
            try:
                link = attach_kprobe(fn.program, event, event_off, retprobe=retprobe,
                                     maxactive=maxactive)
            except BPFError as e:  # no such probe point in this kernel: it lacks the hook
                if e.errno not in (errno.ENOENT, errno.EINVAL) or \
                        self.get_kprobe_functions(re.escape(event).encode()):
                    raise
                raise UnsupportedFeatureError(f"attach_{kind}: {e}") from None
        self.kprobe_fds.setdefault(key, {})[fn_name] = link

    def _matching_functions(self, event_re: str, kind: str) -> list[str]:
        """Kernel functions matching ``event_re`` that a probe can attach to; without kprobes,
        the syscall entry functions whose tracepoints stand in for them."""
        pattern = re.compile(event_re)
        if features.kprobes():
            found = sorted(f.decode() for f in self.get_kprobe_functions(event_re.encode()))
        else:
            prefix = self.get_syscall_prefix().decode()
            found = [prefix + tp.decode().split(":sys_enter_", 1)[1]
                     for tp in self.get_tracepoints(b"syscalls:sys_enter_")]
            found = [f for f in found if pattern.match(f)]
            from ..symbols import kernel_symbols
            if not found and any(pattern.fullmatch(n) for n in kernel_symbols().names):
                raise UnsupportedFeatureError(
                    f"attach_{kind}(event_re={event_re!r}): {features.kprobes().reason}; "
                    "no syscall entry function, whose tracepoint would stand in, matches")
        if not found:
            raise UsageError(f"attach_{kind}: no kernel function matches {event_re!r}")
        _check_probe_quota(kind, len(found))
        return found

    def attach_kprobe(self, event: StrLike = b"", event_off: int = 0, fn_name: StrLike = b"",
                      event_re: StrLike = b"", maxactive: int = 0) -> "BPF":
        """Run ``fn_name`` when kernel function ``event`` (or each matching ``event_re``) is
        entered. Without kprobes, a syscall entry function's ``syscalls/sys_enter_<name>``
        tracepoint is used instead (said on stderr)."""
        if maxactive:
            raise UsageError(f"attach_kprobe: maxactive={maxactive} applies to return probes "
                             "only (attach_kretprobe)")
        fn, ev = _str(fn_name), _str(event)
        if event_re:
            for f in self._matching_functions(_str(event_re), "kprobe"):
                self._attach_probe("kprobe", f, fn)
        else:
            self._attach_probe("kprobe", ev, fn, event_off)
        return self

    def attach_kretprobe(self, event: StrLike = b"", fn_name: StrLike = b"",
                         event_re: StrLike = b"", maxactive: int = 0) -> "BPF":
        """Run ``fn_name`` when kernel function ``event`` returns (fallback: sys_exit_*).
        ``maxactive``: how many calls may be pending at once before returns go unseen (a
        ``kprobe_events`` probe; the fallback's tracepoint sees every return)."""
        fn, ev = _str(fn_name), _str(event)
        if event_re:
            for f in self._matching_functions(_str(event_re), "kretprobe"):
                self._attach_probe("kretprobe", f, fn, maxactive=maxactive)
        else:
            self._attach_probe("kretprobe", ev, fn, maxactive=maxactive)
        return self

    def _detach(self, table: dict[str, dict[str, Any]], key: str, fn_name: StrLike,
                what: str) -> None:
        links = table.get(key)
        if not links:
            raise UsageError(f"detach: {what} is not attached")
        names = [_str(fn_name)] if fn_name else list(links)
        for n in names:
            if n not in links:
                raise UsageError(f"detach: {n!r} is not attached to {what}")
            links.pop(n).close()
        if not links:
            del table[key]

    def detach_kprobe(self, event: StrLike, fn_name: StrLike = b"") -> None:
        ev = _str(event)
        self._detach(self.kprobe_fds, "p_" + re.sub(r"[+.]", "_", ev), fn_name, f"kprobe {ev}")

    def detach_kretprobe(self, event: StrLike, fn_name: StrLike = b"") -> None:
        ev = _str(event)
        self._detach(self.kprobe_fds, "r_" + re.sub(r"[+.]", "_", ev), fn_name,
                     f"kretprobe {ev}")

    # -- tracepoints ---------------------------------------------------------------------------
    def attach_tracepoint(self, tp: StrLike = b"", tp_re: StrLike = b"",
                          fn_name: StrLike = b"") -> "BPF":
        """Run ``fn_name`` on tracepoint ``tp`` (``"category:event"``) or on each tracepoint
        whose ``category:event`` matches ``tp_re``."""
        from ..links import attach_tracepoint
        fn_s = _str(fn_name)
        if tp_re:
            targets = self._tracepoints_matching(_str(tp_re))
        else:
            targets = [_str(tp)]
        fn = self.load_func(fn_s, self.TRACEPOINT)
        for t in targets:
            category, sep, event = t.partition(":")
            if not sep:
                raise UsageError(f"attach_tracepoint: {t!r} is not 'category:event'")
            if fn_s in self.tracepoint_fds.get(t, {}):
                raise UsageError(f"attach_tracepoint: {fn_s!r} is already attached to {t}")
            link = attach_tracepoint(fn.program, category, event)
            self.tracepoint_fds.setdefault(t, {})[fn_s] = link
        return self

    def _tracepoints_matching(self, tp_re: str) -> list[str]:
        found = [t.decode() for t in self.get_tracepoints(tp_re.encode())]
        if not found:
            raise UsageError(f"attach_tracepoint: no tracepoint matches {tp_re!r}")
        return found

    def detach_tracepoint(self, tp: StrLike = b"", fn_name: StrLike = b"") -> None:
        t = _str(tp)
        self._detach(self.tracepoint_fds, t, fn_name, f"tracepoint {t}")

    def attach_raw_tracepoint(self, tp: StrLike = b"", fn_name: StrLike = b"") -> "BPF":
        """Run ``fn_name`` on raw tracepoint ``tp`` (``sched_switch``)."""
        from ..links import attach_raw_tracepoint
        t = _str(tp)
        if t in self.raw_tracepoint_fds:
            raise UsageError(f"attach_raw_tracepoint: raw tracepoint {t} is already attached")
        fn = self.load_func(fn_name, self.RAW_TRACEPOINT)
        try:
            self.raw_tracepoint_fds[t] = attach_raw_tracepoint(fn.program, t)
        except BPFError as e:  # this kernel has no such tracepoint (another arch's, ...)
            if e.errno != errno.ENOENT:
                raise
            raise UnsupportedFeatureError(f"attach_raw_tracepoint: {e}") from None
        return self

    def detach_raw_tracepoint(self, tp: StrLike = b"") -> None:
        t = _str(tp)
        link = self.raw_tracepoint_fds.pop(t, None)
        if link is None:
            raise UsageError(f"detach_raw_tracepoint: raw tracepoint {t} is not attached")
        link.close()

    # -- uprobes -------------------------------------------------------------------------------
    def _uprobe_sites(self, name: StrLike, sym: StrLike, sym_re: StrLike,
                      addr: Optional[int], kind: str, pid: int
                      ) -> list[tuple[str, str, int]]:
        """(binary path, symbol, address) of each place to probe."""
        path = resolve_module(name, max(pid, 0))
        if sym_re:
            found = self.get_user_functions_and_addresses(path, _str(sym_re).encode())
            if not found:
                raise UsageError(f"attach_{kind}: no function of {path} matches "
                                 f"{_str(sym_re)!r}")
            return [(path, f.decode(), 0) for f, _ in found]
        if not sym and addr is None:
            raise UsageError(f"attach_{kind}: give sym=, sym_re= or addr=")
        return [(path, _str(sym), addr or 0)]

    def _attach_uprobe(self, kind: str, name: StrLike, sym: StrLike, sym_re: StrLike,
                       addr: Optional[int], fn_name: StrLike, pid: int, sym_off: int) -> None:
        from ..links import attach_uprobe
        fn_s = _str(fn_name)
        fn = self.load_func(fn_s, self.KPROBE)
        sites = self._uprobe_sites(name, sym, sym_re, addr, kind, pid)
        _check_probe_quota(kind, len(sites))
        for path, symbol, address in sites:
            if symbol:
                where, offset = symbol, sym_off
            else:
                where, offset = f"{address:#x}", self._file_offset(path, address)
            key = f"{'r' if kind == 'uretprobe' else 'p'}_{path}_{where}"
            if fn_s in self.uprobe_fds.get(key, {}):
                raise UsageError(f"attach_{kind}: {fn_s!r} is already attached to "
                                 f"{path}:{where}")
            link = attach_uprobe(fn.program, path, symbol, offset, pid=pid,
                                 retprobe=kind == "uretprobe")
            self.uprobe_fds.setdefault(key, {})[fn_s] = link

    @staticmethod
    def _file_offset(path: str, address: int) -> int:
        from ..links.uprobe import elf_file
        return elf_file(path).file_offset(address)

    def attach_uprobe(self, name: StrLike = b"", sym: StrLike = b"", sym_re: StrLike = b"",
                      addr: Optional[int] = None, fn_name: StrLike = b"", pid: int = -1,
                      sym_off: int = 0) -> "BPF":
        """Run ``fn_name`` at function ``sym`` (+ ``sym_off``) of binary or library ``name``,
        at each function matching ``sym_re``, or at virtual address ``addr``; ``pid`` -1:
        every process."""
        self._attach_uprobe("uprobe", name, sym, sym_re, addr, fn_name, pid, sym_off)
        return self

    def attach_uretprobe(self, name: StrLike = b"", sym: StrLike = b"", sym_re: StrLike = b"",
                         addr: Optional[int] = None, fn_name: StrLike = b"",
                         pid: int = -1) -> "BPF":
        """Run ``fn_name`` when function ``sym`` of ``name`` (or each matching ``sym_re``)
        returns."""
        self._attach_uprobe("uretprobe", name, sym, sym_re, addr, fn_name, pid, 0)
        return self

    def _detach_uprobe(self, kind: str, name: StrLike, sym: StrLike, addr: Optional[int],
                       fn_name: StrLike, pid: int) -> None:
        path = resolve_module(name, max(pid, 0))  # as attach found it (the process's library)
        where = _str(sym) or f"{addr or 0:#x}"
        key = f"{'r' if kind == 'uretprobe' else 'p'}_{path}_{where}"
        self._detach(self.uprobe_fds, key, fn_name, f"{kind} {path}:{where}")

    def detach_uprobe(self, name: StrLike = b"", sym: StrLike = b"", addr: Optional[int] = None,
                      fn_name: StrLike = b"", pid: int = -1) -> None:
        self._detach_uprobe("uprobe", name, sym, addr, fn_name, pid)

    def detach_uretprobe(self, name: StrLike = b"", sym: StrLike = b"",
                         addr: Optional[int] = None, fn_name: StrLike = b"",
                         pid: int = -1) -> None:
        self._detach_uprobe("uretprobe", name, sym, addr, fn_name, pid)

    # -- perf events ---------------------------------------------------------------------------
    def attach_perf_event(self, ev_type: int = -1, ev_config: int = -1, fn_name: StrLike = b"",
                          sample_period: int = 0, sample_freq: int = 0, pid: int = -1,
                          cpu: int = -1, group_fd: int = -1) -> "BPF":
        """Run ``fn_name`` (a perf_event program) on samples of perf event ``ev_type``/
        ``ev_config`` (``PerfType``, ``PerfSWConfig``...): on every online CPU, or ``cpu``,
        for every process or ``pid``."""
        from ..links import attach_perf_event_program
        fn_s = _str(fn_name)
        key = (fn_s, ev_type, ev_config)
        if key in self.perf_event_fds:
            raise UsageError(f"attach_perf_event: {fn_s!r} is already attached to perf event "
                             f"type {ev_type} config {ev_config}")
        fn = self.load_func(fn_s, self.PERF_EVENT)
        cpus = [cpu] if cpu >= 0 else None
        self.perf_event_fds[key] = attach_perf_event_program(
            fn.program, (ev_type, ev_config), sample_period=sample_period,
            sample_freq=sample_freq, cpus=None if pid >= 0 else cpus, pid=pid)
        return self

    def attach_perf_event_raw(self, attr: Any = -1, fn_name: StrLike = b"", pid: int = -1,
                              cpu: int = -1, group_fd: int = -1) -> "BPF":
        """Run ``fn_name`` on samples of the perf event ``attr`` describes (a
        ``Perf.perf_event_attr``, as the kernel reads it): on ``cpu``, or each online CPU,
        for process ``pid`` or all; in event group ``group_fd``."""
        import ctypes
        from ..links.link import LinkGroup
        from ..links.tracing import attach_perf_event
        from ..sys.cpus import online_cpus
        from ..sys.perf import PerfEventAttr, perf_event_open
        fn_s = _str(fn_name)
        key = (fn_s, attr.type, attr.config)
        if key in self.perf_event_fds:
            raise UsageError(f"attach_perf_event_raw: {fn_s!r} is already attached to perf "
                             f"event type {attr.type} config {attr.config}")
        fn = self.load_func(fn_s, self.PERF_EVENT)
        raw = bytes(attr)[:ctypes.sizeof(PerfEventAttr)]
        what = f"perf event type {attr.type} config {attr.config:#x}"

        def attach(c: int) -> Any:
            pfd = perf_event_open(PerfEventAttr.from_buffer_copy(
                raw.ljust(ctypes.sizeof(PerfEventAttr), b"\0")), pid, c, group_fd,
                what=f"{what} on CPU {c}")
            return attach_perf_event(fn.program, pfd, f"{what} on CPU {c}")
        self.perf_event_fds[key] = LinkGroup.collect(
            attach(c) for c in ([cpu] if cpu >= 0 else online_cpus()))
        return self

    def detach_perf_event(self, ev_type: int = -1, ev_config: int = -1) -> None:
        keys = [k for k in self.perf_event_fds if k[1:] == (ev_type, ev_config)]
        if not keys:
            raise UsageError(f"detach_perf_event: nothing is attached to perf event type "
                             f"{ev_type} config {ev_config}")
        for k in keys:
            self.perf_event_fds.pop(k).close()

    def _attach_btf(self, kind: str, target: str, fn_name: str, store: dict[str, Any]) -> None:
        """kfunc/kretfunc/lsm functions: loaded for their BTF target, then linked."""
        section = {"kfunc": "fentry", "kretfunc": "fexit", "kmod_ret": "fmod_ret",
                   "lsm": "lsm"}[kind]
        fn = self.funcs.get(fn_name) or self._load(fn_name, ProgType.TRACING,
                                                   section=f"{section}/{target}")
        store[fn_name] = fn.program.attach()

    def _btf_target(self, fn_name: StrLike, kind: str) -> tuple[str, str]:
        name = _str(fn_name)
        f = self._functions.get(name)
        if f is None or f.auto_attach is None or f.auto_attach[0] != kind:
            raise UsageError(f"attach_{kind}: {name!r} is not a {kind} function of the program "
                             f"({kind}__<target> or its *_PROBE macro)")
        return name, f.auto_attach[1]

    def attach_kfunc(self, fn_name: StrLike = b"") -> "BPF":
        """Attach ``kfunc__<function>`` (``KFUNC_PROBE``) at its kernel function (fentry)."""
        name, target = self._btf_target(fn_name, "kfunc")
        if name not in self.kfunc_fds:
            self._attach_btf("kfunc", target, name, self.kfunc_fds)
        return self

    def attach_kretfunc(self, fn_name: StrLike = b"") -> "BPF":
        """Attach ``kretfunc__<function>`` (``KRETFUNC_PROBE``) at its return (fexit)."""
        name, target = self._btf_target(fn_name, "kretfunc")
        if name not in self.kfunc_fds:
            self._attach_btf("kretfunc", target, name, self.kfunc_fds)
        return self

    def attach_lsm(self, fn_name: StrLike = b"") -> "BPF":
        """Attach ``lsm__<hook>`` (``LSM_PROBE``) to its LSM hook."""
        name, target = self._btf_target(fn_name, "lsm")
        if name not in self.lsm_fds:
            self._attach_btf("lsm", target, name, self.lsm_fds)
        return self

    def detach_kfunc(self, fn_name: StrLike = b"") -> None:
        link = self.kfunc_fds.pop(_str(fn_name), None)
        if link is None:
            raise UsageError(f"detach_kfunc: {_str(fn_name)!r} is not attached")
        link.close()

    detach_kretfunc = detach_kfunc

    # -- network -------------------------------------------------------------------------------
    @staticmethod
    def attach_xdp(dev: StrLike, fn: BPFFunction, flags: int = 0) -> None:
        """Attach XDP function ``fn`` to device ``dev`` by netlink, as BCC: it stays there
        after the process ends, until ``remove_xdp``."""
        from ..links import attach_xdp
        attach_xdp(fn.program, _str(dev), flags, netlink_attach=True)

    @staticmethod
    def remove_xdp(dev: StrLike, flags: int = 0) -> None:
        """Remove the XDP program of device ``dev`` (netlink)."""
        from ..links.netlink import describe, ifindex, set_xdp
        index = ifindex(_str(dev))
        set_xdp(index, -1, flags, f"removing the XDP program of {describe(index)}")

    @staticmethod
    def attach_raw_socket(fn: BPFFunction, dev: StrLike) -> None:
        """Open a raw AF_PACKET socket bound to ``dev`` with socket filter ``fn`` attached;
        its descriptor is ``fn.sock``."""
        import socket
        from ..links import attach_socket_filter
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW | socket.SOCK_NONBLOCK |
                          socket.SOCK_CLOEXEC, socket.htons(0x0003))  # ETH_P_ALL
        try:
            s.bind((_str(dev), 0))
            attach_socket_filter(fn.program, s)
        except BaseException:
            s.close()
            raise
        fn._socket = s
        fn.sock = s.fileno()

    # -- counts --------------------------------------------------------------------------------
    def num_open_kprobes(self) -> int:
        return sum(len(v) for v in self.kprobe_fds.values())

    def num_open_uprobes(self) -> int:
        return sum(len(v) for v in self.uprobe_fds.values())

    def num_open_tracepoints(self) -> int:
        return sum(len(v) for v in self.tracepoint_fds.values())

    # -- auto-attach and USDT ------------------------------------------------------------------
    def _trace_autoload(self, functions: Iterable[Any]) -> None:
        for f in functions:
            kind, target = f.auto_attach or ("", "")
            if kind in ("kprobe", "kretprobe"):
                self._attach_probe(kind, target, f.name)
            elif kind == "tracepoint":
                self.attach_tracepoint(tp=target.replace("/", ":", 1), fn_name=f.name)
            elif kind == "raw_tracepoint":
                self.attach_raw_tracepoint(tp=target, fn_name=f.name)
            elif kind in ("kfunc", "kretfunc", "kmod_ret"):
                self._attach_btf(kind, target, f.name, self.kfunc_fds)
            elif kind == "lsm":
                self._attach_btf(kind, target, f.name, self.lsm_fds)
            else:
                raise UsageError(f"BPF: function {f.name!r}: auto-attach kind {kind!r} is not "
                                 "supported")

    def _attach_usdt(self) -> None:
        """Attach the probes the USDT contexts enabled (``USDT.enable_probe``)."""
        for u in self._usdt:
            attach = getattr(u, "attach", None)
            if attach is None:
                raise UsageError(f"BPF: usdt_contexts: {u!r} cannot attach its probes")
            self._others.extend(attach(self, self._usdt_ignore_pid))

    # -- tables --------------------------------------------------------------------------------
    def get_table(self, name: StrLike, keytype: Any = None, leaftype: Any = None,
                  reducer: Optional[Callable[[Any, Any], Any]] = None) -> "TableBase":
        """The table (map) ``name`` of the program, dict-like with ctypes keys and values."""
        n = _str(name)
        table = self.tables.get(n)
        if table is None:
            from .table import table_of
            built = self._primary
            if n not in built.collection.maps:
                from .table import TableNotFound
                tables = [t for t in built.collection.maps if not t.startswith(".")
                          and "." not in t]
                raise TableNotFound(f"BPF: no table {n!r} in the program; its tables: "
                                    f"{', '.join(tables) or '(none)'}")
            table = table_of(self, n, built, keytype, leaftype, reducer)
            self.tables[n] = table
        return table

    def __getitem__(self, name: StrLike) -> "TableBase":
        return self.get_table(name)

    def __setitem__(self, name: StrLike, table: "TableBase") -> None:
        self.tables[_str(name)] = table

    def __delitem__(self, name: StrLike) -> None:
        del self.tables[_str(name)]

    def __contains__(self, name: object) -> bool:
        n = _str(name) if isinstance(name, (str, bytes)) else ""
        return n in self._table_defs or n in self._primary.collection.maps

    def __iter__(self) -> Any:
        return iter(self._table_defs)

    # -- events --------------------------------------------------------------------------------
    def _add_reader(self, attr: str, reader: Any) -> None:
        from ..events import Poller
        poller = getattr(self, attr)
        if poller is None:
            setattr(self, attr, Poller(reader))
        else:
            poller.add(reader)

    def perf_buffer_poll(self, timeout: int = -1) -> int:
        """Wait up to ``timeout`` ms (-1: forever) for the open perf buffers' records; hand
        each to its callback."""
        if self._perf_buffers is None:
            raise UsageError("perf_buffer_poll: no perf buffer is open (open_perf_buffer)")
        return self._perf_buffers.poll(timeout)

    def perf_buffer_consume(self) -> int:
        """Hand every waiting perf buffer record to its callback, without waiting."""
        if self._perf_buffers is None:
            raise UsageError("perf_buffer_consume: no perf buffer is open (open_perf_buffer)")
        return self._perf_buffers.consume()

    def kprobe_poll(self, timeout: int = -1) -> int:
        """BCC's older name of ``perf_buffer_poll``."""
        return self.perf_buffer_poll(timeout)

    def ring_buffer_poll(self, timeout: int = -1) -> int:
        """Wait up to ``timeout`` ms for the open ring buffers' records; hand each to its
        callback."""
        if self._ring_buffers is None:
            raise UsageError("ring_buffer_poll: no ring buffer is open (open_ring_buffer)")
        return self._ring_buffers.poll(timeout)

    def ring_buffer_consume(self) -> int:
        """Hand every waiting ring buffer record to its callback, without waiting."""
        if self._ring_buffers is None:
            raise UsageError("ring_buffer_consume: no ring buffer is open (open_ring_buffer)")
        return self._ring_buffers.consume()

    # -- trace_pipe ----------------------------------------------------------------------------
    def trace_open(self, nonblocking: bool = False) -> Any:
        """trace_pipe, opened once (bpf_trace_printk's output)."""
        if self._trace is None:
            from ..events import TracePipe
            self._trace = TracePipe(function=None)
        return self._trace

    def trace_readline(self, nonblocking: bool = False) -> bytes:
        """The next trace_pipe line (``b""`` when ``nonblocking`` and none is waiting)."""
        pipe = self.trace_open()
        while True:
            if not self._trace_lines:
                self._trace_lines = pipe.lines(0.0 if nonblocking else None)
            if not self._trace_lines:
                return b""
            line = self._trace_lines.pop(0)
            if not line.startswith("CPU:"):  # lost-events notes
                return line.encode(errors="surrogateescape")

    def trace_fields(self, nonblocking: bool = False) -> tuple[Any, ...]:
        """The next bpf_trace_printk line as ``(task, pid, cpu, flags, ts, msg)`` (bytes,
        int, int, bytes, float, bytes); six Nones when ``nonblocking`` and none waits."""
        from ..events.trace_pipe import TraceEvent
        while True:
            line = self.trace_readline(nonblocking)
            if not line:
                return (None,) * 6
            ev = TraceEvent.parse(line.decode(errors="surrogateescape"))
            if ev is None:
                continue
            enc = (lambda s: s.encode(errors="surrogateescape"))
            return (enc(ev.task.strip()), ev.pid, ev.cpu, enc(ev.flags), ev.timestamp,
                    enc(ev.message))

    def trace_print(self, fmt: Optional[str] = None) -> None:
        """Print trace_pipe lines forever: whole, or as ``fmt.format(task, pid, cpu, flags,
        ts, msg)``."""
        while True:
            if fmt:
                fields = self.trace_fields()
                line: Any = fmt.format(*fields)
            else:
                line = self.trace_readline()
            print(line.decode(errors="replace") if isinstance(line, bytes) else line,
                  flush=True)

    # -- lifetime ------------------------------------------------------------------------------
    def cleanup(self) -> None:
        """Detach everything, close readers, programs and maps (also at exit)."""
        if self._closed:
            return
        self._closed = True
        _live.discard(self)
        from . import sharing
        sharing.withdraw(self)
        attached: list[Any] = [*self._others, *self.raw_tracepoint_fds.values(),
                               *self.kfunc_fds.values(), *self.lsm_fds.values(),
                               *self.perf_event_fds.values()]
        for table in (self.kprobe_fds, self.uprobe_fds, self.tracepoint_fds):
            for links in table.values():
                attached.extend(links.values())
            table.clear()
        _close_all(attached)
        for store in (self._others, self.raw_tracepoint_fds, self.kfunc_fds, self.lsm_fds,
                      self.perf_event_fds):
            store.clear()
        for reader in (self._perf_buffers, self._ring_buffers, self._trace):
            if reader is not None:
                reader.close()
        self._perf_buffers = self._ring_buffers = self._trace = None
        for fn in self._loaded:
            if fn._socket is not None:
                fn._socket.close()
            fn.program.close()
        self._loaded.clear()
        self.funcs.clear()
        for t in self.tables.values():
            t.close()
        self.tables.clear()
        for b in reversed(self._built):
            b.collection.close()
        self._built.clear()

    def close(self) -> None:
        self.cleanup()

    def __enter__(self) -> "BPF":
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()

    def __repr__(self) -> str:
        state = "cleaned up" if self._closed else f"{len(self.funcs)} functions loaded"
        return f"<BPF {len(self._functions)} functions, {len(self._table_defs)} tables: {state}>"
