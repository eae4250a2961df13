"""The exporter: each config's object loaded and attached, its maps read at every scrape.

A scrape reads each metric's map once with BPF_MAP_LOOKUP_BATCH (raw bytes), decodes the
keys with the config's labels (cached per key, as ebpf_exporter does), sums values whose
labels come out equal: prometheus-client counter and histogram families (``collect()``, its
Collector protocol), or the same bytes written by :class:`~.exposition.Renderer` for the HTTP
server (``render()``). Per-CPU maps give one value per CPU: summed, or split by a last label
named ``cpu`` (a u16 appended to the key). A map that cannot be read or decoded is counted
in ``ebpf_exporter_map_read_errors_total`` / ``ebpf_exporter_decoder_errors_total`` and
left out of that scrape; the others are still served. A config with ``NAME.bcc.c`` (BCC's C
dialect) is compiled, loaded and attached by pybpf's BCC front end instead (``bcc_program``).

Health metrics, beside ebpf_exporter's own (``enabled_configs``, ``ebpf_program_info``,
``ebpf_program_attached``, ``ebpf_program_run_time_seconds``,
``ebpf_program_run_count_total`` when BPF stats are on, ``decoder_errors_total``):
``scrape_duration_seconds``, ``map_entries``, ``map_read_seconds`` (time in the kernel's
batch lookup), ``map_read_errors_total``, ``perf_event_array_lost_events_total`` and
``span_records_total``.
"""
from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Union

from ..errors import BPFError, CompileError, PyBPFError, VerifierError
from ..maps import Map, MapType
from . import marker
from .config import Config, ConfigError, Counter, Histogram, Label
from .decoders import Decoders, DecodeError
from .exposition import NAMESPACE, Renderer, Scraped
from .histogram import parse_bucket, transform

PERCPU = (MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH)
BPF_STATS_SYSCTL = "/proc/sys/kernel/bpf_stats_enabled"
_MISSING: Any = object()


LOG_TIMESTAMPS = [True]  # --log.no-timestamps clears it


def log(message: str) -> None:
    """One line on stderr, dated as Go's log package dates it."""
    stamp = time.strftime("%Y/%m/%d %H:%M:%S ") if LOG_TIMESTAMPS[0] else ""
    sys.stderr.write(f"{stamp}{message}\n")


@dataclass
class MapRead:
    """One map read in one scrape: raw keys and u64 values, or the error."""
    keys: bytes = b""
    values: Any = None          # memoryview of u64 (cast "Q"), one per CPU for per-CPU maps
    count: int = 0
    seconds: float = 0.0
    error: Optional[str] = None


@dataclass
class Loaded:
    """A config with its loaded collection and what was attached."""
    config: Config
    collection: Any
    attached: dict[str, Any] = field(default_factory=dict)   # program -> link, None if failed
    read_errors: dict[str, int] = field(default_factory=dict)
    decoder_errors: int = 0


def bpf_object(cfg: Config) -> str:
    """``NAME.bpf.o``; where only ``NAME.bpf.c`` exists (or it is newer), it is compiled first
    with pybpf.compile into pybpf's cache (the config directory stays untouched)."""
    source = cfg.bpf_path[:-2] + ".c"
    if os.path.exists(source) and (not os.path.exists(cfg.bpf_path) or
                                   os.path.getmtime(source) > os.path.getmtime(cfg.bpf_path)):
        from ..compile import compile as compile_c
        with open(source, encoding="utf-8") as f:
            text = f.read()
        try:
            return os.fspath(compile_c(text if "\n" in text else text + "\n",
                                       includes=[os.path.dirname(source) or "."]))
        except PyBPFError as e:
            raise ConfigError(f"config {cfg.name!r}: compiling {source}: {e}") from None
    return cfg.bpf_path


