/* A typed __ksym: a per-CPU kernel variable by its vmlinux BTF id (BPF_PSEUDO_BTF_ID). The
 * kernel resolves its address through kallsyms, so it loads only with CONFIG_KALLSYMS_ALL. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

extern const int bpf_prog_active __ksym;

__u64 prog_active_seen;

SEC("xdp")
int typed_ksym(struct xdp_md *ctx)
{
	const int *active = bpf_this_cpu_ptr(&bpf_prog_active);

	prog_active_seen = *active + 1;
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
