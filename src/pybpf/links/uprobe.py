"""uprobes and uretprobes on user-space functions (perf uprobe PMU, or tracefs
``uprobe_events``), and uprobe_multi links (many offsets of one file in one link, Linux 6.6+).

A probe is placed on a file offset: a symbol in the ELF file (executable or shared library,
by path or by a library name found through ``/etc/ld.so.cache``) is turned into the offset of
its code in the file.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import fnmatch
import functools
import os
import platform
import shutil
import struct
from dataclasses import dataclass
from typing import Optional, Sequence, Union

from ..elf.reader import SHN_UNDEF, STT_FUNC, ElfFile
from ..errors import BPFError, ObjectError, UnsupportedFeatureError, UsageError
from ..object import KernelObject
from ..sys import commands, probes
from ..sys.fd import FD
from ..sys.uapi import AttachType, UprobeMultiFlag
from .link import Link, PerfEventAttachment
from .probe import LegacyProbeEvent, open_pmu_probe, pmu_type
from .tracing import attach_perf_event

LD_SO_CACHE = "/etc/ld.so.cache"
SELF_EXE = "/proc/self/exe"
LIBRARY_DIRS = ("/lib64", "/usr/lib64", "/lib", "/usr/lib")

_CACHE_MAGIC = b"glibc-ld.so.cache1.1"
_CACHE_HEADER = struct.Struct("<20sIIB3xI12x")  # magic+version, nlibs, len_strings, flags, ext
_CACHE_ENTRY = struct.Struct("<iIIIQ")  # flags, key, value, osversion, hwcap
_FLAG_ELF_LIBC6 = 0x0003
_FLAG_TYPE_MASK = 0x00ff
_FLAG_ARCH_MASK = 0xff00
_ARCH_FLAGS = {"x86_64": 0x0300, "aarch64": 0x0a00, "s390x": 0x0400, "ppc64le": 0x0500,
               "riscv64": 0x1000, "i686": 0x0000}
"""ld.so.cache entry flags of this machine's libraries (glibc's FLAG_* in ldconfig.h)."""


def parse_ld_so_cache(data: bytes, machine: Optional[str] = None) -> dict[str, str]:
    """Library name -> path from the new-format ld.so.cache (``glibc-ld.so.cache1.1``),
    only entries of ``machine``'s ABI (default: this one); the first entry of a name wins,
    as in ld.so (ldconfig sorts the preferred one first)."""
    if not data.startswith(_CACHE_MAGIC) or len(data) < _CACHE_HEADER.size:
        raise UsageError("ld.so.cache: not the glibc-ld.so.cache1.1 format "
                         f"(starts with {data[:20]!r})")
    _, nlibs, _, _, _ = _CACHE_HEADER.unpack_from(data)
    want = _ARCH_FLAGS.get(machine or platform.machine())
    end = _CACHE_HEADER.size + nlibs * _CACHE_ENTRY.size
    if end > len(data):
        raise UsageError(f"ld.so.cache: {nlibs} entries do not fit in {len(data)} bytes")

    def string(off: int) -> str:
        stop = data.find(b"\0", off)
        if off >= len(data) or stop < 0:
            raise UsageError(f"ld.so.cache: string offset {off} out of bounds")
        return data[off:stop].decode(errors="surrogateescape")

    libs: dict[str, str] = {}
    for i in range(nlibs):
        flags, key, value, _, _ = _CACHE_ENTRY.unpack_from(data, _CACHE_HEADER.size +
                                                           i * _CACHE_ENTRY.size)
        if (flags & _FLAG_TYPE_MASK) != _FLAG_ELF_LIBC6:
            continue
        if want is not None and (flags & _FLAG_ARCH_MASK) != want:
            continue
        libs.setdefault(string(key), string(value))
    return libs


@functools.lru_cache(maxsize=4)
def _ld_so_cache(mtime_ns: int, path: str) -> dict[str, str]:
    with open(path, "rb") as f:
        return parse_ld_so_cache(f.read())


def ld_so_cache(path: str = LD_SO_CACHE) -> dict[str, str]:
    """This machine's ld.so.cache (re-read when ldconfig rewrote it); {} when there is none."""
    try:
        return _ld_so_cache(os.stat(path).st_mtime_ns, path)
    except FileNotFoundError:
        return {}


