"""Probes that need BTF: storage maps (a one-int BTF), iterator targets and program loads
that name a vmlinux function, the BTF kinds BPF_BTF_LOAD accepts, CO-RE relocation by the
kernel. Built from the pure BTF layer and issued through ``pybpf.sys`` only (the mechanism,
``Support``, is ``pybpf.sys.probes``); ``pybpf.features`` exports them to users."""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
import struct
from typing import Any, Callable

from ..errors import BTFError
from ..sys import commands, objects
from ..sys.attrs import ProgInfoStruct
from ..sys.probes import (RET0, TRACING_CAPS, Support, create_map, eperm, errname, load, prog_type,
                          tp_btf, vmlinux_btf_has)
from ..sys.uapi import ENOTSUPP, AttachType, CoreReloKind, MapFlag, MapType, ProgType
from . import types as T
from .encode import Encoder, encode, int_btf
from .ext import CoreRelo, encode_core_relos
from .spec import Spec

# (key_size, value_size, max_entries, flags) of the map types the default 4, 4, 1, 0 fails for
_MAP_PROBE_SIZES: dict[int, tuple[int, int, int, int]] = {
    MapType.LPM_TRIE: (8, 8, 1, MapFlag.NO_PREALLOC),
    MapType.QUEUE: (0, 4, 1, 0), MapType.STACK: (0, 4, 1, 0), MapType.BLOOM_FILTER: (0, 4, 1, 0),
    MapType.RINGBUF: (0, 0, 4096, 0), MapType.USER_RINGBUF: (0, 0, 4096, 0),
    MapType.CGROUP_STORAGE: (8, 8, 0, 0), MapType.PERCPU_CGROUP_STORAGE: (8, 8, 0, 0),
    MapType.SK_STORAGE: (4, 4, 0, MapFlag.NO_PREALLOC),
    MapType.INODE_STORAGE: (4, 4, 0, MapFlag.NO_PREALLOC),
    MapType.TASK_STORAGE: (4, 4, 0, MapFlag.NO_PREALLOC),
    MapType.CGRP_STORAGE: (4, 4, 0, MapFlag.NO_PREALLOC),
    MapType.ARENA: (0, 0, 1, MapFlag.MMAPABLE),
    MapType.STACK_TRACE: (4, 8, 1, 0),
    MapType.REUSEPORT_SOCKARRAY: (4, 8, 1, 0),
}
_STORAGE = {MapType.SK_STORAGE, MapType.INODE_STORAGE, MapType.TASK_STORAGE, MapType.CGRP_STORAGE}


@functools.lru_cache(maxsize=None)
def map_type(t: int) -> Support:
    """Can a map of type ``t`` be created? (storage maps with a one-int BTF)."""
    if t == MapType.STRUCT_OPS:
        return Support(True, "struct_ops maps need a vmlinux struct_ops type; not probed")
    key, value, entries, flags = _MAP_PROBE_SIZES.get(t, (4, 4, 1, 0))
    fields = dict(map_type=t, key_size=key, value_size=value, max_entries=entries,
                  map_flags=flags)
    fds = []
    try:
        if t in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS):
            inner = commands.map_create(map_type=MapType.ARRAY, key_size=4, value_size=4,
                                        max_entries=1)
            if inner >= 0:
                fds.append(inner)
            fields["inner_map_fd"] = inner
        if t in _STORAGE:
            data = int_btf()
            blob = ctypes.create_string_buffer(data, len(data))
            btf, _ = commands.btf_load(btf=ctypes.addressof(blob), btf_size=len(data))
            if btf >= 0:
                fds.append(btf)
            fields.update(btf_fd=btf, btf_key_type_id=1, btf_value_type_id=1)
        err = create_map(**fields)
    finally:
        for fd in fds:
            os.close(fd)
    if err == 0:
        return Support(True)
    name = t.name.lower() if isinstance(t, MapType) else str(t)
    if err in (_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP):
        return Support(False, f"map type {name} is not supported by this kernel "
                              f"({os.uname().release}: BPF_MAP_CREATE gives {errname(err)})")
    if err == _errno.EPERM:
        return eperm(f"map type {name}", "BPF_MAP_CREATE")
    return Support(False, f"map type {name}: BPF_MAP_CREATE probe failed ({errname(err)})")


