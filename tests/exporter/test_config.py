"""ebpf_exporter's YAML format: what is read, and one-line errors naming config and field."""
from __future__ import annotations

import textwrap

import pytest

from pybpf.exporter.config import ConfigError, parse, parse_duration, read
from pybpf.exporter.decoders import Decoders


def load(text: str, name: str = "demo"):
    return parse(textwrap.dedent(text), name, f"/cfg/{name}.yaml", f"/cfg/{name}.bpf.o",
                 Decoders().why_unknown)


FULL = """
metrics:
  counters:
    - name: events_total
      help: Events
      perf_event_array: true
      flush_interval: 1m30s
      labels:
        - name: kind
          size: 4
          padding: 4
          decoders:
            - name: uint
            - name: static_map
              static_map: {1: one, 2: two}
              allow_unknown: true
  histograms:
    - name: latency_seconds
      help: Latency
      bucket_type: exp2
      bucket_min: 0
      bucket_max: 26
      bucket_multiplier: 0.000001
      labels:
        - name: device
          size: 32
          decoders:
            - name: string
            - name: regexp
              regexps: ["^(sd[a-z])"]
        - name: bucket
          size: 8
          decoders:
            - name: uint
tracing:
  spans:
    - name: exec
      ringbuf: exec_spans
      service: svc
      labels:
        - name: trace_id
          size: 16
          decoders: [{name: hex}]
kaddrs: [jiffies]
cgroup_id_map:
  name: cgroup_ids
  type: hash
  regexps: ["^.*(system.slice/.*)$"]
"""


def test_full_config():
    cfg = load(FULL)
    assert cfg.name == "demo" and cfg.bpf_path == "/cfg/demo.bpf.o"
    (c,) = cfg.counters
    assert c.perf_event_array and c.flush_interval == 90.0
    assert c.labels[0].size == 4 and c.labels[0].padding == 4
    assert c.labels[0].decoders[1].static_map == {"1": "one", "2": "two"}
    assert c.labels[0].decoders[1].allow_unknown
    (h,) = cfg.histograms
    assert (h.bucket_type, h.bucket_min, h.bucket_max, h.bucket_multiplier) == \
        ("exp2", 0, 26, 0.000001)
    assert [lb.name for lb in h.labels] == ["device", "bucket"]
    assert h.labels[0].decoders[1].regexps == ["^(sd[a-z])"]
    assert cfg.spans[0].ringbuf == "exec_spans" and cfg.spans[0].service == "svc"
    assert cfg.kaddrs == ["jiffies"]
    assert cfg.cgroup_id_map.name == "cgroup_ids" and cfg.cgroup_id_map.type == "hash"


def test_multiplier_defaults_to_one_and_unknown_keys_warn(capsys):
    cfg = load("""
        metrics:
          histograms:
            - {name: h, help: H, bucket_type: linear, bucket_max: 10, extra: 1,
               labels: [{name: bucket, size: 8, decoders: [{name: uint}]}]}
        """)
    assert cfg.histograms[0].bucket_multiplier == 1.0
    assert "metrics.histograms[0].extra: unknown key ignored" in capsys.readouterr().err


