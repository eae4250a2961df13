"""Tracepoints (perf_event_open + LINK_CREATE) and raw tracepoints (RAW_TRACEPOINT_OPEN)."""
from __future__ import annotations

import ctypes
import errno as _errno
from typing import Callable, Optional, Union

from ..errors import BPFError
from ..object import KernelObject
from ..sys import commands, perf
from ..sys.fd import FD
from ..sys.host import tracefs
from ..sys.uapi import ENOTSUPP, AttachType, PerfIoc, PerfTypeId
from .link import Link, PerfEventAttachment

def attach_perf_event(program: KernelObject, pfd: FD, what: str, cookie: int = 0,
                      force_ioctl: bool = False,
                      after_close: Optional[Callable[[], None]] = None
                      ) -> Union[Link, PerfEventAttachment]:
    """Attach ``program`` to the open perf event ``pfd`` (ownership of ``pfd`` is taken).

    A BPF link (LINK_CREATE, BPF_PERF_EVENT) where the kernel has them; otherwise, or with
    ``force_ioctl`` (libbpf's ``force_ioctl_attach``), PERF_EVENT_IOC_SET_BPF + ENABLE, as
    libbpf falls back on kernels before 5.15 (no cookie there). ``after_close`` runs when the
    returned attachment is closed (not when attaching fails: the caller cleans up then).
    """
    try:
        if not force_ioctl:
            ret = commands.link_create(prog_fd=program.fd, target_fd=pfd.fd,
                                       attach_type=AttachType.PERF_EVENT,
                                       target={"perf_event": {"bpf_cookie": cookie}})
            if ret >= 0:
                pfd.close()  # the link holds its own reference to the perf event
                return Link(FD(ret), what, after_close)
            if -ret not in (_errno.EINVAL, _errno.EOPNOTSUPP, ENOTSUPP):
                raise BPFError(-ret, "BPF_LINK_CREATE", f"{program.describe()} on {what}")
        perf.ioctl(pfd.fd, PerfIoc.SET_BPF, program.fd, what)
        perf.ioctl(pfd.fd, PerfIoc.ENABLE, 0, what)
        return PerfEventAttachment(pfd, what, program.id, after_close)
    except BaseException:
        pfd.close()
        raise


def attach_tracepoint(program: KernelObject, category: str, name: str, cookie: int = 0,
                      force_ioctl: bool = False) -> Union[Link, PerfEventAttachment]:
    """Run ``program`` (BPF_PROG_TYPE_TRACEPOINT) on tracepoint ``category/name``."""
    what = f"tracepoint {category}/{name}"
    try:
        tp_id = perf.tracepoint_id(tracefs(), category, name)
    except FileNotFoundError:
        raise BPFError(_errno.ENOENT, "perf_event_open", what,
                       f"no tracepoint {category}/{name} in {tracefs()}/events") from None
    attr = perf.PerfEventAttr(type=PerfTypeId.TRACEPOINT, config=tp_id, sample_period=1,
                              wakeup_events=1)
    pfd = perf.perf_event_open(attr, pid=-1, cpu=0, what=what)
    return attach_perf_event(program, pfd, what, cookie, force_ioctl)


def attach_raw_tracepoint(program: KernelObject, name: str, cookie: int = 0) -> Link:
    """Run ``program`` (raw_tracepoint) on raw tracepoint ``name`` (e.g. ``sys_enter``)."""
    buf = ctypes.create_string_buffer(name.encode())
    return Link(FD(commands.raw_tracepoint_open(
        f"{program.describe()} on raw tracepoint {name}", name=ctypes.addressof(buf),
        prog_fd=program.fd, cookie=cookie)), name)
