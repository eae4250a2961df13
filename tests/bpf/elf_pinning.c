/* LIBBPF_PIN_BY_NAME: the map is pinned under the pin root and reused by the next load. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} shared_counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} private_counter SEC(".maps");

SEC("xdp")
int bump(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&shared_counter, &key);
	__u64 *w = bpf_map_lookup_elem(&private_counter, &key);

	if (v)
		__sync_fetch_and_add(v, 1);
	if (w)
		__sync_fetch_and_add(w, 1);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