class Exporter:
    """Loads the configs' objects and serves their maps as metrics (a prometheus-client
    collector: ``collect()``). ``close()`` detaches and closes everything."""

    def __init__(self, configs: list[Config], decoders: Decoders, *,
                 btf_path: Optional[str] = None, strict: bool = False,
                 enable_stats: bool = False, debug: bool = False) -> None:
        self.configs = configs
        self.decoders = decoders
        self.btf_path = btf_path
        self.strict = strict
        self.debug = debug
        self.loaded: list[Loaded] = []
        self.stats_fd: Any = None
        self.lock = threading.Lock()   # one scrape at a time: the decoders' caches are shared
        self.events: Any = None        # events.EventLoop for spans and perf_event_array counters
        self.renderer = Renderer()
        self._enable_stats = enable_stats
        self.post_attach_mark: Optional[Callable[[], None]] = None   # marker.load(), if used

    # -- start-up ----------------------------------------------------------------------------
    def load(self) -> None:
        """Load and attach every config (SEC names as ebpf_exporter reads them, ``sections``);
        on failure, what was loaded is closed and ConfigError names the config, the object
        or program, and why."""
        from .sections import registered
        try:
            core_btf = self._core_btf()
            with registered():  # ebpf_exporter's xdp/<iface> and perf_event/... sections
                for cfg in self.configs:
                    self.loaded.append(self._load_one(cfg, core_btf))
            if self.post_attach_mark is not None:  # all attached: uprobes on it run once
                self.post_attach_mark()
            if self._enable_stats:
                from ..programs import enable_stats
                try:
                    self.stats_fd = enable_stats()
                except BPFError as e:
                    log(f"BPF run-time stats not enabled: {e}")
        except BaseException:
            self.close()
            raise

    def _core_btf(self) -> Optional[list]:
        if not self.btf_path:
            return None
        from ..btf import Spec
        if not os.path.exists(self.btf_path):
            raise ConfigError(f"--btf.path: could not find BTF file {self.btf_path!r}")
        try:
            return [Spec.from_file(self.btf_path)]
        except (OSError, PyBPFError) as e:
            raise ConfigError(f"--btf.path {self.btf_path!r}: {e}") from None

    def _load_one(self, cfg: Config, core_btf: Optional[list]) -> Loaded:
        from . import bcc_program
        source = bcc_program.source_of(cfg)
        if source is not None:
            return self._load_bcc(cfg, source, core_btf)
        from ..elf import ObjectSpec, load
        path = bpf_object(cfg)
        where = f"config {cfg.name!r}: {path}"
        try:
            spec = ObjectSpec.from_file(path)
            self._pass_kaddrs(cfg, spec, where)
            coll = load(spec, core_btf=core_btf) if core_btf else load(spec)
        except ConfigError:
            raise
        except PyBPFError as e:
            raise self._load_error(where, "loading", e) from None
        loaded = Loaded(cfg, coll)
        try:
            self._attach(loaded, where)
            self._check_maps(loaded, where)
        except BaseException:
            self._close_loaded(loaded)
            raise
        return loaded

    def _load_bcc(self, cfg: Config, source: str, core_btf: Optional[list]) -> Loaded:
        """``NAME.bcc.c``: compiled, loaded and attached by the BCC front end (any failure
        stops start-up, as BCC's ``BPF()`` raises), its tables read as an object's maps."""
        from . import bcc_program
        where = f"config {cfg.name!r}: {source}"
        for other in (cfg.bpf_path, cfg.bpf_path[:-2] + ".c"):
            if os.path.exists(other):
                raise ConfigError(f"{where}: {other} exists too: a config is one program, "
                                  "remove one of them")
        if core_btf:
            log(f"{where}: --btf.path does not apply: BCC C is compiled for the running kernel")
        try:
            program = bcc_program.load(source, self._kaddrs(cfg, where))
        except PyBPFError as e:
            raise self._load_error(where, "compiling, loading and attaching", e) from None
        loaded = Loaded(cfg, program, program.attachments())
        try:
            self._check_maps(loaded, where)
        except BaseException:
            self._close_loaded(loaded)
            raise
        return loaded

    def _load_error(self, where: str, doing: str, e: PyBPFError) -> ConfigError:
        """One line: the first line of a compiler's diagnostics, the verifier's log (whole
        on stderr with --debug)."""
        if isinstance(e, VerifierError) and self.debug and e.log:
            sys.stderr.write(e.log.rstrip("\n") + "\n")
        if isinstance(e, CompileError) and e.stderr:
            errors = [ln for ln in e.stderr.splitlines() if "error:" in ln]
            return ConfigError(f"{where}: {doing}: {' '.join(e.message.split())}: "
                               f"{(errors or e.stderr.splitlines())[0].strip()}")
        return ConfigError(f"{where}: {doing}: {' '.join(str(e).split())}")

    def _kaddrs(self, cfg: Config, where: str) -> dict[str, int]:
        """``kaddrs``: each symbol's address (/proc/kallsyms)."""
        out = {}
        for name in cfg.kaddrs:
            addr = self.decoders.kernel.address(name)
            if addr is None:
                raise ConfigError(f"{where}: field kaddrs: no kernel symbol {name!r} in "
                                  "/proc/kallsyms (it lists variables only in kernels built "
                                  "with CONFIG_KALLSYMS_ALL)")
            out[name] = addr
        return out

    def _pass_kaddrs(self, cfg: Config, spec: Any, where: str) -> None:
        """``kaddrs``: each symbol's address into ``const volatile u64 kaddr_<symbol>``."""
        for name, addr in self._kaddrs(cfg, where).items():
            var = spec.variables.get("kaddr_" + name)
            if var is None:
                raise ConfigError(f"{where}: field kaddrs: the object has no variable "
                                  f"'kaddr_{name}' (const volatile u64) for symbol {name!r}")
            var.value = addr

    def _attach(self, loaded: Loaded, where: str) -> None:
        """Every program whose SEC() says where, as libbpf's auto-attach; a failure stops
        start-up with ``strict``, else is logged and shown as ``ebpf_program_attached 0``.
        A uprobe on ``/proc/self/exe:...`` finds this process's ``post_attach_mark``
        (:mod:`.marker`), called once every config is attached."""
        from ..elf.attach import auto_attach_kind
        for name, prog in loaded.collection.programs.items():
            if auto_attach_kind(prog) is None:
                continue
            if self.post_attach_mark is None and \
                    (prog.spec.attach_target or "").startswith(marker.SELF_EXE):
                try:
                    self.post_attach_mark = marker.load()
                except ConfigError as e:
                    raise ConfigError(f"{where}: program {name!r}: {e}") from None
            try:
                loaded.attached[name] = prog.attach()
            except PyBPFError as e:
                if self.strict:
                    raise ConfigError(f"{where}: program {name!r} "
                                      f"(SEC {prog.spec.section.name!r}): attaching: "
                                      f"{' '.join(str(e).split())}") from None
                log(f"{where}: program {name!r}: not attached: {e}")
                loaded.attached[name] = None

    def _check_maps(self, loaded: Loaded, where: str) -> None:
        """Each metric's map exists, holds u64 values and keys the labels describe."""
        cfg, maps = loaded.config, loaded.collection.maps
        for metric in cfg.metrics:
            kind = "counters" if isinstance(metric, Counter) else "histograms"
            m = maps.get(metric.name)
            if m is None:
                raise ConfigError(f"{where}: metrics.{kind} {metric.name!r}: the object has no "
                                  f"map of that name (maps: {', '.join(sorted(maps)) or 'none'})")
            if isinstance(metric, Counter) and metric.perf_event_array:
                if m.type != MapType.PERF_EVENT_ARRAY:
                    raise ConfigError(f"{where}: metrics.counters {metric.name!r}: "
                                      "perf_event_array is set but the map is a "
                                      f"{MapType(m.type).name} map")
                continue
            if m.value_size != 8:
                raise ConfigError(f"{where}: map {metric.name!r}: value size is not the "
                                  f"expected 8 bytes (u64), it is {m.value_size} bytes")
            want = _key_size(metric.labels, m.type in PERCPU)
            if m.key_size not in want:
                raise ConfigError(f"{where}: map {metric.name!r}: key size {m.key_size} does "
                                  f"not match the labels' sizes and paddings "
                                  f"({' or '.join(map(str, sorted(want)))} bytes)")
        for span in cfg.spans:
            m = maps.get(span.ringbuf)
            if m is None or m.type != MapType.RINGBUF:
                raise ConfigError(f"{where}: tracing.spans ringbuf {span.ringbuf!r}: the "
                                  "object has no ring buffer map of that name")
        cg = cfg.cgroup_id_map
        if cg is not None:
            m = maps.get(cg.name)
            want_key = 8 if cg.type == "hash" else 4
            if m is None:
                raise ConfigError(f"{where}: cgroup_id_map {cg.name!r}: no map of that name")
            if m.key_size != want_key or m.value_size != 8:
                raise ConfigError(f"{where}: cgroup_id_map {cg.name!r}: a {cg.type} id map "
                                  f"needs {want_key}-byte keys and u64 values, the map has "
                                  f"{m.key_size} and {m.value_size} bytes")

    # -- reading -----------------------------------------------------------------------------
    def read_map(self, loaded: Loaded, name: str) -> MapRead:
        """One BPF_MAP_LOOKUP_BATCH pass over map ``name`` (raw bytes)."""
        m: Map = loaded.collection.maps[name]
        t0 = time.perf_counter()
        try:
            keys, vals, n = m.lookup_batch(raw=True)
        except (OSError, ValueError, PyBPFError) as e:
            loaded.read_errors[name] = loaded.read_errors.get(name, 0) + 1
            log(f"config {loaded.config.name!r}: map {name!r}: read failed: {e}")
            return MapRead(error=str(e), seconds=time.perf_counter() - t0)
        return MapRead(keys, memoryview(vals).cast("Q") if vals else memoryview(b"").cast("Q"),
                       n, time.perf_counter() - t0)

    def rows(self, loaded: Loaded, name: str, labels: list[Label], read: MapRead
             ) -> dict[tuple[str, ...], float]:
        """Decoded label values -> summed value (DecodeError if a key does not fit)."""
        m: Map = loaded.collection.maps[name]
        ksz, n, vals = m.key_size, read.count, read.values
        percpu = m.type in PERCPU
        ncpu = (len(vals) // n) if percpu and n else 1
        keys = read.keys
        out: dict[tuple[str, ...], float] = {}
        decode = self.decoders.decode_cached
        if not labels:
            for i in range(n):
                if keys[i * ksz:(i + 1) * ksz] != b"\0\0\0\0":
                    raise DecodeError(f"a metric without labels reads key 0 (u32) only, the "
                                      f"map has key {keys[i * ksz:(i + 1) * ksz].hex()}")
                out[()] = out.get((), 0) + sum(vals[i * ncpu:(i + 1) * ncpu])
            return out
        split_cpu = percpu and labels[-1].name == "cpu"
        if not split_cpu:
            cache = self.decoders.cache.setdefault(name, {})
            flat = vals.tolist()
            if ncpu > 1:
                flat = [sum(flat[i:i + ncpu]) for i in range(0, n * ncpu, ncpu)]
            get = out.get
            for raw, v in zip([keys[i:i + ksz] for i in range(0, n * ksz, ksz)], flat):
                values = cache.get(raw, _MISSING)
                if values is _MISSING:
                    values = decode(name, raw, labels)
                if values is not None:
                    out[values] = get(values, 0) + v
            return out
        strip = 4 if len(labels) == 1 else 0   # a lone cpu label: the u32 key 0 is dropped
        for i in range(n):
            raw = keys[i * ksz + strip:(i + 1) * ksz]
            for cpu in range(ncpu):
                values = decode(name, raw + cpu.to_bytes(2, sys.byteorder), labels)
                if values is not None:
                    out[values] = out.get(values, 0) + vals[i * ncpu + cpu]
        return out

    # -- prometheus-client collector ---------------------------------------------------------
    def describe(self) -> list:
        return []   # families are known only once maps are read: no collect at registration

    def scrape(self) -> tuple[list[Scraped], list[Any]]:
        """Read and decode every metric's map once: the results, and the health families
        (prometheus-client objects) that describe this scrape. Hold ``lock``."""
        from prometheus_client.core import GaugeMetricFamily
        t0 = time.perf_counter()
        entries = GaugeMetricFamily(f"{NAMESPACE}_map_entries",
                                    "Elements in each metric's map at the last scrape",
                                    labels=["config", "map"])
        seconds = GaugeMetricFamily(f"{NAMESPACE}_map_read_seconds",
                                    "Time of the last batch read of each map (kernel)",
                                    labels=["config", "map"])
        results: list[Scraped] = []
        for loaded in self.loaded:
            cfg = loaded.config
            for metric in cfg.map_metrics:
                read = self.read_map(loaded, metric.name)
                seconds.add_metric([cfg.name, metric.name], read.seconds)
                if read.error is not None:
                    continue
                entries.add_metric([cfg.name, metric.name], read.count)
                try:
                    rows = self.rows(loaded, metric.name, metric.labels, read)
                    if isinstance(metric, Histogram):
                        results.append(Scraped(metric, histograms=_histograms(metric, rows)))
                    else:
                        results.append(Scraped(metric, counters=rows))
                except (DecodeError, ValueError) as e:
                    loaded.decoder_errors += 1
                    log(f"config {cfg.name!r}: map {metric.name!r}: decoding failed: {e}")
        health = list(self.events.collect()) if self.events is not None else []
        health += [*self._health(), entries, seconds,
                   GaugeMetricFamily(f"{NAMESPACE}_scrape_duration_seconds",
                                     "Time this scrape spent reading and decoding maps",
                                     value=time.perf_counter() - t0)]
        return results, health

    def collect(self) -> Iterator[Any]:
        """prometheus-client's Collector protocol: every family of one scrape."""
        with self.lock:
            results, health = self.scrape()
        for r in results:
            yield r.family()
        yield from health

    def render(self, encoder: Callable[[Any], bytes], openmetrics: bool) -> bytes:
        """One scrape in the format ``encoder`` (prometheus-client's, from ``choose_encoder``)
        writes: the map families by :class:`~.exposition.Renderer` (the same bytes,
        label strings kept between scrapes), the health families by ``encoder`` itself."""
        with self.lock:
            results, health = self.scrape()
            body = self.renderer.render(results, openmetrics)
        return body + encoder(_Families(health))

    def _health(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        enabled = GaugeMetricFamily(f"{NAMESPACE}_enabled_configs", "The set of enabled configs",
                                    labels=["name"])
        info = GaugeMetricFamily(f"{NAMESPACE}_ebpf_program_info", "Info about ebpf programs",
                                 labels=["config", "program", "tag", "id"])
        attached = GaugeMetricFamily(f"{NAMESPACE}_ebpf_program_attached",
                                     "Whether a program is attached", labels=["id"])
        run_time = CounterMetricFamily(f"{NAMESPACE}_ebpf_program_run_time_seconds",
                                       "How long has the program been executing", labels=["id"])
        run_count = CounterMetricFamily(f"{NAMESPACE}_ebpf_program_run_count",
                                        "How many times has the program been executed",
                                        labels=["id"])
        decoder_errors = CounterMetricFamily(f"{NAMESPACE}_decoder_errors",
                                             "How many times has decoders encountered errors",
                                             labels=["config"])
        read_errors = CounterMetricFamily(f"{NAMESPACE}_map_read_errors",
                                          "Failed kernel reads of a metric's map",
                                          labels=["config", "map"])
        stats = self.stats_enabled()
        for loaded in self.loaded:
            cfg = loaded.config
            enabled.add_metric([cfg.name], 1)
            decoder_errors.add_metric([cfg.name], loaded.decoder_errors)
            for m in cfg.map_metrics:
                read_errors.add_metric([cfg.name, m.name], loaded.read_errors.get(m.name, 0))
            for name, link in loaded.attached.items():
                try:
                    pinfo = loaded.collection.programs[name].info()
                except (OSError, PyBPFError) as e:
                    log(f"config {cfg.name!r}: program {name!r}: info failed: {e}")
                    continue
                pid = str(pinfo.id)
                info.add_metric([cfg.name, name, pinfo.tag, pid], 1)
                attached.add_metric([pid], 0 if link is None else 1)
                if stats:
                    run_time.add_metric([pid], pinfo.run_time_ns / 1e9)
                    run_count.add_metric([pid], pinfo.run_cnt)
        yield from (enabled, info, attached, decoder_errors, read_errors)
        if stats:
            yield run_time
            yield run_count

    def stats_enabled(self) -> bool:
        """Whether the kernel counts program run time: our BPF_ENABLE_STATS fd, or the sysctl."""
        if self.stats_fd is not None:
            return True
        try:
            with open(BPF_STATS_SYSCTL) as f:
                return f.read().strip() == "1"
        except OSError:
            return False

    # -- the /maps debug page ----------------------------------------------------------------
    def dump_maps(self) -> str:
        """Every metric map's raw keys, decoded labels and values (``--debug``'s ``/maps``)."""
        out = []
        with self.lock:
            for loaded in self.loaded:
                out.append(f"## Config: {loaded.config.name}\n\n")
                for metric in loaded.config.map_metrics:
                    out.append(f"### Map: {metric.name}\n\n```\n")
                    read = self.read_map(loaded, metric.name)
                    if read.error is not None:
                        out.append(f"error: {read.error}\n```\n\n")
                        continue
                    m = loaded.collection.maps[metric.name]
                    per = len(read.values) // read.count if read.count else 1
                    for i in range(read.count):
                        raw = read.keys[i * m.key_size:(i + 1) * m.key_size]
                        try:
                            labels: Union[str, list] = list(
                                self.decoders.decode_cached(metric.name, raw, metric.labels)
                                or ["(skipped)"]) if metric.labels else []
                        except DecodeError as e:
                            labels = f"error: {e}"
                        value = list(read.values[i * per:(i + 1) * per])
                        out.append(f"{raw.hex()} (labels: {labels}) -> "
                                   f"{value[0] if per == 1 else value}\n")
                    out.append("```\n\n")
        return "".join(out)

    # -- shutdown ----------------------------------------------------------------------------
    def _close_loaded(self, loaded: Loaded) -> None:
        for link in loaded.attached.values():
            if link is not None:
                try:
                    link.close()
                except OSError as e:
                    log(f"config {loaded.config.name!r}: detaching: {e}")
        loaded.attached.clear()
        loaded.collection.close()

    def close(self) -> None:
        """Stop the event loop, detach every program and close programs, maps and BTF."""
        if self.events is not None:
            self.events.close()
            self.events = None
        while self.loaded:
            self._close_loaded(self.loaded.pop())
        if self.stats_fd is not None:
            self.stats_fd.close()
            self.stats_fd = None

    def __enter__(self) -> "Exporter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _histograms(h: Histogram, rows: dict[tuple[str, ...], float]
                ) -> dict[tuple[str, ...], tuple[list[tuple[float, float]], float, float]]:
    """Rows keyed (labels..., bucket) as one histogram per label set: cumulative buckets,
    count, sum."""
    groups: dict[tuple[str, ...], dict[float, float]] = {}
    for values, v in rows.items():
        try:
            bucket = parse_bucket(values[-1])
        except ValueError:
            raise DecodeError(f"bucket label {values[-1]!r} of histogram {h.name!r} is not "
                              "an unsigned integer") from None
        counts = groups.setdefault(values[:-1], {})
        counts[float(bucket)] = counts.get(float(bucket), 0.0) + v
    return {values: transform(h, counts) for values, counts in groups.items()}


class _Families:
    """Families already collected, as a collector (for prometheus-client's encoders)."""

    def __init__(self, families: list) -> None:
        self.families = families

    def collect(self) -> list:
        return self.families


def _key_size(labels: list[Label], percpu: bool) -> set[int]:
    """Key sizes that fit ``labels`` (ebpf_exporter's rules: no labels read the u32 key 0; a
    per-CPU map's last ``cpu`` label is 2 bytes the exporter appends, a lone one replacing a
    u32 key)."""
    total = sum(lb.size + lb.padding for lb in labels)
    if not labels:
        return {4}
    if percpu and labels[-1].name == "cpu":
        return {total - 2} | ({4} if len(labels) == 1 else set())
    return {total}

