"""The ELF reader (``pybpf.elf.reader``, struct-decoded) against pyelftools as the reference:
same sections, names, types and contents; extended section numbering; clear errors."""
from __future__ import annotations

import io
import struct

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.elf.reader import read_elf
from pybpf.errors import ObjectError


def test_sections_match_pyelftools(bpf_objects) -> None:
    for name, path in bpf_objects.items():
        data = path.read_bytes()
        ours = read_elf(data, name)
        ref = ELFFile(io.BytesIO(data))
        assert ours.byte_order == ("little" if ref.little_endian else "big")
        assert len(ours.sections) == ref.num_sections() > 0
        for sec, want in zip(ours.sections, ref.iter_sections()):
            stype = want["sh_type"]
            assert (sec.name, sec.type, sec.flags, sec.size, sec.link, sec.info, sec.entsize) == (
                want.name, stype if isinstance(stype, str) else f"SHT_{stype:#x}",
                want["sh_flags"], want["sh_size"], want["sh_link"], want["sh_info"],
                want["sh_entsize"]), (name, sec.index)
            assert sec.data == (b"" if stype == "SHT_NOBITS" else want.data())
        symtab = ref.get_section_by_name(".symtab")
        assert [s.name for s in ours.symbols] == [s.name for s in symtab.iter_symbols()]


def test_extended_section_numbering(bpf_objects) -> None:
    """e_shnum 0 and e_shstrndx SHN_XINDEX: the count and the name table's index are in
    section 0's sh_size and sh_link (objects of 0xff00 sections or more)."""
    data = bytearray(bpf_objects["elf_globals"].read_bytes())
    shoff, = struct.unpack_from("<Q", data, 0x28)
    shnum, shstrndx = struct.unpack_from("<HH", data, 0x3C)
    struct.pack_into("<HH", data, 0x3C, 0, 0xFFFF)
    struct.pack_into("<Q", data, shoff + 32, shnum)     # section 0's sh_size
    struct.pack_into("<I", data, shoff + 40, shstrndx)  # section 0's sh_link
    ours = read_elf(bytes(data), "x.o")
    plain = read_elf(bpf_objects["elf_globals"].read_bytes(), "x.o")
    assert [s.name for s in ours.sections] == [s.name for s in plain.sections]
    assert ours.symbols == plain.symbols and ours.relocations == plain.relocations


@pytest.mark.parametrize("offset, value, message", [
    (4, 1, "a 32-bit ELF object; BPF objects are 64-bit"),
    (4, 3, "malformed ELF object: class 3"),
    (5, 0, "malformed ELF object: class 2, data encoding 0"),
    (0x12, 62, "ELF machine 62 is not BPF"),
])
def test_header_errors(bpf_objects, offset: int, value: int, message: str) -> None:
    data = bytearray(bpf_objects["elf_globals"].read_bytes())
    struct.pack_into("<H" if offset == 0x12 else "B", data, offset, value)
    with pytest.raises(ObjectError, match=f"^x.o: {message}"):
        read_elf(bytes(data), "x.o")


def test_truncated_and_out_of_range(bpf_objects) -> None:
    data = bpf_objects["elf_globals"].read_bytes()
    with pytest.raises(ObjectError, match="truncated ELF header"):
        read_elf(data[:40], "x.o")
    bad = bytearray(data)
    struct.pack_into("<H", bad, 0x3E, 0xFFF0)  # e_shstrndx past the section table
    with pytest.raises(ObjectError, match="section name table index 65520 is out of range"):
        read_elf(bytes(bad), "x.o")
