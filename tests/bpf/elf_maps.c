/* Map kinds in SEC(".maps"): key/value by type and by size, flags, map_extra, numa_node. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct value { __u64 packets; __u32 last_len; __u32 pad; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct value);
	__uint(max_entries, 64);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} by_type SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(key_size, 4);
	__uint(value_size, 8);
	__uint(max_entries, 4);
} by_size SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} percpu SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 32);
	__uint(map_flags, BPF_F_NUMA_NODE);  /* libbpf uses numa_node only with this flag */
	__uint(numa_node, 0);
} lru_on_node0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} perf_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__type(value, __u32);
	__uint(max_entries, 8);
} lengths SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_BLOOM_FILTER);
	__type(value, __u32);
	__uint(max_entries, 16);
	__uint(map_extra, 3);
} seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__type(key, __u64);
	__type(value, __u32);
	__uint(max_entries, 16);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} a_rather_long_map_name SEC(".maps");

SEC("xdp")
int count_packets(struct xdp_md *ctx)
{
	__u32 key = 0, len = ctx->data_end - ctx->data;
	struct value init = { 1, len, 0 }, *v;
	__u64 *slot, *pc;

	v = bpf_map_lookup_elem(&by_type, &key);
	if (v) {
		v->packets++;
		v->last_len = len;
	} else {
		bpf_map_update_elem(&by_type, &key, &init, BPF_NOEXIST);
	}
	slot = bpf_map_lookup_elem(&by_size, &key);
	if (slot)
		*slot += len;
	pc = bpf_map_lookup_elem(&percpu, &key);
	if (pc)
		(*pc)++;
	bpf_map_push_elem(&lengths, &len, BPF_EXIST);
	bpf_map_push_elem(&seen, &len, 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
