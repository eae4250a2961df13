/* CO-RE relocations of every kind, against the running kernel's BTF (tests/btf/test_core.py).
 * Each function sits in its own section so the test can load it alone (raw_tp/core_<name>: the
 * loader takes them too, but attaches none; test_run runs them); it returns one
 * relocated value (clang 14 has no bpf_core_type_matches: TYPE_MATCHES is tested in Python). Local types carry ___flavor suffixes and only the members they use. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

struct task_struct___pybpf {
	int pid;
	int tgid;
	int no_such_member;
	char comm[16];
} __attribute__((preserve_access_index));

struct list_head___pybpf {
	struct list_head___pybpf *next, *prev;
} __attribute__((preserve_access_index));

struct no_such_struct___pybpf {
	int x;
} __attribute__((preserve_access_index));

enum bpf_map_type___pybpf {
	BPF_MAP_TYPE_RINGBUF___pybpf = 1,
	BPF_MAP_TYPE_NO_SUCH___pybpf = 2,
};

#define PROG(name) __attribute__((section("raw_tp/core_" #name), used)) int name(void *ctx)

PROG(off_pid) { return bpf_core_field_offset(struct task_struct___pybpf, pid); }
PROG(off_tgid) { return bpf_core_field_offset(struct task_struct___pybpf, tgid); }
PROG(off_comm3) { return bpf_core_field_offset(struct task_struct___pybpf, comm[3]); }
PROG(size_comm) { return bpf_core_field_size(struct task_struct___pybpf, comm); }
PROG(exists_pid) { return bpf_core_field_exists(struct task_struct___pybpf, pid); }
PROG(exists_missing) { return bpf_core_field_exists(struct task_struct___pybpf, no_such_member); }
PROG(signed_pid) { return __builtin_preserve_field_info(((struct task_struct___pybpf *)0)->pid, BPF_FIELD_SIGNED); }
PROG(type_exists) { return bpf_core_type_exists(struct list_head___pybpf); }
PROG(type_missing) { return bpf_core_type_exists(struct no_such_struct___pybpf); }
PROG(type_size) { return bpf_core_type_size(struct task_struct___pybpf); }
PROG(enum_exists) { return bpf_core_enum_value_exists(enum bpf_map_type___pybpf, BPF_MAP_TYPE_RINGBUF___pybpf); }
PROG(enum_missing) { return bpf_core_enum_value_exists(enum bpf_map_type___pybpf, BPF_MAP_TYPE_NO_SUCH___pybpf); }
PROG(enum_value) { return bpf_core_enum_value(enum bpf_map_type___pybpf, BPF_MAP_TYPE_RINGBUF___pybpf); }
PROG(type_id_kernel) { return bpf_core_type_id_kernel(struct list_head___pybpf) != 0; }

/* A guarded read of a missing member: the relocation is poisoned, the dead branch removed. */
PROG(guarded_missing) {
	struct task_struct___pybpf *t = (void *)bpf_get_current_task();
	if (bpf_core_field_exists(t->no_such_member))
		return BPF_CORE_READ(t, no_such_member);
	return -1;
}

/* An unguarded read of a missing member: poisoned and reachable, so the load fails. */
PROG(unguarded_missing) {
	struct task_struct___pybpf *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, no_such_member);
}

/* Reads the calling process's tgid through a relocated offset: test_run must return getpid(). */
PROG(read_tgid) {
	struct task_struct___pybpf *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, tgid);
}

char LICENSE[] __attribute__((section("license"), used)) = "GPL";
