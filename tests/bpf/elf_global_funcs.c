/* Global (non-static) functions: verified on their own, called from two programs. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 calls;

__attribute__((noinline)) int classify(__u32 len)
{
	calls++;
	if (len < 64)
		return XDP_DROP;
	return XDP_PASS;
}

__attribute__((noinline)) int double_it(int x)
{
	return 2 * x;
}

SEC("xdp")
int by_length(struct xdp_md *ctx)
{
	return classify(ctx->data_end - ctx->data);
}

SEC("tc")
int doubled(struct __sk_buff *skb)
{
	return double_it(skb->len);
}

char LICENSE[] SEC("license") = "GPL";
