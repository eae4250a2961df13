"""pybpf.bcc's BPF class and tables in this process, on the real kernel: loading, attaching,
auto-attach, per-CPU values, LPM tries, queues, stack traces, prog arrays, batch operations,
XDP and raw sockets, errors naming what is wrong."""
from __future__ import annotations

import ast
import ctypes as ct
import os
import re
import socket
import subprocess
import time
import uuid

import pytest

from pybpf import features
from pybpf.bcc import BPF
from pybpf.errors import CompileError, PyBPFError, UnsupportedFeatureError, UsageError
from pybpf.sys.cpus import possible_cpus
from tests.links.netfixtures import cgroup2_root, make_netns, netns  # noqa: F401 (fixtures)

COUNTER = r"""
BPF_ARRAY(target, u32, 1);
BPF_HASH(calls, u32, u64);
BPF_PERCPU_ARRAY(percpu, u64, 2);

TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 zero = 0, pid = bpf_get_current_pid_tgid() >> 32;
    u32 *want = target.lookup(&zero);
    if (!want || *want != pid)
        return 0;
    calls.increment(pid);
    percpu.increment(zero);
    return 0;
}
"""


def wait_for(pred, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def test_tracepoint_probe_auto_attached_counts_this_process(tracefs):
    with BPF(text=COUNTER) as b:
        assert b.num_open_tracepoints() == 1
        b["target"][ct.c_int(0)] = ct.c_uint(os.getpid())
        for _ in range(5):
            os.getppid()
        calls = b["calls"]
        assert calls[ct.c_uint(os.getpid())].value == 5
        assert [(k.value, v.value) for k, v in calls.items()] == [(os.getpid(), 5)]
        percpu = b["percpu"]
        assert percpu.Leaf._length_ == len(possible_cpus())
        assert percpu.sum(0).value == 5 and percpu.max(0).value <= 5
        assert percpu.average(0) == 5 / len(possible_cpus())
        assert sum(percpu[0]) == 5 and sum(percpu[1]) == 0
        percpu[ct.c_int(1)] = percpu.Leaf(*range(len(possible_cpus())))
        assert list(percpu.getvalue(1)) == list(range(len(possible_cpus())))
        b.detach_tracepoint(tp="syscalls:sys_enter_getppid")
        assert b.num_open_tracepoints() == 0
        os.getppid()
        assert calls[ct.c_uint(os.getpid())].value == 5


def test_kprobe_on_a_syscall_and_its_fallback(tracefs, capfd):
    """``attach_kprobe`` on getppid's entry function: a real kprobe where the kernel has them,
    else the sys_enter_getppid tracepoint, said once on stderr."""
    text = COUNTER.replace("TRACEPOINT_PROBE(syscalls, sys_enter_getppid)",
                           "int on_getppid(void *ctx)")
    with BPF(text=text) as b:
        event = b.get_syscall_fnname("getppid")
        assert event.endswith(b"sys_getppid")
        b.attach_kprobe(event=event, fn_name="on_getppid")
        assert b.num_open_kprobes() == 1
        b["target"][ct.c_int(0)] = ct.c_uint(os.getpid())
        os.getppid()
        os.getppid()
        assert b["calls"][ct.c_uint(os.getpid())].value == 2
        err = capfd.readouterr().err
        if not features.kprobes():
            assert err.count("no kprobes") == 1 and "syscalls/sys_enter_getppid" in err
        with pytest.raises(UsageError, match="already attached"):
            b.attach_kprobe(event=event, fn_name="on_getppid")
        b.detach_kprobe(event=event)
        assert b.num_open_kprobes() == 0


@pytest.mark.skipif(bool(features.kprobes()), reason="checks the error without kprobes")
def test_kprobe_elsewhere_without_kprobes_is_a_clear_error():
    text = "int f(void *ctx) { return 0; }"
    with BPF(text=text) as b:
        with pytest.raises(PyBPFError, match="kprobes are not available.*vfs_read.*not one"):
            b.attach_kprobe(event="vfs_read", fn_name="f")
        with pytest.raises(PyBPFError, match=r"\+0x4: kprobes are not available.*no offsets"):
            b.attach_kprobe(event=b.get_syscall_fnname("getppid"), event_off=4, fn_name="f")
        with pytest.raises(PyBPFError, match=r"event_re='\^vfs_rea\.\$'\): kprobes are not "
                           "available.*no syscall entry function"):
            b.attach_kprobe(event_re="^vfs_rea.$", fn_name="f")
        assert b.num_open_kprobes() == 0


def test_load_funcs_loads_every_function_in_order():
    text = """
static __always_inline int helper(int x) { return x + 1; }
int first(void *ctx) { return helper(0); }
int second(void *ctx) { return 0; }
"""
    with BPF(text=text) as b:
        fns = b.load_funcs(BPF.SOCKET_FILTER)
        assert [f.name for f in fns] == [b"first", b"second"]
        assert {f.program.info().type for f in fns} == {BPF.SOCKET_FILTER}
        assert {f.program.info().type for f in b.load_funcs()} == {BPF.KPROBE}


def test_syscall_arguments_as_parameters(tmp_path, tracefs):
    """A kprobe function taking the syscall's arguments after its context reads them: from
    the registers behind the syscall wrapper, or from the sys_enter record without kprobes."""
    text = r"""
BPF_HASH(dirfd, u32, long);
int syscall__openat(struct pt_regs *ctx, int dfd, const char __user *filename, int flags) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    long d = dfd;
    if (flags & 0x40000 /* O_NOATIME: only the test's own call */)
        dirfd.update(&pid, &d);
    return 0;
}
"""
    (tmp_path / "f").write_text("x")
    with BPF(text=text) as b:
        b.attach_kprobe(event=b.get_syscall_fnname("openat"), fn_name="syscall__openat")
        dir_fd = os.open(tmp_path, os.O_RDONLY)
        try:
            os.close(os.open("f", os.O_RDONLY | os.O_NOATIME, dir_fd=dir_fd))
            assert b["dirfd"][ct.c_uint(os.getpid())].value == dir_fd
        finally:
            os.close(dir_fd)


@pytest.mark.skipif(bool(features.kprobes()), reason="the fallback exists without kprobes")
def test_fallback_refuses_register_reads_it_cannot_honour(tracefs):
    text = r"""
BPF_HASH(h, u32, u64);
int regs(struct pt_regs *ctx) { u32 k = 0; u64 v = PT_REGS_PARM1(ctx); h.update(&k, &v); return 0; }
int plain(void *ctx) { u32 k = 1; u64 v = 1; h.update(&k, &v); return 0; }
"""
    with BPF(text=text) as b:
        with pytest.raises(CompileError, match=r"line 3: .*regs reads registers .*no kprobes") \
                as refused:
            b.attach_kprobe(event=b.get_syscall_fnname("getppid"), fn_name="regs")
        assert isinstance(refused.value, UnsupportedFeatureError)  # the runner: one line
        assert b.num_open_kprobes() == 0
        b.attach_kprobe(event=b.get_syscall_fnname("getppid"), fn_name="plain")
        os.getppid()
        assert b["h"][ct.c_uint(1)].value == 1


def test_kretprobe_fallback_reads_the_return_value(tracefs):
    """A kretprobe on a syscall runs on sys_exit_<name> without kprobes; PT_REGS_RC gives the
    syscall's return value either way."""
    text = r"""
BPF_HASH(ret, u32, long);
int on_ret(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    long rc = PT_REGS_RC(ctx);
    ret.update(&pid, &rc);
    return 0;
}
"""
    with BPF(text=text) as b:
        b.attach_kretprobe(event=b.get_syscall_fnname("getppid"), fn_name="on_ret")
        assert b.num_open_kprobes() == 1
        ppid = os.getppid()
        assert b["ret"][ct.c_uint(os.getpid())].value == ppid


def test_hash_array_and_struct_tables():
    text = r"""
struct pair_t { u32 a; char name[6]; u64 b; };
BPF_HASH(h, struct pair_t, u64, 16);
BPF_ARRAY(arr, struct pair_t, 4);
int unused(void *ctx) { return 0; }
"""
    with BPF(text=text) as b:
        h, arr = b["h"], b["arr"]
        assert h.Key.__name__ == "pair_t" and ct.sizeof(h.Key) == 24
        assert [f[0] for f in h.Key._fields_] == ["a", "name", "b"]
        k = h.Key(a=1, name=b"ab", b=7)
        h[k] = ct.c_ulonglong(10)
        h[h.Key(a=2, name=b"cd", b=8)] = ct.c_ulonglong(20)
        assert len(h) == 2 and h[k].value == 10
        assert sorted((key.name.decode(), v.value) for key, v in h.items()) == [("ab", 10),
                                                                                 ("cd", 20)]
        del h[k]
        assert len(h) == 1
        with pytest.raises(KeyError):
            h[k]
        h.clear()
        assert len(h) == 0 and h.items() == []
        # the book's idiom: a shorter create_string_buffer is zero-padded to the value size
        arr[ct.c_int(1)] = ct.create_string_buffer(b"\x05\0\0\0xyz")
        assert arr[1].a == 5 and arr[1].name == b"xyz" and arr[1].b == 0
        assert len(arr) == 4 and [k.value for k in arr.keys()] == [0, 1, 2, 3]
        arr.clear()
        assert arr[1].a == 0 and arr[1].name == b""
        with pytest.raises(IndexError):
            arr[4]


def test_batch_operations():
    text = "BPF_HASH(h, u32, u32, 64);\nint unused(void *ctx) { return 0; }\n"
    with BPF(text=text) as b:
        h = b["h"]
        keys = (h.Key * 10)(*range(10))
        values = (h.Leaf * 10)(*(i * i for i in range(10)))
        h.items_update_batch(keys, values)
        assert sorted((k.value, v.value) for k, v in h.items_lookup_batch()) == \
            [(i, i * i) for i in range(10)]
        h.items_delete_batch((h.Key * 2)(3, 4))
        assert len(h) == 8
        got = sorted((k.value, v.value) for k, v in h.items_lookup_and_delete_batch())
        assert got == [(i, i * i) for i in range(10) if i not in (3, 4)] and len(h) == 0
        h.items_update_batch(keys, values)
        h.zero()
        assert {v.value for v in h.values()} == {0} and len(h) == 10
        h.items_delete_batch()
        assert len(h) == 0


def test_lpm_trie_and_queue():
    text = r"""
struct key_v4 { u32 prefixlen; u8 addr[4]; };
BPF_LPM_TRIE(trie, struct key_v4, u32, 16);
BPF_QUEUE(q, u64, 8);
int unused(void *ctx) { return 0; }
"""
    with BPF(text=text) as b:
        trie = b["trie"]
        trie[trie.Key(16, (ct.c_ubyte * 4)(10, 1, 0, 0))] = ct.c_uint(16)
        trie[trie.Key(24, (ct.c_ubyte * 4)(10, 1, 2, 0))] = ct.c_uint(24)
        assert trie[trie.Key(32, (ct.c_ubyte * 4)(10, 1, 2, 3))].value == 24
        assert trie[trie.Key(32, (ct.c_ubyte * 4)(10, 1, 9, 9))].value == 16
        with pytest.raises(KeyError):
            trie[trie.Key(32, (ct.c_ubyte * 4)(10, 2, 0, 0))]
        assert len(trie) == 2
        q = b["q"]
        for v in (3, 1, 2):
            q.push(ct.c_ulonglong(v))
        assert q.peek().value == 3
        assert [v.value for v in q.values()] == [3, 1, 2]
        with pytest.raises(KeyError):
            q.pop()
        with pytest.raises(KeyError):
            q.peek()


def test_stack_trace_walk(tracefs):
    """A kernel stack taken in a tracepoint program walks to kernel addresses."""
    text = r"""
BPF_STACK_TRACE(stacks, 64);
BPF_HASH(ids, u32, int);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    int id = stacks.get_stackid(args, 0);
    ids.update(&pid, &id);
    return 0;
}
"""
    with BPF(text=text) as b:
        os.getppid()
        stack_id = b["ids"][ct.c_uint(os.getpid())].value
        assert stack_id >= 0
        addrs = list(b["stacks"].walk(stack_id))
        assert addrs and all(a >= 0xffff800000000000 for a in addrs)
        resolved = list(b["stacks"].walk(stack_id, resolve=hex))
        assert resolved == [hex(a) for a in addrs]
        assert list(b["stacks"].walk(stack_id + 1000)) == []


def test_prog_array_takes_function_fds(tracefs):
    """``jmp[ct.c_int(i)] = ct.c_int(fn.fd)``: the tail call reaches the loaded function."""
    text = r"""
BPF_PROG_ARRAY(jmp, 4);
BPF_ARRAY(hits, u64, 1);
int tail(void *ctx) { hits.increment(0); return 0; }
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { jmp.call(args, 2); return 0; }
"""
    with BPF(text=text) as b:
        fn = b.load_func("tail", BPF.TRACEPOINT)
        assert fn.name == b"tail" and fn.fd > 0
        assert b.load_func(b"tail", BPF.TRACEPOINT) is fn
        other = b.load_func("tail", BPF.RAW_TRACEPOINT)  # another type: another program
        assert other is not fn and other.program.info().type == BPF.RAW_TRACEPOINT
        before = b["hits"][0].value
        b["jmp"][ct.c_int(2)] = ct.c_int(fn.fd)
        assert 2 in b["jmp"] and 1 not in b["jmp"] and len(b["jmp"]) == 4
        os.getppid()
        assert b["hits"][0].value > before
        del b["jmp"][ct.c_int(2)]
        assert 2 not in b["jmp"]


def test_load_func_types_xdp_and_raw_socket(netns):
    """XDP by netlink on a private namespace's lo (BCC's attach_xdp/remove_xdp) and a raw
    socket with a socket filter there, seeing the test's datagram."""
    text = r"""
int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
int keep_all(struct __sk_buff *skb) { return -1; }
"""
    def xdp_shown() -> str:
        return subprocess.run(["ip", "-n", netns.name, "link", "show", "lo"],
                              capture_output=True, text=True, check=True).stdout

    with BPF(text=text) as b:
        fn = b.load_func("xdp_pass", BPF.XDP)
        assert fn.program.info().type == BPF.XDP
        with netns.entered():
            BPF.attach_xdp("lo", fn, BPF.XDP_FLAGS_SKB_MODE)
        assert "xdpgeneric" in xdp_shown()
        with netns.entered():
            BPF.remove_xdp("lo", BPF.XDP_FLAGS_SKB_MODE)
        assert "xdp" not in xdp_shown()
        sf = b.load_func("keep_all", BPF.SOCKET_FILTER)
        with netns.entered():
            BPF.attach_raw_socket(sf, "lo")
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        assert isinstance(sf.sock, int) and sf.sock > 0
        raw = socket.socket(fileno=os.dup(sf.sock))
        with raw, udp:
            payload = uuid.uuid4().bytes
            udp.sendto(payload, ("127.0.0.1", 9))
            raw.settimeout(5)
            deadline = time.monotonic() + 5
            while payload not in raw.recv(65536):
                assert time.monotonic() < deadline, "the raw socket saw no packet"


def test_errors_name_what_is_wrong(tracefs):
    with BPF(text="BPF_HASH(h, u32, u32);\nint f(void *ctx) { return 0; }\n") as b:
        with pytest.raises(UsageError, match=r"no function 'nope'.*its functions: f"):
            b.load_func("nope", BPF.TRACEPOINT)
        with pytest.raises(KeyError, match=r"no table 'nope'.*its tables: h"):
            b["nope"]
        with pytest.raises(PyBPFError, match="no tracepoint syscalls/sys_enter_nope"):
            b.attach_tracepoint(tp="syscalls:sys_enter_nope", fn_name="f")
        with pytest.raises(UsageError, match="no tracepoint matches"):
            b.attach_tracepoint(tp_re="^nosuchcategory:", fn_name="f")
        assert b.num_open_tracepoints() == 0
    with pytest.raises(UsageError, match="cleaned up"):
        b["h"]
    with pytest.raises(CompileError, match=r"<text>:4:\d+: error: .*undeclared_fn"):
        BPF(text="BPF_HASH(h, u32, u32);\n\nint f(void *ctx) {\n    undeclared_fn();\n"
                 "    return 0;\n}\n")
    with pytest.raises(UsageError, match="text= or src_file="):
        BPF()
    with pytest.raises(UsageError, match="device=.*not supported"):
        BPF(text="int f(void *ctx) { return 0; }", device="eth0")


def test_empty_text_is_an_empty_module_for_look_ups():
    """opensnoop makes ``BPF(text='')`` only to look symbols up, as BCC allows."""
    with BPF(text="") as b:
        assert list(b) == [] and "events" not in b
        assert b.ksymname(b.get_syscall_fnname("openat")) > 0


def test_src_file_next_to_the_script(tmp_path, monkeypatch):
    (tmp_path / "prog.c").write_text("BPF_ARRAY(a, u32, 2);\nint f(void *ctx) { return 0; }\n")
    monkeypatch.chdir("/")
    monkeypatch.setattr("sys.argv", [str(tmp_path / "tool.py")])
    with BPF(src_file=b"prog.c") as b:
        assert len(b["a"]) == 2
    (tmp_path / "bad.c").write_text("int f(void *ctx) {\n    return nope;\n}\n")
    with pytest.raises(CompileError, match=r"bad\.c:2:\d+: error: .*nope"):
        BPF(src_file="bad.c")


@pytest.mark.kernel("kprobe")
def test_real_kprobes_auto_attach_and_return_values():
    """Where the kernel has kprobes: ``kprobe__`` auto-attach on a kernel function (not a
    syscall), a kretprobe's PT_REGS_RC, and ``attach_kprobe`` on a syscall without fallback."""
    text = r"""
BPF_HASH(enters, u32, u64);
BPF_HASH(rets, u32, long);
int kprobe__do_nanosleep(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    enters.increment(pid);
    return 0;
}
int on_ret(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    long rc = PT_REGS_RC(ctx);
    rets.update(&pid, &rc);
    return 0;
}
"""
    with BPF(text=text) as b:
        assert b.num_open_kprobes() == 1
        b.attach_kretprobe(event=b.get_syscall_fnname("getppid"), fn_name="on_ret")
        for _ in range(3):
            time.sleep(0.001)
        ppid = os.getppid()
        assert b["enters"][ct.c_uint(os.getpid())].value >= 3
        assert b["rets"][ct.c_uint(os.getpid())].value == ppid
        b.detach_kprobe(event="do_nanosleep")
        assert b.num_open_kprobes() == 1


def test_perf_buffer_callback_gets_the_cpu_and_lost_count_callback(tracefs):
    """``open_perf_buffer(cb, page_cnt=, lost_cb=)``: each record with the CPU it was written
    on (the program sends its CPU number), decoded by ``event()``."""
    text = r"""
struct rec_t { u32 cpu; u32 pid; };
BPF_PERF_OUTPUT(out);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    struct rec_t r = {};
    r.cpu = bpf_get_smp_processor_id();
    r.pid = bpf_get_current_pid_tgid() >> 32;
    out.perf_submit(args, &r, sizeof(r));
    return 0;
}
"""
    got = []
    lost = []
    with BPF(text=text) as b:
        def cb(cpu, data, size):
            ev = b["out"].event(data)
            if ev.pid == os.getpid():
                got.append((cpu, ev.cpu, size))
        b["out"].open_perf_buffer(cb, page_cnt=4, lost_cb=lost.append)
        for cpu in sorted(os.sched_getaffinity(0)):
            os.sched_setaffinity(0, {cpu})
            os.getppid()
        os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))
        deadline = time.monotonic() + 5
        while len(got) < len(os.sched_getaffinity(0)) and time.monotonic() < deadline:
            b.perf_buffer_poll(100)
    assert got and all(cpu == ev_cpu and size >= 8 for cpu, ev_cpu, size in got)
    assert {c for c, _, _ in got} == set(os.sched_getaffinity(0))
    assert lost == []


