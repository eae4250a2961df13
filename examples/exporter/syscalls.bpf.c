// Counts system calls by number (raw tracepoint sys_enter) and program executions by the
// command name they start (tracepoint sched/sched_process_exec). Served by pybpf exporter
// as ebpf_exporter_syscalls_total{syscall} and ebpf_exporter_execs_total{comm}.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);               /* syscall number */
	__type(value, u64);
} syscalls_total SEC(".maps");

struct comm_key {
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct comm_key);
	__type(value, u64);
} execs_total SEC(".maps");

static __always_inline void add(void *map, const void *key)
{
	u64 one = 1, *count = bpf_map_lookup_elem(map, key);

	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(map, key, &one, BPF_NOEXIST);
}

SEC("raw_tp/sys_enter")
int count_syscall(struct bpf_raw_tracepoint_args *ctx)
{
	u32 nr = (u32)ctx->args[1];     /* sys_enter(struct pt_regs *regs, long id) */

	add(&syscalls_total, &nr);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int count_exec(void *ctx)
{
	struct comm_key key = {};

	bpf_get_current_comm(key.comm, sizeof(key.comm));
	add(&execs_total, &key);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
