"""Addresses to symbol names: the kernel's (``/proc/kallsyms``) and a process's (its
``/proc/PID/maps`` and the ELF symbol tables of the files mapped there).

Kernel symbols are read once, sorted, and looked up by bisection inside the 4 KiB page
holding the address (a dict from page to the symbols starting in it keeps each search to a
few comparisons). Only text symbols count, as in BCC: the data kinds ``b B d D r R`` are
skipped; the module of a vmlinux symbol is ``kernel``. The file is matched by one regular
expression over its bytes (``sys.kallsyms`` reads it line by line without modules: three
times slower on its ~120,000 lines).

User symbols come from the executable mappings of a process: each file's function symbols
(``.symtab`` and ``.dynsym``, read by :func:`pybpf.links.uprobe.elf_file` on
``pybpf.elf.reader``) and, when the file has no ``.symtab``, those of its separate debug file
(found by build id under ``/usr/lib/debug/.build-id`` or by ``.gnu_debuglink`` next to it,
its CRC checked); the kernel's vDSO (``[vdso]``, saved once from this process's copy); and
``/tmp/perf-PID.map`` for JIT code. A process's symbols are cached until its executable
changes (exec); an address in no known mapping re-reads the maps (dlopen), at most every
``MAPS_REFRESH_INTERVAL`` seconds.
"""
from __future__ import annotations

import bisect
import functools
import os
import re
import shutil
import struct
import subprocess
import time
import zlib
from collections import Counter, OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

from .elf.reader import PT_LOAD
from .errors import ObjectError, UsageError
from .sys.kallsyms import KALLSYMS

DEBUG_ROOT = "/usr/lib/debug"
_PAGE_SHIFT = 12
_bisect_right = bisect.bisect_right  # bound once: kernel look-ups are the hot path
NT_GNU_BUILD_ID = 3
VDSO = "[vdso]"
MAPS_REFRESH_INTERVAL = 0.1
"""Seconds between re-readings of a process's maps for addresses in none of its mappings
(garbage frames of a stack walked without frame pointers would re-read them every time)."""
_KALLSYMS_TEXT = re.compile(rb"^([0-9a-fA-F]+) ([^bBdDrR\n]) (\S+)(?:\t\[([^\]\n]+)\])?", re.M)
_KALLSYMS_BLOCK = 1 << 16
_KALLSYMS_ALL = re.compile(rb"^([0-9a-fA-F]+) (\S) (\S+)(?:\t\[([^\]\n]+)\])?", re.M)


