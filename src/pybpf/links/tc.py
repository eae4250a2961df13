"""TC: sched_cls programs on an interface's ingress or egress, after the skb exists.

tcx (Linux 6.6): a BPF link (LINK_CREATE with BPF_TCX_INGRESS/EGRESS and the ifindex),
programs ordered with ``before``/``after``. Older kernels: a clsact qdisc and a
direct-action cls_bpf filter by netlink (what ``tc filter add ... bpf da`` does).
``attach_tc`` picks tcx where the kernel has it.
"""
from __future__ import annotations

import errno as _errno
import os
import socket
from dataclasses import dataclass
from typing import Optional, Union

from ..errors import UsageError
from ..object import KernelObject
from ..sys import probes
from ..sys.fd import FD
from ..sys.host import current_netns
from ..sys.uapi import AttachFlag, AttachType
from . import netlink
from .attach import HookAttachment, check_prog_type, link_create, prog_query
from .link import Link
from .netlink import InterfaceLike

DIRECTIONS = {"ingress": AttachType.TCX_INGRESS, "egress": AttachType.TCX_EGRESS}


def _tcx_type(direction: str) -> AttachType:
    try:
        return DIRECTIONS[direction]
    except KeyError:
        raise UsageError(f"tc direction must be 'ingress' or 'egress', not {direction!r}") \
            from None


def attach_tcx(program: KernelObject, interface: InterfaceLike, direction: str = "ingress", *,
               before: Optional[KernelObject] = None, after: Optional[KernelObject] = None,
               expected_revision: int = 0) -> Link:
    """Run the sched_cls ``program`` on ``direction`` of ``interface`` by a tcx link.

    Without ``before``/``after`` it runs after those attached already; ``before``/``after``
    (a Program or Link there) place it relative to one; ``expected_revision`` (from
    ``list_tc``) makes the attach fail with ESTALE if the hook changed meanwhile.
    """
    at = _tcx_type(direction)
    index = netlink.ifindex(interface)
    what = f"tcx {direction} of {netlink.describe(index)}"
    if before is not None and after is not None:
        raise UsageError(f"{what}: give before or after, not both")
    anchor = before if before is not None else after
    flags = 0
    if anchor is not None:
        flags = AttachFlag.BEFORE if before is not None else AttachFlag.AFTER
        if isinstance(anchor, Link):
            flags |= AttachFlag.LINK

    tcx = {"relative_fd": anchor.fd if anchor is not None else 0,
           "expected_revision": expected_revision}
    return link_create(program, index, at, what, flags, {"tcx": tcx},
                       missing=lambda: probes.attach_type(at))


class TcFilterAttachment(HookAttachment):
    """A cls_bpf filter added by netlink: ``close()`` deletes the filter (the clsact qdisc
    stays: other filters may use it)."""

    _GONE = frozenset({_errno.ENOENT, _errno.ENODEV, _errno.EINVAL})  # deleted, or no interface
    _NO_PIN = ("a cls_bpf filter is no BPF link: there is nothing to pin",
               "use attach_tcx (Linux 6.6) for a pinnable link")

    def __init__(self, program: FD, ifindex: int, direction: str, prio: int, handle: int,
                 what: str) -> None:
        super().__init__(program, what, current_netns())
        self.ifindex, self.direction, self.prio, self.handle = ifindex, direction, prio, handle

    def _detach(self) -> None:
        netlink.del_bpf_filter(self.ifindex, self.direction, self.prio, self.handle,
                               f"tc filter delete on {self.name}", self._netns)


def attach_tc_filter(program: KernelObject, interface: InterfaceLike,
                     direction: str = "ingress", *, prio: int = 1,
                     handle: int = 1) -> TcFilterAttachment:
    """Run the sched_cls ``program`` as a direct-action cls_bpf filter (``prio``, ``handle``)
    on the clsact qdisc of ``interface`` (added when missing), by netlink."""
    _tcx_type(direction)
    index = netlink.ifindex(interface)
    what = f"tc {direction} of {netlink.describe(index)}"
    check_prog_type(program, AttachType.TCX_INGRESS, what)
    netlink.ensure_clsact(index, f"clsact qdisc on {what}")
    netlink.add_bpf_filter(index, direction, program.fd, program.name, prio, handle,
                           f"{program.describe()} as filter prio {prio} handle {handle} on "
                           f"{what}")
    return TcFilterAttachment(FD(os.dup(program.fd)), index, direction, prio, handle, what)


def attach_tc(program: KernelObject, interface: InterfaceLike,
              direction: str = "ingress") -> Union[Link, TcFilterAttachment]:
    """A tcx link where the kernel has tcx (6.6), else a clsact + cls_bpf filter."""
    if probes.attach_type(_tcx_type(direction)):
        return attach_tcx(program, interface, direction)
    return attach_tc_filter(program, interface, direction)


@dataclass(frozen=True)
class TcProgram:
    """A program on an interface's tc hook (``bpftool net``): ``kind`` is "tcx" (link id,
    revision) or "cls_bpf" (prio, handle, direct action)."""

    ifindex: int
    ifname: str
    direction: str
    kind: str
    prog_id: int
    name: str
    link_id: int = 0
    revision: int = 0
    prio: int = 0
    handle: int = 0
    direct_action: bool = True


def list_tc(interface: Optional[InterfaceLike] = None) -> list[TcProgram]:
    """The tcx programs (BPF_PROG_QUERY, in run order) and cls_bpf filters (netlink) on each
    direction of ``interface``, or of every interface of this network namespace."""
    indexes = [netlink.ifindex(interface)] if interface is not None else \
        [i for i, _ in socket.if_nameindex()]
    out: list[TcProgram] = []
    for index in indexes:
        name = netlink.ifname(index)
        for direction, at in DIRECTIONS.items():
            if probes.attach_type(at):
                q = prog_query(index, at, f"tcx {direction} of interface {name}")
                out += [TcProgram(index, name, direction, "tcx", p.prog_id, p.name, p.link_id,
                                  q.revision) for p in q.programs]
            out += [TcProgram(index, name, direction, "cls_bpf", f.prog_id, f.name, prio=f.prio,
                              handle=f.handle, direct_action=f.direct_action)
                    for f in netlink.bpf_filters(index, direction)]
    return out
