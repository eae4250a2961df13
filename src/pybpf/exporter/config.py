"""ebpf_exporter's configuration format: ``DIR/NAME.yaml`` beside ``DIR/NAME.bpf.o``.

    metrics:
      counters:   [{name, help, labels, perf_event_array, flush_interval}]
      histograms: [{name, help, bucket_type, bucket_min, bucket_max, bucket_keys,
                    bucket_multiplier, labels}]     # the last label is the bucket
    tracing:
      spans:      [{name, ringbuf, service, labels}]
    kaddrs: [symbol, ...]                           # const volatile u64 kaddr_<symbol>
    cgroup_id_map: {name, type: hash|cgrp_storage, regexps}

    labels: [{name, size, padding, decoders: [{name, static_map, regexps, allow_unknown}]}]

Each metric is read from the map of its name (u64 values). Keys outside the format are
ignored as ebpf_exporter ignores them (with a warning here); a config that cannot work (a
missing name or help, an unknown bucket type or decoder, a label without size) stops
start-up with :class:`ConfigError`, one line naming the config, the field and why.
"""
from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Union

from ..errors import UsageError

BUCKET_TYPES = ("exp2", "exp2zero", "linear", "fixed")
CGROUP_ID_MAP_TYPES = ("hash", "cgrp_storage")


class ConfigError(UsageError):
    """A config that cannot be used: names the config, the field, and why."""


@dataclass
class DecoderConfig:
    """One step of a label's decoder chain."""
    name: str
    static_map: Optional[dict[str, str]] = None
    regexps: Optional[list[str]] = None
    allow_unknown: bool = False


@dataclass
class Label:
    """``size`` bytes of the key (then ``padding`` bytes skipped), decoded by ``decoders``."""
    name: str
    size: int
    padding: int = 0
    decoders: list[DecoderConfig] = field(default_factory=list)


@dataclass
class Counter:
    name: str
    help: str
    labels: list[Label] = field(default_factory=list)
    perf_event_array: bool = False
    flush_interval: float = 0.0  # seconds; perf_event_array counters reset this often (0: 1 h)


@dataclass
class Histogram:
    name: str
    help: str
    bucket_type: str
    bucket_multiplier: float = 1.0
    bucket_min: int = 0
    bucket_max: int = 0
    bucket_keys: list[float] = field(default_factory=list)
    labels: list[Label] = field(default_factory=list)


@dataclass
class Span:
    ringbuf: str
    name: str = ""
    service: str = ""
    labels: list[Label] = field(default_factory=list)


@dataclass
class CgroupIDMap:
    name: str
    type: str = "hash"
    regexps: list[str] = field(default_factory=list)


@dataclass
class Config:
    """One ``NAME.yaml``: its metrics, spans, kaddrs and cgroup id map, and its object file."""
    name: str
    path: str
    bpf_path: str
    counters: list[Counter] = field(default_factory=list)
    histograms: list[Histogram] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)
    kaddrs: list[str] = field(default_factory=list)
    cgroup_id_map: Optional[CgroupIDMap] = None

    @property
    def metrics(self) -> list[Union[Counter, Histogram]]:
        """Counters, then histograms."""
        return [*self.counters, *self.histograms]

    @property
    def map_metrics(self) -> list[Union[Counter, Histogram]]:
        """The metrics read from their map at each scrape (all but perf_event_array counters)."""
        return [m for m in self.metrics if not (isinstance(m, Counter) and m.perf_event_array)]


# -- reading fields --------------------------------------------------------------------------
class _Fields:
    """Typed access to one YAML mapping, errors naming ``where`` (``metrics.counters[0]``)."""

    def __init__(self, cfg: str, where: str, data: Any, known: tuple[str, ...]) -> None:
        self.cfg, self.where = cfg, where
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.error("", f"expected a mapping, got {type(data).__name__}")
        self.data = data
        extra = [str(k) for k in data if k not in known]
        if extra:
            sys.stderr.write(f"warning: config {cfg!r}: {self._at(', '.join(extra))}: "
                             "unknown key ignored (as ebpf_exporter does)\n")

    def _at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where and key else (self.where or key)

    def error(self, key: str, why: str) -> ConfigError:
        return ConfigError(f"config {self.cfg!r}: field {self._at(key) or '(top)'}: {why}")

    def get(self, key: str, kind: type, default: Any, convert: Optional[Callable] = None) -> Any:
        value = self.data.get(key)
        if value is None:
            return default
        if convert is not None:
            try:
                return convert(value)
            except (TypeError, ValueError) as e:
                raise self.error(key, str(e)) from None
        if kind is int and isinstance(value, bool) or not isinstance(value, kind):
            raise self.error(key, f"expected {kind.__name__}, got {value!r}")
        return value

    def items(self, key: str) -> list[tuple[str, Any]]:
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            raise self.error(key, f"expected a list, got {type(value).__name__}")
        return [(f"{self._at(key)}[{i}]", v) for i, v in enumerate(value)]


