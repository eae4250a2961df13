/* Map-in-map: an array of maps whose slots the object fills from .maps initialisers. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 1);
};

struct inner first SEC(".maps"), second SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct inner);
} outer SEC(".maps") = {
	.values = { [0] = &first, [2] = &second },
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, struct {
		__uint(type, BPF_MAP_TYPE_HASH);
		__type(key, __u32);
		__type(value, __u64);
		__uint(max_entries, 8);
	});
} by_hash SEC(".maps");

static __attribute__((always_inline)) void write_slot(__u32 slot)
{
	__u32 zero = 0, value = 10 + slot;
	void *inner = bpf_map_lookup_elem(&outer, &slot);

	if (inner)
		bpf_map_update_elem(inner, &zero, &value, BPF_ANY);
}

/* writes 10 + slot into element 0 of the inner map at each filled slot of outer */
SEC("xdp")
int write_inner(struct xdp_md *ctx)
{
	__u32 zero = 0;

	write_slot(0);
	write_slot(1);
	write_slot(2);
	write_slot(3);
	return bpf_map_lookup_elem(&by_hash, &zero) ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
