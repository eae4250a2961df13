"""BPF iterators: a task iterator lists this very process, a map-element iterator walks a
map given as link parameter, a pinned iterator reads with cat; link info and clear errors."""
from __future__ import annotations

import ctypes
import errno
import os
import struct
import subprocess

import pytest

from pybpf.asm import (DW, FP, R0, R1, R2, R3, R6, R7, R8, W, add64_imm, assemble, call, exit_,
                       jeq_imm, label, ldx, mov64_imm, mov64_reg, stx)
from pybpf.btf import Spec
from pybpf.btf import types as T
from pybpf.errors import BPFError, UsageError
from pybpf.links import btf_tracing
from pybpf.links.cgroup import cgroup2_mount
from pybpf.links.iter import IterLink, attach_iter
from pybpf.maps import Map
from pybpf.sys.attrs import IterLinkInfo
from pybpf.sys.uapi import CgroupIterOrder, LinkType
from tests.links.netfixtures import cgroup, cgroup2_root  # noqa: F401 (fixtures)


def offset_of(struct_name: str, member: str) -> int:
    """Byte offset of ``member`` in kernel ``struct_name`` (also inside anonymous unions, as
    ``__bpf_md_ptr`` makes them), from vmlinux BTF."""
    def find(t: T.Type, base: int) -> int | None:
        for m in t.members:
            if m.name == member:
                return base + m.offset
            if not m.name:
                found = find(T.skip_qualifiers(m.type), base + m.offset)
                if found is not None:
                    return found
        return None

    bits = find(Spec.vmlinux().find(struct_name, T.Struct), 0)
    assert bits is not None, f"no {member} in struct {struct_name}"
    return bits // 8


def seq_write_stack_8(ctx: str) -> list:
    """The common end: seq_write the 8 bytes at fp-8 (ctx ``ctx`` in r6), then, and at label
    ``out``, return 0."""
    return [ldx(DW, R8, R6, offset_of(ctx, "meta")),
            ldx(DW, R1, R8, offset_of("bpf_iter_meta", "seq")),
            mov64_reg(R2, FP), add64_imm(R2, -8), mov64_imm(R3, 8),
            call("seq_write"),
            label("out"),
            mov64_imm(R0, 0), exit_()]


def task_iter_insns() -> bytes:
    """For each task: seq_write(tgid, pid) (two u32)."""
    return assemble([
        mov64_reg(R6, R1),
        ldx(DW, R7, R6, offset_of("bpf_iter__task", "task")),
        jeq_imm(R7, 0, "out"),
        ldx(W, R2, R7, offset_of("task_struct", "tgid")),
        stx(W, FP, R2, -8),
        ldx(W, R2, R7, offset_of("task_struct", "pid")),
        stx(W, FP, R2, -4),
        *seq_write_stack_8("bpf_iter__task"),
    ])


def map_elem_iter_insns() -> bytes:
    """For each element of a u32 -> u64 map: seq_write(key, 4), seq_write(value, 8)."""
    ctx = "bpf_iter__bpf_map_elem"
    return assemble([
        mov64_reg(R6, R1),
        ldx(DW, R7, R6, offset_of(ctx, "key")),
        jeq_imm(R7, 0, "out"),
        ldx(DW, R8, R6, offset_of(ctx, "meta")),
        ldx(DW, R8, R8, offset_of("bpf_iter_meta", "seq")),
        mov64_reg(R1, R8), mov64_reg(R2, R7), mov64_imm(R3, 4),
        call("seq_write"),
        ldx(DW, R2, R6, offset_of(ctx, "value")),
        jeq_imm(R2, 0, "out"),
        mov64_reg(R1, R8), mov64_imm(R3, 8),
        call("seq_write"),
        label("out"),
        mov64_imm(R0, 0), exit_(),
    ])


def cgroup_iter_insns() -> bytes:
    """For each cgroup: seq_write(cgroup->kn->id) (the cgroup id: its directory's inode)."""
    return assemble([
        mov64_reg(R6, R1),
        ldx(DW, R7, R6, offset_of("bpf_iter__cgroup", "cgroup")),
        jeq_imm(R7, 0, "out"),
        ldx(DW, R7, R7, offset_of("cgroup", "kn")),
        ldx(DW, R2, R7, offset_of("kernfs_node", "id")),
        stx(DW, FP, R2, -8),
        *seq_write_stack_8("bpf_iter__cgroup"),
    ])


