"""Fixtures of the link tests: a count map, the user-space probe target built with cc."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf.maps import Map

HERE = Path(__file__).parent


@pytest.fixture
def counts():
    """counts[u32 tgid] -> u64 hits."""
    with Map.create("hash", 4, 8, 4096, name="tp_counts", key="I", value="Q") as m:
        yield m


@pytest.fixture
def cookie_counts():
    """counts[u64 cookie] -> u64 hits."""
    with Map.create("hash", 8, 8, 64, name="cookie_counts", key="Q", value="Q") as m:
        yield m


def _build_target(tmp_path_factory, opt: str) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no C compiler: `apt-get install gcc` (.ci/install installs it)")
    out = tmp_path_factory.mktemp("probe_target") / f"probe_target{opt}"
    subprocess.run([cc, opt, "-g", "-o", str(out), str(HERE / "probe_target.c"),
                    str(HERE / "probe_target_plain.c")], check=True)
    return out


@pytest.fixture(scope="session")
def probe_target(tmp_path_factory) -> Path:
    """tests/links/probe_target*.c built with cc -O2 (needs sys/sdt.h: systemtap-sdt-dev)."""
    return _build_target(tmp_path_factory, "-O2")


@pytest.fixture(scope="session")
def probe_target_O0(tmp_path_factory) -> Path:
    """The same built with -O0: its USDT arguments are stack slots (N@off(%rbp))."""
    return _build_target(tmp_path_factory, "-O0")
