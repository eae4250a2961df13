"""sk_lookup steering and flow dissector attachment in a private network namespace."""
from __future__ import annotations

import os
import socket

import pytest

from pybpf import features
from pybpf.asm import (FP, R0, R1, R2, R3, R6, R7, W, add64_imm, assemble, call, exit_, jeq_imm,
                       jne_imm, label, ld_map_fd, ldx, mov64_imm, mov64_reg, st)
from pybpf.errors import UsageError
from pybpf.links import Link
from pybpf.links.attach import ProgAttachment
from pybpf.links.netns import attach_flow_dissector, attach_sk_lookup, query_netns
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, LinkType, SkAction
from tests.links.netfixtures import make_netns, netns  # noqa: F401 (fixtures)

LOCAL_PORT = 60  # offsetof(struct bpf_sk_lookup, local_port), host byte order


def steer(sockmap: Map, port: int) -> bytes:
    """Connections to ``port`` go to the socket in sockmap[0]."""
    return assemble([
        mov64_reg(R6, R1),
        ldx(W, R2, R6, LOCAL_PORT),
        jne_imm(R2, port, "pass"),
        st(W, FP, -4, 0),
        ld_map_fd(R1, sockmap.fd), mov64_reg(R2, FP), add64_imm(R2, -4),
        call("map_lookup_elem"),
        jeq_imm(R0, 0, "pass"),
        mov64_reg(R7, R0),
        mov64_reg(R1, R6), mov64_reg(R2, R7), mov64_imm(R3, 0),
        call("sk_assign"),
        mov64_reg(R1, R7),
        call("sk_release"),
        label("pass"),
        mov64_imm(R0, SkAction.PASS),
        exit_(),
    ])


def free_port(sock_type: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, sock_type) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_sk_lookup_steers_connections(netns):
    support = features.attach_type(AttachType.SK_LOOKUP)
    if not support:
        pytest.skip(support.reason)
    with netns.entered():
        server = socket.create_server(("127.0.0.1", 0))
        other = free_port()
    with server, Map.create("sockmap", 4, 8, 1, name="steer_to") as socks, \
            Program.load("sk_lookup", steer(socks, other), name="steer",
                         expected_attach_type=AttachType.SK_LOOKUP) as prog:
        socks[0] = server.fileno().to_bytes(8, "little")
        with netns.entered():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", other), timeout=2)
        with attach_sk_lookup(prog, netns.name) as link:
            info = link.info()
            assert info.type == LinkType.NETNS and info.prog_id == prog.id
            assert info.details["attach_type"] == AttachType.SK_LOOKUP
            assert info.details["netns_ino"] == os.stat(netns.path).st_ino
            assert query_netns(AttachType.SK_LOOKUP, netns.name).prog_ids == (prog.id,)
            with netns.entered():
                client = socket.create_connection(("127.0.0.1", other), timeout=2)
            peer, _ = server.accept()
            with client, peer:
                client.sendall(b"steered")
                assert peer.recv(16) == b"steered"
                assert peer.getsockname()[1] == other  # the address the client dialled
        with netns.entered():
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection(("127.0.0.1", other), timeout=2)
        # the host's namespace never saw the program
        assert prog.id not in query_netns(AttachType.SK_LOOKUP).prog_ids


FLOW_DISSECTOR_OK = assemble([mov64_imm(R0, 0), exit_()])  # BPF_OK: keys as they are


@pytest.mark.parametrize("link", [True, False], ids=["link", "prog_attach"])
def test_flow_dissector_attach_and_query(netns, link):
    with Program.load("flow_dissector", FLOW_DISSECTOR_OK, name="dissect") as prog:
        with netns.entered():
            att = attach_flow_dissector(prog, link=link)
        with att:
            assert isinstance(att, Link if link else ProgAttachment)
            assert query_netns(AttachType.FLOW_DISSECTOR, netns.path).prog_ids == (prog.id,)
            if link:
                assert att.info().details["attach_type"] == AttachType.FLOW_DISSECTOR
        with netns.entered():
            assert query_netns(AttachType.FLOW_DISSECTOR).prog_ids == ()


def test_netns_errors(netns):
    with Program.load("flow_dissector", FLOW_DISSECTOR_OK, name="dissect") as prog:
        with pytest.raises(UsageError, match="no network namespace /var/run/netns/pybpf-none"):
            attach_flow_dissector(prog, "pybpf-none")
        with pytest.raises(UsageError, match="calling thread's network namespace"):
            attach_flow_dissector(prog, netns.name, link=False)
        with pytest.raises(UsageError, match="'dissect' is a flow_dissector program; sk_lookup "
                                             ".* takes sk_lookup programs"):
            attach_sk_lookup(prog, netns.name)
