#!/usr/bin/env python3
"""execsnoop: who runs what, seen by a BPF program on the execve tracepoint.

The foundation of "Learning eBPF" chapter 4 in pure Python: pybpf creates a hash map,
assembles and loads a tracepoint program (no compiler), attaches it to
``syscalls/sys_enter_execve`` and reads what the program recorded for each execve:
pid -> (uid, command, filename). Run with ``PYBPF_TRACE=1`` to see every bpf() call
in strace's format. It runs a few commands itself so there is always something to show,
then exits.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time

from pybpf.asm import (DW, FP, R0, R1, R2, R3, R4, R6, W, add64_imm, assemble, call, exit_,
                       ld_map_fd, ldx, mov64_imm, mov64_reg, rsh64_imm, st, stx)
from pybpf.links import attach_tracepoint
from pybpf.links.tracing import tracefs
from pybpf.maps import Map
from pybpf.programs import Program

COMM, FILENAME = 16, 48
VALUE = f"=I4x{COMM}s{FILENAME}s"  # struct { u32 uid; u32 pad; char comm[16]; char filename[48]; }
VALUE_SIZE = 4 + 4 + COMM + FILENAME


def filename_offset() -> int:
    """Where sys_enter_execve's ``filename`` argument sits in the tracepoint's context."""
    path = os.path.join(tracefs(), "events/syscalls/sys_enter_execve/format")
    with open(path) as f:
        m = re.search(r"field:const char \* filename;\s*offset:(\d+);", f.read())
    if not m:
        raise SystemExit(f"execsnoop: no filename field in {path}")
    return int(m.group(1))


def program(map_fd: int) -> bytes:
    """pid -> (uid, comm, filename) into the map, on every execve (stack: key at fp-4, value at fp-80)."""
    value = -(VALUE_SIZE + 8)
    return assemble([
        mov64_reg(R6, R1),                               # r6 = ctx
        call("get_current_pid_tgid"),
        rsh64_imm(R0, 32),
        stx(W, FP, R0, -4),                              # key = tgid
        call("get_current_uid_gid"),
        stx(W, FP, R0, value),                           # value.uid
        st(W, FP, value + 4, 0),                         # value.pad
        mov64_reg(R1, FP), add64_imm(R1, value + 8), mov64_imm(R2, COMM),
        call("get_current_comm"),                        # value.comm
        ldx(DW, R3, R6, filename_offset()),
        mov64_reg(R1, FP), add64_imm(R1, value + 8 + COMM), mov64_imm(R2, FILENAME),
        call("probe_read_user_str"),                     # value.filename
        ld_map_fd(R1, map_fd),
        mov64_reg(R2, FP), add64_imm(R2, -4),
        mov64_reg(R3, FP), add64_imm(R3, value),
        mov64_imm(R4, 0),
        call("map_update_elem"),
        mov64_imm(R0, 0),
        exit_(),
    ])


def cstr(raw: bytes) -> str:
    """A NUL-terminated C string as text."""
    return raw.split(b"\0", 1)[0].decode(errors="replace")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="how long to watch (default 1)")
    args = ap.parse_args()
    with Map.create("hash", 4, VALUE_SIZE, 10240, name="execs", key="I", value=VALUE) as execs, \
            Program.load("tracepoint", program(execs.fd), name="execsnoop") as prog, \
            attach_tracepoint(prog, "syscalls", "sys_enter_execve") as link:
        print(f"attached {prog.describe()} (id {prog.info().id}) to {link.name}", file=sys.stderr)
        children = [subprocess.Popen([cmd], stdout=subprocess.DEVNULL)
                    for cmd in ("true", "uname", "id", "hostname")]
        time.sleep(args.seconds)
        ours = [child.pid for child in children if child.wait() is not None]
        print(f"{'PID':>7} {'UID':>5} {'COMMAND':<16} FILENAME")
        for pid, (uid, comm, filename) in sorted(execs.items()):
            print(f"{pid:>7} {uid:>5} {cstr(comm):<16} {cstr(filename)}")
        seen = sum(1 for pid in ours if pid in execs)
        print(f"{seen} of the {len(ours)} commands started here were seen", file=sys.stderr)
        return 0 if seen == len(ours) else 1


if __name__ == "__main__":
    sys.exit(main())
