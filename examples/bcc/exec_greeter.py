#!/usr/bin/env python3
"""A BCC-style script in the shape of "Learning eBPF" chapter 4: a hash map ``config`` of
greetings by uid, filled from Python; on every execve the program sends pid, uid, command and
the caller's greeting to user space through a perf buffer (``--ringbuf``: a ring buffer).

    python3 -m pybpf.bcc examples/bcc/exec_greeter.py [--ringbuf] [--count N] [--run CMD]

Written for BCC's API: it runs unchanged with BCC where BCC works, and with pybpf's front end
(no libbcc, no LLVM libraries, no kernel headers). ``--run CMD`` runs CMD once tracing
started; ``--count N`` stops after N events.
"""
import argparse
import ctypes as ct
import subprocess

from bcc import BPF

C_TEXT = r"""
struct greeting_t {
    char text[13];
};

BPF_HASH(config, u32, struct greeting_t);
OUTPUT_DECL;

struct event_t {
    int pid;
    int uid;
    char comm[16];
    char text[12];
};

int greet(void *ctx) {
    struct event_t ev = {};
    char fallback[12] = "Hello World";
    struct greeting_t *g;

    ev.pid = bpf_get_current_pid_tgid() >> 32;
    ev.uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
    bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
    g = config.lookup(&ev.uid);
    if (g != 0)
        bpf_probe_read_kernel(&ev.text, sizeof(ev.text), g->text);
    else
        bpf_probe_read_kernel(&ev.text, sizeof(ev.text), fallback);
    SUBMIT;
    return 0;
}
"""

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--ringbuf", action="store_true", help="a ring buffer, not a perf buffer")
parser.add_argument("--count", type=int, default=0, help="stop after this many events")
parser.add_argument("--run", help="a command to run once tracing started")
args = parser.parse_args()

if args.ringbuf:
    text = C_TEXT.replace("OUTPUT_DECL", "BPF_RINGBUF_OUTPUT(output, 1)").replace(
        "SUBMIT", "output.ringbuf_output(&ev, sizeof(ev), 0)")
else:
    text = C_TEXT.replace("OUTPUT_DECL", "BPF_PERF_OUTPUT(output)").replace(
        "SUBMIT", "output.perf_submit(ctx, &ev, sizeof(ev))")

b = BPF(text=text)
b.attach_kprobe(event=b.get_syscall_fnname("execve"), fn_name="greet")
b["config"][ct.c_int(0)] = ct.create_string_buffer(b"Hey root!")
b["config"][ct.c_int(501)] = ct.create_string_buffer(b"Hi user 501!")

seen = 0


def on_event(_cpu_or_ctx, data, _size):
    global seen
    ev = b["output"].event(data)
    print(f"{ev.pid} {ev.uid} {ev.comm.decode()} {ev.text.decode()}", flush=True)
    seen += 1


if args.ringbuf:
    b["output"].open_ring_buffer(on_event)
    poll = b.ring_buffer_poll
else:
    b["output"].open_perf_buffer(on_event)
    poll = b.perf_buffer_poll

print("tracing execve, Ctrl-C to end", flush=True)
if args.run:
    subprocess.run(args.run, shell=True)
while not args.count or seen < args.count:
    poll()
