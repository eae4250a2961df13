// How long clock_nanosleep() calls take, by command name: an exp2 histogram in microseconds
// (bucket b counts sleeps of at most 2^b us), from the syscalls tracepoints.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define MAX_BUCKET 27

struct sleep_key {
	char comm[16];
	u64 bucket;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct sleep_key);
	__type(value, u64);
} sleep_latency_seconds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 10240);
	__type(key, u32);               /* thread id */
	__type(value, u64);             /* when it entered clock_nanosleep */
} started SEC(".maps");

/* the smallest b with v <= 2^b: the bucket whose upper bound holds v */
static __always_inline u64 ceil_log2(u64 v)
{
	u64 b = 0;

	for (int i = 0; i < 64 && (1ULL << b) < v; i++)
		b++;
	return b;
}

SEC("tracepoint/syscalls/sys_enter_clock_nanosleep")
int sleep_enter(void *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	u64 now = bpf_ktime_get_ns();

	bpf_map_update_elem(&started, &tid, &now, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_clock_nanosleep")
int sleep_exit(void *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct sleep_key key = {};
	u64 *start, one = 1, *count;

	start = bpf_map_lookup_elem(&started, &tid);
	if (!start)
		return 0;
	key.bucket = ceil_log2((bpf_ktime_get_ns() - *start) / 1000);
	if (key.bucket > MAX_BUCKET)
		key.bucket = MAX_BUCKET;
	bpf_map_delete_elem(&started, &tid);
	bpf_get_current_comm(key.comm, sizeof(key.comm));
	count = bpf_map_lookup_elem(&sleep_latency_seconds, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	else
		bpf_map_update_elem(&sleep_latency_seconds, &key, &one, BPF_NOEXIST);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
