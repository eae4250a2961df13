"""The exporter's HTTP server: the metrics path, an index page, ``/maps`` with ``--debug``,
nothing else. TLS and basic auth come from a web config file in the Prometheus
exporter-toolkit format (``--web.config.file``):

    tls_server_config:
      cert_file: server.crt          # both, or neither (plain HTTP)
      key_file: server.key
      client_auth_type: RequireAndVerifyClientCert   # NoClientCert (default),
                                     # RequestClientCert, RequireAnyClientCert,
                                     # VerifyClientCertIfGiven
      client_ca_file: ca.crt
      min_version: TLS12             # TLS10..TLS13
      max_version: TLS13
    http_server_config:
      headers: {X-Frame-Options: deny}
    basic_auth_users:
      alice: $2y$10$...              # bcrypt hashes (htpasswd -nBC 10 alice)

Keys the toolkit has but this server does not implement (cipher_suites, curve_preferences,
client_allowed_sans, http2...) are refused rather than ignored: a security setting must not
silently do nothing. Relative file names are relative to the web config file.
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import os
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Optional

from .config import ConfigError

# client_auth_type -> verify mode; RequestClientCert and RequireAnyClientCert (certificates
# taken without verification) are refused
CLIENT_AUTH = {"": ssl.CERT_NONE, "NoClientCert": ssl.CERT_NONE,
               "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
               "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
HANDSHAKE_TIMEOUT = 10.0


@dataclass
class WebConfig:
    tls: Optional[ssl.SSLContext] = None
    users: dict[str, str] = field(default_factory=dict)   # user -> bcrypt hash
    headers: dict[str, str] = field(default_factory=dict)


def _error(path: str, key: str, why: str) -> ConfigError:
    return ConfigError(f"web config {path}: field {key}: {why}")


def _mapping(path: str, key: str, value: Any, known: tuple[str, ...]) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _error(path, key, f"expected a mapping, got {type(value).__name__}")
    for k in value:
        if k not in known:
            raise _error(path, f"{key}.{k}" if key else str(k),
                         "not supported by pybpf exporter (refused rather than ignored)")
    return value


def read_web_config(path: str) -> WebConfig:
    """Parse and check the web config file; the TLS context is built (files read) here."""
    import yaml
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f)
    except OSError as e:
        raise ConfigError(f"web config {path}: {e.strerror}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"web config {path}: invalid YAML: {' '.join(str(e).split())}") from None
    top = _mapping(path, "", data, ("tls_server_config", "http_server_config", "basic_auth_users"))
    base = os.path.dirname(os.path.abspath(path))
    out = WebConfig()
    tls = _mapping(path, "tls_server_config", top.get("tls_server_config"),
                   ("cert_file", "key_file", "client_auth_type", "client_ca_file",
                    "min_version", "max_version"))
    http = _mapping(path, "http_server_config", top.get("http_server_config"), ("headers",))
    headers = http.get("headers") or {}
    if not isinstance(headers, dict):
        raise _error(path, "http_server_config.headers", "expected a mapping of header to value")
    out.headers = {str(k): str(v) for k, v in headers.items()}
    users = top.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise _error(path, "basic_auth_users", "expected a mapping of user to bcrypt hash")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise _error(path, f"basic_auth_users.{user}", "expected a bcrypt hash ($2y$...)")
    if users:
        import importlib.util
        if importlib.util.find_spec("bcrypt") is None:  # the exporter extra's dependency
            raise _error(path, "basic_auth_users", "checking bcrypt hashes needs the bcrypt "
                         "package (pip install 'pybpf[exporter]')")
    out.users = {str(u): h for u, h in users.items()}
    if tls:
        out.tls = _tls_context(path, base, tls)
    return out


def _tls_context(path: str, base: str, tls: dict) -> ssl.SSLContext:
    def file(key: str) -> str:
        value = tls.get(key)
        if not value:
            return ""
        return value if os.path.isabs(value) else os.path.join(base, value)
    cert, key = file("cert_file"), file("key_file")
    if not cert or not key:
        raise _error(path, "tls_server_config", "cert_file and key_file are both required")
    auth = tls.get("client_auth_type") or ""
    if auth not in CLIENT_AUTH:
        raise _error(path, "tls_server_config.client_auth_type",
                     f"{auth!r} is not supported (one of "
                     f"{', '.join(k for k in CLIENT_AUTH if k)}; client certificates taken "
                     "without verification are refused)")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise _error(path, "tls_server_config.cert_file", f"loading {cert} and {key}: {e}") \
            from None
    for k, attr in (("min_version", "minimum_version"), ("max_version", "maximum_version")):
        v = tls.get(k)
        if v:
            if v not in TLS_VERSIONS:
                raise _error(path, f"tls_server_config.{k}", f"unknown {v!r} "
                                                             f"(one of {', '.join(TLS_VERSIONS)})")
            setattr(ctx, attr, TLS_VERSIONS[v])
    ctx.verify_mode = CLIENT_AUTH[auth]
    ca = file("client_ca_file")
    if ca:
        try:
            ctx.load_verify_locations(ca)
        except (OSError, ssl.SSLError) as e:
            raise _error(path, "tls_server_config.client_ca_file", f"{ca}: {e}") from None
    elif auth in ("RequireAndVerifyClientCert", "VerifyClientCertIfGiven"):
        raise _error(path, "tls_server_config.client_ca_file",
                     f"client_auth_type {auth} needs client_ca_file")
    return ctx


class _Auth:
    """bcrypt checks of basic auth credentials, good answers remembered (bcrypt is slow on
    purpose; a scrape every few seconds must not pay it each time)."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.good: set[bytes] = set()
        self.lock = threading.Lock()

    def check(self, header: Optional[str]) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode() \
                .partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        token = hashlib.sha256(f"{user}\0{password}\0{hashed}".encode()).digest()
        with self.lock:
            if any(hmac.compare_digest(token, g) for g in self.good):
                return True
        import bcrypt
        if not bcrypt.checkpw(password.encode(), hashed.encode()):
            return False
        with self.lock:
            self.good.add(token)
        return True


