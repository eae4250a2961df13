"""BPF_PROG_ATTACH, BPF_PROG_DETACH and BPF_PROG_QUERY: attachments without a BPF link.

Cgroups, network namespaces (flow dissector), sockmaps and tcx hooks take programs by
PROG_ATTACH as well as by links. Such an attachment lives in the kernel until it is
detached, not while some fd is open: ``ProgAttachment.close()`` detaches it, and one that
is never closed stays attached after the process exits (as a pin would keep a link).
PROG_QUERY lists what is attached to a hook, whoever attached it.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar, Union

from ..errors import BPFError, UnsupportedFeatureError, UsageError
from ..object import KernelObject
from ..sys import commands, objects
from ..sys.attrs import ProgInfoStruct
from ..sys.fd import FD
from ..sys.hooks import PROG_TYPE_OF_ATTACH
from ..sys.host import current_netns, in_netns
from ..sys.probes import Support
from ..sys.uapi import ENOTSUPP, AttachFlag, AttachType, ProgType, QueryFlag
from .info import AttachmentInfo
from .link import Link

_A = TypeVar("_A", bound="HookAttachment")

AttachTypeLike = Union[AttachType, int, str]

# bpftool's short names (``bpftool cgroup attach CGROUP connect4 ...``)
_SHORT_NAMES: dict[str, AttachType] = {
    "ingress": AttachType.CGROUP_INET_INGRESS, "egress": AttachType.CGROUP_INET_EGRESS,
    "sock_create": AttachType.CGROUP_INET_SOCK_CREATE, "sock_ops": AttachType.CGROUP_SOCK_OPS,
    "device": AttachType.CGROUP_DEVICE, "bind4": AttachType.CGROUP_INET4_BIND,
    "bind6": AttachType.CGROUP_INET6_BIND, "post_bind4": AttachType.CGROUP_INET4_POST_BIND,
    "post_bind6": AttachType.CGROUP_INET6_POST_BIND,
    "connect4": AttachType.CGROUP_INET4_CONNECT, "connect6": AttachType.CGROUP_INET6_CONNECT,
    "connect_unix": AttachType.CGROUP_UNIX_CONNECT,
    "getpeername4": AttachType.CGROUP_INET4_GETPEERNAME,
    "getpeername6": AttachType.CGROUP_INET6_GETPEERNAME,
    "getpeername_unix": AttachType.CGROUP_UNIX_GETPEERNAME,
    "getsockname4": AttachType.CGROUP_INET4_GETSOCKNAME,
    "getsockname6": AttachType.CGROUP_INET6_GETSOCKNAME,
    "getsockname_unix": AttachType.CGROUP_UNIX_GETSOCKNAME,
    "sendmsg4": AttachType.CGROUP_UDP4_SENDMSG, "sendmsg6": AttachType.CGROUP_UDP6_SENDMSG,
    "sendmsg_unix": AttachType.CGROUP_UNIX_SENDMSG,
    "recvmsg4": AttachType.CGROUP_UDP4_RECVMSG, "recvmsg6": AttachType.CGROUP_UDP6_RECVMSG,
    "recvmsg_unix": AttachType.CGROUP_UNIX_RECVMSG,
    "sysctl": AttachType.CGROUP_SYSCTL, "getsockopt": AttachType.CGROUP_GETSOCKOPT,
    "setsockopt": AttachType.CGROUP_SETSOCKOPT, "sock_release": AttachType.CGROUP_INET_SOCK_RELEASE,
    "lsm_cgroup": AttachType.LSM_CGROUP,
}


def attach_type_of(t: AttachTypeLike) -> AttachType:
    """AttachType from an enum, a number, the UAPI name (``cgroup_inet4_connect``, with or
    without ``BPF_``) or bpftool's short name (``connect4``, ``ingress``, ``sock_create``)."""
    if isinstance(t, str):
        key = t.lower().removeprefix("bpf_")
        if key in _SHORT_NAMES:
            return _SHORT_NAMES[key]
        try:
            return AttachType[key.upper()]
        except KeyError:
            raise UsageError(f"unknown attach type {t!r}; short names: "
                             f"{', '.join(_SHORT_NAMES)}") from None
    try:
        return AttachType(t)
    except ValueError:
        raise UsageError(f"unknown attach type {t}") from None


_SHORT_NAME_OF = {a: n for n, a in reversed(list(_SHORT_NAMES.items()))}


def short_name(t: AttachType) -> str:
    """bpftool's short name of a cgroup attach type, else the lower-case UAPI name."""
    return _SHORT_NAME_OF.get(t) or t.name.lower()


