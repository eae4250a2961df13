"""``post_attach_mark``: the native function ebpf_exporter's process calls once all programs
are attached, so that ``SEC("uprobe//proc/self/exe:post_attach_mark")`` runs once at start
(an initialisation step: a gauge read before any event updates it).

A Python process has no such symbol in its executable. pybpf writes a minimal ELF shared
object whose one exported function is a bare return instruction (bytes built here, no
compiler; kept under pybpf's cache dir), loads it with ctypes (``RTLD_GLOBAL``, so the
dynamic linker finds it from the process), and ``pybpf.links.uprobe`` resolves
``/proc/self/exe:post_attach_mark`` to that object's file and offset, for this process only.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import struct
from typing import Callable, Sequence

from .config import ConfigError

NAME = "post_attach_mark"
SELF_EXE = "/proc/self/exe:"
# machine -> (e_machine, the return instruction, the filler between functions)
MACHINES = {"x86_64": (62, b"\xc3", b"\xcc"),                     # ret; int3
            "aarch64": (183, bytes.fromhex("c0035fd6"), b"\0")}   # ret; udf
_RW_SHIFT = 0x10000   # the writable segment's distance from the file offset: a page apart
_SEGMENT_ALIGN = 0x10000
PT_LOAD, PT_DYNAMIC, PT_GNU_STACK = 1, 2, 0x6474E551
PF_X, PF_W, PF_R = 1, 2, 4
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_STRSZ, DT_SYMENT = 0, 4, 5, 6, 10, 11
SHT_PROGBITS, SHT_STRTAB, SHT_HASH, SHT_DYNAMIC, SHT_DYNSYM = 1, 3, 5, 6, 11
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 1, 2, 4
_EHDR = struct.Struct("<16sHHIQQQIHHHHHH")
_PHDR = struct.Struct("<IIQQQQQQ")
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_DYN = struct.Struct("<qQ")


def _align(n: int, to: int) -> int:
    return (n + to - 1) & -to


def shared_object(functions: Sequence[str], machine: str) -> bytes:
    """An ELF64 little-endian shared object (ET_DYN) whose dynamic symbols ``functions`` are
    global functions that return at once: what ``dlopen``/``dlsym`` need (PT_LOAD, PT_DYNAMIC
    with DT_HASH, DT_SYMTAB, DT_STRTAB; a non-executable stack) and section headers for tools
    and pybpf's ELF reader. No relocations, no dependencies."""
    if machine not in MACHINES:
        raise ConfigError(f"post_attach_mark: no return instruction known for machine "
                          f"{machine!r} (known: {', '.join(MACHINES)})")
    e_machine, ret, fill = MACHINES[machine]
    names = list(functions)
    nsym = len(names) + 1
    dynstr = b"\0" + b"".join(n.encode() + b"\0" for n in names)
    shstr_names = ["", ".hash", ".dynsym", ".dynstr", ".text", ".dynamic", ".shstrtab"]
    shstrtab = b"\0".join(n.encode() for n in shstr_names) + b"\0"
    name_off = [shstrtab.index(n.encode() + b"\0") if n else 0 for n in shstr_names]
    slot = _align(len(ret), 16)

    phnum = 4
    hash_off = _EHDR.size + phnum * _PHDR.size
    hash_data = struct.pack(f"<II I{nsym}I", 1, nsym, nsym - 1,
                            0, *range(nsym - 1))   # one bucket: the chain walks every symbol
    dynsym_off = _align(hash_off + len(hash_data), 8)
    dynstr_off = dynsym_off + nsym * _SYM.size
    text_off = _align(dynstr_off + len(dynstr), 16)
    text = b"".join(ret + fill * (slot - len(ret)) for _ in names)
    rx_end = text_off + len(text)
    dyn_off = _align(rx_end, 8)
    dyn_addr = dyn_off + _RW_SHIFT
    dynamic = b"".join(_DYN.pack(tag, value) for tag, value in (
        (DT_HASH, hash_off), (DT_STRTAB, dynstr_off), (DT_SYMTAB, dynsym_off),
        (DT_STRSZ, len(dynstr)), (DT_SYMENT, _SYM.size), (DT_NULL, 0)))
    shstr_off = dyn_off + len(dynamic)
    shoff = _align(shstr_off + len(shstrtab), 8)

    symbols = _SYM.pack(0, 0, 0, 0, 0, 0) + b"".join(
        _SYM.pack(dynstr.index(n.encode() + b"\0"), (1 << 4) | 2, 0, 4,  # GLOBAL FUNC, .text
                  text_off + i * slot, len(ret)) for i, n in enumerate(names))
    ident = b"\x7fELF" + bytes([2, 1, 1, 0]) + bytes(8)   # ELF64, LSB, version 1, SysV ABI
    header = _EHDR.pack(ident, 3, e_machine, 1, 0, _EHDR.size, shoff, 0, _EHDR.size,
                        _PHDR.size, phnum, _SHDR.size, len(shstr_names), 6)
    phdrs = b"".join((
        _PHDR.pack(PT_LOAD, PF_R | PF_X, 0, 0, 0, rx_end, rx_end, _SEGMENT_ALIGN),
        _PHDR.pack(PT_LOAD, PF_R | PF_W, dyn_off, dyn_addr, dyn_addr, len(dynamic),
                   len(dynamic), _SEGMENT_ALIGN),
        _PHDR.pack(PT_DYNAMIC, PF_R | PF_W, dyn_off, dyn_addr, dyn_addr, len(dynamic),
                   len(dynamic), 8),
        _PHDR.pack(PT_GNU_STACK, PF_R | PF_W, 0, 0, 0, 0, 0, 16)))
    sections = b"".join((
        _SHDR.pack(0, 0, 0, 0, 0, 0, 0, 0, 0, 0),
        _SHDR.pack(name_off[1], SHT_HASH, SHF_ALLOC, hash_off, hash_off, len(hash_data),
                   2, 0, 4, 4),
        _SHDR.pack(name_off[2], SHT_DYNSYM, SHF_ALLOC, dynsym_off, dynsym_off, len(symbols),
                   3, 1, 8, _SYM.size),
        _SHDR.pack(name_off[3], SHT_STRTAB, SHF_ALLOC, dynstr_off, dynstr_off, len(dynstr),
                   0, 0, 1, 0),
        _SHDR.pack(name_off[4], SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, text_off, text_off,
                   len(text), 0, 0, 16, 0),
        _SHDR.pack(name_off[5], SHT_DYNAMIC, SHF_ALLOC | SHF_WRITE, dyn_addr, dyn_off,
                   len(dynamic), 3, 0, 8, _DYN.size),
        _SHDR.pack(name_off[6], SHT_STRTAB, 0, 0, shstr_off, len(shstrtab), 0, 0, 1, 0)))
    out = bytearray(shoff)
    for off, data in ((0, header), (_EHDR.size, phdrs), (hash_off, hash_data),
                      (dynsym_off, symbols), (dynstr_off, dynstr), (text_off, text),
                      (dyn_off, dynamic), (shstr_off, shstrtab)):
        out[off:off + len(data)] = data
    return bytes(out) + sections


