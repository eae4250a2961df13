"""Without CAP_BPF/CAP_SYS_ADMIN every operation fails with an error that says so."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from pybpf import caps, features

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


PARTIAL = """
import errno
from pybpf.errors import BPFError
from pybpf.maps import Map
from pybpf.programs import Program
RET0 = bytes.fromhex("b7000000000000009500000000000000")
Map.create("hash", 4, 4, 1, name="t_capbpf").close()   # CAP_BPF alone makes maps
for what in ("tracepoint", "xdp"):
    try:
        Program.load(what, RET0, name="p").close()
    except BPFError as e:
        assert e.errno == errno.EPERM, e
        print(what, e)
    else:
        print(what, "succeeded")
"""


def _setpriv() -> str:
    path = shutil.which("setpriv")
    if path is None:
        pytest.fail("setpriv (util-linux) is needed to drop capabilities")
    return path


def test_cap_bpf_alone_names_the_capability_each_program_type_lacks():
    """CAP_BPF held, CAP_SYS_ADMIN/PERFMON/NET_ADMIN dropped: tracing programs need
    CAP_PERFMON, networking ones CAP_NET_ADMIN, and the error says which, and what is held."""
    out = subprocess.run([_setpriv(), "--bounding-set=-sys_admin,-perfmon,-net_admin",
                          "--inh-caps=-all", "--", sys.executable, "-c", PARTIAL],
                         capture_output=True, text=True, check=True).stdout
    lines = dict(line.split(" ", 1) for line in out.splitlines())
    assert "lacks CAP_PERFMON" in lines["tracepoint"] and "holds CAP_BPF" in lines["tracepoint"]
    assert "lacks CAP_NET_ADMIN" in lines["xdp"] and "holds CAP_BPF" in lines["xdp"]
    for line in lines.values():
        assert "refused by this kernel" not in line and "(EPERM)" in line


def _refused_while_privileged():
    """Something this kernel refuses with EPERM although the capabilities are held."""
    from pybpf.sys.uapi import MapType
    candidates = [(features.iter_target("bpf_map_elem"), "iterator target bpf_map_elem"),
                  (features.map_type(MapType.ARENA), "map type arena"),
                  (features.fentry(), "fentry/fexit programs"),
                  (features.lsm(), "LSM programs"), (features.freplace(), "freplace programs")]
    for support, what in candidates:
        if not support and "EPERM" in support.reason:
            return support, what
    return None, None


def test_refusal_while_privileged_blames_the_kernel_not_privileges():
    assert features.privileged()
    support, what = _refused_while_privileged()
    if support is None:
        pytest.skip("this kernel refuses none of iter/bpf_map_elem, arena, fentry, LSM, "
                    "freplace with EPERM: nothing to explain")
    assert support.reason.startswith(f"{what}: ")
    assert "refused by this kernel although CAP_BPF, CAP_SYS_ADMIN" in support.reason
    assert "lacks" not in support.reason and "run as root" not in support.reason
    mode = caps.lockdown()
    if mode not in (None, "none"):
        assert f"kernel lockdown is in {mode} mode" in support.reason


def test_capabilities_read_from_proc():
    eff = caps.effective()
    assert bool(eff >> caps.CAP_SYS_ADMIN & 1) == (os.geteuid() == 0)
    assert caps.missing(("CAP_PERFMON", "CAP_NET_ADMIN"), eff) == []
    only_bpf = 1 << caps.CAP_BPF
    assert caps.missing(("CAP_PERFMON",), only_bpf) == ["CAP_PERFMON"]
    assert caps.missing((), 0) == ["CAP_BPF"]
    assert "lacks CAP_BPF" in caps.eperm_reason((), 0)
