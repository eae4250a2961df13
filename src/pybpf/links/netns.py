"""Network namespace hooks: sk_lookup and the BPF flow dissector.

An sk_lookup program picks the socket for a new connection or datagram of its namespace
(``bpf_sk_assign``) before the kernel's own lookup; a flow dissector program replaces the
kernel's packet dissector for the namespace. Both attach by a netns BPF link
(LINK_CREATE, target_fd = the namespace), the flow dissector also by BPF_PROG_ATTACH.
"""
from __future__ import annotations

import os
from typing import Union

from ..errors import UsageError
from ..object import KernelObject
from ..sys import probes
from ..sys.fd import FD
from ..sys.host import current_netns
from ..sys.uapi import AttachType
from .attach import HookQuery, ProgAttachment, link_create, prog_attach, prog_query
from .link import Link

NetnsLike = Union[None, str, "os.PathLike[str]", int]
NETNS_RUN_DIR = "/var/run/netns"
_NETNS_TYPES = (AttachType.SK_LOOKUP, AttachType.FLOW_DISSECTOR)


def open_netns(netns: NetnsLike = None) -> tuple[FD, str]:
    """An fd of ``netns`` and how errors name it: None is the calling thread's namespace, a
    name one of ``ip netns`` (/var/run/netns/NAME), a path a namespace file
    (/proc/PID/ns/net), an int an open namespace fd (duplicated)."""
    if netns is None:
        return current_netns(), "this network namespace"
    if isinstance(netns, int):
        return FD(os.dup(netns)), f"network namespace fd {netns}"
    path = os.fspath(netns)
    if os.sep not in path:
        path = os.path.join(NETNS_RUN_DIR, path)
    try:
        return FD(os.open(path, os.O_RDONLY | os.O_CLOEXEC)), f"network namespace {path}"
    except FileNotFoundError:
        raise UsageError(f"no network namespace {path}") from None


def attach_netns(program: KernelObject, attach_type: AttachType,
                 netns: NetnsLike = None) -> Link:
    """A netns BPF link of ``program`` (sk_lookup or flow_dissector) in ``netns``."""
    if attach_type not in _NETNS_TYPES:
        raise UsageError(f"{attach_type.name.lower()} is not a network namespace hook; they "
                         "are sk_lookup and flow_dissector")
    target, name = open_netns(netns)
    with target:
        return link_create(program, target.fd, attach_type,
                           f"{attach_type.name.lower()} of {name}",
                           missing=lambda: probes.attach_type(attach_type))


def attach_sk_lookup(program: KernelObject, netns: NetnsLike = None) -> Link:
    """Run the sk_lookup ``program`` on socket lookups in ``netns`` (several may run, in
    attach order; the first that assigns a socket wins)."""
    return attach_netns(program, AttachType.SK_LOOKUP, netns)


def attach_flow_dissector(program: KernelObject, netns: NetnsLike = None, *,
                          link: bool = True) -> Union[Link, ProgAttachment]:
    """Dissect the packets of ``netns`` with the flow_dissector ``program``: a link, or with
    ``link=False`` BPF_PROG_ATTACH, which the kernel applies to the calling thread's
    namespace only (so ``netns`` must be None then, and the detach, ``close()``, must run
    in that namespace too)."""
    if link:
        return attach_netns(program, AttachType.FLOW_DISSECTOR, netns)
    if netns is not None:
        raise UsageError("BPF_PROG_ATTACH of a flow dissector acts on the calling thread's "
                         "network namespace: pass netns=None, or use a link")
    # target_fd must be 0: the kernel takes the caller's namespace (also for the detach)
    return prog_attach(program, None, AttachType.FLOW_DISSECTOR,
                       "flow_dissector of this network namespace")


def query_netns(attach_type: AttachType, netns: NetnsLike = None) -> HookQuery:
    """The program(s) on a namespace hook (BPF_PROG_QUERY)."""
    target, name = open_netns(netns)
    with target:
        return prog_query(target.fd, attach_type, f"{attach_type.name.lower()} of {name}")