@functools.lru_cache(maxsize=None)
def iter_target(name: str) -> Support:
    """Can an iterator program for target ``name`` (``task``, ``bpf_map_elem``...) be loaded?

    Each target is its own kernel function ``bpf_iter_<name>``: a kernel may have, or allow,
    one and not another, so each is probed by loading a program for it.
    """
    try:
        target = Spec.vmlinux().find(f"bpf_iter_{name}", T.Func)
    except (BTFError, OSError) as e:  # no kernel BTF, or no such function in it
        return Support(False, f"iterator target {name}: this kernel ({os.uname().release}) has "
                              f"no bpf_iter_{name} in its BTF ({e})")
    err = load(ProgType.TRACING, expected_attach_type=AttachType.TRACE_ITER,
                attach_btf_id=target.id or 0)
    if err == 0:
        return Support(True)
    instead = ("read the map from user space instead (Map.items(), lookup_batch)"
               if name == "bpf_map_elem" else "read the objects from user space instead")
    if err == _errno.EPERM:
        return eperm(f"iterator target {name}", "BPF_PROG_LOAD", instead, TRACING_CAPS)
    return Support(False, f"iterator target {name} is not supported by this kernel "
                          f"({os.uname().release}: BPF_PROG_LOAD gives {errname(err)}): {instead}")


def prog_load(ptype: int, attach_type: int = 0, attach_btf_id: int = 0) -> Support:
    """The probe that answers for a program of type ``ptype`` loaded with ``attach_type`` (and,
    for iterators, the kernel function ``attach_btf_id`` names): the one to explain a refused
    BPF_PROG_LOAD with. Raises ValueError for a program type pybpf does not know."""
    tracing = ptype == ProgType.TRACING
    if tracing and attach_type == AttachType.TRACE_ITER and attach_btf_id:
        try:
            name = Spec.vmlinux().type_by_id(attach_btf_id).name
        except (BTFError, OSError):  # no kernel BTF, or an id it does not have
            name = ""
        if name.startswith("bpf_iter_"):
            return iter_target(name[len("bpf_iter_"):])
    if tracing and attach_type == AttachType.TRACE_RAW_TP:
        return tp_btf()
    if tracing and attach_type == AttachType.TRACE_ITER:
        return Support(True, "iterator programs need a target; not probed")
    return prog_type(ProgType(ptype))


# --- BTF kinds the kernel's BTF_LOAD accepts (pybpf.btf.sanitize rewrites the rest) -------

def _btf_probe(what: str, since: str, build: Callable[[Any, Any], list]) -> Support:
    """Load the types ``build(types module, int type)`` returns; EINVAL means the kernel's BTF
    checker refuses ``what``."""
    err = _load_btf(encode(build(T, T.Int("int", 4, T.INT_SIGNED))))
    if err == _errno.EPERM:
        return eperm(f"BTF {what}", "BPF_BTF_LOAD")
    if err:
        return Support(False, f"BTF {what} is not supported by this kernel ({os.uname().release}: "
                              f"BPF_BTF_LOAD gives {errname(err)}; Linux {since} added it): "
                              "pybpf.btf.sanitize rewrites it for this kernel")
    return Support(True)


@functools.lru_cache(maxsize=None)
def btf_func() -> Support:
    """BTF_KIND_FUNC and FUNC_PROTO (Linux 5.0)."""
    return _btf_probe("FUNC/FUNC_PROTO", "5.0", lambda T, i: [
        T.Func("f", T.FuncProto(i, [T.FuncParam("a", i)]), T.LINKAGE_STATIC)])


@functools.lru_cache(maxsize=None)
def btf_func_global() -> Support:
    """Global linkage of BTF_KIND_FUNC (Linux 5.6)."""
    return _btf_probe("global FUNC linkage", "5.6", lambda T, i: [
        T.Func("f", T.FuncProto(i, [T.FuncParam("a", i)]), T.LINKAGE_GLOBAL)])


@functools.lru_cache(maxsize=None)
def btf_datasec() -> Support:
    """BTF_KIND_VAR and DATASEC (Linux 5.2)."""
    return _btf_probe("VAR/DATASEC", "5.2", lambda T, i: [
        T.Datasec(".data", 4, [T.VarSecinfo(T.Var("x", i, T.LINKAGE_GLOBAL), 0, 4)])])


@functools.lru_cache(maxsize=None)
def btf_float() -> Support:
    """BTF_KIND_FLOAT (Linux 5.13)."""
    return _btf_probe("FLOAT", "5.13", lambda T, i: [T.Float("float", 4)])


@functools.lru_cache(maxsize=None)
def btf_decl_tag() -> Support:
    """BTF_KIND_DECL_TAG (Linux 5.16)."""
    return _btf_probe("DECL_TAG", "5.16", lambda T, i: [
        T.DeclTag("tag", T.Var("x", i, T.LINKAGE_GLOBAL), -1)])


