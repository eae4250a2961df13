// C peer of benchmarks/links_net.py: attaching and detaching network and cgroup programs
// through libbpf's low-level API, the same operations pybpf.links performs.
//
// Build: cc -O2 links_net.c -lbpf -o links_net-peer     (Debian: apt-get install libbpf-dev)
// Usage: links_net-peer N NETNS_PATH CGROUP_PATH
//
// Loads the programs (r0 = 1; exit), enters the network namespace NETNS_PATH, then times N
// rounds of each operation, in this order (the sequence benchmarks/links_net.py runs):
//   cgroup_link   open(CGROUP_PATH), bpf_link_create(connect4), close the link and the dir
//   cgroup_query  open(CGROUP_PATH), bpf_prog_query_opts(connect4) with one program there
//                 (attached before timing), its name by id, close the dir
//   xdp_link      if_nametoindex("lo"), bpf_link_create(BPF_XDP, XDP_FLAGS_SKB_MODE), close
//   tcx_link      if_nametoindex("lo"), bpf_link_create(BPF_TCX_INGRESS), close
// and prints one JSON line per operation: {"op": ..., "n": N, "seconds": s} (process CPU
// seconds). Exit status: 0, or 1 with a message on stderr.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* BPF_TCX_INGRESS (Linux 6.6): Debian's libbpf-dev headers may predate it */
#define TCX_INGRESS ((enum bpf_attach_type)46)

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "links_net-peer: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static int load(enum bpf_prog_type type, enum bpf_attach_type expected)
{
	struct bpf_insn insns[] = {
		{ .code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_0, .imm = 1 },
		{ .code = BPF_JMP | BPF_EXIT },
	};
	LIBBPF_OPTS(bpf_prog_load_opts, opts, .expected_attach_type = expected);
	int fd = bpf_prog_load(type, "bench", "GPL", insns, 2, &opts);
	if (fd < 0)
		die("bpf_prog_load", errno);
	return fd;
}

static void report(const char *op, int n, double t)
{
	printf("{\"op\": \"%s\", \"n\": %d, \"seconds\": %.9f}\n", op, n, t);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: links_net-peer N NETNS_PATH CGROUP_PATH\n");
		return 1;
	}
	int n = atoi(argv[1]);
	const char *cgroup = argv[3];
	int ns = open(argv[2], O_RDONLY);
	if (ns < 0 || setns(ns, CLONE_NEWNET))
		die("setns", errno);
	int connect4 = load(BPF_PROG_TYPE_CGROUP_SOCK_ADDR, BPF_CGROUP_INET4_CONNECT);
	int xdp = load(BPF_PROG_TYPE_XDP, BPF_XDP);
	int cls = load(BPF_PROG_TYPE_SCHED_CLS, 0);

	double t0 = now();
	for (int i = 0; i < n; i++) {
		int cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		int link = bpf_link_create(connect4, cg, BPF_CGROUP_INET4_CONNECT, NULL);
		if (cg < 0 || link < 0)
			die("cgroup link", errno);
		close(link);
		close(cg);
	}
	report("cgroup_link", n, now() - t0);

	int cg = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int held = bpf_link_create(connect4, cg, BPF_CGROUP_INET4_CONNECT, NULL);
	close(cg);
	if (held < 0)
		die("cgroup link", errno);
	t0 = now();
	for (int i = 0; i < n; i++) {
		__u32 ids[8], flags[8];
		LIBBPF_OPTS(bpf_prog_query_opts, q, .prog_ids = ids, .prog_attach_flags = flags,
			    .prog_cnt = 8);
		int fd = open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || bpf_prog_query_opts(fd, BPF_CGROUP_INET4_CONNECT, &q) || q.prog_cnt != 1)
			die("bpf_prog_query_opts", errno);
		close(fd);
		struct bpf_prog_info info = {};
		__u32 len = sizeof(info);
		int pfd = bpf_prog_get_fd_by_id(ids[0]);
		if (pfd < 0 || bpf_obj_get_info_by_fd(pfd, &info, &len))
			die("prog info", errno);
		close(pfd);
	}
	report("cgroup_query", n, now() - t0);
	close(held);

	struct { const char *op; int prog; enum bpf_attach_type type; __u32 flags; } hooks[] = {
		{ "xdp_link", xdp, BPF_XDP, XDP_FLAGS_SKB_MODE },
		{ "tcx_link", cls, TCX_INGRESS, 0 },
	};
	for (int h = 0; h < 2; h++) {
		LIBBPF_OPTS(bpf_link_create_opts, lo, .flags = hooks[h].flags);
		t0 = now();
		for (int i = 0; i < n; i++) {
			int ifindex = if_nametoindex("lo");
			int link = bpf_link_create(hooks[h].prog, ifindex, hooks[h].type, &lo);
			if (link < 0)
				die(hooks[h].op, errno);
			close(link);
		}
		report(hooks[h].op, n, now() - t0);
	}
	return 0;
}