_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(value: Any) -> float:
    """A Go duration (``"1m30s"``, ``"500ms"``; an integer counts nanoseconds) in seconds."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration, got {value!r}")
    if isinstance(value, int):
        return value * 1e-9
    text = str(value).strip()
    if text == "0":
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"invalid duration {value!r} (Go syntax: 300ms, 1.5s, 2h45m)")
    return total


def _str_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping, got {type(value).__name__}")
    return {_go_str(k): _go_str(v) for k, v in value.items()}


def _go_str(v: Any) -> str:
    """A YAML scalar as the string Go's decoder makes of it (``true``, not ``True``)."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _str_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list, got {type(value).__name__}")
    return [_go_str(v) for v in value]


def _float_list(value: Any) -> list[float]:
    if not isinstance(value, list) or not all(isinstance(v, (int, float)) and
                                              not isinstance(v, bool) for v in value):
        raise ValueError(f"expected a list of numbers, got {value!r}")
    return [float(v) for v in value]


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"expected a non-negative integer, got {value!r}")
    return value


# -- the format ------------------------------------------------------------------------------
def _decoder(cfg: str, where: str, data: Any, known: Callable[[str], Optional[str]]
             ) -> DecoderConfig:
    f = _Fields(cfg, where, data, ("name", "static_map", "regexps", "allow_unknown"))
    name = f.get("name", str, "")
    if not name:
        raise f.error("name", "a decoder needs a name")
    why = known(name)
    if why:
        raise f.error("name", why)
    regexps = f.get("regexps", list, None, _str_list)
    for expr in regexps or ():
        try:
            re.compile(expr)
        except re.error as e:
            raise f.error("regexps", f"invalid regular expression {expr!r}: {e}") from None
    if name == "regexp" and not regexps:
        raise f.error("regexps", "the regexp decoder needs regexps")
    return DecoderConfig(name, f.get("static_map", dict, None, _str_map), regexps,
                         f.get("allow_unknown", bool, False))


def _labels(f: _Fields, known: Callable[[str], Optional[str]]) -> list[Label]:
    out = []
    for where, data in f.items("labels"):
        lf = _Fields(f.cfg, where, data, ("name", "size", "padding", "decoders"))
        name = lf.get("name", str, "")
        if not name:
            raise lf.error("name", "a label needs a name")
        if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", name):
            raise lf.error("name", f"{name!r} is not a valid Prometheus label name")
        size = lf.get("size", int, 0, _size)
        if size == 0:
            raise lf.error("size", f"label {name!r}: size is zero or not set")
        decoders = [_decoder(f.cfg, w, d, known) for w, d in lf.items("decoders")]
        if not decoders:
            raise lf.error("decoders", f"label {name!r}: no decoders set")
        out.append(Label(name, size, lf.get("padding", int, 0, _size), decoders))
    return out


def _named(f: _Fields, kind: str) -> tuple[str, str]:
    name, help_ = f.get("name", str, ""), f.get("help", str, "")
    if not name:
        raise f.error("name", f"the {kind} lacks a name")
    if not help_:
        raise f.error("help", f"{kind} {name!r} lacks help")
    if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name):
        raise f.error("name", f"{name!r} is not a valid Prometheus metric name")
    return name, help_


