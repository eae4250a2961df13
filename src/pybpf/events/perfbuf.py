"""Perf buffer reader: what ``bpf_perf_event_output`` writes to a BPF_MAP_TYPE_PERF_EVENT_ARRAY.

One PERF_COUNT_SW_BPF_OUTPUT event per online CPU (perf_event_open with
PERF_SAMPLE_RAW), its fd stored in the map at index cpu, its ring mmapped: a control page
(``struct perf_event_mmap_page``: ``data_head`` written by the kernel, ``data_tail`` by the
reader) and 2^n data pages. Records are ``struct perf_event_header`` (u32 type, u16 misc,
u16 size) then, for PERF_RECORD_SAMPLE, ``u32 size`` and the raw bytes (padded so the record
is 8-byte aligned); PERF_RECORD_LOST carries ``u64 id, u64 lost``. Records wrap around the
end of the data area and are then copied. ``data_head`` is read with acquire semantics and
``data_tail`` written with release semantics, once per batch.

The kernel writes a PERF_RECORD_LOST only when the next sample fits: losses of a burst are
reported once the program outputs again after the reader made room.
"""
from __future__ import annotations

import mmap
import select
import struct
from typing import Any, Callable, Optional

from ..errors import BPFError, UsageError
from ..maps import Map
from ..sys import perf
from ..sys.cpus import online_cpus
from ..sys.fd import FD
from ..sys.uapi import (MapType, PerfEventRecordType, PerfIoc, PerfSampleFormat, PerfSwId,
                        PerfTypeId)
from .decode import DecodeSpec
from .ordering import fence
from .reader import Callback, HeaderRuns, Reader, open_map, unmap

_PAGE = mmap.PAGESIZE
_HEAD, _TAIL = 1024 // 8, 1032 // 8  # data_head, data_tail in struct perf_event_mmap_page (u64s)
_SAMPLE = int(PerfEventRecordType.SAMPLE)
_LOST = int(PerfEventRecordType.LOST)
_SAMPLE_HDR = 12  # perf_event_header + u32 raw size
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")

LostCallback = Callable[[int, int], Any]
"""``lost_callback(cpu, count)``: the kernel dropped ``count`` samples on ``cpu``."""


class _CpuRing:
    """The perf ring of one CPU."""

    def __init__(self, cpu: int, fd: FD, pages: int) -> None:
        self.cpu = cpu
        self.fd = fd
        self.size = pages * _PAGE
        self.mm = mmap.mmap(fd.fd, _PAGE + self.size, mmap.MAP_SHARED,
                            mmap.PROT_READ | mmap.PROT_WRITE)
        whole = memoryview(self.mm)
        self.ctl = whole[:_PAGE].cast("Q")
        self.data = whole[_PAGE:]
        self.words = self.data.cast("Q")
        self.views = [whole, self.ctl, self.data, self.words]
        self.mask = self.size - 1
        self.runs = HeaderRuns(self.words)

    def record(self, off: int, rsize: int) -> memoryview:
        """The ``rsize`` bytes at ``off``, copied when they wrap around the end."""
        if off + rsize <= self.size:
            return self.data[off:off + rsize]
        return memoryview(bytes(self.data[off:]) + bytes(self.data[:rsize - (self.size - off)]))

    def close(self) -> None:
        unmap(self.views, [self.mm])
        self.views = []
        self.fd.close()