def test_histogram_counts_known_events_into_their_bucket(tracefs, capsys):
    """BPF_HISTOGRAM + bpf_log2l: getppid calls of this process counted in the bucket of a
    known value, printed by ``print_log2_hist`` and ``print_linear_hist``."""
    text = r"""
BPF_HISTOGRAM(dist);
BPF_HISTOGRAM(lin, int, 16);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if ((bpf_get_current_pid_tgid() >> 32) != PID)
        return 0;
    dist.increment(bpf_log2l(100));
    lin.increment(5);
    return 0;
}
""".replace("PID", str(os.getpid()))
    with BPF(text=text) as b:
        for _ in range(7):
            os.getppid()
        assert b["dist"][ct.c_int(7)].value == 7  # 64 <= 100 < 128
        b["dist"].print_log2_hist("usecs")
        b["lin"].print_linear_hist("calls", bucket_sort_fn=sorted)
        out = capsys.readouterr().out
        assert "usecs" in out and re.search(r"64 -> 127\s*: 7\s", out)
        assert "calls" in out and re.search(r"\b5\s*: 7\s", out)
        b["dist"].print_json_hist("usecs")
        doc = ast.literal_eval(capsys.readouterr().out)  # a dict printed, as BCC prints it
        assert doc["val_type"] == "usecs"
        assert {"interval-start": 64, "interval-end": 127, "count": 7} in doc["data"]


