"""Opening and loading a BPF object file: pybpf against libbpf, measured in the same run.

    sudo python3 benchmarks/load.py [--rounds R] [--check]

The object (compiled here with ``clang -g -O2 -target bpf``) has two BTF-defined maps and one
tracepoint program with CO-RE relocations (``struct task_struct`` fields): the loader parses
the ELF and BTF, loads the object's BTF, creates the maps, relocates (CO-RE against the
kernel's BTF), patches and loads the program. pybpf does
``load(ObjectSpec.from_file(path))`` then closes the collection; the C peer ``benchmarks/peers/load.c`` does ``bpf_object__open_file`` +
``bpf_object__load`` then ``bpf_object__close`` (compiled with ``cc -O2 ... -lbpf``).

Which side relocates CO-RE: by default the kernel does, in BPF_PROG_LOAD (``core_relos``,
Linux 5.17+, libbpf's rules in the kernel's own code), so pybpf never reads vmlinux's BTF;
on older kernels, or with ``core_btf=``, pybpf relocates in Python (``core_in_kernel=False``
here). The measures, each the median of ``--rounds``:

    warm        open+load repeated in one long-running process (libbpf parses the kernel's
                BTF again for every object)
    new process a fresh ``python3`` process loads the object once, timed from after its
                ``import pybpf.elf`` and the loader (the import is printed apart, not in the ratio, as in
                btf.py; start-up as a whole is benchmarks/startup.py's goal); for the peer its
                first round in a fresh process (its exec time not counted either)
  relocated by pybpf (the fallback):
    warm        as above; pybpf keeps the parsed vmlinux BTF for the process
    fresh       pybpf reads the kernel's BTF again each round, as libbpf does (the type index
                from pybpf's boot-long disk cache)
    first       as fresh, with that disk cache empty too: the first load after a boot

Prints the times, the pybpf/libbpf ratio against the goal (pybpf at most 3x slower) and
PASS/MISS. Exits 0 (a benchmark, not a test) unless ``--check`` is given and a goal of the
default path is missed (the kernel relocating; pybpf relocating where the kernel cannot).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Optional

from common import build_peer, exit_status

HERE = Path(__file__).resolve().parent
GOAL = 3.0  # pybpf time / libbpf time, at most
MULTIARCH = f"/usr/include/{os.uname().machine}-linux-gnu"

BPF_SOURCE = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1024);
} parent_of SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} calls SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int record_parent(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	__u32 pid = BPF_CORE_READ(task, pid), ppid = BPF_CORE_READ(task, real_parent, tgid);
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&calls, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
	bpf_map_update_elem(&parent_of, &pid, &ppid, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
"""

COLD_PYBPF = """
import json, sys, time
t0 = time.perf_counter()
from pybpf.elf import ObjectSpec, load
import pybpf.elf.loader  # pybpf.elf exports the loader on first use: imported here, as before
t1 = time.perf_counter()
with load(ObjectSpec.from_file(sys.argv[1])) as obj:
    assert len(obj.programs) == 1 and len(obj.maps) == 2
print(json.dumps({"import": t1 - t0, "load": time.perf_counter() - t1}))
"""


def fail(msg: str) -> None:
    sys.exit(f"benchmarks/load.py: {msg}")


def build(out: Path) -> tuple[Path, Path]:
    """The BPF object and the C peer; missing tools are a clear error."""
    clang = shutil.which("clang")
    if clang is None:
        fail("clang is missing (Debian: apt-get install clang)")
    src, obj = out / "load_bench.bpf.c", out / "load_bench.bpf.o"
    src.write_text(BPF_SOURCE)
    res = subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", MULTIARCH, "-c", str(src),
                          "-o", str(obj)], capture_output=True, text=True)
    if res.returncode:
        fail(f"compiling the BPF object failed:\n{res.stderr}")
    return obj, build_peer("load", out)


def run_peer(exe: Path, obj: Path, rounds: int) -> tuple[list[float], int]:
    res = subprocess.run([str(exe), str(obj), str(rounds)], capture_output=True, text=True)
    if res.returncode:
        fail(f"the C peer failed: {res.stderr.strip()}")
    times, rss = [], 0
    for line in res.stdout.splitlines():
        rec = json.loads(line)
        if "peak_rss_kib" in rec:
            rss = rec["peak_rss_kib"]
        else:
            if (rec["programs"], rec["maps"]) != (1, 2):
                fail(f"the C peer loaded {rec['programs']} programs and {rec['maps']} maps")
            times.append(rec["seconds"])
    return times, rss


