"""What BPF_OBJ_GET_INFO_BY_FD reports of a program, a map, a BTF object: ``struct
bpf_prog_info``, ``bpf_map_info``, ``bpf_btf_info`` as records.

``Program.info()``, ``Map.info()``, ``BTF.info()`` and the ``list_*`` functions return them
(also importable from ``pybpf.programs``, ``pybpf.maps``, ``pybpf.btf.kernel``); this module is
imported on first use, not by loading and attaching (start-up time).
"""
from __future__ import annotations

import ctypes
import time
from dataclasses import dataclass
from typing import Union

from . import objects
from .attrs import MapInfoStruct, ProgInfoStruct
from .fastenum import member_or_int
from .uapi import MapType, ProgType


@dataclass(frozen=True)
class ProgInfo:
    """struct bpf_prog_info (the fields bpftool shows), with map ids resolved."""

    id: int
    type: Union[ProgType, int]
    name: str
    tag: str
    gpl_compatible: bool
    load_time: int  # ns since boot
    created_by_uid: int
    map_ids: tuple[int, ...]
    xlated_prog_len: int
    jited_prog_len: int
    btf_id: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int
    attach_btf_obj_id: int
    attach_btf_id: int
    ifindex: int
    netns_dev: int
    netns_ino: int
    nr_func_info: int
    nr_line_info: int

    @property
    def loaded_at(self) -> float:
        """Load time as a Unix timestamp."""
        boot = time.time() - time.clock_gettime(time.CLOCK_BOOTTIME)
        return boot + self.load_time / 1e9

    @classmethod
    def from_fd(cls, fd: int, obj: str = "prog") -> "ProgInfo":
        s = objects.obj_info(fd, ProgInfoStruct(), obj)
        ids = (ctypes.c_uint32 * s.nr_map_ids)()
        if s.nr_map_ids:
            s2 = ProgInfoStruct(nr_map_ids=s.nr_map_ids, map_ids=ctypes.addressof(ids))
            objects.obj_info(fd, s2, obj)
        ptype = member_or_int(ProgType, s.type)
        return cls(id=s.id, type=ptype, name=s.name.decode(errors="replace"),
                   tag=bytes(s.tag).hex(), gpl_compatible=bool(s.gpl_compatible),
                   load_time=s.load_time, created_by_uid=s.created_by_uid,
                   map_ids=tuple(ids[:s.nr_map_ids]), xlated_prog_len=s.xlated_prog_len,
                   jited_prog_len=s.jited_prog_len, btf_id=s.btf_id, run_time_ns=s.run_time_ns,
                   run_cnt=s.run_cnt, recursion_misses=s.recursion_misses,
                   verified_insns=s.verified_insns, attach_btf_obj_id=s.attach_btf_obj_id,
                   attach_btf_id=s.attach_btf_id, ifindex=s.ifindex, netns_dev=s.netns_dev,
                   netns_ino=s.netns_ino, nr_func_info=s.nr_func_info,
                   nr_line_info=s.nr_line_info)


@dataclass(frozen=True)
class MapInfo:
    """struct bpf_map_info, plus ``frozen`` from the fd's fdinfo."""

    id: int
    type: Union[MapType, int]
    name: str
    key_size: int
    value_size: int
    max_entries: int
    flags: int
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    btf_vmlinux_value_type_id: int
    btf_vmlinux_id: int
    map_extra: int
    ifindex: int
    netns_dev: int
    netns_ino: int
    frozen: bool

    @classmethod
    def from_fd(cls, fd: int, obj: str = "map") -> "MapInfo":
        s = objects.obj_info(fd, MapInfoStruct(), obj)
        mtype = member_or_int(MapType, s.type)
        return cls(id=s.id, type=mtype, name=s.name.decode(errors="replace"),
                   key_size=s.key_size, value_size=s.value_size, max_entries=s.max_entries,
                   flags=s.map_flags, btf_id=s.btf_id, btf_key_type_id=s.btf_key_type_id,
                   btf_value_type_id=s.btf_value_type_id,
                   btf_vmlinux_value_type_id=s.btf_vmlinux_value_type_id,
                   btf_vmlinux_id=s.btf_vmlinux_id, map_extra=s.map_extra, ifindex=s.ifindex,
                   netns_dev=s.netns_dev, netns_ino=s.netns_ino, frozen=_fdinfo_frozen(fd))


def _fdinfo_frozen(fd: int) -> bool:
    try:
        with open(f"/proc/self/fdinfo/{fd}") as f:
            return any(line.startswith("frozen:") and line.split()[1] != "0" for line in f)
    except OSError:
        return False


@dataclass(frozen=True)
class BTFInfo:
    """struct bpf_btf_info."""

    id: int
    name: str
    size: int
    kernel_btf: bool
