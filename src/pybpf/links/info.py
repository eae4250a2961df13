"""What ``info()`` of an attachment reports: ``AttachmentInfo`` (the program attached),
``LinkInfo`` (``struct bpf_link_info``, BPF_OBJ_GET_INFO_BY_FD on a link), ``LinkGroupInfo``.

Imported on first use, not by attaching (start-up time); the names are also importable from
``pybpf.links`` and ``pybpf.links.link``.
"""
from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from typing import Union

from ..sys import objects
from ..sys.attrs import LinkInfoStruct
from ..sys.fastenum import member_or_int
from ..sys.uapi import AttachType, LinkType, PerfEventType

_TARGET_NAMES = {LinkType.NETNS: "netns_ino", LinkType.XDP: "ifindex", LinkType.TCX: "ifindex",
                 LinkType.NETKIT: "ifindex", LinkType.SOCKMAP: "map_id"}


@dataclass(frozen=True)
class AttachmentInfo:
    """What every attachment reports: the attached program's id (0 where a map, not a
    program, is attached: a struct_ops map registered by update)."""

    prog_id: int


@dataclass(frozen=True)
class LinkInfo(AttachmentInfo):
    """struct bpf_link_info: type, id, program id, and the type's own fields in ``details``."""

    id: int
    type: Union[LinkType, int]
    details: dict = field(default_factory=dict)

    @classmethod
    def from_fd(cls, fd: int, obj: str = "link") -> "LinkInfo":
        s = objects.obj_info(fd, LinkInfoStruct(), obj)
        ltype = member_or_int(LinkType, s.type)
        details: dict = {}
        if ltype == LinkType.RAW_TRACEPOINT and s.data.raw_tracepoint.tp_name_len:
            name = ctypes.create_string_buffer(s.data.raw_tracepoint.tp_name_len)
            s2 = LinkInfoStruct()
            s2.data.raw_tracepoint.tp_name = ctypes.addressof(name)
            s2.data.raw_tracepoint.tp_name_len = len(name)
            objects.obj_info(fd, s2, obj)
            details["tp_name"] = name.value.decode()
        elif ltype == LinkType.PERF_EVENT:
            details = _perf_event_details(fd, obj, s.data.perf_event)
        elif ltype == LinkType.ITER:
            it = s.data.iter
            details = {"target_name": _string(fd, obj, "iter", "target_name", "target_name_len",
                                              it.target_name_len),
                       "map_id": it.map_id, "cgroup_id": it.cgroup_id, "order": it.order}
        elif ltype == LinkType.KPROBE_MULTI:
            km = s.data.kprobe_multi
            details = {"count": km.count, "flags": km.flags, "missed": km.missed}
        elif ltype == LinkType.UPROBE_MULTI:
            um = s.data.uprobe_multi
            details = {"path": _string(fd, obj, "uprobe_multi", "path", "path_size", um.path_size),
                       "count": um.count, "flags": um.flags, "pid": um.pid}
        elif isinstance(ltype, LinkType) and ltype in (
                LinkType.TRACING, LinkType.CGROUP, LinkType.NETNS, LinkType.XDP, LinkType.TCX,
                LinkType.NETKIT, LinkType.NETFILTER, LinkType.SOCKMAP):
            sub = getattr(s.data, ltype.name.lower())
            details = {name: getattr(sub, name) for name, *_ in sub._fields_}
            if "target" in details:  # the UAPI union's member names the target's kind
                details[_TARGET_NAMES[ltype]] = details.pop("target")
            if "attach_type" in details:
                details["attach_type"] = member_or_int(AttachType, details["attach_type"])
        return cls(id=s.id, type=ltype, prog_id=s.prog_id, details=details)


def _string(fd: int, obj: str, member: str, ptr: str, size: str, length: int) -> str:
    """A string of the link's info that the kernel copies out only into a buffer of ours."""
    if not length:
        return ""
    buf = ctypes.create_string_buffer(length)
    s = LinkInfoStruct()
    sub = getattr(s.data, member)
    setattr(sub, ptr, ctypes.addressof(buf))
    setattr(sub, size, length)
    objects.obj_info(fd, s, obj)
    return buf.value.decode(errors="replace")


def _perf_event_details(fd: int, obj: str, pe: ctypes.Structure) -> dict:
    """The fields of a perf-event link by its ``enum bpf_perf_event_type`` (Linux 6.6+)."""
    t = pe.type
    name = _string(fd, obj, "perf_event", "name", "name_len", pe.name_len) \
        if t != PerfEventType.EVENT else ""
    if t in (PerfEventType.KPROBE, PerfEventType.KRETPROBE):
        return {"perf_event_type": t, "func_name": name, "offset": pe.offset, "addr": pe.word2,
                "missed": pe.word3, "cookie": pe.word4}
    if t in (PerfEventType.UPROBE, PerfEventType.URETPROBE):
        return {"perf_event_type": t, "file_name": name, "offset": pe.offset,
                "cookie": pe.word2, "ref_ctr_offset": pe.word3}
    if t == PerfEventType.TRACEPOINT:
        return {"perf_event_type": t, "tp_name": name, "cookie": pe.word2}
    if t == PerfEventType.EVENT:
        return {"perf_event_type": t, "config": pe.name, "type": pe.name_len, "cookie": pe.word2}
    return {"perf_event_type": t}


@dataclass(frozen=True)
class LinkGroupInfo(AttachmentInfo):
    """A group's program and each member's info, in the group's order."""

    members: tuple[AttachmentInfo, ...]
