"""Tracepoints and raw tracepoints on real events: counts per execve, links, pins."""
from __future__ import annotations

import pytest

from pybpf import features
from pybpf.errors import BPFError
from pybpf.links import Link, LinkInfo, PerfEventAttachment, attach_raw_tracepoint, attach_tracepoint
from pybpf.programs import Program
from pybpf.sys.uapi import LinkType
from tests.links.progs import count_per_tgid, run_children


@pytest.mark.usefixtures("tracefs")
@pytest.mark.parametrize("force_ioctl", [False, True], ids=["link", "ioctl"])
def test_tracepoint_counts_each_execve(counts, force_ioctl):
    with Program.load("tracepoint", count_per_tgid(counts.fd), name="tp_count") as prog:
        with attach_tracepoint(prog, "syscalls", "sys_enter_execve",
                               force_ioctl=force_ioctl) as att:
            pids = run_children(5)
            assert [counts.get(pid) for pid in pids] == [1] * 5
            if force_ioctl or not features.perf_link():  # 5.10: PERF_EVENT_IOC_SET_BPF
                assert isinstance(att, PerfEventAttachment)
            else:
                info = att.info()
                assert info.type == LinkType.PERF_EVENT and info.prog_id == prog.info().id
        after = run_children(3)  # detached when the link/perf fd closed
        assert all(pid not in counts for pid in after)


@pytest.mark.usefixtures("tracefs")
def test_missing_tracepoint_is_a_clear_error(counts):
    with Program.load("tracepoint", count_per_tgid(counts.fd)) as prog:
        with pytest.raises(BPFError, match="no tracepoint syscalls/sys_enter_nothing"):
            attach_tracepoint(prog, "syscalls", "sys_enter_nothing")


def test_raw_tracepoint_and_link_info(counts):
    with Program.load("raw_tracepoint", count_per_tgid(counts.fd), name="rawtp_count") as prog:
        with attach_raw_tracepoint(prog, "sched_process_exec") as link:
            pids = run_children(4)
            assert [counts.get(pid) for pid in pids] == [1] * 4
            info = link.info()
            assert isinstance(info, LinkInfo)
            assert info.type == LinkType.RAW_TRACEPOINT
            assert info.details["tp_name"] == "sched_process_exec"
        with pytest.raises(BPFError, match="no such raw tracepoint|ENOENT"):
            attach_raw_tracepoint(prog, "no_such_tracepoint_here")


def test_pinned_link_survives_close_and_unpin_ends_it(counts, pin_dir):
    with Program.load("raw_tracepoint", count_per_tgid(counts.fd)) as prog:
        link = attach_raw_tracepoint(prog, "sched_process_exec")
        link.pin(pin_dir / "link")
        link.close()
        pids = run_children(2)  # still attached: the pin holds the link
        assert [counts.get(pid) for pid in pids] == [1, 1]
        with Link.from_pin(pin_dir / "link") as again:
            assert again.info().type == LinkType.RAW_TRACEPOINT
            with pytest.raises(BPFError, match="cannot be detached.*remove its pins"):
                again.detach()  # raw tracepoint links have no detach operation
            Link.unpin(pin_dir / "link")
            pids = run_children(1)
            assert counts.get(pids[0]) == 1  # our fd still holds it
        pids = run_children(2)  # last reference gone: detached
        assert all(pid not in counts for pid in pids)


def test_ioctl_attachment_cannot_be_pinned(counts, pin_dir, tracefs):
    with Program.load("tracepoint", count_per_tgid(counts.fd)) as prog:
        with attach_tracepoint(prog, "syscalls", "sys_enter_execve", force_ioctl=True) as att:
            with pytest.raises(BPFError, match="no BPF link to pin"):
                att.pin(pin_dir / "x")
