"""Every attr and info struct matches the running kernel's UAPI.

Two independent checks: offsets and names against the kernel's own BTF (read with
bpftool, the reference peer), and the kernel's rule that bytes past the last field it
knows must be zero (CHECK_ATTR / bpf_check_uarg_tail_zero).
"""
from __future__ import annotations

import ctypes
import errno
import re
import shutil
import subprocess

import pytest

from pybpf.sys import attrs
from pybpf.sys.attrs import ATTR_OF_CMD
from pybpf.sys.syscall import bpf_raw
from pybpf.sys.uapi import Cmd

_TYPE = re.compile(r"^\[(\d+)\] (\w+) '([^']*)'(.*)$")
_MEMBER = re.compile(r"^\t'([^']*)' type_id=(\d+) bits_offset=(\d+)")


@pytest.fixture(scope="module")
def kernel_btf() -> dict[int, tuple[str, str, list[tuple[str, int, int]]]]:
    """id -> (kind, name, [(member, type_id, bit offset)]) from bpftool's raw dump of vmlinux."""
    if shutil.which("bpftool") is None:
        pytest.fail("bpftool is not installed (`apt-get install bpftool`; .ci/run installs it)")
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux"],
                         check=True, capture_output=True, text=True).stdout
    types: dict[int, tuple[str, str, list[tuple[str, int, int]]]] = {}
    current: list[tuple[str, int, int]] = []
    for line in out.splitlines():
        m = _TYPE.match(line)
        if m:
            current = []
            types[int(m.group(1))] = (m.group(2), m.group(3), current)
        else:
            mm = _MEMBER.match(line)
            if mm:
                current.append((mm.group(1), int(mm.group(2)), int(mm.group(3))))
    return types


def _flatten(types, type_id: int, base: int = 0) -> dict[str, int]:
    """Member name -> byte offset, anonymous structs/unions inlined (all alternatives kept)."""
    out: dict[str, int] = {}
    for name, tid, bits in types[type_id][2]:
        off = base + bits // 8
        if name == "(anon)":
            out.update(_flatten(types, tid, off))
        else:
            out[name] = off
    return out


