/* .ksyms: an untyped kernel symbol (its kallsyms address), kfuncs (BPF_PSEUDO_KFUNC_CALL by
 * BTF id) and a __weak kfunc the kernel lacks (address 0, its call never reached). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct task_struct {
	int pid;
} __attribute__((preserve_access_index));

extern const void __start_rodata __ksym;
extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;
extern void pybpf_no_such_kfunc(void) __ksym __weak;

const volatile __s32 lookup_pid = 1;
__u64 start_rodata_addr, found_pid, have_missing;

SEC("xdp")
int use_ksyms(struct xdp_md *ctx)
{
	struct task_struct *t;

	start_rodata_addr = (__u64)&__start_rodata;
	t = bpf_task_from_pid(lookup_pid);
	if (t) {
		found_pid = 1;
		bpf_task_release(t);
	}
	have_missing = (__u64)pybpf_no_such_kfunc != 0;
	if (have_missing)
		pybpf_no_such_kfunc();
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
