"""BCC C translated, compiled (cache, precompiled runtime) and loaded into the running kernel:
map names/types/sizes as the kernel reports them, programs run on real events or with
BPF_PROG_TEST_RUN."""
from __future__ import annotations

import os
import struct
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pybpf.bcc.build import build
from pybpf.bcc.dialect import EVENT_SECTION, translate
from pybpf.bcc.toolchain import base_flags
from pybpf.btf import types as T
from pybpf.elf import ObjectSpec, load
from pybpf.errors import CompileError
from pybpf.sys.uapi import MapType

BOOK = r"""
#include <linux/sched.h>
struct user_msg_t {
   char message[12];
};

BPF_HASH(config, u32, struct user_msg_t);

BPF_PERF_OUTPUT(output);

struct data_t {
   int pid;
   int uid;
   char command[16];
   char message[12];
};

int hello(void *ctx) {
   struct data_t data = {};
   struct user_msg_t *p;
   char message[12] = "Hello World";

   data.pid = bpf_get_current_pid_tgid() >> 32;
   data.uid = bpf_get_current_uid_gid() & 0xFFFFFFFF;
   bpf_get_current_comm(&data.command, sizeof(data.command));
   p = config.lookup(&data.uid);
   if (p != 0) {
      bpf_probe_read_kernel(&data.message, sizeof(data.message), p->message);
   } else {
      bpf_probe_read_kernel(&data.message, sizeof(data.message), message);
   }
   output.perf_submit(ctx, &data, sizeof(data));
   return 0;
}
"""

# every map macro, the map methods XDP may call, run with BPF_PROG_TEST_RUN
XDP = r"""
#include <uapi/linux/bpf.h>
#include <linux/if_ether.h>
struct key_t { u32 proto; u32 len; };
struct lpm_key { u32 prefixlen; u8 addr[4]; };
struct rec { u64 len; u16 proto; };
BPF_HASH(by_key, struct key_t, u64, 64);
BPF_ARRAY(arr, u64, 4);
BPF_PERCPU_ARRAY(pcpu, u64, 2);
BPF_PERCPU_HASH(pcpu_hash, u32, u64, 8);
BPF_LRU_HASH(lru, u32, u32, 16);
BPF_HISTOGRAM(hist);
BPF_HISTOGRAM(hist_by_key, struct key_t, 16);
BPF_LPM_TRIE(trie, struct lpm_key, u32, 8);
BPF_QUEUE(fifo, u32, 8);
BPF_STACK(lifo, u32, 8);
BPF_DEVMAP(devs, 4);
BPF_CPUMAP(cpus, 2);
BPF_XSKMAP(xsks, 2);
BPF_PROG_ARRAY(jumps, 2);
BPF_PERF_OUTPUT(perf_events);
BPF_RINGBUF_OUTPUT(ring, 4);
BPF_TABLE("hash", u32, u32, generic, 7);
BPF_F_TABLE("hash", u32, u64, no_prealloc, 9, BPF_F_NO_PREALLOC);

int xdp_counter(struct xdp_md *ctx) {
    void *data = (void *)(long)ctx->data, *end = (void *)(long)ctx->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return XDP_ABORTED;
    u32 len = end - data, zero = 0, one = 1, value = 42, out = 0;
    struct key_t key = {.proto = bpf_ntohs(eth->h_proto), .len = len};
    by_key.increment(key);
    by_key.atomic_increment(key, 10);
    u64 *a = arr.lookup(&zero);
    if (a)
        lock_xadd(a, len);
    u64 big = 100;
    arr.update(&one, &big);
    pcpu.increment(zero);
    u64 init = 5;
    u64 *h = pcpu_hash.lookup_or_try_init(&one, &init);
    if (h)
        *h += 1;
    lru.insert(&one, &value);
    lru.insert(&one, &zero);        /* NOEXIST: keeps 42 */
    hist.increment(bpf_log2l(len));
    hist_by_key.increment(key, 3);
    struct lpm_key lk = {.prefixlen = 32, .addr = {10, 1, 2, 3}};
    u32 *route = trie.lookup(&lk);
    if (route)
        generic.update(&zero, route);
    fifo.push(&value, 0);
    fifo.push(&len, 0);
    lifo.push(&value, 0);
    lifo.push(&len, 0);
    if (lifo.pop(&out) == 0)
        generic.update(&one, &out);
    if (lifo.peek(&out) == 0) {
        u32 two = 2;
        generic.update(&two, &out);
    }
    struct rec r = {.len = len, .proto = key.proto};
    perf_events.perf_submit(ctx, &r, sizeof(r));
    ring.ringbuf_output(&r, sizeof(r), 0);
    struct rec *slot = ring.ringbuf_reserve(sizeof(struct rec));
    if (slot) {
        slot->len = len + 1;
        slot->proto = 7;
        ring.ringbuf_submit(slot, 0);
    }
    u64 *np = no_prealloc.lookup(&zero);
    if (!np)
        no_prealloc.update(&zero, &big);
    no_prealloc.delete(&one);
    jumps.call(ctx, 0);             /* empty slot: falls through */
    if (len == 1000)
        return devs.redirect_map(0, 0) + cpus.redirect_map(0, 0) + xsks.redirect_map(0, 0);
    return XDP_PASS;
}
"""