@pytest.mark.skipif(bool(features.fentry()), reason="checks the error where fentry is refused")
def test_kfunc_where_fentry_is_refused_says_why():
    with pytest.raises(PyBPFError, match=r"fentry/fexit programs: .*use a tp_btf"):
        BPF(text="KFUNC_PROBE(do_nanosleep) { return 0; }")


@pytest.mark.skipif(bool(features.lsm()), reason="checks the error where LSM is refused")
def test_lsm_where_refused_says_why():
    with pytest.raises(PyBPFError, match=r"LSM programs: .*refused"):
        BPF(text="LSM_PROBE(bpf, int cmd) { return 0; }")


def test_perf_buffer_consume_without_waiting(tracefs):
    text = r"""
BPF_PERF_OUTPUT(out);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    if (pid == PID)
        out.perf_submit(args, &pid, sizeof(pid));
    return 0;
}
""".replace("PID", str(os.getpid()))
    with BPF(text=text) as b:
        got = []
        b["out"].open_perf_buffer(lambda cpu, data, size: got.append(
            ct.c_uint.from_address(data).value))
        assert b.perf_buffer_consume() == 0
        os.getppid()
        os.getppid()
        assert b.perf_buffer_consume() == 2 and got == [os.getpid()] * 2
        with pytest.raises(UsageError, match="no ring buffer is open"):
            b.ring_buffer_poll(0)


