"""Fixtures for ``pybpf exporter``: the examples compiled once, the exporter run as a process
(``python3 -m pybpf.cli exporter ...``, stopped with SIGTERM, also on failure), a real
Prometheus server on loopback scraping it, and commands with a unique command name."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

from tests.links.netfixtures import cgroup2_root  # noqa: F401 (a fixture)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "exporter"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float, proc: subprocess.Popen, context=None) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"{proc.args[:4]} exited with {proc.returncode}: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        try:
            urllib.request.urlopen(url, timeout=2, context=context).read()
            return
        except urllib.error.HTTPError:
            return  # answering (401 included)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@pytest.fixture(scope="session")
def example_dir(tmp_path_factory) -> Path:
    """The examples' YAML with each ``.bpf.c`` compiled to ``NAME.bpf.o`` beside it."""
    import pybpf
    out = tmp_path_factory.mktemp("exporter-examples")
    for src in sorted(EXAMPLES.glob("*.bpf.c")):
        pybpf.compile(src, out / (src.name[:-2] + ".o"))
        shutil.copy(EXAMPLES / (src.name[:-6] + ".yaml"), out)
    return out


class ExporterProcess:
    def __init__(self, proc: subprocess.Popen, url: str) -> None:
        self.proc, self.url = proc, url

    def get(self, path: str = "/metrics", headers: Optional[dict] = None, context=None
            ) -> tuple[int, dict, bytes]:
        req = urllib.request.Request(self.url + path, headers=headers or {})
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as r:
                return r.status, dict(r.headers), r.read()
        except urllib.error.HTTPError as e:
            return e.code, dict(e.headers), e.read()

    def stop(self) -> tuple[int, str]:
        """SIGTERM; the exit status and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, self.proc.stderr.read() if self.proc.stderr else ""


def exporter_command(config_dir: Path, names: str, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pybpf.cli", "exporter", "--config.dir", str(config_dir),
            "--config.names", names, *extra]


@pytest.fixture
def run_exporter() -> Iterator:
    """``run_exporter(dir, names, *flags, scheme="http", context=None, env=None)``: a
    started exporter on a free loopback port; every one started is stopped after the test."""
    started: list[ExporterProcess] = []

    def start(config_dir: Path, names: str, *extra: str, scheme: str = "http", context=None,
              env: Optional[dict] = None) -> ExporterProcess:
        port = free_port()
        proc = subprocess.Popen(exporter_command(config_dir, names, "--web.listen-address",
                                                 f"127.0.0.1:{port}", *extra),
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        exp = ExporterProcess(proc, f"{scheme}://127.0.0.1:{port}")
        started.append(exp)
        wait_http(exp.url + "/", 60, proc, context)
        return exp

    try:
        yield start
    finally:
        for exp in started:
            exp.stop()


@pytest.fixture
def prometheus(tmp_path) -> Iterator:
    """``prometheus(target)``: Debian's Prometheus on a free loopback port scraping
    ``target`` (host:port) every second, storage in a temp dir; stopped after, also on
    failure. Returns its base URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is not installed: `apt-get install prometheus` "
                    "(.ci/install installs it)")
    procs: list[subprocess.Popen] = []

    def start(target: str) -> str:
        port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                          "scrape_configs:\n  - job_name: pybpf\n    static_configs:\n"
                          f"      - targets: ['{target}']\n")
        log = open(tmp_path / "prometheus.log", "w")
        proc = subprocess.Popen([binary, f"--config.file={config}",
                                 f"--storage.tsdb.path={tmp_path / 'data'}",
                                 f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        wait_http(f"http://127.0.0.1:{port}/-/ready", 60, proc)
        return f"http://127.0.0.1:{port}"

    try:
        yield start
    finally:
        for proc in procs:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def named_command() -> Iterator:
    """``named_command(binary)``: a copy of ``binary`` under a unique command name (what the
    kernel's comm shows for it), in a temp dir removed after."""
    d = Path(tempfile.mkdtemp(prefix="pybpf-exp-"))

    def make(binary: str) -> Path:
        name = f"pbx{uuid.uuid4().hex[:8]}"          # 11 characters: fits comm[16]
        path = d / name
        shutil.copy(shutil.which(binary) or binary, path)
        return path

    try:
        yield make
    finally:
        shutil.rmtree(d, ignore_errors=True)