def check_prog_type(program: KernelObject, attach_type: AttachType, what: str) -> None:
    """UsageError unless ``program``'s type is the one ``attach_type`` takes."""
    want = PROG_TYPE_OF_ATTACH.get(attach_type)
    have = getattr(program, "type", None)
    if want is None or have is None or int(have) == want:
        return
    try:
        have_name = ProgType(have).name.lower()
    except ValueError:
        have_name = str(have)
    raise UsageError(f"{program.describe()} is a {have_name} program; {what} "
                     f"({attach_type.name.lower()}) takes {want.name.lower()} programs")


class HookAttachment:
    """A program attached without a BPF link (PROG_ATTACH, netlink): ``close()`` detaches it,
    garbage collection does not, and there is nothing to pin. Subclasses say how to detach
    (``_detach``), which errnos mean "already gone" (``_GONE``) and what to do to pin
    (``_NO_PIN``: why, instead)."""

    _GONE: frozenset = frozenset({_errno.ENOENT})
    _NO_PIN: tuple = ("", "")

    def __init__(self, program: FD, what: str, netns: Optional[FD] = None) -> None:
        self._prog = program
        self._netns = netns  # the namespace the detach must run in
        self.name = what

    @property
    def closed(self) -> bool:
        return self._prog.closed

    def _detach(self) -> None:
        raise NotImplementedError

    def _fds(self) -> tuple[Optional[FD], ...]:
        return (self._prog, self._netns)

    def detach(self) -> None:
        """Detach from the hook (an error says why it could not), then close the fds."""
        if self.closed:
            return
        try:
            self._detach()
        finally:
            for fd in self._fds():
                if fd is not None:
                    fd.close()

    def close(self) -> None:
        """Detach; an attachment already gone (its hook, or detached by someone else) just
        closes."""
        try:
            self.detach()
        except BPFError as e:
            if e.errno not in self._GONE:
                raise

    def pin(self, path: object) -> None:
        raise BPFError(_errno.EOPNOTSUPP, "BPF_OBJ_PIN", self.name, *self._NO_PIN)

    def info(self) -> AttachmentInfo:
        """The attached program's id (BPF_OBJ_GET_INFO_BY_FD of our reference to it)."""
        return AttachmentInfo(prog_id=objects.obj_info(self._prog.fd, ProgInfoStruct(),
                                                       self.name).id)

    def __enter__(self: _A) -> _A:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "detached" if self.closed else "attached"
        return f"<{type(self).__name__} {self.name!r} {state}>"


class ProgAttachment(HookAttachment):
    """A program attached with BPF_PROG_ATTACH; ``close()`` detaches it (BPF_PROG_DETACH).

    Holds its own references to the program and the target (cgroup, netns, map) for the
    detach. It has no BPF link, so it cannot be pinned; an attachment never closed stays.
    """

    _NO_PIN = ("attached with BPF_PROG_ATTACH: there is no BPF link to pin",
               "attach with a link (the default) to pin the attachment")

    def __init__(self, program: FD, target: Optional[FD], attach_type: AttachType,
                 what: str, target_ifindex: int = 0, netns: Optional[FD] = None) -> None:
        super().__init__(program, what, netns)  # netns: flow dissector, tcx by ifindex
        self._target = target
        self.attach_type = attach_type
        self.target_ifindex = target_ifindex

    def _fds(self) -> tuple[Optional[FD], ...]:
        return (self._prog, self._target, self._netns)

    def _detach(self) -> None:
        """BPF_PROG_DETACH of this program from this hook."""
        with in_netns(self._netns):
            commands.prog_detach(self.name, attach_bpf_fd=self._prog.fd,
                                 attach_type=self.attach_type, target_fd=self._target.fd
                                 if self._target else self.target_ifindex)


def prog_attach(program: KernelObject, target: Optional[FD], attach_type: AttachType,
                what: str, flags: int = 0, replace: Optional[KernelObject] = None,
                target_ifindex: int = 0) -> ProgAttachment:
    """BPF_PROG_ATTACH ``program`` to ``target`` (an fd, owned from now on) or, with no
    target, an ifindex or the calling thread's network namespace (remembered for the
    detach)."""
    check_prog_type(program, attach_type, what)
    try:
        if replace is not None:
            flags |= AttachFlag.REPLACE
        commands.prog_attach(f"{program.describe()} on {what}",
                             target_fd=target.fd if target else target_ifindex,
                             attach_bpf_fd=program.fd, attach_type=attach_type,
                             attach_flags=flags, replace_bpf_fd=replace.fd if replace else 0)
        return ProgAttachment(FD(os.dup(program.fd)), target, attach_type, what,
                              target_ifindex, None if target is not None else current_netns())
    except BaseException:
        if target is not None:
            target.close()
        raise