class KernelSymbols:
    """The kernel's text symbols from ``/proc/kallsyms``: address -> name and back
    (``text_only=False``: data symbols too, where the kernel lists them)."""

    def __init__(self, path: str = KALLSYMS, text_only: bool = True) -> None:
        regex = _KALLSYMS_TEXT if text_only else _KALLSYMS_ALL
        addrs: list[int] = []
        names: list[bytes] = []
        mod_names: list[bytes] = []
        with open(path, "rb") as f:
            # a block's matches at a time: one tuple per line of the whole file alive at once
            # would leave the heap fragmented (~20 MiB of RSS kept after they are freed)
            rest = b""
            while True:
                block = f.read(_KALLSYMS_BLOCK)
                data = rest + block
                cut = data.rfind(b"\n") + 1 if block else len(data)
                rest = data[cut:]
                for a, _, name, mod in regex.findall(data, 0, cut):
                    addrs.append(int(a, 16))
                    names.append(name)
                    mod_names.append(mod)
                if not block:
                    break
        order = sorted((i for i, a in enumerate(addrs) if a), key=addrs.__getitem__)
        if not order:
            raise UsageError(f"{path}: no symbol with an address (all zero: kptr_restrict hides "
                             "them from processes without CAP_SYSLOG)")
        mods: dict[bytes, str] = {b"": "kernel"}
        self.addresses = [addrs[i] for i in order]
        self.raw_names = [names[i] for i in order]
        """The names as the kernel wrote them (bytes: BCC's ``ksym`` returns them as is)."""
        self.modules = [mods.get(m) or mods.setdefault(m, m.decode())
                        for m in (mod_names[i] for i in order)]
        pages = [a >> _PAGE_SHIFT for a in self.addresses]
        first = dict(zip(reversed(pages), range(len(pages) - 1, -1, -1)))
        self._pages = {p: (lo, lo + c) for p, c in Counter(pages).items() for lo in (first[p],)}
        self._by_name: Optional[dict[str, int]] = None

    @functools.cached_property
    def names(self) -> list[str]:
        """The names, decoded (made on first use)."""
        return [n.decode(errors="surrogateescape") for n in self.raw_names]

    def index(self, addr: int) -> int:
        """Index of the symbol holding ``addr`` (the last one starting at or below it), -1
        below the first symbol."""
        span = self._pages.get(addr >> _PAGE_SHIFT)
        if span is None:
            return _bisect_right(self.addresses, addr) - 1
        lo, hi = span
        i = _bisect_right(self.addresses, addr, lo, hi) - 1
        return i if i >= lo else lo - 1

    def resolve(self, addr: int) -> Optional[tuple[str, int, str]]:
        """(name, offset from its start, module) of the symbol holding ``addr``, or None."""
        i = self.index(addr)
        if i < 0:
            return None
        return self.names[i], addr - self.addresses[i], self.modules[i]

    def address(self, name: str) -> Optional[int]:
        """The address of text symbol ``name`` (its first, lowest), None when absent."""
        if self._by_name is None:
            self._by_name = dict(zip(reversed(self.names), reversed(self.addresses)))
        return self._by_name.get(name)

    def __len__(self) -> int:
        return len(self.addresses)


@functools.lru_cache(maxsize=1)
def kernel_symbols() -> KernelSymbols:
    """The kernel's symbols, read on first use (``kernel_symbols.cache_clear()`` re-reads
    them, e.g. after a module was loaded)."""
    return KernelSymbols()


@dataclass(frozen=True)
class FileSymbols:
    """The function symbols of one ELF file (sorted by address) and its loadable segments."""

    path: str
    starts: list[int]
    ends: list[int]
    names: list[str]
    segments: list[tuple[int, int, int]]  # (vaddr, memsz, file offset) of each PT_LOAD
    build_id: bytes

    def resolve(self, vaddr: int) -> Optional[tuple[str, int]]:
        """(name, offset) of the function covering ``vaddr``; nested functions are found by
        stepping back while earlier symbols may still cover it, as BCC does."""
        i = bisect.bisect_right(self.starts, vaddr) - 1
        limit = self.starts[i] if i >= 0 else 0
        while i >= 0:
            if vaddr < self.ends[i]:
                return self.names[i], vaddr - self.starts[i]
            if limit > self.ends[i]:
                break
            i -= 1
        return None

    def vaddr(self, file_offset: int) -> Optional[int]:
        """The virtual address that ``file_offset`` is loaded at (None: in no segment)."""
        for vaddr, memsz, offset in self.segments:
            if offset <= file_offset < offset + memsz:
                return file_offset - offset + vaddr
        return None

    def address(self, name: str) -> Optional[int]:
        """The virtual address of function ``name``, None when absent."""
        try:
            return self.starts[self.names.index(name)]
        except ValueError:
            return None


def _build_id(elf: Any) -> bytes:
    """The GNU build id (NT_GNU_BUILD_ID note) of a ``pybpf.elf.reader.ElfFile``."""
    section = elf.section(".note.gnu.build-id")
    if section is not None:
        for note in elf.notes(section):
            if note.name == b"GNU" and note.type == NT_GNU_BUILD_ID:
                return note.desc
    return b""


def _crc_ok(path: str, crc: int) -> bool:
    value = 0
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            value = zlib.crc32(block, value)
    return value == crc


