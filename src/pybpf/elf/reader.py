"""Reading ELF files: BPF objects and host binaries (executables, shared libraries).

One reader for both. ``ElfFile`` decodes the fixed-layout records of any ELF file (either
class, either byte order, any machine) with ``struct``: the header, section headers, program
headers (``segments``), symbol tables (``.symtab``, ``.dynsym``) and notes; section contents
are sliced from the file's bytes (a read-only mmap for host binaries) only when asked.
``read_elf`` is the BPF object's view on top: one symbol table, REL relocations, EM_BPF.
pyelftools was measured slower to import and to resolve symbols (benchmarks/elf_reader.py).
Every malformation (truncated file, offsets or counts past the end, a wrong machine or class)
is an ObjectError naming the file. Nothing here calls the kernel.
"""
from __future__ import annotations

import functools
import mmap
import operator
import struct
from typing import Any, Iterator, Literal, NamedTuple, Optional, Union

from .._record import field, record
from ..errors import ObjectError

EM_BPF = 247
ET_REL, ET_EXEC, ET_DYN = 1, 2, 3
PT_LOAD = 1
SHN_UNDEF, SHN_ABS, SHN_COMMON = 0, 0xFFF1, 0xFFF2
STB_LOCAL, STB_GLOBAL, STB_WEAK = 0, 1, 2
STT_NOTYPE, STT_OBJECT, STT_FUNC, STT_SECTION = 0, 1, 2, 3
SHF_WRITE, SHF_ALLOC, SHF_EXECINSTR = 0x1, 0x2, 0x4
STV_HIDDEN = 2
SHN_XINDEX = 0xFFFF
SHT_NOBITS = 8
ELFCLASS32, ELFCLASS64 = 1, 2
ELFDATA2LSB, ELFDATA2MSB = 1, 2
_SHT = {0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB", 4: "SHT_RELA",
        5: "SHT_HASH", 6: "SHT_DYNAMIC", 7: "SHT_NOTE", 8: "SHT_NOBITS", 9: "SHT_REL",
        10: "SHT_SHLIB", 11: "SHT_DYNSYM", 14: "SHT_INIT_ARRAY", 15: "SHT_FINI_ARRAY",
        16: "SHT_PREINIT_ARRAY", 17: "SHT_GROUP", 18: "SHT_SYMTAB_SHNDX", 19: "SHT_RELR"}


class _Layout(NamedTuple):  # a NamedTuple: a fraction of a dataclass's import time
    """The record formats of one ELF class, fields in the order the code reads them."""

    ehdr: str  # e_ident type machine version entry phoff shoff flags ehsize phentsize phnum
    #            shentsize shnum shstrndx
    shdr: str  # name type flags addr offset size link info addralign entsize
    phdr: str  # as stored; ``phdr_order`` puts it as type flags offset vaddr filesz memsz
    phdr_order: tuple[int, ...]
    sym: str   # as stored; ``sym_order`` puts it as name info other shndx value size
    sym_order: tuple[int, ...]


_LAYOUTS = {
    ELFCLASS64: _Layout("16sHHIQQQIHHHHHH", "IIQQQQIIQQ", "IIQQQQQQ", (0, 1, 2, 3, 5, 6),
                        "IBBHQQ", (0, 1, 2, 3, 4, 5)),
    ELFCLASS32: _Layout("16sHHIIIIIHHHHHH", "IIIIIIIIII", "IIIIIIII", (0, 6, 1, 2, 4, 5),
                        "IIIBBH", (0, 3, 4, 5, 1, 2)),
}


@record(frozen=True)
class Section:
    """One section: ``data`` is b'' for NOBITS (.bss); ``size`` is the size it occupies,
    ``addr`` its address in memory (0 when not loaded), ``offset`` where it is in the file."""

    index: int
    name: str
    type: str  # "SHT_PROGBITS", "SHT_NOBITS", "SHT_REL", ...
    flags: int
    size: int
    link: int
    info: int
    entsize: int
    addr: int = 0
    offset: int = 0
    align: int = 0
    _file: Any = field(default=b"", repr=False, compare=False)

    @property
    def executable(self) -> bool:
        return bool(self.flags & SHF_EXECINSTR)

    @functools.cached_property
    def data(self) -> bytes:
        """The section's contents as stored in the file."""
        if self.type == "SHT_NOBITS":
            return b""
        return bytes(self._file[self.offset:self.offset + self.size])


class Segment(NamedTuple):
    """A program header: ``filesz`` bytes at file ``offset`` are ``memsz`` bytes at ``vaddr``."""

    type: int  # PT_LOAD, ...
    flags: int
    offset: int
    vaddr: int
    filesz: int
    memsz: int


@record(frozen=True)
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


class Note(NamedTuple):
    """An ELF note: owner ``name`` (``stapsdt``, ``GNU``), ``type`` and ``desc`` bytes."""

    name: bytes
    type: int
    desc: bytes


class Relocation(NamedTuple):
    """A REL entry of the section it applies to: byte ``offset``, ``symbol`` index, ``type``."""

    offset: int
    symbol: int
    type: int


