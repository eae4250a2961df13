"""Attach kinds beyond the book's: uprobes (by library name, symbol regex, address), perf
events, tracepoints by regex, kprobes by regex, trace_pipe reading."""
from __future__ import annotations

import ctypes as ct
import os
import re
import time
import uuid

import pytest

from pybpf import features
from pybpf.bcc import BPF, PerfSWConfig, PerfType
from pybpf.errors import UsageError

COUNT_BY_PID = r"""
BPF_HASH(counts, u32, u64);
BPF_HASH(rets, u32, u64);
int count(void *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    counts.increment(pid);
    return 0;
}
int ret(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    u64 rc = PT_REGS_RC(ctx);
    rets.update(&pid, &rc);
    return 0;
}
"""


PID = os.getpid()  # taken once: os.getpid() is libc's getpid, which the test probes


def mine(table) -> int:
    try:
        return table[ct.c_uint(PID)].value
    except KeyError:
        return 0


libc = ct.CDLL(None)


def test_uprobe_uretprobe_on_libc_by_name_regex_and_address():
    with BPF(text=COUNT_BY_PID) as b:
        b.attach_uprobe(name="c", sym="getpid", fn_name="count")
        b.attach_uretprobe(name="c", sym="getpid", fn_name="ret")
        assert b.num_open_uprobes() == 2
        for _ in range(3):
            libc.getpid()
        assert mine(b["counts"]) == 3
        assert mine(b["rets"]) == PID
        b.detach_uprobe(name="c", sym="getpid")
        b.detach_uretprobe(name="c", sym="getpid")
        assert b.num_open_uprobes() == 0
        libc.getpid()
        assert mine(b["counts"]) == 3
        b.attach_uprobe(name="c", sym_re="^getppid$", fn_name="count")
        libc.getppid()
        assert mine(b["counts"]) == 4
        (func, addr), = BPF.get_user_functions_and_addresses(b"c", b"^getuid$")
        assert func == b"getuid"
        b.attach_uprobe(name="c", addr=addr, fn_name="count")
        libc.getuid()
        assert mine(b["counts"]) == 5
        with pytest.raises(UsageError, match="no function of .* matches"):
            b.attach_uprobe(name="c", sym_re="^no_such_function_here$", fn_name="count")


def test_perf_event_software_clock():
    text = r"""
BPF_ARRAY(samples, u64, 1);
int on_sample(struct bpf_perf_event_data *ctx) { samples.increment(0); return 0; }
"""
    with BPF(text=text) as b:
        b.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                            fn_name="on_sample", sample_freq=499, pid=os.getpid())
        deadline = time.monotonic() + 0.3
        while time.monotonic() < deadline:
            pass
        assert b["samples"][0].value > 0
        with pytest.raises(UsageError, match="already attached"):
            b.attach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK,
                                fn_name="on_sample", sample_freq=499, pid=os.getpid())
        b.detach_perf_event(ev_type=PerfType.SOFTWARE, ev_config=PerfSWConfig.CPU_CLOCK)
        got = b["samples"][0].value
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            pass
        assert b["samples"][0].value == got


def test_tracepoints_and_kprobes_by_regex(tracefs):
    """``tp_re`` over tracefs; ``event_re`` over the kprobe-able functions, or without kprobes
    over the syscall entry functions whose tracepoints stand in."""
    with BPF(text=COUNT_BY_PID) as b:
        b.attach_tracepoint(tp_re="^syscalls:sys_enter_getppid$", fn_name="count")
        assert b.num_open_tracepoints() == 1
        os.getppid()
        assert mine(b["counts"]) == 1
        b.detach_tracepoint("syscalls:sys_enter_getppid")
        with pytest.raises(UsageError, match="no kernel function matches"):
            b.attach_kprobe(event_re="^no_such_kernel_function_here$", fn_name="count")
        if features.kprobes():
            event = "do_nanosleep"
            trigger = lambda: time.sleep(0.001)  # noqa: E731
        else:
            event = BPF.get_syscall_fnname("getppid").decode()
            trigger = os.getppid
        b.attach_kprobe(event_re=f"^{re.escape(event)}$", fn_name="count")
        assert b.num_open_kprobes() == 1
        trigger()
        assert mine(b["counts"]) >= 2


def test_trace_fields_and_readline(tracefs):
    marker = uuid.uuid4().hex[:12]
    text = r"""
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != PID)
        return 0;
    bpf_trace_printk("MARKER %d\n", 42);
    return 0;
}
""".replace("PID", str(os.getpid())).replace("MARKER", marker)
    with BPF(text=text) as b:
        b.trace_open()
        os.getppid()
        deadline = time.monotonic() + 10
        while True:  # other processes may print too
            task, pid, cpu, flags, ts, msg = b.trace_fields()
            if msg == f"{marker} 42".encode():
                break
            assert time.monotonic() < deadline, "our line never came"
        assert pid == os.getpid() and cpu >= 0 and isinstance(ts, float)
        assert isinstance(task, bytes) and isinstance(flags, bytes)
        os.getppid()
        while True:
            line = b.trace_readline()
            if marker.encode() in line:
                break
            assert time.monotonic() < deadline, "our line never came"
        assert line.endswith(f"{marker} 42".encode())
        start = time.monotonic()
        fields = b.trace_fields(nonblocking=True)
        assert time.monotonic() - start < 1 and len(fields) == 6
