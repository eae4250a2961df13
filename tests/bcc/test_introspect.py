"""BPF's introspection methods (IntrospectionMixin) on the real kernel, tracefs, ld.so.cache
and processes: symbols as BCC formats them, probe targets, features from load probes."""
from __future__ import annotations

import os
import random
import shutil
import re
import struct
import subprocess
import sys

import pytest

from pybpf import features, symbols
from pybpf.asm import (FP, R0, R1, R2, R3, R4, R6, W, add64_imm, assemble, call, exit_, ld_map_fd,
                       mov64_imm, mov64_reg, stx)
from pybpf.bcc.introspect import IntrospectionMixin as BPF
from pybpf.bcc.introspect import resolve_module
from pybpf.errors import UsageError
from pybpf.links.tracing import tracefs
from pybpf.links.uprobe import attach_uprobe
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys import kallsyms
from pybpf.sys.uapi import ProgType
from tests.bcc.bcc_peer import run_both
from tests.test_symbols import binaries, run  # noqa: F401 (fixtures)

BPF_F_USER_STACK = 1 << 8


def _kernel_function(name: str = "vfs_read") -> int:
    return next(a for a, t, n in kallsyms.read() if n == name and t in "tT")


def test_ksym_formats_as_bcc():
    addr = _kernel_function()
    assert BPF.ksym(addr + 4) == b"vfs_read"
    assert BPF.ksym(addr + 4) == b"vfs_read"  # again (remembered)
    assert BPF.ksym(addr + 4, show_offset=True) == b"vfs_read+0x4"
    assert BPF.ksym(addr, show_module=True) == b"vfs_read [kernel]"
    assert BPF.ksym(addr + 0x1a, True, True) == b"vfs_read+0x1a [kernel]"
    first = symbols.kernel_symbols().addresses[0]
    assert BPF.ksym(first - 1, True, True) == b"[unknown]"
    assert BPF.sym(addr + 4, -1, show_offset=True) == b"vfs_read+0x4"


def test_ksymname():
    assert BPF.ksymname(b"vfs_read") == _kernel_function()
    assert BPF.ksymname("vfs_read") == _kernel_function()
    assert BPF.ksymname(b"pybpf_no_such_function") == -1


def test_sym_of_process(binaries, run):  # noqa: F811
    r = run(binaries["pie"])
    assert BPF.sym(r.target, r.pid) == b"pybpf_sym_target"
    assert BPF.sym(r.static + 3, r.pid, show_module=True, show_offset=True) == \
        b"pybpf_static_fn+0x3 [pie]"
    assert BPF.sym(0x1000, r.pid, show_module=True, show_offset=True) == b"[unknown]"


def test_symbol_cache(binaries, run):  # noqa: F811
    """bcc.SymbolCache: resolve (function, offset, module) and resolve_name, as BCC's."""
    from pybpf.bcc import SymbolCache
    r = run(binaries["pie"])
    cache = SymbolCache(r.pid)
    pie = str(binaries["pie"]).encode()
    assert cache.resolve(r.static + 3, False) == (b"pybpf_static_fn", 3, pie)
    assert cache.resolve(0x1000, True) == (None, 0x1000, None)
    assert cache.resolve_name(pie, b"pybpf_sym_target") == r.target
    assert cache.resolve_name(b"pie", b"no_such_function") == -1
    ksyms = symbols.kernel_symbols()
    addr = ksyms.address("do_sys_openat2") or ksyms.addresses[0]
    found = ksyms.resolve(addr)
    assert found is not None
    assert SymbolCache(-1).resolve(addr + 1, True)[:2] == (found[0].encode(), 1)


