/* Auto-attach by section: a tracepoint, a raw tracepoint, a BTF tracepoint (tp_btf), and an XDP program (which needs
 * an interface given in code); a program name longer than the kernel's 15 bytes. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 tp_hits, raw_hits, btf_hits;

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
	__sync_fetch_and_add(&tp_hits, 1);
	return 0;
}

SEC("raw_tp/sys_enter")
int count_raw_sys_enter_calls(void *ctx)
{
	__sync_fetch_and_add(&raw_hits, 1);
	return 0;
}

SEC("tp_btf/sys_enter")
int count_btf_sys_enter(void *ctx)
{
	__sync_fetch_and_add(&btf_hits, 1);
	return 0;
}

SEC("xdp")
int not_auto(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
