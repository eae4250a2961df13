// C peer of benchmarks/load.py: open and load a BPF object file through libbpf.
//
// Build: cc -O2 load.c -lbpf -o load-peer     (Debian: apt-get install libbpf-dev)
// Usage: load-peer OBJECT ROUNDS
//
// Each round times bpf_object__open_file + bpf_object__load (ELF parse, vmlinux BTF parse for
// CO-RE, BTF load, map creation, relocation, program load), then closes the object, and
// prints {"round": r, "seconds": s, "programs": p, "maps": m}; then {"peak_rss_kib": k}.
// Exit status: 0, or 1 with a message on stderr.
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int quiet(enum libbpf_print_level level, const char *fmt, va_list args)
{
	return level == LIBBPF_WARN ? vfprintf(stderr, fmt, args) : 0;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: load-peer OBJECT ROUNDS\n");
		return 1;
	}
	int rounds = atoi(argv[2]);
	libbpf_set_print(quiet);
	for (int r = 0; r < rounds; r++) {
		double t0 = now();
		struct bpf_object *obj = bpf_object__open_file(argv[1], NULL);
		if (!obj) {
			fprintf(stderr, "load-peer: open %s: %s\n", argv[1], strerror(errno));
			return 1;
		}
		int err = bpf_object__load(obj);
		double t1 = now();
		if (err) {
			fprintf(stderr, "load-peer: load %s: %s\n", argv[1], strerror(-err));
			return 1;
		}
		int progs = 0, maps = 0;
		struct bpf_program *p;
		struct bpf_map *m;
		bpf_object__for_each_program(p, obj)
			progs += bpf_program__fd(p) >= 0;
		bpf_object__for_each_map(m, obj)
			maps += bpf_map__fd(m) >= 0;
		bpf_object__close(obj);
		printf("{\"round\": %d, \"seconds\": %.9f, \"programs\": %d, \"maps\": %d}\n", r,
		       t1 - t0, progs, maps);
	}
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	printf("{\"peak_rss_kib\": %ld}\n", ru.ru_maxrss);
	return 0;
}
