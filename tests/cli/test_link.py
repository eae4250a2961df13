"""``pybpf link`` against Debian's bpftool on links the tests create."""
from __future__ import annotations

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.links import attach_cgroup, attach_raw_tracepoint
from pybpf.links.link import Link
from pybpf.programs import Program

from tests.cli.tools import assert_error, bpftool, pybpf, same, uniq

RET0 = assemble([mov64_imm(R0, 0), exit_()])
RET1 = assemble([mov64_imm(R0, 1), exit_()])


@pytest.fixture
def raw_tp_link(pin_dir):
    with Program.load("raw_tracepoint", RET0, name=uniq("rtp")) as prog, \
            attach_raw_tracepoint(prog, "sched_switch") as link:
        link.pin(pin_dir / "rtp")
        yield link


@pytest.fixture
def cgroup_link(cgroup):
    with Program.load("cgroup_skb", RET1, name=uniq("cgs")) as prog, \
            attach_cgroup(prog, cgroup.path, "ingress") as link:
        yield link


def test_show_raw_tracepoint(raw_tp_link, pin_dir):
    link_id = raw_tp_link.info().id
    ours, _ = same("link", "show", "id", link_id)
    assert ours.out.endswith("\n\ttp 'sched_switch'  \n")
    same("link", "show", "pinned", pin_dir / "rtp")
    same("-f", "link", "show", "id", link_id)
    assert f"\tpinned {pin_dir / 'rtp'}" in pybpf("-f", "link", "show", "id", link_id).out
    assert any(rec["id"] == link_id for rec in pybpf("-j", "link", "list").json())


def test_show_cgroup(cgroup_link):
    ours, _ = same("link", "show", "id", cgroup_link.info().id)
    assert "attach_type cgroup_inet_ingress" in ours.out


def test_pin_and_detach(cgroup_link, pin_dir):
    link_id = cgroup_link.info().id
    assert cgroup_link.info().details["cgroup_id"] != 0
    assert pybpf("link", "pin", "id", link_id, pin_dir / "cg").rc == 0
    assert Link.from_pin(pin_dir / "cg").info().id == link_id
    res = pybpf("-j", "link", "detach", "pinned", pin_dir / "cg")
    assert (res.rc, res.out) == (0, "null\n")
    assert cgroup_link.info().details["cgroup_id"] == 0  # the link let go of its cgroup


def test_detach_unsupported_link_type(raw_tp_link):
    """raw_tracepoint links cannot be detached while referenced: bpftool's error, explained."""
    link_id = raw_tp_link.info().id
    ours, theirs = pybpf("link", "detach", "id", link_id), bpftool("link", "detach", "id", link_id)
    assert theirs.rc != 0 and "failed link detach" in theirs.err
    assert_error(ours, "failed link detach", "cannot be detached while referenced")


def test_bad_input(pin_dir):
    assert_error(pybpf("link", "show", "name", "x"), "expected 'id' or 'pinned', got: 'name'")
    assert_error(pybpf("link", "show", "id", 4000000000), "get link by id")
    assert_error(pybpf("link", "detach"), "link specifier is invalid or missing")
    with Program.load("socket_filter", RET0, name=uniq("sf")) as prog:
        prog.pin(pin_dir / "p")
        assert_error(pybpf("link", "show", "pinned", pin_dir / "p"), "incorrect object type: prog")


def test_show_xdp_and_tcx_links(netns):
    """XDP links as bpftool 7.1 shows them (JSON adds the interface); tcx links, unknown to
    7.1 ("type 11"), with their type name, interface and attach type."""
    from pybpf.links import attach_tcx, attach_xdp
    netns.ip("link", "add", "cl0", "type", "veth", "peer", "name", "cl1")
    with Program.load("xdp", assemble([mov64_imm(R0, 2), exit_()]), name=uniq("xl")) as xdp, \
            Program.load("sched_cls", RET0, name=uniq("tl")) as tc, netns.entered():
        import socket
        index = socket.if_nametoindex("cl0")
        with attach_xdp(xdp, "cl0", netlink_attach=False) as xl, attach_tcx(tc, "cl0") as tl:
            ours, _ = same("link", "show", "id", xl.info().id)
            assert pybpf("-j", "link", "show", "id", xl.info().id).json()["devname"] == "cl0"
            tcx = pybpf("link", "show", "id", tl.info().id).out
            assert tcx == (f"{tl.info().id}: tcx  prog {tc.id}  \n"
                           f"\tifindex cl0({index})  attach_type tcx_ingress  \n")


def test_show_netns_link(netns):
    from pybpf.links import attach_sk_lookup
    from pybpf.sys.uapi import AttachType
    with Program.load("sk_lookup", RET1, name=uniq("skl"),
                      expected_attach_type=AttachType.SK_LOOKUP) as prog, \
            attach_sk_lookup(prog, netns.name) as link:
        ours, _ = same("link", "show", "id", link.info().id)
        assert "attach_type sk_lookup" in ours.out and "netns_ino" in ours.out
