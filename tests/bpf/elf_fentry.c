/* fentry/fexit by section name: the loader finds the attach target's BTF id in vmlinux. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

__u64 entries, exits;

SEC("fentry/do_unlinkat")
int on_unlink_entry(void *ctx)
{
	__sync_fetch_and_add(&entries, 1);
	return 0;
}

SEC("fexit/do_unlinkat")
int on_unlink_exit(void *ctx)
{
	__sync_fetch_and_add(&exits, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