class ElfFile:
    """An ELF file's headers over its bytes; contents decoded on demand.

    ``elf_class`` is 32 or 64, ``byte_order`` "little" or "big", ``type`` the e_type
    (ET_EXEC, ET_DYN: shared libraries and PIE programs, ET_REL: objects).
    """

    def __init__(self, data: Union[bytes, mmap.mmap], name: str = "object") -> None:
        self.name = name
        self._data = data
        try:
            self._read_headers()
        except ObjectError:
            raise
        except (struct.error, ValueError, IndexError, OverflowError) as e:
            raise self._malformed(e) from None

    @classmethod
    def open(cls, path: str) -> "ElfFile":
        """The ELF file at ``path``, mapped read-only (nothing is read until asked)."""
        try:
            with open(path, "rb") as f:
                data: Union[bytes, mmap.mmap] = (mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
                                                 if f.seek(0, 2) else b"")
        except OSError as e:
            raise ObjectError(f"{path}: cannot read ELF file: {e.strerror}") from None
        return cls(data, path)

    def _malformed(self, e: Exception) -> ObjectError:
        return ObjectError(f"{self.name}: malformed ELF object: {type(e).__name__}: {e}")

    def _read_headers(self) -> None:
        data, name = self._data, self.name
        if data[:4] != b"\x7fELF":
            raise ObjectError(f"{name}: not an ELF file (no \\x7fELF magic)")
        elfclass, encoding = data[4], data[5]
        if elfclass not in _LAYOUTS or encoding not in (ELFDATA2LSB, ELFDATA2MSB):
            raise ObjectError(f"{name}: malformed ELF object: class {elfclass}, data encoding "
                              f"{encoding} in its identification bytes")
        self.elf_class = 64 if elfclass == ELFCLASS64 else 32
        self.byte_order: Literal["little", "big"] = "little" if encoding == ELFDATA2LSB else "big"
        self._e = e = "<" if self.byte_order == "little" else ">"
        self._layout = lay = _LAYOUTS[elfclass]
        size = struct.calcsize(e + lay.ehdr)
        if len(data) < size:
            raise ObjectError(f"{name}: truncated ELF header ({len(data)} bytes, not {size})")
        (_, self.type, self.machine, _, self.entry, self._phoff, shoff, _, _, self._phentsize,
         self._phnum, shentsize, shnum, shstrndx) = struct.unpack_from(e + lay.ehdr, data)
        shdr = struct.Struct(e + lay.shdr)
        headers = []
        if shoff:
            if shentsize < shdr.size or shoff + max(shnum, 1) * shentsize > len(data):
                raise ObjectError(f"{name}: section header table ({shnum} entries at offset "
                                  f"{shoff}) lies past the end of the {len(data)}-byte file")
            first = shdr.unpack_from(data, shoff)
            if shnum == 0:  # 0xff00 sections or more: section 0's sh_size holds the count
                shnum = first[5]
            if shstrndx == SHN_XINDEX:  # and section 0's sh_link the name table's index
                shstrndx = first[6]
            if shoff + shnum * shentsize > len(data):
                raise ObjectError(f"{name}: section header table ({shnum} entries at offset "
                                  f"{shoff}) lies past the end of the {len(data)}-byte file")
            headers = [shdr.unpack_from(data, shoff + i * shentsize) for i in range(shnum)]
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
            names = bytes(data[off:off + size])
        self.sections = [
            Section(i, _cstr(names, nm, name, "section name") if names else "",
                    _SHT.get(stype, f"SHT_{stype:#x}"), flags, size, link, info, entsize, addr,
                    off, align, data)
            for i, (nm, stype, flags, addr, off, size, link, info, align, entsize)
            in enumerate(headers)]

    @functools.cached_property
    def segments(self) -> list[Segment]:
        """The program headers (an executable's or library's segments; none in objects)."""
        if not self._phoff or not self._phnum:
            return []
        phdr = struct.Struct(self._e + self._layout.phdr)
        end = self._phoff + self._phnum * self._phentsize
        if self._phentsize < phdr.size or end > len(self._data):
            raise ObjectError(f"{self.name}: program header table ({self._phnum} entries at "
                              f"offset {self._phoff}) lies past the end of the file")
        order = self._layout.phdr_order
        return [Segment(*(raw[k] for k in order))
                for raw in (phdr.unpack_from(self._data, self._phoff + i * self._phentsize)
                            for i in range(self._phnum))]

    def section(self, name: str) -> Optional[Section]:
        """The first section called ``name``, or None."""
        for s in self.sections:
            if s.name == name:
                return s
        return None

    def read_symbols(self, table: Section) -> list[Symbol]:
        """The entries of symbol table ``table`` (SHT_SYMTAB or SHT_DYNSYM), in order."""
        if not 0 <= table.link < len(self.sections):
            raise ObjectError(f"{self.name}: symbol table {table.name!r}'s string table index "
                              f"{table.link} is out of range")
        strtab = self.sections[table.link].data
        rec = struct.Struct(self._e + self._layout.sym)
        raw = table.data
        usable = len(raw) - len(raw) % rec.size
        pick = operator.itemgetter(*self._layout.sym_order)
        return [Symbol(i, _cstr(strtab, nm, self.name, "symbol name"), value, size, info >> 4,
                       info & 0xF, other & 0x3, shndx)
                for i, (nm, info, other, shndx, value, size)
                in enumerate(map(pick, rec.iter_unpack(raw[:usable])))]

    def notes(self, section: Section) -> Iterator[Note]:
        """The notes of SHT_NOTE ``section``: ``namesz``, ``descsz``, ``type``, then the name
        and the descriptor, each starting at the section's alignment (4, or 8 for 8-aligned
        note sections such as ``.note.gnu.property``)."""
        data = section.data
        pad = 8 if section.align == 8 else 4
        head = struct.Struct(self._e + "III")
        pos = 0
        while pos + head.size <= len(data):
            namesz, descsz, ntype = head.unpack_from(data, pos)
            name_at = pos + head.size
            desc_at = name_at + namesz + pad - 1 & -pad
            pos = desc_at + descsz + pad - 1 & -pad
            if desc_at + descsz > len(data):
                raise ObjectError(f"{self.name}: note in {section.name!r} runs past the "
                                  f"section's end ({descsz} descriptor bytes at {desc_at})")
            yield Note(data[name_at:name_at + namesz].rstrip(b"\0"), ntype,
                       data[desc_at:desc_at + descsz])

    def file_offset(self, address: int) -> int:
        """The file offset of virtual ``address`` (through the PT_LOAD segment holding it)."""
        for s in self.segments:
            if s.type == PT_LOAD and s.vaddr <= address < s.vaddr + s.memsz:
                return address - s.vaddr + s.offset
        raise ObjectError(f"{self.name}: address {address:#x} is in no loadable segment")

    def unpack(self, fmt: str, data: bytes, offset: int = 0) -> tuple[Any, ...]:
        """``struct.unpack_from`` in the file's byte order (``fmt`` without an order prefix)."""
        return struct.unpack_from(self._e + fmt, data, offset)


