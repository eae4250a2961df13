"""Map element and batch speed of pybpf against libbpf, measured in the same run.

    sudo python3 benchmarks/maps.py [--entries N] [--rounds R] [--check]

A BPF_MAP_TYPE_HASH of ``--entries`` elements (u32 key, 12-byte value; default 1,048,576)
is filled and read four ways, by pybpf and by the C peer ``benchmarks/peers/maps.c``
(libbpf's low-level API, compiled here with ``cc -O2 ... -lbpf``; Debian: libbpf-dev):

    update        one ``m[k] = v`` per key        / bpf_map_update_elem      (inserts)
    lookup        one ``m[k]`` per key            / bpf_map_lookup_elem
    update_batch  ``m.update_batch(keys, values)`` / bpf_map_update_batch    (overwrites)
                  with packed buffers: memoryviews of array('I') keys and values
    lookup_batch  ``m.lookup_batch(raw=True)``     / bpf_map_lookup_batch into one array

The pybpf map is ``Map.create("hash", 4, 12, N, key="I")``: keys are ints packed by a
``struct`` codec, values are 12-byte ``bytes`` (the raw codec), the fastest plain forms.
Each round runs both sides on a fresh map, alternating which goes first. Times are CPU
time of each side's process (user + system: the syscalls count, waiting for a CPU that
other tenants of the machine hold does not). The best round of each side counts; the
"rounds" column is the range of the per-round ratios. Prints ops/s, the pybpf/C ratio
against the goal (PASS/MISS), and peak RSS. Exits 0 (a benchmark, not a test) unless
``--check`` is given and a goal is missed.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Dict, List

from common import build_peer, exit_status

OPS = ("update", "lookup", "update_batch", "lookup_batch")
GOALS = {"update": 0.6, "lookup": 0.6, "update_batch": 0.9, "lookup_batch": 0.9}
VALUE = b"\x01\x00\x00\x00\x02\x00\x00\x00\x03\x00\x00\x00"  # struct value {1, 2, 3}, as the peer


def run_peer(exe: Path, n: int, chunk: int) -> Dict[str, float]:
    """One round of the C peer: seconds per operation, and its peak RSS as "peak_rss_kib"."""
    res = subprocess.run([str(exe), str(n), str(chunk), "1"], capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"benchmarks/maps.py: the C peer failed: {res.stderr.strip()}")
    out = {}
    for line in res.stdout.splitlines():
        rec = json.loads(line)
        if rec["op"] == "peak_rss":
            out["peak_rss_kib"] = rec["kib"]
            continue
        if rec["n"] != n:
            sys.exit(f"benchmarks/maps.py: the C peer did {rec['op']} on {rec['n']} "
                     f"elements, not {n}")
        out[rec["op"]] = rec["seconds"]
    return out


def batch_buffers(n: int):
    """Packed keys 0..n-1 and values {i, i ^ 0x5a5a5a5a, ~i}, as the peer builds them."""
    keys = array("I", range(n))
    vals = array("I", bytes(12 * n))
    vals[0::3] = keys
    vals[1::3] = array("I", (i ^ 0x5A5A5A5A for i in range(n)))
    vals[2::3] = array("I", (~i & 0xFFFFFFFF for i in range(n)))
    return keys, vals


def run_pybpf(n: int, chunk: int, keys: array, vals: array) -> Dict[str, float]:
    """One round of pybpf, the way a user writes it."""
    from pybpf.maps import Map  # noqa: PLC0415 - after argument parsing, so --help works anywhere

    out = {}
    clock = time.process_time  # the peer's clock: CLOCK_PROCESS_CPUTIME_ID
    with Map.create("hash", 4, 12, n, name="bench_py", key="I") as m:
        v = VALUE
        t0 = clock()
        for k in range(n):
            m[k] = v
        out["update"] = clock() - t0

        t0 = clock()
        for k in range(n):
            got = m[k]
        out["lookup"] = clock() - t0
        if got != v:
            sys.exit(f"benchmarks/maps.py: m[{n - 1}] is {got!r}, not {v!r}")

        t0 = clock()
        done = m.update_batch(memoryview(keys), memoryview(vals))
        out["update_batch"] = clock() - t0
        if done != n:
            sys.exit(f"benchmarks/maps.py: update_batch updated {done} of {n}")

        t0 = clock()
        kb, vb, total = m.lookup_batch(chunk=chunk, raw=True)
        out["lookup_batch"] = clock() - t0
        if total != n or len(kb) != 4 * n or len(vb) != 12 * n:
            sys.exit(f"benchmarks/maps.py: lookup_batch read {total} of {n}")
    return out


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--entries", type=int, default=1 << 20, help="map size (default 1048576)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds per side, best counts (5)")
    ap.add_argument("--chunk", type=int, default=0,
                    help="elements per lookup_batch call (default: pybpf's, min(entries, 16384))")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args(argv)
    n = args.entries
    if n < 1 or args.rounds < 1:
        ap.error("--entries and --rounds must be positive")
    chunk = args.chunk or max(1, min(n, 16384))  # what Map.lookup_batch() picks by default

    keys, vals = batch_buffers(n)
    secs: Dict[str, Dict[str, List[float]]] = {side: {op: [] for op in OPS}
                                               for side in ("pybpf", "C")}
    peer_rss_kib = 0
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as tmp:
        exe = build_peer("maps", Path(tmp))
        for r in range(args.rounds):
            sides = [("C", lambda: run_peer(exe, n, chunk)),
                     ("pybpf", lambda: run_pybpf(n, chunk, keys, vals))]
            for side, fn in (sides if r % 2 == 0 else sides[::-1]):
                result = fn()
                peer_rss_kib = max(peer_rss_kib, result.pop("peak_rss_kib", 0))
                for op, t in result.items():
                    secs[side][op].append(t)

    print(f"hash map, {n} entries, u32 key, 12-byte value; best of {args.rounds} rounds "
          f"per side (process CPU time); lookup_batch chunk {chunk}")
    print('pybpf: Map.create("hash", 4, 12, n, key="I"), m[k] = v / m[k] with 12-byte bytes, '
          "update_batch(memoryview(array)), lookup_batch(raw=True)")
    print(f"{'operation':<14}{'pybpf ops/s':>14}{'C ops/s':>14}{'ratio':>8}{'rounds':>12}"
          f"{'goal':>7}  result")
    missed = []
    for op in OPS:
        py, c = n / min(secs["pybpf"][op]), n / min(secs["C"][op])
        ratio = py / c
        per_round = [tc / tp for tp, tc in zip(secs["pybpf"][op], secs["C"][op])]
        ok = ratio >= GOALS[op]
        if not ok:
            missed.append(op)
        spread = f"{min(per_round):.2f}-{max(per_round):.2f}"
        print(f"{op:<14}{py:>14,.0f}{c:>14,.0f}{ratio:>8.2f}{spread:>12}{GOALS[op]:>6.1f}x  "
              f"{'PASS' if ok else 'MISS'}")
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(f"peak RSS: pybpf process {rss / 1024:.1f} MiB, C peer {peer_rss_kib / 1024:.1f} MiB "
          f"(both hold the {n}-element key and value arrays)")
    return exit_status(missed, args.check)


if __name__ == "__main__":
    sys.exit(main())
