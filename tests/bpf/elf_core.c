/* CO-RE: field offsets of kernel structs relocated against the running kernel's BTF; a field
 * that exists nowhere (guarded by bpf_core_field_exists, and unguarded in a second program). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct {
	int pid;
	int tgid;
	struct task_struct *real_parent;
} __attribute__((preserve_access_index));

struct task_struct___future {
	int pybpf_no_such_field;
} __attribute__((preserve_access_index));

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u32);
	__uint(max_entries, 64);
} tgid_of SEC(".maps");

__u32 parent_tgid, has_future_field;

SEC("tracepoint/syscalls/sys_enter_getppid")
int core_read(void *ctx)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	__u32 pid = BPF_CORE_READ(task, pid), tgid = BPF_CORE_READ(task, tgid);

	bpf_map_update_elem(&tgid_of, &pid, &tgid, BPF_ANY);
	parent_tgid = BPF_CORE_READ(task, real_parent, tgid);
	has_future_field = bpf_core_field_exists(((struct task_struct___future *)task)->pybpf_no_such_field);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_getppid")
int core_unsatisfiable(void *ctx)
{
	struct task_struct___future *task = (void *)bpf_get_current_task();

	has_future_field = BPF_CORE_READ(task, pybpf_no_such_field);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
