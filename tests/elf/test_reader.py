"""The ELF reader (``pybpf.elf.reader``, struct-decoded) against pyelftools as the reference:
same sections, names, types and contents, program headers, symbol tables and notes, for BPF
objects and host binaries (PIE and fixed-address programs, libc, 32-bit and big-endian
objects); extended section numbering; clear errors."""
from __future__ import annotations

import io
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.enums import ENUM_ST_INFO_BIND, ENUM_ST_INFO_TYPE

from pybpf.elf.reader import ET_DYN, ET_EXEC, PT_LOAD, ElfFile, read_elf
from pybpf.errors import ObjectError
from pybpf.links.uprobe import resolve_binary

HOST_SRC = r"""
#include <sys/sdt.h>
int main(int argc, char **argv)
{
	STAP_PROBE2(reader, start, argc, argv);
	return 0;
}
"""
MACHINES = {"EM_X86_64": 62, "EM_386": 3, "EM_PPC": 20, "EM_BPF": 247}
SHN = {"SHN_UNDEF": 0, "SHN_ABS": 0xFFF1, "SHN_COMMON": 0xFFF2}
OBJ_SRC = "int counter = 3;\nint add(int a, int b) { return a + b + counter; }\n"


def test_sections_match_pyelftools(bpf_objects) -> None:
    skipped_debug = 0
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
        # REL entries of the loaded sections (programs, .maps, .struct_ops); as libbpf, those
        # of DWARF and .BTF sections are not read
        want_rels = {}
        for rel in ref.iter_sections():
            if rel["sh_type"] == "SHT_REL" and ours.sections[rel["sh_info"]].flags & 0x2:
                want_rels[rel["sh_info"]] = [(r["r_offset"], r["r_info_sym"], r["r_info_type"])
                                             for r in rel.iter_relocations()]
        assert {k: [tuple(r) for r in v] for k, v in ours.relocations.items()} == want_rels
        skipped_debug += sum(1 for r in ref.iter_sections() if r["sh_type"] == "SHT_REL"
                             and ours.sections[r["sh_info"]].name.startswith(".debug_"))
    assert skipped_debug, "no object compiled with -g: the DWARF case went untested"


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


@pytest.fixture(scope="module")
def host_files(tmp_path_factory, clang) -> dict[str, Path]:
    """A USDT program built PIE and fixed-address, libc, and 32-bit / big-endian objects."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler: `apt-get install gcc` (.ci/install installs it)")
    out = tmp_path_factory.mktemp("host_elf")
    (out / "prog.c").write_text(HOST_SRC)
    (out / "obj.c").write_text(OBJ_SRC)
    files = {"libc": Path(resolve_binary("libc.so.6"))}
    for name, flags in (("pie", ["-fPIE", "-pie"]), ("fixed", ["-fno-PIE", "-no-pie"])):
        subprocess.run([cc, "-O2", *flags, "-o", str(out / name), str(out / "prog.c")], check=True)
        files[name] = out / name
    for target in ("i386-linux-gnu", "powerpc-linux-gnu", "bpfeb"):
        obj = out / f"{target}.o"
        subprocess.run([clang, f"--target={target}", "-O2", "-c", str(out / "obj.c"), "-o",
                        str(obj)], check=True)
        files[target] = obj
    return files


def test_host_files_match_pyelftools(host_files) -> None:
    for what, path in host_files.items():
        ours = ElfFile.open(str(path))
        with open(path, "rb") as f:
            ref = ELFFile(f)
            assert (ours.elf_class, ours.byte_order, ours.machine) == (
                ref.elfclass, "little" if ref.little_endian else "big",
                MACHINES[ref.header.e_machine]), what
            assert [(s.name, s.addr, s.offset, s.size, s.align) for s in ours.sections] == [
                (s.name, s["sh_addr"], s["sh_offset"], s["sh_size"], s["sh_addralign"])
                for s in ref.iter_sections()], what
            assert [(s.type == PT_LOAD, s.flags, s.offset, s.vaddr, s.filesz, s.memsz)
                    for s in ours.segments] == [
                (g["p_type"] == "PT_LOAD", g["p_flags"], g["p_offset"], g["p_vaddr"],
                 g["p_filesz"], g["p_memsz"]) for g in ref.iter_segments()], what
            for sec, want in zip(ours.sections, ref.iter_sections()):
                if sec.type in ("SHT_SYMTAB", "SHT_DYNSYM"):
                    assert [(y.name, y.value, y.size, y.bind, y.type, y.shndx)
                            for y in ours.read_symbols(sec)] == [
                        (y.name, y["st_value"], y["st_size"],
                         ENUM_ST_INFO_BIND[y["st_info"]["bind"]],
                         ENUM_ST_INFO_TYPE[y["st_info"]["type"]],
                         SHN.get(y["st_shndx"], y["st_shndx"]))
                        for y in want.iter_symbols()], (what, sec.name)
                elif sec.type == "SHT_NOTE":
                    assert [(n.name.decode(), n.desc) for n in ours.notes(sec)] == [
                        (n["n_name"], n["n_descdata"]) for n in want.iter_notes()], (what, sec.name)
                if sec.type != "SHT_NOBITS":
                    assert sec.data == want.data(), (what, sec.name)


def test_host_types_and_file_offsets(host_files) -> None:
    """PIE programs and libraries are ET_DYN, others ET_EXEC; a symbol's file offset goes
    through the PT_LOAD segment holding it, as readelf shows them."""
    assert ElfFile.open(str(host_files["pie"])).type == ET_DYN
    assert ElfFile.open(str(host_files["libc"])).type == ET_DYN
    fixed = ElfFile.open(str(host_files["fixed"]))
    assert fixed.type == ET_EXEC
    main = next(y for y in fixed.read_symbols(fixed.section(".symtab")) if y.name == "main")
    load = next(s for s in fixed.segments if s.type == PT_LOAD and s.vaddr <= main.value
                < s.vaddr + s.memsz)
    assert fixed.file_offset(main.value) == main.value - load.vaddr + load.offset
    with pytest.raises(ObjectError, match="address 0x1 is in no loadable segment"):
        fixed.file_offset(1)


def test_host_file_errors(host_files, tmp_path) -> None:
    with pytest.raises(ObjectError, match="cannot read ELF file: No such file"):
        ElfFile.open(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    with pytest.raises(ObjectError, match="not an ELF file"):
        ElfFile.open(str(empty))
    data = bytearray(host_files["pie"].read_bytes())
    struct.pack_into("<H", data, 0x38, 0xFFFF)  # e_phnum: the table runs past the end
    with pytest.raises(ObjectError, match="program header table .* lies past the end"):
        ElfFile(bytes(data), "bad").segments
    data = bytearray(host_files["pie"].read_bytes())
    at = ElfFile(bytes(data), "pie").section(".note.stapsdt").offset
    struct.pack_into("<I", data, at + 4, 0x10000)  # n_descsz: past the section's end
    bad = ElfFile(bytes(data), "bad")
    with pytest.raises(ObjectError, match="note in '.note.stapsdt' runs past the section's end"):
        list(bad.notes(bad.section(".note.stapsdt")))