class PerfBuffer(Reader):
    """Records from a BPF_MAP_TYPE_PERF_EVENT_ARRAY, one ring of ``pages`` pages per online CPU.

    ``wakeup_events`` (default 1: wake the reader on every sample, as libbpf) or
    ``watermark`` (bytes) sets when epoll reports a ring ready; larger values make the
    producer much faster, but ``poll()`` then only sees data once that many events (bytes)
    are waiting: ``consume()``/``read()`` take whatever is there. ``lost`` counts samples the
    kernel dropped (PERF_RECORD_LOST), ``lost_callback(cpu, count)`` hears of each report.
    """

    def __init__(self, perf_map: Any, callback: Optional[Callback] = None,
                 decode: DecodeSpec = None, *, pages: int = 64, wakeup_events: int = 1,
                 watermark: Optional[int] = None, lost_callback: Optional[LostCallback] = None,
                 cpus: Optional[list[int]] = None) -> None:
        super().__init__(callback, decode)
        if pages < 1 or pages & (pages - 1):
            self._epoll.close()
            raise UsageError(f"PerfBuffer: pages must be a power of two, got {pages}")
        self.lost = 0
        self.lost_callback = lost_callback
        self._rings: list[_CpuRing] = []
        self.map: Optional[Map] = None
        try:
            self.map, self._owned = open_map(perf_map, MapType.PERF_EVENT_ARRAY, "PerfBuffer")
            self._typed(self.map)
            self._fence = fence()
            for cpu in online_cpus() if cpus is None else cpus:
                self._open_cpu(cpu, pages, wakeup_events, watermark)
        except BaseException:
            self.close()
            raise

    def _open_cpu(self, cpu: int, pages: int, wakeup_events: int,
                  watermark: Optional[int]) -> None:
        m = self.map
        assert m is not None
        if cpu >= m.max_entries:
            raise UsageError(f"PerfBuffer: {m.describe()} has {m.max_entries} slots, but CPU "
                             f"{cpu} is online: create it with max_entries=0 (one per CPU)")
        attr = perf.PerfEventAttr(type=PerfTypeId.SOFTWARE, config=PerfSwId.BPF_OUTPUT,
                                  sample_type=PerfSampleFormat.RAW, sample_period=1,
                                  wakeup_events=wakeup_events)
        if watermark is not None:
            attr.flags |= perf.PerfAttrFlag.WATERMARK
            attr.wakeup_events = watermark
        what = f"perf buffer of {m.describe()} on CPU {cpu}"
        fd = perf.perf_event_open(attr, pid=-1, cpu=cpu, what=what)
        try:
            ring = _CpuRing(cpu, fd, pages)
        except OSError as e:
            fd.close()
            raise BPFError(e.errno or 0, "mmap", what,
                           hint="perf buffers count against ulimit -l / perf_event_mlock_kb"
                           ) from None
        self._rings.append(ring)
        perf.ioctl(fd.fd, PerfIoc.ENABLE, 0, what)
        m.update(cpu, fd.fd)
        self._epoll.register(fd.fd, select.EPOLLIN)

    def _drain(self, sink: Any) -> int:
        if self.closed:
            raise UsageError(f"{self!r} is closed")
        total = 0
        for ring in self._rings:
            if sink.room <= 0:
                break
            total += self._drain_ring(ring, sink)
        return total

    def _drain_ring(self, ring: _CpuRing, sink: Any) -> int:
        ctl = ring.ctl
        head = ctl[_HEAD]
        tail = ctl[_TAIL]
        if tail == head:
            return 0
        barrier = self._fence
        if barrier:
            barrier()
        data, words, size, mask = ring.data, ring.words, ring.size, ring.mask
        total = 0
        try:
            while tail < head and sink.room > 0:
                off = tail & mask
                header = words[off >> 3]
                rtype, rsize = header & 0xFFFFFFFF, header >> 48
                if rsize < 8:
                    raise BPFError(0, "perf buffer read", f"CPU {ring.cpu}",
                                   f"corrupt record header {header:#x} at offset {off}")
                if rtype == _SAMPLE:
                    # whole records before the end of the data area
                    n = min(min(head - tail, size - off) // rsize, sink.room)
                    if n:
                        if n > 1:
                            n = ring.runs.count(off >> 3, rsize >> 3, n, header)
                        length = _U32.unpack_from(data, off + 8)[0]
                        sink.taken = 0
                        try:
                            sink.run(data, off, rsize, n, _SAMPLE_HDR, length)
                        finally:
                            tail += sink.taken * rsize
                            total += sink.taken
                        continue
                    rec = ring.record(off, rsize)
                    tail += rsize
                    total += 1
                    sink.one(rec, _SAMPLE_HDR, _U32.unpack_from(rec, 8)[0])
                    continue
                tail += rsize  # consumed before any callback runs: reported exactly once
                if rtype == _LOST:
                    lost = _U64.unpack_from(ring.record(off, rsize), 16)[0]
                    self.lost += lost
                    if self.lost_callback is not None:
                        self.lost_callback(ring.cpu, lost)
        finally:
            if barrier:
                barrier()
            ctl[_TAIL] = tail
        return total

    @property
    def cpus(self) -> list[int]:
        """The CPUs with a ring."""
        return [r.cpu for r in self._rings]

    def close(self) -> None:
        """Clear the map slots, unmap and close the rings, close the epoll fd."""
        m = self.map
        for ring in getattr(self, "_rings", []):
            if m is not None and not m.closed:
                try:
                    m.delete(ring.cpu)
                except BPFError:
                    pass  # already cleared or replaced
            ring.close()
        self._rings = []
        if m is not None and self._owned:
            m.close()
        super().close()

    def __repr__(self) -> str:
        what = self.map.describe() if self.map is not None else "?"
        return f"<PerfBuffer on {what}{' closed' if self.closed else ''}>"