def test_sym_of_a_user_stack_taken_by_the_kernel(binaries, run):  # noqa: F811
    """A uprobe on pybpf_sym_target takes the user stack (bpf_get_stackid): its first frame
    symbolizes to the function (the others depend on frame pointers, which -O2 omits)."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    r = run(binaries["pie"])
    with Map.create("stack_trace", 4, 8 * 127, 16, name="sym_stacks") as stacks, \
            Map.create("array", 4, 4, 1, name="sym_ids", key="I", value="i") as ids:
        prog_code = assemble([  # ids[0] = bpf_get_stackid(ctx, stacks, BPF_F_USER_STACK)
            mov64_reg(R6, R1),
            mov64_reg(R1, R6), ld_map_fd(R2, stacks.fd), mov64_imm(R3, BPF_F_USER_STACK),
            call("get_stackid"),
            stx(W, FP, R0, -8),
            mov64_imm(R1, 0), stx(W, FP, R1, -4),
            ld_map_fd(R1, ids.fd), mov64_reg(R2, FP), add64_imm(R2, -4),
            mov64_reg(R3, FP), add64_imm(R3, -8), mov64_imm(R4, 0), call("map_update_elem"),
            mov64_imm(R0, 0), exit_(),
        ])
        with Program.load("kprobe", prog_code, name="sym_stack") as prog, \
                attach_uprobe(prog, r.path, "pybpf_sym_target", pid=r.pid):
            r.call()
        stack_id = ids[0]
        assert stack_id >= 0, f"bpf_get_stackid failed: {stack_id}"
        raw = stacks.lookup(struct.pack("<I", stack_id))
        frames = [ip for ip in struct.unpack(f"<{len(raw) // 8}Q", bytes(raw)) if ip]
    assert BPF.sym(frames[0], r.pid, show_module=True) == b"pybpf_sym_target [pie]"
    assert BPF.sym(frames[0], r.pid, show_offset=True) == b"pybpf_sym_target+0x0"


def test_find_library_and_exe():
    libc = BPF.find_library(b"c")
    assert libc is not None and os.path.basename(libc).startswith(b"libc.so")
    assert os.path.isfile(libc)
    mapped = BPF.find_library(b"c", pid=os.getpid())
    assert mapped is not None and os.path.samefile(mapped, libc)
    assert BPF.find_library(b"pybpf_no_such_library") is None
    assert BPF.find_library(b"/some/path/libx.so") == b"/some/path/libx.so"
    true = BPF.find_exe(b"true")
    assert true is not None and os.access(true, os.X_OK) and true.endswith(b"/true")
    assert BPF.find_exe(b"/nonexistent/true") is None
    assert BPF.find_exe(b"pybpf-no-such-program") is None


def test_user_functions(binaries):  # noqa: F811
    found = BPF.get_user_functions_and_addresses(str(binaries["pie"]).encode(), b"pybpf_")
    assert {n for n, _ in found} == {b"pybpf_sym_target", b"pybpf_static_fn"}
    assert BPF.get_user_functions(b"c", b"^getpid$") == {b"getpid"}
    assert len(BPF.get_user_addresses(str(binaries["pie"]), b"pybpf_sym")) == 1
    assert resolve_module(b"c") == BPF.find_library(b"c").decode()
    assert os.path.samefile(resolve_module("libc.so.6"), BPF.find_library(b"c"))
    assert resolve_module("true") == os.path.realpath(BPF.find_exe("true"))
    with pytest.raises(UsageError, match="pybpf_nothing"):
        resolve_module("pybpf_nothing")


def test_add_module_symbolizes_build_id_frames(binaries):  # noqa: F811
    path = str(binaries["pie"])
    BPF.add_module(path)
    fs = symbols.file_symbols(path)
    vaddr = fs.starts[fs.names.index("pybpf_static_fn")]
    file_offset = next(vaddr - v + off for v, size, off in fs.segments if v <= vaddr < v + size)

    class Frame:  # the fields of struct bpf_stack_build_id the lookup reads
        build_id = fs.build_id
        offset = file_offset + 1
        status = 1
    assert BPF.sym(Frame(), -1, show_module=True, show_offset=True) == \
        b"pybpf_static_fn+0x1 [pie]"


def test_probe_limit(monkeypatch):
    monkeypatch.delenv("BCC_PROBE_LIMIT", raising=False)
    assert BPF.get_probe_limit() == 1000
    monkeypatch.setenv("BCC_PROBE_LIMIT", "20")
    assert BPF.get_probe_limit() == 20


def test_probe_quota_bounds_open_probes(monkeypatch):
    """As BCC: more probes than BCC_PROBE_LIMIT over all BPF objects are refused, before any
    is attached."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    from pybpf.bcc import BPF as FullBPF, _get_num_open_probes
    base = _get_num_open_probes()  # other tests' objects this process still holds
    monkeypatch.setenv("BCC_PROBE_LIMIT", str(base + 3))
    text = "int count(void *ctx) { return 0; }"
    with FullBPF(text=text) as b1, FullBPF(text=text) as b2:
        b1.attach_uprobe(name="c", sym_re="^getppid$|^getpid$", fn_name="count")
        assert _get_num_open_probes() == base + 2
        with pytest.raises(UsageError, match="2 more probes would exceed the quota of open "
                                             rf"probes \({base + 3}; BCC_PROBE_LIMIT"):
            b2.attach_uprobe(name="c", sym_re="^getppid$|^getpid$", fn_name="count")
        assert b2.num_open_uprobes() == 0
        b2.attach_uretprobe(name="c", sym="getppid", fn_name="count")
        assert _get_num_open_probes() == base + 3
    assert _get_num_open_probes() == base


