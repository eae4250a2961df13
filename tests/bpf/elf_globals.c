/* Global data: .rodata (set before load), .data, .bss and custom .data.* / .rodata.* sections. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile __u32 verdict = XDP_PASS;     /* .rodata: the loader may change it */
const volatile __s32 adjust = -2;
__u64 packets = 100;                          /* .data */
__u64 bytes;                                  /* .bss */
__u32 last_len;                               /* .bss */
__u64 custom_counter SEC(".data.custom") = 7; /* .data.custom: a map of its own */
const volatile char greeting[8] SEC(".rodata.custom") = "hello";
static __u32 hidden_calls;                    /* static: still in .bss */

SEC("xdp")
int globals(struct xdp_md *ctx)
{
	__u32 len = ctx->data_end - ctx->data;

	packets++;
	bytes += len;
	last_len = len + adjust;
	custom_counter += greeting[0];
	hidden_calls++;
	return verdict;
}

char LICENSE[] SEC("license") = "GPL";
