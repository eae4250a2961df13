/* .kconfig externs: kernel version, bool/tristate/int/string options, a missing __weak one. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>


extern __u32 LINUX_KERNEL_VERSION __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern enum libbpf_tristate CONFIG_BPF_JIT __kconfig;
extern int CONFIG_HZ __kconfig;
extern char CONFIG_LOCALVERSION[16] __kconfig __weak;
extern int CONFIG_PYBPF_DOES_NOT_EXIST __kconfig __weak;

__u64 seen_version, seen_syscall, seen_jit, seen_hz, seen_missing;
char seen_localversion[16];

SEC("xdp")
int read_kconfig(struct xdp_md *ctx)
{
	seen_version = LINUX_KERNEL_VERSION;
	seen_syscall = CONFIG_BPF_SYSCALL;
	seen_jit = CONFIG_BPF_JIT;
	seen_hz = CONFIG_HZ;
	seen_missing = CONFIG_PYBPF_DOES_NOT_EXIST;
	__builtin_memcpy(seen_localversion, CONFIG_LOCALVERSION, 16);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