def debug_file(path: str, build_id: bytes, debuglink: bytes, debug_root: str = DEBUG_ROOT
               ) -> Optional[str]:
    """The separate debug file of ``path``: ``<root>/.build-id/xx/yyyy.debug`` for its build
    id, else the ``.gnu_debuglink`` name (whose CRC32 must match) next to the file, in its
    ``.debug/`` directory or under ``<root>/<its directory>``; None when there is none."""
    if build_id:
        hexid = build_id.hex()
        candidate = os.path.join(debug_root, ".build-id", hexid[:2], hexid[2:] + ".debug")
        if os.path.isfile(candidate):
            return candidate
    end = debuglink.find(b"\0")
    if end <= 0 or len(debuglink) < (end + 4 & ~3) + 4:
        return None
    name = debuglink[:end].decode(errors="surrogateescape")
    (crc,) = struct.unpack_from("<I", debuglink, end + 4 & ~3)
    directory = os.path.dirname(os.path.realpath(path))
    for candidate in (os.path.join(directory, name), os.path.join(directory, ".debug", name),
                      os.path.join(debug_root, directory.lstrip("/"), name)):
        if os.path.isfile(candidate) and os.path.realpath(candidate) != os.path.realpath(path) \
                and _crc_ok(candidate, crc):
            return candidate
    return None


def _binary(path: str) -> Any:
    from .links.uprobe import elf_file  # pybpf.elf.reader under uprobes' symbol reading
    try:
        return elf_file(path)
    except (UsageError, ObjectError, OSError):
        return None


def _functions(binary: Any) -> dict:
    try:
        return binary.functions
    except (UsageError, ObjectError):  # a symbol in no loadable segment: a damaged file
        return {}


@functools.lru_cache(maxsize=64)
def _file_symbols(path: str, dev: int, ino: int, mtime_ns: int, debug_root: str) -> FileSymbols:
    binary = _binary(path)
    if binary is None:
        return FileSymbols(path, [], [], [], [], b"")
    elf = binary.elf
    build_id = _build_id(elf)
    merged = dict(_functions(binary))
    if elf.section(".symtab") is None:
        link = elf.section(".gnu_debuglink")
        extra = debug_file(path, build_id, link.data if link is not None else b"", debug_root)
        debug = _binary(extra) if extra is not None else None
        if debug is not None:
            for name, sym in _functions(debug).items():
                merged.setdefault(name, sym)
    rows = sorted((s.address, s.address + max(s.size, 1), n) for n, s in merged.items())
    segments = [(s.vaddr, s.memsz, s.offset) for s in elf.segments if s.type == PT_LOAD]
    return FileSymbols(path, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                       segments, build_id)


def file_symbols(path: str, debug_root: str = DEBUG_ROOT) -> FileSymbols:
    """The function symbols of the ELF file at ``path`` (cached while the file is unchanged;
    a file that is not ELF has none)."""
    st = os.stat(path)
    return _file_symbols(path, st.st_dev, st.st_ino, st.st_mtime_ns, debug_root)


@dataclass(frozen=True)
class Mapping:
    """An executable file mapping of a process (``/proc/PID/maps``)."""

    start: int
    end: int
    file_offset: int
    path: str


