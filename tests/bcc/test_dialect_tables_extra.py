"""BCC's tables that are not simply made (pinned on bpffs, shared between BPF objects of a
process, cgroup storage) and tracepoint record parameters of plain functions, compiled by the
BCC front end and run on the real kernel."""
from __future__ import annotations

import ctypes as ct
import os
import socket
import subprocess

import pytest

from pybpf import features
from pybpf.bcc import BPF
from pybpf.bcc.dialect import DialectError
from pybpf.errors import CompileError, ObjectError, UnsupportedFeatureError, UsageError
from pybpf.links import attach_cgroup
from pybpf.maps import Map
from pybpf.sys.uapi import AttachType, MapFlag, MapType

from ..links.netfixtures import cgroup, cgroup2_root  # noqa: F401  (fixtures)
from .conftest import RUNNER

# counts getppid calls of this process into table ``TABLE``
GETPPID = """
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if (bpf_get_current_pid_tgid() >> 32 != %d)
        return 0;
    u32 k = 1;
    TABLE.increment(k);
    return 0;
}
""" % os.getpid()


def _getppid(n: int) -> None:
    for _ in range(n):
        os.getppid()


def _count(m: Map) -> int:
    raw = m.raw().get(ct.c_uint32(1))
    return 0 if raw is None else int.from_bytes(raw, "little")


# -- tracepoint record parameters -------------------------------------------------------------
def test_plain_tracepoint_function_gets_its_record_struct(tracefs):
    text = """
BPF_ARRAY(seen, u64, 1);
int tracepoint__syscalls__sys_enter_getppid(struct tracepoint__syscalls__sys_enter_getppid *args)
{
    int k = 0;
    u64 v = args->__syscall_nr + 1000;
    if (bpf_get_current_pid_tgid() >> 32 == %d)
        seen.update(&k, &v);
    return 0;
}
""" % os.getpid()
    with BPF(text=text) as b:
        assert b.num_open_tracepoints() == 1  # auto-attached by its name
        _getppid(1)
        import platform
        nr = {"x86_64": 110, "aarch64": 173}.get(platform.machine())
        value = b["seen"][0].value
        assert value > 1000 and (nr is None or value == 1000 + nr)


def test_record_struct_of_a_missing_tracepoint_is_named(tracefs):
    with pytest.raises(DialectError) as ei:
        BPF(text="\nint tracepoint__nosuchcat__nosuchev(struct tracepoint__nosuchcat__nosuchev "
                 "*args) { return 0; }")
    assert "nosuchcat:nosuchev" in str(ei.value) and ei.value.line == 2


# -- BPF_TABLE_PINNED -------------------------------------------------------------------------
def test_pinned_table_made_pinned_then_found(pin_dir, tracefs):
    path = pin_dir / "sub" / "counts"   # its directory is made, as BCC does
    text = (f'BPF_TABLE_PINNED("hash", u32, u64, counts, 16, "{path}");'
            + GETPPID.replace("TABLE", "counts"))
    with BPF(text=text) as b:
        made = b["counts"].map.id
        assert path.exists()
        _getppid(3)
        with Map.from_pin(path) as pinned:   # the program counts in the pinned map
            assert pinned.id == made and _count(pinned) == 3
    assert path.exists()   # the pin outlives the BPF object
    with BPF(text=text) as b:   # found, not made: the program counts on
        assert b["counts"].map.id == made
        assert b["counts"][ct.c_uint32(1)].value == 3
        _getppid(2)
        assert b["counts"][ct.c_uint32(1)].value == 5


def test_pinned_table_with_flags(pin_dir):
    path = pin_dir / "nopre"
    text = (f'BPF_TABLE_PINNED("hash", u32, u64, nopre, 16, "{path}", BPF_F_NO_PREALLOC);\n'
            "int f(void *ctx) { u32 k = 0; return nopre.lookup(&k) != 0; }")
    with BPF(text=text) as b:
        assert b["nopre"].flags & MapFlag.NO_PREALLOC
        with Map.from_pin(path) as pinned:
            assert pinned.flags & MapFlag.NO_PREALLOC and pinned.type == MapType.HASH


def test_pinned_table_unlike_the_pin_is_an_error_naming_it(pin_dir):
    path = pin_dir / "other"
    with Map.create("hash", 4, 4, 16, name="other") as m:   # value size 4, not 8
        m.pin(path)
    held = _held_maps()
    with pytest.raises(ObjectError) as ei:
        BPF(text=f'BPF_TABLE_PINNED("hash", u32, u64, other, 16, "{path}");\n'
                 "int f(void *ctx) { u32 k = 0; return other.lookup(&k) != 0; }")
    msg = str(ei.value)
    assert str(path) in msg and "value_size 4 (wanted 8)" in msg
    assert path.exists()   # the pin that was there is kept
    assert _held_maps() <= held   # no map of the failed build left open


