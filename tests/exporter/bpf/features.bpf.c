// Test program for pybpf exporter's less common config features, all driven by exec:
// a perf_event_array counter, a per-CPU array read with a "cpu" label, a kaddrs symbol
// address, and a cgroup id map the exporter fills (cgroup_id_map).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

const volatile u64 kaddr_hrtimer_wakeup = 0;   /* set by the exporter from kaddrs */

struct comm_t {
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(u32));
	__uint(value_size, sizeof(u32));
} exec_events_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} percpu_execs_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, u64);
} hrtimer_wakeups_total SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u64);
	__type(value, u64);
} cgroup_ids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, u64);
	__type(value, u64);
} cgroup_execs_total SEC(".maps");

SEC("tracepoint/sched/sched_process_exec")
int on_exec(void *ctx)
{
	struct comm_t c = {};
	u32 zero = 0;
	u64 cgid = bpf_get_current_cgroup_id(), one = 1, *count;

	bpf_get_current_comm(c.comm, sizeof(c.comm));
	bpf_perf_event_output(ctx, &exec_events_total, BPF_F_CURRENT_CPU, &c, sizeof(c));
	count = bpf_map_lookup_elem(&percpu_execs_total, &zero);
	if (count)
		*count += 1;
	if (bpf_map_lookup_elem(&cgroup_ids, &cgid)) {
		count = bpf_map_lookup_elem(&cgroup_execs_total, &cgid);
		if (count)
			__sync_fetch_and_add(count, 1);
		else
			bpf_map_update_elem(&cgroup_execs_total, &cgid, &one, BPF_NOEXIST);
	}
	return 0;
}

SEC("tracepoint/timer/hrtimer_expire_entry")
int on_hrtimer(struct trace_event_raw_hrtimer_expire_entry *ctx)
{
	u32 zero = 0;
	u64 *count;

	if ((u64)ctx->function != kaddr_hrtimer_wakeup)
		return 0;
	count = bpf_map_lookup_elem(&hrtimer_wakeups_total, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
