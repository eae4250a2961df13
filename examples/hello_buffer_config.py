#!/usr/bin/env python3
"""hello_buffer_config: "Learning eBPF" chapter 4's program, loaded by pybpf.

Compiles ``hello_buffer_config.bpf.c`` (clang), loads it the way libbpf does (BTF, the maps
``output`` and ``config``, the program), puts a message for uid 0 and uid 501 in ``config``,
hooks execve (a ksyscall kprobe where the kernel has kprobes, else the
``syscalls/sys_enter_execve`` tracepoint; it says which) and prints ``pid uid command message``
for every execve. It runs a few commands itself so the output is never empty. While it runs,
``bpftool map update name config key 0x2 0 0 0 value hex 48 65 6c 6c 6f 20 32 0 0 0 0 0``
changes what uid 2 gets. ``PYBPF_TRACE=1`` prints the chapter's bpf() calls.

    python3 examples/hello_buffer_config.py [--seconds S] [--forever] [--count N]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pybpf
from pybpf import features
from pybpf.btf import types as T
from pybpf.elf import ObjectSpec, load
from pybpf.events import PerfBuffer, RingBuffer

HERE = Path(__file__).resolve().parent
MESSAGES = {0: "Hey root!", 501: "Hi user 501!"}
COMMANDS = (["/bin/true"], ["/bin/uname"], ["/usr/bin/id"])
# (uid, command): runs as that uid, so config's per-uid messages show (setpriv: util-linux)
AS_USER = ((501, ["/bin/true"]), (2, ["/bin/true"]))
SETPRIV = shutil.which("setpriv") or "setpriv"  # by path: one execve, not one per PATH entry


def message(text: str) -> bytes:
    """``struct msg_t { char message[12]; }``: NUL-padded (a full 12 characters has no NUL, as
    in the book)."""
    raw = text.encode()
    if len(raw) > 12:
        raise SystemExit(f"message {text!r} is longer than 12 bytes")
    return raw.ljust(12, b"\0")


def build(ring: bool) -> Path:
    name = "hello_ring_buffer_config" if ring else "hello_buffer_config"
    out = Path(tempfile.gettempdir()) / "pybpf-examples" / f"{name}.bpf.o"
    out.parent.mkdir(exist_ok=True)
    sources = [HERE / "hello_buffer_config.bpf.c", HERE / f"{name}.bpf.c"]
    if out.exists() and all(out.stat().st_mtime >= s.stat().st_mtime for s in sources):
        return out  # already built from these sources
    return pybpf.compile(HERE / f"{name}.bpf.c", out, vmlinux=False)


def spawn() -> list[subprocess.Popen]:
    """The commands this demo runs itself, some under other uids."""
    procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL) for cmd in COMMANDS]
    for uid, cmd in AS_USER:
        procs.append(subprocess.Popen([SETPRIV, f"--reuid={uid}", f"--regid={uid}",
                                       "--clear-groups", *cmd], stdout=subprocess.DEVNULL))
    return procs


def run(ring: bool, seconds: float, forever: bool, count: int) -> int:
    spec = ObjectSpec.from_file(build(ring))
    kprobes = features.kprobes()
    hook = "hello_kprobe" if kprobes else "hello_tp"
    spec.programs["hello_tp" if kprobes else "hello_kprobe"].autoload = False
    data_t = spec.btf.find("data_t", T.Struct)
    with load(spec) as obj:
        for uid, text in MESSAGES.items():
            obj.maps["config"][uid] = message(text)
        prog = obj.programs[hook]
        how = "ksyscall kprobe on execve" if kprobes else \
            f"tracepoint syscalls/sys_enter_execve ({kprobes.reason})"
        reader: Any = RingBuffer if ring else PerfBuffer
        with prog.attach() as link, reader(obj.maps["output"], decode=data_t) as events:
            print(f"hooked execve with a {how}; link id {link.id}", file=sys.stderr,
                  flush=True)
            children = spawn()
            mine = {c.pid for c in children}
            seen: set[int] = set()
            deadline = time.monotonic() + seconds
            done = False  # its commands have exited: one more read takes their last events
            while forever or time.monotonic() < deadline:
                finished = all(c.poll() is not None for c in children)
                for ev in events.read(timeout_ms=100):
                    print(f"{ev.pid} {ev.uid} {ev.command} {ev.message}", flush=True)
                    seen.add(ev.pid)
                    count -= 1
                    if count == 0:
                        return 0
                if not forever and done and mine <= seen:
                    break
                done = finished
            for c in children:
                c.wait()
    missing = mine - seen
    if missing:
        print(f"{len(missing)} of the {len(mine)} commands started here were not seen",
              file=sys.stderr)
    return 1 if missing and not forever else 0


def main(ring: bool = False) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="stop after this long, or once its own commands were seen (default 5)")
    ap.add_argument("--forever", action="store_true", help="print events until interrupted")
    ap.add_argument("--count", type=int, default=0, help="exit after this many events")
    args = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("run as root (loading BPF programs needs CAP_BPF and CAP_PERFMON)")
    try:
        return run(ring, args.seconds, args.forever, args.count)
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())
