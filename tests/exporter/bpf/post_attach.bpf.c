// Test program: runs once when the exporter has attached every config (a uprobe on the
// exporter's own post_attach_mark function) and counts it by the process that ran it; a
// tracepoint counts execs, so the init step and a regular program share the object.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u32);
	__type(value, u64);
} start_marks_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} execs_seen_total SEC(".maps");

SEC("uprobe//proc/self/exe:post_attach_mark")
int on_start(struct pt_regs *ctx)
{
	u32 pid = bpf_get_current_pid_tgid() >> 32;
	u64 one = 1, *n = bpf_map_lookup_elem(&start_marks_total, &pid);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&start_marks_total, &pid, &one, BPF_NOEXIST);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	u32 zero = 0;
	u64 *n = bpf_map_lookup_elem(&execs_seen_total, &zero);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