SIZES = {  # name: (MapType, key size, value size, max entries)
    "by_key": (MapType.HASH, 8, 8, 64), "arr": (MapType.ARRAY, 4, 8, 4),
    "pcpu": (MapType.PERCPU_ARRAY, 4, 8, 2), "pcpu_hash": (MapType.PERCPU_HASH, 4, 8, 8),
    "lru": (MapType.LRU_HASH, 4, 4, 16), "hist": (MapType.ARRAY, 4, 8, 64),
    "hist_by_key": (MapType.HASH, 8, 8, 16), "trie": (MapType.LPM_TRIE, 8, 4, 8),
    "fifo": (MapType.QUEUE, 0, 4, 8), "lifo": (MapType.STACK, 0, 4, 8),
    "devs": (MapType.DEVMAP, 4, 4, 4), "cpus": (MapType.CPUMAP, 4, 4, 2),
    "xsks": (MapType.XSKMAP, 4, 4, 2), "jumps": (MapType.PROG_ARRAY, 4, 4, 2),
    "ring": (MapType.RINGBUF, 0, 0, 4 * 4096), "generic": (MapType.HASH, 4, 4, 7),
    "no_prealloc": (MapType.HASH, 4, 8, 9),
}


def num(value, fmt: str = "<Q") -> int:
    """A map value as an int, whether the map returns raw bytes or BTF-decoded values."""
    return struct.unpack(fmt, value)[0] if isinstance(value, (bytes, bytearray)) else value


def _event_type(spec: ObjectSpec, table: str) -> T.Type:
    """The record type the program submits to ``table``, read back from BTF."""
    ds = spec.btf.find(EVENT_SECTION, T.Datasec)
    for vs in ds.vars:
        if vs.type.name.endswith("." + translate_event_var(table)):
            return T.skip_qualifiers(vs.type.type)
    raise AssertionError(f"no event type for {table}")


def translate_event_var(table: str) -> str:
    return f"__pybpf_event__{table}"


@pytest.fixture(scope="module")
def xdp_object() -> tuple[object, ObjectSpec]:
    tr = translate(XDP)
    return tr, ObjectSpec.from_file(build(tr))


def test_maps_as_the_kernel_sees_them(xdp_object):
    tr, spec = xdp_object
    with load(spec) as coll:
        for name, (mtype, ksize, vsize, entries) in SIZES.items():
            info = coll.maps[name].info()
            assert (info.name, info.type, info.key_size, info.value_size, info.max_entries) \
                == (name, mtype, ksize, vsize, entries), name
            assert tr.tables[name].map_type == mtype.name
        assert coll.maps["no_prealloc"].info().flags & 1
        assert coll.maps["by_key"].info().btf_key_type_id  # BTF-described key and value


def test_xdp_methods_run(xdp_object):
    tr, spec = xdp_object
    packet = b"\xff" * 12 + b"\x08\x00" + b"\x00" * 50       # IPv4 ethertype, 64 bytes
    with load(spec) as coll:
        m = coll.maps
        m["trie"][struct.pack("<I4B", 24, 10, 1, 2, 0)] = struct.pack("<I", 77)
        res = coll.programs["xdp_counter"].test_run(packet, repeat=1)
        assert res.retval == 2                                   # XDP_PASS
        key = struct.pack("<II", 0x0800, 64)
        assert num(m["by_key"].lookup(key)) == 11   # increment + 10
        assert num(m["arr"].lookup(struct.pack("<I", 0)), "<Q") == 64
        assert num(m["arr"].lookup(struct.pack("<I", 1)), "<Q") == 100
        assert num(m["lru"].lookup(struct.pack("<I", 1)), "<I") == 42
        assert num(m["hist"].lookup(struct.pack("<I", 7)), "<Q") == 1  # log2(64)+1
        assert num(m["hist_by_key"].lookup(key)) == 3
        gen = {num(k, "<I"): num(v, "<I") for k, v in m["generic"].items()}
        assert gen == {0: 77, 1: 64, 2: 42}       # LPM match; stack: pop then peek
        assert num(m["fifo"].pop(), "<I") == 42    # queue: first in, first out
        assert num(m["no_prealloc"].lookup(struct.pack("<I", 0)), "<Q") == 100
        per_cpu = [num(v) for v in m["pcpu_hash"].lookup(struct.pack("<I", 1))]
        assert sorted(per_cpu)[-1] == 6 and sum(per_cpu) == 6   # the running CPU's: 5 + 1
        per_cpu = [num(v) for v in m["pcpu"].lookup(struct.pack("<I", 0))]
        assert sum(per_cpu) == 1


