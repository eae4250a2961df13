"""BPF programs the link tests attach (pybpf.asm), and a helper running processes."""
from __future__ import annotations

import shutil
import subprocess
from typing import Sequence

from pybpf.asm import (DW, FP, R0, R1, R2, R3, R4, R6, R7, W, add64_imm, assemble, atomic_add,
                       call, exit_, jne_imm, label, ld_map_fd, mov64_imm, mov64_reg, rsh64_imm,
                       st, stx)
from pybpf.links.usdt import UsdtArg, fetch_arg
from pybpf.programs import kernel_version_code
from pybpf.sys.uapi import UpdateFlag

TRUE = shutil.which("true") or "/bin/true"
PERF_LINK_INFO = kernel_version_code() >= 0x060600
"""Linux 6.6 reports what a perf-event link probes (bpf_link_info.perf_event)."""


def _increment(map_fd: int, key_off: int) -> list:
    """map[*(fp+key_off)] += 1: insert 1 (NOEXIST), else atomic add; returns 0."""
    return [
        mov64_imm(R1, 1),
        stx(DW, FP, R1, -16),
        ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, key_off),
        mov64_reg(R3, FP), add64_imm(R3, -16), mov64_imm(R4, UpdateFlag.NOEXIST),
        call("map_update_elem"),
        jne_imm(R0, 0, "exists"),
        mov64_imm(R0, 0), exit_(),
        label("exists"),
        ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, key_off),
        call("map_lookup_elem"),
        jne_imm(R0, 0, "add"),
        mov64_imm(R0, 0), exit_(),
        label("add"),
        mov64_imm(R1, 1),
        atomic_add(DW, R0, R1, 0),
        mov64_imm(R0, 0), exit_(),
    ]


def count_per_tgid(map_fd: int) -> bytes:
    """counts[tgid (u32)] += 1 on every hit."""
    return assemble([
        call("get_current_pid_tgid"),
        rsh64_imm(R0, 32),
        stx(W, FP, R0, -4),
        *_increment(map_fd, -4),
    ])


def count_per_cpu(map_fd: int) -> bytes:
    """counts[smp_processor_id (u32)] += 1 on every hit."""
    return assemble([
        call("get_smp_processor_id"),
        stx(W, FP, R0, -4),
        *_increment(map_fd, -4),
    ])


def count_per_cookie(map_fd: int) -> bytes:
    """counts[bpf_get_attach_cookie(ctx) (u64)] += 1 on every hit."""
    return assemble([
        call("get_attach_cookie"),
        stx(DW, FP, R0, -8),
        *_increment(map_fd, -8),
    ])


def run_children(n: int, argv: list[str] | None = None) -> list[int]:
    """Run ``argv`` (default: true) ``n`` times; the pids of those that succeeded."""
    procs = [subprocess.Popen(argv or [TRUE]) for _ in range(n)]
    return [p.pid for p in procs if p.wait() == 0]



def record_usdt_args(map_fd: int, args: Sequence[UsdtArg]) -> bytes:
    """records[arg0 (s64)] = (arg1, arg2) (s64 each, 0 when absent), fetched by usdt.fetch_arg."""
    insns = [mov64_reg(R6, R1), st(DW, FP, -24, 0), st(DW, FP, -16, 0)]
    for arg, slot in zip(args, (-32, -24, -16)):
        insns += [*fetch_arg(arg, R7, R6, -8), stx(DW, FP, R7, slot)]
    return assemble([
        *insns,
        ld_map_fd(R1, map_fd), mov64_reg(R2, FP), add64_imm(R2, -32),
        mov64_reg(R3, FP), add64_imm(R3, -24), mov64_imm(R4, 0),
        call("map_update_elem"),
        mov64_imm(R0, 0), exit_(),
    ])
