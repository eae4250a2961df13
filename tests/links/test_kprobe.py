"""kprobes, kretprobes, syscall probes and kprobe_multi links.

On a kernel without kprobes (the host) the attach functions must say so and what to use
instead; the real attachments run in the VM (``python -m tests.vm --feature kprobe -- ...``).
"""
from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from pybpf import features
from pybpf.errors import BPFError, UnsupportedFeatureError, UsageError
from pybpf.links import Link, PerfEventAttachment
from pybpf.links.kprobe import (attach_kprobe, attach_kprobe_multi, attach_kretprobe,
                                attach_ksyscall, kernel_symbols, syscall_function)
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, LinkType, PerfEventType
from tests.links.progs import PERF_LINK_INFO, count_per_cookie, count_per_tgid, run_children

EXECVE = syscall_function("execve")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_syscall_function_follows_the_arch_wrapper():
    assert EXECVE == ("__x64_sys_execve" if platform.machine() == "x86_64" else EXECVE)
    assert EXECVE in kernel_symbols()
    with pytest.raises(UsageError, match="no syscall 'no_such_call'"):
        syscall_function("no_such_call")


def test_usage_errors(counts):
    with Program.load("kprobe", count_per_tgid(counts.fd)) as prog:
        with pytest.raises(UsageError, match="name or an address, not both"):
            attach_kprobe(prog, "x", address=1)
        with pytest.raises(UsageError, match="exactly one of pattern, symbols, addresses"):
            attach_kprobe_multi(prog, "x*", symbols=["x"])


@pytest.mark.skipif(bool(features.kprobes()), reason="this kernel has kprobes")
def test_no_kprobes_is_a_clear_error(counts):
    with Program.load("kprobe", count_per_tgid(counts.fd)) as prog:
        for attach in (lambda: attach_kprobe(prog, EXECVE),
                       lambda: attach_kretprobe(prog, EXECVE),
                       lambda: attach_ksyscall(prog, "execve")):
            with pytest.raises(UnsupportedFeatureError,
                               match=r"kprobes are not available on this kernel .*CONFIG_KPROBES "
                                     r"is off\): use a tracepoint instead, e.g. syscalls/"):
                attach()


@pytest.mark.skipif(bool(features.kprobe_multi()), reason="this kernel has kprobe_multi links")
def test_no_kprobe_multi_is_a_clear_error(counts):
    with Program.load("kprobe", count_per_tgid(counts.fd),
                      expected_attach_type=AttachType.TRACE_KPROBE_MULTI) as prog:
        with pytest.raises(UnsupportedFeatureError,
                           match="kprobe_multi links are not supported by this kernel.*attach "
                                 "one kprobe per function"):
            attach_kprobe_multi(prog, symbols=[EXECVE])


@pytest.mark.kernel("kprobe")
@pytest.mark.parametrize("how", ["symbol", "address", "legacy"])
def test_kprobe_counts_each_execve(counts, how):
    kw = ({"address": kernel_symbols()[EXECVE]} if how == "address"
          else {"symbol": EXECVE, "legacy": how == "legacy"})
    with Program.load("kprobe", count_per_tgid(counts.fd), name="kp_count") as prog:
        with attach_kprobe(prog, **kw) as att:
            pids = run_children(4)
            assert [counts.get(pid) for pid in pids] == [1] * 4
            if features.perf_link():
                info = att.info()
                assert info.type == LinkType.PERF_EVENT and info.prog_id == prog.info().id
                if PERF_LINK_INFO and how != "legacy":
                    assert info.details["perf_event_type"] == PerfEventType.KPROBE
                    # the probed address: past the endbr64 on kernels built with IBT
                    assert info.details["addr"] - kernel_symbols()[EXECVE] in (0, 4)
                    assert info.details["func_name"] == ("" if how == "address" else EXECVE)
            else:  # 5.10: no perf links, PERF_EVENT_IOC_SET_BPF instead
                assert isinstance(att, PerfEventAttachment)
        if how == "legacy":
            with open("/sys/kernel/tracing/kprobe_events") as f:
                assert f"kprobe_{os.getpid()}_" not in f.read()  # removed on close
        pids = run_children(2)
        assert all(pid not in counts for pid in pids)


