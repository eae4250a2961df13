"""BCC C -> libbpf-style C: what the translation produces (no compiler, no kernel)."""
from __future__ import annotations

import pytest

from pybpf.bcc.dialect import EVENT_SECTION, DialectError, translate
from pybpf.errors import CompileError


def test_map_macros_tables_and_defaults():
    tr = translate("""
struct key_t { u32 pid; char comm[16]; };
BPF_HASH(h1);
BPF_HASH(h2, struct key_t);
BPF_HASH(h3, u32, u64, 128);
BPF_ARRAY(a1);
BPF_ARRAY(a2, struct key_t, 4);
BPF_PERCPU_HASH(ph, u32, u32, 16);
BPF_PERCPU_ARRAY(pa, u64, 8);
BPF_LRU_HASH(lru, u64, u64, 32);
BPF_HISTOGRAM(hist_int);
BPF_HISTOGRAM(hist_struct, struct key_t, 10);
BPF_PERF_OUTPUT(events);
BPF_RINGBUF_OUTPUT(rb, 8);
BPF_PROG_ARRAY(jumps, 4);
BPF_STACK_TRACE(stacks, 1024);
BPF_STACK_TRACE_BUILDID(build_stacks, 128);
BPF_LPM_TRIE(trie, struct key_t, u32, 64);
BPF_QUEUE(q, u32, 16);
BPF_STACK(st, u64, 16);
BPF_DEVMAP(devs, 8);
BPF_CPUMAP(cpus, 4);
BPF_XSKMAP(xsks, 4);
BPF_TABLE("hash", u32, u32, generic, 77);
BPF_F_TABLE("hash", u32, u32, flagged, 77, BPF_F_NO_PREALLOC);
BPF_TABLE_PINNED("array", u32, u64, pinned, 2, "/sys/fs/bpf/x");
""")
    t = tr.tables
    assert (t["h1"].map_type, t["h1"].key_type, t["h1"].leaf_type, t["h1"].max_entries) == \
        ("HASH", "u64", "u64", 10240)
    assert (t["h2"].key_type, t["h2"].leaf_type) == ("struct key_t", "u64")
    assert (t["h3"].max_entries, t["h3"].bcc_class) == (128, "HashTable")
    assert (t["a1"].map_type, t["a1"].key_type, t["a1"].max_entries) == ("ARRAY", "int", 10240)
    assert (t["a2"].leaf_type, t["a2"].max_entries, t["a2"].bcc_class) == \
        ("struct key_t", 4, "Array")
    assert t["ph"].map_type == "PERCPU_HASH" and t["pa"].bcc_class == "PerCpuArray"
    assert t["lru"].bcc_class == "LruHash"
    assert (t["hist_int"].map_type, t["hist_int"].max_entries) == ("ARRAY", 64)
    assert (t["hist_struct"].map_type, t["hist_struct"].max_entries) == ("HASH", 10)
    assert (t["events"].map_type, t["events"].bcc_class) == ("PERF_EVENT_ARRAY",
                                                             "PerfEventArray")
    assert (t["rb"].map_type, t["rb"].max_entries) == ("RINGBUF", 8 * 4096)
    assert (t["jumps"].map_type, t["jumps"].bcc_class) == ("PROG_ARRAY", "ProgArray")
    assert (t["stacks"].map_type, t["stacks"].leaf_type) == ("STACK_TRACE",
                                                             "struct bpf_stacktrace")
    assert (t["build_stacks"].leaf_type, t["build_stacks"].flags) == \
        ("struct bpf_stacktrace_buildid", 32)                    # BPF_F_STACK_BUILD_ID
    assert (t["trie"].map_type, t["trie"].flags) == ("LPM_TRIE", 1)
    assert (t["q"].map_type, t["st"].map_type, t["q"].bcc_class) == ("QUEUE", "STACK",
                                                                    "QueueStack")
    assert [t[n].map_type for n in ("devs", "cpus", "xsks")] == ["DEVMAP", "CPUMAP", "XSKMAP"]
    assert (t["generic"].map_type, t["generic"].max_entries) == ("HASH", 77)
    assert t["flagged"].flags == 1
    assert (t["pinned"].pinned, t["pinned"].map_type) == ("/sys/fs/bpf/x", "ARRAY")
    # the maps keep the tables' names in .maps
    for name in t:
        assert f'}} {name} SEC(".maps")' in tr.source


def test_lines_stay_put():
    text = "BPF_HASH(counts,\n    u32,\n    u64);\nint prog(struct xdp_md *ctx) {\n  u32 k = 1;\n" \
           "  counts.increment(k);\n  return 0;\n}\n"
    tr = translate(text)
    lines = tr.source.splitlines()
    assert tr.user_line(lines.index("  u32 k = 1;") + 1) == 5
    assert "bpf_map_lookup_elem((void *)&counts" in lines[[tr.user_line(i + 1) for i in
                                                           range(len(lines))].index(6)]
    assert tr.line_map[-1] == 0  # the license is generated


