"""XDP on a veth pair between two private network namespaces: drops counted, then gone."""
from __future__ import annotations

import errno

import pytest

from pybpf.asm import DW, R0, R1, R2, assemble, atomic_add, exit_, ld_map_value, mov64_imm
from pybpf.errors import BPFError, UsageError
from pybpf.links import Link
from pybpf.links.xdp import XdpAttachment, attach_xdp, list_xdp
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import LinkType, XdpAction, XdpFlag
from tests.links.netfixtures import eventually, make_netns, netns, received, veth  # noqa: F401 (fixtures)


def count_and(counter: Map, verdict: int) -> bytes:
    """counter[0] += 1; return verdict."""
    return assemble([ld_map_value(R1, counter.fd, 0), mov64_imm(R2, 1),
                     atomic_add(DW, R1, R2, 0), mov64_imm(R0, verdict), exit_()])


@pytest.fixture
def counter():
    with Map.create("array", 4, 8, 1, name="xdp_count", key="I", value="Q") as m:
        yield m


@pytest.mark.parametrize("netlink_attach", [False, True], ids=["link", "netlink"])
@pytest.mark.parametrize("mode", ["skb", "native"])
def test_xdp_drop_is_counted_and_detaches(veth, counter, netlink_attach, mode):
    tx, rx = veth.udp_pair()
    assert received(tx, rx) == 5
    with Program.load("xdp", count_and(counter, XdpAction.DROP), name="xdp_drop") as prog:
        with veth.ns_b.entered():
            att = attach_xdp(prog, veth.b, mode=mode, netlink_attach=netlink_attach)
            shown = list_xdp(veth.b)[0]
        with att:
            assert isinstance(att, XdpAttachment if netlink_attach else Link)
            assert received(tx, rx) == 0
            assert counter[0] == 5
            want_mode = {"skb": "generic", "native": "driver"}[mode]
            assert shown.ifname == veth.b and shown.mode == want_mode
            assert shown.prog_ids == {want_mode: prog.id}
            if not netlink_attach:
                info = att.info()
                assert info.type == LinkType.XDP and info.prog_id == prog.id
                assert info.details["ifindex"] == shown.ifindex
        with veth.ns_b.entered():
            assert list_xdp() == [] and list_xdp(veth.b)[0].mode == "none"
    assert received(tx, rx) == 5 and counter[0] == 5


def test_xdp_pass_counts_and_lets_through(veth, counter):
    tx, rx = veth.udp_pair()
    with Program.load("xdp", count_and(counter, XdpAction.PASS), name="xdp_pass") as prog:
        with veth.ns_b.entered():
            link = attach_xdp(prog, veth.b)
        with link:
            assert received(tx, rx, 7) == 7 and counter[0] == 7


def test_pinned_xdp_link_stays_until_unpinned(veth, counter, pin_dir):
    tx, rx = veth.udp_pair()
    with Program.load("xdp", count_and(counter, XdpAction.DROP), name="xdp_pin") as prog:
        with veth.ns_b.entered():
            link = attach_xdp(prog, veth.b, XdpFlag.SKB_MODE)
        link.pin(pin_dir / "xdp")
        link.close()
        assert received(tx, rx) == 0
        Link.unpin(pin_dir / "xdp")
    assert eventually(lambda: received(tx, rx, 1) == 1)
    assert received(tx, rx) == 5


def test_xdp_errors(netns, counter):
    with Program.load("xdp", count_and(counter, XdpAction.PASS), name="xdp_err") as prog, \
            netns.entered():
        with pytest.raises(UsageError, match="no network interface named 'nope0'"):
            attach_xdp(prog, "nope0")
        with pytest.raises(UsageError, match="no network interface with index 999"):
            attach_xdp(prog, 999)
        with pytest.raises(UsageError, match="unknown XDP mode 'turbo'"):
            attach_xdp(prog, "lo", mode="turbo")
        with pytest.raises(BPFError, match="driver does not support this XDP mode.*mode='skb'"):
            attach_xdp(prog, "lo", mode="native")  # lo has no native XDP
        with attach_xdp(prog, "lo", mode="skb"):
            for netlink_attach in (False, True):
                with pytest.raises(BPFError, match=f"another XDP program is attached already "
                                                   f"\\(generic id {prog.id}\\)") as e:
                    attach_xdp(prog, "lo", mode="skb", netlink_attach=netlink_attach)
                assert e.value.errno in (errno.EBUSY, errno.EEXIST)
        with Program.load("sched_cls", count_and(counter, 0), name="not_xdp") as cls:
            with pytest.raises(UsageError, match="'not_xdp' is a sched_cls program; XDP of "
                                                 "interface lo .* takes xdp programs"):
                attach_xdp(cls, "lo")
        with pytest.raises(BPFError, match="no BPF link to pin"):
            with attach_xdp(prog, "lo", mode="skb", netlink_attach=True) as att:
                att.pin("/sys/fs/bpf/never")
