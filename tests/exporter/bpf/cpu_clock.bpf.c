// Test program: counts the samples of the software cpu-clock event, 99 a second on every
// CPU, by CPU; the section says the event as ebpf_exporter's perf_event convention does.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1024);
	__type(key, u32);
	__type(value, u64);
} cpu_clock_samples_total SEC(".maps");

SEC("perf_event/type=1,config=0,frequency=99")
int count_sample(struct bpf_perf_event_data *ctx)
{
	u32 cpu = bpf_get_smp_processor_id();
	u64 *n = bpf_map_lookup_elem(&cpu_clock_samples_total, &cpu);

	if (n)
		__sync_fetch_and_add(n, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
