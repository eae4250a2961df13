"""BPF links, and ``Attachment``: what every attach function returns.

Closing a link detaches the program unless the link is pinned (the pin holds its own
reference). Attachments made without a BPF link (PERF_EVENT_IOC_SET_BPF on kernels
before 5.15) are ``PerfEventAttachment`` objects with the same close semantics; those made
by PROG_ATTACH or netlink are ``HookAttachment`` objects (``links.attach``). All of them,
and ``LinkGroup``, follow the ``Attachment`` protocol.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass, field
from typing import Callable, Iterable, Iterator, Optional, Protocol, Sequence, Union, \
    runtime_checkable

from ..errors import BPFError
from ..object import KernelObject
from ..sys import commands, objects
from ..sys.attrs import LinkInfoStruct
from ..sys.fd import FD
from ..sys.uapi import AttachType, LinkType, PerfEventType

_TARGET_NAMES = {LinkType.NETNS: "netns_ino", LinkType.XDP: "ifindex", LinkType.TCX: "ifindex",
                 LinkType.NETKIT: "ifindex", LinkType.SOCKMAP: "map_id"}


@dataclass(frozen=True)
class AttachmentInfo:
    """What every attachment reports: the attached program's id (0 where a map, not a
    program, is attached: a struct_ops map registered by update)."""

    prog_id: int


@runtime_checkable
class Attachment(Protocol):
    """A program (or struct_ops map) attached to a hook, however the kernel holds it.

    ``detach()`` detaches now: once it returns the hook no longer runs the program.
    ``close()`` drops this process's hold: for a BPF link that detaches unless the link is
    pinned; attachments without a link (PROG_ATTACH, netlink, struct_ops map updates) are
    detached by ``close()`` since nothing else would. ``pin(path)`` pins a BPF link on bpffs;
    attachments the kernel holds without a link raise BPFError (EOPNOTSUPP) saying why and
    what to attach with instead. ``info()`` is the kernel's view (``LinkInfo`` for links).
    The context manager closes.
    """

    name: str

    @property
    def closed(self) -> bool: ...

    def detach(self) -> None: ...

    def close(self) -> None: ...

    def pin(self, path: Union[str, os.PathLike]) -> None: ...

    def info(self) -> AttachmentInfo: ...

    def __enter__(self) -> "Attachment": ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True)
class LinkInfo(AttachmentInfo):
    """struct bpf_link_info: type, id, program id, and the type's own fields in ``details``."""

    id: int
    type: Union[LinkType, int]
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
                try:
                    details["attach_type"] = AttachType(details["attach_type"])
                except ValueError:
                    pass
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


class _Attachment(KernelObject):
    """An fd that keeps a program attached; ``after_close`` runs once the fd is closed
    (a legacy tracefs probe event is removed then: the kernel refuses while it is in use)."""

    def __init__(self, fd: FD, name: str = "",
                 after_close: Optional[Callable[[], None]] = None) -> None:
        super().__init__(fd, name)
        self._after_close = after_close

    def close(self) -> None:
        super().close()
        cleanup, self._after_close = self._after_close, None
        if cleanup is not None:
            cleanup()


class Link(_Attachment):
    """A BPF link (an fd from LINK_CREATE or RAW_TRACEPOINT_OPEN)."""

    kind = "link"

    def info(self) -> LinkInfo:
        return LinkInfo.from_fd(self.fd, self.describe())

    def update(self, program: KernelObject, old: KernelObject | None = None) -> None:
        """Swap the attached program (BPF_LINK_UPDATE); with ``old``, only if it is attached."""
        replace = {} if old is None else {"old_prog_fd": old.fd, "flags": 1 << 2}  # BPF_F_REPLACE
        commands.link_update(self.describe(), link_fd=self.fd, new_prog_fd=program.fd, **replace)

    def detach(self) -> None:
        """Detach the program now (BPF_LINK_DETACH), even if the link is pinned; the fd
        stays open until ``close()``. Link types without BPF_LINK_DETACH (tracing, perf
        event, iterators, multi-probes) are detached by closing this fd, which works when
        it is the link's last reference: otherwise (a pin, another fd) BPFError says so."""
        if self.closed:
            return
        try:
            commands.link_detach(self.fd, self.describe())
            return
        except BPFError as e:
            if e.errno != _errno.EOPNOTSUPP:
                raise
        link_id = self.info().id
        self._fd.close()
        try:
            self._fd = objects.fd_by_id("link", link_id)  # still there: keep holding it
        except BPFError as e:
            if e.errno != _errno.ENOENT:
                raise
            self.close()  # the last reference is gone, and the link with it
            return
        raise BPFError(_errno.EOPNOTSUPP, "BPF_LINK_DETACH", self.describe(),
                       "this link type cannot be detached while referenced, and a pin or "
                       "another fd holds it", "remove its pins and close its fds instead")

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


