"""BPF links, and ``Attachment``: what every attach function returns.

Closing a link detaches the program unless the link is pinned (the pin holds its own
reference). Attachments made without a BPF link (PERF_EVENT_IOC_SET_BPF on kernels
before 5.15) are ``PerfEventAttachment`` objects with the same close semantics; those made
by PROG_ATTACH or netlink are ``HookAttachment`` objects (``links.attach``). All of them,
and ``LinkGroup``, follow the ``Attachment`` protocol.
"""
from __future__ import annotations

import errno as _errno
import os
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Optional, Protocol, Sequence, \
    Union, runtime_checkable

from .._lazy import exports
from ..errors import BPFError
from ..object import KernelObject
from ..sys import commands, objects
from ..sys.fd import FD

if TYPE_CHECKING:
    from .info import AttachmentInfo, LinkGroupInfo, LinkInfo

__getattr__, __dir__ = exports(  # on first use
    __name__, {"pybpf.links.info": "AttachmentInfo, LinkGroupInfo, LinkInfo"})


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
        from .info import LinkInfo
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
        from .info import AttachmentInfo
        return AttachmentInfo(prog_id=self.prog_id)

    def pin(self, path: Union[str, os.PathLike]) -> None:
        raise BPFError(_errno.EOPNOTSUPP, "BPF_OBJ_PIN", self.describe(),
                       "this kernel attached the program with PERF_EVENT_IOC_SET_BPF, which "
                       "makes no BPF link to pin (BPF perf links need Linux 5.15)")

    def describe(self) -> str:
        return f"perf event attachment {self.name!r}"


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
        from .info import LinkGroupInfo
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
    from .info import LinkInfo
    for obj_id, fd in objects.open_all("link"):
        with fd:
            yield LinkInfo.from_fd(fd.fd, f"link id {obj_id}")
