"""BCC's perf event constants (``PerfType``, ``PerfHWConfig``, ``PerfSWConfig``,
``PerfEventSampleFormat``): the kernel's enums from :mod:`pybpf.sys.uapi` under BCC's names,
for ``attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK, ...)``."""
from __future__ import annotations

from ..sys.uapi import PerfHwId, PerfSampleFormat, PerfSwId, PerfTypeId

PerfType = PerfTypeId
"""enum perf_type_id: HARDWARE, SOFTWARE, TRACEPOINT, HW_CACHE, RAW, BREAKPOINT."""
PerfHWConfig = PerfHwId
"""enum perf_hw_id: CPU_CYCLES, INSTRUCTIONS, CACHE_MISSES, ..."""
PerfSWConfig = PerfSwId
"""enum perf_sw_ids: CPU_CLOCK, TASK_CLOCK, PAGE_FAULTS, CONTEXT_SWITCHES, ..."""
PerfEventSampleFormat = PerfSampleFormat
"""enum perf_event_sample_format: IP, TID, TIME, ..."""

__all__ = ["PerfType", "PerfHWConfig", "PerfSWConfig", "PerfEventSampleFormat"]
