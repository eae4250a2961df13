/* Network and cgroup hooks from C, loaded by pybpf.elf and attached with pybpf.links:
 * XDP and TC programs that count and drop UDP datagrams to one port (the port a .rodata
 * constant set before load), and a cgroup connect4 program refusing that port. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

const volatile __u16 port = 9;
__u64 xdp_drops, tc_drops, refused;

static __always_inline int udp_to_port(void *data, void *data_end)
{
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);

	if ((void *)(udp + 1) > data_end)
		return 0;
	if (eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 || ip->protocol != IPPROTO_UDP)
		return 0;
	return udp->dest == bpf_htons(port);
}

SEC("xdp")
int xdp_drop_port(struct xdp_md *ctx)
{
	if (!udp_to_port((void *)(long)ctx->data, (void *)(long)ctx->data_end))
		return XDP_PASS;
	__sync_fetch_and_add(&xdp_drops, 1);
	return XDP_DROP;
}

SEC("tc")
int tc_drop_port(struct __sk_buff *skb)
{
	if (!udp_to_port((void *)(long)skb->data, (void *)(long)skb->data_end))
		return TC_ACT_OK;
	__sync_fetch_and_add(&tc_drops, 1);
	return TC_ACT_SHOT;
}

SEC("cgroup/connect4")
int refuse_port(struct bpf_sock_addr *ctx)
{
	if (ctx->user_port != bpf_htons(port))
		return 1;
	__sync_fetch_and_add(&refused, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
