"""BCC's introspection class methods (symbols, probe targets, kernel features) for ``BPF``.

``class BPF(IntrospectionMixin)`` inherits them as static methods, as BCC's ``BPF`` has
them. Names and paths are bytes where BCC returns bytes (``ksym``, ``sym``,
``find_library``, ``get_kprobe_functions``, ``get_tracepoints``). Feature questions are
answered by :mod:`pybpf.features` load probes, not by looking for symbols: a kernel may have
the fentry or LSM code and still refuse such programs.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any, Optional, Union

from .. import features
from ..errors import BTFError, UsageError
from ..sys.uapi import ProgType
from .utils import _as_path, _as_str, _assert_is_bytes

_symbols_module: Any = None


def _symbols() -> Any:
    """``pybpf.symbols``, imported on first use (a warm start needs none of it) and kept in
    a global: an import statement in ``ksym``, called a million times a second by tools
    printing stacks, would cost more than the look-up."""
    global _symbols_module
    if _symbols_module is None:
        from .. import symbols
        _symbols_module = symbols
    return _symbols_module


DEFAULT_PROBE_LIMIT = 1000


def _format(name: Optional[str], offset: int, module: Optional[str], show_module: bool,
            show_offset: bool) -> bytes:
    """BCC's ``name+0xoff [module]`` (the offset only with a name, the module's base name)."""
    out = name.encode(errors="surrogateescape") if name is not None else b"[unknown]"
    if show_offset and name is not None:
        out += b"+0x%x" % offset
    if show_module and module is not None:
        out += b" [" + os.path.basename(module).encode(errors="surrogateescape") + b"]"
    return out


TRACEFS = "/sys/kernel/debug/tracing" if os.path.isdir("/sys/kernel/debug/tracing") \
    else "/sys/kernel/tracing"
"""BCC's ``bcc.TRACEFS``: tracefs under debugfs where mounted there, else its own mount."""


def _tracefs() -> str:
    from ..links.tracing import tracefs
    return tracefs()


def _seen_by(pid: int, path: str) -> str:
    """``path`` as process ``pid`` sees it: through ``/proc/PID/root`` when the process has
    another mount namespace (a container's), as BCC resolves it; else ``path``."""
    if pid <= 0 or not path.startswith("/"):
        return path
    try:
        if os.stat(f"/proc/{pid}/ns/mnt").st_ino == os.stat("/proc/self/ns/mnt").st_ino:
            return path
    except OSError:  # gone, or its namespace unreadable: the path as given
        return path
    return f"/proc/{pid}/root{path}"


def resolve_module(name: Union[str, bytes], pid: int = 0) -> str:
    """The file BCC means by a uprobe ``name``: a path as is (as process ``pid`` sees it); a
    library name (``c``, ``pthread``) as ``find_library`` finds it (in process ``pid`` first,
    as it sees it), or a full soname (``libc.so.6``) in ld.so.cache; else a program in
    ``$PATH``. Raises UsageError naming what was looked for."""
    text = _as_str(name)
    if "/" in text:
        return _seen_by(pid, text)
    lib = IntrospectionMixin.find_library(text.encode(), pid) if pid > 0 else None
    if lib is not None:
        return _seen_by(pid, lib.decode())
    lib = IntrospectionMixin.find_library(text.encode())
    if lib is not None:
        return lib.decode()
    if text.startswith("lib") and ".so" in text:  # a full soname: libc.so.6
        from ..links.uprobe import resolve_binary
        try:
            return resolve_binary(text)
        except UsageError:
            pass
    exe = IntrospectionMixin.find_exe(text)
    if exe is not None:
        return os.path.realpath(os.fsdecode(exe))
    raise UsageError(f"{text!r}: neither a library lib{text}* in ld.so.cache nor a program "
                     "in $PATH")


