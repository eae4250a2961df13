"""What every benchmark shares: building its libbpf C peer from ``benchmarks/peers/`` and
the exit status against its goals.

The peer is compiled in the same run (``cc -O2 peers/NAME.c -lbpf``; Debian: gcc and
libbpf-dev), so pybpf and libbpf are measured on the same machine, kernel and load.
"""
from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Sequence

PEERS = Path(__file__).resolve().parent / "peers"


def build_peer(name: str, out: Path, libs: tuple[str, ...] = ("-lbpf",)) -> Path:
    """Compile ``peers/<name>.c`` into ``out``; a missing compiler or libbpf-dev exits with
    a one-line explanation."""
    bench = f"benchmarks/{Path(sys.argv[0]).name}"
    cc = shlex.split(os.environ.get("CC", "")) or [
        shutil.which("cc") or shutil.which("gcc") or shutil.which("clang") or ""]
    if not cc[0] or not shutil.which(cc[0]):
        sys.exit(f"{bench}: no C compiler (cc, gcc or clang) on PATH; install one "
                 f"(Debian: apt-get install gcc) or set CC")
    exe = out / f"{name}-peer"
    cmd = [*cc, "-O2", str(PEERS / f"{name}.c"), *libs, "-o", str(exe)]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        hint = ""
        if "bpf/" in res.stderr or "lbpf" in res.stderr:
            hint = "\nlibbpf headers or library missing: apt-get install libbpf-dev"
        sys.exit(f"{bench}: building the C peer failed: {' '.join(cmd)}\n"
                 f"{res.stderr.strip()}{hint}")
    return exe


def exit_status(missed: Sequence[str], check: bool) -> int:
    """A benchmark's exit status: 0, or 1 under ``--check`` when goals were missed (named on
    stderr)."""
    if missed and check:
        print(f"goal missed: {', '.join(missed)}", file=sys.stderr)
        return 1
    return 0
