"""BPF ring buffer reader (BPF_MAP_TYPE_RINGBUF, Linux 5.8).

The kernel's contract (kernel/bpf/ringbuf.c): page 0 of the map holds the consumer position,
writable by user space; page 1 the producer position, then the data area of ``max_entries``
bytes, mapped twice back to back so that a record crossing the end reads contiguously; both
read-only. Each record starts with an 8-byte header: ``u32 len`` with BPF_RINGBUF_BUSY_BIT
(reserved, not yet committed) and BPF_RINGBUF_DISCARD_BIT, then ``u32 pg_off``; records are
8-byte aligned. The producer position is loaded with acquire semantics, each header too before
its record is read, and the consumer position is stored with release semantics once per batch.
A committed record wakes epoll only when the consumer had caught up with it.
"""
from __future__ import annotations

import mmap
import select
from typing import Any, Optional

from ..errors import BPFError, UsageError
from ..maps import Map
from ..sys.uapi import MapType, RingbufHeader
from .decode import DecodeSpec
from .ordering import fence
from .reader import Callback, HeaderRuns, Reader, open_map, unmap

_BUSY = int(RingbufHeader.BUSY_BIT)
_DISCARD = int(RingbufHeader.DISCARD_BIT)
_HDR = int(RingbufHeader.HDR_SZ)
_LEN_MASK = ~(_BUSY | _DISCARD) & 0xFFFFFFFF
_PAGE = mmap.PAGESIZE


class RingBuffer(Reader):
    """Records from one BPF ring buffer map.

    ``callback(record)`` receives each record from ``poll()``/``consume()``; ``read()``,
    iteration (``for rec in rb``) and ``async for rec in rb`` give them without one;
    ``read_array()`` gives a numpy structured array. ``decode`` picks the record type (see
    ``pybpf.events.decode``). ``discarded`` counts records the program discarded. A full
    ring is never reported here: ``bpf_ringbuf_output``/``reserve`` fail in the program,
    which must count that itself.
    """

    def __init__(self, ringbuf: Any, callback: Optional[Callback] = None,
                 decode: DecodeSpec = None) -> None:
        super().__init__(callback, decode)
        self.discarded = 0
        self._mms: list[mmap.mmap] = []
        self._views: list[memoryview] = []
        self.map: Optional[Map] = None
        try:
            self.map, self._owned = open_map(ringbuf, MapType.RINGBUF, "RingBuffer")
            self._typed(self.map)
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        m = self.map
        assert m is not None
        size = self.size = m.max_entries
        what = m.describe()
        try:
            cons = mmap.mmap(m.fd, _PAGE, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            self._mms.append(cons)
            prod = mmap.mmap(m.fd, _PAGE + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ,
                             offset=_PAGE)
            self._mms.append(prod)
        except OSError as e:
            raise BPFError(e.errno or 0, "mmap", f"ring buffer {what}") from None
        self._fence = fence()
        cv, pv = memoryview(cons), memoryview(prod)
        self._cons = cv.cast("Q")
        self._prod = pv[:8].cast("Q")
        self._data = pv[_PAGE:]
        words = self._data.cast("I")
        self._views += [cv, pv, self._cons, self._prod, self._data, words]
        self._words = words
        self._mask = size - 1
        self._runs = HeaderRuns(words)
        self._epoll.register(m.fd, select.EPOLLIN)

    def _drain(self, sink: Any) -> int:
        if self.closed:
            raise UsageError(f"{self!r} is closed")
        cons_q, prod_q, data, words = self._cons, self._prod, self._data, self._words
        mask, runs, barrier = self._mask, self._runs, self._fence
        total = 0
        cons = cons_q[0]
        while sink.room > 0:
            prod = prod_q[0]
            if barrier:
                barrier()
            start = cons
            try:
                while cons < prod and sink.room > 0:
                    off = cons & mask
                    header = words[off >> 2]
                    if header & _BUSY:
                        break
                    length = header & _LEN_MASK
                    stride = (length + _HDR + 7) & ~7
                    if header & _DISCARD:
                        self.discarded += 1
                        cons += stride
                        continue
                    n = min((prod - cons) // stride, sink.room)
                    if n > 1:
                        n = runs.count(off >> 2, stride >> 2, n, header)
                    if barrier:
                        barrier()
                    sink.taken = 0
                    try:
                        sink.run(data, off, stride, n, _HDR, length)
                    finally:
                        cons += sink.taken * stride
                        total += sink.taken
            finally:
                if cons != start:
                    if barrier:
                        barrier()
                    cons_q[0] = cons
            if cons == start:
                break
        return total

    def close(self) -> None:
        """Unmap the ring, close the epoll fd (and the map if it was opened from an fd)."""
        unmap(getattr(self, "_views", []), getattr(self, "_mms", []))
        self._views, self._mms = [], []
        if self.map is not None and self._owned:
            self.map.close()
        super().close()

    def __repr__(self) -> str:
        what = self.map.describe() if self.map is not None else "?"
        return f"<RingBuffer on {what}{' closed' if self.closed else ''}>"