def test_event_type_kept_in_btf(xdp_object):
    tr, spec = xdp_object
    assert set(tr.event_types) == {"perf_events", "ring"}
    for table in ("perf_events", "ring"):
        t = _event_type(spec, table)
        assert isinstance(t, T.Struct) and t.name == "rec"
        assert [m.name for m in t.members] == ["len", "proto"]


RAW_TP = r"""
BPF_ARRAY(seen, u64, 4);
RAW_TRACEPOINT_PROBE(sys_enter) {
    u32 k = 0, k1 = 1, k2 = 2, k3 = 3;
    u64 pid_tgid = bpf_get_current_pid_tgid();
    u64 v = ctx->args[1] + 1;
    seen.update(&k, &v);
    u64 swapped = bpf_ntohl(0x01020304) + bpf_htons(0x0102);
    seen.update(&k1, &swapped);
    u64 l = bpf_log2l(0) * 1000 + bpf_log2l(1) * 100 + bpf_log2l(1ULL << 40);
    seen.update(&k2, &l);
    u64 t = bpf_ktime_get_ns() > 0 && pid_tgid != 0;
    seen.update(&k3, &t);
    bpf_trace_printk("pybpf test %d %s\n", 1, "x");
    return 0;
}
"""


def test_raw_tracepoint_probe_runs_with_test_run():
    tr = translate(RAW_TP)
    fn = tr.functions["raw_tracepoint__sys_enter"]
    assert fn.auto_attach == ("raw_tracepoint", "sys_enter")
    with load(ObjectSpec.from_file(build(tr))) as coll:
        coll.programs["raw_tracepoint__sys_enter"].test_run(ctx_in=struct.pack("<QQ", 0, 41))
        got = [num(coll.maps["seen"].lookup(struct.pack("<I", i))) for i in range(4)]
        assert got == [42, 0x04030201 + 0x0201, 0 + 100 + 41, 1]


OPENAT = r"""
struct name_t { char name[64]; };
BPF_HASH(opened, struct name_t, u32, 64);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    struct name_t n = {};
    bpf_probe_read_user_str(&n.name, sizeof(n.name), args->filename);
    u32 flags = args->flags;
    opened.update(&n, &flags);
    return 0;
}
"""


def test_tracepoint_probe_sees_real_events():
    tr = translate(OPENAT)
    target = Path(f"/tmp/pybpf-bcc-{uuid.uuid4().hex[:10]}")   # fits the 64-byte key
    with load(ObjectSpec.from_file(build(tr))) as coll:
        try:
            with coll.programs["tracepoint__syscalls__sys_enter_openat"].attach():
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
        finally:
            target.unlink(missing_ok=True)
        want = str(target).encode().ljust(64, b"\0")
        flags = coll.maps["opened"].lookup(want)
        assert num(flags, "<I") & (os.O_CREAT | os.O_WRONLY) == \
            os.O_CREAT | os.O_WRONLY


def test_book_program_as_syscall_tracepoint(caller):
    from pybpf.events import PerfBuffer
    from tests.bcc.conftest import run_as
    tr = translate(BOOK, kind_of={"hello": "syscall_tracepoint:execve"})
    spec = ObjectSpec.from_file(build(tr))
    record = _event_type(spec, "output")
    assert record.name == "data_t"
    with load(spec) as coll:
        assert coll.maps["config"].info().type == MapType.HASH
        assert (coll.maps["config"].info().key_size, coll.maps["config"].info().value_size) \
            == (4, 12)
        coll.maps["config"][struct.pack("<I", 0)] = b"Hey root!".ljust(12, b"\0")
        with coll.programs["hello"].attach(), \
                PerfBuffer(coll.maps["output"], decode=record) as events:
            run_as(0, caller)
            run_as(65534, caller)
            seen = {}
            deadline = time.monotonic() + 10
            while len(seen) < 2 and time.monotonic() < deadline:
                for ev in events.read(timeout_ms=200):
                    if ev.command == caller.name[:15]:     # char[] fields decode as str
                        seen[ev.uid] = ev.message
        assert seen == {0: "Hey root!", 65534: "Hello World"}