def test_cgroup_array_and_devmap_take_what_bcc_scripts_give(cgroup2_root):
    """``cgroups[0] = "/sys/fs/cgroup/..."`` (a path, opened for its fd) and
    ``devmap[i] = ct.c_int(ifindex)``."""
    text = r"""
BPF_CGROUP_ARRAY(cgroups, 2);
BPF_DEVMAP(ports, 4);
int unused(struct xdp_md *ctx) { return XDP_PASS; }
"""
    with BPF(text=text) as b:
        b["cgroups"][0] = str(cgroup2_root)
        with pytest.raises(UsageError, match="cannot be read"):
            b["cgroups"][0]
        ports = b["ports"]
        ports[ct.c_int(2)] = ct.c_int(socket.if_nametoindex("lo"))
        assert ports[2].value == socket.if_nametoindex("lo")
        assert len(ports) == 4 and 2 in ports
        del ports[2]
        assert 2 not in ports


def test_dump_func_gives_the_compiled_instructions():
    from pybpf.asm import R0, assemble, exit_, mov64_imm
    with BPF(text="int entry(void *ctx) { return 7; }") as b:
        assert b.dump_func(b"entry") == assemble([mov64_imm(R0, 7), exit_()])
        with pytest.raises(UsageError, match="no function 'nope'"):
            b.dump_func("nope")


