"""Reading a BPF ELF object: sections, symbols and relocations as plain data.

The ELF64 header, section header table, symbol and relocation tables are fixed-layout
records, each decoded with ``struct`` (pyelftools would cost ~25 ms of imports at start-up and
parses entry by entry). Every malformation (truncated file, offsets or counts past the end, a
wrong machine or class) is an ObjectError naming the object. Objects of either byte order are
read; ``byte_order`` says which.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Optional

from ..errors import ObjectError

EM_BPF = 247
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2
_SHN = {"SHN_UNDEF": SHN_UNDEF, "SHN_ABS": SHN_ABS, "SHN_COMMON": SHN_COMMON}
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
STV_HIDDEN = 2
SHN_XINDEX = 0xFFFF
SHT_NOBITS = 8
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
_EHDR = "16sHHIQQQIHHHHHH"  # Elf64_Ehdr: e_ident ... e_shstrndx (64 bytes)
_SHDR = "IIQQQQIIQQ"        # Elf64_Shdr: name type flags addr offset size link info align entsize
_SHT = {0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB", 4: "SHT_RELA",
        5: "SHT_HASH", 6: "SHT_DYNAMIC", 7: "SHT_NOTE", 8: "SHT_NOBITS", 9: "SHT_REL",
        10: "SHT_SHLIB", 11: "SHT_DYNSYM", 14: "SHT_INIT_ARRAY", 15: "SHT_FINI_ARRAY",
        16: "SHT_PREINIT_ARRAY", 17: "SHT_GROUP", 18: "SHT_SYMTAB_SHNDX", 19: "SHT_RELR"}


@dataclass(frozen=True)
class Section:
    """One section: ``data`` is b'' for NOBITS (.bss); ``size`` is the size it occupies."""

    index: int
    name: str
    type: str  # "SHT_PROGBITS", "SHT_NOBITS", "SHT_REL", ...
    flags: int
    size: int
    data: bytes
    link: int
    info: int
    entsize: int

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)


@dataclass(frozen=True)
class Symbol:
    """A symbol table entry: ``shndx`` the section it is in (SHN_UNDEF: an extern)."""

    index: int
    name: str
    value: int
    size: int
    bind: int
    type: int
    visibility: int
    shndx: int


@dataclass(frozen=True)
class Relocation:
    """A REL entry of the section it applies to: byte ``offset``, ``symbol`` index, ``type``."""

    offset: int
    symbol: int
    type: int


@dataclass
class ElfObject:
    """The parts of a BPF ELF object the loader uses."""

    name: str
    byte_order: str  # "little" | "big"
    sections: list[Section]
    symbols: list[Symbol]
    relocations: dict[int, list[Relocation]] = field(default_factory=dict)  # by target section

    def section(self, name: str) -> Optional[Section]:
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def symbol(self, index: int, what: str) -> Symbol:
        if not 0 <= index < len(self.symbols):
            raise ObjectError(f"{self.name}: {what} refers to symbol {index}, but the symbol "
                              f"table has {len(self.symbols)} entries")
        return self.symbols[index]


def read_elf(data: bytes, name: str = "object") -> ElfObject:
    """Parse ``data`` (a whole ``clang -target bpf`` object file)."""
    try:
        return _read(bytes(data), name)
    except ObjectError:
        raise
    except RecursionError:
        raise ObjectError(f"{name}: malformed ELF object (nesting too deep)") from None
    except (struct.error, ValueError, IndexError) as e:
        raise ObjectError(f"{name}: malformed ELF object: {type(e).__name__}: {e}") from None


def _read(data: bytes, name: str) -> ElfObject:
    if data[:4] != b"\x7fELF":
        raise ObjectError(f"{name}: not an ELF file (no \\x7fELF magic)")
    if len(data) < 64:
        raise ObjectError(f"{name}: truncated ELF header ({len(data)} bytes, not 64)")
    elfclass, encoding = data[4], data[5]
    if elfclass == ELFCLASS32:
        raise ObjectError(f"{name}: a 32-bit ELF object; BPF objects are 64-bit")
    if elfclass != ELFCLASS64 or encoding not in (ELFDATA2LSB, ELFDATA2MSB):
        raise ObjectError(f"{name}: malformed ELF object: class {elfclass}, data encoding "
                          f"{encoding} in its identification bytes")
    order = "little" if encoding == ELFDATA2LSB else "big"
    e = "<" if order == "little" else ">"
    (_, _, machine, _, _, _, shoff, _, _, _, _, shentsize, shnum,
     shstrndx) = struct.unpack_from(e + _EHDR, data)
    if machine != EM_BPF:
        raise ObjectError(f"{name}: ELF machine {machine} is not BPF (EM_BPF, 247): "
                          "compile with clang -target bpf")
    headers = []
    if shoff:
        if shentsize < 64 or shoff + max(shnum, 1) * shentsize > len(data):
            raise ObjectError(f"{name}: section header table ({shnum} entries at offset "
                              f"{shoff}) lies past the end of the {len(data)}-byte file")
        first = struct.unpack_from(e + _SHDR, data, shoff)
        if shnum == 0:  # 0xff00 sections or more: section 0's sh_size holds the count
            shnum = first[5]
        if shstrndx == SHN_XINDEX:  # and section 0's sh_link the name table's index
            shstrndx = first[6]
        if shoff + shnum * shentsize > len(data):
            raise ObjectError(f"{name}: section header table ({shnum} entries at offset "
                              f"{shoff}) lies past the end of the {len(data)}-byte file")
        headers = [struct.unpack_from(e + _SHDR, data, shoff + i * shentsize)
                   for i in range(shnum)]
    if shstrndx >= max(len(headers), 1):
        raise ObjectError(f"{name}: section name table index {shstrndx} is out of range "
                          f"({len(headers)} sections)")
    for i, (_, stype, _, _, off, size, _, _, _, _) in enumerate(headers):
        if stype != SHT_NOBITS and off + size > len(data):  # the others occupy the file
            raise ObjectError(f"{name}: section {i} ({size} bytes at offset {off}) lies "
                              f"past the end of the {len(data)}-byte file")
    names = b""  # no section name table (e_shstrndx SHN_UNDEF): every name is empty
    if shstrndx:
        off, size = headers[shstrndx][4:6]
        names = data[off:off + size]
    sections = [Section(i, _cstr(names, nm, name, "section name") if names else "",
                        _SHT.get(stype, f"SHT_{stype:#x}"), flags, size,
                        b"" if stype == SHT_NOBITS else data[off:off + size], link, info,
                        entsize)
                for i, (nm, stype, flags, _, off, size, link, info, _, entsize)
                in enumerate(headers)]
    obj = ElfObject(name, order, sections, [])
    symtabs = [s for s in sections if s.type == "SHT_SYMTAB"]
    if len(symtabs) > 1:
        raise ObjectError(f"{name}: {len(symtabs)} symbol tables; a BPF object has one")
    if symtabs:
        st = symtabs[0]
        if not 0 <= st.link < len(sections):
            raise ObjectError(f"{name}: symbol table's string table index {st.link} is out of "
                              "range")
        strtab = sections[st.link].data
        usable = len(st.data) - len(st.data) % 24
        obj.symbols = [
            Symbol(i, _cstr(strtab, nm, name, "symbol name"), value, size, info >> 4,
                   info & 0xF, other & 0x3, shndx)
            for i, (nm, info, other, shndx, value, size)
            in enumerate(struct.iter_unpack(e + "IBBHQQ", st.data[:usable]))]
    for s in sections:
        if s.type == "SHT_RELA":
            raise ObjectError(f"{name}: section {s.name!r} holds RELA relocations; BPF objects "
                              "use REL")
        if s.type != "SHT_REL":
            continue
        usable = len(s.data) - len(s.data) % 16
        obj.relocations.setdefault(s.info, []).extend(
            Relocation(off, rinfo >> 32, rinfo & 0xFFFFFFFF)
            for off, rinfo in struct.iter_unpack(e + "QQ", s.data[:usable]))
    return obj


def _cstr(table: bytes, offset: int, name: str, what: str) -> str:
    """The NUL-terminated string at ``offset`` of a string table."""
    if not 0 <= offset < max(len(table), 1):
        raise ObjectError(f"{name}: {what} offset {offset} lies outside its string table "
                          f"({len(table)} bytes)")
    end = table.find(b"\0", offset)
    return table[offset:end if end >= 0 else len(table)].decode("utf-8", errors="replace")