def test_monotonic_time_is_the_bpf_clock():
    before = BPF.monotonic_time()
    assert isinstance(before, float)
    assert before <= BPF.monotonic_time() <= before + 5e9


def test_tracepoints():
    assert BPF.tracepoint_exists("syscalls", "sys_enter_execve")
    assert BPF.tracepoint_exists(b"sched", b"sched_switch")
    assert not BPF.tracepoint_exists("pybpf", "no_such_event")
    found = BPF.get_tracepoints(b"sched:sched_(switch|wakeup)$")
    assert set(found) == {b"sched:sched_switch", b"sched:sched_wakeup"}
    events = os.path.join(tracefs(), "events", "syscalls")
    expected = {f"syscalls:{e}".encode() for e in os.listdir(events) if e.startswith("sys_enter_")}
    assert set(BPF.get_tracepoints(b"syscalls:sys_enter_")) == expected


def test_kprobe_functions_are_attachable_text():
    try:
        with open(os.path.join(tracefs(), "available_filter_functions"), "rb") as f:
            available = {line.split()[0] for line in f if line.strip()}
    except OSError as e:  # without ftrace / kprobes the kernel lists no targets
        assert BPF.get_kprobe_functions(b"vfs_.*") == set()
        pytest.skip(f"available_filter_functions unreadable here ({e.strerror}): "
                    f"{features.kprobes().reason}")
    found = BPF.get_kprobe_functions(b"vfs_re.*")
    assert found and found <= available
    assert all(re.fullmatch(rb"vfs_re.*", fn) for fn in found)
    assert b"vfs_read" in found


def test_feature_questions_come_from_load_probes():
    assert BPF.support_kfunc() is bool(features.fentry())
    assert BPF.support_lsm() is bool(features.lsm())
    assert BPF.support_raw_tracepoint() is bool(features.prog_type(ProgType.RAW_TRACEPOINT))
    if not features.fentry() and symbols.kernel_symbols().address("bpf_trampoline_link_prog"):
        # the symbol BCC looks for is there, yet the kernel refuses fentry programs
        assert BPF.support_kfunc() is False
    if BPF.support_raw_tracepoint_in_module():
        assert BPF.support_raw_tracepoint()


SYMBOLIZE = r"""
import sys
from bcc import BPF
pid, addrs = int(sys.argv[1]), [int(a, 16) for a in sys.argv[2:]]
for a in addrs:
    print(hex(a), BPF.sym(a, pid), BPF.sym(a, pid, show_module=True, show_offset=True))
"""


def test_ksym_as_bcc(tmp_path):
    """BCC's BPF.ksym and pybpf's name the same functions, offsets and modules (aliases at
    one address excepted: which alias BCC reports is arbitrary)."""
    rng = random.Random(15)
    text = [(a, n) for a, t, n in kallsyms.read() if a and t in "tT"]
    at: dict[int, int] = {}
    for a, _ in text:
        at[a] = at.get(a, 0) + 1
    sample = [a + rng.randrange(0, 32) for a, _ in rng.sample([s for s in text if at[s[0]] == 1],
                                                              300)]
    bcc, ours = run_both(tmp_path, SYMBOLIZE, "-1", *(hex(a) for a in sample))
    bcc_lines, our_lines = bcc.splitlines(), ours.splitlines()
    assert len(bcc_lines) == len(sample)
    differ = [(b, o) for b, o in zip(bcc_lines, our_lines) if b != o]
    # a symbol that appeared or went away between the two reads (BPF programs come and go)
    assert len(differ) <= 3, differ[:5]


