"""Where the exporter listens: several ``--web.listen-address``, sockets passed by systemd
(``--web.systemd-socket`` as exporter-toolkit, ``fd://N`` as ebpf_exporter) through real
descriptor passing and systemd's own ``systemd-socket-activate``, TLS and basic auth on them,
``READY=1`` to ``$NOTIFY_SOCKET``, and the one-line refusals."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
from typing import Iterator

import pytest

from .conftest import ExporterProcess, exporter_command, free_port, wait_http
from .test_web import basic, certs, client_context  # noqa: F401 (certs: a fixture)

# A launcher that puts the given descriptors at 3, 4, ... and sets LISTEN_FDS and LISTEN_PID
# for its own pid, which the exporter keeps by exec (what systemd does before exec).
LAUNCH = """import fcntl, os, sys
fds = [int(x) for x in sys.argv[1].split(",")]
moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]   # out of 3, 4, ...
for i, fd in enumerate(moved):
    os.dup2(fd, 3 + i)          # inheritable
for fd in set(fds + moved) - set(range(3, 3 + len(fds))):
    os.close(fd)
os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS=str(len(fds)))
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


@pytest.fixture
def spawn() -> Iterator:
    """``spawn(argv, pass_fds=(), env=None)``: a process stopped (SIGTERM) after the test."""
    procs: list[ExporterProcess] = []

    def start(argv: list[str], pass_fds=(), env=None) -> ExporterProcess:
        proc = subprocess.Popen(argv, pass_fds=pass_fds, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **(env or {})})
        exp = ExporterProcess(proc, "")
        procs.append(exp)
        return exp

    try:
        yield start
    finally:
        for exp in procs:
            exp.stop()


def activated_command(fds: list[int], config_dir, names: str, *extra: str) -> list[str]:
    """The exporter's command run by LAUNCH with ``fds`` passed (its interpreter's argv)."""
    return [sys.executable, "-c", LAUNCH, ",".join(map(str, fds)),
            *exporter_command(config_dir, names, *extra)[1:]]