def test_license_through_cflags_is_refused():
    """As BCC: the license is the program's (#define BPF_LICENSE), never a -D flag."""
    text = "int f(void *ctx) { return 0; }"
    with pytest.raises(CompileError, match="BPF_LICENSE cannot be specified through cflags"):
        BPF(text=text, cflags=["-DBPF_LICENSE=GPL"])
    with BPF(text="#define BPF_LICENSE Dual BSD/GPL\n" + text) as b:
        assert b.load_func("f", BPF.SOCKET_FILTER).program.info().gpl_compatible


def test_perf_array_reads_a_counter(tracefs):
    """BPF_PERF_ARRAY + open_perf_event: perf_read gives this CPU's counter (a software
    clock, which every kernel has); after close_perf_event the slot is empty (-ENOENT)."""
    from pybpf.bcc import PerfSWConfig, PerfType
    text = r"""
BPF_PERF_ARRAY(clk, 1024);
BPF_ARRAY(seen, u64, 3);
BPF_ARRAY(target, u32, 1);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    u32 zero = 0, *want = target.lookup(&zero);
    if (!want || *want != bpf_get_current_pid_tgid() >> 32)
        return 0;
    u64 v = clk.perf_read(CUR_CPU_IDENTIFIER);
    if ((s64)v == -2) { seen.atomic_increment(1); return 0; }
    if ((s64)v < 0) { seen.atomic_increment(2); return 0; }
    seen.update(&zero, &v);
    return 0;
}
"""
    with BPF(text=text) as b:
        b["target"][ct.c_int(0)] = ct.c_uint(os.getpid())
        b["clk"].open_perf_event(PerfType.SOFTWARE, PerfSWConfig.CPU_CLOCK)
        os.getppid()
        assert b["seen"][ct.c_int(0)].value > 0  # nanoseconds of this CPU's time
        assert [b["seen"][ct.c_int(i)].value for i in (1, 2)] == [0, 0]
        b["clk"].close_perf_event()
        os.getppid()
        assert [b["seen"][ct.c_int(i)].value for i in (1, 2)] == [1, 0]