def test_methods_rewritten_and_nested():
    tr = translate("""
BPF_HASH(ta, u32, u64);
BPF_HASH(tb, u32, u64);
BPF_PERF_OUTPUT(out);
struct ev { u64 v; };
int prog(struct __sk_buff *ctx) {
    u32 k = 0; u64 one = 1; struct ev e = {};
    ta.update(&k, tb.lookup(&k));
    ta.insert(&k, &one); ta.delete(&k); ta.atomic_increment(k, 2);
    u64 *v = ta.lookup_or_try_init(&k, &one);
    u64 *w = tb.lookup_or_init(&k, &one);
    out.perf_submit(ctx, &e, sizeof(e));
    return 0;
}
""")
    src = tr.source
    assert "bpf_map_update_elem((void *)&ta, &k, ((__typeof__(tb.value))bpf_map_lookup_elem(" \
           "(void *)&tb, &k)), BPF_ANY)" in src
    assert "BPF_NOEXIST" in src and "bpf_map_delete_elem((void *)&ta, &k)" in src
    assert "__sync_fetch_and_add(____v, 2)" in src
    # the deprecated lookup_or_init leaves the program when the entry cannot be made
    assert src.count("if (!____l) return 0;") == 1 and "u64 *w = ({" in src
    assert f'__attribute__((section("{EVENT_SECTION}"), used))' in src
    assert tr.event_types == {"out": "__pybpf_event__out"}


@pytest.mark.parametrize("text, words", [
    ("BPF_HASH(a);\nint f(void *c) { a.frobnicate(1); return 0; }", ["frobnicate", "'a'"]),
    ("BPF_HASH(a);\nint f(void *c) { a.update(1); return 0; }", ["update", "2", "not 1"]),
    ("BPF_TABLE_PINNED(\"extern\", u32, u32, t, 4, \"/sys/fs/bpf/t\");", ["extern", "pinned"]),
    ("BPF_TABLE(\"nosuch\", u32, u32, t, 4);", ["nosuch"]),
    ("BPF_QUEUESTACK(\"ring\", q, u32, 4, 0);", ["BPF_QUEUESTACK", "ring"]),
])
def test_unsupported_or_malformed_is_named(text, words):
    with pytest.raises(DialectError) as ei:
        translate(text)
    assert isinstance(ei.value, CompileError) and isinstance(ei.value, Exception)
    for w in words:
        assert w in str(ei.value)


def test_program_kinds():
    tr = translate("""
int kprobe__vfs_read(struct pt_regs *ctx, struct file *file) { return 0; }
int kretprobe__vfs_read(struct pt_regs *ctx) { return 0; }
int tracepoint__sched__sched_switch(void *args) { return 0; }
int raw_tracepoint__sys_enter(struct bpf_raw_tracepoint_args *ctx) { return 0; }
int kfunc__foo(void *ctx) { return 0; }
int lsm__file_open(void *ctx) { return 0; }
int on_xdp(struct xdp_md *ctx) { return XDP_PASS; }
int on_skb(struct __sk_buff *skb) { return 0; }
int plain(void *ctx) { return 0; }
int syscall__execve(struct pt_regs *ctx, const char __user *filename) { return 0; }
static int helper(int x) { return x; }
static inline int helper2(int x) { return x; }
RAW_TRACEPOINT_PROBE(sched_switch) { return 0; }
KFUNC_PROBE(do_unlinkat, int dfd, struct filename *name) { return dfd; }
KRETFUNC_PROBE(do_unlinkat, int dfd, struct filename *name, long ret) { return 0; }
LSM_PROBE(bpf, int cmd, union bpf_attr *attr, unsigned int size) { return 0; }
""")
    f = tr.functions
    assert "helper" not in f and "helper2" not in f
    want = {
        "kprobe__vfs_read": ("kprobe/vfs_read", ("kprobe", "vfs_read")),
        "kretprobe__vfs_read": ("kretprobe/vfs_read", ("kretprobe", "vfs_read")),
        "tracepoint__sched__sched_switch": ("tracepoint/sched/sched_switch",
                                            ("tracepoint", "sched:sched_switch")),
        "raw_tracepoint__sys_enter": ("raw_tracepoint/sys_enter",
                                      ("raw_tracepoint", "sys_enter")),
        "kfunc__foo": ("fentry/foo", ("kfunc", "foo")),
        "lsm__file_open": ("lsm/file_open", ("lsm", "file_open")),
        "on_xdp": ("xdp", None), "on_skb": ("socket", None), "plain": ("kprobe", None),
        "syscall__execve": ("kprobe", None),
        "raw_tracepoint__sched_switch": ("raw_tracepoint/sched_switch",
                                         ("raw_tracepoint", "sched_switch")),
        "kfunc__do_unlinkat": ("fentry/do_unlinkat", ("kfunc", "do_unlinkat")),
        "kretfunc__do_unlinkat": ("fexit/do_unlinkat", ("kretfunc", "do_unlinkat")),
        "lsm__bpf": ("lsm/bpf", ("lsm", "bpf")),
    }
    assert {n: (fn.section, fn.auto_attach) for n, fn in f.items()} == want
    assert f["syscall__execve"].is_syscall and not f["plain"].is_syscall
    assert f["kprobe__vfs_read"].params == [("struct pt_regs *", "ctx"), ("struct file *", "file")]
    assert "struct file * file = (struct file *)(PT_REGS_PARM1(ctx));" in tr.source
    assert f["kretfunc__do_unlinkat"].params[-1] == ("long", "ret")
    assert "(long)ctx[2]" in tr.source


