/* libbpf's USDT convention (<bpf/usdt.bpf.h>): arguments, their count and the user's cookie
 * read through the spec maps the attacher fills. on_hit auto-attaches by its section (the
 * target binary comes from -DUSDT_TARGET), on_plain is attached in code. */
#include <linux/bpf.h>
#include <linux/ptrace.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>
#include <bpf/usdt.bpf.h>

#ifndef USDT_TARGET
#define USDT_TARGET "/usr/bin/true"
#endif

struct usdt_record {
	long args[3];
	long arg_cnt;
	long cookie;
	long err; /* bpf_usdt_arg() of one argument past the last */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, long);
	__type(value, struct usdt_record);
} hit_records SEC(".maps"), plain_records SEC(".maps");

SEC("usdt/" USDT_TARGET ":pybpf:hit")
int BPF_USDT(on_hit, int i, long sum, int minus_seven)
{
	struct usdt_record r = {.args = {i, sum, minus_seven}};
	long key = i, unused;

	r.arg_cnt = bpf_usdt_arg_cnt(ctx);
	r.cookie = bpf_usdt_cookie(ctx);
	r.err = bpf_usdt_arg(ctx, 3, &unused);
	bpf_map_update_elem(&hit_records, &key, &r, BPF_ANY);
	return 0;
}

SEC("usdt")
int on_plain(struct pt_regs *ctx)
{
	struct usdt_record r = {};
	long key;

	r.err = bpf_usdt_arg(ctx, 1, &r.args[1]);
	if (bpf_usdt_arg(ctx, 0, &r.args[0]))
		return 0;
	key = r.args[0];
	r.arg_cnt = bpf_usdt_arg_cnt(ctx);
	r.cookie = bpf_usdt_cookie(ctx);
	bpf_map_update_elem(&plain_records, &key, &r, BPF_ANY);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