def parse_listen(address: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (host "": every interface)."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ConfigError(f"--web.listen-address {address!r}: expected HOST:PORT, [IPv6]:PORT "
                          "or fd://N")
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host, int(port)


def listen(address: str) -> list[socket.socket]:
    """The listening socket(s) of one ``--web.listen-address``: ``HOST:PORT`` bound here, or
    ``fd://N``, systemd's N-th socket (ebpf_exporter's form, as go-systemd's listeners)."""
    if address.startswith("fd://"):
        index = address[5:]
        if not index.isdigit():
            raise ConfigError(f"--web.listen-address {address!r}: expected fd://N, N the "
                              "index of a socket passed by systemd (0 for the first)")
        from .systemd import activated
        return activated(int(index))
    if address.startswith("vsock://"):
        raise ConfigError(f"--web.listen-address {address!r}: vsock listeners are not "
                          "supported by pybpf exporter")
    host, port = parse_listen(address)
    try:
        if not host and socket.has_dualstack_ipv6():  # ":PORT": IPv4 and IPv6, as Go's
            sock = socket.create_server(("", port), family=socket.AF_INET6, backlog=128,
                                        dualstack_ipv6=True)
        else:
            sock = socket.create_server((host or "0.0.0.0", port), backlog=128,
                                        family=socket.AF_INET6 if ":" in host
                                        else socket.AF_INET)
    except OSError as e:
        raise ConfigError(f"--web.listen-address {address}: {e.strerror}") from None
    return [sock]


def listeners(addresses: list[str], systemd_socket: bool) -> list[socket.socket]:
    """Every address's socket, or (``--web.systemd-socket``, exporter-toolkit's flag) every
    socket systemd passed instead; all closed if one cannot be had."""
    if systemd_socket:
        from .systemd import activated
        return activated()
    out: list[socket.socket] = []
    try:
        for address in addresses:
            out += listen(address)
    except BaseException:
        for sock in out:
            sock.close()
        raise
    return out


def describe(sock: socket.socket) -> str:
    """``127.0.0.1:9435``, ``[::1]:9435``, or ``unix:PATH``."""
    name = sock.getsockname()
    if sock.family == socket.AF_INET6:
        return f"[{name[0]}]:{name[1]}"
    if sock.family == socket.AF_INET:
        return f"{name[0]}:{name[1]}"
    return f"unix:{name}" if isinstance(name, str) and name else "unix socket"


class Server(ThreadingHTTPServer):
    """An HTTP server on a listening socket made elsewhere (bound here, or passed by systemd)."""
    daemon_threads = True

    def __init__(self, sock: socket.socket, handler: type, tls: Optional[ssl.SSLContext]
                 ) -> None:
        self.tls = tls
        self.address_family = sock.family
        socketserver.BaseServer.__init__(self, sock.getsockname(), handler)
        self.socket = sock

    def get_request(self) -> tuple[Any, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:  # the handshake happens in the request's thread
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


def make_server(sock: socket.socket, web: WebConfig, metrics_path: str,
                metrics: Callable[[str], tuple[bytes, str]],
                maps: Optional[Callable[[], str]]) -> Server:
    """A server on listening ``sock`` for ``metrics(accept_header) -> (body, content type)``,
    and ``maps()`` at ``/maps`` when given."""
    auth = _Auth(web.users)
    index = (f"<html><head><title>pybpf exporter</title></head><body><h1>pybpf exporter"
             f"</h1><p><a href=\"{metrics_path}\">Metrics</a></p>" +
             ("<p><a href=\"/maps\">Maps</a></p>" if maps else "") + "</body></html>").encode()

    class Handler(BaseHTTPRequestHandler):
        server_version = "pybpf-exporter"

        def setup(self) -> None:
            super().setup()
            if isinstance(self.connection, ssl.SSLSocket):
                self.connection.settimeout(HANDSHAKE_TIMEOUT)
                self.connection.do_handshake()
                self.connection.settimeout(None)

        def handle(self) -> None:
            try:
                super().handle()
            except (ssl.SSLError, ConnectionError, socket.timeout):
                pass  # a client that failed the handshake or went away

        def _send(self, code: int, body: bytes, ctype: str, extra: Optional[dict] = None) -> None:
            gz = "gzip" in (self.headers.get("Accept-Encoding") or "") and len(body) > 1024
            if gz:
                body = gzip.compress(body, 6)
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if gz:
                self.send_header("Content-Encoding", "gzip")
            for k, v in {**web.headers, **(extra or {})}.items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_GET(self) -> None:
            if not auth.check(self.headers.get("Authorization")):
                self._send(401, b"Unauthorized\n", "text/plain; charset=utf-8",
                           {"WWW-Authenticate": "Basic"})
                return
            path = self.path.split("?", 1)[0]
            if path == metrics_path:
                try:
                    body, ctype = metrics(self.headers.get("Accept") or "")
                except Exception as e:  # one failing scrape must not end the server
                    self._send(500, f"error collecting metrics: {e}\n".encode(),
                               "text/plain; charset=utf-8")
                    return
                self._send(200, body, ctype)
            elif path == "/maps" and maps is not None:
                self._send(200, maps().encode(), "text/plain; charset=utf-8")
            elif path == "/":
                self._send(200, index, "text/html; charset=utf-8")
            else:
                self._send(404, b"404 page not found\n", "text/plain; charset=utf-8")

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass  # scrapes are not logged

    return Server(sock, Handler, web.tls)
