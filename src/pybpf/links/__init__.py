"""Attaching programs to hooks; one module per hook family."""
from .link import Link, LinkInfo, PerfEventAttachment, list_links
from .tracing import attach_perf_event, attach_raw_tracepoint, attach_tracepoint

__all__ = ["Link", "LinkInfo", "PerfEventAttachment", "list_links", "attach_perf_event",
           "attach_raw_tracepoint", "attach_tracepoint"]
