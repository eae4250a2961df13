"""Shared fixtures: bpffs/tracefs mounts, a private pin directory, clang-compiled objects."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from tests import leaks
from tests.vm.kernels import guest_kernel
from tests.vm.probes import PROBES

BPFFS = Path("/sys/fs/bpf")
TRACEFS = Path("/sys/kernel/tracing")
BPF_SRC = Path(__file__).parent / "bpf"
MULTIARCH_INCLUDE = f"/usr/include/{platform.machine()}-linux-gnu"  # asm/types.h for linux/bpf.h


def _mounted(path: Path, fstype: str) -> bool:
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == str(path) and line.split()[2] == fstype for line in f)


def ensure_mount(path: Path, fstype: str) -> None:
    """Mount ``fstype`` at ``path`` unless it is there already (as the project's setup does)."""
    if not _mounted(path, fstype):
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", fstype, fstype, str(path)], check=True)


@pytest.fixture(scope="session")
def bpffs() -> Path:
    ensure_mount(BPFFS, "bpf")
    return BPFFS


@pytest.fixture(scope="session")
def tracefs() -> Path:
    ensure_mount(TRACEFS, "tracefs")
    return TRACEFS


@pytest.fixture
def pin_dir(bpffs: Path):
    """A fresh directory on bpffs, removed with everything pinned in it, also on failure."""
    d = bpffs / f"pybpf-test-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    d.mkdir()
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def clang() -> str:
    path = shutil.which("clang")
    if path is None:
        pytest.fail("clang is not installed: `apt-get install clang` (.ci/run installs it)")
    return path


@pytest.fixture(scope="session")
def bpftool() -> str:
    """Debian's bpftool, the reference peer tests compare with."""
    path = shutil.which("bpftool")
    if path is None:
        pytest.fail("bpftool (the reference peer) is not installed: `apt-get install bpftool` "
                    "(.ci/install installs it)")
    return path


@pytest.fixture(scope="session")
def bpf_objects(clang: str, tmp_path_factory) -> dict[str, Path]:
    """Every ``tests/bpf/*.c`` compiled with ``clang -g -O2 -target bpf``, by stem."""
    out = tmp_path_factory.mktemp("bpfobj")
    objs = {}
    for src in sorted(BPF_SRC.glob("*.c")):
        obj = out / (src.stem + ".o")
        subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                        "-I", str(BPF_SRC), "-I", MULTIARCH_INCLUDE,
                        "-c", str(src), "-o", str(obj)], check=True)
        objs[src.stem] = obj
    return objs


def pytest_collection_modifyitems(config, items):
    """``@pytest.mark.kernel("kprobe")``: skipped, with the probe's reason and how to run it
    in a VM, where the running kernel lacks the feature (``pybpf.features``)."""
    vm = guest_kernel()
    for item in items:
        for mark in item.iter_markers("kernel"):
            feature = mark.args[0]
            support = PROBES[feature]()
            if support:
                continue
            where = f"kernel {vm}" if vm else "this kernel"
            how = "" if vm else (f"; run it in a VM with `python -m tests.vm --feature {feature} "
                                 f"-- python3 -m pytest {item.nodeid}`")
            item.add_marker(pytest.mark.skip(
                reason=f"{where} lacks {feature!r}: {support.reason}{how}"))


_RUN: dict = {}  # "before": the kernel's stock before the run; "leaks": what it left


def pytest_sessionstart(session):
    """Take stock of the kernel's maps, programs, links and pins before the run."""
    ensure_mount(BPFFS, "bpf")
    _RUN["before"] = leaks.Stock.take()


def pytest_sessionfinish(session, exitstatus):
    """Fail the run when it left maps, programs, links or pins behind (tests/leaks.py)."""
    if "before" not in _RUN or exitstatus not in (pytest.ExitCode.OK,
                                                  pytest.ExitCode.TESTS_FAILED):
        return
    _RUN["leaks"] = leaks.check(_RUN["before"])
    if _RUN["leaks"]:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    """The leak report, above the closing line."""
    if _RUN.get("leaks"):
        terminalreporter.section("objects left in the kernel", red=True)
        terminalreporter.write_line(_RUN["leaks"], red=True)
