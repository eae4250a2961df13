// One span per process that exits: from its start (task->start_time, CLOCK_MONOTONIC) to its
// exit, with its command name, sent through the ring buffer exit_spans (tracing.spans).
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct exit_span {
	u8 trace_id[16];
	u64 parent_span_id;
	u64 span_id;
	u64 span_monotonic_timestamp_ns;
	u64 span_duration_ns;
	char comm[16];
	u32 exit_code;
	u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} exit_spans SEC(".maps");

SEC("tracepoint/sched/sched_process_exit")
int process_exit(void *ctx)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	u64 pid_tgid = bpf_get_current_pid_tgid();
	struct exit_span *span;
	u64 start;

	if ((u32)pid_tgid != (u32)(pid_tgid >> 32))
		return 0;               /* threads other than the leader */
	span = bpf_ringbuf_reserve(&exit_spans, sizeof(*span), 0);
	if (!span)
		return 0;
	for (int i = 0; i < 16; i += 4)
		*(u32 *)&span->trace_id[i] = bpf_get_prandom_u32();
	span->parent_span_id = 0;
	span->span_id = ((u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32();
	start = BPF_CORE_READ(task, start_time);
	span->span_monotonic_timestamp_ns = start;
	span->span_duration_ns = bpf_ktime_get_ns() - start;
	bpf_get_current_comm(span->comm, sizeof(span->comm));
	span->exit_code = BPF_CORE_READ(task, exit_code) >> 8;
	span->pad = 0;
	bpf_ringbuf_submit(span, 0);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
