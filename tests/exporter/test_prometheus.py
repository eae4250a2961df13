"""A real Prometheus server scrapes the exporter: a counter driven by commands the test runs,
and a histogram whose bucket counts the test knows, read back through Prometheus's HTTP API;
``promtool check metrics`` on the exposition."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request

import pytest


def query(base: str, expr: str) -> list[dict]:
    url = f"{base}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_query(base: str, expr: str, ok, timeout: float = 30.0) -> list[dict]:
    """Query until ``ok(result)`` holds (Prometheus scrapes every second)."""
    deadline = time.monotonic() + timeout
    while True:
        result = query(base, expr)
        if ok(result) or time.monotonic() > deadline:
            return result
        time.sleep(0.5)


def test_prometheus_scrapes_counter_and_histogram(example_dir, run_exporter, prometheus,
                                                  named_command):
    exp = run_exporter(example_dir, "syscalls,sleep-latency")
    base = prometheus(exp.url.split("//")[1])
    true_cmd, sleep_cmd = named_command("true"), named_command("sleep")
    for _ in range(7):
        subprocess.run([true_cmd], check=True)
    # 3 sleeps of 70 ms and 2 of 140 ms. Each call lasts at least what it asked and at most
    # its process's wall time, which sets the buckets it can be in: on a quiet machine one
    # (70 ms -> (65.5, 131.1] ms, 140 ms -> (131.1, 262.1] ms), on a loaded one maybe more.
    spans = []
    for seconds in (0.07, 0.07, 0.07, 0.14, 0.14):
        start = time.monotonic()
        subprocess.run([sleep_cmd, str(seconds)], check=True)
        spans.append((seconds, time.monotonic() - start))

    execs = f'ebpf_exporter_execs_total{{comm="{true_cmd.name}"}}'
    result = wait_query(base, execs, lambda r: r and r[0]["value"][1] == "7")
    assert [r["value"][1] for r in result] == ["7"], result
    assert result[0]["metric"]["job"] == "pybpf"

    name = sleep_cmd.name
    count = f'ebpf_exporter_sleep_latency_seconds_count{{comm="{name}"}}'
    assert wait_query(base, count, lambda r: r and r[0]["value"][1] == "5")[0]["value"][1] == "5"
    buckets = query(base, f'ebpf_exporter_sleep_latency_seconds_bucket{{comm="{name}"}}')
    by_le = {r["metric"]["le"]: float(r["value"][1]) for r in buckets}
    assert len(by_le) == 29                                     # 2^0..2^27 us, +Inf: back-filled
    assert by_le["0.032768"] == 0
    assert by_le["0.065536"] == 0
    for le in ("0.131072", "0.262144", "0.524288", "+Inf"):
        bound = float(le)  # at least the calls surely under it; at most those that may be
        surely = sum(1 for _, wall in spans if wall <= bound)
        maybe = sum(1 for asked, _ in spans if asked <= bound)
        assert surely <= by_le[le] <= maybe, (le, by_le[le], spans)
    assert by_le["+Inf"] == 5
    # Prometheus computes from the buckets: the median lies in the bucket where the cumulative
    # count reaches 2.5 ((65.5, 131.1] ms on a quiet machine)
    cumulative = sorted((float(le), n) for le, n in by_le.items())
    upper = next(bound for bound, n in cumulative if n >= 2.5)
    median = query(base, f'histogram_quantile(0.5, ebpf_exporter_sleep_latency_seconds_bucket'
                         f'{{comm="{name}"}})')
    assert upper / 2 < float(median[0]["value"][1]) <= upper

    # a counter the kernel drives: getppid called by this process 1000 times more
    getppid = 'ebpf_exporter_syscalls_total{syscall="getppid"}'
    os.getppid()  # the series exists once someone has called it: on a quiet machine, this test
    before = float(wait_query(base, getppid, bool)[0]["value"][1])
    for _ in range(1000):
        os.getppid()
    after = wait_query(base, getppid, lambda r: float(r[0]["value"][1]) >= before + 1000)
    assert float(after[0]["value"][1]) >= before + 1000

    up = query(base, "up")
    assert [r["value"][1] for r in up] == ["1"]
    status, stderr = exp.stop()
    assert status == 0, stderr


def test_promtool_checks_exposition(example_dir, run_exporter):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool is not installed: `apt-get install prometheus` (.ci/install)")
    exp = run_exporter(example_dir, "syscalls,sleep-latency,timers", "--bpf.enable-stats")
    subprocess.run(["sleep", "0.01"], check=True)
    status, headers, body = exp.get()
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    check = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True)
    assert check.returncode == 0, check.stdout + check.stderr
    text = body.decode()
    for family in ("ebpf_exporter_syscalls_total", "ebpf_exporter_sleep_latency_seconds",
                   "ebpf_exporter_hrtimer_expiries_total", "ebpf_exporter_enabled_configs",
                   "ebpf_exporter_ebpf_program_run_count_total",
                   "ebpf_exporter_scrape_duration_seconds", "ebpf_exporter_map_entries"):
        assert f"# TYPE {family} " in text, family
    # OpenMetrics when asked for, as Prometheus can
    status, headers, body = exp.get(headers={"Accept": "application/openmetrics-text; "
                                                       "version=1.0.0"})
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