def test_second_build_compiles_nothing():
    tr = translate(BOOK + "\n/* build twice */\n")
    first = build(tr)
    mtime = os.stat(first).st_mtime_ns
    t0 = time.perf_counter()
    again = build(translate(BOOK + "\n/* build twice */\n"))
    elapsed = time.perf_counter() - t0
    assert again == first and os.stat(again).st_mtime_ns == mtime
    assert elapsed < 0.05, elapsed                       # a clang run takes >= 20 ms
    assert build(tr, ["-DDIFFERENT_CFLAGS"]) != first      # cflags are part of the key


def test_compile_error_points_at_users_line():
    text = "BPF_HASH(counts);\n\nint prog(void *ctx) {\n  u64 x = 1;\n  undeclared_thing(x);\n" \
           "  return 0;\n}\n"
    with pytest.raises(CompileError) as ei:
        build(translate(text), name="myprog.c")
    err = ei.value
    assert isinstance(err, Exception)
    assert str(err).startswith("Failed to compile BPF module myprog.c")
    assert "myprog.c:5:" in err.stderr and "undeclared_thing" in err.stderr
    assert "bpf_program.c" not in err.stderr


def test_no_system_headers_used():
    """Programs compile with no system include directory (no libbpf-dev, no kernel headers):
    an include of a libbpf header fails, kernel headers resolve to the runtime's stubs."""
    flags = base_flags()
    assert "-nostdinc" in flags and not any(f.startswith("/usr/include") for f in flags)
    nested = Path(__file__).parent / "dialect" / "uses_kernel_headers.h"
    text = f'#include "{nested}"\nint prog(void *ctx) {{ uint32_t x = AF_INET; bool y = true; ' \
           f'return TASK_RUNNING + x + y + sizeof(size_t); }}\n'
    ObjectSpec.from_file(build(translate(text)))
    with pytest.raises(CompileError, match="'bpf/bpf_helpers.h' file not found"):
        build(translate(f'#include "{nested.with_name("uses_libbpf.h")}"\nint x;\n'))


def test_cflags_changing_language_options_and_a_stale_runtime(tmp_path):
    """cflags are honoured by a program's own runtime header; the whole precompiled runtime
    (the fallback of a program its header does not build) is precompiled again when a header
    it was built from was touched, and parsed instead for cflags changing language options."""
    from pybpf.bcc.toolchain import prepare, run_with_whole_runtime
    text = f"int prog(struct xdp_md *ctx) {{ return XDP_PASS; }} /* {uuid.uuid4()} */\n"
    tr = translate(text)
    ObjectSpec.from_file(build(tr, ["-fno-builtin"]))
    compiler, flags = prepare(tr.source, set(tr.functions), [])
    pch = Path(flags[flags.index("-include-pch") + 1])
    helpers = Path(next(line.split('"')[1] for line in pch.with_suffix("").read_text()
                        .splitlines() if line.endswith('helpers.h"')))
    os.utime(helpers, ns=(time.time_ns(), time.time_ns()))
    for cflags, include in (([], "-include-pch"), (["-fno-builtin"], "-include")):
        obj = tmp_path / f"prog{len(cflags)}.o"
        res, cmd = run_with_whole_runtime(tr.source, set(tr.functions), cflags,
                                          ["-c", "-x", "c", "-", "-o", str(obj)], tr.source)
        assert res.returncode == 0, res.stderr
        assert include in cmd
        with load(ObjectSpec.from_file(obj)) as coll:
            assert coll.programs["prog"].test_run(b"\0" * 64).retval == 2
    assert pch.stat().st_mtime_ns >= helpers.stat().st_mtime_ns


def test_incomplete_table_type_and_kernel_config():
    """A table of an incomplete type fails on the table's line (BCC refuses it too); the
    running kernel's configuration is visible as CONFIG_* macros (where /proc/config.gz or
    /boot/config-<release> is readable)."""
    with pytest.raises(CompileError, match=r"myprog.c:1:.*incomplete type"):
        build(translate("BPF_HASH(drops, struct later_t);\nstruct later_t { u64 x; };\n"),
              name="myprog.c")
    from pybpf.bcc.toolchain import kconfig_defines
    config = kconfig_defines()
    if "no kernel configuration" in config:
        pytest.skip("no readable kernel configuration on this machine")
    assert "#define CONFIG_BPF_SYSCALL 1" in config
    text = ("#ifndef CONFIG_BPF_SYSCALL\n#error no kernel config\n#endif\n"
            "int prog(struct xdp_md *ctx) { return XDP_PASS; }\n")
    ObjectSpec.from_file(build(translate(text)))


