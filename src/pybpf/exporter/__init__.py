"""``pybpf exporter``: kernel metrics for Prometheus, configured as Cloudflare's ebpf_exporter.

For each config name, ``DIR/NAME.bpf.o`` (or ``NAME.bpf.c``, compiled at start) is loaded
with pybpf's loader and its programs auto-attached by SEC() name; ``DIR/NAME.yaml`` says how
map keys become labels (:mod:`.decoders`) and u64 values become counters and histograms
(:mod:`.config`, :mod:`.histogram`), served by prometheus-client (:mod:`.exporter`,
:mod:`.web`); ``tracing.spans`` go out over OTLP (:mod:`.tracing`). Metric names carry the
``ebpf_exporter_`` prefix, so dashboards made for ebpf_exporter keep working.

Needs the ``exporter`` extra (``pip install 'pybpf[exporter]'``): prometheus-client, PyYAML,
bcrypt (basic auth) and the OpenTelemetry SDK with its OTLP/HTTP exporter (spans).
"""
from __future__ import annotations

from .cli import main

__all__ = ["main"]