def run_pybpf_warm(obj: Path, rounds: int, in_kernel: bool, fresh_btf: bool = False,
                   empty_cache: Optional[Path] = None) -> list[float]:
    from pybpf.btf import spec as btf_spec  # noqa: PLC0415 - after argument parsing
    from pybpf.elf import ObjectSpec, load  # noqa: PLC0415

    times = []
    for r in range(rounds):
        if fresh_btf:
            btf_spec._vmlinux.cache_clear()
        if empty_cache is not None:
            os.environ["XDG_CACHE_HOME"] = str(empty_cache / str(r))
        t0 = time.perf_counter()
        coll = load(ObjectSpec.from_file(obj), core_in_kernel=in_kernel)
        times.append(time.perf_counter() - t0)
        if (len(coll.programs), len(coll.maps)) != (1, 2):
            fail(f"pybpf loaded {sorted(coll.programs)} and {sorted(coll.maps)}")
        coll.close()
    return times


def run_pybpf_cold(obj: Path) -> dict[str, float]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]))
    res = subprocess.run([sys.executable, "-c", COLD_PYBPF, str(obj)], capture_output=True,
                         text=True, env=env)
    if res.returncode:
        fail(f"pybpf (cold) failed:\n{res.stderr}")
    return json.loads(res.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=15, help="rounds per measure (15)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a goal is missed")
    args = ap.parse_args(argv)
    if args.rounds < 1:
        ap.error("--rounds must be positive")
    with tempfile.TemporaryDirectory(prefix="pybpf-bench-") as tmp:
        obj, exe = build(Path(tmp))
        peer_warm, peer_rss = run_peer(exe, obj, args.rounds + 1)
        peer_cold = [run_peer(exe, obj, 1)[0][0] for _ in range(args.rounds)]
        from pybpf import features  # noqa: PLC0415 - after argument parsing
        by_kernel = bool(features.kernel_core())
        py_warm, py_cold = [], []
        if by_kernel:
            py_warm = run_pybpf_warm(obj, args.rounds + 1, True)[1:]  # the first: new process's
            subprocess.run([sys.executable, "-c", COLD_PYBPF, str(obj)], check=True,
                           capture_output=True, env=dict(os.environ, PYTHONDONTWRITEBYTECODE=""))
            py_cold = [run_pybpf_cold(obj) for _ in range(args.rounds)]  # bytecode written above
        ours_warm = run_pybpf_warm(obj, args.rounds + 1, False)[1:]
        ours_fresh = run_pybpf_warm(obj, args.rounds, False, fresh_btf=True)
        cache = os.environ.get("XDG_CACHE_HOME")
        ours_first = run_pybpf_warm(obj, args.rounds, False, fresh_btf=True,
                                    empty_cache=Path(tmp) / "empty-cache")
        if cache is None:
            del os.environ["XDG_CACHE_HOME"]
        else:
            os.environ["XDG_CACHE_HOME"] = cache
    c_warm, c_cold = statistics.median(peer_warm[1:]), statistics.median(peer_cold)
    rows = [("warm", statistics.median(ours_warm), c_warm, not by_kernel),
            ("fresh", statistics.median(ours_fresh), c_warm, not by_kernel),
            ("first", statistics.median(ours_first), c_warm, not by_kernel)]
    if by_kernel:
        rows[:0] = [("warm", statistics.median(py_warm), c_warm, True),
                    ("new process", statistics.median(r["load"] for r in py_cold), c_cold, True)]
    print(f"open + load of a 2-map, 1-program CO-RE object; median of {args.rounds} rounds")
    print(f"{'measure':<13}{'pybpf ms':>10}{'libbpf ms':>11}{'ratio':>8}{'goal':>7}  result")
    if not by_kernel:
        print(f"the kernel cannot relocate CO-RE: {features.kernel_core().reason}")
    missed = []
    for n, (name, py, c, default) in enumerate(rows):
        if by_kernel and n == 0:
            print("the kernel relocates CO-RE (the default)")
        if n == len(rows) - 3:
            print("pybpf relocates CO-RE in Python (kernels before 5.17, or core_btf=)")
        ratio = py / c
        ok = ratio <= GOAL
        if not ok and default:
            missed.append(name)
        print(f"  {name:<11}{py * 1e3:>10.2f}{c * 1e3:>11.2f}{ratio:>8.2f}{GOAL:>6.1f}x  "
              f"{'PASS' if ok else 'MISS'}")
    if py_cold:
        imported = statistics.median(r["import"] for r in py_cold)
        print(f"import pybpf.elf in a new process: {imported * 1e3:.1f} ms (not in the ratio; "
              "benchmarks/startup.py measures start-up)")
    print(f"C peer peak RSS {peer_rss / 1024:.1f} MiB")
    return exit_status(missed, args.check)


if __name__ == "__main__":
    sys.exit(main())
