// Program executions by the user running them (tracepoint sched/sched_process_exec); the
// config names users with a decoder written in Python (user_names.py beside it).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u32);               /* uid */
	__type(value, u64);
} execs_by_user_total SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int count_exec_by_user(void *ctx)
{
	u32 uid = (u32)bpf_get_current_uid_gid();
	u64 one = 1, *count = bpf_map_lookup_elem(&execs_by_user_total, &uid);

	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&execs_by_user_total, &uid, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
