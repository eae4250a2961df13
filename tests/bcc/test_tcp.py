"""bcc.tcp: state names from this kernel, checked against the states /proc/net/tcp shows
for real sockets (a listener, an established connection)."""
from __future__ import annotations

import socket

from pybpf.bcc import tcp


def _proc_state(port: int, local: bool = True) -> int:
    """The state number /proc/net/tcp gives the socket with local (or remote) ``port``."""
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f.readlines()[1:]]
    col = 1 if local else 2
    return next(int(r[3], 16) for r in rows if int(r[col].split(":")[1], 16) == port)


def test_states_of_real_sockets():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        assert tcp.state2str(_proc_state(port)) == "LISTEN"
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            with conn:
                assert tcp.state2str(_proc_state(client.getsockname()[1])) == "ESTABLISHED"
    states = tcp.tcp_states()
    assert len(states) >= 11 and states[7] == "CLOSE"
    assert tcp.state2str(200) == "200"


def test_flags():
    assert tcp.flags2str(tcp.TCPHDR_SYN | tcp.TCPHDR_ACK) == "SYN|ACK"
    assert tcp.flags2str(0xff) == "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR"
    assert tcp.flags2str(0) == ""


def test_tools_imports_resolve(tmp_path):
    """What BCC's tools import from bcc beyond BPF resolves under python3 -m pybpf.bcc."""
    import subprocess
    import sys
    script = tmp_path / "imports.py"
    script.write_text(
        "from bcc import BPF, USDT, USDTException, ArgString, StrcmpRewrite, utils, tcp\n"
        "from bcc import PerfType, PerfSWConfig, PerfHWConfig\n"
        "from bcc.exec import run_cmd, cmd_ready, cmd_exited\n"
        "from bcc.containers import filter_by_containers\n"
        "from bcc.syscall import syscall_name, syscalls\n"
        "from bcc.utils import printb\n"
        "printb(b'%s %s' % (tcp.state2str(10).encode(), syscall_name(0)))\n")
    out = subprocess.run([sys.executable, "-m", "pybpf.bcc", str(script)], capture_output=True,
                         text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "LISTEN read\n"