def _all_offsets(types, type_id: int, base: int = 0) -> set[int]:
    """Byte offsets of every member at any depth."""
    out: set[int] = set()
    for _, tid, bits in types[type_id][2]:
        out.add(base + bits // 8)
        if types[tid][0] in ("STRUCT", "UNION"):
            out |= _all_offsets(types, tid, base + bits // 8)
    return out


def _named(types, kind: str, name: str) -> int:
    return next(i for i, (k, n, _) in types.items() if k == kind and n == name)


def _member_type(types, type_id: int, member: str) -> int:
    return next(t for n, t, _ in types[type_id][2] if n == member)


def _check(struct: type[ctypes.Structure], kernel: dict[str, int], prefix: str = "") -> None:
    for name, *_ in struct._fields_:
        off = getattr(struct, name).offset
        assert name in kernel, f"{prefix}{struct.__name__}.{name} is not a kernel field"
        assert kernel[name] == off, f"{prefix}{struct.__name__}.{name}: offset {off}, kernel {kernel[name]}"
    for alias in getattr(struct, "_aliases_", {}):
        assert alias in kernel, f"{struct.__name__} alias {alias} is not a kernel field"


_ATTR_MEMBER = {  # attr struct -> its member of union bpf_attr (None: an anonymous one)
    attrs.TestRunAttr: "test", attrs.InfoAttr: "info", attrs.QueryAttr: "query",
    attrs.RawTracepointAttr: "raw_tracepoint", attrs.TaskFdQueryAttr: "task_fd_query",
    attrs.LinkCreateAttr: "link_create", attrs.LinkUpdateAttr: "link_update",
    attrs.LinkDetachAttr: "link_detach", attrs.EnableStatsAttr: "enable_stats",
    attrs.IterCreateAttr: "iter_create", attrs.ProgBindMapAttr: "prog_bind_map",
    attrs.TokenCreateAttr: "token_create", attrs.MapBatchAttr: "batch",
}


def _attr_member_type(types, struct: type[ctypes.Structure]) -> int:
    union = _named(types, "UNION", "bpf_attr")
    member = _ATTR_MEMBER.get(struct)
    if member:
        return _member_type(types, union, member)
    first = struct._fields_[0][0]
    second = struct._fields_[1][0]
    for name, tid, _ in types[union][2]:  # the anonymous struct whose first fields match
        if name == "(anon)":
            flat = _flatten(types, tid)
            if flat.get(first) == 0 and second in flat:
                return tid
    raise AssertionError(f"no member of union bpf_attr matches {struct.__name__}")


def _anon_with(types, type_id: int, member: str) -> tuple[int, int]:
    """(type id, byte offset) of the anonymous struct/union member holding ``member``."""
    for name, tid, bits in types[type_id][2]:
        if name == "(anon)" and member in _flatten(types, tid):
            return tid, bits // 8
    raise AssertionError(f"no anonymous member with {member}")


def _check_union(types, union_tid: int, ours: type[ctypes.Union], by_name: set[str]) -> None:
    """Sub-structs named like the kernel's match field by field; the others offset by offset."""
    members = {name for name, _, _ in types[union_tid][2]}
    for sub, ctype in ours._fields_:
        if not hasattr(ctype, "_fields_"):
            continue
        if sub not in members:  # ours names an anonymous struct: its fields are the kernel's
            _check(ctype, _flatten(types, union_tid), prefix=f"{sub}: ")
            continue
        sub_tid = _member_type(types, union_tid, sub)
        if sub in by_name:
            _check(ctype, _flatten(types, sub_tid), prefix=f"{sub}: ")
        else:
            offsets = _all_offsets(types, sub_tid)
            for name, *_ in ctype._fields_:
                assert getattr(ctype, name).offset in offsets, f"{sub}.{name} is off the kernel's layout"


@pytest.mark.parametrize("struct", sorted(set(ATTR_OF_CMD.values()), key=lambda s: s.__name__))
def test_attr_offsets_match_kernel_btf(kernel_btf, struct):
    tid = _attr_member_type(kernel_btf, struct)
    kernel = _flatten(kernel_btf, tid)
    if struct is attrs.LinkCreateAttr:
        union_tid, off = _anon_with(kernel_btf, tid, "target_btf_id")
        kernel["target"] = off
        _check_union(kernel_btf, union_tid, attrs._LinkTarget,
                     {"perf_event", "kprobe_multi", "tracing", "netfilter", "uprobe_multi"})
    _check(struct, kernel)
    assert ctypes.sizeof(struct) >= max(kernel.values()), f"{struct.__name__} is too short"


@pytest.mark.parametrize("struct,name", [
    (attrs.ProgInfoStruct, "bpf_prog_info"), (attrs.MapInfoStruct, "bpf_map_info"),
    (attrs.BtfInfoStruct, "bpf_btf_info"), (attrs.LinkInfoStruct, "bpf_link_info"),
])
def test_info_offsets_match_kernel_btf(kernel_btf, struct, name):
    tid = _named(kernel_btf, "STRUCT", name)
    kernel = _flatten(kernel_btf, tid)
    if struct is attrs.LinkInfoStruct:
        union_tid, kernel["data"] = _anon_with(kernel_btf, tid, "raw_tracepoint")
        _check_union(kernel_btf, union_tid, attrs._LinkInfoData,
                     {"raw_tracepoint", "tracing", "cgroup", "netfilter", "kprobe_multi",
                      "uprobe_multi"})
    _check(struct, kernel)


def _with_tail(attr: ctypes.Structure, tail: int) -> ctypes.Array:
    buf = ctypes.create_string_buffer(bytes(attr) + bytes([tail]) + bytes(7))
    return buf


def _tail_calls():
    """(name, cmd, attr builder) for commands that succeed with a zero tail."""
    from pybpf.btf import int_btf
    from pybpf.maps import Map
    from pybpf.sys.attrs import (BtfLoadAttr, GetIdAttr, InfoAttr, MapBatchAttr, MapCreateAttr,
                                 MapElemAttr, MapInfoStruct, ProgLoadAttr)
    keep = []

    def buf(data: bytes) -> int:
        keep.append(ctypes.create_string_buffer(data, max(len(data), 1)))
        return ctypes.addressof(keep[-1])

    m = Map.create("hash", 4, 4, 8)
    keep.append(m)
    code = bytes.fromhex("b7000000000000009500000000000000")
    btf = int_btf()
    info = MapInfoStruct()
    keep.append(info)
    return keep, m, [
        ("MAP_CREATE", Cmd.MAP_CREATE, lambda: MapCreateAttr(map_type=1, key_size=4, value_size=4, max_entries=1)),
        ("MAP_UPDATE_ELEM", Cmd.MAP_UPDATE_ELEM, lambda: MapElemAttr(map_fd=m.fd, key=buf(b"abcd"), value=buf(b"wxyz"))),
        ("MAP_LOOKUP_BATCH", Cmd.MAP_LOOKUP_BATCH, lambda: MapBatchAttr(map_fd=m.fd, keys=buf(bytes(64)), values=buf(bytes(64)), out_batch=buf(bytes(8)), count=8)),
        ("PROG_LOAD", Cmd.PROG_LOAD, lambda: ProgLoadAttr(prog_type=1, insn_cnt=2, insns=buf(code), license=buf(b"GPL"))),
        ("BTF_LOAD", Cmd.BTF_LOAD, lambda: BtfLoadAttr(btf=buf(btf), btf_size=len(btf))),
        ("MAP_GET_NEXT_ID", Cmd.MAP_GET_NEXT_ID, lambda: GetIdAttr(start_id=0)),
        ("OBJ_GET_INFO_BY_FD", Cmd.OBJ_GET_INFO_BY_FD, lambda: InfoAttr(bpf_fd=m.fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))),
    ]


def test_kernel_knows_no_field_past_each_attr():
    """A non-zero byte right after our struct is refused; the same call with zeros succeeds."""
    keep, m, calls = _tail_calls()
    try:
        for name, cmd, make in calls:
            size = ctypes.sizeof(make()) + 8
            ok = _with_tail(make(), 0)
            ret = bpf_raw(cmd, ctypes.addressof(ok), size)
            assert ret >= 0 or ret == -errno.ENOENT, f"{name} with a zero tail failed: {ret}"
            if ret > 0 and cmd in (Cmd.MAP_CREATE, Cmd.PROG_LOAD, Cmd.BTF_LOAD):
                import os
                os.close(ret)
            bad = _with_tail(make(), 1)
            ret = bpf_raw(cmd, ctypes.addressof(bad), size)
            assert ret in (-errno.EINVAL, -errno.E2BIG), f"{name}: kernel accepted a non-zero tail ({ret})"
    finally:
        m.close()