def resolve_binary(binary: str) -> str:
    """The file behind ``binary``: a path as is; a library name (``libc.so.6``) through
    ld.so.cache, then the standard library directories; a program name through ``$PATH``."""
    if "/" in binary:
        if not os.path.isfile(binary):
            raise UsageError(f"uprobe target {binary!r}: no such file")
        return os.path.abspath(binary)
    if ".so" in binary:
        found = ld_so_cache().get(binary)
        if found:
            return found
        for d in (*os.environ.get("LD_LIBRARY_PATH", "").split(":"), *LIBRARY_DIRS,
                  f"/usr/lib/{platform.machine()}-linux-gnu", f"/lib/{platform.machine()}-linux-gnu"):
            if d and os.path.isfile(os.path.join(d, binary)):
                return os.path.join(d, binary)
        raise UsageError(f"uprobe target {binary!r}: not in {LD_SO_CACHE} nor in "
                         f"{', '.join(LIBRARY_DIRS)}")
    found = shutil.which(binary)
    if found is None:
        raise UsageError(f"uprobe target {binary!r}: not found in $PATH")
    return os.path.realpath(found)


@dataclass(frozen=True)
class ElfSymbol:
    """A function symbol: its virtual address and the file offset of its code."""

    name: str
    address: int
    size: int
    offset: int


