/* struct_ops maps: a TCP congestion control made of BPF programs, in both conventions
 * (SEC(".struct_ops"): registered by a map update; SEC(".struct_ops.link"): through a link).
 * The local struct has only the members it sets, in its own order, plus one the kernel
 * lacks (left zero, so skipped); one struct_ops program no map uses (not loaded).
 * Not in test_peer's corpus: Debian's libbpf 1.1 predates .struct_ops.link and skipping
 * zeroed members the kernel lacks. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

struct sock;

struct tcp_congestion_ops {
	char name[16];
	__u32 (*undo_cwnd)(struct sock *sk);
	void (*init)(struct sock *sk);
	__u32 (*ssthresh)(struct sock *sk);
	void (*cong_avoid)(struct sock *sk, __u32 ack, __u32 acked);
	int pybpf_extra;
} __attribute__((preserve_access_index));

__u64 inits, avoids;

SEC("struct_ops/ca_init")
void BPF_PROG(ca_init, struct sock *sk)
{
	__sync_fetch_and_add(&inits, 1);
}

SEC("struct_ops/ca_ssthresh")
__u32 BPF_PROG(ca_ssthresh, struct sock *sk)
{
	return 2;
}

SEC("struct_ops/ca_cong_avoid")
void BPF_PROG(ca_cong_avoid, struct sock *sk, __u32 ack, __u32 acked)
{
	__sync_fetch_and_add(&avoids, 1);
}

SEC("struct_ops/ca_undo_cwnd")
__u32 BPF_PROG(ca_undo_cwnd, struct sock *sk)
{
	return 10;
}

SEC("struct_ops/ca_unused")
__u32 BPF_PROG(ca_unused, struct sock *sk)
{
	return 0;
}

/* the same table in both conventions; -DCA_SUFFIX='"_x"' names them apart */
#ifndef CA_SUFFIX
#define CA_SUFFIX ""
#endif
#define CONGESTION_OPS(ca_name) {		\
	.name = ca_name,			\
	.init = (void *)ca_init,		\
	.ssthresh = (void *)ca_ssthresh,	\
	.cong_avoid = (void *)ca_cong_avoid,	\
	.undo_cwnd = (void *)ca_undo_cwnd,	\
}

SEC(".struct_ops")
struct tcp_congestion_ops pybpf_reg = CONGESTION_OPS("pybpf_reg" CA_SUFFIX);

SEC(".struct_ops.link")
struct tcp_congestion_ops pybpf_link = CONGESTION_OPS("pybpf_link" CA_SUFFIX);

char LICENSE[] SEC("license") = "GPL";