def test_attach_perf_event_raw_samples_page_faults():
    """attach_perf_event_raw with BCC's Perf.perf_event_attr (flag bits as fields): a
    software page-fault event sampled at each fault, the faulting address in the sample."""
    import mmap
    from pybpf.bcc import Perf, PerfEventSampleFormat, PerfSWConfig
    text = r"""
BPF_HASH(faults, u64, u64);
int on_fault(struct bpf_perf_event_data *ctx) {
    u64 page = ctx->addr & ~4095ULL;
    faults.increment(page);
    return 0;
}
"""
    attr = Perf.perf_event_attr()
    attr.type, attr.config = Perf.PERF_TYPE_SOFTWARE, PerfSWConfig.PAGE_FAULTS
    attr.sample_period, attr.sample_type = 1, PerfEventSampleFormat.ADDR
    attr.exclude_kernel = 1
    with BPF(text=text) as b:
        b.attach_perf_event_raw(attr=attr, fn_name="on_fault", pid=os.getpid())
        area = mmap.mmap(-1, 4 * 4096)
        try:
            first = ct.c_char.from_buffer(area)
            base = ct.addressof(first)
            del first  # the mmap can close
            for i in range(4):
                area[i * 4096] = 1  # one fault per page
            pages = {k.value for k in b["faults"].keys()}
        finally:
            area.close()
    assert {base + i * 4096 for i in range(4)} <= pages


