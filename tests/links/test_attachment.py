"""The Attachment protocol: every attachment kind this kernel has, detached through it.

Each case attaches a counting (or denying) program, checks that it runs, goes through
``info()``, ``pin()`` and ``detach()`` of the protocol, and checks that the kernel stopped
running the program (and, for links released by ``detach()``, that the link id is gone).
"""
from __future__ import annotations

import os

import pytest

from pybpf import features
from pybpf.asm import DW, R0, R1, R2, assemble, atomic_add, exit_, ld_map_value, mov64_imm
from pybpf.errors import BPFError
from pybpf.links import (Attachment, Link, LinkGroup, PerfEventAttachment, attach_cgroup,
                         attach_raw_tracepoint, attach_socket_filter, attach_tc_filter,
                         attach_tcx, attach_tracepoint, attach_xdp, list_xdp, query_cgroup)
from pybpf.links import btf_tracing
from pybpf.links.attach import ProgAttachment
from pybpf.links.iter import IterLink, attach_iter
from pybpf.links.netns import attach_flow_dissector, query_netns
from pybpf.links.socket import SocketFilterAttachment
from pybpf.links.tc import TcFilterAttachment, list_tc
from pybpf.links.xdp import XdpAttachment
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, XdpAction
from tests.links.netfixtures import (cgroup, cgroup2_root, make_netns, netns,  # noqa: F401
                                     received, veth)
from tests.links.progs import count_per_tgid, run_children
from tests.links.test_iter import task_iter_insns
from tests.links.test_netns import FLOW_DISSECTOR_OK

NO_PIN = "no BPF link to pin|nothing to pin|held by its socket"


def count_and(counter: Map, verdict: int) -> bytes:
    """counter[0] += 1; return verdict."""
    return assemble([ld_map_value(R1, counter.fd, 0), mov64_imm(R2, 1),
                     atomic_add(DW, R1, R2, 0), mov64_imm(R0, verdict), exit_()])


@pytest.fixture
def counter():
    with Map.create("array", 4, 8, 1, name="att_count", key="I", value="Q") as m:
        yield m


def through_protocol(att: object, prog: Program, pin_dir, pinnable: bool) -> None:
    """``att`` is an Attachment reporting ``prog``; pinning works or says why not."""
    assert isinstance(att, Attachment)
    assert att.info().prog_id == prog.id
    assert not att.closed
    if pinnable:
        att.pin(pin_dir / "att")
        os.unlink(pin_dir / "att")  # so that detach releases a closed link's last reference
    else:
        with pytest.raises(BPFError, match=NO_PIN):
            att.pin(pin_dir / "att")
        assert not (pin_dir / "att").exists()


def link_exists(link_id: int) -> bool:
    return link_id in Link.ids()


@pytest.mark.usefixtures("tracefs")
@pytest.mark.parametrize("force_ioctl", [False, True], ids=["perf_link", "ioctl"])
def test_tracepoint(counts, pin_dir, force_ioctl):
    with Program.load("tracepoint", count_per_tgid(counts.fd), name="att_tp") as prog:
        att = attach_tracepoint(prog, "syscalls", "sys_enter_execve", force_ioctl=force_ioctl)
        with att:
            through_protocol(att, prog, pin_dir, isinstance(att, Link))
            link_id = att.info().id if isinstance(att, Link) else 0
            assert isinstance(att, PerfEventAttachment) == (force_ioctl or not features.perf_link())
            assert [counts.get(pid) for pid in run_children(2)] == [1, 1]
            att.detach()
            assert all(pid not in counts for pid in run_children(2))
            if link_id:
                assert not link_exists(link_id)


def test_raw_tracepoint_link_is_released_by_detach(counts, pin_dir):
    with Program.load("raw_tracepoint", count_per_tgid(counts.fd), name="att_rawtp") as prog:
        with attach_raw_tracepoint(prog, "sched_process_exec") as link:
            through_protocol(link, prog, pin_dir, True)
            link_id = link.info().id
            assert [counts.get(pid) for pid in run_children(2)] == [1, 1]
            link.detach()
            assert link.closed and not link_exists(link_id)
            assert all(pid not in counts for pid in run_children(2))


def test_link_held_elsewhere_is_not_detached_and_stays_usable(counts, pin_dir):
    with Program.load("raw_tracepoint", count_per_tgid(counts.fd)) as prog:
        with attach_raw_tracepoint(prog, "sched_process_exec") as link:
            link.pin(pin_dir / "held")
            try:
                with pytest.raises(BPFError, match="a pin or another fd holds it"):
                    link.detach()
                assert not link.closed and link.info().prog_id == prog.id  # still ours
            finally:
                os.unlink(pin_dir / "held")
            link.detach()
            assert all(pid not in counts for pid in run_children(2))


def test_link_group(counts, pin_dir):
    with Program.load("raw_tracepoint", count_per_tgid(counts.fd), name="att_group") as prog:
        group = LinkGroup([attach_raw_tracepoint(prog, "sched_process_exec"),
                           attach_raw_tracepoint(prog, "sched_process_exec")], "two")
        with group:
            assert isinstance(group, Attachment)
            info = group.info()
            assert info.prog_id == prog.id and len(info.members) == 2
            ids = [m.id for m in info.members]  # type: ignore[attr-defined]
            group.pin(pin_dir / "group")
            assert sorted(os.listdir(pin_dir / "group")) == ["0", "1"]
            for name in ("0", "1"):
                os.unlink(pin_dir / "group" / name)
            os.rmdir(pin_dir / "group")
            assert [counts.get(pid) for pid in run_children(2)] == [2, 2]  # both run
            group.detach()
            assert group.closed and not any(link_exists(i) for i in ids)
            assert all(pid not in counts for pid in run_children(2))


