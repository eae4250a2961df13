// C peer of benchmarks/maps.py: the same four map operations through libbpf's low-level API.
//
// Build: cc -O2 maps.c -lbpf -o maps-peer     (Debian: apt-get install libbpf-dev)
// Usage: maps-peer ENTRIES CHUNK ROUNDS
//
// Each round creates a BPF_MAP_TYPE_HASH (key 4 bytes, value 12 bytes, max_entries ENTRIES),
// then times, in this order (the same sequence benchmarks/maps.py runs):
//   update        bpf_map_update_elem for keys 0..ENTRIES-1 (inserts: the map starts empty)
//   lookup        bpf_map_lookup_elem for every key
//   update_batch  one bpf_map_update_batch of all ENTRIES keys (overwrites)
//   lookup_batch  bpf_map_lookup_batch, CHUNK elements per call into one array, until ENOENT
// and prints one JSON line per operation: {"op": ..., "round": r, "n": n, "seconds": s}
// (process CPU seconds),
// then {"op": "peak_rss", "kib": k}.
// Exit status: 0, or 1 with a message on stderr.
#include <bpf/bpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct value {
	uint32_t a, b, c;
};

/* CPU time of this process (user + system), as benchmarks/maps.py measures its own side:
 * on a shared machine, wall time would mostly measure the other tenants. */
static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "maps-peer: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void report(const char *op, int round, uint32_t n, double seconds)
{
	printf("{\"op\": \"%s\", \"round\": %d, \"n\": %u, \"seconds\": %.9f}\n", op, round, n,
	       seconds);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 4) {
		fprintf(stderr, "usage: %s ENTRIES CHUNK ROUNDS\n", argv[0]);
		return 2;
	}
	uint32_t n = strtoul(argv[1], NULL, 0);
	uint32_t chunk = strtoul(argv[2], NULL, 0);
	int rounds = atoi(argv[3]);
	if (!n || !chunk || rounds < 1) {
		fprintf(stderr, "maps-peer: ENTRIES, CHUNK and ROUNDS must be positive\n");
		return 2;
	}

	uint32_t *keys = malloc(sizeof(*keys) * n);
	struct value *vals = malloc(sizeof(*vals) * n);
	/* lookup_batch dumps the whole map into one array, as pybpf's lookup_batch returns it;
	 * one chunk of slack: each call may fill up to CHUNK elements. */
	uint32_t *out_keys = malloc(sizeof(*out_keys) * ((size_t)n + chunk));
	struct value *out_vals = malloc(sizeof(*out_vals) * ((size_t)n + chunk));
	if (!keys || !vals || !out_keys || !out_vals)
		die("malloc", ENOMEM);
	for (uint32_t i = 0; i < n; i++) {
		keys[i] = i;
		vals[i] = (struct value){i, i ^ 0x5a5a5a5a, ~i};
	}
	/* The same constant value benchmarks/maps.py writes per element. */
	struct value one = {1, 2, 3};

	for (int r = 0; r < rounds; r++) {
		LIBBPF_OPTS(bpf_map_create_opts, copts);
		int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "bench_c", sizeof(uint32_t),
					sizeof(struct value), n, &copts);
		if (fd < 0)
			die("bpf_map_create", errno);

		double t0 = now();
		for (uint32_t k = 0; k < n; k++)
			if (bpf_map_update_elem(fd, &k, &one, BPF_ANY))
				die("bpf_map_update_elem", errno);
		report("update", r, n, now() - t0);

		struct value v;
		uint64_t check = 0;
		t0 = now();
		for (uint32_t k = 0; k < n; k++) {
			if (bpf_map_lookup_elem(fd, &k, &v))
				die("bpf_map_lookup_elem", errno);
			check += v.a;
		}
		report("lookup", r, n, now() - t0);
		if (check != n)
			die("lookup returned wrong values", EIO);

		LIBBPF_OPTS(bpf_map_batch_opts, bopts, .elem_flags = 0, .flags = 0);
		uint32_t count = n;
		t0 = now();
		if (bpf_map_update_batch(fd, keys, vals, &count, &bopts))
			die("bpf_map_update_batch", errno);
		report("update_batch", r, n, now() - t0);
		if (count != n)
			die("bpf_map_update_batch updated too few", EIO);

		uint32_t total = 0, in_batch, out_batch;
		void *in = NULL;
		t0 = now();
		for (;;) {
			count = chunk;
			int err = bpf_map_lookup_batch(fd, in, &out_batch, out_keys + total,
						       out_vals + total, &count, &bopts);
			if (err && errno != ENOENT)
				die("bpf_map_lookup_batch", errno);
			total += count;
			if (err)
				break;
			in_batch = out_batch;
			in = &in_batch;
		}
		report("lookup_batch", r, total, now() - t0);
		if (total != n)
			die("bpf_map_lookup_batch read the wrong number of elements", EIO);
		close(fd);
	}
	/* VmHWM, not getrusage(): after vfork + exec, ru_maxrss still counts the parent's memory. */
	long hwm = 0;
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "VmHWM: %ld", &hwm) == 1)
			break;
	if (f)
		fclose(f);
	printf("{\"op\": \"peak_rss\", \"kib\": %ld}\n", hwm);
	return 0;
}