def test_iter_link_info_layout_matches_kernel_btf():
    u = Spec.vmlinux().find("bpf_iter_link_info", T.Union)
    assert u.size <= ctypes.sizeof(IterLinkInfo)  # older kernels know fewer members
    for m in u.members:
        ours = getattr(IterLinkInfo, m.name)
        assert ours.offset == m.offset // 8
        ours_sub = type(getattr(IterLinkInfo(), m.name))
        for field in T.skip_qualifiers(m.type).members:
            assert getattr(ours_sub, field.name).offset == field.offset // 8, (m.name, field.name)


def test_task_iterator_lists_this_process():
    with btf_tracing.load("iter", "task", task_iter_insns(), name="it_task") as prog:
        with attach_iter(prog) as link:
            assert isinstance(link, IterLink)
            info = link.info()
            assert info.type == LinkType.ITER and info.prog_id == prog.info().id
            data = link.read()
            assert data and len(data) % 8 == 0
            pairs = set(struct.iter_unpack("=II", data))
            assert (os.getpid(), os.getpid()) in pairs  # the main thread: tgid == pid
            assert link.read() and link.read() != b""  # every open walks again
        try:
            mine = attach_iter(prog, pid=os.getpid())
        except BPFError as e:  # before 6.1
            assert e.errno == errno.E2BIG and "task filters tid/pid/pid_fd" in str(e)
            return
        with mine:
            threads = {(os.getpid(), int(t)) for t in os.listdir("/proc/self/task")}
            assert set(struct.iter_unpack("=II", mine.read())) == threads


@pytest.mark.kernel("iter_bpf_map_elem")
def test_map_element_iterator_walks_the_given_map(pin_dir):
    with Map.create("hash", 4, 8, 16, name="it_elems", key="I", value="Q") as m, \
            btf_tracing.load("iter", "bpf_map_elem", map_elem_iter_insns(), name="it_elem") as prog:
        expected = {i: i * 1000 + 7 for i in range(10)}
        for k, v in expected.items():
            m[k] = v
        with attach_iter(prog, map=m) as link:
            details = link.info().details
            assert (details["target_name"], details["map_id"]) == ("bpf_map_elem", m.id)
            data = link.read()
            assert dict(struct.iter_unpack("=IQ", data)) == expected
            link.pin(pin_dir / "elems")
        out = subprocess.run(["cat", str(pin_dir / "elems")], capture_output=True, check=True).stdout
        assert dict(struct.iter_unpack("=IQ", out)) == expected  # the pin alone keeps it
        with pytest.raises(BPFError, match="this iterator target needs map="):
            attach_iter(prog)


def test_cgroup_iterator_with_order(cgroup, tmp_path):
    """The cgroup iterator over a test cgroup and its child, in three orders; the cgroup
    given as attach_cgroup takes it (relative to the cgroup2 mount), not another directory."""
    try:
        btf_tracing.find_target("iter", "cgroup")
    except UsageError as e:
        pytest.skip(f"this kernel has no cgroup iterator (Linux 6.1): {e}")
    child = cgroup.path / "child"
    child.mkdir()
    try:
        ids = [os.stat(cgroup.path).st_ino, os.stat(child).st_ino]
        with btf_tracing.load("iter", "cgroup", cgroup_iter_insns(), name="it_cgroup") as prog:
            for order, expected in ((CgroupIterOrder.SELF_ONLY, ids[:1]),
                                    (CgroupIterOrder.DESCENDANTS_PRE, ids),
                                    (CgroupIterOrder.DESCENDANTS_POST, ids[::-1])):
                with attach_iter(prog, cgroup=cgroup.path, order=order) as link:
                    assert [v for (v,) in struct.iter_unpack("=Q", link.read())] == expected
                    details = link.info().details
                    assert (details["cgroup_id"], details["order"]) == (ids[0], order)
            relative = os.path.relpath(child, cgroup2_mount())
            with attach_iter(prog, cgroup=relative, order=CgroupIterOrder.SELF_ONLY) as link:
                assert [v for (v,) in struct.iter_unpack("=Q", link.read())] == ids[1:]
            with pytest.raises(UsageError, match="not a cgroup v2 directory"):
                attach_iter(prog, cgroup=tmp_path, order=CgroupIterOrder.SELF_ONLY)
    finally:
        child.rmdir()


def test_iterator_errors(counts):
    with btf_tracing.load("iter", "task", task_iter_insns(), name="it_bad") as prog:
        with pytest.raises(UsageError, match="order is for cgroup iterators"):
            attach_iter(prog, order=1)
        with pytest.raises(UsageError, match="excludes map= and cgroup="):
            attach_iter(prog, map=counts, pid=1)
    with pytest.raises(UsageError, match="no func bpf_iter_nothing in the BTF"):
        btf_tracing.load("iter", "nothing", task_iter_insns())
