"""Fixtures for pybpf.asm: clang objects and llvm-objdump listings, loading into the kernel.

Programs are loaded with a bare BPF_PROG_LOAD here (pybpf.asm never calls the kernel, and the
tests should not depend on pybpf.programs); every fd is closed at teardown.
"""
from __future__ import annotations

import ctypes
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional, Union

import pytest

from pybpf.asm import KernelSymbols, disassemble
from pybpf.errors import BPFError
from pybpf.sys import Cmd, bpf
from pybpf.sys.attrs import (GetIdAttr, InfoAttr, MapCreateAttr, ProgInfoStruct, ProgLoadAttr,
                             TestRunAttr)
from pybpf.sys.uapi import MapType, ProgType

BPF_SRC = Path(__file__).parent.parent / "bpf"
_XLATED_LINE = re.compile(r"^ *\d+: |^       [0-9a-f]{2}( [0-9a-f]{2})*$")
_OBJDUMP_LINE = re.compile(r"^\s*(\d+):\t((?:[0-9a-f]{2} ?)+)\t(.*)$")


@dataclass(frozen=True)
class ObjdumpLine:
    """One instruction as llvm-objdump lists it: slot index, bytes, LLVM assembly."""

    index: int
    raw: bytes
    text: str


def _compile(clang: str, src: Path, out: Path, *flags: str) -> Path:
    """``clang -g -O2 -target bpf -c src -o out`` with extra ``flags``."""
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", *flags, "-I", str(BPF_SRC), "-c",
                    str(src), "-o", str(out)], check=True)
    return out


def _objdump(obj: Path) -> list[ObjdumpLine]:
    """The instructions of every section of ``obj`` (``llvm-objdump -d``, 32-bit registers on)."""
    tool = shutil.which("llvm-objdump")
    if tool is None:
        pytest.fail("llvm-objdump is not installed: `apt-get install llvm`")
    text = subprocess.run([tool, "-d", "--mattr=+alu32", str(obj)], check=True,
                          capture_output=True, text=True).stdout
    out = []
    for line in text.splitlines():
        m = _OBJDUMP_LINE.match(line)
        if m:
            out.append(ObjdumpLine(int(m[1]), bytes.fromhex(m[2]), m[3].strip()))
    return out


@pytest.fixture(scope="session")
def asm_progs_v3(clang: str, tmp_path_factory) -> Path:
    """tests/bpf/asm_progs.c for cpu v3 (32-bit jumps and ALU, fetching atomics)."""
    out = tmp_path_factory.mktemp("asmobj") / "asm_progs.o"
    return _compile(clang, BPF_SRC / "asm_progs.c", out, "-mcpu=v3", "-DASM_CPU_V3")


@pytest.fixture(scope="session")
def asm_progs_v1(clang: str, tmp_path_factory) -> Path:
    """tests/bpf/asm_progs.c for clang's default cpu (v1)."""
    out = tmp_path_factory.mktemp("asmobj") / "asm_progs_v1.o"
    return _compile(clang, BPF_SRC / "asm_progs.c", out)


@pytest.fixture(scope="session")
def compile_bpf(clang: str) -> Callable[..., Path]:
    """``compile_bpf(src, out, *flags)``: clang's object for ``src``."""
    return lambda src, out, *flags: _compile(clang, src, out, *flags)


@pytest.fixture(scope="session")
def objdump() -> Callable[[Path], list[ObjdumpLine]]:
    """``objdump(obj)``: the instructions llvm-objdump lists for ``obj``."""
    return _objdump


LoadFn = Callable[..., int]


@pytest.fixture
def load() -> Iterator[LoadFn]:
    """``load(code, prog_type=XDP)``: a program fd (closed at teardown); the verifier log on
    failure."""
    fds: list[int] = []

    def _load(code: bytes, prog_type: int = ProgType.XDP) -> int:
        log = ctypes.create_string_buffer(1 << 20)
        lic = ctypes.c_char_p(b"GPL")
        buf = ctypes.create_string_buffer(code, len(code))
        attr = ProgLoadAttr(prog_type=prog_type, insn_cnt=len(code) // 8,
                            insns=ctypes.addressof(buf),
                            license=ctypes.cast(lic, ctypes.c_void_p).value, log_level=1,
                            log_size=len(log), log_buf=ctypes.addressof(log), prog_name=b"asm_test")
        try:
            fd = bpf(Cmd.PROG_LOAD, attr, "program 'asm_test'")
        except BPFError as e:
            pytest.fail(f"{e}\nverifier log:\n{log.value.decode()}")
        fds.append(fd)
        return fd

    yield _load
    for fd in fds:
        os.close(fd)


