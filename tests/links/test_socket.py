"""Socket filters on a loopback UDP pair; an sk_msg verdict on a sockmap of TCP sockets."""
from __future__ import annotations

import errno
import socket

import pytest

from pybpf.asm import DW, R0, R1, R2, assemble, atomic_add, exit_, ld_map_value, mov64_imm
from pybpf import features
from pybpf.errors import UnsupportedFeatureError, UsageError
from pybpf.links.attach import ProgAttachment
from pybpf.links.socket import attach_sockmap, attach_socket_filter, detach_socket_filter
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, LinkType, SkAction
from tests.links.netfixtures import make_netns, netns, received  # noqa: F401 (fixtures)


def count_and(counter: Map, verdict: int) -> bytes:
    return assemble([ld_map_value(R1, counter.fd, 0), mov64_imm(R2, 1),
                     atomic_add(DW, R1, R2, 0), mov64_imm(R0, verdict), exit_()])


@pytest.fixture
def counter():
    with Map.create("array", 4, 8, 1, name="sock_count", key="I", value="Q") as m:
        yield m


@pytest.fixture
def udp_pair():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(0.3)
    with rx, tx:
        yield tx, rx


def test_socket_filter_drops_and_detaches(udp_pair, counter):
    tx, rx = udp_pair
    with Program.load("socket_filter", count_and(counter, 0), name="drop_all") as prog:
        attach_socket_filter(prog, rx)
    # the socket keeps the program loaded after the Program closed
    assert received(tx, rx, 4) == 0 and counter[0] == 4
    detach_socket_filter(rx)
    assert received(tx, rx, 4) == 4 and counter[0] == 4
    with pytest.raises(OSError, match="SO_DETACH_BPF") as e:
        detach_socket_filter(rx)  # nothing attached any more
    assert e.value.errno == errno.ENOENT


def test_socket_filter_by_fd_keeps_everything(udp_pair, counter):
    tx, rx = udp_pair
    with Program.load("socket_filter", count_and(counter, 0xFFFF), name="keep_all") as prog:
        attach_socket_filter(prog, rx.fileno())
    assert received(tx, rx, 3) == 3 and counter[0] == 3


def test_socket_filter_errors(udp_pair, counter):
    tx, rx = udp_pair
    with Program.load("xdp", count_and(counter, 2), name="xdp_prog") as xdp:
        with pytest.raises(UsageError, match="'xdp_prog' is a xdp program; SO_ATTACH_BPF takes "
                                             "socket_filter programs"):
            attach_socket_filter(xdp, rx)


@pytest.mark.parametrize("link", [False, True], ids=["prog_attach", "link"])
def test_sk_msg_verdict_on_sockmap_drops_sends(netns, counter, link):
    if link and not features.sockmap_link():
        with Map.create("sockmap", 4, 4, 1) as socks, \
                Program.load("sk_msg", count_and(counter, SkAction.PASS)) as prog:
            with pytest.raises(UnsupportedFeatureError, match="Linux 6.10"):
                attach_sockmap(prog, socks, "sk_msg_verdict", link=True)
        pytest.skip(features.sockmap_link().reason)
    with netns.entered():
        server = socket.create_server(("127.0.0.1", 0))
        client = socket.create_connection(server.getsockname())
    peer, _ = server.accept()
    with server, client, peer, \
            Map.create("sockmap", 4, 4, 2, name="socks") as socks, \
            Program.load("sk_msg", count_and(counter, SkAction.DROP), name="msg_drop") as prog:
        client.sendall(b"before")
        assert peer.recv(16) == b"before"
        with attach_sockmap(prog, socks, "sk_msg_verdict", link=link) as att:
            if link:
                info = att.info()
                assert info.type == LinkType.SOCKMAP and info.prog_id == prog.id
                assert info.details["map_id"] == socks.id
                assert info.details["attach_type"] == AttachType.SK_MSG_VERDICT
            else:
                assert isinstance(att, ProgAttachment)
            socks[0] = client.fileno().to_bytes(4, "little")
            with pytest.raises(OSError) as e:
                client.send(b"dropped")
            assert e.value.errno == errno.EACCES and counter[0] == 1
            del socks[0]
            client.sendall(b"after")
            assert peer.recv(16) == b"after"
        with pytest.raises(UsageError, match="not a sockmap attach type"):
            attach_sockmap(prog, socks, "connect4")
    with Map.create("array", 4, 4, 1) as arr, \
            Program.load("sk_msg", count_and(counter, SkAction.PASS)) as prog:
        with pytest.raises(UsageError, match="is a array map; sk_msg_verdict programs attach to "
                                             "sockmap or sockhash maps"):
            attach_sockmap(prog, arr, "sk_msg_verdict")