@pytest.mark.kernel("kretprobe")
def test_kretprobe_and_ksyscall(counts):
    with Program.load("kprobe", count_per_tgid(counts.fd), name="kretp") as prog:
        with attach_kretprobe(prog, EXECVE), attach_ksyscall(prog, "execve"), \
                attach_ksyscall(prog, "execve", retprobe=True):
            pids = run_children(3)
            assert [counts.get(pid) for pid in pids] == [3] * 3


@pytest.mark.kernel("kprobe")
def test_missing_function_is_a_clear_error(counts):
    with Program.load("kprobe", count_per_tgid(counts.fd)) as prog:
        with pytest.raises(BPFError, match="kprobe on 'pybpf_no_such_fn' refused: no such "
                                           "function in /proc/kallsyms"):
            attach_kprobe(prog, "pybpf_no_such_fn")


@pytest.mark.kernel("kprobe")
@pytest.mark.kernel("perf_event_link")
def test_kprobe_cookies_and_pinned_link_outlives_process(cookie_counts, pin_dir):
    """A child attaches a kprobe with a cookie, pins the link and exits: it keeps running."""
    script = (
        "import sys\n"
        "from pybpf.links.kprobe import attach_kprobe\n"
        "from pybpf.maps import Map\n"
        "from pybpf.programs import Program\n"
        "from tests.links.progs import count_per_cookie\n"
        "m = Map.from_id(int(sys.argv[1]))\n"
        "p = Program.load('kprobe', count_per_cookie(m.fd), name='kp_pinned')\n"
        "link = attach_kprobe(p, sys.argv[2], cookie=77)\n"
        "link.pin(sys.argv[3])\n"
        "print(link.id)\n")
    out = subprocess.run([sys.executable, "-c", script, str(cookie_counts.id), EXECVE,
                          str(pin_dir / "kprobe")], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    before = cookie_counts.get(77, 0)  # the child's own execs are not counted: it attached last
    run_children(3)
    assert cookie_counts.get(77) == before + 3
    with Link.from_id(int(out)) as link:
        if PERF_LINK_INFO:
            assert link.info().details["cookie"] == 77
        Link.unpin(pin_dir / "kprobe")
    run_children(2)
    assert cookie_counts.get(77) == before + 3


@pytest.mark.kernel("kprobe_multi")
def test_kprobe_multi_by_pattern_and_cookies(counts, cookie_counts):
    with Program.load("kprobe", count_per_tgid(counts.fd), name="kpm_count",
                      expected_attach_type=AttachType.TRACE_KPROBE_MULTI) as prog:
        with attach_kprobe_multi(prog, EXECVE.replace("execve", "execve*")) as link:
            info = link.info()
            assert info.type == LinkType.KPROBE_MULTI and info.details["count"] == 2
            pids = run_children(3)
            assert [counts.get(pid) for pid in pids] == [1] * 3  # execve, not execveat
        with attach_kprobe_multi(prog, addresses=[kernel_symbols()[EXECVE]]):
            pids = run_children(2)
            assert [counts.get(pid) for pid in pids] == [1] * 2
        with pytest.raises(UsageError, match="no traceable kernel function matches"):
            attach_kprobe_multi(prog, "pybpf_no_such_fn_*")
    with Program.load("kprobe", count_per_cookie(cookie_counts.fd), name="kpm_cookie",
                      expected_attach_type=AttachType.TRACE_KPROBE_MULTI) as prog:
        with attach_kprobe_multi(prog, symbols=[EXECVE, syscall_function("execveat")],
                                 cookies=[10, 20]), \
                attach_kprobe_multi(prog, symbols=[EXECVE], cookies=[30], retprobe=True):
            run_children(2)
        assert cookie_counts.get(10) >= 2 and cookie_counts.get(30) >= 2 and 20 not in cookie_counts
