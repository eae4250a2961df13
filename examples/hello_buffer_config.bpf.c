// SPDX-License-Identifier: GPL-2.0
/* "Learning eBPF", chapter 4: hello_buffer_config in libbpf-style C.
 *
 * On every execve, send {pid, uid, command, message} to user space through the perf event
 * array `output` (the ring buffer `output` with USE_RINGBUF: hello_ring_buffer_config.bpf.c);
 * the message is the one user space put in `config` for the caller's uid,
 * else "Hello World". Two entry points, the user-space script loads the one the kernel
 * supports: a ksyscall kprobe (the book's choice) or the sys_enter_execve tracepoint.
 *
 * No vmlinux.h here: it declares `typedef struct config_s config`, which would clash with
 * the map named `config` (pybpf.compile(..., reserved=["config"]) is the way around it).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

typedef unsigned int u32;
typedef unsigned long long u64;

struct data_t {
	int pid;
	int uid;
	char command[16];
	char message[12];
};

/* Puts struct data_t in the object's BTF, so user space decodes records by name. */
const struct data_t *unused_data_t __attribute__((unused));

struct msg_t {
	char message[12];
};

#ifdef USE_RINGBUF
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} output SEC(".maps");
#else
struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} output SEC(".maps");
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);
	__type(value, struct msg_t);
} config SEC(".maps");

char message[12] = "Hello World";

static __always_inline int hello(void *ctx)
{
	struct data_t data = {};
	struct msg_t *p;
	u32 uid;

	data.pid = bpf_get_current_pid_tgid() >> 32;
	uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
	data.uid = uid;
	bpf_get_current_comm(&data.command, sizeof(data.command));

	p = bpf_map_lookup_elem(&config, &uid);
	if (p)
		bpf_probe_read_kernel(&data.message, sizeof(data.message), p->message);
	else
		bpf_probe_read_kernel(&data.message, sizeof(data.message), message);

#ifdef USE_RINGBUF
	bpf_ringbuf_output(&output, &data, sizeof(data), 0);
#else
	bpf_perf_event_output(ctx, &output, BPF_F_CURRENT_CPU, &data, sizeof(data));
#endif
	return 0;
}

SEC("ksyscall/execve")
int hello_kprobe(void *ctx)
{
	return hello(ctx);
}

SEC("tp/syscalls/sys_enter_execve")
int hello_tp(void *ctx)
{
	return hello(ctx);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
