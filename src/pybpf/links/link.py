"""BPF links: the kernel object that keeps a program attached to a hook.

Closing a link detaches the program unless the link is pinned (the pin holds its own
reference). Attachments made without a BPF link (PERF_EVENT_IOC_SET_BPF on kernels
before 5.15) are ``PerfEventAttachment`` objects with the same close semantics.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass, field
from typing import Iterator, Union

from ..errors import BPFError
from ..object import KernelObject
from ..sys import objects
from ..sys.attrs import LinkDetachAttr, LinkInfoStruct, LinkUpdateAttr
from ..sys.fd import FD
from ..sys.syscall import bpf
from ..sys.uapi import Cmd, LinkType


@dataclass(frozen=True)
class LinkInfo:
    """struct bpf_link_info: type, id, program id, and the type's own fields in ``details``."""

    id: int
    type: Union[LinkType, int]
    prog_id: int
    details: dict = field(default_factory=dict)

    @classmethod
    def from_fd(cls, fd: int, obj: str = "link") -> "LinkInfo":
        s = objects.obj_info(fd, LinkInfoStruct(), obj)
        try:
            ltype: Union[LinkType, int] = LinkType(s.type)
        except ValueError:
            ltype = s.type
        details: dict = {}
        if ltype == LinkType.RAW_TRACEPOINT and s.data.raw_tracepoint.tp_name_len:
            name = ctypes.create_string_buffer(s.data.raw_tracepoint.tp_name_len)
            s2 = LinkInfoStruct()
            s2.data.raw_tracepoint.tp_name = ctypes.addressof(name)
            s2.data.raw_tracepoint.tp_name_len = len(name)
            objects.obj_info(fd, s2, obj)
            details["tp_name"] = name.value.decode()
        elif ltype == LinkType.PERF_EVENT:
            details["perf_event_type"] = s.data.perf_event.type
        elif ltype in (LinkType.TRACING, LinkType.CGROUP, LinkType.NETNS, LinkType.XDP,
                       LinkType.TCX, LinkType.NETKIT):
            sub = getattr(s.data, ltype.name.lower())
            details = {name: getattr(sub, name) for name, *_ in sub._fields_}
        return cls(id=s.id, type=ltype, prog_id=s.prog_id, details=details)


class Link(KernelObject):
    """A BPF link (an fd from LINK_CREATE or RAW_TRACEPOINT_OPEN)."""

    kind = "link"

    def info(self) -> LinkInfo:
        return LinkInfo.from_fd(self.fd, self.describe())

    def update(self, program: KernelObject, old: KernelObject | None = None) -> None:
        """Swap the attached program (BPF_LINK_UPDATE); with ``old``, only if it is attached."""
        attr = LinkUpdateAttr(link_fd=self.fd, new_prog_fd=program.fd)
        if old is not None:
            attr.old_prog_fd, attr.flags = old.fd, 1 << 2  # BPF_F_REPLACE
        bpf(Cmd.LINK_UPDATE, attr, self.describe())

    def detach(self) -> None:
        """Detach the program now, even if the link is pinned (BPF_LINK_DETACH)."""
        try:
            bpf(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=self.fd), self.describe())
        except BPFError as e:
            if e.errno != _errno.EOPNOTSUPP:
                raise
            raise BPFError(e.errno, "BPF_LINK_DETACH", self.describe(),
                           "this link type cannot be detached while referenced",
                           "remove its pins and close its fds instead") from None

    @classmethod
    def from_fd(cls, fd: Union[int, FD], name: str = "") -> "Link":
        owned = fd if isinstance(fd, FD) else FD(os.dup(fd))
        return cls(owned, name)

    @classmethod
    def from_pin(cls, path: Union[str, os.PathLike]) -> "Link":
        return cls(cls._fd_from_pin(path), os.path.basename(os.fspath(path)))

    @classmethod
    def from_id(cls, link_id: int) -> "Link":
        return cls(cls._fd_from_id(link_id), f"id {link_id}")

    def describe(self) -> str:
        return f"link {self.name!r}" if self.name else "link"


class PerfEventAttachment(KernelObject):
    """A program attached to a perf event by PERF_EVENT_IOC_SET_BPF (no BPF link).

    Closing the perf event fd detaches the program. It cannot be pinned.
    """

    kind = "perf_event"

    def pin(self, path: Union[str, os.PathLike]) -> None:
        raise BPFError(_errno.EOPNOTSUPP, "BPF_OBJ_PIN", self.describe(),
                       "this kernel attached the program with PERF_EVENT_IOC_SET_BPF, which "
                       "makes no BPF link to pin (BPF perf links need Linux 5.15)")

    def describe(self) -> str:
        return f"perf event attachment {self.name!r}"


def list_links() -> Iterator[LinkInfo]:
    """Info on every BPF link in the kernel; links gone meanwhile are skipped."""
    for obj_id, fd in objects.open_all("link"):
        with fd:
            yield LinkInfo.from_fd(fd.fd, f"link id {obj_id}")