@pytest.fixture
def array_map() -> Iterator[Callable[[int], int]]:
    """``array_map(value_size)``: the fd of a one-element array map (closed at teardown)."""
    fds: list[int] = []

    def _create(value_size: int) -> int:
        fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.ARRAY, key_size=4,
                                               value_size=value_size, max_entries=1,
                                               map_name=b"asm_test"))
        fds.append(fd)
        return fd

    yield _create
    for fd in fds:
        os.close(fd)


def _prog_test_run(fd: int, data: bytes, out_size: Optional[int] = None) -> tuple[int, bytes]:
    """BPF_PROG_TEST_RUN of ``fd`` on packet ``data``: (retval, packet after the run)."""
    data_in = ctypes.create_string_buffer(data, len(data))
    data_out = ctypes.create_string_buffer(out_size or len(data) + 256)
    attr = TestRunAttr(prog_fd=fd, data_size_in=len(data), data_in=ctypes.addressof(data_in),
                       data_size_out=len(data_out), data_out=ctypes.addressof(data_out), repeat=1)
    bpf(Cmd.PROG_TEST_RUN, attr, f"program fd {fd}")
    return attr.retval, data_out.raw[:attr.data_size_out]


@pytest.fixture
def run() -> Callable[[int, bytes], tuple[int, bytes]]:
    """``run(fd, data)``: BPF_PROG_TEST_RUN, (retval, packet out)."""
    return _prog_test_run


def _prog_info(fd: int, **fields: int) -> ProgInfoStruct:
    info = ProgInfoStruct(**fields)
    bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info),
                                         info=ctypes.addressof(info)))
    return info


def jited_ksyms(prog: int) -> list[int]:
    """``bpf_prog_info.jited_ksyms`` of program id ``prog``: its functions' addresses."""
    fd = bpf(Cmd.PROG_GET_FD_BY_ID, GetIdAttr(start_id=prog))
    try:
        count = _prog_info(fd).nr_jited_ksyms
        addrs = (ctypes.c_uint64 * count)()
        _prog_info(fd, nr_jited_ksyms=count, jited_ksyms=ctypes.addressof(addrs))
        return list(addrs)
    finally:
        os.close(fd)


@pytest.fixture(scope="session")
def bpftool() -> str:
    path = shutil.which("bpftool") or "/usr/sbin/bpftool"
    if not os.access(path, os.X_OK):
        pytest.fail("bpftool is not installed: `apt-get install bpftool`")
    return path


@pytest.fixture
def check_xlated(bpftool: str, tmp_path: Path) -> Callable[[Union[int, Path]], int]:
    """``check_xlated(fd or pin path)``: assert pybpf's disassembly of the program's translated
    bytes equals ``bpftool prog dump xlated`` line for line, with and without ``opcodes``;
    returns the number of instructions compared."""

    def _check(fd_or_pin: Union[int, Path]) -> int:
        if isinstance(fd_or_pin, Path):
            show = subprocess.run([bpftool, "-j", "prog", "show", "pinned", str(fd_or_pin)],
                                  check=True, capture_output=True, text=True).stdout
            prog = json.loads(show)["id"]
        else:
            prog = _prog_info(fd_or_pin).id
        raw = tmp_path / f"xlated-{prog}"
        dump = [bpftool, "prog", "dump", "xlated", "id", str(prog)]
        subprocess.run(dump + ["file", str(raw)], check=True, capture_output=True)
        code = raw.read_bytes()
        ksyms = jited_ksyms(prog)
        symbols = KernelSymbols.load()  # now: the program's own functions are in it
        for opcodes in (False, True):
            text = subprocess.run(dump + (["opcodes"] if opcodes else []), check=True,
                                  capture_output=True, text=True).stdout
            want = [line for line in text.splitlines() if _XLATED_LINE.match(line)]
            got = disassemble(code, opcodes=opcodes, symbols=symbols, jited_ksyms=ksyms)
            for n, (w, g) in enumerate(zip(want, got)):
                assert g == w, f"program {prog} line {n}:\n bpftool: {w!r}\n pybpf:   {g!r}"
            assert len(got) == len(want), f"program {prog}: {len(got)} lines, bpftool {len(want)}"
        return len(code) // 8

    return _check

