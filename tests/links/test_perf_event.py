"""perf_event programs on software clock samples: per CPU and per process, by period and by
frequency, with the IOC_SET_BPF fallback; hardware counters a clear error where absent."""
from __future__ import annotations

import os
import time

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.errors import BPFError, UsageError
from pybpf.links import LinkGroup, PerfEventAttachment
from pybpf.links.perf_event import attach_perf_event_program, open_sampling_event
from pybpf.programs import Program
from pybpf.sys.cpus import online_cpus
from pybpf.sys.uapi import LinkType, PerfEventType, PerfHwId, PerfSwId
from tests.links.progs import count_per_cpu, count_per_tgid


def spin(seconds: float, cpu: int | None = None) -> None:
    """Keep this thread on the CPU (pinned to ``cpu``) for ``seconds``."""
    saved = os.sched_getaffinity(0)
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            pass
    finally:
        os.sched_setaffinity(0, saved)


def test_samples_of_one_cpu_only(counts):
    with Program.load("perf_event", count_per_cpu(counts.fd), name="pe_cpu") as prog:
        with attach_perf_event_program(prog, PerfSwId.CPU_CLOCK, sample_freq=1000,
                                       cpus=[0]) as group:
            assert isinstance(group, LinkGroup) and len(group) == 1
            spin(0.3, cpu=0)
            info = group[0].info() if not isinstance(group[0], PerfEventAttachment) else None
            if info is not None:
                assert info.type == LinkType.PERF_EVENT
                assert info.details["perf_event_type"] == PerfEventType.EVENT
        assert set(counts.keys()) == {0} and counts[0] > 10
        assert group.closed


@pytest.mark.parametrize("force_ioctl", [False, True], ids=["link", "ioctl"])
def test_samples_of_one_process(counts, force_ioctl):
    with Program.load("perf_event", count_per_tgid(counts.fd), name="pe_pid") as prog:
        with attach_perf_event_program(prog, PerfSwId.TASK_CLOCK, sample_period=1_000_000,
                                       pid=os.getpid(), force_ioctl=force_ioctl) as group:
            spin(0.3)
            assert isinstance(group[0], PerfEventAttachment) or not force_ioctl
        # 300 ms of task clock sampled every 1 ms; only this process (TASK_CLOCK of pid)
        assert counts.get(os.getpid(), 0) > 30 and set(counts.keys()) == {os.getpid()}


def test_every_online_cpu(counts):
    with Program.load("perf_event", count_per_cpu(counts.fd), name="pe_all") as prog:
        with attach_perf_event_program(prog, PerfSwId.CPU_CLOCK, sample_period=1_000_000) as g:
            assert [link.name for link in g] == [f"software event cpu_clock on CPU {c}"
                                                 for c in online_cpus()]
            for cpu in sorted(os.sched_getaffinity(0)):
                spin(0.05, cpu=cpu)
        assert set(counts.keys()) >= set(os.sched_getaffinity(0))


def test_errors():
    with pytest.raises(UsageError, match="exactly one of sample_period and sample_freq"):
        open_sampling_event(PerfSwId.CPU_CLOCK)
    with pytest.raises(UsageError, match="give a PerfSwId"):
        open_sampling_event("cycles", sample_period=1)
    with pytest.raises(BPFError, match="exceeds kernel.perf_event_max_sample_rate"):
        open_sampling_event(PerfSwId.CPU_CLOCK, sample_freq=10**9, pid=0)
    try:
        open_sampling_event(PerfHwId.CPU_CYCLES, sample_period=10**6, pid=0).close()
    except BPFError as e:  # no hardware PMU here (VMs, containers)
        assert "no hardware PMU" in str(e) and "PerfSwId.CPU_CLOCK" in str(e)
    with Program.load("perf_event", assemble([mov64_imm(R0, 0), exit_()])) as prog:
        with pytest.raises(UsageError, match="give pid or cpus, not both"):
            attach_perf_event_program(prog, PerfSwId.CPU_CLOCK, sample_period=1, pid=0, cpus=[0])