@dataclass(frozen=True)
class AttachedProgram:
    """One program on a hook: its id and name, its own attach flags (reported since Linux
    6.0, 0 before) and the link holding it (reported for tcx; 0 for none or unknown)."""

    prog_id: int
    name: str
    attach_flags: int = 0
    link_id: int = 0


@dataclass(frozen=True)
class HookQuery:
    """BPF_PROG_QUERY of one hook: the hook's attach mode flags, revision and programs in the
    order they run."""

    attach_type: AttachType
    attach_flags: int
    revision: int
    programs: tuple[AttachedProgram, ...]

    @property
    def prog_ids(self) -> tuple[int, ...]:
        return tuple(p.prog_id for p in self.programs)


def _prog_name(prog_id: int) -> str:
    """The program's name, or '' when it went away meanwhile."""
    try:
        fd = objects.fd_by_id("prog", prog_id)
    except BPFError:
        return ""
    try:
        return objects.obj_info(fd.fd, ProgInfoStruct()).name.decode(errors="replace")
    except BPFError:
        return ""
    finally:
        fd.close()


_query_level = 2
"""How many of PROG_QUERY's newer output arrays this kernel takes: 2 = prog_attach_flags
(Linux 6.0) and link_ids (6.6), 1 = prog_attach_flags, 0 = neither (older kernels answer
EINVAL to non-zero fields they do not know)."""


def prog_query(target: int, attach_type: AttachType, what: str,
               effective: bool = False) -> HookQuery:
    """BPF_PROG_QUERY on ``target`` (a cgroup/netns/map fd, or an ifindex for tcx).

    ``effective``: the programs that run for this cgroup, inherited ones included.
    """
    global _query_level
    attr = None
    n = 8
    level = _query_level
    while True:
        buf = (ctypes.c_uint32 * (3 * n))()  # program ids, their flags, their link ids
        base = ctypes.addressof(buf)
        ret, attr = commands.prog_query(
            attr, target_fd=target, attach_type=attach_type,
            query_flags=QueryFlag.EFFECTIVE if effective else 0, prog_ids=base, prog_cnt=n,
            prog_attach_flags=base + 4 * n if level >= 1 and not effective else 0,
            link_ids=base + 8 * n if level >= 2 and not effective else 0)
        if ret == -_errno.ENOSPC:  # more programs than room: the kernel set the count
            n = max(attr.prog_cnt, n * 2)
            continue
        if ret == -_errno.EINVAL and level > 0 and not effective:
            level -= 1  # an older kernel: ask again without the newest field
            continue
        if ret < 0:
            raise BPFError(-ret, "BPF_PROG_QUERY", what)
        _query_level = level
        break
    count = min(attr.prog_cnt, n)
    progs = tuple(AttachedProgram(buf[i], _prog_name(buf[i]), buf[n + i], buf[2 * n + i])
                  for i in range(count))
    return HookQuery(attach_type, attr.attach_flags, attr.revision, progs)


def link_create(program: KernelObject, target: int, attach_type: AttachType, what: str,
                flags: int = 0, data: Optional[dict[str, dict[str, int]]] = None,
                missing: Optional[Callable[[], Support]] = None) -> Link:
    """BPF_LINK_CREATE of ``program`` on ``target`` (fd or ifindex); ``data``: the attach
    type's own fields (``{"tcx": {"relative_fd": 3}}``: ``pybpf.sys.commands.link_create``).
    When the kernel refuses with EINVAL and ``missing()`` (a ``pybpf.features`` probe) says
    the hook is absent, UnsupportedFeatureError says so."""
    check_prog_type(program, attach_type, what)
    ret = commands.link_create(prog_fd=program.fd, target_fd=target, attach_type=attach_type,
                               flags=flags, target=data or {})
    if ret >= 0:
        return Link(FD(ret), what)
    if -ret in (_errno.EINVAL, _errno.EOPNOTSUPP, ENOTSUPP) and missing is not None:
        support = missing()
        if not support:
            raise UnsupportedFeatureError(f"BPF_LINK_CREATE of {program.describe()} on {what}: "
                                          f"{support.reason}")
    raise BPFError(-ret, "BPF_LINK_CREATE", f"{program.describe()} on {what}")
