/* A kfunc declared with a prototype the kernel's does not match: the load must fail, naming it
 * (libbpf refuses it too). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern long bpf_task_from_pid(long a, long b, long c) __ksym;

__u64 result;

SEC("xdp")
int wrong_kfunc(struct xdp_md *ctx)
{
	result = bpf_task_from_pid(1, 2, 3);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