ZIG_SCRIPT = r"""
import struct, sys
from pybpf.bcc.build import build
from pybpf.bcc.toolchain import find_compiler
from pybpf.bcc.dialect import translate
from pybpf.elf import ObjectSpec, load
assert find_compiler().argv[1:4] == ("-m", "ziglang", "clang"), find_compiler()
tr = translate(sys.argv[1])
with load(ObjectSpec.from_file(build(tr))) as coll:
    coll.programs["raw_tracepoint__sys_enter"].test_run(ctx_in=struct.pack("<QQ", 0, 41))
    value = coll.maps["seen"].lookup(struct.pack("<I", 0))
    print(struct.unpack("<Q", value)[0] if isinstance(value, bytes) else value)
"""


def test_ziglang_compiler():
    """pybpf[cc]: the ziglang wheel's clang builds the same programs (PYBPF_CC=ziglang)."""
    import sys
    env = dict(os.environ, PYBPF_CC="ziglang")
    res = subprocess.run([sys.executable, "-c", ZIG_SCRIPT, RAW_TP], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["42"]


ZIG_READS = r"""
import sys
from pybpf.bcc.build import build
from pybpf.bcc.dialect import translate
from pybpf.elf import ObjectSpec, load
tr = translate(sys.argv[1])
with load(ObjectSpec.from_file(build(tr))) as coll:
    print(sorted(coll.programs))
"""
PARENT_READ = r"""
#include <linux/sched.h>
TRACEPOINT_PROBE(sched, sched_process_exec) {
    struct task_struct *t = (struct task_struct *)bpf_get_current_task();
    bpf_trace_printk("parent %d\n", t->real_parent->tgid);
    return 0;
}
"""


def test_ziglang_compiler_rewrites_kernel_reads(tmp_path):
    """The ziglang wheel's clang gives the syntax tree the probe-read rewrite needs: the
    program (a pointer chain from bpf_get_current_task) passes the verifier only rewritten."""
    import sys
    env = dict(os.environ, PYBPF_CC="ziglang", XDG_CACHE_HOME=str(tmp_path))
    res = subprocess.run([sys.executable, "-c", ZIG_READS, PARENT_READ], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "tracepoint__sched__sched_process_exec" in res.stdout


MAPS_OF_MAPS = r"""
BPF_ARRAY(ex1, u64, 4);
BPF_ARRAY(ex2, u64, 4);
BPF_ARRAY_OF_MAPS(outer, "ex1", 2);
BPF_HASH_OF_MAPS(houter, u32, "ex1", 8);
int prog(struct xdp_md *ctx) {
    int k = 0, i = 1;
    void *inner = outer.lookup(&k);
    if (!inner)
        return 1;
    u64 *v = bpf_map_lookup_elem(inner, &i);
    if (!v)
        return 0;
    *v += 7;
    u32 hk = 3;
    return houter.lookup(&hk) ? 2 : 3;
}
"""


def test_maps_of_maps():
    """BPF_ARRAY_OF_MAPS/BPF_HASH_OF_MAPS: outer maps whose inner maps are made like the named
    table; the program reaches an inner map set from user space."""
    tr = translate(MAPS_OF_MAPS)
    assert (tr.tables["outer"].map_type, tr.tables["outer"].bcc_class) == \
        ("ARRAY_OF_MAPS", "MapInMapArray")
    assert (tr.tables["houter"].map_type, tr.tables["houter"].key_type) == ("HASH_OF_MAPS", "u32")
    with load(ObjectSpec.from_file(build(tr))) as coll:
        info = coll.maps["outer"].info()
        assert (info.type, info.key_size, info.value_size, info.max_entries) == \
            (MapType.ARRAY_OF_MAPS, 4, 4, 2)
        assert coll.maps["houter"].info().type == MapType.HASH_OF_MAPS
        assert coll.programs["prog"].test_run(b"\0" * 64).retval == 1     # no inner map yet
        coll.maps["outer"][struct.pack("<i", 0)] = coll.maps["ex2"]
        assert coll.programs["prog"].test_run(b"\0" * 64).retval == 3
        assert num(coll.maps["ex2"].lookup(struct.pack("<i", 1))) == 7
    with pytest.raises(CompileError, match="inner table 'later' of 'outer' must be defined "
                                           "before it"):
        translate('BPF_ARRAY_OF_MAPS(outer, "later", 2);\nBPF_ARRAY(later, u64, 4);\n')
