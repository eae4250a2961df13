"""TC on a veth pair between two private network namespaces: tcx links and cls_bpf filters."""
from __future__ import annotations

import pytest

from pybpf import features
from pybpf.asm import DW, R0, R1, R2, assemble, atomic_add, exit_, ld_map_value, mov64_imm
from pybpf.errors import BPFError, UnsupportedFeatureError, UsageError
from pybpf.links import Link
from pybpf.links.tc import TcFilterAttachment, attach_tc, attach_tc_filter, attach_tcx, list_tc
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, LinkType, TcAction
from tests.links.netfixtures import make_netns, netns, received, veth  # noqa: F401 (fixtures)

TCX_NEXT = -1  # tcx: go on with the next program


def count_and(counter: Map, verdict: int, slot: int = 0) -> bytes:
    return assemble([ld_map_value(R1, counter.fd, 8 * slot), mov64_imm(R2, 1),
                     atomic_add(DW, R1, R2, 0), mov64_imm(R0, verdict), exit_()])


@pytest.fixture
def counter():
    with Map.create("array", 4, 16, 1, name="tc_count", key="I") as m:
        yield m


def counts(m: Map) -> tuple[int, int]:
    raw = m[0]
    return int.from_bytes(raw[:8], "little"), int.from_bytes(raw[8:], "little")


def require_tcx() -> None:
    support = features.attach_type(AttachType.TCX_INGRESS)
    if not support:
        pytest.skip(support.reason)


def test_tcx_or_a_clear_error_naming_the_alternative(netns, counter):
    support = features.attach_type(AttachType.TCX_EGRESS)
    with Program.load("sched_cls", count_and(counter, TcAction.OK), name="tc_ok") as prog, \
            netns.entered():
        if support:
            with attach_tcx(prog, "lo", "egress") as link:
                assert link.info().type == LinkType.TCX
        else:
            assert "Linux 6.6" in support.reason and "attach_tc" in support.reason
            with pytest.raises(UnsupportedFeatureError, match="tcx hooks are not supported"):
                attach_tcx(prog, "lo", "egress")


@pytest.mark.parametrize("how", ["tcx", "cls_bpf"])
@pytest.mark.parametrize("direction", ["ingress", "egress"])
def test_tc_shot_is_counted_and_detaches(veth, counter, how, direction):
    if how == "tcx":
        require_tcx()
    tx, rx = veth.udp_pair()
    ns, dev = (veth.ns_b, veth.b) if direction == "ingress" else (veth.ns_a, veth.a)
    with Program.load("sched_cls", count_and(counter, TcAction.SHOT), name="tc_shot") as prog:
        with ns.entered():
            att = (attach_tcx if how == "tcx" else attach_tc_filter)(prog, dev, direction)
            shown = list_tc(dev)
        with att:
            assert received(tx, rx) == 0 and counts(counter)[0] == 5
            assert [(p.direction, p.kind, p.prog_id, p.name) for p in shown] == \
                [(direction, how, prog.id, "tc_shot")]
            if how == "tcx":
                assert isinstance(att, Link)
                info = att.info()
                assert info.type == LinkType.TCX and info.prog_id == prog.id
                assert info.details["ifindex"] == shown[0].ifindex
                assert info.details["attach_type"] == AttachType[f"TCX_{direction.upper()}"]
                assert shown[0].link_id == att.id
            else:
                assert isinstance(att, TcFilterAttachment)
                assert shown[0].direct_action and shown[0].prio == 1
        with ns.entered():
            assert list_tc(dev) == []
    assert received(tx, rx) == 5 and counts(counter)[0] == 5


def test_tcx_order_before_after(veth, counter):
    require_tcx()
    tx, rx = veth.udp_pair()
    with Program.load("sched_cls", count_and(counter, TCX_NEXT, 0), name="first") as first, \
            Program.load("sched_cls", count_and(counter, TcAction.SHOT, 1), name="last") as last:
        with veth.ns_b.entered():
            l_last = attach_tcx(last, veth.b)
            l_first = attach_tcx(first, veth.b, before=l_last)
            order = [p.name for p in list_tc(veth.b)]
        with l_last, l_first:
            assert order == ["first", "last"]
            assert received(tx, rx, 3) == 0 and counts(counter) == (3, 3)
            l_last.close()
            assert received(tx, rx, 3) == 3 and counts(counter) == (6, 3)


def test_attach_tc_picks_tcx_here(veth, counter):
    with Program.load("sched_cls", count_and(counter, TcAction.OK), name="tc_ok") as prog:
        with veth.ns_b.entered():
            with attach_tc(prog, veth.b) as att:
                assert isinstance(att, Link) == bool(features.attach_type(AttachType.TCX_INGRESS))
                tx, rx = veth.udp_pair()
                assert received(tx, rx) == 5 and counts(counter)[0] == 5


def test_tc_errors(netns, counter):
    with Program.load("xdp", count_and(counter, 2), name="xdp_prog") as xdp, netns.entered():
        with pytest.raises(UsageError, match="no network interface named 'nope0'"):
            attach_tcx(xdp, "nope0")
        with pytest.raises(UsageError, match="'xdp_prog' is a xdp program; tcx ingress of "
                                             "interface lo .* takes sched_cls programs"):
            attach_tcx(xdp, "lo")
        with pytest.raises(UsageError, match="takes sched_cls programs"):
            attach_tc_filter(xdp, "lo")
        with pytest.raises(UsageError, match="'ingress' or 'egress', not 'sideways'"):
            attach_tcx(xdp, "lo", "sideways")
    with Program.load("sched_cls", count_and(counter, 0), name="cls") as cls, netns.entered():
        with attach_tc_filter(cls, "lo") as att:
            with pytest.raises(BPFError, match="rtnetlink on .* filter prio 1 handle 1"):
                attach_tc_filter(cls, "lo")  # the same prio/handle again
            with pytest.raises(BPFError, match="nothing to pin"):
                att.pin("/sys/fs/bpf/never")
