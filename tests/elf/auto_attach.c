/* Auto-attach by section name, one program per family (tests/elf/test_auto_attach.py builds
 * it with -DTARGET='"<probe_target>"' -DEXECVE='"<syscall function>"'), and sections whose
 * names do not say where to attach (-DBAD). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} counts SEC(".maps");

/* counts[tgid] += 1 */
static __always_inline int count(void)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u64 one = 1, *hits = bpf_map_lookup_elem(&counts, &tgid);

	if (hits)
		__sync_fetch_and_add(hits, 1);
	else
		bpf_map_update_elem(&counts, &tgid, &one, BPF_NOEXIST);
	return 0;
}

#ifndef BAD
SEC("uprobe/" TARGET ":pybpf_uprobe_target")
int on_uprobe(void *ctx) { return count(); }

SEC("usdt/" TARGET ":pybpf:plain")
int on_usdt(void *ctx) { return count(); }

SEC("ksyscall/execve")
int on_ksyscall(void *ctx) { return count(); }

SEC("kprobe/" EXECVE "+0")
int on_kprobe(void *ctx) { return count(); }

struct bpf_iter_meta {
	void *seq;
} __attribute__((preserve_access_index));

struct task_struct {
	int pid;
	int tgid;
} __attribute__((preserve_access_index));

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
} __attribute__((preserve_access_index));

/* For each task: seq_write(tgid, pid) (two u32). */
SEC("iter/task")
int dump_task(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	__u32 ids[2];

	if (!task)
		return 0;
	ids[0] = task->tgid;
	ids[1] = task->pid;
	bpf_seq_write(ctx->meta->seq, ids, sizeof(ids));
	return 0;
}
#else
SEC("tracepoint/sys_enter_execve")
int no_category(void *ctx) { return count(); }

SEC("tracepoint")
int bare_tracepoint(void *ctx) { return count(); }

SEC("perf_event")
int on_perf_event(void *ctx) { return count(); }

SEC("uprobe/readline")
int no_binary(void *ctx) { return count(); }

SEC("usdt//bin/true:gc")
int no_usdt_name(void *ctx) { return count(); }
#endif

char LICENSE[] SEC("license") = "GPL";