def test_sym_as_bcc(tmp_path, binaries, run):  # noqa: F811
    r = run(binaries["pie"])
    ps = symbols.ProcessSymbols(r.pid)
    libc = next(m.path for m in ps.mappings if "/libc.so" in m.path)
    addrs = [r.target, r.target + 1, r.static + 5, ps.address(libc, "getpid") + 3, 0x1000]
    bcc, ours = run_both(tmp_path, SYMBOLIZE, str(r.pid), *(hex(a) for a in addrs))
    bcc_lines, our_lines = bcc.splitlines(), ours.splitlines()
    assert len(bcc_lines) == len(addrs) == len(our_lines)
    fs = symbols.file_symbols(libc)
    for b, o in zip(bcc_lines, our_lines):
        if b != o:  # aliases at one address (getpid, __getpid): BCC's pick is arbitrary
            name_of = re.compile(r"b'([^'+]+)")
            bname, oname = name_of.findall(b)[0], name_of.findall(o)[0]
            assert fs.address(bname) == fs.address(oname) is not None, (b, o)
            assert b.replace(bname, oname) == o


def test_bcc_stack_trace_symbolized(binaries, run):  # noqa: F811
    """BCC style: BPF_STACK_TRACE filled by get_stackid in a uprobe program attached with
    attach_uprobe(sym=), walked and named with b.sym(): the first frame is the function."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    from pybpf.bcc import BPF
    r = run(binaries["pie"])
    text = """
BPF_STACK_TRACE(stacks, 16);
BPF_HASH(ids, u32, int);
int on_call(struct pt_regs *ctx) {
    u32 zero = 0;
    int id = stacks.get_stackid(ctx, BPF_F_USER_STACK);
    ids.update(&zero, &id);
    return 0;
}
"""
    with BPF(text=text) as b:
        b.attach_uprobe(name=r.path, sym="pybpf_sym_target", fn_name="on_call", pid=r.pid)
        r.call()
        (stack_id,) = [v.value for _, v in b["ids"].items()]
        assert stack_id >= 0
        frames = list(b["stacks"].walk(stack_id))
        assert b.sym(frames[0], r.pid, show_module=True, show_offset=True) == \
            b"pybpf_sym_target+0x0 [pie]"


def test_bcc_kernel_stack_symbolized():
    """A kernel stack taken at the getppid syscall tracepoint names the syscall entry path
    through b.ksym."""
    from pybpf.bcc import BPF
    text = """
BPF_STACK_TRACE(stacks, 16);
BPF_HASH(ids, u32, int);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if (bpf_get_current_pid_tgid() >> 32 != %d)
        return 0;
    u32 zero = 0;
    int id = stacks.get_stackid(args, 0);
    ids.update(&zero, &id);
    return 0;
}
""" % os.getpid()
    with BPF(text=text) as b:
        os.getppid()
        (stack_id,) = [v.value for _, v in b["ids"].items()]
        assert stack_id >= 0
        names = [b.ksym(a) for a in b["stacks"].walk(stack_id)]
    assert b"do_syscall_64" in names, names
    assert all(n != b"[unknown]" for n in names)


KERNEL_BTF = r"""
import sys
from bcc import BPF
args = sys.argv[1:]
for struct, field in zip(args[0::2], args[1::2]):
    print(struct, field, BPF.kernel_struct_has_field(struct.encode(), field.encode()))
"""


def test_kernel_struct_has_field_as_bcc(tmp_path):
    """kernel_struct_has_field answers as BCC's (both from vmlinux BTF): direct members,
    members of anonymous unions, absent ones, unknown structs."""
    asks = ["task_struct", "__state", "task_struct", "state", "sk_buff", "len",
            "sk_buff", "tstamp", "request", "rq_disk", "pybpf_no_struct", "x"]
    bcc, ours = run_both(tmp_path, KERNEL_BTF, *asks)
    assert bcc.count("\n") == len(asks) // 2 and ours == bcc
    assert "sk_buff tstamp 1" in ours.splitlines()


def test_kernel_enum_has_val_as_bpftool():
    """Named and anonymous enums against bpftool's dump of vmlinux BTF."""
    dump = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                          capture_output=True, text=True, check=True).stdout
    anon = re.search(r"ENUM '\(anon\)' [^\n]*vlen=[1-9]\d*\n\t'(\w+)'", dump)[1]
    assert BPF.kernel_enum_has_val(b"", anon.encode()) == 1
    assert BPF.kernel_enum_has_val("", "PYBPF_NOPE") == 0
    assert "'BPF_MAP_TYPE_HASH' val=1" in dump
    assert BPF.kernel_enum_has_val(b"bpf_map_type", b"BPF_MAP_TYPE_HASH") == 1
    assert BPF.kernel_enum_has_val("bpf_map_type", "PYBPF_NOPE") == 0
    assert BPF.kernel_enum_has_val("pybpf_no_enum", "X") == -1


