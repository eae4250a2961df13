"""``pybpf map dump`` against ``bpftool map dump`` (Debian's, libbpf C), measured in the same run.

    sudo python3 benchmarks/cli.py [--entries N] [--rounds R] [--check]

A BPF_MAP_TYPE_HASH of ``--entries`` elements (u32 key, 12-byte value; default 100,000) is
filled once, then dumped by both commands as separate processes, ``--rounds`` times each,
alternating which goes first; stdout goes to a pipe that is read to the end. Both outputs must
be identical (the elements in the same order). Prints the median wall time of each, the
pybpf/bpftool ratio (goal: below 1, pybpf faster), and the start-up cost of each command
(``version``). Also times ``-j`` dumps. Exits 0 (a benchmark, not a test) unless ``--check``
is given and pybpf is slower.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import time
from array import array
from typing import List, Tuple


def pybpf_command() -> List[str]:
    """The installed ``pybpf`` script itself (not a pyenv shim), else ``python -m pybpf.cli``."""
    script = os.path.join(sysconfig.get_path("scripts"), "pybpf")
    if os.access(script, os.X_OK):
        return [script]
    return [sys.executable, "-m", "pybpf.cli"]


def timed(cmd: List[str]) -> Tuple[float, bytes]:
    t0 = time.perf_counter()
    res = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - t0
    if res.returncode != 0:
        sys.exit(f"benchmarks/cli.py: {' '.join(cmd)} failed: {res.stderr.decode().strip()}")
    return elapsed, res.stdout


def compare(label: str, ours: List[str], theirs: List[str], rounds: int,
            same_output: bool = True) -> float:
    """Median seconds of each command over ``rounds`` alternating runs; prints the ratio."""
    t_ours: List[float] = []
    t_theirs: List[float] = []
    out_ours = out_theirs = b""
    for r in range(rounds):
        order = [(ours, t_ours), (theirs, t_theirs)]
        for cmd, times in (order if r % 2 == 0 else order[::-1]):
            elapsed, out = timed(cmd)
            times.append(elapsed)
            if cmd is ours:
                out_ours = out
            else:
                out_theirs = out
    if same_output and out_ours != out_theirs:
        sys.exit(f"benchmarks/cli.py: {label}: pybpf and bpftool printed different output")
    mo, mt = statistics.median(t_ours), statistics.median(t_theirs)
    print(f"{label:<24} pybpf {mo * 1e3:8.1f} ms   bpftool {mt * 1e3:8.1f} ms   "
          f"ratio {mo / mt:5.2f}{'  (pybpf faster)' if mo < mt else ''}")
    return mo / mt


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--check", action="store_true", help="exit 1 when pybpf is slower")
    args = ap.parse_args()
    if shutil.which("bpftool") is None:
        sys.exit("benchmarks/cli.py: bpftool is not installed (Debian: apt-get install bpftool)")
    from pybpf.maps import Map  # noqa: PLC0415 - after argument parsing, so --help works anywhere

    n = args.entries
    pybpf = pybpf_command()
    with Map.create("hash", 4, 12, n, name="bench_cli") as m:
        keys = array("I", range(n))
        values = array("I", bytes(12 * n))
        values[0::3] = keys
        m.update_batch(memoryview(keys), memoryview(values))
        print(f"hash map of {n} elements (u32 key, 12-byte value), id {m.id}; "
              f"pybpf = {' '.join(pybpf)}; median of {args.rounds} runs each")
        handle = ["id", str(m.id)]
        ratio = compare("map dump", [*pybpf, "map", "dump", *handle],
                        ["bpftool", "map", "dump", *handle], args.rounds)
        compare("map dump -j", [*pybpf, "-j", "map", "dump", *handle],
                ["bpftool", "-j", "map", "dump", *handle], args.rounds, same_output=False)
        compare("start-up (version)", [*pybpf, "version"], ["bpftool", "version"], args.rounds,
                same_output=False)
    if args.check and ratio >= 1:
        print("goal missed: pybpf map dump is slower than bpftool's")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