class ElfObject(ElfFile):
    """A BPF ELF object: its one symbol table and its REL relocations by target section."""

    def __init__(self, data: bytes, name: str = "object") -> None:
        if data[:4] == b"\x7fELF" and data[4:5] == bytes([ELFCLASS32]):
            raise ObjectError(f"{name}: a 32-bit ELF object; BPF objects are 64-bit")
        super().__init__(data, name)
        if self.machine != EM_BPF:
            raise ObjectError(f"{name}: ELF machine {self.machine} is not BPF (EM_BPF, 247): "
                              "compile with clang -target bpf")
        symtabs = [s for s in self.sections if s.type == "SHT_SYMTAB"]
        if len(symtabs) > 1:
            raise ObjectError(f"{name}: {len(symtabs)} symbol tables; a BPF object has one")
        self.symbols = self.read_symbols(symtabs[0]) if symtabs else []
        # of loaded sections only: as libbpf, DWARF's and .BTF's relocations are not read
        self.relocations: dict[int, list[Relocation]] = {}
        rel = struct.Struct(self._e + "QQ")
        for s in self.sections:
            if s.type == "SHT_RELA":
                raise ObjectError(f"{name}: section {s.name!r} holds RELA relocations; BPF "
                                  "objects use REL")
            if s.type != "SHT_REL" or not (0 <= s.info < len(self.sections) and
                                           self.sections[s.info].flags & SHF_ALLOC):
                continue
            usable = len(s.data) - len(s.data) % rel.size
            self.relocations.setdefault(s.info, []).extend(
                Relocation(off, rinfo >> 32, rinfo & 0xFFFFFFFF)
                for off, rinfo in rel.iter_unpack(s.data[:usable]))

    def symbol(self, index: int, what: str) -> Symbol:
        if not 0 <= index < len(self.symbols):
            raise ObjectError(f"{self.name}: {what} refers to symbol {index}, but the symbol "
                              f"table has {len(self.symbols)} entries")
        return self.symbols[index]


def read_elf(data: bytes, name: str = "object") -> ElfObject:
    """Parse ``data`` (a whole ``clang -target bpf`` object file)."""
    try:
        return ElfObject(bytes(data), name)
    except ObjectError:
        raise
    except RecursionError:
        raise ObjectError(f"{name}: malformed ELF object (nesting too deep)") from None
    except (struct.error, ValueError, IndexError) as e:
        raise ObjectError(f"{name}: malformed ELF object: {type(e).__name__}: {e}") from None


def _cstr(table: bytes, offset: int, name: str, what: str) -> str:
    """The NUL-terminated string at ``offset`` of a string table."""
    if not 0 <= offset < max(len(table), 1):
        raise ObjectError(f"{name}: {what} offset {offset} lies outside its string table "
                          f"({len(table)} bytes)")
    end = table.find(b"\0", offset)
    return table[offset:end if end >= 0 else len(table)].decode("utf-8", errors="replace")