class Binary:
    """What uprobes need of an executable or library: its ELF file (``pybpf.elf.reader``),
    function symbols (``.symtab``, then ``.dynsym``) and address -> file offset."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.elf = ElfFile.open(path)
            self.elf.segments  # noqa: B018 - read now: a bad table is an error here
        except ObjectError as e:
            raise UsageError(f"{path}: not a valid ELF file ({e})") from None

    @functools.cached_property
    def functions(self) -> dict[str, ElfSymbol]:
        """Defined functions by name (a versioned ``name@VER`` by its bare name), first wins."""
        funcs: dict[str, ElfSymbol] = {}
        for table in (".symtab", ".dynsym"):
            section = self.elf.section(table)
            if section is None:
                continue
            for sym in self.elf.read_symbols(section):
                if sym.type != STT_FUNC or sym.shndx == SHN_UNDEF or not sym.value or not sym.name:
                    continue
                name = sym.name.split("@")[0]
                if name not in funcs:
                    funcs[name] = ElfSymbol(name, sym.value, sym.size, self.file_offset(sym.value))
        return funcs

    def file_offset(self, address: int) -> int:
        """The file offset of virtual ``address`` (through the PT_LOAD segment holding it)."""
        try:
            return self.elf.file_offset(address)
        except ObjectError as e:
            raise UsageError(str(e)) from None

    def symbol(self, name: str) -> ElfSymbol:
        try:
            return self.functions[name]
        except KeyError:
            raise UsageError(f"{self.path}: no function symbol {name!r} (stripped, only "
                             "imported, or an IFUNC whose implementation has another "
                             "name?)") from None


@functools.lru_cache(maxsize=16)
def _elf_file(path: str, mtime_ns: int, size: int) -> Binary:
    return Binary(path)


def elf_file(path: str) -> Binary:
    """The parsed binary at ``path`` (cached while the file is unchanged)."""
    st = os.stat(path)
    return _elf_file(path, st.st_mtime_ns, st.st_size)


def process_symbol(name: str) -> Optional[tuple[str, int]]:
    """The file and file offset of function ``name`` as this process's dynamic linker finds
    it (the executable, its libraries and those loaded ``RTLD_GLOBAL``, e.g. by ctypes), or
    None: its address (``dlsym``) placed in its mapping (``/proc/self/maps``)."""
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(None), name), ctypes.c_void_p).value or 0
    except AttributeError:
        return None
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if low <= address < high:
                path = fields[5].rstrip("\n") if len(fields) == 6 else ""
                if not path.startswith("/") or path.endswith(" (deleted)"):
                    raise UsageError(f"{SELF_EXE}:{name}: the function is at {address:#x}, in "
                                     f"no file a uprobe can be placed on ({path or 'anonymous'})")
                return path, address - low + int(fields[2], 16)
    return None


def attach_uprobe(program: KernelObject, binary: str, symbol: str = "", offset: int = 0, *,
                  retprobe: bool = False, pid: int = -1, ref_ctr_offset: int = 0,
                  cookie: int = 0, legacy: Optional[bool] = None,
                  force_ioctl: bool = False) -> Union[Link, PerfEventAttachment]:
    """Run ``program`` (BPF_PROG_TYPE_KPROBE) when user code reaches ``symbol`` (+``offset``)
    in ``binary``, or at file ``offset`` without a symbol; ``retprobe`` when it returns.

    ``pid`` limits the probe to one process (-1: every process mapping the file);
    ``/proc/self/exe`` with a function the executable lacks means the library this process
    loaded that has it (``process_symbol``), probed in this process only;
    ``ref_ctr_offset`` is the file offset of a USDT semaphore the kernel increments while the
    probe exists. Uses the uprobe PMU; ``legacy=True`` (or no PMU) writes ``uprobe_events``.
    """
    path = resolve_binary(binary)
    if symbol:
        place = process_symbol(symbol) if path == SELF_EXE and \
            symbol not in elf_file(path).functions else None
        if place is None:
            offset += elf_file(path).symbol(symbol).offset
        else:  # a library this process loaded: its file, for this process only
            path, offset, pid = place[0], offset + place[1], os.getpid() if pid == -1 else pid
    kind = "uretprobe" if retprobe else "uprobe"
    what = f"{kind} {path}:{symbol + '+' if symbol else ''}{offset:#x}"
    if legacy is None:
        legacy = pmu_type("uprobe") is None  # then uprobe_events, or an error naming it
    if not legacy:
        pfd = open_pmu_probe("uprobe", path, offset, retprobe, pid, what, ref_ctr_offset)
        return attach_perf_event(program, pfd, what, cookie, force_ioctl)
    ref = f"({ref_ctr_offset:#x})" if ref_ctr_offset else ""
    return LegacyProbeEvent("uprobe", f"{path}:{offset:#x}{ref}", retprobe, what).attach(
        program, pid, cookie, force_ioctl)


def attach_uretprobe(program: KernelObject, binary: str, symbol: str = "",
                     **kw) -> Union[Link, PerfEventAttachment]:
    """``attach_uprobe(..., retprobe=True)``."""
    return attach_uprobe(program, binary, symbol, retprobe=True, **kw)


def attach_uprobe_multi(program: KernelObject, binary: str, pattern: str = "", *,
                        symbols: Sequence[str] = (), offsets: Sequence[int] = (),
                        ref_ctr_offsets: Sequence[int] = (), cookies: Sequence[int] = (),
                        retprobe: bool = False, pid: int = 0) -> Link:
    """One link running ``program`` at many places of one file (BPF_TRACE_UPROBE_MULTI).

    The places are the functions matching glob ``pattern``, or ``symbols``, or file
    ``offsets``; ``ref_ctr_offsets`` and ``cookies`` go one per place; ``pid`` 0 is every
    process. The program must be loaded with ``expected_attach_type=TRACE_UPROBE_MULTI``.
    """
    if sum(map(bool, (pattern, symbols, offsets))) != 1:
        raise UsageError("attach_uprobe_multi: give exactly one of pattern, symbols, offsets")
    path = resolve_binary(binary)
    what = f"uprobe_multi {path}:{pattern or ','.join(symbols[:3]) or f'{len(offsets)} offsets'}"
    support = probes.uprobe_multi()
    if not support:
        raise UnsupportedFeatureError(f"{what}: {support.reason}")
    if pattern or symbols:
        elf = elf_file(path)
        if pattern:
            symbols = sorted(n for n in elf.functions if fnmatch.fnmatchcase(n, pattern))
            if not symbols:
                raise UsageError(f"{what}: no function in {path} matches {pattern!r}")
        offsets = [elf.symbol(s).offset for s in symbols]
    count = len(offsets)
    for name, seq in (("ref_ctr_offsets", ref_ctr_offsets), ("cookies", cookies)):
        if seq and len(seq) != count:
            raise UsageError(f"{what}: {len(seq)} {name} for {count} places")
    path_buf = ctypes.create_string_buffer(path.encode())
    arrays = [(ctypes.c_uint64 * count)(*seq) if seq else None
              for seq in (offsets, ref_ctr_offsets, cookies)]
    offs, refs, cooks = (ctypes.addressof(a) if a is not None else 0 for a in arrays)
    ret = commands.link_create(
        prog_fd=program.fd, attach_type=AttachType.TRACE_UPROBE_MULTI, target={"uprobe_multi": {
            "path": ctypes.addressof(path_buf), "cnt": count, "pid": pid,
            "flags": UprobeMultiFlag.RETURN if retprobe else 0,
            "offsets": offs, "ref_ctr_offsets": refs, "cookies": cooks}})
    if ret < 0:
        detail = ""
        if -ret == _errno.EINVAL:
            detail = ("the kernel refused the attachment: is the program a kprobe program loaded "
                      "with expected_attach_type=TRACE_UPROBE_MULTI?")
        elif -ret == _errno.ESRCH:
            detail = f"no process {pid}"
        raise BPFError(-ret, "BPF_LINK_CREATE", f"{program.describe()} on {what}", detail)
    return Link(FD(ret), what)