@pytest.mark.skipif(bool(features.kprobes()), reason="the fallback exists without kprobes")
def test_kprobe_on_a_syscall_function_no_table_calls(tracefs, capfd):
    """A syscall entry function with no syscall tracepoint (no syscall table entry calls it,
    e.g. x86-64's __x64_sys_stat): a kprobe there would never fire, so nothing is attached
    and stderr says so; it counts and detaches as an attached probe."""
    from pybpf.symbols import kernel_symbols
    prefix = BPF.get_syscall_prefix().decode()
    names = [n for n in kernel_symbols().names if re.fullmatch(rf"{prefix}\w+", n) and
             not os.path.isdir(f"{tracefs}/events/syscalls/sys_enter_{n[len(prefix):]}")]
    if not names or not os.path.isdir(f"{tracefs}/events/syscalls/sys_enter_getpid"):
        pytest.skip("every syscall entry function of this kernel has its tracepoint")
    with BPF(text="int f(void *ctx) { return 0; }") as b:
        b.attach_kprobe(event=names[0], fn_name="f")
        assert f"kprobe {names[0]} would never fire; f is not attached" in capfd.readouterr().err
        assert b.num_open_kprobes() == 1
        b.detach_kprobe(event=names[0])
        assert b.num_open_kprobes() == 0


def test_raw_tracepoint_the_kernel_lacks_is_a_missing_hook():
    """A raw tracepoint this kernel does not have (another architecture's, a removed one)
    is an UnsupportedFeatureError (the runner prints it in one line), nothing left open."""
    with BPF(text="int f(void *ctx) { return 0; }") as b:
        with pytest.raises(UnsupportedFeatureError, match="raw tracepoint pybpf_no_such_tp: "
                                                          "no such raw tracepoint"):
            b.attach_raw_tracepoint(tp="pybpf_no_such_tp", fn_name="f")
        assert not b.raw_tracepoint_fds