@pytest.mark.parametrize("text, message", [
    ("metrics: {}", "config 'demo': /cfg/demo.yaml: neither metrics nor tracing are defined"),
    ("metrics: {counters: [{name: c}]}",
     "config 'demo': field metrics.counters[0].help: counter 'c' lacks help"),
    ("metrics: {counters: [{help: x}]}",
     "config 'demo': field metrics.counters[0].name: the counter lacks a name"),
    ("metrics: {histograms: [{name: h, help: H, bucket_type: exp3}]}",
     "config 'demo': field metrics.histograms[0].bucket_type: unknown histogram type 'exp3' "
     "(one of exp2, exp2zero, linear, fixed)"),
    ("metrics: {histograms: [{name: h, help: H, bucket_type: exp2, bucket_min: 3, "
     "bucket_max: 3, labels: [{name: b, size: 8, decoders: [{name: uint}]}]}]}",
     "config 'demo': field metrics.histograms[0].bucket_max: histogram buckets have zero size: "
     "[bucket_min .. bucket_max] = [3 .. 3]"),
    ("metrics: {histograms: [{name: h, help: H, bucket_type: fixed, "
     "labels: [{name: b, size: 8, decoders: [{name: uint}]}]}]}",
     "config 'demo': field metrics.histograms[0].bucket_keys: a fixed histogram needs "
     "bucket_keys"),
    ("metrics: {counters: [{name: c, help: C, labels: [{name: l, decoders: [{name: uint}]}]}]}",
     "config 'demo': field metrics.counters[0].labels[0].size: label 'l': size is zero or not set"),
    ("metrics: {counters: [{name: c, help: C, labels: [{name: l, size: 4}]}]}",
     "config 'demo': field metrics.counters[0].labels[0].decoders: label 'l': no decoders set"),
    ("metrics: {counters: [{name: c, help: C, labels: [{name: l, size: 4, decoders: "
     "[{name: nope}]}]}]}",
     "config 'demo': field metrics.counters[0].labels[0].decoders[0].name: unknown decoder "
     "'nope'"),
    ("metrics: {counters: [{name: c, help: C, labels: [{name: l, size: four, decoders: "
     "[{name: uint}]}]}]}",
     "config 'demo': field metrics.counters[0].labels[0].size: expected a non-negative integer, "
     "got 'four'"),
    ("metrics: {counters: [{name: c, help: C, flush_interval: 5 minutes}]}",
     "config 'demo': field metrics.counters[0].flush_interval: invalid duration '5 minutes'"),
    ("metrics: {counters: [{name: c, help: C, labels: [{name: l, size: 4, decoders: "
     "[{name: regexp, regexps: ['(']}]}]}]}",
     "config 'demo': field metrics.counters[0].labels[0].decoders[0].regexps: invalid regular "
     "expression '('"),
    ("tracing: {spans: [{name: s}]}",
     "config 'demo': field tracing.spans[0].ringbuf: a span needs the ring buffer"),
    ("cgroup_id_map: {name: m, type: list}\ntracing: {spans: [{ringbuf: r}]}",
     "config 'demo': field cgroup_id_map.type: unknown type 'list' (one of hash, cgrp_storage)"),
    ("metrics: [", "config 'demo': /cfg/demo.yaml: invalid YAML"),
    ("metrics: {counters: [{name: c, help: C, labels: [{name: l, size: 4, decoders: "
     "[{name: 'no_such_module_xyz:f'}]}]}]}",
     "decoders[0].name: Python decoder 'no_such_module_xyz:f' cannot be loaded: "
     "ModuleNotFoundError"),
])
def test_errors_name_config_and_field(text, message):
    with pytest.raises(ConfigError) as e:
        load(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_python_decoder_named_in_config(tmp_path, monkeypatch):
    (tmp_path / "my_decoders.py").write_text(
        "def upper(data, conf):\n    return data.rstrip(b'\\0').decode().upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    decoders = Decoders()
    cfg = parse("metrics: {counters: [{name: c, help: C, labels: [{name: l, size: 8, decoders: "
                "[{name: 'my_decoders:upper'}]}]}]}", "d", "d.yaml", "d.bpf.o",
                decoders.why_unknown)
    assert decoders.decode(b"abc\0\0\0\0\0", cfg.counters[0].labels) == ("ABC",)


def test_read_names_files(tmp_path):
    (tmp_path / "a.yaml").write_text("metrics: {counters: [{name: c, help: C}]}")
    (cfg,) = read(str(tmp_path), ["a"], Decoders().why_unknown)
    assert cfg.path == str(tmp_path / "a.yaml") and cfg.bpf_path == str(tmp_path / "a.bpf.o")
    with pytest.raises(ConfigError, match=r"config 'b': cannot read .*b.yaml: No such file"):
        read(str(tmp_path), ["b"], Decoders().why_unknown)
    with pytest.raises(ConfigError, match="named twice"):
        read(str(tmp_path), ["a", "a"], Decoders().why_unknown)
    (tmp_path / "b.yaml").write_text("metrics: {counters: [{name: c, help: Again}]}")
    with pytest.raises(ConfigError, match="config 'b': metric 'c' is also defined by config 'a'"):
        read(str(tmp_path), ["a", "b"], Decoders().why_unknown)


@pytest.mark.parametrize("text, seconds", [("300ms", 0.3), ("1.5s", 1.5), ("2h45m", 9900.0),
                                           ("1m30s", 90.0), (1500000000, 1.5), ("0", 0.0)])
def test_go_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)
