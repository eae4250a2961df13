"""Netfilter BPF links in a private network namespace: a drop at LOCAL_IN, counted."""
from __future__ import annotations

import pytest

from pybpf import features
from pybpf.asm import DW, R0, R1, R2, assemble, atomic_add, exit_, ld_map_value, mov64_imm
from pybpf.errors import UnsupportedFeatureError, UsageError
from pybpf.links.netfilter import attach_netfilter
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, LinkType, NetfilterFlag, NfInetHook, NfProto, NfVerdict
from tests.links.netfixtures import make_netns, netns, received  # noqa: F401 (fixtures)


def count_and(counter: Map, verdict: int) -> bytes:
    return assemble([ld_map_value(R1, counter.fd, 0), mov64_imm(R2, 1),
                     atomic_add(DW, R1, R2, 0), mov64_imm(R0, verdict), exit_()])


@pytest.fixture
def counter():
    with Map.create("array", 4, 8, 1, name="nf_count", key="I", value="Q") as m:
        yield m


def load(counter: Map, verdict: int) -> Program:
    support = features.netfilter_link()
    if not support:
        with pytest.raises(UnsupportedFeatureError):
            Program.load("netfilter", count_and(counter, verdict),
                         expected_attach_type=AttachType.NETFILTER)
        pytest.skip(support.reason)
    return Program.load("netfilter", count_and(counter, verdict), name="nf_prog",
                        expected_attach_type=AttachType.NETFILTER)


def udp_pair_in(ns):
    import socket
    with ns.entered():
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    return tx, rx


@pytest.mark.parametrize("hook", [NfInetHook.LOCAL_IN, NfInetHook.LOCAL_OUT])
def test_netfilter_drop_counts_in_its_namespace_only(netns, counter, hook):
    tx, rx = udp_pair_in(netns)
    with tx, rx, load(counter, NfVerdict.DROP) as prog:
        with netns.entered():
            link = attach_netfilter(prog, NfProto.IPV4, hook, priority=-50,
                                    flags=NetfilterFlag.IP_DEFRAG if hook == NfInetHook.LOCAL_IN
                                    else 0)
        with link:
            info = link.info()
            assert info.type == LinkType.NETFILTER and info.prog_id == prog.id
            assert (info.details["pf"], info.details["hooknum"], info.details["priority"]) == \
                (NfProto.IPV4, hook, -50)
            if hook == NfInetHook.LOCAL_OUT:  # dropped on the way out: the sender is told
                for _ in range(4):
                    with pytest.raises(PermissionError):
                        tx.sendto(b"x", rx.getsockname())
            else:
                assert received(tx, rx, 4) == 0
            assert counter[0] == 4
        assert received(tx, rx, 4) == 4 and counter[0] == 4


def test_netfilter_accept_counts(netns, counter):
    tx, rx = udp_pair_in(netns)
    with tx, rx, load(counter, NfVerdict.ACCEPT) as prog:
        with netns.entered(), attach_netfilter(prog, hooknum=NfInetHook.LOCAL_IN):
            assert received(tx, rx, 3) == 3 and counter[0] == 3


def test_netfilter_errors(counter):
    with load(counter, NfVerdict.ACCEPT) as prog:
        with pytest.raises(UsageError, match="NFPROTO_IPV4 or NFPROTO_IPV6, not 7"):
            attach_netfilter(prog, NfProto.BRIDGE)
        with pytest.raises(UsageError, match="hook number must be 0..4"):
            attach_netfilter(prog, hooknum=9)
        with pytest.raises(UsageError, match="strictly between INT_MIN and INT_MAX"):
            attach_netfilter(prog, priority=-(1 << 31))
