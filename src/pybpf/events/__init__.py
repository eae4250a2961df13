"""Reading what BPF programs emit: ring buffers, perf buffers, trace_pipe.

::

    with RingBuffer(events_map, decode=event_struct) as rb:
        for ev in rb:                 # or rb.poll(timeout_ms) with callback=, or async for
            print(ev.pid, ev.comm)

``Poller(rb, pb, ...)`` waits on several readers with one epoll fd; ``read_array()`` returns
fixed-size records as a numpy structured array.
"""
from .._lazy import exports

__getattr__, __dir__ = exports(__name__, {  # each imported from its module on first use
    ".decode": "Decoder, decoder_for",
    ".perfbuf": "PerfBuffer",
    ".reader": "Poller, Reader",
    ".ringbuf": "RingBuffer",
    ".trace_pipe": "TraceEvent, TracePipe",
})

__all__ = ["Decoder", "decoder_for", "PerfBuffer", "Poller", "Reader",
           "RingBuffer", "TraceEvent", "TracePipe"]