def _perf_map(path: str) -> Optional[FileSymbols]:
    """``/tmp/perf-PID.map`` written by JITs: lines ``START SIZE name`` (hex); read again
    when it changed."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return _read_perf_map(path, st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=16)
def _read_perf_map(path: str, mtime_ns: int, size: int) -> Optional[FileSymbols]:
    rows = []
    try:
        with open(path, errors="surrogateescape") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 2)
                if len(parts) == 3:
                    start = int(parts[0], 16)
                    rows.append((start, start + int(parts[1], 16), parts[2]))
    except (OSError, ValueError):
        return None
    rows.sort()
    return FileSymbols(path, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows],
                       [], b"")


class ProcessSymbols:
    """The symbols of process ``pid``: address -> (function, offset, module file)."""

    def __init__(self, pid: int, debug_root: str = DEBUG_ROOT) -> None:
        self.pid = pid
        self.debug_root = debug_root
        self.exe_id = self._exe_id()
        self.mappings: list[Mapping] = []
        self.refresh()

    def _exe_id(self) -> Optional[tuple[int, int]]:
        try:
            st = os.stat(f"/proc/{self.pid}/exe")
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def refresh(self) -> None:
        """Re-read ``/proc/PID/maps`` (executable, file-backed mappings)."""
        maps = []
        try:
            with open(f"/proc/{self.pid}/maps") as f:
                for line in f:
                    parts = line.split(None, 5)
                    if len(parts) < 6 or parts[1][2] != "x":
                        continue
                    path = parts[5].rstrip("\n")
                    if not path.startswith("/") and path != VDSO:
                        continue
                    if path.endswith(" (deleted)") or path.startswith(("/dev/", "/memfd:")):
                        continue
                    start, end = (int(x, 16) for x in parts[0].split("-"))
                    maps.append(Mapping(start, end, int(parts[2], 16), path))
        except OSError:
            pass
        self.mappings = maps
        self._starts = [m.start for m in maps]
        self.refreshed = time.monotonic()

    def _file(self, path: str) -> FileSymbols:
        if path == VDSO:
            image = vdso_image()
            return file_symbols(image, self.debug_root) if image else \
                FileSymbols(path, [], [], [], [], b"")
        root = f"/proc/{self.pid}/root{path}"  # the process's view (containers, chroots)
        for candidate in (root, path):
            try:
                return file_symbols(candidate, self.debug_root)
            except OSError:
                continue
        return FileSymbols(path, [], [], [], [], b"")

    def _mapping(self, addr: int) -> Optional[Mapping]:
        i = bisect.bisect_right(self._starts, addr) - 1
        if i >= 0 and addr < self.mappings[i].end:
            return self.mappings[i]
        return None

    def resolve(self, addr: int) -> tuple[Optional[str], int, Optional[str]]:
        """(name, offset in the function, module path) as BCC's symbol cache answers: when
        no function covers ``addr`` but a mapping does, (None, offset in the module's
        address space, path); outside every mapping, (None, addr, None)."""
        if self._exe_id() != self.exe_id:  # exec'd since: everything changed
            self.exe_id = self._exe_id()
            self.refresh()
        mapping = self._mapping(addr)
        if mapping is None and time.monotonic() - self.refreshed > MAPS_REFRESH_INTERVAL:
            self.refresh()
            mapping = self._mapping(addr)
        module_offset = None
        if mapping is not None:
            syms = self._file(mapping.path)
            module_offset = syms.vaddr(addr - mapping.start + mapping.file_offset)
            if module_offset is not None:
                found = syms.resolve(module_offset)
                if found is not None:
                    return found[0], found[1], mapping.path
        perf = _perf_map(f"/tmp/perf-{self.pid}.map")
        if perf is not None:
            found = perf.resolve(addr)
            if found is not None:
                return found[0], found[1], perf.path
        if mapping is not None:
            return None, addr - mapping.start + mapping.file_offset \
                if module_offset is None else module_offset, mapping.path
        return None, addr, None

    def runtime_address(self, path: str, file_offset: int) -> Optional[int]:
        """Where the process mapped byte ``file_offset`` of executable file ``path`` (a path
        or a file name), None when it does not map it."""
        for mapping in self.mappings:
            if path in (mapping.path, os.path.basename(mapping.path)) and \
                    mapping.file_offset <= file_offset < mapping.file_offset + \
                    mapping.end - mapping.start:
                return mapping.start + file_offset - mapping.file_offset
        return None

    def address(self, module: str, name: str) -> Optional[int]:
        """The run-time address of function ``name`` in mapped ``module`` (a path or a file
        name), None when the module is not mapped or lacks the function."""
        for mapping in self.mappings:
            if module not in (mapping.path, os.path.basename(mapping.path)):
                continue
            syms = self._file(mapping.path)
            vaddr = syms.address(name)
            if vaddr is None:
                return None
            for seg_vaddr, memsz, offset in syms.segments:
                if seg_vaddr <= vaddr < seg_vaddr + memsz:
                    return self.runtime_address(mapping.path, vaddr - seg_vaddr + offset)
            return None
        return None


@functools.lru_cache(maxsize=1)
def vdso_image() -> Optional[str]:
    """The kernel's vDSO (mapped into every process; this one's copy read from
    ``/proc/self/mem``) saved as an ELF file in pybpf's cache, or None when that fails."""
    from . import cache
    try:
        with open("/proc/self/maps") as f:
            span = next((line.split()[0] for line in f if line.rstrip().endswith(VDSO)), None)
        if span is None:
            return None
        start, end = (int(x, 16) for x in span.split("-"))
        with open("/proc/self/mem", "rb") as mem:
            mem.seek(start)
            data = mem.read(end - start)
    except OSError:
        return None
    name = f"vdso/{os.uname().release}-{zlib.crc32(data):08x}.so"
    if cache.read(name) != data:
        cache.write(name, data)
    path = os.path.join(cache.cache_dir(), name)
    return path if os.path.isfile(path) else None


