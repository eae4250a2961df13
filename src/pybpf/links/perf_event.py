"""perf_event programs: run a program (BPF_PROG_TYPE_PERF_EVENT) on the samples of a perf
event, a software clock tick or a hardware counter overflow, on every CPU or one process."""
from __future__ import annotations

import errno as _errno
from typing import Iterable, Optional, Union

from ..errors import BPFError, UsageError
from ..object import KernelObject
from ..sys import perf
from ..sys.cpus import online_cpus
from ..sys.fd import FD
from ..sys.uapi import PerfHwId, PerfSwId, PerfTypeId
from .link import Link, LinkGroup, PerfEventAttachment
from .tracing import attach_perf_event

Event = Union[PerfSwId, PerfHwId, tuple[int, int]]


def _type_config(event: Event) -> tuple[int, int, str]:
    if isinstance(event, PerfSwId):
        return PerfTypeId.SOFTWARE, int(event), f"software event {event.name.lower()}"
    if isinstance(event, PerfHwId):
        return PerfTypeId.HARDWARE, int(event), f"hardware event {event.name.lower()}"
    if isinstance(event, tuple) and len(event) == 2:
        return event[0], event[1], f"perf event type {event[0]} config {event[1]:#x}"
    raise UsageError(f"perf event {event!r}: give a PerfSwId, a PerfHwId or (type, config)")


def open_sampling_event(event: Event, *, sample_period: int = 0, sample_freq: int = 0,
                        pid: int = -1, cpu: int = -1) -> FD:
    """Open ``event`` sampling every ``sample_period`` events, or ``sample_freq`` times a
    second, for process ``pid`` (-1: all) on ``cpu`` (-1: any)."""
    if bool(sample_period) == bool(sample_freq):
        raise UsageError("give exactly one of sample_period and sample_freq")
    ptype, config, what = _type_config(event)
    attr = perf.PerfEventAttr(type=ptype, config=config,
                              sample_period=sample_freq or sample_period,
                              flags=perf.PerfAttrFlag.FREQ if sample_freq else 0)
    where = f"{what} on CPU {cpu}" if cpu >= 0 else f"{what} of pid {pid}"
    try:
        return perf.perf_event_open(attr, pid=pid, cpu=cpu, what=where)
    except BPFError as e:
        if e.errno in (_errno.ENOENT, _errno.EOPNOTSUPP) and ptype == PerfTypeId.HARDWARE:
            raise BPFError(e.errno, "perf_event_open", where,
                           "this machine has no hardware PMU for it (virtual machines and "
                           "containers often have none)",
                           "use a software event such as PerfSwId.CPU_CLOCK") from None
        if e.errno == _errno.EINVAL and sample_freq:
            raise BPFError(e.errno, "perf_event_open", where,
                           f"sample_freq {sample_freq} exceeds kernel.perf_event_max_sample_rate"
                           ) from None
        raise


def attach_perf_event_program(program: KernelObject, event: Event, *, sample_period: int = 0,
                              sample_freq: int = 0, cpus: Optional[Iterable[int]] = None,
                              pid: int = -1, cookie: int = 0,
                              force_ioctl: bool = False) -> LinkGroup:
    """Run perf_event ``program`` on each sample of ``event``: one perf event per CPU of
    ``cpus`` (default: every online CPU) for all processes, or with ``pid`` one event
    following that process on any CPU. Returns the attachments as a group."""
    if pid >= 0 and cpus is not None:
        raise UsageError("attach_perf_event_program: pid follows a process on any CPU; "
                         "give pid or cpus, not both")
    places = [(pid, -1)] if pid >= 0 else [(-1, c) for c in (online_cpus() if cpus is None
                                                             else cpus)]

    def attach(p: int, c: int) -> Union[Link, PerfEventAttachment]:
        pfd = open_sampling_event(event, sample_period=sample_period, sample_freq=sample_freq,
                                  pid=p, cpu=c)
        what = f"{_type_config(event)[2]} " + (f"on CPU {c}" if c >= 0 else f"of pid {p}")
        return attach_perf_event(program, pfd, what, cookie, force_ioctl)

    group = LinkGroup.collect(attach(p, c) for p, c in places)
    group.name = f"{program.describe()} on {_type_config(event)[2]}"
    return group
