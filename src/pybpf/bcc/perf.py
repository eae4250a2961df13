"""BCC's perf event constants (``PerfType``, ``PerfHWConfig``, ``PerfSWConfig``,
``PerfEventSampleFormat``): the kernel's enums from :mod:`pybpf.sys.uapi` under BCC's names,
for ``attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK, ...)``;
and ``Perf.perf_event_attr``, the kernel's struct with its flag bits as fields, for
``attach_perf_event_raw(attr=...)``."""
from __future__ import annotations

import ctypes as ct

from ..sys.uapi import PerfHwId, PerfSampleFormat, PerfSwId, PerfTypeId

PerfType = PerfTypeId
"""enum perf_type_id: HARDWARE, SOFTWARE, TRACEPOINT, HW_CACHE, RAW, BREAKPOINT."""
PerfHWConfig = PerfHwId
"""enum perf_hw_id: CPU_CYCLES, INSTRUCTIONS, CACHE_MISSES, ..."""
PerfSWConfig = PerfSwId
"""enum perf_sw_ids: CPU_CLOCK, TASK_CLOCK, PAGE_FAULTS, CONTEXT_SWITCHES, ..."""
PerfEventSampleFormat = PerfSampleFormat
"""enum perf_event_sample_format: IP, TID, TIME, ..."""

# struct perf_event_attr's flag bits, in the kernel's order (include/uapi/linux/perf_event.h)
_FLAG_BITS = (
    ("disabled", 1), ("inherit", 1), ("pinned", 1), ("exclusive", 1), ("exclude_user", 1),
    ("exclude_kernel", 1), ("exclude_hv", 1), ("exclude_idle", 1), ("mmap", 1), ("comm", 1),
    ("freq", 1), ("inherit_stat", 1), ("enable_on_exec", 1), ("task", 1), ("watermark", 1),
    ("precise_ip", 2), ("mmap_data", 1), ("sample_id_all", 1), ("exclude_host", 1),
    ("exclude_guest", 1), ("exclude_callchain_kernel", 1), ("exclude_callchain_user", 1),
    ("mmap2", 1), ("comm_exec", 1), ("use_clockid", 1), ("context_switch", 1),
    ("write_backward", 1), ("namespaces", 1), ("ksymbol", 1), ("bpf_event", 1),
    ("aux_output", 1), ("cgroup", 1), ("text_poke", 1), ("build_id", 1),
    ("inherit_thread", 1), ("remove_on_exec", 1), ("sigtrap", 1), ("__reserved_1", 26),
)


class _PerfEventAttr(ct.Structure):
    """struct perf_event_attr up to ``bp_len`` (``config2``), flag bits as fields."""

    _fields_ = [("type", ct.c_uint32), ("size", ct.c_uint32), ("config", ct.c_uint64),
                ("sample_period", ct.c_uint64), ("sample_type", ct.c_uint64),
                ("read_format", ct.c_uint64),
                *((name, ct.c_uint64, bits) for name, bits in _FLAG_BITS),
                ("wakeup_events", ct.c_uint32), ("bp_type", ct.c_uint32),
                ("bp_addr", ct.c_uint64), ("bp_len", ct.c_uint64)]


class Perf:
    """BCC's ``bcc.Perf``: ``perf_event_attr`` and the ``PERF_TYPE_*`` numbers."""

    perf_event_attr = _PerfEventAttr
    PERF_TYPE_HARDWARE = int(PerfTypeId.HARDWARE)
    PERF_TYPE_SOFTWARE = int(PerfTypeId.SOFTWARE)
    PERF_TYPE_TRACEPOINT = int(PerfTypeId.TRACEPOINT)
    PERF_TYPE_HW_CACHE = int(PerfTypeId.HW_CACHE)
    PERF_TYPE_RAW = int(PerfTypeId.RAW)
    PERF_TYPE_BREAKPOINT = int(PerfTypeId.BREAKPOINT)


__all__ = ["PerfType", "PerfHWConfig", "PerfSWConfig", "PerfEventSampleFormat", "Perf"]