def test_generate_auto_includes():
    words = ["struct", "file", "*f", "f->f_inode", "sk_buff_len", "x"]
    assert BPF.generate_auto_includes(words) == \
        "#include <linux/fs.h>\n#include <linux/netdevice.h>\n"
    assert BPF.generate_auto_includes(["plain"]) == ""


CXX_TARGET = r"""
#include <cstdio>
#include <unistd.h>
namespace pybpf { __attribute__((noinline)) int hit(int x) { __asm__ volatile(""); return x + 1; } }
int main()
{
	char c;
	std::printf("%p\n", (void *)&pybpf::hit);
	std::fflush(stdout);
	return read(0, &c, 1) == 1 ? pybpf::hit(c) & 1 : 2;
}
"""


def test_sym_demangles_cxx(tmp_path):
    """A C++ function's mangled name comes back demangled (c++filt), or as is with
    demangle=False, compared with BCC's output for the same process."""
    cxx = shutil.which("g++") or pytest.fail("g++ is missing: .ci/install installs gcc")
    (tmp_path / "t.cc").write_text(CXX_TARGET)
    subprocess.run([cxx, "-O2", "-o", str(tmp_path / "cxx"), str(tmp_path / "t.cc")], check=True)
    proc = subprocess.Popen([str(tmp_path / "cxx")], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        addr = int(proc.stdout.readline(), 16)
        assert BPF.sym(addr, proc.pid) == b"pybpf::hit(int)"
        assert BPF.sym(addr, proc.pid, demangle=False) == b"_ZN5pybpf3hitEi"
        bcc, ours = run_both(tmp_path, SYMBOLIZE, str(proc.pid), hex(addr))
        assert bcc and ours == bcc
    finally:
        proc.kill()
        proc.wait()


def test_uprobe_on_a_library_in_another_mount_namespace(tmp_path):
    """A library only a process in its own mount namespace sees (a container's) is probed
    through /proc/PID/root, as BCC does; attach and detach name it by the process's path."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    from pybpf.bcc import BPF as FullBPF
    libz = os.fsdecode(BPF.find_library("z") or pytest.fail("libz is missing"))
    d = tmp_path / "ns"
    d.mkdir()
    child = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount -t tmpfs tmpfs "$1" && cp {libz} "$1"/ && exec "$2" -c "$3" "$1"/libz.so.1',
         "sh", str(d), sys.executable,
         "import ctypes, sys\nz = ctypes.CDLL(sys.argv[1])\nprint(1, flush=True)\n"
         "sys.stdin.readline()\nz.zlibVersion()\nz.zlibVersion()\nprint(2, flush=True)\n"
         "sys.stdin.readline()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdin is not None and child.stdout is not None
        assert child.stdout.readline() == "1\n"
        path = str(d / "libz.so.1")
        assert not os.path.exists(path)  # only in the child's namespace
        assert resolve_module(path, child.pid) == f"/proc/{child.pid}/root{path}"
        assert resolve_module(path, os.getpid()) == path
        with FullBPF(text="BPF_ARRAY(n, u64, 1); int count(void *ctx) "
                          "{ n.atomic_increment(0); return 0; }") as b:
            b.attach_uprobe(name=path, sym="zlibVersion", fn_name="count", pid=child.pid)
            child.stdin.write("x\n")
            child.stdin.flush()
            assert child.stdout.readline() == "2\n"
            assert b["n"][0].value == 2
            b.detach_uprobe(name=path, sym="zlibVersion", pid=child.pid)
            assert b.num_open_uprobes() == 0
    finally:
        child.kill()
        child.wait()
