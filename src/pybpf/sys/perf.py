"""perf_event_open(2) and the perf ioctls BPF needs (tracepoints, kprobes, perf buffers)."""
from __future__ import annotations

import ctypes
import errno as _errno
import fcntl
import os
from ctypes import c_int32, c_uint16, c_uint32, c_uint64

from ..errors import BPFError
from .fd import FD
from .syscall import SYS_perf_event_open
from .uapi import PerfFlag, PerfIoc


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr (PERF_ATTR_SIZE_VER8, 136 bytes); flag bits in ``flags``."""

    _fields_ = [
        ("type", c_uint32), ("size", c_uint32), ("config", c_uint64),
        ("sample_period", c_uint64),  # union with sample_freq (flag FREQ)
        ("sample_type", c_uint64), ("read_format", c_uint64), ("flags", c_uint64),
        ("wakeup_events", c_uint32),  # union with wakeup_watermark (flag WATERMARK)
        ("bp_type", c_uint32), ("config1", c_uint64), ("config2", c_uint64),
        ("branch_sample_type", c_uint64), ("sample_regs_user", c_uint64),
        ("sample_stack_user", c_uint32), ("clockid", c_int32), ("sample_regs_intr", c_uint64),
        ("aux_watermark", c_uint32), ("sample_max_stack", c_uint16), ("_reserved_2", c_uint16),
        ("aux_sample_size", c_uint32), ("_reserved_3", c_uint32), ("sig_data", c_uint64),
        ("config3", c_uint64),
    ]


class PerfAttrFlag:
    """Bits of perf_event_attr's flag word (disabled:1, inherit:1, ...)."""

    DISABLED = 1 << 0
    INHERIT = 1 << 1
    EXCLUDE_KERNEL = 1 << 5
    EXCLUDE_HV = 1 << 6
    FREQ = 1 << 10
    WATERMARK = 1 << 14


_perf_syscall = ctypes.CDLL(None, use_errno=True).syscall  # a function object of its own
_perf_syscall.restype = ctypes.c_long
_perf_syscall.argtypes = (ctypes.c_long, ctypes.c_void_p, ctypes.c_int, ctypes.c_int,
                          ctypes.c_int, ctypes.c_ulong)


def perf_event_open(attr: PerfEventAttr, pid: int = -1, cpu: int = 0, group_fd: int = -1,
                    flags: int = PerfFlag.FD_CLOEXEC, what: str = "perf event") -> FD:
    """Open a perf event; ``attr.size`` is filled in. Raises BPFError naming ``what``."""
    attr.size = ctypes.sizeof(attr)
    while True:
        ret = _perf_syscall(SYS_perf_event_open, ctypes.addressof(attr), pid, cpu, group_fd,
                            flags)
        if ret >= 0:
            return FD(ret)
        err = ctypes.get_errno()
        if err != _errno.EINTR:
            raise BPFError(err, "perf_event_open", what)


def ioctl(fd: int, request: PerfIoc, arg: int = 0, what: str = "perf event") -> None:
    """A perf ioctl (ENABLE, DISABLE, SET_BPF, ...); raises BPFError."""
    try:
        fcntl.ioctl(fd, request, arg)
    except OSError as e:
        raise BPFError(e.errno or 0, f"ioctl(PERF_EVENT_IOC_{request.name})", what) from None


def tracepoint_id(tracefs: str, category: str, name: str) -> int:
    """The id of tracepoint ``category/name`` from tracefs ``events/<category>/<name>/id``."""
    path = os.path.join(tracefs, "events", category, name, "id")
    with open(path) as f:
        return int(f.read())
