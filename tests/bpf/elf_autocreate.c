/* A map the loader may skip (autocreate off): the program uses it only when the .rodata
 * constant use_counts says so; with it 0 the verifier drops that code, poisoned or not. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

const volatile int use_counts = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} counts SEC(".maps");

SEC("xdp")
int count_if_asked(struct xdp_md *ctx)
{
	if (use_counts) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&counts, &zero);

		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
