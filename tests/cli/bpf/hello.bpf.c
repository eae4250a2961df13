// The "Learning eBPF" chapter 3 program the seed loads with `bpftool prog load`, plus a
// BTF-typed hash map and a tracepoint program for `loadall ... autoattach`.
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct point {
	int x;
	unsigned char tag[4];
	char label[8];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, struct point);
} points SEC(".maps");

int counter = 0;

/* shown by `prog show` (bpftool's program metadata) */
volatile const char bpf_metadata_app[] SEC(".rodata") = "pybpf-cli";
volatile const int bpf_metadata_level = 3;

SEC("xdp")
int hello(struct xdp_md *ctx)
{
	bpf_printk("Hello World %d", counter);
	counter++;
	return XDP_PASS;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int on_getppid(void *ctx)
{
	__u32 key = 1;
	struct point *p = bpf_map_lookup_elem(&points, &key);

	if (p)
		p->x++;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("socket")
int a_rather_long_function_name(void *ctx)
{
	return 0;
}