def path_for(data: bytes) -> str:
    """Where the object with contents ``data`` is kept: pybpf's cache dir, named by a hash of
    the contents, so a file once there never changes (a process mapping it is never left with
    a replaced file)."""
    from ..cache import cache_dir
    digest = hashlib.sha256(data).hexdigest()[:16]
    return os.path.join(cache_dir(), "exporter", f"post-attach-mark-{digest}.so")


def _store(data: bytes) -> str:
    path = path_for(data)
    try:
        with open(path, "rb") as f:
            if f.read() == data:
                return path
    except FileNotFoundError:
        pass
    except OSError as e:
        raise ConfigError(f"post_attach_mark: reading {path}: {e.strerror}") from None
    import tempfile
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            os.chmod(tmp, 0o644)
            try:
                os.link(tmp, path)   # never over an existing file (see path_for)
            except FileExistsError:
                with open(path, "rb") as f:
                    if f.read() != data:
                        raise ConfigError(f"post_attach_mark: {path} exists with other "
                                          "contents: remove it") from None
        finally:
            os.unlink(tmp)
    except OSError as e:
        raise ConfigError(f"post_attach_mark: writing {path}: {e.strerror}") from None
    return path


def load() -> Callable[[], None]:
    """The process's ``post_attach_mark`` function: the shared object written (once) and
    loaded with ``RTLD_GLOBAL``; calling it is what fires uprobes placed on it."""
    path = _store(shared_object([NAME], platform.machine()))
    try:
        lib = ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    except OSError as e:
        raise ConfigError(f"post_attach_mark: loading {path}: {e}") from None
    func = getattr(lib, NAME)
    func.restype = None
    func.argtypes = []
    return func
