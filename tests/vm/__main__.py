"""``python -m tests.vm [KERNEL | --feature F ...] [options] [-- COMMAND ...]``: see ``--help``."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from .boot import VM
from .fetch import VMError, cache_root, cached_kernel, describe, ensure_host_tools, ensure_kernel
from .initramfs import ensure_initramfs
from .kernels import FEATURES, KERNELS, NOTES, kernels_with, pick

EPILOG = """\
The command runs as root in the guest with the repository as its cwd, the host's / read-only
(writes go to tmpfs overlays and are lost), bpffs, tracefs, debugfs and cgroup2 mounted, and
PYBPF_VM=<kernel> in its environment. Its output is streamed; the runner exits with its status,
124 on timeout, 125 when the runner itself failed (download, boot). Without a command the
kernel is only fetched and its initramfs built. Kernels are cached in
${XDG_CACHE_HOME:-~/.cache}/pybpf/kernels; delete a kernel's directory to fetch the newest again.
"""


def parse(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """The options, and the command after ``--``."""
    argv = list(argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    options = argv[:argv.index("--")] if "--" in argv else argv
    p = argparse.ArgumentParser(
        prog="python -m tests.vm", usage="%(prog)s [KERNEL | --feature F ...] [options] [-- COMMAND ...]",
        description="Run a command as root under another kernel, booted in qemu.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kernel", nargs="?", choices=list(KERNELS), help="the kernel to boot")
    p.add_argument("--feature", action="append", default=[], metavar="F", choices=sorted(FEATURES),
                   help="boot the first kernel that has F (repeatable: all of them)")
    p.add_argument("--list", action="store_true", help="list the kernels, the cache and the feature table")
    p.add_argument("--timeout", type=float, default=1800, help="seconds for boot and command (default 1800)")
    p.add_argument("--mem", default="2G", help="guest memory (default 2G)")
    p.add_argument("--cpus", type=int, default=2, help="guest CPUs (default 2)")
    p.add_argument("--accel", default="tcg",
                   help="qemu accelerator (default tcg: this machine's /dev/kvm runs PVM guests only)")
    p.add_argument("--append", default="", help="more kernel command-line arguments")
    p.add_argument("--results", metavar="DIR", help="keep the guest's output, status and console log in DIR")
    args = p.parse_args(options)
    if not args.list and not args.kernel and not args.feature:
        p.error("name a kernel or a --feature (or --list)")
    return args, command


def list_all() -> None:
    print(f"kernels (cache {cache_root() / 'kernels'}):")
    for name, kernel in KERNELS.items():
        k = cached_kernel(name)
        print(f"  {name:5} Debian {kernel.suite:9} {describe(k) if k else 'not fetched'}")
    print("features (kernels that have them, preferred first):")
    for feature, names in FEATURES.items():
        notes = "; ".join(f"{n}: {NOTES[feature, n]}" for n in names if (feature, n) in NOTES)
        print(f"  {feature:16} {' '.join(names):14} {notes}".rstrip())


def choose(kernel: Optional[str], features: Sequence[str]) -> str:
    """The kernel named, or the first with all ``features``; VMError when they disagree."""
    try:
        if kernel is None:
            return pick(features)
        lacking = [f for f in features if kernel not in kernels_with(f)]
    except LookupError as e:
        raise VMError(str(e)) from None
    if lacking:
        raise VMError(f"kernel {kernel} lacks {', '.join(lacking)}")
    return kernel


def main(argv: Sequence[str]) -> int:
    args, command = parse(argv)
    if args.list:
        list_all()
        return 0
    try:
        name = choose(args.kernel, args.feature)
        t0 = time.time()
        ensure_host_tools()
        k = ensure_kernel(name)
        initramfs = ensure_initramfs(k)
        if time.time() - t0 > 1:
            print(f"vm: {name} ready in {time.time() - t0:.1f} s: {describe(k)}", file=sys.stderr, flush=True)
        if not command:
            print(f"{k.vmlinuz}\n{initramfs}")
            return 0
        vm = VM(k, initramfs, mem=args.mem, cpus=args.cpus, accel=args.accel, append=args.append)
        return vm.run(command, args.timeout, Path(args.results) if args.results else None)
    except VMError as e:
        print(f"vm: error: {e}", file=sys.stderr, flush=True)
        return e.status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
