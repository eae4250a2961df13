/* Maps user space reads by their BTF types (ints, structs with enums and char arrays), and
 * ring/perf buffer records of a struct the object's BTF keeps (a global references it) and
 * of one it lacks (used only by a local variable: clang leaves it out). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

enum kind { KIND_TCP = 6, KIND_UDP = 17 };

struct flow { __u32 saddr; __u16 port; __u8 proto; char comm[16]; };
struct stats { __u64 packets; char name[8]; enum kind kind; __u16 ports[2]; };

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 16);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow);
	__type(value, struct stats);
	__uint(max_entries, 16);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
	__uint(key_size, sizeof(int));
	__uint(value_size, sizeof(int));
} perf_events SEC(".maps");

struct event { __u32 pid; char comm[16]; __u64 seq; };
struct event *unused_event __attribute__((unused));	/* keeps struct event in the BTF */

struct local_only { __u32 a; __u32 b; };	/* only a local below: not in the BTF */

__u64 seq;

SEC("xdp")
int emit(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 one = 1, *v;
	struct event *e;
	struct event pe = { .pid = 43 };
	struct local_only lo = { 1, 2 };

	v = bpf_map_lookup_elem(&counts, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&counts, &key, &one, BPF_ANY);
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (e) {
		e->pid = 42;
		__builtin_memcpy(e->comm, "pybpf-ring\0\0\0\0\0", 16);
		e->seq = ++seq;
		bpf_ringbuf_submit(e, 0);
	}
	pe.seq = seq;
	__builtin_memcpy(pe.comm, "pybpf-perf\0\0\0\0\0", 16);
	bpf_perf_event_output(ctx, &perf_events, BPF_F_CURRENT_CPU, &pe, sizeof(pe));
	bpf_ringbuf_output(&events, &lo, sizeof(lo), 0);
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