def test_kind_of_overrides_and_syscall_fallback():
    text = ("int hello(struct pt_regs *ctx, int dfd, const char __user *name) {\n"
            "  return dfd;\n}\n"
            "int bye(struct pt_regs *ctx) {\n  return PT_REGS_RC(ctx);\n}\n")
    tr = translate(text, kind_of={"hello": "syscall_tracepoint:openat",
                                  "bye": "syscall_exit_tracepoint:openat"})
    assert tr.functions["hello"].section == "tracepoint/syscalls/sys_enter_openat"
    assert "((struct trace_event_raw_sys_enter *)ctx)->args[1]" in tr.source
    assert "((struct trace_event_raw_sys_exit *)ctx)->ret" in tr.source
    with pytest.raises(DialectError, match=r"line 2: .*PT_REGS_PARM1.*no kprobes"):
        translate("int hello(struct pt_regs *ctx) {\n return PT_REGS_PARM1(ctx);\n}\n",
                  kind_of={"hello": "syscall_tracepoint:openat"})
    with pytest.raises(DialectError, match="unknown program kind 'nonsense'"):
        translate("int f(void *ctx) { return 0; }", kind_of={"f": "nonsense"})
    assert translate("int prog(void *ctx) { return 0; }",
                     kind_of={"prog": "tracepoint:sched/sched_switch"}).functions["prog"].section \
        == "tracepoint/sched/sched_switch"


def test_tracepoint_probe_struct_from_format(tracefs):
    tr = translate("TRACEPOINT_PROBE(sched, sched_switch) {\n"
                   "  return args->prev_pid + args->next_prio;\n}\n")
    fn = tr.functions["tracepoint__sched__sched_switch"]
    assert fn.auto_attach == ("tracepoint", "sched:sched_switch")
    fmt = (tracefs / "events/sched/sched_switch/format").read_text()
    offset = int(fmt.split("field:pid_t next_pid;")[1].split("offset:")[1].split(";")[0])
    assert f"__builtin_offsetof(struct tracepoint__sched__sched_switch, next_pid) == {offset}" \
        in tr.source
    assert tr.user_line(tr.source.splitlines().index(
        "  return args->prev_pid + args->next_prio;") + 1) == 2
    with pytest.raises(DialectError, match="tracepoint nosuchcat:nosuchev does not exist"):
        translate("TRACEPOINT_PROBE(nosuchcat, nosuchev) { return 0; }")


def test_kernel_includes_dropped():
    tr = translate("#include <linux/sched.h>\n#include <uapi/linux/ptrace.h>\n"
                   '#include "mine.h"\nint x;\n')
    assert "linux/sched.h" not in tr.source and '#include "mine.h"' in tr.source
    assert tr.source.splitlines()[3] == "int x;"


def test_program_calling_a_program_is_an_error():
    with pytest.raises(DialectError, match=r"line 2: function foo calls bar, which is a "
                                           r"program .*static"):
        translate("int bar(void *ctx) { return 0; }\nint foo(void *ctx) { return bar(ctx); }\n")


def test_printk_format_warnings(capsys):
    translate('int prog(struct xdp_md *ctx) {\n  bpf_trace_printk("%0.2f %s %s\\n", 1, "a", "b");'
              '\n  return 0;\n}\n')
    err = capsys.readouterr().err
    assert "line 2: warning: only %d %u %x %ld %lu %lx %lld %llu %llx %p %s conversion " \
           "specifiers allowed" in err
    assert "line 2: warning: cannot use several %s conversion specifiers" in err
    with pytest.raises(DialectError, match="format must be a string literal"):
        translate("int prog(struct xdp_md *ctx) { char f[] = \"x\"; "
                  "bpf_trace_printk(f); return 0; }")


def test_conditional_branches_resolved_by_the_preprocessor():
    """As in BCC (which rewrites preprocessed code), only the branches the preprocessor keeps
    define tables and programs; cflags, the program's own macros, the kernel's version and
    configuration decide."""
    text = ("#define MINE 1\n#ifdef LATENCY\nBPF_HASH(data, u32, u64);\n#else\n"
            "BPF_HASH(data, u32, u32);\n#endif\n"
            "#if LINUX_VERSION_CODE >= KERNEL_VERSION(4, 0, 0) && MINE\n"
            "int newer(struct xdp_md *ctx) {\n#else\nint older(struct xdp_md *ctx) {\n#endif\n"
            "#if 0\n  {{ unbalanced\n#endif\n  return XDP_PASS;\n}\n")
    tr = translate(text)
    assert tr.tables["data"].leaf_type == "u32" and list(tr.functions) == ["newer"]
    assert "unbalanced" not in tr.source
    assert tr.user_line(tr.source.splitlines().index("  return XDP_PASS;") + 1) == 15
    assert translate(text, ["-DLATENCY"]).tables["data"].leaf_type == "u64"
