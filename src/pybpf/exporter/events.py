"""What the exporter reads between scrapes, in one thread: ring buffers of ``tracing.spans``,
perf buffers of ``perf_event_array`` counters (records counted by their labels, reset every
``flush_interval``, lost records counted), and the ``cgroup_id_map`` kept in step with the
cgroups whose paths match its regexps."""
from __future__ import annotations

import os
import re
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from ..errors import PyBPFError
from .config import CgroupIDMap, Counter, Span
from .decoders import DecodeError, SkipLabelSet

if TYPE_CHECKING:
    from .exporter import Exporter, Loaded
    from .tracing import SpanSink

POLL_MS = 250
CGROUP_REFRESH = 2.0  # seconds between walks of the cgroup hierarchy for cgroup_id_map


class _PerfCounter:
    def __init__(self, loaded: "Loaded", counter: Counter) -> None:
        self.loaded, self.counter = loaded, counter
        self.counts: dict[tuple[str, ...], float] = {}
        self.lost = 0
        self.reset_at = time.monotonic() + (counter.flush_interval or 3600.0)


class _CgroupIdMap:
    def __init__(self, loaded: "Loaded", conf: CgroupIDMap) -> None:
        self.loaded, self.conf = loaded, conf
        self.map = loaded.collection.maps[conf.name]
        self.patterns = [re.compile(r) for r in conf.regexps]
        self.present: set[int] = set()

    def sync(self, paths: dict[int, str]) -> None:
        """Ids of matching cgroups in, ids of removed ones out (hash maps; cgroup storage is
        freed by the kernel with its cgroup)."""
        want = {cid for cid, path in paths.items() if any(p.search(path) for p in self.patterns)}
        for cid in want - self.present:
            try:
                if self.conf.type == "hash":
                    self.map[cid] = 1
                else:
                    fd = os.open(paths[cid], os.O_RDONLY | os.O_DIRECTORY)
                    try:
                        self.map[fd] = 1
                    finally:
                        os.close(fd)
            except (OSError, PyBPFError):
                continue  # removed meanwhile: seen again at the next walk if it comes back
            self.present.add(cid)
        for cid in self.present - want:
            if self.conf.type == "hash":
                try:
                    self.map.delete(cid)
                except (KeyError, OSError, PyBPFError):
                    pass
            self.present.discard(cid)


