"""bcc.syscall: the table agrees with the kernel's own numbers, read from the __syscall_nr
field of real syscalls/sys_enter_<name> tracepoint records."""
from __future__ import annotations

import os

import pytest

from pybpf.asm import (FP, R0, R1, R2, R3, R4, R6, W, add64_imm, assemble, call, exit_,
                       jne_imm, label, ld_map_fd, ldx, mov64_imm, mov64_reg, rsh64_imm, stx)
from pybpf.bcc import syscall
from pybpf.links import attach_tracepoint
from pybpf.maps import Map
from pybpf.programs import Program

CALLS = {"getppid": os.getppid, "getuid": os.getuid, "sched_yield": os.sched_yield,
         "getpgid": lambda: os.getpgid(0), "umask": lambda: os.umask(os.umask(0o22))}


def _record_nr(map_fd: int, pid: int) -> bytes:
    """nrs[__syscall_nr] = 1 for calls of process ``pid`` (the record's int at offset 8)."""
    return assemble([
        mov64_reg(R6, R1),
        call("get_current_pid_tgid"), rsh64_imm(R0, 32), jne_imm(R0, pid, "out"),
        ldx(W, R1, R6, 8), stx(W, FP, R1, -4),
        mov64_imm(R1, 1), stx(W, FP, R1, -8),
        ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, -4),
        mov64_reg(R3, FP), add64_imm(R3, -8), mov64_imm(R4, 0), call("map_update_elem"),
        label("out"), mov64_imm(R0, 0), exit_(),
    ])


@pytest.mark.parametrize("name", sorted(CALLS))
def test_numbers_agree_with_the_kernel(tracefs, name):
    with Map.create("hash", 4, 4, 16, name="sc_nrs", key="I", value="I") as nrs, \
            Program.load("tracepoint", _record_nr(nrs.fd, os.getpid()), name="sc_nr") as prog:
        with attach_tracepoint(prog, "syscalls", f"sys_enter_{name}"):
            CALLS[name]()
        seen = list(nrs.keys())
    assert len(seen) == 1
    assert syscall.syscall_name(seen[0]) == name.encode()


def test_table_and_unknown():
    assert syscall.syscalls is syscall.syscall_table()
    assert len(syscall.syscalls) > 300
    assert syscall.syscall_name(1 << 20) == b"[unknown: 1048576]"
    with pytest.raises(AttributeError):
        syscall.no_such_attribute  # noqa: B018


def test_header_aliases():
    text = ("#define __NR_io_setup 0\n#define __NR3264_fcntl 25\n"
            "#define __NR_fcntl __NR3264_fcntl\n#define __NR_loop __NR_loop\n"
            "#define __NR_syscalls 463\n")
    assert syscall._from_header(text) == {0: b"io_setup", 25: b"fcntl"}
