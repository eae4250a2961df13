"""Attaching network and cgroup programs: pybpf.links against libbpf, measured in the same run.

    sudo python3 benchmarks/links_net.py [--n N] [--rounds R] [--check]

Four operations, N times each per round (process CPU time, best of R rounds per side), in a
private network namespace and a fresh cgroup made for the run (both removed after):

    cgroup_link   attach_cgroup(prog, path, "connect4").close()  /  open + bpf_link_create
    cgroup_query  query_cgroup(path, "connect4") with one program there, names resolved  /
                  open + bpf_prog_query_opts + the program's info by id
    xdp_link      attach_xdp(prog, "lo", mode="skb").close()  /  if_nametoindex +
                  bpf_link_create(BPF_XDP, XDP_FLAGS_SKB_MODE)
    tcx_link      attach_tcx(prog, "lo").close()  /  if_nametoindex + bpf_link_create(TCX)

The C peer is ``benchmarks/peers/links_net.c`` (``cc -O2 ... -lbpf``). Prints ops/s, the
pybpf/C ratio and PASS/MISS against the goal (pybpf at least 1/3 of libbpf's rate: most of
an attach is the kernel's work). Exits 0 unless ``--check`` is given and a goal is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import build_peer  # noqa: E402

OPS = ("cgroup_link", "cgroup_query", "xdp_link", "tcx_link")
GOAL = 1 / 3  # pybpf ops/s divided by C ops/s, at least


def run_peer(exe: Path, n: int, netns: str, cgroup: str) -> Dict[str, float]:
    res = subprocess.run([str(exe), str(n), netns, cgroup], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"benchmarks/links_net.py: the C peer failed: {res.stderr.strip()}")
    return {rec["op"]: rec["seconds"] for rec in map(json.loads, res.stdout.splitlines())}


def run_pybpf(n: int, netns_fd, cgroup: str) -> Dict[str, float]:
    from pybpf.asm import R0, assemble, exit_, mov64_imm
    from pybpf.links import attach_cgroup, attach_tcx, attach_xdp, query_cgroup
    from pybpf.sys.host import in_netns
    from pybpf.programs import Program
    from pybpf.sys.uapi import AttachType

    code = assemble([mov64_imm(R0, 1), exit_()])
    out: Dict[str, float] = {}

    def timed(op: str, fn: Callable[[], object]) -> None:
        t0 = time.process_time()
        for _ in range(n):
            fn()
        out[op] = time.process_time() - t0

    with Program.load("cgroup_sock_addr", code, name="bench",
                      expected_attach_type=AttachType.CGROUP_INET4_CONNECT) as connect4, \
            Program.load("xdp", code, name="bench") as xdp, \
            Program.load("sched_cls", code, name="bench") as cls, in_netns(netns_fd):
        timed("cgroup_link", lambda: attach_cgroup(connect4, cgroup, "connect4").close())
        with attach_cgroup(connect4, cgroup, "connect4"):
            timed("cgroup_query", lambda: query_cgroup(cgroup, "connect4").programs[0].name)
        timed("xdp_link", lambda: attach_xdp(xdp, "lo", mode="skb").close())
        timed("tcx_link", lambda: attach_tcx(cls, "lo").close())
    return out


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=300, help="operations per round (300: each XDP "
                    "attach waits for an RCU grace period)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds per side, best counts (3)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still remove netns and cgroup

    from pybpf.links.cgroup import cgroup2_mount
    from pybpf.sys.fd import FD
    tag = f"pybpf-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    netns, cgroup = f"/var/run/netns/{tag}", os.path.join(cgroup2_mount(), tag)
    secs: Dict[str, Dict[str, List[float]]] = {s: {op: [] for op in OPS} for s in ("pybpf", "C")}
    subprocess.run(["ip", "netns", "add", tag], check=True)
    os.mkdir(cgroup)
    try:
        subprocess.run(["ip", "-n", tag, "link", "set", "lo", "up"], check=True)
        with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as tmp, \
                FD(os.open(netns, os.O_RDONLY)) as ns_fd:
            exe = build_peer("links_net", Path(tmp))
            for r in range(args.rounds):
                sides = [("C", lambda: run_peer(exe, args.n, netns, cgroup)),
                         ("pybpf", lambda: run_pybpf(args.n, ns_fd, cgroup))]
                for side, fn in (sides if r % 2 == 0 else sides[::-1]):
                    for op, t in fn().items():
                        secs[side][op].append(t)
    finally:
        os.rmdir(cgroup)
        subprocess.run(["ip", "netns", "del", tag])

    print(f"{args.n} operations per round, best of {args.rounds} rounds per side "
          "(process CPU time), in a private network namespace and cgroup")
    print(f"{'operation':<14}{'pybpf ops/s':>14}{'C ops/s':>14}{'ratio':>8}{'goal':>7}  result")
    missed = []
    for op in OPS:
        py, c = args.n / min(secs["pybpf"][op]), args.n / min(secs["C"][op])
        ok = py / c >= GOAL
        missed += [] if ok else [op]
        print(f"{op:<14}{py:>14,.0f}{c:>14,.0f}{py / c:>8.2f}{GOAL:>7.2f}  "
              f"{'PASS' if ok else 'MISS'}")
    if missed and args.check:
        print(f"goal missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
