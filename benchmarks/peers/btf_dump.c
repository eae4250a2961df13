// SPDX-License-Identifier: MIT
/* C peer of benchmarks/btf_dump.py: parse a BTF file and dump every type as C with libbpf's
 * btf_dump (what `bpftool btf dump file X format c` does), `rounds` times; prints one JSON line
 * per round: {"seconds": parse + dump (wall clock), "cpu": the same in CPU time,
 * "bytes": size of the C text}. */
#include <bpf/btf.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static size_t out_bytes;

static void count(void *ctx, const char *fmt, va_list args)
{
	out_bytes += vfprintf((FILE *)ctx, fmt, args);
}

static double now(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	FILE *sink = fopen("/dev/null", "w");
	int rounds = argc > 2 ? atoi(argv[2]) : 1;

	if (argc < 2 || !sink) {
		fprintf(stderr, "usage: %s BTF_FILE [ROUNDS]\n", argv[0]);
		return 2;
	}
	for (int r = 0; r < rounds; r++) {
		double t0 = now(CLOCK_MONOTONIC), c0 = now(CLOCK_PROCESS_CPUTIME_ID);
		struct btf *btf = btf__parse(argv[1], NULL);
		struct btf_dump *d;
		__u32 n, id;

		if (!btf) {
			perror("btf__parse");
			return 1;
		}
		d = btf_dump__new(btf, count, sink, NULL);
		if (!d) {
			perror("btf_dump__new");
			return 1;
		}
		out_bytes = 0;
		n = btf__type_cnt(btf);
		for (id = 1; id < n; id++)
			if (btf_dump__dump_type(d, id)) {
				fprintf(stderr, "btf_dump__dump_type(%u) failed\n", id);
				return 1;
			}
		btf_dump__free(d);
		btf__free(btf);
		printf("{\"seconds\": %.6f, \"cpu\": %.6f, \"bytes\": %zu}\n",
		       now(CLOCK_MONOTONIC) - t0, now(CLOCK_PROCESS_CPUTIME_ID) - c0, out_bytes);
	}
	return 0;
}
