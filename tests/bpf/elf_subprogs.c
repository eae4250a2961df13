/* bpf-to-bpf calls: static subprograms shared by two programs, nested calls. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 result_a, result_b;

static __attribute__((noinline)) __u64 square(__u64 x)
{
	return x * x;
}

static __attribute__((noinline)) __u64 sum_of_squares(__u64 a, __u64 b)
{
	return square(a) + square(b);
}

SEC("xdp")
int calls_a(struct xdp_md *ctx)
{
	result_a = sum_of_squares(3, 4);
	return XDP_PASS;
}

SEC("socket")
int calls_b(struct __sk_buff *skb)
{
	result_b = square(skb->len);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
