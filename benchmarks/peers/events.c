// C peer of benchmarks/events.py: ring and perf buffer consumers through libbpf.
//
// Build: cc -O2 events.c -lbpf -o events-peer     (Debian: apt-get install libbpf-dev)
// Usage: events-peer ring|perf drain|stream|produce MAP_PIN PROG_PIN COUNT PAGES WAKEUP
//
// MAP_PIN is a pinned BPF_MAP_TYPE_RINGBUF or PERF_EVENT_ARRAY, PROG_PIN the pinned XDP program
// that emits one event per run into it (benchmarks/events.py builds both).
//   drain   run the program COUNT times (BPF_PROG_TEST_RUN, repeat=COUNT, on this CPU), then
//           time one ring_buffer__consume / perf_buffer__consume of everything
//   stream  prints "ready" once the buffer is set up, waits for a line on stdin (the producer
//           process starts), then ring_buffer__poll / perf_buffer__poll (100 ms) until stdin
//           closes (the producer ended), then consumes what is left; times from the line on
//   produce run the program COUNT times, 10000 runs per BPF_PROG_TEST_RUN (the stream's
//           producer, for the pybpf and the C consumer alike); prints nothing
// Drain and stream times are the thread's CPU time (CLOCK_THREAD_CPUTIME_ID for drain, as
// benchmarks/events.py measures pybpf on a shared machine) and wall time (stream).
// Perf buffers: PAGES pages per online CPU, WAKEUP = wakeup_events (the attr libbpf's
// perf_buffer__new uses, with wakeup_events settable: perf_buffer__new_raw).
// Prints one JSON line: {"received": n, "lost": n, "seconds": s}. Exit status 0, or 1 with a
// message on stderr.
#define _GNU_SOURCE
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <linux/perf_event.h>
#include <poll.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t received, lost;

static double now(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "events-peer: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static void run_prog(int prog_fd, int repeat)
{
	char packet[64] = {0};
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = packet, .data_size_in = sizeof(packet),
		    .repeat = repeat);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		die("bpf_prog_test_run_opts", err);
}

static int on_ring(void *ctx, void *data, size_t size)
{
	received++;
	return 0;
}

struct lost_record {
	struct perf_event_header header;
	uint64_t id, lost;
};

static enum bpf_perf_event_ret on_perf(void *ctx, int cpu, struct perf_event_header *event)
{
	if (event->type == PERF_RECORD_SAMPLE)
		received++;
	else if (event->type == PERF_RECORD_LOST)
		lost += ((struct lost_record *)event)->lost;
	return LIBBPF_PERF_EVENT_CONT;
}

int main(int argc, char **argv)
{
	if (argc != 8) {
		fprintf(stderr, "usage: %s ring|perf drain|stream|produce MAP_PIN PROG_PIN COUNT "
			"PAGES WAKEUP\n", argv[0]);
		return 2;
	}
	int ring = !strcmp(argv[1], "ring"), drain = !strcmp(argv[2], "drain");
	int count = atoi(argv[5]);
	int pages = atoi(argv[6]), wakeup = atoi(argv[7]);
	int map_fd = bpf_obj_get(argv[3]);
	if (map_fd < 0)
		die(argv[3], errno);
	int prog_fd = bpf_obj_get(argv[4]);
	if (prog_fd < 0)
		die(argv[4], errno);
	if (!strcmp(argv[2], "produce")) {
		for (int done = 0; done < count; done += 10000)
			run_prog(prog_fd, count - done < 10000 ? count - done : 10000);
		return 0;
	}

	if (drain) { /* all perf events on one CPU, as benchmarks/events.py does */
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(sched_getcpu(), &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("sched_setaffinity", errno);
	}

	struct ring_buffer *rb = NULL;
	struct perf_buffer *pb = NULL;
	if (ring) {
		rb = ring_buffer__new(map_fd, on_ring, NULL, NULL);
		if (!rb)
			die("ring_buffer__new", errno);
	} else {
		struct perf_event_attr attr = {
			.type = PERF_TYPE_SOFTWARE,
			.config = PERF_COUNT_SW_BPF_OUTPUT,
			.sample_type = PERF_SAMPLE_RAW,
			.sample_period = 1,
			.wakeup_events = wakeup,
		};
		pb = perf_buffer__new_raw(map_fd, pages, &attr, on_perf, NULL, NULL);
		if (!pb)
			die("perf_buffer__new_raw", errno);
	}

	double t0, t1;
	if (drain) {
		run_prog(prog_fd, count);
		t0 = now(CLOCK_THREAD_CPUTIME_ID);
		int err = ring ? ring_buffer__consume(rb) : perf_buffer__consume(pb);
		t1 = now(CLOCK_THREAD_CPUTIME_ID);
		if (err < 0)
			die("consume", err);
	} else {
		char line[16];
		printf("ready\n");
		fflush(stdout);
		if (!fgets(line, sizeof(line), stdin))
			die("stdin closed before the start", EPIPE);
		t0 = now(CLOCK_MONOTONIC);
		struct pollfd in = {.fd = 0, .events = POLLIN};
		do {
			int err = ring ? ring_buffer__poll(rb, 100) : perf_buffer__poll(pb, 100);
			if (err < 0 && err != -EINTR)
				die("poll", err);
		} while (poll(&in, 1, 0) == 0);
		if (ring)
			ring_buffer__consume(rb);
		else
			perf_buffer__consume(pb);
		t1 = now(CLOCK_MONOTONIC);
	}
	printf("{\"received\": %llu, \"lost\": %llu, \"seconds\": %.9f}\n",
	       (unsigned long long)received, (unsigned long long)lost, t1 - t0);
	ring_buffer__free(rb);
	perf_buffer__free(pb);
	return 0;
}