PROCESS_CACHE_SIZE = 1024
_processes: OrderedDict[int, ProcessSymbols] = OrderedDict()


def process_symbols(pid: int) -> ProcessSymbols:
    """The symbol cache of process ``pid``: the ``PROCESS_CACHE_SIZE`` most recently asked
    processes are kept (a profile of many short-lived processes does not grow it forever;
    their files' symbols stay cached by file)."""
    syms = _processes.get(pid)
    if syms is None:
        syms = _processes[pid] = ProcessSymbols(pid)
        if len(_processes) > PROCESS_CACHE_SIZE:
            _processes.popitem(last=False)
    else:
        _processes.move_to_end(pid)
    return syms


class BuildIdSymbols:
    """Files registered by build id, to symbolize ``(build id, file offset)`` pairs
    (stack traces taken with BPF_F_STACK_BUILD_ID)."""

    def __init__(self) -> None:
        self.files: dict[bytes, str] = {}

    def add(self, path: str) -> bytes:
        """Register the ELF file at ``path``; returns its build id."""
        syms = file_symbols(path)
        if not syms.build_id:
            raise UsageError(f"{path}: no GNU build id note (.note.gnu.build-id)")
        self.files[syms.build_id] = path
        return syms.build_id

    def resolve(self, build_id: bytes, file_offset: int) -> tuple[Optional[str], int,
                                                                  Optional[str]]:
        """(name, offset, path) of the function at ``file_offset`` of the file whose build id
        is ``build_id`` (its first 20 bytes compared, as the kernel stores them)."""
        for known, path in self.files.items():
            if known[:20] == build_id[:len(known[:20])]:
                syms = file_symbols(path)
                vaddr = syms.vaddr(file_offset)
                found = syms.resolve(vaddr) if vaddr is not None else None
                if found is not None:
                    return found[0], found[1], path
                return None, file_offset, path
        return None, file_offset, None


build_id_symbols = BuildIdSymbols()


@functools.lru_cache(maxsize=4096)
def demangle(name: str) -> str:
    """``name`` demangled by ``c++filt`` when it is an Itanium C++ name and c++filt is
    installed; otherwise ``name``."""
    if not name.startswith(("_Z", "___Z")):
        return name
    tool = shutil.which("c++filt")
    if tool is None:
        return name
    out = subprocess.run([tool, name], capture_output=True, text=True)
    return out.stdout.strip() or name if out.returncode == 0 else name
