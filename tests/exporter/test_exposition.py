"""The exporter's renderer writes what prometheus-client writes, byte for byte (text format
0.0.4 and OpenMetrics), for real scrapes and for label values that need escaping."""
from __future__ import annotations

import subprocess

from prometheus_client import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics

from pybpf.exporter.config import Counter, DecoderConfig, Histogram, Label
from pybpf.exporter.config import read
from pybpf.exporter.decoders import Decoders
from pybpf.exporter.exporter import Exporter
from pybpf.exporter.exposition import Renderer, Scraped
from pybpf.exporter.histogram import transform


class Families:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return self.families


def same_as_client(results, renderer=None):
    renderer = renderer or Renderer()
    families = [r.family() for r in results]
    text = generate_latest(Families(families))
    om = generate_openmetrics(Families(families))
    assert renderer.render(results, False) == text
    assert renderer.render(results, True) + b"# EOF\n" == om
    assert renderer.render(results, False) == text           # again, from the kept strings
    return text


def test_real_scrape_matches_prometheus_client(example_dir, named_command):
    decoders = Decoders()
    configs = read(str(example_dir), ["syscalls", "sleep-latency", "timers"],
                   decoders.why_unknown)
    with Exporter(configs, decoders) as exporter:
        exporter.load()
        subprocess.run([named_command("sleep"), "0.01"], check=True)
        with exporter.lock:
            results, _ = exporter.scrape()
        text = same_as_client(results, exporter.renderer)
        assert b"ebpf_exporter_sleep_latency_seconds_bucket{" in text
        assert b'ebpf_exporter_hrtimer_expiries_total{function="hrtimer_wakeup"}' in text


def label(name):
    return Label(name, 8, 0, [DecoderConfig("string")])


def test_escaping_ordering_and_large_values():
    counter = Counter("odd_total", 'Help with "quotes", a \\ and a\nnewline',
                      [label("zeta"), label("alpha")])
    rows = {('a"b', "c\\d"): 7, ("x\ny", ""): 10**7, ("big", "f"): 2**64 - 1, ("z", "z"): 3.5}
    h = Histogram("lat_seconds", "Latency", "exp2", 0.001, 0, 4, [], [label("zz"), label("a"),
                                                                     label("bucket")])
    hist = {("q", "w"): transform(h, {0.0: 1, 3.0: 2, 5.0: 9}), ("e", "r"): transform(h, {})}
    neg = Histogram("neg", "Negative", "linear", 1.0, -2, 2, [], [label("bucket")])
    plain = Counter("plain", "No labels, no _total suffix")
    same_as_client([Scraped(counter, counters=rows), Scraped(h, histograms=hist),
                    Scraped(neg, histograms={(): transform(neg, {-1.0: 4, 3.0: 2})}),
                    Scraped(plain, counters={(): 42})])