def parse(text: str, name: str, path: str, bpf_path: str,
          known_decoder: Callable[[str], Optional[str]]) -> Config:
    """A config from YAML ``text``; ``known_decoder(name)`` says why a decoder name is unusable
    (None when it is fine)."""
    import yaml  # the exporter extra's dependency, imported when a config is read
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"config {name!r}: {path}: invalid YAML: "
                          f"{' '.join(str(e).split())}") from None
    top = _Fields(name, "", data, ("metrics", "tracing", "kaddrs", "cgroup_id_map"))
    cfg = Config(name, path, bpf_path)
    metrics = _Fields(name, "metrics", top.data.get("metrics"), ("counters", "histograms"))
    for where, data in metrics.items("counters"):
        f = _Fields(name, where, data, ("name", "help", "labels", "perf_event_array",
                                        "flush_interval"))
        cname, help_ = _named(f, "counter")
        cfg.counters.append(Counter(cname, help_, _labels(f, known_decoder),
                                    f.get("perf_event_array", bool, False),
                                    f.get("flush_interval", float, 0.0, parse_duration)))
    for where, data in metrics.items("histograms"):
        f = _Fields(name, where, data, ("name", "help", "labels", "bucket_type",
                                        "bucket_multiplier", "bucket_min", "bucket_max",
                                        "bucket_keys"))
        hname, help_ = _named(f, "histogram")
        btype = f.get("bucket_type", str, "")
        if btype not in BUCKET_TYPES:
            raise f.error("bucket_type", f"unknown histogram type {btype!r} "
                                         f"(one of {', '.join(BUCKET_TYPES)})")
        h = Histogram(hname, help_, btype, f.get("bucket_multiplier", float, 0.0, _number) or 1.0,
                      f.get("bucket_min", int, 0), f.get("bucket_max", int, 0),
                      f.get("bucket_keys", list, [], _float_list), _labels(f, known_decoder))
        if btype == "fixed" and not h.bucket_keys:
            raise f.error("bucket_keys", "a fixed histogram needs bucket_keys")
        if btype != "fixed" and h.bucket_max == h.bucket_min:
            raise f.error("bucket_max", f"histogram buckets have zero size: [bucket_min .. "
                                        f"bucket_max] = [{h.bucket_min} .. {h.bucket_max}]")
        if not h.labels:
            raise f.error("labels", "a histogram needs labels, the last one being the bucket")
        cfg.histograms.append(h)
    tracing = _Fields(name, "tracing", top.data.get("tracing"), ("spans",))
    for where, data in tracing.items("spans"):
        f = _Fields(name, where, data, ("name", "ringbuf", "service", "labels"))
        ringbuf = f.get("ringbuf", str, "")
        if not ringbuf:
            raise f.error("ringbuf", "a span needs the ring buffer it is read from")
        cfg.spans.append(Span(ringbuf, f.get("name", str, ""), f.get("service", str, ""),
                              _labels(f, known_decoder)))
    cfg.kaddrs = top.get("kaddrs", list, [], _str_list)
    if top.data.get("cgroup_id_map") is not None:
        f = _Fields(name, "cgroup_id_map", top.data["cgroup_id_map"],
                    ("name", "type", "regexps"))
        m = CgroupIDMap(f.get("name", str, ""), f.get("type", str, "") or "hash",
                        f.get("regexps", list, [], _str_list))
        if not m.name:
            raise f.error("name", "the cgroup id map needs the name of its map")
        if m.type not in CGROUP_ID_MAP_TYPES:
            raise f.error("type", f"unknown type {m.type!r} (one of "
                                  f"{', '.join(CGROUP_ID_MAP_TYPES)})")
        for expr in m.regexps:
            try:
                re.compile(expr)
            except re.error as e:
                raise f.error("regexps", f"invalid regular expression {expr!r}: {e}") from None
        cfg.cgroup_id_map = m
    if not (cfg.counters or cfg.histograms or cfg.spans):
        raise ConfigError(f"config {name!r}: {path}: neither metrics nor tracing are defined")
    return cfg


def read(directory: str, names: list[str],
         known_decoder: Callable[[str], Optional[str]]) -> list[Config]:
    """The configs ``DIR/NAME.yaml`` for each name, in order (``--config.names``)."""
    out: list[Config] = []
    for name in names:
        if any(c.name == name for c in out):
            raise ConfigError(f"config {name!r}: named twice in --config.names")
        path = os.path.join(directory, name + ".yaml")
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise ConfigError(f"config {name!r}: cannot read {path}: {e.strerror}") from None
        out.append(parse(text, name, path, os.path.join(directory, name + ".bpf.o"),
                         known_decoder))
    owners: dict[str, str] = {}
    for cfg in out:  # one family per name, as Prometheus's registries require
        for metric in cfg.metrics:
            other = owners.setdefault(metric.name, cfg.name)
            if other != cfg.name or sum(m.name == metric.name for m in cfg.metrics) > 1:
                raise ConfigError(f"config {cfg.name!r}: metric {metric.name!r} is also "
                                  f"defined by config {other!r}: metric names must be unique")
    return out
