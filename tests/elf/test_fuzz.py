"""Malformed objects: truncated, random, or with corrupted header fields, offsets and counts
give an ObjectError (never another exception, a hang, or unbounded memory)."""
from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pybpf.elf import ObjectSpec
from pybpf.errors import ObjectError

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# fields of the ELF64 header worth corrupting: (offset, struct format)
HEADER_FIELDS = [(0x20, "Q"), (0x28, "Q"), (0x3A, "H"), (0x3C, "H"), (0x3E, "H"), (0x34, "H"),
                 (0x12, "H"), (0x04, "B"), (0x05, "B")]


@pytest.fixture(scope="module")
def seeds(bpf_objects) -> list[bytes]:
    return [bpf_objects[n].read_bytes() for n in ("elf_globals", "elf_map_in_map", "elf_core",
                                                  "elf_kconfig", "elf_subprogs")]


def parse(data: bytes) -> None:
    try:
        ObjectSpec.from_bytes(data, "fuzzed.o")
    except ObjectError as e:
        assert str(e).startswith("fuzzed.o")


@SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes(data: bytes) -> None:
    parse(data)
    parse(b"\x7fELF\x02\x01\x01" + data)


@SETTINGS
@given(st.data())
def test_truncated(seeds, data) -> None:
    blob = data.draw(st.sampled_from(seeds))
    parse(blob[:data.draw(st.integers(0, len(blob) - 1))])


@SETTINGS
@given(st.data())
def test_corrupted_bytes(seeds, data) -> None:
    blob = bytearray(data.draw(st.sampled_from(seeds)))
    for _ in range(data.draw(st.integers(1, 8))):
        blob[data.draw(st.integers(0, len(blob) - 1))] = data.draw(st.integers(0, 255))
    parse(bytes(blob))


@SETTINGS
@given(st.data())
def test_corrupted_header_and_section_table(seeds, data) -> None:
    blob = bytearray(data.draw(st.sampled_from(seeds)))
    off, fmt = data.draw(st.sampled_from(HEADER_FIELDS))
    bits = struct.calcsize(fmt) * 8
    struct.pack_into("<" + fmt, blob, off, data.draw(st.one_of(
        st.integers(0, 16), st.just((1 << bits) - 1), st.integers(0, (1 << bits) - 1))))
    # and one field of one section header: name, type, flags, offset, size, link, info, entsize
    shoff, shnum = struct.unpack_from("<Q", blob, 0x28)[0], struct.unpack_from("<H", blob, 0x3C)[0]
    if shnum and shoff + 64 * shnum <= len(blob):
        idx = data.draw(st.integers(0, shnum - 1))
        field, ffmt = data.draw(st.sampled_from([(0, "I"), (4, "I"), (8, "Q"), (24, "Q"),
                                                 (32, "Q"), (40, "I"), (44, "I"), (56, "Q")]))
        fbits = struct.calcsize(ffmt) * 8
        struct.pack_into("<" + ffmt, blob, shoff + 64 * idx + field,
                         data.draw(st.integers(0, (1 << fbits) - 1)))
    parse(bytes(blob))


def test_not_an_elf_and_not_bpf() -> None:
    with pytest.raises(ObjectError, match="not an ELF"):
        ObjectSpec.from_bytes(b"hello", "x.o")
    import sys
    with open(sys.executable, "rb") as f:
        exe = f.read(1 << 20)
    with pytest.raises(ObjectError, match="not BPF|malformed|past the end"):
        ObjectSpec.from_bytes(exe, "python")


def test_missing_file() -> None:
    with pytest.raises(ObjectError, match="cannot read BPF object"):
        ObjectSpec.from_file("/nonexistent/x.o")
