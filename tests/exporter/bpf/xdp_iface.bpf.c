// Test program: counts the packets an interface receives, by ifindex, from an XDP program
// whose section names the interface (XDP_SECTION, "xdp/<name>", given at compile time).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} xdp_packets_total SEC(".maps");

SEC(XDP_SECTION)
int count_packets(struct xdp_md *ctx)
{
	u32 ifindex = ctx->ingress_ifindex;
	u64 one = 1, *n = bpf_map_lookup_elem(&xdp_packets_total, &ifindex);

	if (n)
		__sync_fetch_and_add(n, 1);
	else
		bpf_map_update_elem(&xdp_packets_total, &ifindex, &one, BPF_NOEXIST);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