def test_link_group_pin_is_undone_when_a_member_cannot_be_pinned(counts, pin_dir, tracefs):
    with Program.load("tracepoint", count_per_tgid(counts.fd)) as tp, \
            Program.load("raw_tracepoint", count_per_tgid(counts.fd)) as raw:
        with LinkGroup([attach_raw_tracepoint(raw, "sched_process_exec"),
                        attach_tracepoint(tp, "syscalls", "sys_enter_execve",
                                          force_ioctl=True)]) as group:
            with pytest.raises(BPFError, match=NO_PIN):
                group.pin(pin_dir / "group")
            assert not (pin_dir / "group").exists()


CONNECT = "import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9))\n" \
          "except OSError as e:\n    print(e.errno)"


@pytest.mark.parametrize("link", [True, False], ids=["link", "prog_attach"])
def test_cgroup(cgroup, pin_dir, link):
    if not features.attach_type(AttachType.CGROUP_INET4_CONNECT):
        pytest.skip(features.attach_type(AttachType.CGROUP_INET4_CONNECT).reason)
    refused, denied = cgroup.run(CONNECT), "1"  # ECONNREFUSED without the program, EPERM
    with Program.load("cgroup_sock_addr", assemble([mov64_imm(R0, 0), exit_()]),
                      name="att_deny", expected_attach_type=AttachType.CGROUP_INET4_CONNECT
                      ) as prog:
        with attach_cgroup(prog, cgroup.path, "connect4", link=link) as att:
            assert isinstance(att, Link if link else ProgAttachment)
            through_protocol(att, prog, pin_dir, link)
            assert cgroup.run(CONNECT) == denied != refused
            att.detach()  # BPF_LINK_DETACH / BPF_PROG_DETACH
            assert query_cgroup(cgroup.path, "connect4").programs == ()
            assert cgroup.run(CONNECT) == refused


@pytest.mark.parametrize("netlink_attach", [False, True], ids=["link", "netlink"])
def test_xdp(veth, counter, pin_dir, netlink_attach):
    tx, rx = veth.udp_pair()
    with Program.load("xdp", count_and(counter, XdpAction.DROP), name="att_xdp") as prog:
        with veth.ns_b.entered():
            att = attach_xdp(prog, veth.b, mode="skb", netlink_attach=netlink_attach)
        with att:
            assert isinstance(att, XdpAttachment if netlink_attach else Link)
            through_protocol(att, prog, pin_dir, not netlink_attach)
            assert received(tx, rx) == 0 and counter[0] == 5
            att.detach()
            with veth.ns_b.entered():
                assert list_xdp(veth.b)[0].mode == "none"
            assert received(tx, rx) == 5 and counter[0] == 5


@pytest.mark.parametrize("kind", ["tcx", "filter"])
def test_tc(veth, counter, pin_dir, kind):
    if kind == "tcx" and not features.attach_type(AttachType.TCX_INGRESS):
        pytest.skip(features.attach_type(AttachType.TCX_INGRESS).reason)
    tx, rx = veth.udp_pair()
    with Program.load("sched_cls", count_and(counter, 2), name="att_tc") as prog:  # TC_ACT_SHOT
        with veth.ns_b.entered():
            att = attach_tcx(prog, veth.b) if kind == "tcx" else attach_tc_filter(prog, veth.b)
        with att:
            assert isinstance(att, Link if kind == "tcx" else TcFilterAttachment)
            through_protocol(att, prog, pin_dir, kind == "tcx")
            assert received(tx, rx) == 0 and counter[0] == 5
            att.detach()
            with veth.ns_b.entered():
                assert all(p.prog_id != prog.id for p in list_tc(veth.b))
            assert received(tx, rx) == 5 and counter[0] == 5


def test_socket_filter(counter, pin_dir):
    import socket
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with rx, tx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        with Program.load("socket_filter", count_and(counter, 0), name="att_sock") as prog:
            with attach_socket_filter(prog, rx) as att:
                assert isinstance(att, SocketFilterAttachment)
                through_protocol(att, prog, pin_dir, False)
                assert received(tx, rx, 3) == 0 and counter[0] == 3
                att.detach()
                assert att.closed
                assert received(tx, rx, 3) == 3 and counter[0] == 3


def test_iterator_link_is_released_by_detach(pin_dir):
    with btf_tracing.load("iter", "task", task_iter_insns(), name="att_iter") as prog:
        with attach_iter(prog) as link:
            assert isinstance(link, IterLink)
            through_protocol(link, prog, pin_dir, True)
            link_id = link.info().id
            assert link.read()
            link.detach()
            assert link.closed and not link_exists(link_id)


@pytest.mark.parametrize("link", [True, False], ids=["link", "prog_attach"])
def test_flow_dissector(netns, pin_dir, link):
    with Program.load("flow_dissector", FLOW_DISSECTOR_OK, name="att_dissect") as prog:
        with netns.entered():
            att = attach_flow_dissector(prog, link=link)
        with att:
            assert isinstance(att, Link if link else ProgAttachment)
            through_protocol(att, prog, pin_dir, link)
            assert query_netns(AttachType.FLOW_DISSECTOR, netns.path).prog_ids == (prog.id,)
            att.detach()
            assert query_netns(AttachType.FLOW_DISSECTOR, netns.path).prog_ids == ()
