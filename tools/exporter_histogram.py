#!/usr/bin/env python3
"""Draw docs/exporter-histogram.png: a histogram from a real scrape, for the README.

Starts ``pybpf exporter`` with examples/exporter's ``sleep-latency`` config and Debian's
``prometheus`` (temporary storage, 1 s scrape interval), both on loopback; a process under a
unique command name sleeps known durations; Prometheus's HTTP API is asked for the increase of
each ``ebpf_exporter_sleep_latency_seconds_bucket`` series of that command over the run, and
the per-bucket counts are drawn as bars labelled by their upper bounds. Both processes are
stopped at the end, also on failure.

The increase is the exact difference of the counters between a scrape before the sleeps and
one after (``x - x offset <run>``): PromQL's ``increase()`` extrapolates to the edges of its
window and would show fractional sleeps. The bucket series exist before the run (one warm-up
sleep makes the exporter serve every bucket of the command), so none is missed as new.

Needs root (the exporter loads BPF programs), clang, prometheus, and matplotlib, which is not a
pybpf dependency: ``pip install matplotlib``.

    python3 tools/exporter_histogram.py [--out docs/exporter-histogram.png]
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, Optional

ROOT = Path(__file__).resolve().parents[1]
METRIC = "ebpf_exporter_sleep_latency_seconds"
# (seconds, how many): spread over several exp2 buckets of microseconds
SLEEPS = ((0.0005, 40), (0.003, 30), (0.012, 20), (0.05, 10), (0.2, 5))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited with status {proc.returncode} before answering "
                             f"{url}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{what}: no answer at {url} after {timeout:.0f} s") from None
            time.sleep(0.2)


def query(prom: str, promql: str, at: Optional[float] = None) -> list[dict[str, Any]]:
    """An instant query's result vector (Prometheus HTTP API ``/api/v1/query``)."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"{prom}/api/v1/query?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as r:
        answer = json.load(r)
    if answer.get("status") != "success":
        raise SystemExit(f"Prometheus refused {promql!r}: {answer}")
    return answer["data"]["result"]


def scraped_count(prom: str, comm: str) -> Optional[float]:
    """The command's ``_count`` as Prometheus last scraped it (None before the first)."""
    result = query(prom, f'{METRIC}_count{{comm="{comm}"}}')
    return float(result[0]["value"][1]) if result else None