def http_get(sock_family: int, address, path: str = "/metrics", timeout: float = 60) -> bytes:
    """A raw HTTP/1.0 GET (works on unix sockets too): the whole response."""
    with socket.socket(sock_family, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(address)
        s.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def wait_answer(family: int, address, proc: subprocess.Popen, timeout: float = 60) -> bytes:
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            return http_get(family, address)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_several_listen_addresses(example_dir, spawn):
    ports = [free_port(), free_port()]
    args = [a for p in ports for a in ("--web.listen-address", f"127.0.0.1:{p}")]
    exp = spawn(exporter_command(example_dir, "timers", *args))
    for port in ports:
        wait_http(f"http://127.0.0.1:{port}/", 60, exp.proc)
        assert b"ebpf_exporter_enabled_configs{name=\"timers\"} 1.0" in \
            http_get(socket.AF_INET, ("127.0.0.1", port))
    code, err = exp.stop()
    assert code == 0
    assert all(f"listening on http://127.0.0.1:{p}/metrics" in err for p in ports), err


def test_systemd_socket_flag_serves_every_passed_socket(example_dir, spawn, tmp_path):
    tcp = socket.create_server(("127.0.0.1", 0))
    port = tcp.getsockname()[1]
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(tmp_path / "exporter.sock")
    unix.bind(path)
    unix.listen()
    try:
        exp = spawn(activated_command([tcp.fileno(), unix.fileno()], example_dir, "timers",
                                      "--web.systemd-socket",
                                      "--web.listen-address", "127.0.0.1:1"),  # not used
                    pass_fds=(tcp.fileno(), unix.fileno()))
    finally:
        tcp.close()     # the exporter holds its copies
        unix.close()
    body = wait_answer(socket.AF_UNIX, path, exp.proc)
    assert body.startswith(b"HTTP/1.0 200") and b"ebpf_exporter_hrtimer_expiries_total{" in body
    assert http_get(socket.AF_INET, ("127.0.0.1", port)).startswith(b"HTTP/1.0 200")
    with pytest.raises(OSError):    # the listen address is not used with the flag
        http_get(socket.AF_INET, ("127.0.0.1", 1), timeout=5)
    code, err = exp.stop()
    assert code == 0 and f"listening on http://127.0.0.1:{port}/metrics" in err and \
        f"listening on http://unix:{path}/metrics" in err, err


def test_fd_address_through_systemd_socket_activate(example_dir, spawn, certs, tmp_path):
    tool = shutil.which("systemd-socket-activate")
    if tool is None:
        pytest.fail("systemd-socket-activate is not installed: `apt-get install systemd`")
    import bcrypt
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(f"tls_server_config:\n  cert_file: {certs}/server.crt\n"
                   f"  key_file: {certs}/server.key\nbasic_auth_users:\n  bob: '{hashed}'\n")
    port = free_port()
    exp = spawn([tool, "-l", f"127.0.0.1:{port}",
                 *exporter_command(example_dir, "timers", "--web.listen-address", "fd://0",
                                   "--web.config.file", str(web))])
    exp.url = f"https://127.0.0.1:{port}"
    ctx = client_context(certs)
    # the first connection is what makes systemd-socket-activate start the exporter; until
    # the tool listens, connections are refused
    deadline = time.monotonic() + 30
    while True:
        try:
            status, _, _ = exp.get(context=ctx)
            break
        except urllib.error.URLError as e:
            if not isinstance(e.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    assert status == 401
    status, _, body = exp.get(headers=basic("bob", "pw"), context=ctx)
    assert status == 200 and b"ebpf_exporter_hrtimer_expiries_total{" in body
    code, err = exp.stop()
    assert code == 0 and f"listening on https://127.0.0.1:{port}/metrics" in err, err


def test_ready_notification(example_dir, spawn, tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind(path)
        s.settimeout(60)
        port = free_port()
        exp = spawn(exporter_command(example_dir, "timers", "--web.listen-address",
                                     f"127.0.0.1:{port}"), env={"NOTIFY_SOCKET": path})
        messages = []
        while not any(m.startswith("READY=1") for m in messages):
            messages.append(s.recv(4096).decode())
        assert messages[0] == "STATUS=parsing config..."
        assert messages[-1].startswith("READY=1\nSTATUS=ready with 1 configs loaded in ")
        # ready means served
        assert http_get(socket.AF_INET, ("127.0.0.1", port)).startswith(b"HTTP/1.0 200")
        exp.stop()
        assert s.recv(4096) == b"STOPPING=1"


@pytest.mark.parametrize("args, env, message", [
    (["--web.systemd-socket"], {}, "--web.systemd-socket: no sockets passed by systemd socket "
                                   "activation"),
    (["--web.listen-address", "fd://0"], {"LISTEN_PID": "1", "LISTEN_FDS": "1"},
     "--web.listen-address fd://0: no sockets passed"),     # another process's sockets
    (["--web.listen-address", "fd://x"], {}, "expected fd://N"),
    (["--web.listen-address", "vsock://:9435"], {}, "vsock listeners are not supported"),
    (["--web.listen-address", "127.0.0.1"], {}, "expected HOST:PORT"),
    (["--config.skip-cache-size", "-1"], {}, "--config.skip-cache-size -1: must be >= 0"),
])
def test_refusals(example_dir, args, env, message):
    out = subprocess.run(exporter_command(example_dir, "timers", *args), capture_output=True,
                         text=True, env={**os.environ, **env}, timeout=120)
    assert out.returncode != 0
    assert message in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_fd_index_past_the_passed_sockets(example_dir, spawn):
    sock = socket.create_server(("127.0.0.1", 0))
    try:
        exp = spawn(activated_command([sock.fileno()], example_dir, "timers",
                                      "--web.listen-address", "fd://1"),
                    pass_fds=(sock.fileno(),))
    finally:
        sock.close()
    exp.proc.wait(120)
    code, err = exp.stop()
    assert code != 0 and "fd://1: only 1 descriptor(s) passed (fd://0 to fd://0)" in err, err
