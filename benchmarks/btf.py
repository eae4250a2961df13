"""BTF speed of pybpf against libbpf, measured in the same run.

    python3 benchmarks/btf.py [--runs N] [--records N] [--check]

open_find   a fresh process opens /sys/kernel/btf/vmlinux and finds ``struct task_struct``:
            ``Spec.vmlinux().find("task_struct", types.Struct)`` against libbpf's
            ``btf__parse()`` + ``btf__find_by_name_kind()`` (``benchmarks/peers/btf.c``,
            compiled here with ``cc -O2 ... -lbpf``; Debian: libbpf-dev). Each side runs
            ``--runs`` times, alternating, in a new process each time (the first parse is what
            a tool pays: each pybpf run gets an empty cache directory); the median counts.
            "cached" repeats pybpf's side with the type index pybpf keeps for the boot. pybpf's import time is measured in the same
            processes and reported separately (not included in open_find).
decode      ``values.codec(struct data_t).decode_unchecked`` on ``--records`` 36-byte
            records (``struct data_t {int pid; int uid; char command[16]; char
            message[12];}``, from tests/bpf/btf_kinds.c's BTF built in Python here) from one
            buffer, as an event reader does; the C peer memcpy()s the same records and
            strnlen()s their strings. Goal: 2.5 M records/s (absolute; C is ~100x faster).
Exits 0 (a benchmark, not a test) unless ``--check`` is given and a goal is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from common import build_peer, exit_status

VMLINUX = "/sys/kernel/btf/vmlinux"
GOAL_OPEN_RATIO = 5.0        # pybpf may take at most 5x libbpf's time
GOAL_DECODE_RATE = 2.5e6     # records/s

PY_OPEN = """
import json, time
t0 = time.perf_counter()
from pybpf.btf import Spec, types
t1 = time.perf_counter()
t = Spec.vmlinux().find("task_struct", types.Struct)
t2 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open_find": t2 - t1, "id": t.id, "types": len(Spec.vmlinux())}))
"""


def _json(cmd: List[str], what: str, env: Optional[Dict[str, str]] = None) -> Dict:
    res = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if res.returncode != 0:
        sys.exit(f"benchmarks/btf.py: {what} failed: {res.stderr.strip()}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def data_t():  # noqa: ANN201
    """struct data_t as clang describes it (tests/bpf/btf_kinds.c)."""
    from pybpf.btf import types as T  # noqa: PLC0415
    i, c = T.Int("int", 4, T.INT_SIGNED), T.Int("char", 1, T.INT_SIGNED)
    return T.Struct("data_t", 36, [T.Member("pid", i, 0), T.Member("uid", i, 32),
                                   T.Member("command", T.Array(c, i, 16), 64),
                                   T.Member("message", T.Array(c, i, 12), 192)])


def run_decode(n: int) -> float:
    """Seconds pybpf takes to decode n records (best of 3)."""
    from pybpf.btf import values  # noqa: PLC0415
    t = data_t()
    one = values.encode(t, {"pid": 1, "uid": 1000, "command": "bash", "message": "Hello World"})
    buf = one * n
    dec = values.codec(t).decode_unchecked
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        for off in range(0, 36 * n, 36):
            rec = dec(buf, off)
        best = min(best, time.perf_counter() - t0)
    if rec.command != "bash" or rec.message != "Hello World":
        sys.exit(f"benchmarks/btf.py: decoded {rec!r}")
    return best


def main(argv: List[str] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=11, help="fresh processes per side (11)")
    ap.add_argument("--records", type=int, default=1_000_000, help="records to decode (1e6)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args(argv)
    if args.runs < 1 or args.records < 1:
        ap.error("--runs and --records must be positive")

    py_open, py_import, py_cached, c_open = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as tmp:
        exe = build_peer("btf", Path(tmp))
        warm = Path(tmp) / "warm-cache"
        _py_run([], [], warm)  # fills the boot-long index cache the cached runs read
        for r in range(args.runs):
            cold = Path(tmp) / f"cold-cache-{r}"  # empty: a first parse, as libbpf's always is
            sides = [("C", lambda: c_open.append(
                         _json([str(exe), "open", VMLINUX], "the C peer")["seconds"])),
                     ("pybpf", lambda: _py_run(py_open, py_import, cold)),
                     ("pybpf cached", lambda: _py_run(py_cached, [], warm))]
            for _, fn in (sides if r % 2 == 0 else sides[::-1]):
                fn()
        c_decode = _json([str(exe), "decode", str(args.records)], "the C peer")["seconds"]
    py_decode = run_decode(args.records)

    po, co, pi = (statistics.median(x) for x in (py_open, c_open, py_import))
    ratio = po / co
    rate, c_rate = args.records / py_decode, args.records / c_decode
    print(f"vmlinux BTF ({VMLINUX}), {args.runs} fresh processes per side, median")
    print(f"{'operation':<12}{'pybpf':>14}{'C (libbpf)':>14}{'ratio':>9}   goal")
    ok_open = ratio <= GOAL_OPEN_RATIO
    print(f"{'open_find':<12}{po * 1e3:>11.1f} ms{co * 1e3:>11.1f} ms{ratio:>8.2f}x   "
          f"<= {GOAL_OPEN_RATIO:.0f}x  {'PASS' if ok_open else 'MISS'}")
    print(f"  (pybpf: min {min(py_open) * 1e3:.1f} ms, max {max(py_open) * 1e3:.1f} ms; "
          f"C: min {min(c_open) * 1e3:.1f} ms, max {max(c_open) * 1e3:.1f} ms)")
    pc = statistics.median(py_cached)
    print(f"{'  cached':<12}{pc * 1e3:>11.1f} ms{co * 1e3:>11.1f} ms{pc / co:>8.2f}x   "
          f"(type index kept in pybpf's cache from an earlier run this boot)")
    print(f"{'import':<12}{pi * 1e3:>11.1f} ms{'':>14}{'':>9}   (import pybpf.btf, not in "
          f"open_find)")
    ok_dec = rate >= GOAL_DECODE_RATE
    print(f"{'decode':<12}{rate / 1e6:>8.2f} M rec/s{c_rate / 1e6:>8.1f} M/s{rate / c_rate:>8.3f}x"
          f"   >= {GOAL_DECODE_RATE / 1e6:.1f} M/s  {'PASS' if ok_dec else 'MISS'} "
          f"({py_decode / args.records * 1e9:.0f} ns/record)")
    missed = [name for name, ok in (("open_find", ok_open), ("decode", ok_dec)) if not ok]
    return exit_status(missed, args.check)


def _py_run(py_open: List[float], py_import: List[float], cache: Path) -> None:
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    res = _json([sys.executable, "-c", PY_OPEN], "pybpf", env)
    py_open.append(res["open_find"])
    py_import.append(res["import"])


if __name__ == "__main__":
    sys.exit(main())
