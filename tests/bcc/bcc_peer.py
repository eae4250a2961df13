"""Run one script with Debian's BCC (python3-bpfcc, in the system Python) and with pybpf's
BCC front end (``python3 -m pybpf.bcc``), to compare what they print."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SYSTEM_PYTHON = "/usr/bin/python3"


def run_both(tmp_path: Path, script: str, *args: str) -> tuple[str, str]:
    """(BCC's output, pybpf's output) of ``script`` run with ``args``."""
    path = tmp_path / "peer_script.py"
    path.write_text(script)
    bcc = subprocess.run([SYSTEM_PYTHON, str(path), *args], capture_output=True, text=True)
    if bcc.returncode != 0 and "No module named 'bcc'" in bcc.stderr:
        pytest.fail("BCC's Python API is missing: .ci/install installs python3-bpfcc")
    assert bcc.returncode == 0, bcc.stderr
    ours = subprocess.run([sys.executable, "-m", "pybpf.bcc", str(path), *args],
                          capture_output=True, text=True)
    assert ours.returncode == 0, ours.stderr
    return bcc.stdout, ours.stdout