@functools.lru_cache(maxsize=None)
def btf_type_tag() -> Support:
    """BTF_KIND_TYPE_TAG (Linux 5.17)."""
    return _btf_probe("TYPE_TAG", "5.17", lambda T, i: [T.Pointer(T.TypeTag("tag", i))])


@functools.lru_cache(maxsize=None)
def btf_enum64() -> Support:
    """BTF_KIND_ENUM64 and signed enums (Linux 6.0)."""
    return _btf_probe("ENUM64", "6.0", lambda T, i: [
        T.Enum64("e", 8, [T.EnumValue("v", 1 << 40)])])


def _load_btf(blob: bytes) -> int:
    """Load and close raw BTF; 0 or the errno."""
    buf = ctypes.create_string_buffer(blob, len(blob))
    fd, _ = commands.btf_load(btf=ctypes.addressof(buf), btf_size=len(blob))
    if fd < 0:
        return -fd
    os.close(fd)
    return 0


def _core_probe_load(btf: bytes, func_info: bytes, core_relos: bytes) -> tuple[int, int]:
    """Load ``RET0`` with ``btf``, one func_info record and CO-RE records for the kernel to
    apply: (0, the immediate of the first translated instruction), or (errno, 0)."""
    bufs = [ctypes.create_string_buffer(b, len(b)) for b in (btf, func_info, core_relos, RET0)]
    lic = ctypes.create_string_buffer(b"GPL")
    btf_fd, _ = commands.btf_load(btf=ctypes.addressof(bufs[0]), btf_size=len(btf))
    if btf_fd < 0:
        return -btf_fd, 0
    try:
        prog, _ = commands.prog_load(
            prog_type=ProgType.SOCKET_FILTER, insn_cnt=len(RET0) // 8,
            insns=ctypes.addressof(bufs[3]), license=ctypes.addressof(lic), prog_btf_fd=btf_fd,
            func_info=ctypes.addressof(bufs[1]), func_info_cnt=1, func_info_rec_size=8,
            core_relos=ctypes.addressof(bufs[2]), core_relo_cnt=len(core_relos) // 16,
            core_relo_rec_size=16)
    finally:
        os.close(btf_fd)
    if prog < 0:
        return -prog, 0
    try:
        xlated = ctypes.create_string_buffer(len(RET0))
        objects.obj_info(prog, ProgInfoStruct(xlated_prog_len=len(RET0),
                                              xlated_prog_insns=ctypes.addressof(xlated)),
                         "probe program")
        return 0, struct.unpack_from("=i", xlated.raw, 4)[0]
    finally:
        os.close(prog)


@functools.lru_cache(maxsize=None)
def kernel_core() -> Support:
    """CO-RE relocation by the kernel in BPF_PROG_LOAD (``core_relos``, Linux 5.17): a probe
    program's ``list_head`` has only ``prev``, at offset 0; the kernel must relocate it
    against its own BTF, so the translated code holds the real offset (8)."""
    ptr = T.Pointer(T.VOID)
    head = T.Struct("list_head", 8, [T.Member("prev", ptr, 0)])
    enc = Encoder()
    head_id = enc.add(head)
    func_id = enc.add(T.Func("probe", T.FuncProto(T.Int("int", 4, T.INT_SIGNED), []),
                             T.LINKAGE_STATIC))
    relo = CoreRelo(0, head_id, "0:0", CoreReloKind.FIELD_BYTE_OFFSET, enc.strings.add("0:0"))
    err, imm = _core_probe_load(enc.encode(), struct.pack("=II", 0, func_id),
                                encode_core_relos([relo]))
    if err == _errno.EPERM:
        return eperm("CO-RE relocation by the kernel", "BPF_PROG_LOAD")
    if err:
        why = "Linux 5.17 added it" if err == _errno.E2BIG else \
            "the kernel has no BTF to relocate against" if vmlinux_btf_has("list_head") is None \
            else "the probe program was refused"
        return Support(False, f"this kernel ({os.uname().release}) does not apply CO-RE "
                              f"relocations in BPF_PROG_LOAD ({errname(err)}: {why}): "
                              "pybpf relocates in Python against /sys/kernel/btf/vmlinux")
    if imm != 8:
        return Support(False, f"the kernel relocated list_head.prev to offset {imm}, not 8: "
                              "pybpf relocates in Python instead")
    return Support(True)
