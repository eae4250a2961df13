/* Programs whose translated (xlated) form tests pybpf.asm's disassembler against bpftool:
 * map references, global data (map values), helper calls the kernel inlines or rewrites,
 * bpf-to-bpf calls, tail calls, atomics, legacy packet loads, 32-bit jumps. */
/* Self-contained: the few UAPI and libbpf definitions needed, no system headers. */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;

#define SEC(name) __attribute__((section(name), used))
#define __uint(name, val) int (*name)[val]
#define __type(name, val) typeof(val) *name

enum { BPF_MAP_TYPE_HASH = 1, BPF_MAP_TYPE_ARRAY = 2, BPF_MAP_TYPE_PROG_ARRAY = 3 };
enum { BPF_ANY = 0 };
enum { XDP_DROP = 1, XDP_PASS = 2 };

struct xdp_md {
	__u32 data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex;
};

struct __sk_buff {
	__u32 len;
};

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value,
				   __u64 flags) = (void *)2;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static long (*bpf_tail_call)(void *ctx, void *prog_array_map, __u32 index) = (void *)12;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, __u32);
	__type(value, __u64);
} asm_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} asm_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} asm_jumps SEC(".maps");

__u64 asm_counter;			/* .bss */
__u64 asm_data = 7;			/* .data */
const volatile __u32 asm_limit = 100;	/* .rodata */
__u32 asm_small[4];			/* .bss, a non-zero offset into the value */

unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");

static __attribute__((noinline)) __u64 asm_mix(__u64 a, __u32 b)
{
	if ((__u32)a > b)
		return a * 3 - b;
	return (a << 2) ^ (b >> 1);
}

static __attribute__((noinline)) int asm_atomics(__u64 *v, __u32 *w)
{
	__sync_fetch_and_add(v, 1);
#ifdef ASM_CPU_V3	/* compiled with -mcpu=v3: 32-bit and fetching atomics */
	__sync_fetch_and_or(w, 2);
	__u64 old = __sync_fetch_and_add(v, 5);
	old += __sync_fetch_and_and(v, 0xff);
	old += __sync_fetch_and_xor(w, 3);
	old += __sync_lock_test_and_set(v, old);
	old += __sync_val_compare_and_swap(v, old, 9);
	old += __sync_val_compare_and_swap(w, 1, 2);
	return old;
#else
	return 0;
#endif
}

SEC("xdp")
int asm_xdp(struct xdp_md *ctx)
{
	__u32 key = ctx->rx_queue_index & 3;
	__u64 init = bpf_ktime_get_ns(), *v;
	__u64 r = 0;

	v = bpf_map_lookup_elem(&asm_hash, &key);
	if (!v) {
		bpf_map_update_elem(&asm_hash, &key, &init, BPF_ANY);
		return XDP_PASS;
	}
	r += asm_mix(*v, key);
	v = bpf_map_lookup_elem(&asm_array, &key);
	if (v)
		r += asm_atomics(v, &asm_small[1]);
	asm_counter += r;
	if (asm_data > asm_limit)
		bpf_tail_call(ctx, &asm_jumps, 0);
	return r & 1 ? XDP_DROP : XDP_PASS;
}

SEC("socket")
int asm_socket(struct __sk_buff *skb)
{
	__u32 proto = load_half(skb, 12);
	__u32 first = load_byte(skb, 14);

	if (proto == 0x0800 && (first >> 4) == 4)
		return -1;
	__sync_fetch_and_add(&asm_counter, 1);
	return skb->len > asm_limit ? 0 : skb->len;
}

char LICENSE[] SEC("license") = "GPL";
