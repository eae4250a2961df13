// High-resolution timer expiries by the kernel function the timer calls (tracepoint
// timer/hrtimer_expire_entry): the key is a kernel address, named by the ksym decoder.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, u64);               /* the timer's function */
	__type(value, u64);
} hrtimer_expiries_total SEC(".maps");

SEC("tracepoint/timer/hrtimer_expire_entry")
int hrtimer_expire(struct trace_event_raw_hrtimer_expire_entry *ctx)
{
	u64 fn = (u64)ctx->function, one = 1, *count;

	count = bpf_map_lookup_elem(&hrtimer_expiries_total, &fn);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&hrtimer_expiries_total, &fn, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