class SymbolCache:
    """BCC's ``bcc.SymbolCache``: the symbols of process ``pid`` (negative: the kernel's)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def resolve(self, addr: int, demangle: bool) -> tuple[Optional[bytes], int,
                                                          Optional[bytes]]:
        """(function, offset in it, module) of ``addr``; (None, offset in the module, module)
        when only its module is known; (None, addr, None) when not even that."""
        symbols = _symbols()
        if self.pid < 0:
            found = symbols.kernel_symbols().resolve(addr)
            name, offset, module = found if found is not None else (None, addr, None)
        else:
            name, offset, module = symbols.process_symbols(self.pid).resolve(addr)
        if name is not None and demangle:
            name = symbols.demangle(name)
        return (None if name is None else name.encode(), offset,
                None if module is None else module.encode())

    def resolve_name(self, module: Union[str, bytes], name: Union[str, bytes]) -> int:
        """The address of function ``name`` of ``module`` (a path or file name) in the
        process, -1 when the process does not map it or it lacks the function."""
        symbols = _symbols()
        where = symbols.process_symbols(self.pid).address(
            _as_str(_assert_is_bytes(module)), _as_str(_assert_is_bytes(name)))
        return -1 if where is None else where


class IntrospectionMixin:
    """BCC's ``BPF`` static methods that ask the running kernel, not a loaded program."""

    _auto_includes = {
        "linux/time.h": ["time"],
        "linux/fs.h": ["fs", "file"],
        "linux/blkdev.h": ["bio", "request"],
        "linux/slab.h": ["alloc"],
        "linux/netdevice.h": ["sk_buff", "net_device"],
    }
    """Headers ``generate_auto_includes`` adds for words containing these (BCC's table)."""

    @classmethod
    def generate_auto_includes(cls, program_words: Any) -> str:
        """``#include <...>`` lines for the kernel types a tool's probe specs mention
        (``trace``/``argdist`` pass the words of their expressions), each header once."""
        return "".join(f"#include <{header}>\n" for header, keys in cls._auto_includes.items()
                       if any(key in word for key in keys for word in program_words))

    @staticmethod
    def monotonic_time() -> float:
        """CLOCK_MONOTONIC in nanoseconds (the clock of ``bpf_ktime_get_ns``), a float as
        BCC returns it."""
        return float(time.monotonic_ns())

    @staticmethod
    def ksym(addr: int, show_module: bool = False, show_offset: bool = False) -> bytes:
        """The kernel function holding ``addr``: ``b"name"``, ``b"name+0x1a [kernel]"`` with
        both flags, ``b"[unknown]"`` below every symbol."""
        symbols = _symbols()
        ks = symbols.kernel_symbols()
        i = ks.index(addr)
        if i < 0:
            return b"[unknown]"
        if show_module or show_offset:
            return _format(ks.names[i], addr - ks.addresses[i], ks.modules[i], show_module,
                           show_offset)
        return ks.raw_names[i]

    @staticmethod
    def ksymname(name: Union[str, bytes]) -> int:
        """The address of kernel text symbol ``name``; -1 when unknown."""
        symbols = _symbols()
        addr = symbols.kernel_symbols().address(_as_str(name))
        return -1 if addr is None else addr

    @staticmethod
    def sym(addr: Any, pid: int, show_module: bool = False, show_offset: bool = False,
            demangle: bool = True) -> bytes:
        """The function holding user address ``addr`` in process ``pid`` (a negative pid:
        the kernel), formatted as ``ksym``; ``addr`` may also be a build-id stack entry
        (``build_id`` and ``offset`` attributes) of a file given to ``add_module``."""
        symbols = _symbols()
        if hasattr(addr, "build_id"):
            name, offset, module = symbols.build_id_symbols.resolve(bytes(addr.build_id),
                                                                    addr.offset)
        elif pid < 0:
            return IntrospectionMixin.ksym(addr, show_module, show_offset)
        else:
            name, offset, module = symbols.process_symbols(pid).resolve(addr)
        if demangle and name is not None:
            name = symbols.demangle(name)
        return _format(name, offset, module, show_module, show_offset)

    @staticmethod
    def add_module(modname: Union[str, bytes]) -> None:
        """Register an executable or library by its build id, for ``sym`` on stack traces
        taken with BPF_F_STACK_BUILD_ID."""
        symbols = _symbols()
        symbols.build_id_symbols.add(_as_str(modname))

    @staticmethod
    def find_exe(bin_path: Union[str, bytes]) -> Optional[Union[str, bytes]]:
        """``bin_path`` if it names an executable file, else the first executable of that
        name in ``$PATH``; None when there is none."""
        def is_exe(path: bytes) -> bool:
            return os.path.isfile(path) and os.access(path, os.X_OK)

        name = os.fsencode(_as_path(bin_path))
        found: Optional[bytes] = None
        if os.path.dirname(name):
            found = name if is_exe(name) else None
        else:
            dirs = os.environ.get("PATH", os.defpath).split(os.pathsep)
            found = next((c for c in (os.path.join(os.fsencode(d.strip('"')), name)
                                      for d in dirs) if is_exe(c)), None)
        if found is None or isinstance(bin_path, bytes):
            return found
        return os.fsdecode(found)

    @staticmethod
    def find_library(libname: Union[str, bytes], pid: int = 0) -> Optional[bytes]:
        """The path of library ``lib<libname>`` (``c`` -> ``.../libc.so.6``): among the
        libraries process ``pid`` maps when a pid is given, else from ld.so.cache; a name
        holding ``/`` is returned as is; None when not found."""
        symbols = _symbols()
        name = _as_str(_assert_is_bytes(libname))
        if "/" in name:
            return name.encode()
        has_so = ".so" in name
        if pid:
            patterns = (f"/lib{name}",) if has_so else (f"/lib{name}.", f"/lib{name}-")
            for mapping in symbols.ProcessSymbols(pid).mappings:
                if ".so" in mapping.path and any(p in mapping.path for p in patterns):
                    return mapping.path.encode()
            return None
        from ..links.uprobe import ld_so_cache
        prefix = f"lib{name}" if has_so else f"lib{name}.so"
        for soname, path in ld_so_cache().items():
            if soname.startswith(prefix):
                return path.encode()
        return None

    @staticmethod
    def get_user_functions_and_addresses(name: Union[str, bytes], sym_re: Union[str, bytes]
                                         ) -> list[tuple[bytes, int]]:
        """(function name, virtual address) of each function of binary ``name`` (a path,
        library or program name, see ``resolve_module``) whose name matches regular
        expression ``sym_re`` at its start."""
        symbols = _symbols()
        path = resolve_module(name)
        pattern = re.compile(_assert_is_bytes(sym_re))
        fs = symbols.file_symbols(path)
        return [(n.encode(), a) for n, a in zip(fs.names, fs.starts)
                if pattern.match(n.encode())]

    @staticmethod
    def get_user_functions(name: Union[str, bytes], sym_re: Union[str, bytes]) -> set[bytes]:
        return {n for n, _ in IntrospectionMixin.get_user_functions_and_addresses(name, sym_re)}

    @staticmethod
    def get_user_addresses(name: Union[str, bytes], sym_re: Union[str, bytes]) -> set[int]:
        """The distinct addresses of matching functions (aliases share one)."""
        return {a for _, a in IntrospectionMixin.get_user_functions_and_addresses(name, sym_re)}

    @staticmethod
    def get_probe_limit() -> int:
        """How many probes one BPF object may open: ``$BCC_PROBE_LIMIT`` or 1000."""
        env = os.environ.get("BCC_PROBE_LIMIT", "")
        return int(env) if env.isdigit() else DEFAULT_PROBE_LIMIT

    @staticmethod
    def get_kprobe_functions(event_re: Union[str, bytes]) -> set[bytes]:
        """Kernel functions matching ``event_re`` (fully) that kprobes can attach to: text
        symbols listed in tracefs ``available_filter_functions``, outside the init and
        irqentry sections, not blacklisted (``kprobes/blacklist``, ``_kbl_addr_``, perf and
        ``__SCT__`` functions, ``.cold`` parts), as BCC selects them."""
        symbols = _symbols()
        pattern = re.compile(_assert_is_bytes(event_re))
        tracefs = _tracefs()
        try:
            with open(os.path.join(tracefs, "available_filter_functions"), "rb") as f:
                available = {line.split()[0] for line in f if line.strip()}
        except OSError:  # absent (no ftrace) or refused (lockdown): nothing is attachable
            available = set()
        try:
            with open("/sys/kernel/debug/kprobes/blacklist", "rb") as f:
                blacklist = {line.split()[1] for line in f if len(line.split()) > 1}
        except OSError:
            blacklist = set()
        found: set[bytes] = set()
        skipping: Optional[bytes] = None  # the end marker of a section being skipped
        cold = re.compile(rb".*\.cold(\.\d+)?")
        with open(symbols.KALLSYMS, "rb") as f:
            for line in f:
                parts = line.split()
                kind, fn = parts[1], parts[2]
                if skipping is not None:
                    if fn == skipping:
                        skipping = None
                    continue
                if fn in (b"__init_begin", b"__irqentry_text_start"):
                    skipping = b"__init_end" if fn == b"__init_begin" else b"__irqentry_text_end"
                    continue
                if (fn.startswith((b"_kbl_addr_", b"__perf", b"perf_", b"__SCT__"))
                        or cold.fullmatch(fn)):
                    continue
                if kind in (b"t", b"T", b"w", b"W") and fn in available \
                        and fn not in blacklist and pattern.fullmatch(fn):
                    found.add(fn)
        return found

    @staticmethod
    def tracepoint_exists(category: Union[str, bytes], event: Union[str, bytes]) -> bool:
        """Is there a tracepoint ``category:event`` (tracefs ``events/<category>/<event>``)?"""
        return os.path.isdir(os.path.join(_tracefs(), "events", _as_str(category), _as_str(event)))

    @staticmethod
    def get_tracepoints(tp_re: Union[str, bytes]) -> list[bytes]:
        """``b"category:event"`` of every tracepoint whose name matches ``tp_re`` at its
        start."""
        pattern = re.compile(_as_str(tp_re))
        events = os.path.join(_tracefs(), "events")
        found = []
        for category in sorted(os.listdir(events)):
            cat_dir = os.path.join(events, category)
            if not os.path.isdir(cat_dir):
                continue
            for event in sorted(os.listdir(cat_dir)):
                tp = f"{category}:{event}"
                if os.path.isdir(os.path.join(cat_dir, event)) and pattern.match(tp):
                    found.append(tp.encode())
        return found

    @staticmethod
    def kernel_struct_has_field(struct_name: Union[str, bytes],
                                field_name: Union[str, bytes]) -> int:
        """1 when kernel struct ``struct_name`` has member ``field_name`` (also inside its
        anonymous structs and unions), 0 when not, -1 without vmlinux BTF or such a struct:
        asked of the running kernel's BTF, as BCC does."""
        from ..btf import Spec, types as T
        try:
            found = Spec.vmlinux().find_all(_as_str(struct_name), T.Struct)
        except BTFError:
            return -1
        if not found:
            return -1

        def has(composite: Any, name: str) -> bool:
            return any(m.name == name or (not m.name and isinstance(m.type, T.Composite)
                                          and has(m.type, name)) for m in composite.members)
        return int(has(found[0], _as_str(field_name)))

    @staticmethod
    def kernel_enum_has_val(enum_name: Union[str, bytes], value_name: Union[str, bytes]) -> int:
        """1 when kernel enum ``enum_name`` (empty: any anonymous enum, which decodes every
        vmlinux type: seconds) has enumerator ``value_name``, 0 when not, -1 without vmlinux
        BTF or such an enum."""
        from ..btf import Spec, types as T
        name, value = _as_str(enum_name), _as_str(value_name)
        try:
            spec = Spec.vmlinux()
            enums = [t for t in spec if isinstance(t, T.Enum) and not t.name] if not name \
                else spec.find_all(name, T.Enum)
        except BTFError:
            return -1
        if name and not enums:
            return -1
        return int(any(v.name == value for e in enums for v in e.values))

    @staticmethod
    def support_raw_tracepoint() -> bool:
        """Can raw tracepoint programs load (a real load probe)?"""
        return bool(features.prog_type(ProgType.RAW_TRACEPOINT))

    @staticmethod
    def support_raw_tracepoint_in_module() -> bool:
        """Raw tracepoints of modules: raw tracepoint programs load, and the kernel looks
        modules' tracepoints up for them (Linux 5.0+; BCC asks kallsyms for
        ``bpf_trace_modules``, a data symbol kernels without CONFIG_KALLSYMS_ALL omit)."""
        from ..sys.host import kernel_version_code
        return IntrospectionMixin.support_raw_tracepoint() and \
            kernel_version_code() >= 0x050000

    @staticmethod
    def support_kfunc() -> bool:
        """Can fentry/fexit (kfunc) programs load on this kernel (a real load probe)?"""
        return bool(features.fentry())

    @staticmethod
    def support_fmod_ret() -> bool:
        """fmod_ret programs are tracing programs as fentry: the same load probe."""
        return bool(features.fentry())

    @staticmethod
    def support_lsm() -> bool:
        """Can BPF LSM programs load on this kernel (a real load probe)?"""
        return bool(features.lsm())
