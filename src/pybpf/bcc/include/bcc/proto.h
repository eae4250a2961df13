/* Packet headers for BCC's packet cursors (socket filter and tc programs):
 *
 *   u8 *cursor = 0;
 *   struct ethernet_t *eth = cursor_advance(cursor, sizeof(*eth));
 *   if (eth->type == ETH_P_IP) ...
 *
 * A cursor holds an offset into the packet, not an address: pybpf's translator turns every
 * read of a field of these structs into bpf_dext_pkt(skb, offset, bit offset, bits) and every
 * write into bpf_dins_pkt(...), the fields' positions in network order given below (each
 * struct is its header's bits in order, most significant first). */
#ifndef __PYBPF_BCC_PROTO_H
#define __PYBPF_BCC_PROTO_H

#define BPF_PACKET_HEADER __attribute__((packed))

#define cursor_advance(_cursor, _len) \
	({ void *____tmp = _cursor; _cursor += _len; ____tmp; })

struct ethernet_t {
	unsigned long long dst:48;
	unsigned long long src:48;
	unsigned int type:16;
} BPF_PACKET_HEADER;

struct dot1q_t {
	unsigned short pri:3;
	unsigned short cfi:1;
	unsigned short vlanid:12;
	unsigned short type;
} BPF_PACKET_HEADER;

struct arp_t {
	unsigned short htype;
	unsigned short ptype;
	unsigned char hlen;
	unsigned char plen;
	unsigned short oper;
	unsigned long long sha:48;
	unsigned long long spa:32;
	unsigned long long tha:48;
	unsigned int tpa;
} BPF_PACKET_HEADER;

struct ip_t {
	unsigned char ver:4;
	unsigned char hlen:4;
	unsigned char tos;
	unsigned short tlen;
	unsigned short identification;
	unsigned short ffo_unused:1;
	unsigned short df:1;
	unsigned short mf:1;
	unsigned short foffset:13;
	unsigned char ttl;
	unsigned char nextp;
	unsigned short hchecksum;
	unsigned int src;
	unsigned int dst;
} BPF_PACKET_HEADER;

struct icmp_t {
	unsigned char type;
	unsigned char code;
	unsigned short checksum;
} BPF_PACKET_HEADER;

struct ip6_t {
	unsigned int ver:4;
	unsigned int priority:8;
	unsigned int flow_label:20;
	unsigned short payload_len;
	unsigned char next_header;
	unsigned char hop_limit;
	unsigned long long src_hi;
	unsigned long long src_lo;
	unsigned long long dst_hi;
	unsigned long long dst_lo;
} BPF_PACKET_HEADER;

struct ip6_opt_t {
	unsigned char next_header;
	unsigned char ext_len;
	unsigned char pad[6];
} BPF_PACKET_HEADER;

struct icmp6_t {
	unsigned char type;
	unsigned char code;
	unsigned short checksum;
} BPF_PACKET_HEADER;

struct udp_t {
	unsigned short sport;
	unsigned short dport;
	unsigned short length;
	unsigned short crc;
} BPF_PACKET_HEADER;

struct tcp_t {
	unsigned short src_port;
	unsigned short dst_port;
	unsigned int seq_num;
	unsigned int ack_num;
	unsigned char offset:4;
	unsigned char reserved:4;
	unsigned char flag_cwr:1;
	unsigned char flag_ece:1;
	unsigned char flag_urg:1;
	unsigned char flag_ack:1;
	unsigned char flag_psh:1;
	unsigned char flag_rst:1;
	unsigned char flag_syn:1;
	unsigned char flag_fin:1;
	unsigned short rcv_wnd;
	unsigned short cksum;
	unsigned short urg_ptr;
} BPF_PACKET_HEADER;

struct vxlan_t {
	unsigned int rsv1:4;
	unsigned int key_present:1;
	unsigned int rsv2:3;
	unsigned int rsv3:24;
	unsigned int key:24;
	unsigned int rsv4:8;
} BPF_PACKET_HEADER;

#define __PYBPF_MASK(bits) ((bits) >= 64 ? ~0ULL : ((1ULL << (bits)) - 1))

/* the bits [bofs, bofs + bsz) of the packet from byte off on, most significant first */
static __always_inline u64 bpf_dext_pkt(void *pkt, u64 off, u64 bofs, u64 bsz)
{
	u64 end = bofs + bsz, unit;
	if (end <= 8)
		unit = load_byte(pkt, off), end = 8 - end;
	else if (end <= 16)
		unit = load_half(pkt, off), end = 16 - end;
	else if (end <= 32)
		unit = load_word(pkt, off), end = 32 - end;
	else
		unit = (load_word(pkt, off) << 32) | load_word(pkt, off + 4), end = 64 - end;
	return (unit >> end) & __PYBPF_MASK(bsz);
}

/* store val in those bits (bpf_skb_store_bytes: tc programs) */
static __always_inline void bpf_dins_pkt(void *pkt, u64 off, u64 bofs, u64 bsz, u64 val)
{
	u64 end = bofs + bsz;
	u32 size = end <= 8 ? 1 : end <= 16 ? 2 : end <= 32 ? 4 : 8;
	u64 shift = size * 8 - end, mask = __PYBPF_MASK(bsz) << shift;
	u64 unit = bpf_dext_pkt(pkt, off, 0, size * 8);
	unit = (unit & ~mask) | ((val << shift) & mask);
	if (size == 1) {
		u8 v = unit;
		bpf_skb_store_bytes(pkt, off, &v, 1, 0);
	} else if (size == 2) {
		u16 v = bpf_htons(unit);
		bpf_skb_store_bytes(pkt, off, &v, 2, 0);
	} else if (size == 4) {
		u32 v = bpf_htonl(unit);
		bpf_skb_store_bytes(pkt, off, &v, 4, 0);
	} else {
		u64 v = bpf_htonll(unit);
		bpf_skb_store_bytes(pkt, off, &v, 8, 0);
	}
}

/* checksum updates after a field at packet offset off changed from old to new (host order
 * values, as read with bpf_dext_pkt): the helpers take network order and the field's size in
 * the flags' low bits. BCC's incr_cksum_l3(&ip->..., old, new) and incr_cksum_l4(&udp->crc,
 * old, new, pseudo) name no packet: the translator passes the program's context. */
static __always_inline u64 __pybpf_csum_be(u64 v, u64 size)
{
	return size == 2 ? bpf_htons(v) : size == 4 ? bpf_htonl(v) : size == 8 ? bpf_htonll(v) : v;
}

#define __pybpf_incr_cksum_l3(skb, off, old, new) \
	bpf_l3_csum_replace(skb, (u64)(off), __pybpf_csum_be(old, sizeof(new)), \
			    __pybpf_csum_be(new, sizeof(new)), sizeof(new))
#define __pybpf_incr_cksum_l4(skb, off, old, new, pseudo) \
	bpf_l4_csum_replace(skb, (u64)(off), __pybpf_csum_be(old, sizeof(new)), \
			    __pybpf_csum_be(new, sizeof(new)), (((pseudo) & 1ULL) << 4) | sizeof(new))

#endif /* __PYBPF_BCC_PROTO_H */
