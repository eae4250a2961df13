"""No fd leaks from the network and cgroup hooks: attaches, detaches and refusals, many times."""
from __future__ import annotations

import os

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.errors import PyBPFError
from pybpf.links import (attach_cgroup, attach_flow_dissector, attach_socket_filter, attach_tc,
                         attach_tc_filter, attach_xdp, list_cgroup, list_tc, list_xdp, query_netns)
from pybpf.programs import Program
from pybpf.sys.uapi import AttachFlag, AttachType
from tests.links.netfixtures import cgroup, cgroup2_root, make_netns, netns  # noqa: F401

RET = assemble([mov64_imm(R0, 1), exit_()])


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _round(netns, cgroup, progs) -> None:
    xdp, cls, connect4, dissect = progs
    with netns.entered():
        with attach_xdp(xdp, "lo", mode="skb"), attach_tc(cls, "lo"):
            list_xdp()
            list_tc()
        with attach_xdp(xdp, "lo", mode="skb", netlink_attach=True), attach_tc_filter(cls, "lo"):
            list_tc("lo")
        with attach_flow_dissector(dissect, link=False):
            query_netns(AttachType.FLOW_DISSECTOR)
        for bad in (lambda: attach_xdp(xdp, "nope0"), lambda: attach_xdp(cls, "lo"),
                    lambda: attach_xdp(xdp, "lo", mode="native"),
                    lambda: attach_tc_filter(xdp, "lo"),
                    lambda: attach_flow_dissector(dissect, "pybpf-none")):
            with pytest.raises(PyBPFError):
                bad()
    with attach_cgroup(connect4, cgroup.path, "connect4"), \
            attach_cgroup(connect4, cgroup.path, "connect4", AttachFlag.ALLOW_MULTI):
        list_cgroup(cgroup.path)
    for bad in (lambda: attach_cgroup(connect4, cgroup.path / "nope", "connect4"),
                lambda: attach_cgroup(xdp, cgroup.path, "connect4"),
                lambda: attach_cgroup(connect4, cgroup.path, "sendmsg4")):
        with pytest.raises(PyBPFError):
            bad()
    import socket
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        with pytest.raises(PyBPFError):
            attach_socket_filter(cls, s)


def test_no_fd_leak(netns, cgroup):
    with Program.load("xdp", RET) as xdp, Program.load("sched_cls", RET) as cls, \
            Program.load("cgroup_sock_addr", RET,
                         expected_attach_type=AttachType.CGROUP_INET4_CONNECT) as connect4, \
            Program.load("flow_dissector", assemble([mov64_imm(R0, 0), exit_()])) as dissect:
        progs = (xdp, cls, connect4, dissect)
        _round(netns, cgroup, progs)  # first use: lazy imports, probe caches
        before = open_fds()
        for _ in range(20):
            _round(netns, cgroup, progs)
        assert open_fds() == before
