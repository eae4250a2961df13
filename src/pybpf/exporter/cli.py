"""``pybpf exporter``: ebpf_exporter's flags on pybpf.

    pybpf exporter --config.dir DIR --config.names a,b [--web.listen-address HOST:PORT]
                   [--web.telemetry-path /metrics] [--web.config.file FILE] [--debug]
                   [--btf.path FILE] [--config.strict] [--config.check]
                   [--bpf.enable-stats] [--tracing.otlp-endpoint URL]
                   [--capabilities.keep all|none|cap_a,cap_b] [--log.no-timestamps]

Listens on 127.0.0.1:9435 unless told otherwise (``:9435`` or ``0.0.0.0:9435`` binds every
interface, explicitly). SIGINT and SIGTERM detach and close everything and exit 0.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING, Callable, Optional

from .config import ConfigError

if TYPE_CHECKING:
    from .events import EventLoop
    from .exporter import Exporter

DEFAULT_LISTEN = "127.0.0.1:9435"


def parse_listen(address: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (every interface)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--web.listen-address {address!r}: expected HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return host or "0.0.0.0", int(port)


def _arguments() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpf exporter", description="Serves eBPF maps as "
                                "Prometheus metrics, configured as ebpf_exporter is.")
    p.add_argument("--config.dir", dest="config_dir", required=True,
                   help="directory of NAME.yaml and NAME.bpf.o (or NAME.bpf.c, compiled; or "
                        "NAME.bcc.c, BCC C compiled by pybpf.bcc)")
    p.add_argument("--config.names", dest="config_names", required=True,
                   help="comma-separated names of the configs to load")
    p.add_argument("--config.strict", dest="strict", action="store_true",
                   help="a program that fails to attach stops start-up")
    p.add_argument("--config.check", dest="check", action="store_true",
                   help="load and attach the configs, then exit")
    p.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN,
                   help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN})")
    p.add_argument("--web.telemetry-path", "--metrics.path", dest="metrics_path",
                   default="/metrics", help="path of the metrics (default /metrics)")
    p.add_argument("--web.config.file", dest="web_config",
                   help="exporter-toolkit web config: TLS and basic auth")
    p.add_argument("--debug", action="store_true",
                   help="serve the maps' raw contents at /maps; print verifier logs")
    p.add_argument("--capabilities.keep", dest="caps", default="all",
                   help="capabilities kept once loaded and attached: comma-separated "
                        "(cap_syslog, cap_bpf...), all (default) or none")
    p.add_argument("--log.no-timestamps", dest="no_timestamps", action="store_true",
                   help="log lines without the date and time")
    p.add_argument("--btf.path", dest="btf_path", help="BTF file to relocate CO-RE against")
    p.add_argument("--bpf.enable-stats", dest="enable_stats", action="store_true",
                   help="turn on the kernel's program run-time statistics (BPF_ENABLE_STATS) "
                        "while running")
    p.add_argument("--tracing.otlp-endpoint", dest="otlp_endpoint",
                   help="OTLP/HTTP traces URL for tracing.spans (default: the "
                        "OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT variables)")
    return p


def main(argv: Optional[list[str]] = None) -> int:
    """Run the exporter until SIGINT/SIGTERM; start-up errors raise ConfigError (one line)."""
    args = _arguments().parse_args(argv)
    names = [n.strip() for n in args.config_names.split(",") if n.strip()]
    if not names:
        raise ConfigError("--config.names: no config named")
    if not os.path.isdir(args.config_dir):
        raise ConfigError(f"--config.dir {args.config_dir!r}: not a directory")
    if not args.metrics_path.startswith("/") or args.metrics_path in ("/", "/maps"):
        raise ConfigError(f"--web.telemetry-path {args.metrics_path!r}: must be a path other "
                          "than / and /maps")
    host, port = parse_listen(args.listen)
    from . import capabilities
    keep = capabilities.parse(args.caps)

    from . import config as config_mod
    from .decoders import Decoders
    from .exporter import LOG_TIMESTAMPS, Exporter, log
    from .web import WebConfig, make_server, read_web_config
    LOG_TIMESTAMPS[0] = not args.no_timestamps
    web = read_web_config(args.web_config) if args.web_config else WebConfig()
    # Python decoders (module:function) may live beside the configs
    sys.path.insert(0, os.path.abspath(args.config_dir))
    decoders = Decoders()
    configs = config_mod.read(args.config_dir, names, decoders.why_unknown)
    exporter = Exporter(configs, decoders, btf_path=args.btf_path, strict=args.strict,
                        enable_stats=args.enable_stats, debug=args.debug)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    server = None
    serving = False
    try:
        exporter.load()
        if args.check:
            log(f"configs {', '.join(names)}: loaded and attached")
            return 0
        events = exporter.events = _events(exporter, args.otlp_endpoint)
        try:
            server = make_server(host, port, web, args.metrics_path, _encoder(exporter),
                                 exporter.dump_maps if args.debug else None)
        except OSError as e:
            raise ConfigError(f"--web.listen-address {args.listen}: {e.strerror}") from None
        if keep is not None:  # everything privileged is done: no thread started yet
            if not keep >> capabilities.NAMES.index("syslog") & 1:
                decoders.kernel.load()  # kernel addresses are hidden without CAP_SYSLOG
            capabilities.keep_only(keep)
        if events is not None:
            if events.span_records:
                from .tracing import SpanSink
                events.spans = SpanSink(args.otlp_endpoint)
            events.start()
        thread = threading.Thread(target=server.serve_forever, name="pybpf-exporter-http",
                                  daemon=True)
        thread.start()
        serving = True
        scheme = "https" if web.tls else "http"
        log(f"listening on {scheme}://{args.listen}{args.metrics_path} "
            f"(configs: {', '.join(names)})")
        while not stop.wait(1.0):
            pass
        log("stopping: detaching programs and closing maps")
        return 0
    finally:
        if serving and server is not None:
            server.shutdown()  # waits for serve_forever: only once it runs
        if server is not None:
            server.server_close()
        exporter.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _events(exporter: "Exporter", endpoint: Optional[str]) -> Optional["EventLoop"]:
    """The readers of spans and perf_event_array counters, and the cgroup id maps (none to
    read: None); spans are read only when an OTLP endpoint is configured."""
    from .events import EventLoop
    from .exporter import log
    from .tracing import endpoint_configured
    with_spans = any(loaded.config.spans for loaded in exporter.loaded)
    if with_spans and not endpoint_configured(endpoint):
        log("tracing.spans configured but no OTLP endpoint (--tracing.otlp-endpoint or "
            "OTEL_EXPORTER_OTLP_ENDPOINT): spans are not read")
        with_spans = False
    events = EventLoop(exporter, with_spans)
    if events.active():
        return events
    events.close()
    return None


def _encoder(exporter: "Exporter") -> Callable[[str], tuple[bytes, str]]:
    """``accept header -> (body, content type)``: the Prometheus text format, or OpenMetrics
    when the scraper asks for it (prometheus-client's choice and encoders; map families
    written by the exporter's renderer, byte for byte the same)."""
    from prometheus_client.exposition import choose_encoder

    def encode(accept: str) -> tuple[bytes, str]:
        encoder, content_type = choose_encoder(accept)
        return (exporter.render(encoder, content_type.startswith("application/openmetrics")),
                content_type)
    return encode


if __name__ == "__main__":
    sys.exit(main())
