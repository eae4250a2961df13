"""``pybpf exporter``: ebpf_exporter's flags on pybpf.

    pybpf exporter --config.dir DIR --config.names a,b
                   [--web.listen-address HOST:PORT|fd://N ...] [--web.systemd-socket]
                   [--web.telemetry-path /metrics] [--web.config.file FILE] [--debug]
                   [--btf.path FILE] [--config.strict] [--config.check]
                   [--config.skip-cache-size N] [--bpf.enable-stats]
                   [--tracing.otlp-endpoint URL] [--capabilities.keep all|none|cap_a,cap_b]
                   [--log.no-timestamps] [--version]

Listens on 127.0.0.1:9435 unless told otherwise (``:9435`` binds every interface, IPv4 and
IPv6, explicitly); ``fd://N`` and ``--web.systemd-socket`` take sockets passed by systemd
(:mod:`.systemd`), which is told ``READY=1`` through ``$NOTIFY_SOCKET``. SIGINT and SIGTERM
detach and close everything and exit 0.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Callable, Optional

from .. import __version__
from .config import ConfigError

if TYPE_CHECKING:
    from .events import EventLoop
    from .exporter import Exporter

DEFAULT_LISTEN = "127.0.0.1:9435"


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
    p.add_argument("--config.skip-cache-size", dest="skip_cache_size", type=int, metavar="N",
                   help="remember the last N map keys a decoder skipped, apart from the label "
                        "cache (0: decode them again at every scrape; default: remembered "
                        "with the labels)")
    p.add_argument("--web.listen-address", dest="listen", action="append", metavar="ADDRESS",
                   help=f"HOST:PORT to listen on (default {DEFAULT_LISTEN}; :PORT is every "
                        "interface), or fd://N for the N-th socket systemd passed; repeatable")
    p.add_argument("--web.systemd-socket", dest="systemd_socket", action="store_true",
                   help="serve on the sockets systemd passed (LISTEN_FDS) instead of "
                        "--web.listen-address")
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
    p.add_argument("--version", action="version", version=f"pybpf exporter {__version__}")
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
    if args.skip_cache_size is not None and args.skip_cache_size < 0:
        raise ConfigError(f"--config.skip-cache-size {args.skip_cache_size}: must be >= 0")
    from .web import parse_listen
    addresses = args.listen or [DEFAULT_LISTEN]
    for address in addresses:
        if not address.startswith(("fd://", "vsock://")):
            parse_listen(address)
    from . import capabilities
    keep = capabilities.parse(args.caps)

    from . import config as config_mod
    from .decoders import Decoders
    from .exporter import LOG_TIMESTAMPS, Exporter, log
    from .systemd import notify
    from .web import WebConfig, describe, listeners, make_server, read_web_config
    LOG_TIMESTAMPS[0] = not args.no_timestamps
    started = time.monotonic()
    notify("STATUS=parsing config...")
    web = read_web_config(args.web_config) if args.web_config else WebConfig()
    # Python decoders (module:function) may live beside the configs
    sys.path.insert(0, os.path.abspath(args.config_dir))
    decoders = Decoders(skip_cache_size=args.skip_cache_size)
    configs = config_mod.read(args.config_dir, names, decoders.why_unknown)
    exporter = Exporter(configs, decoders, btf_path=args.btf_path, strict=args.strict,
                        enable_stats=args.enable_stats, debug=args.debug)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGINT, signal.SIGTERM)}
    servers: list = []
    threads: list[threading.Thread] = []
    try:
        notify("STATUS=attaching configs...")
        exporter.load()
        if args.check:
            log(f"configs {', '.join(names)}: loaded and attached")
            return 0
        events = exporter.events = _events(exporter, args.otlp_endpoint)
        encoder = _encoder(exporter)
        for sock in listeners(addresses, args.systemd_socket):
            try:
                servers.append(make_server(sock, web, args.metrics_path, encoder,
                                           exporter.dump_maps if args.debug else None))
            except BaseException:
                sock.close()
                raise
        if keep is not None:  # everything privileged is done: no thread started yet
            if not keep >> capabilities.NAMES.index("syslog") & 1:
                decoders.kernel.load()  # kernel addresses are hidden without CAP_SYSLOG
            capabilities.keep_only(keep)
        if events is not None:
            if events.span_records:
                from .tracing import SpanSink
                events.spans = SpanSink(args.otlp_endpoint)
            events.start()
        scheme = "https" if web.tls else "http"
        for server in servers:
            threads.append(threading.Thread(target=server.serve_forever, daemon=True,
                                            name="pybpf-exporter-http"))
            threads[-1].start()
            log(f"listening on {scheme}://{describe(server.socket)}{args.metrics_path} "
                f"(configs: {', '.join(names)})")
        ready = f"{len(configs)} configs loaded in {(time.monotonic() - started) * 1000:.0f}ms"
        notify(f"READY=1\nSTATUS=ready with {ready}")
        while not stop.wait(1.0):
            pass
        notify("STOPPING=1")
        log("stopping: detaching programs and closing maps")
        return 0
    finally:
        for server in servers[:len(threads)]:
            server.shutdown()  # waits for serve_forever: only where it runs
        for server in servers:
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
