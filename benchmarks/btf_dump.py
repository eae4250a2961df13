"""Dumping the running kernel's BTF as C (vmlinux.h): pybpf against libbpf, in the same run.

    python3 benchmarks/btf_dump.py [--rounds R] [--btf FILE]

Both sides parse ``/sys/kernel/btf/vmlinux`` from scratch and emit every type as C: pybpf with
``dump_c(Spec.from_file(path))`` (a str), the C peer ``benchmarks/peers/btf_dump.c`` with
libbpf's ``btf__parse`` + ``btf_dump__dump_type`` for each id into /dev/null (compiled here with
``cc -O2 ... -lbpf``; Debian: libbpf-dev). Best of ``--rounds`` per side. Prints wall and CPU
seconds, the pybpf/C ratios, the output sizes (they differ only by the enum size attributes libbpf 1.1
omits), and peak RSS. A benchmark, not a test: exits 0 unless something fails.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import build_peer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3, help="rounds per side, best counts (3)")
    ap.add_argument("--btf", default="/sys/kernel/btf/vmlinux", help="BTF file to dump")
    args = ap.parse_args(argv)
    from pybpf.btf.cdump import dump_c  # noqa: PLC0415 - after argument parsing
    from pybpf.btf.spec import Spec  # noqa: PLC0415

    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as tmp:
        exe = build_peer("btf_dump", Path(tmp))
        res = subprocess.run([str(exe), args.btf, str(args.rounds)], capture_output=True,
                             text=True)
        if res.returncode != 0:
            sys.exit(f"benchmarks/btf_dump.py: the C peer failed: {res.stderr.strip()}")
        peer = [json.loads(line) for line in res.stdout.splitlines()]
        peer_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    best_py = cpu_py = float("inf")
    size_py = types = 0
    for _ in range(args.rounds):
        t0, c0 = time.perf_counter(), time.process_time()
        spec = Spec.from_file(args.btf)
        text = dump_c(spec)
        best_py = min(best_py, time.perf_counter() - t0)
        cpu_py = min(cpu_py, time.process_time() - c0)
        size_py, types = len(text.encode()), len(spec)
    best_c = min(p["seconds"] for p in peer)
    cpu_c = min(p["cpu"] for p in peer)
    py_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"{args.btf}: {types} types as C; best of {args.rounds} rounds per side "
          f"(parse + dump)")
    print(f"{'side':<8}{'wall s':>9}{'CPU s':>9}{'bytes of C':>12}{'peak RSS':>12}")
    print(f"{'pybpf':<8}{best_py:>9.3f}{cpu_py:>9.3f}{size_py:>12}{py_rss // 1024:>8} MiB")
    print(f"{'libbpf':<8}{best_c:>9.3f}{cpu_c:>9.3f}{peer[0]['bytes']:>12}"
          f"{peer_rss // 1024:>8} MiB")
    print(f"pybpf/C: {best_py / best_c:.1f}x the wall time, {cpu_py / cpu_c:.1f}x the CPU time "
          f"(CPU time is the fairer figure on a loaded machine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
