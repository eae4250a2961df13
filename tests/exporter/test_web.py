"""``--web.config.file`` (exporter-toolkit format): TLS with a certificate made here by
openssl, bcrypt basic auth, client certificates; settings it cannot honour are refused."""
from __future__ import annotations

import base64
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest

from pybpf.exporter.config import ConfigError
from pybpf.exporter.web import read_web_config


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")

    def make(name: str, cn: str, *sign: str) -> None:
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", f"/CN={cn}", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", str(d / f"{name}.key"), "-out", str(d / f"{name}.crt")],
                       check=True, capture_output=True)
    make("server", "127.0.0.1")
    make("client", "client")
    make("stranger", "stranger")
    return d


def client_context(certs, cert: str = "") -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "server.crt"))
    if cert:
        ctx.load_cert_chain(str(certs / f"{cert}.crt"), str(certs / f"{cert}.key"))
    return ctx


def basic(user: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_tls_and_basic_auth(example_dir, run_exporter, certs, tmp_path):
    import bcrypt
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs}/server.crt\n"
                   f"  key_file: {certs}/server.key\n  min_version: TLS12\n"
                   f"http_server_config:\n  headers:\n    X-Frame-Options: deny\n"
                   f"basic_auth_users:\n  alice: '{hashed}'\n")
    ctx = client_context(certs)
    exp = run_exporter(example_dir, "timers", "--web.config.file", str(web), scheme="https",
                       context=ctx)
    status, headers, _ = exp.get(context=ctx)
    assert status == 401 and headers["WWW-Authenticate"] == "Basic"
    assert exp.get(headers=basic("alice", "wrong"), context=ctx)[0] == 401
    assert exp.get(headers=basic("bob", "s3cret"), context=ctx)[0] == 401
    status, headers, body = exp.get(headers=basic("alice", "s3cret"), context=ctx)
    assert status == 200 and b"ebpf_exporter_hrtimer_expiries_total{" in body
    assert headers["X-Frame-Options"] == "deny"
    plain = exp.url.replace("https:", "http:")
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        urllib.request.urlopen(plain + "/metrics", timeout=5).read()


def test_client_certificates_verified(example_dir, run_exporter, certs, tmp_path):
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs}/server.crt\n"
                   f"  key_file: {certs}/server.key\n"
                   f"  client_auth_type: RequireAndVerifyClientCert\n"
                   f"  client_ca_file: {certs}/client.crt\n")
    good = client_context(certs, "client")
    exp = run_exporter(example_dir, "timers", "--web.config.file", str(web), scheme="https",
                       context=good)
    assert exp.get(context=good)[0] == 200
    for ctx in (client_context(certs), client_context(certs, "stranger")):
        with pytest.raises((urllib.error.URLError, ConnectionError, ssl.SSLError)):
            exp.get(context=ctx)


@pytest.mark.parametrize("text, message", [
    ("tls_server_config: {cert_file: a.crt}", "cert_file and key_file are both required"),
    ("tls_server_config: {cert_file: a, key_file: b, cipher_suites: [x]}",
     "field tls_server_config.cipher_suites: not supported by pybpf exporter"),
    ("tls_server_config: {cert_file: a, key_file: b, client_auth_type: RequireAnyClientCert}",
     "'RequireAnyClientCert' is not supported"),
    ("basic_auth_users: {alice: plain}", "field basic_auth_users.alice: expected a bcrypt hash"),
    ("http_server_config: {http2: true}", "field http_server_config.http2: not supported"),
])
def test_refused_web_configs(tmp_path, text, message):
    path = tmp_path / "web.yml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_web_config(str(path))
