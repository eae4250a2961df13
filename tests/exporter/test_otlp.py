"""``tracing.spans``: ring buffer records exported as spans over OTLP/HTTP, received here by a
loopback HTTP server that decodes the protobuf payload with opentelemetry-proto."""
from __future__ import annotations

import gzip
import http.server
import subprocess
import threading
import time

import pytest

from .conftest import free_port


class Receiver:
    """An OTLP/HTTP traces endpoint keeping every span it is sent, with its resource."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest, ExportTraceServiceResponse)
        self.spans: list[tuple[dict, object]] = []
        self.paths: list[str] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                with receiver.lock:
                    receiver.paths.append(self.path)
                    for rs in request.resource_spans:
                        resource = {a.key: a.value.string_value for a in rs.resource.attributes}
                        for ss in rs.scope_spans:
                            for span in ss.spans:
                                receiver.spans.append((resource, span))
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def log_message(self, *args) -> None:
                pass

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    try:
        yield r
    finally:
        r.close()


def attrs(span) -> dict:
    return {a.key: a.value.string_value for a in span.attributes}


def test_spans_exported_over_otlp(example_dir, run_exporter, receiver, named_command):
    exp = run_exporter(example_dir, "exit-spans", "--tracing.otlp-endpoint",
                       f"http://127.0.0.1:{receiver.port}/v1/traces",
                       env={"OTEL_BSP_SCHEDULE_DELAY": "200"})
    sleep_cmd = named_command("sleep")
    started = time.time_ns()
    subprocess.run([sleep_cmd, "1"], check=True)
    subprocess.run([sleep_cmd, "0.01"], check=True)
    ended = time.time_ns()
    deadline = time.monotonic() + 20
    while True:
        with receiver.lock:
            ours = [(res, s) for res, s in receiver.spans if attrs(s).get("comm") == sleep_cmd.name]
        if len(ours) >= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert len(ours) == 2, f"{len(receiver.spans)} spans received, none or too few of ours"
    assert set(receiver.paths) == {"/v1/traces"}
    durations = sorted((s.end_time_unix_nano - s.start_time_unix_nano) / 1e9 for _, s in ours)
    assert 0.01 <= durations[0] < 1 <= durations[1] < 10
    for resource, span in ours:
        assert resource["service.name"] == "processes"
        assert span.name == "process"
        assert attrs(span)["ebpf_exporter.config"] == "exit-spans"
        assert attrs(span)["exit_code"] == "0"
        assert len(span.trace_id) == 16 and any(span.trace_id)
        assert len(span.span_id) == 8 and any(span.span_id)
        assert span.parent_span_id == b""
        # the kernel's monotonic start time became wall-clock time
        assert started - 1e9 < span.start_time_unix_nano and span.end_time_unix_nano < ended + 1e9
    assert ours[0][1].trace_id != ours[1][1].trace_id
    _, _, body = exp.get()
    assert b'ebpf_exporter_span_records_total{config="exit-spans",ringbuf="exit_spans"}' in body
    status, stderr = exp.stop()
    assert status == 0, stderr
