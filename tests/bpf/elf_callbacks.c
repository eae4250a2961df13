/* A callback: bpf_loop() takes a static function's address (ld_imm64, BPF_PSEUDO_FUNC). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 loop_sum;

static long add_index(__u32 index, void *ctx)
{
	*(__u64 *)ctx += index;
	return 0;
}

SEC("xdp")
int sum_loop(struct xdp_md *ctx)
{
	__u64 sum = 0;

	bpf_loop(5, add_index, &sum, 0);
	loop_sum = sum;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