def _held_maps() -> set[int]:
    """The ids of the maps this process holds fds of."""
    ids = set()
    for fd in os.listdir("/proc/self/fdinfo"):
        try:
            with open(f"/proc/self/fdinfo/{fd}") as f:
                ids.update(int(line.split()[1]) for line in f if line.startswith("map_id:"))
        except OSError:
            pass
    return ids


# -- shared tables ----------------------------------------------------------------------------
@pytest.mark.parametrize("macro", ["BPF_TABLE_SHARED", "BPF_TABLE_PUBLIC"])
def test_shared_table_is_the_extern_tables_map(macro, tracefs):
    name = f"sh_{macro[10:].lower()}"
    with BPF(text=f'{macro}("hash", u32, u64, {name}, 32);\n'
                  f"int f(void *ctx) {{ u32 k = 9; return {name}.lookup(&k) != 0; }}") as owner:
        owner[name][ct.c_uint32(7)] = ct.c_uint64(70)
        with BPF(text=f'BPF_TABLE("extern", u32, u64, {name}, 32);'
                      + GETPPID.replace("TABLE", name)) as user:
            assert user[name].map.id == owner[name].map.id
            assert user[name][ct.c_uint32(7)].value == 70
            _getppid(4)
            assert owner[name][ct.c_uint32(1)].value == 4   # the user's program counted there
    with pytest.raises(UsageError) as ei:   # its owner cleaned up: shared no longer
        BPF(text=f'BPF_TABLE("extern", u32, u64, {name}, 32);\nint f(void *c) {{ return 0; }}')
    assert repr(name) in str(ei.value) and "extern" in str(ei.value)


def test_shared_table_with_flags_and_an_unlike_extern(tracefs):
    text = 'BPF_TABLE_SHARED("hash", u32, u64, shf, 8, BPF_F_NO_PREALLOC);\n' \
           "int f(void *c) { return 0; }"
    with BPF(text=text) as owner:
        assert owner["shf"].flags & MapFlag.NO_PREALLOC
        with BPF(text='BPF_TABLE("extern", u32, u64, shf, 8);\nint g(void *c) { return 0; }') \
                as user:
            assert user["shf"].map.id == owner["shf"].map.id   # type and flags: the owner's
        with pytest.raises(ObjectError) as ei:
            BPF(text='BPF_TABLE("extern", u64, u64, shf, 8);\n'
                     "int g(void *c) { u64 k = 0; return shf.lookup(&k) != 0; }")
        assert "'shf'" in str(ei.value) and "key_size 4 (wanted 8)" in str(ei.value)


def test_extern_table_nobody_shares_is_an_error_naming_it():
    with pytest.raises(UsageError) as ei:
        BPF(text='BPF_TABLE("extern", u32, u64, nobody_shares_this, 8);\n'
                 "int g(void *c) { return 0; }")
    assert "'nobody_shares_this'" in str(ei.value)


