"""``pybpf struct_ops`` against Debian's bpftool: tests/bpf/struct_ops.c's congestion controls,
compiled with names of their own, registered by pybpf and shown by both tools."""
from __future__ import annotations

import subprocess
import time
import uuid

import pytest

from pybpf.maps import Map

from tests.cli.tools import assert_error, bpftool, pybpf, same
from tests.conftest import BPF_SRC, MULTIARCH_INCLUDE

AVAILABLE = "/proc/sys/net/ipv4/tcp_available_congestion_control"


def available() -> list[str]:
    with open(AVAILABLE) as f:
        return f.read().split()


@pytest.fixture
def obj(clang, tmp_path) -> tuple[str, str, str]:
    """The object and its two congestion controls' names (unique to this test)."""
    tag = uuid.uuid4().hex[:4]
    out = tmp_path / "struct_ops.o"
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                    f"-DCA_SUFFIX=\"_{tag}\"", "-I", MULTIARCH_INCLUDE, "-c",
                    str(BPF_SRC / "struct_ops.c"), "-o", str(out)], check=True)
    return str(out), f"pybpf_reg_{tag}", f"pybpf_link_{tag}"


def test_register_show_unregister(obj, pin_dir):
    path, reg, link = obj
    res = pybpf("struct_ops", "register", path, pin_dir)
    try:
        assert res.rc == 0, res.err
        lines = res.out.splitlines()
        assert lines[0].startswith("Registered tcp_congestion_ops pybpf_reg id ")
        assert lines[1].startswith("Registered tcp_congestion_ops pybpf_link map id ")
        assert " link id " in lines[1] and (pin_dir / "pybpf_link").exists()
        assert reg in available() and link in available()
        ours, _ = same("struct_ops", "show")  # bpftool's view of what pybpf registered
        assert "pybpf_reg       tcp_congestion_ops" in ours.out
        same("struct_ops", "show", "name", "pybpf_link")
        assert_error(pybpf("struct_ops", "unregister", "name", "pybpf_link"),
                     "registered through a BPF link", "close or unpin its link")
        res = pybpf("struct_ops", "unregister", "name", "pybpf_reg")
        assert res.rc == 0 and res.out.startswith("Unregistered tcp_congestion_ops pybpf_reg id")
        assert reg not in available() and link in available()
    finally:
        if reg in available():
            bpftool("struct_ops", "unregister", "name", "pybpf_reg")
        (pin_dir / "pybpf_link").unlink(missing_ok=True)
    assert gone(link)  # its link is gone with its pin


def gone(name: str, timeout: float = 5.0) -> bool:
    """Whether ``name`` leaves the kernel's list within ``timeout``: a link whose last pin is
    removed is released after an RCU grace period, not by the unlink itself."""
    deadline = time.monotonic() + timeout
    while name in available():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_register_refusals(obj, tmp_path):
    path, reg, link = obj
    assert_error(pybpf("struct_ops", "register", path), "pybpf_link", "give LINK_DIR")
    assert reg not in available()
    assert_error(pybpf("struct_ops", "register", tmp_path / "none.o"), "failed to register")
    assert_error(pybpf("struct_ops", "show", "name", "pybpf_nothing"),
                 "no struct_ops found for pybpf_nothing")
    assert isinstance(pybpf("-j", "struct_ops", "show").json(), list)
    with Map.create("hash", 4, 4, 1) as m:
        assert_error(pybpf("struct_ops", "show", "id", m.id), f"map id {m.id} is not a "
                                                               "struct_ops map")
