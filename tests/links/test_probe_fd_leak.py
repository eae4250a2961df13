"""No fd leaks in the probe, iterator and BTF-tracing attach paths, succeeding or failing."""
from __future__ import annotations

import os

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.errors import PyBPFError
from pybpf.links import (attach_iter, attach_kprobe, attach_kprobe_multi, attach_uprobe,
                         attach_uprobe_multi, attach_usdt, btf_tracing)
from pybpf.links.perf_event import attach_perf_event_program
from pybpf.programs import Program
from pybpf.sys.uapi import PerfSwId
from tests.links.test_iter import task_iter_insns

RET0 = assemble([mov64_imm(R0, 0), exit_()])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _round(probe_target, cgroup_dir) -> None:
    with Program.load("kprobe", RET0) as kp, \
            btf_tracing.load("iter", "task", task_iter_insns()) as it, \
            Program.load("perf_event", RET0) as pe:
        with attach_uprobe(kp, str(probe_target), "pybpf_uprobe_target"), \
                attach_uprobe(kp, str(probe_target), "pybpf_uprobe_target", legacy=True), \
                attach_usdt(kp, str(probe_target), "pybpf", "hit"), \
                attach_perf_event_program(pe, PerfSwId.CPU_CLOCK, sample_period=10**9):
            with attach_iter(it) as link:
                link.read()
        for bad in (lambda: attach_kprobe(kp, "pybpf_no_such_fn"),
                    lambda: attach_kprobe_multi(kp, symbols=["pybpf_no_such_fn"]),
                    lambda: attach_uprobe(kp, str(probe_target), "nothing"),
                    lambda: attach_uprobe(kp, str(probe_target), offset=1 << 40),
                    lambda: attach_uprobe_multi(kp, str(probe_target), symbols=["main"]),
                    lambda: attach_usdt(kp, str(probe_target), "pybpf", "nothing"),
                    lambda: attach_iter(kp),
                    lambda: attach_iter(kp, cgroup=cgroup_dir),
                    lambda: attach_iter(it, cgroup=cgroup_dir / "nothing"),
                    lambda: btf_tracing.load("tp_btf", "nothing", RET0),
                    lambda: btf_tracing.attach(kp, 0)):
            with pytest.raises(PyBPFError):
                bad()


def test_no_fd_leaks(probe_target, tmp_path, tracefs):
    _round(probe_target, tmp_path)  # warm caches (ELF files, BTF, feature probes)
    before = open_fds()
    for _ in range(8):
        _round(probe_target, tmp_path)
    assert open_fds() == before