def wait_for_count(prom: str, comm: str, want: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while scraped_count(prom, comm) != want:
        if time.monotonic() > deadline:
            raise SystemExit(f"Prometheus has {METRIC}_count{{comm={comm!r}}} = "
                             f"{scraped_count(prom, comm)} after {timeout:.0f} s, not {want}")
        time.sleep(0.3)


def sleeper(comm: str, sleeps: tuple[tuple[float, int], ...]) -> None:
    """A process named ``comm`` sleeping ``sleeps`` (time.sleep: clock_nanosleep)."""
    code = textwrap.dedent(f"""
        import time
        with open("/proc/self/comm", "w") as f:
            f.write({comm!r})
        for seconds, n in {sleeps!r}:
            for _ in range(n):
                time.sleep(seconds)
        """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def stop(proc: Optional[subprocess.Popen], sig: int = signal.SIGTERM) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def label(seconds: float) -> str:
    """A bucket's upper bound, readable: 512 µs, 1.02 ms, 2.1 s."""
    if seconds == float("inf"):
        return "+Inf"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if seconds >= scale:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds * 1e9:.3g} ns"


def draw(out: Path, bounds: list[float], counts: list[float], promql: str, comm: str,
         version: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    nonzero = [i for i, c in enumerate(counts) if c]
    lo, hi = max(nonzero[0] - 2, 0), min(nonzero[-1] + 2, len(counts) - 1)
    xs = list(range(lo, hi + 1))
    fig, ax = plt.subplots(figsize=(11, 5.2), dpi=110)
    bars = ax.bar(range(len(xs)), [counts[i] for i in xs], color="#e6522c", width=0.8)
    ax.bar_label(bars, labels=[f"{counts[i]:g}" if counts[i] else "" for i in xs], padding=2)
    ax.set_xticks(range(len(xs)), [f"≤ {label(bounds[i])}" for i in xs], rotation=35,
                  ha="right")
    ax.set_xlabel(f"bucket upper bound (le): {label(bounds[lo])} to {label(bounds[hi])} "
                  f"shown, of {len(bounds)} buckets with +Inf")
    ax.set_ylabel("sleeps in the bucket (increase over the run)")
    ax.set_title(f"{METRIC}: Prometheus query\n{promql.replace(' - ', chr(10) + '  - ')}",
                 fontsize=9, family="monospace")
    total = sum(n for _, n in SLEEPS)
    made = ", ".join(f"{n}×{label(s)}" for s, n in SLEEPS)
    fig.text(0.01, 0.01, textwrap.fill(
        f"{total} known sleeps by command {comm} ({made}), served by pybpf exporter "
        f"(examples/exporter sleep-latency), scraped every 1 s by Prometheus {version}", 150),
        fontsize=8, color="#555555")
    ax.grid(axis="y", alpha=0.3)
    ax.margins(y=0.08)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(out)
    plt.close(fig)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "exporter-histogram.png")
    args = p.parse_args()
    if importlib.util.find_spec("matplotlib") is None:
        print("matplotlib is needed to draw the chart; it is not a pybpf dependency: "
              "pip install matplotlib", file=sys.stderr)
        return 2
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        print("prometheus is not installed: apt-get install prometheus", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="pybpf-histogram-"))
    exporter: Optional[subprocess.Popen] = None
    prom: Optional[subprocess.Popen] = None
    logs = {name: open(tmp / f"{name}.log", "w") for name in ("exporter", "prometheus")}
    try:
        eport, pport = free_port(), free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
        exporter = subprocess.Popen(
            [sys.executable, "-m", "pybpf.cli", "exporter", "--config.dir",
             str(ROOT / "examples" / "exporter"), "--config.names", "sleep-latency",
             "--web.listen-address", f"127.0.0.1:{eport}"], env=env,
            stdout=subprocess.DEVNULL, stderr=logs["exporter"])
        wait_http(f"http://127.0.0.1:{eport}/", exporter, "pybpf exporter")
        (tmp / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
            "  - job_name: pybpf\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{eport}']\n")
        prom = subprocess.Popen(
            [prometheus, f"--config.file={tmp / 'prometheus.yml'}",
             f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{pport}"],
            stdout=subprocess.DEVNULL, stderr=logs["prometheus"])
        url = f"http://127.0.0.1:{pport}"
        wait_http(f"{url}/-/ready", prom, "prometheus")
        with urllib.request.urlopen(f"{url}/api/v1/status/buildinfo", timeout=10) as r:
            version = json.load(r)["data"]["version"]

        comm = f"sleep{uuid.uuid4().hex[:8]}"
        sleeper(comm, ((1e-6, 1),))            # warm-up: the command's buckets exist
        wait_for_count(prom=url, comm=comm, want=1.0)
        time.sleep(1.5)                        # the baseline scraped once more
        start = time.time()
        sleeper(comm, SLEEPS)
        total = sum(n for _, n in SLEEPS)
        wait_for_count(prom=url, comm=comm, want=1.0 + total)
        end = time.time() + 1.5
        time.sleep(1.5)
        run = int(end - start) + 1
        series = f'{METRIC}_bucket{{comm="{comm}"}}'
        promql = f"{series} - {series} offset {run}s"
        rows = query(url, promql, at=end)
        cumulative = sorted((float(r["metric"]["le"]), float(r["value"][1])) for r in rows)
        if not cumulative or cumulative[-1][1] != total:
            raise SystemExit(f"the +Inf bucket increased by "
                             f"{cumulative[-1][1] if cumulative else None}, not {total}")
        bounds = [le for le, _ in cumulative]
        counts = [c - (cumulative[i - 1][1] if i else 0.0)
                  for i, (_, c) in enumerate(cumulative)]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        draw(args.out, bounds, counts, promql, comm, version)
        for le, c in zip(bounds, counts):
            if c:
                print(f"le={le:g}: {c:g}")
        print(f"{total} sleeps over {run} s; query at {end:.0f}: {promql}\nwrote {args.out}")
        return 0
    except BaseException:
        for log in ("exporter.log", "prometheus.log"):   # what the processes said, for why
            lines = (tmp / log).read_text(errors="replace").splitlines() \
                if (tmp / log).exists() else []
            print(f"--- {log} (last lines)", *lines[-10:], sep="\n", file=sys.stderr)
        raise
    finally:
        stop(exporter)
        stop(prom)
        for f in logs.values():
            f.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
