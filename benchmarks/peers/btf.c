// C peer of benchmarks/btf.py: what libbpf takes for the same BTF work.
//
// Build: cc -O2 btf.c -lbpf -o btf-peer     (Debian: apt-get install libbpf-dev)
// Usage: btf-peer open PATH        btf__parse(PATH) + btf__find_by_name_kind("task_struct",
//                                  BTF_KIND_STRUCT), timed in this (fresh) process
//        btf-peer decode N         copy N 36-byte struct data_t records out of a buffer and
//                                  measure their two strings, as a C ring-buffer consumer does
// Prints one JSON line: {"op": ..., "seconds": s, ...}. Exit status 0, or 1 with a message.
#include <bpf/btf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct data_t {
	int pid;
	int uid;
	char command[16];
	char message[12];
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int open_find(const char *path)
{
	double t0 = now();
	struct btf *btf = btf__parse(path, NULL); /* libbpf 1.x: NULL and errno on error */
	int id;

	if (!btf) {
		fprintf(stderr, "btf-peer: btf__parse(%s): %s\n", path, strerror(errno));
		return 1;
	}
	id = btf__find_by_name_kind(btf, "task_struct", BTF_KIND_STRUCT);
	double secs = now() - t0;
	if (id < 0) {
		fprintf(stderr, "btf-peer: no struct task_struct in %s\n", path);
		return 1;
	}
	printf("{\"op\": \"open_find\", \"seconds\": %.9f, \"id\": %d, \"types\": %u}\n", secs, id,
	       btf__type_cnt(btf));
	btf__free(btf);
	return 0;
}

static int decode(long n)
{
	struct data_t *buf = calloc(n, sizeof(*buf)), rec;
	volatile size_t sink = 0;

	if (!buf) {
		fprintf(stderr, "btf-peer: out of memory\n");
		return 1;
	}
	for (long i = 0; i < n; i++) {
		buf[i].pid = i;
		buf[i].uid = 1000;
		strcpy(buf[i].command, "bash");
		strcpy(buf[i].message, "Hello World");
	}
	double t0 = now();
	for (long i = 0; i < n; i++) {
		memcpy(&rec, (char *)buf + i * sizeof(rec), sizeof(rec));
		sink += rec.pid + rec.uid + strnlen(rec.command, sizeof(rec.command)) +
			strnlen(rec.message, sizeof(rec.message));
	}
	double secs = now() - t0;
	printf("{\"op\": \"decode\", \"seconds\": %.9f, \"n\": %ld}\n", secs, n);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "open"))
		return open_find(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "decode"))
		return decode(atol(argv[2]));
	fprintf(stderr, "usage: btf-peer open PATH | btf-peer decode N\n");
	return 1;
}
