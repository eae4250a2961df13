/* Prog array slots filled from .maps initialisers; tail calls between programs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 visited;

SEC("xdp")
int tail_pass(struct xdp_md *ctx)
{
	visited |= 2;
	return XDP_PASS;
}

SEC("xdp")
int tail_drop(struct xdp_md *ctx)
{
	visited |= 4;
	return XDP_DROP;
}

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__array(values, int (void *));
} jump_table SEC(".maps") = {
	.values = { [1] = (void *)&tail_pass, [3] = (void *)&tail_drop },
};

const volatile __u32 slot = 1;

SEC("xdp")
int entry(struct xdp_md *ctx)
{
	visited |= 1;
	bpf_tail_call(ctx, &jump_table, slot);
	return XDP_ABORTED; /* empty slot */
}

char LICENSE[] SEC("license") = "GPL";
