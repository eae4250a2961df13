#!/usr/bin/env python3
"""An execsnoop-like BCC tool on the syscall tracepoints (no kprobes needed): one line per
execve, with the parent's pid, the return value and the file executed.

    python3 -m pybpf.bcc examples/bcc/exec_snoop.py [-x] [-n NAME] [--count N]

Written for BCC's API (runs unchanged with BCC where BCC works, and with pybpf's front end).
``-x``: failed execs only; ``-n NAME``: only commands whose name contains NAME; ``--count N``:
exit after N lines. It prints its header once tracing started; Ctrl-C ends it.
"""
import argparse

from bcc import BPF

C_TEXT = r"""
#include <linux/sched.h>

struct start_t {
    u32 ppid;
    char file[64];
};

struct exec_t {
    u32 pid;
    u32 ppid;
    int ret;
    char comm[TASK_COMM_LEN];
    char file[64];
};

BPF_HASH(starts, u32, struct start_t);
BPF_PERF_OUTPUT(execs);

TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    struct start_t s = {};
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u32 pid = bpf_get_current_pid_tgid() >> 32;

    s.ppid = task->real_parent->tgid;
    bpf_probe_read_user_str(&s.file, sizeof(s.file), args->filename);
    starts.update(&pid, &s);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve) {
    struct exec_t e = {};
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    struct start_t *s = starts.lookup(&pid);

    if (s == 0)
        return 0;
    e.pid = pid;
    e.ppid = s->ppid;
    e.ret = args->ret;
    bpf_get_current_comm(&e.comm, sizeof(e.comm));
    __builtin_memcpy(&e.file, s->file, sizeof(e.file));
    starts.delete(&pid);
    execs.perf_submit(args, &e, sizeof(e));
    return 0;
}
"""

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("-x", "--fails", action="store_true", help="only failed execs")
parser.add_argument("-n", "--name", help="only commands whose name contains NAME")
parser.add_argument("--count", type=int, default=0, help="exit after this many lines")
args = parser.parse_args()

b = BPF(text=C_TEXT)
shown = 0


def on_exec(_cpu, data, _size):
    global shown
    e = b["execs"].event(data)
    comm = e.comm.decode(errors="replace")
    if (args.fails and e.ret == 0) or (args.name and args.name not in comm):
        return
    print(f"{comm:<16} {e.pid:<7} {e.ppid:<7} {e.ret:>4} {e.file.decode(errors='replace')}",
          flush=True)
    shown += 1


b["execs"].open_perf_buffer(on_exec)
print(f"{'PCOMM':<16} {'PID':<7} {'PPID':<7} {'RET':>4} FILE", flush=True)
try:
    while not args.count or shown < args.count:
        b.perf_buffer_poll()
except KeyboardInterrupt:
    pass