class EventLoop:
    """Readers for every span and perf_event_array counter, polled by one thread."""

    def __init__(self, exporter: "Exporter", with_spans: bool) -> None:
        """Readers opened, nothing started; ``spans`` (the sink) is set before ``start()``
        when ``with_spans``."""
        from ..events import PerfBuffer, Poller, RingBuffer
        self.exporter = exporter
        self.spans: Optional["SpanSink"] = None
        self.perf: list[_PerfCounter] = []
        self.span_records: dict[tuple[str, str], int] = {}
        self.cgroup_maps: list[_CgroupIdMap] = []
        self.poller = Poller()
        self.stop = threading.Event()
        self.thread: Optional[threading.Thread] = None
        self.lock = threading.Lock()
        try:
            for loaded in exporter.loaded:
                maps = loaded.collection.maps
                for counter in loaded.config.counters:
                    if counter.perf_event_array:
                        pc = _PerfCounter(loaded, counter)
                        self.perf.append(pc)
                        self.poller.add(PerfBuffer(maps[counter.name], callback=self._counted(pc),
                                                   lost_callback=self._lost(pc)))
                if with_spans:
                    for span in loaded.config.spans:
                        self.span_records[(loaded.config.name, span.ringbuf)] = 0
                        self.poller.add(RingBuffer(maps[span.ringbuf],
                                                   callback=self._span(loaded, span)))
                if loaded.config.cgroup_id_map is not None:
                    self.cgroup_maps.append(_CgroupIdMap(loaded, loaded.config.cgroup_id_map))
        except BaseException:
            self.poller.close()
            raise
        if self.cgroup_maps:
            self._sync_cgroups()

    def active(self) -> bool:
        return bool(self.poller.readers or self.cgroup_maps)

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="pybpf-exporter-events",
                                       daemon=True)
        self.thread.start()

    def _run(self) -> None:
        next_walk = time.monotonic() + CGROUP_REFRESH
        while not self.stop.is_set():
            if self.poller.readers:
                self.poller.poll(POLL_MS)
            else:
                self.stop.wait(POLL_MS / 1000)
            now = time.monotonic()
            with self.lock:
                for pc in self.perf:
                    if now >= pc.reset_at:
                        pc.counts.clear()
                        pc.reset_at = now + (pc.counter.flush_interval or 3600.0)
            if self.cgroup_maps and now >= next_walk:
                self._sync_cgroups()
                next_walk = now + CGROUP_REFRESH

    def _sync_cgroups(self) -> None:
        paths = self.exporter.decoders.cgroups.walk()
        for cm in self.cgroup_maps:
            cm.sync(paths)

    def _labels(self, loaded: "Loaded", labels: list, record: bytes, cache_as: Optional[str]
                ) -> Optional[tuple[str, ...]]:
        """A record's label values (its first bytes: the kernel pads perf records), None when
        skipped or undecodable (counted as a decoder error)."""
        size = sum(lb.size + lb.padding for lb in labels)
        raw = bytes(record[:size])
        try:
            if cache_as is not None:
                return self.exporter.decoders.decode_cached(cache_as, raw, labels)
            return self.exporter.decoders.decode(raw, labels)
        except SkipLabelSet:
            return None
        except DecodeError as e:
            loaded.decoder_errors += 1
            from .exporter import log
            log(f"config {loaded.config.name!r}: record decoding failed: {e}")
            return None

    def _counted(self, pc: _PerfCounter) -> Callable[[Any], None]:
        def count(record: Any) -> None:
            values = self._labels(pc.loaded, pc.counter.labels, record, pc.counter.name)
            if values is not None:
                with self.lock:
                    pc.counts[values] = pc.counts.get(values, 0.0) + 1
        return count

    def _lost(self, pc: _PerfCounter) -> Callable[[int, int], None]:
        def lost(cpu: int, count: int) -> None:
            pc.lost += count
        return lost

    def _span(self, loaded: "Loaded", span: Span) -> Callable[[Any], None]:
        key = (loaded.config.name, span.ringbuf)

        def emit(record: Any) -> None:
            self.span_records[key] += 1
            values = self._labels(loaded, span.labels, record, None)
            if values is None or self.spans is None:
                return
            try:
                self.spans.emit(loaded.config.name, span, values)
            except ValueError as e:
                loaded.decoder_errors += 1
                from .exporter import log
                log(f"config {loaded.config.name!r}: span from {span.ringbuf!r}: {e}")
        return emit

    def collect(self) -> Iterator[Any]:
        """The perf_event_array counters, their lost records, and span record counts."""
        from prometheus_client.core import CounterMetricFamily
        from .exposition import NAMESPACE
        lost = CounterMetricFamily(f"{NAMESPACE}_perf_event_array_lost_events",
                                   "Records the kernel dropped from a perf_event_array counter's "
                                   "buffer", labels=["config", "counter"])
        records = CounterMetricFamily(f"{NAMESPACE}_span_records",
                                      "Records read from a span ring buffer",
                                      labels=["config", "ringbuf"])
        with self.lock:
            for pc in self.perf:
                family = CounterMetricFamily(f"{NAMESPACE}_{pc.counter.name}", pc.counter.help,
                                             labels=[lb.name for lb in pc.counter.labels])
                for values, v in pc.counts.items():
                    family.add_metric(values, v)
                lost.add_metric([pc.loaded.config.name, pc.counter.name], pc.lost)
                yield family
        for (cfg, ringbuf), n in self.span_records.items():
            records.add_metric([cfg, ringbuf], n)
        if self.perf:
            yield lost
        if self.span_records:
            yield records

    def close(self) -> None:
        """Stop the thread, close the readers, flush the spans."""
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        self.poller.close()
        if self.spans is not None:
            self.spans.close()