def test_extern_table_in_scripts_run_by_the_runner(tmp_path, tracefs):
    script = tmp_path / "share.py"
    script.write_text(
        "import ctypes as ct, os\nfrom bcc import BPF\n"
        "a = BPF(text='BPF_TABLE_PUBLIC(\"array\", int, u64, pub, 4);\\n"
        "int f(void *c) { return 0; }')\n"
        "b = BPF(text='BPF_TABLE(\"extern\", int, u64, pub, 4);\\n"
        "TRACEPOINT_PROBE(syscalls, sys_enter_getppid) { int k = 2; u64 *v = pub.lookup(&k);"
        " if (v && bpf_get_current_pid_tgid() >> 32 == %d) __sync_fetch_and_add(v, 1);"
        " return 0; }' % os.getpid())\n"
        "for _ in range(5): os.getppid()\n"
        "print(a['pub'][ct.c_int(2)].value)\n")
    res = subprocess.run([*RUNNER, str(script)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["5"]


# -- cgroup storage ---------------------------------------------------------------------------
STORAGE = """
MACRO(egress, u64);
int count_egress(struct __sk_buff *skb) {
    u64 *bytes = egress.get_local_storage(0);
    __sync_fetch_and_add(bytes, skb->len);
    return 1;
}
"""


@pytest.mark.parametrize("macro, map_type", [
    ("BPF_CGROUP_STORAGE", MapType.CGROUP_STORAGE),
    ("BPF_PERCPU_CGROUP_STORAGE", MapType.PERCPU_CGROUP_STORAGE)])
def test_cgroup_storage_counts_a_cgroups_egress(macro, map_type, cgroup):  # noqa: F811
    support = features.map_type(map_type)
    if not support:
        with pytest.raises(UnsupportedFeatureError):
            BPF(text=STORAGE.replace("MACRO", macro))
        pytest.skip(support.reason)
    with BPF(text=STORAGE.replace("MACRO", macro)) as b:
        assert b["egress"].map.type == map_type
        fn = b.load_func("count_egress", BPF.CGROUP_SKB)
        with attach_cgroup(fn.program, cgroup.path, AttachType.CGROUP_INET_EGRESS):
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            with rx:
                rx.bind(("127.0.0.1", 0))
                port = rx.getsockname()[1]
                cgroup.run("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
                           f"\nfor _ in range(3): s.sendto(b'x' * 100, ('127.0.0.1', {port}))")
        items = list(b["egress"].items())
        assert len(items) == 1   # one cgroup, one attach type
        key, value = items[0]
        assert key.cgroup_inode_id == os.stat(cgroup.path).st_ino
        assert key.attach_type == AttachType.CGROUP_INET_EGRESS
        total = sum(value) if isinstance(value, ct.Array) else value.value  # per CPU
        assert total >= 3 * 128   # three IPv4/UDP packets of 100 bytes of data


# -- maxactive --------------------------------------------------------------------------------
RETURNS = """
BPF_HASH(rets, u32, long);
int on_ret(struct pt_regs *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    long rc = PT_REGS_RC(ctx);
    rets.update(&pid, &rc);
    return 0;
}
"""


def test_maxactive_is_for_return_probes_and_the_fallback_sees_every_return(tracefs):
    with BPF(text=RETURNS) as b:
        event = b.get_syscall_fnname("getppid")
        with pytest.raises(UsageError, match="maxactive=4 applies to return probes"):
            b.attach_kprobe(event=event, fn_name="on_ret", maxactive=4)
        if features.kprobes():   # a kretprobe_events probe: see the VM test below
            return
        b.attach_kretprobe(event=event, fn_name="on_ret", maxactive=8)  # sys_exit_getppid
        ppid = os.getppid()
        assert b["rets"][ct.c_uint32(os.getpid())].value == ppid
        with pytest.raises(UnsupportedFeatureError, match="kretprobe do_nanosleep"):
            b.attach_kretprobe(event="do_nanosleep", fn_name="on_ret", maxactive=8)


@pytest.mark.kernel("kprobe")
def test_maxactive_reaches_the_kretprobe(tracefs):
    """Where the kernel has kprobes: ``attach_kretprobe(maxactive=N)`` is an ``rN:`` probe in
    kprobe_events while attached, and its program sees the returns."""
    with BPF(text=RETURNS) as b:
        event = b.get_syscall_fnname("getppid").decode()
        b.attach_kretprobe(event=event, fn_name="on_ret", maxactive=7)
        probes = (tracefs / "kprobe_events").read_text().splitlines()
        mine = [p for p in probes if p.startswith("r7:pybpf/")
                and p.split()[1].split("+")[0] == event]
        assert len(mine) == 1, probes
        ppid = os.getppid()
        assert b["rets"][ct.c_uint32(os.getpid())].value == ppid
        b.detach_kretprobe(event=event)
        assert mine[0] not in (tracefs / "kprobe_events").read_text().splitlines()


def test_libbcc_is_an_error_naming_it(tmp_path):
    script = tmp_path / "uses_lib.py"
    script.write_text("from bcc.libbcc import lib\n")
    res = subprocess.run([*RUNNER, str(script)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 1
    assert "ImportError: bcc.libbcc (`lib`" in res.stderr and "without libbcc" in res.stderr


def test_hdr_file_comes_first_and_errors_name_its_lines_or_the_programs(tmp_path):
    hdr, prog = tmp_path / "pair.h", tmp_path / "prog.c"
    hdr.write_text("struct pair {\n    u32 a;\n    u64 b;\n};\n#define KEY 3\n")
    prog.write_text("BPF_HASH(t, u32, struct pair);\nint f(void *ctx) {\n    u32 k = KEY;\n"
                    "    struct pair p = {1, 2};\n    t.update(&k, &p);\n    return 0;\n}\n")
    with BPF(src_file=str(prog), hdr_file=str(hdr)) as b:
        assert b["t"].Leaf.__name__ == "pair" and len(b["t"]) == 0
    prog.write_text(prog.read_text().replace("return 0;", "return nope;"))
    with pytest.raises(CompileError, match=rf"{prog}:6:\d+: error: .*nope"):
        BPF(src_file=str(prog), hdr_file=str(hdr))
    hdr.write_text(hdr.read_text().replace("u64 b;", "u64 b;\n    nosuchtype c;"))
    with pytest.raises(CompileError, match=rf"{hdr}:4:\d+: error"):
        BPF(src_file=str(prog), hdr_file=str(hdr))
