"""Dynamic probe events shared by kprobes and uprobes.

Two kernel interfaces create them: the perf PMUs ``kprobe`` and ``uprobe`` (Linux 4.17+; the
event lives exactly as long as its perf fd), and on older kernels tracefs ``kprobe_events`` /
``uprobe_events``, where pybpf writes a named event, opens it as a tracepoint and removes it
again when the attachment is closed.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import itertools
import os
import re
from typing import Optional, Union

from ..errors import BPFError, UsageError
from ..object import KernelObject
from ..sys import perf
from ..sys.fd import FD
from ..sys.host import tracefs
from ..sys.uapi import PerfTypeId
from .link import Link, PerfEventAttachment
from .tracing import attach_perf_event

PMU_ROOT = "/sys/bus/event_source/devices"
LEGACY_GROUP = "pybpf"
_counter = itertools.count()


@functools.lru_cache(maxsize=None)
def pmu_type(pmu: str) -> Optional[int]:
    """The perf type number of dynamic PMU ``pmu`` (``kprobe``, ``uprobe``), None if absent."""
    try:
        with open(f"{PMU_ROOT}/{pmu}/type") as f:
            return int(f.read())
    except FileNotFoundError:
        return None


@functools.lru_cache(maxsize=None)
def pmu_config_bit(pmu: str, field: str) -> Optional[int]:
    """The first ``config`` bit of format field ``field`` (``retprobe`` is ``config:0``,
    ``ref_ctr_offset`` ``config:32-63``); None when the kernel has no such field."""
    try:
        with open(f"{PMU_ROOT}/{pmu}/format/{field}") as f:
            text = f.read().strip()
    except FileNotFoundError:
        return None
    m = re.fullmatch(r"config:(\d+)(?:-\d+)?", text)
    if m is None:
        raise UsageError(f"{PMU_ROOT}/{pmu}/format/{field}: unexpected format {text!r}")
    return int(m.group(1))


def _cpu_for(pid: int) -> tuple[int, int]:
    """perf_event_open's (pid, cpu): every process on CPU 0's event (probes fire on any CPU
    regardless), or one process on any CPU."""
    return (-1, 0) if pid < 0 else (pid, -1)


def open_pmu_probe(pmu: str, target: Optional[str], offset: int, retprobe: bool, pid: int,
                   what: str, ref_ctr_offset: int = 0) -> FD:
    """Open a probe on the ``pmu`` PMU: ``target`` is the kernel symbol (kprobe, None for an
    address in ``offset``) or the file path (uprobe), ``offset`` the offset from it."""
    ptype = pmu_type(pmu)
    if ptype is None:
        raise BPFError(_errno.ENOENT, "perf_event_open", what, f"no {pmu} PMU in {PMU_ROOT}")
    config = 0
    if retprobe:
        bit = pmu_config_bit(pmu, "retprobe")
        if bit is None:
            raise BPFError(_errno.EOPNOTSUPP, "perf_event_open", what,
                           f"the {pmu} PMU has no retprobe format bit")
        config |= 1 << bit
    if ref_ctr_offset:
        shift = pmu_config_bit(pmu, "ref_ctr_offset")
        if shift is None:
            raise BPFError(_errno.EOPNOTSUPP, "perf_event_open", what,
                           "this kernel's uprobe PMU has no ref_ctr_offset (semaphores need "
                           "Linux 4.20)")
        config |= ref_ctr_offset << shift
    name = ctypes.create_string_buffer(target.encode()) if target is not None else None
    attr = perf.PerfEventAttr(type=ptype, config=config,
                              config1=ctypes.addressof(name) if name is not None else 0,
                              config2=offset)
    pid, cpu = _cpu_for(pid)
    return perf.perf_event_open(attr, pid=pid, cpu=cpu, what=what)


class LegacyProbeEvent:
    """A probe written to tracefs ``kprobe_events``/``uprobe_events``; ``remove()`` deletes it.

    ``definition`` is what follows the event name (``do_sys_openat2+0``,
    ``/bin/bash:0x1234(0x40)``); the name is unique to this process. ``maxactive``: how many
    instances of a kretprobe's function may run at once before returns go unseen (``rN:``;
    0: the kernel's default).
    """

    def __init__(self, kind: str, definition: str, retprobe: bool, what: str,
                 maxactive: int = 0) -> None:
        self.kind = kind  # "kprobe" or "uprobe"
        self.what = what
        self.name = f"{kind}_{os.getpid()}_{next(_counter)}"
        self.control = os.path.join(tracefs(), f"{kind}_events")
        how = f"r{maxactive or ''}" if retprobe else "p"
        self._write(f"{how}:{LEGACY_GROUP}/{self.name} {definition}")
        self.removed = False

    def _write(self, line: str) -> None:
        try:
            fd = os.open(self.control, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            raise BPFError(_errno.ENOENT, f"write {self.control}", self.what,
                           f"no {self.control}: CONFIG_{self.kind.upper()}_EVENTS is off") from None
        try:
            os.write(fd, line.encode() + b"\n")
        except OSError as e:
            raise BPFError(e.errno or 0, f"write {self.control}", self.what,
                           f"the kernel refused {line!r} ({os.strerror(e.errno or 0)}); "
                           f"see {tracefs()}/error_log") from None
        finally:
            os.close(fd)

    def attach(self, program: KernelObject, pid: int, cookie: int = 0,
               force_ioctl: bool = False) -> Union[Link, PerfEventAttachment]:
        """Open the event as a perf tracepoint event of ``pid`` and attach ``program`` to it;
        the event is removed when the attachment is closed, or at once if this fails."""
        try:
            tp_id = perf.tracepoint_id(tracefs(), LEGACY_GROUP, self.name)
            attr = perf.PerfEventAttr(type=PerfTypeId.TRACEPOINT, config=tp_id, sample_period=1,
                                      wakeup_events=1)
            pid, cpu = _cpu_for(pid)
            pfd = perf.perf_event_open(attr, pid=pid, cpu=cpu, what=self.what)
            return attach_perf_event(program, pfd, self.what, cookie, force_ioctl,
                                     after_close=self.remove)
        except BaseException:
            self.remove()
            raise

    def remove(self) -> None:
        """Delete the event (once; the kernel refuses while a perf event still uses it)."""
        if not self.removed:
            self.removed = True
            try:
                self._write(f"-:{LEGACY_GROUP}/{self.name}")
            except BPFError:
                pass  # still in use (a pinned link holds it): left in tracefs, as libbpf does
