"""Without CAP_BPF/CAP_SYS_ADMIN every operation fails with an error that says so."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

SCRIPT = """
from pybpf.errors import BPFError
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf import features
assert not features.privileged()
for what, op in (("map", lambda: Map.create("hash", 4, 12, 10240, name="config")),
                 ("prog", lambda: Program.load("xdp", bytes.fromhex("b7000000000000009500000000000000"), name="p"))):
    try:
        op()
    except BPFError as e:
        print(what, e.errno, e)
    else:
        print(what, "succeeded")
"""


def test_unprivileged_process_gets_clear_eperm():
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to drop capabilities")
    out = subprocess.run([setpriv, "--bounding-set=-bpf,-sys_admin,-perfmon,-net_admin",
                          "--inh-caps=-all", "--", sys.executable, "-c", SCRIPT],
                         capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    for what, name in (("map", "map 'config'"), ("prog", "program 'p'")):
        assert lines[what].startswith("1 "), out  # EPERM
        assert name in lines[what] and "CAP_BPF" in lines[what] and "(EPERM)" in lines[what]