class PerfEventAttachment(_Attachment):
    """A program attached to a perf event by PERF_EVENT_IOC_SET_BPF (no BPF link).

    Closing the perf event fd detaches the program. It cannot be pinned.
    """

    kind = "perf_event"

    def __init__(self, fd: FD, name: str, prog_id: int,
                 after_close: Optional[Callable[[], None]] = None) -> None:
        super().__init__(fd, name, after_close)
        self.prog_id = prog_id

    def detach(self) -> None:
        """Close the perf event: the kernel detaches the program from it."""
        self.close()

    def info(self) -> AttachmentInfo:
        return AttachmentInfo(prog_id=self.prog_id)

    def pin(self, path: Union[str, os.PathLike]) -> None:
        raise BPFError(_errno.EOPNOTSUPP, "BPF_OBJ_PIN", self.describe(),
                       "this kernel attached the program with PERF_EVENT_IOC_SET_BPF, which "
                       "makes no BPF link to pin (BPF perf links need Linux 5.15)")

    def describe(self) -> str:
        return f"perf event attachment {self.name!r}"


@dataclass(frozen=True)
class LinkGroupInfo(AttachmentInfo):
    """A group's program and each member's info, in the group's order."""

    members: tuple[AttachmentInfo, ...]


class LinkGroup(Sequence[Attachment]):
    """Attachments made together (one perf event per CPU, one uprobe per USDT site).

    A sequence of its links and an ``Attachment`` itself: ``detach()``, ``close()`` (or the
    context manager) act on every one; ``pin(path)`` makes the directory ``path`` on bpffs
    and pins member ``i`` as ``path/i``.
    """

    def __init__(self, links: Iterable[Attachment], name: str = "") -> None:
        self.links = list(links)
        self.name = name

    @classmethod
    def collect(cls, links: Iterable[Attachment], name: str = "") -> "LinkGroup":
        """A group of what ``links`` yields as it attaches; if one attachment fails, those
        already made are closed before the error propagates."""
        made: list[Attachment] = []
        try:
            made.extend(links)
        except BaseException:
            for link in made:
                link.close()
            raise
        return cls(made, name)

    def __getitem__(self, i):  # noqa: ANN001, ANN204 (Sequence's int and slice overloads)
        return self.links[i]

    def __len__(self) -> int:
        return len(self.links)

    @property
    def closed(self) -> bool:
        return all(link.closed for link in self.links)

    def close(self) -> None:
        for link in self.links:
            link.close()

    def detach(self) -> None:
        for link in self.links:
            link.detach()

    def pin(self, path: Union[str, os.PathLike]) -> None:
        """Pin every member under the new bpffs directory ``path`` (``path/0``, ...); when
        one cannot be pinned, the pins made are removed and its error propagates."""
        root = os.fspath(path)
        os.mkdir(root)
        made: list[str] = []
        try:
            for i, link in enumerate(self.links):
                link.pin(os.path.join(root, str(i)))
                made.append(os.path.join(root, str(i)))
        except BaseException:
            for p in made:
                os.unlink(p)
            os.rmdir(root)
            raise

    def info(self) -> LinkGroupInfo:
        members = tuple(link.info() for link in self.links)
        return LinkGroupInfo(prog_id=members[0].prog_id if members else 0, members=members)

    def __enter__(self) -> "LinkGroup":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<LinkGroup {self.name!r} of {len(self.links)}>"


def list_links() -> Iterator[LinkInfo]:
    """Info on every BPF link in the kernel; links gone meanwhile are skipped."""
    for obj_id, fd in objects.open_all("link"):
        with fd:
            yield LinkInfo.from_fd(fd.fd, f"link id {obj_id}")
