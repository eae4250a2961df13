"""rtnetlink for the hooks that predate BPF links: XDP by IFLA_XDP, clsact + cls_bpf filters.

pyroute2 speaks netlink; it is imported on first use, so only these paths need it. Every
call acts in the network namespace of the calling thread, as the kernel resolves
interface names and indexes there.
"""
from __future__ import annotations

import contextlib
import os
import socket
import struct
from dataclasses import dataclass
from typing import Any, Iterator, Optional, Union

from ..errors import BPFError, UnsupportedFeatureError, UsageError
from ..sys.fd import FD
from ..sys.host import in_netns
from ..sys.uapi import TcHandle

InterfaceLike = Union[str, int]

_TCA_BPF_FLAG_ACT_DIRECT = 1
_TCA_BPF_ID = 11  # pyroute2 0.9 does not decode these cls_bpf attributes
_ETH_P_ALL = 0x0003


def ifindex(interface: InterfaceLike) -> int:
    """The index of ``interface`` (a name or an index) in this network namespace."""
    if isinstance(interface, int):
        try:
            socket.if_indextoname(interface)
        except OSError:
            raise UsageError(f"no network interface with index {interface} in this network "
                             "namespace") from None
        return interface
    try:
        return socket.if_nametoindex(interface)
    except OSError:
        raise UsageError(f"no network interface named {interface!r} in this network "
                         "namespace") from None


def ifname(index: int) -> str:
    """The name of interface ``index`` ('' when it is gone)."""
    try:
        return socket.if_indextoname(index)
    except OSError:
        return ""


def describe(interface: InterfaceLike) -> str:
    """``interface veth0 (ifindex 4)`` for error messages."""
    index = ifindex(interface)
    return f"interface {ifname(index) or '?'} (ifindex {index})"


@contextlib.contextmanager
def iproute(what: str, netns: Optional[FD] = None) -> Iterator[Any]:
    """A pyroute2 IPRoute socket in ``netns`` (default: the calling thread's); netlink
    errors become BPFError naming ``what``."""
    try:
        from pyroute2 import IPRoute
        from pyroute2.netlink.exceptions import NetlinkError
    except ImportError:
        raise UnsupportedFeatureError(f"{what} needs rtnetlink through pyroute2, which is not "
                                      "installed: pip install pyroute2") from None
    try:
        with in_netns(netns):
            ipr = IPRoute()
        with ipr:
            yield ipr
    except NetlinkError as e:
        raise BPFError(e.code, "rtnetlink", what, _netlink_detail(e)) from None


def _netlink_detail(e: Any) -> str:
    """The errno's meaning, with the kernel's extended ack message when there is one."""
    base = os.strerror(e.code).lower()
    msg = e.args[1] if len(e.args) > 1 else ""
    return f"{base}: {msg}" if msg and msg != os.strerror(e.code) else base


# --- XDP ----------------------------------------------------------------------------------

XDP_ATTACHED = {0: "none", 1: "driver", 2: "generic", 3: "offload", 4: "multi"}


def set_xdp(index: int, prog_fd: int, flags: int, what: str,
            expected_fd: Optional[int] = None, netns: Optional[FD] = None) -> None:
    """RTM_SETLINK with IFLA_XDP: attach ``prog_fd`` (-1 removes) with XDP_FLAGS ``flags``;
    ``expected_fd`` (with XDP_FLAGS_REPLACE) only if that program is the attached one."""
    attrs: list = [("IFLA_XDP_FD", prog_fd), ("IFLA_XDP_FLAGS", flags)]
    if expected_fd is not None:
        attrs.append(("IFLA_XDP_EXPECTED_FD", expected_fd))
    with iproute(what, netns) as ipr:
        ipr.link("set", index=index, xdp={"attrs": attrs})


def _xdp_ids(xdp: Any) -> tuple[str, dict[str, int]]:
    mode_names = {"IFLA_XDP_DRV_PROG_ID": "driver", "IFLA_XDP_SKB_PROG_ID": "generic",
                  "IFLA_XDP_HW_PROG_ID": "offload"}
    ids = {mode: xdp.get_attr(attr) for attr, mode in mode_names.items()
           if xdp.get_attr(attr)}
    attached = xdp.get_attr("IFLA_XDP_ATTACHED")
    if attached and not ids and xdp.get_attr("IFLA_XDP_PROG_ID"):
        ids[str(attached)] = xdp.get_attr("IFLA_XDP_PROG_ID")
    mode = {"xdp": "driver", "xdpgeneric": "generic", "xdpoffload": "offload",
            "xdpmulti": "multi", None: "none"}.get(attached, str(attached))
    return mode, ids


def xdp_links(index: Optional[int] = None) -> list[tuple[int, str, str, dict[str, int]]]:
    """(ifindex, name, attach mode, {mode: prog id}) per interface (RTM_GETLINK)."""
    out = []
    with iproute("XDP query") as ipr:
        msgs = ipr.get_links(index) if index is not None else ipr.get_links()
        for msg in msgs:
            xdp = msg.get_attr("IFLA_XDP")
            mode, ids = _xdp_ids(xdp) if xdp is not None else ("none", {})
            out.append((msg["index"], msg.get_attr("IFLA_IFNAME"), mode, ids))
    return out


# --- tc: clsact qdisc and cls_bpf filters ---------------------------------------------------

def tc_parent(direction: str) -> int:
    """The clsact parent handle of ``"ingress"`` or ``"egress"``."""
    minor = {"ingress": TcHandle.MIN_INGRESS, "egress": TcHandle.MIN_EGRESS}.get(direction)
    if minor is None:
        raise UsageError(f"tc direction must be 'ingress' or 'egress', not {direction!r}")
    return (TcHandle.CLSACT & 0xFFFF0000) | minor


def ensure_clsact(index: int, what: str) -> bool:
    """Add the clsact qdisc unless there is one; True when it was added now."""
    with iproute(what) as ipr:
        if any(q.get_attr("TCA_KIND") == "clsact" for q in ipr.get_qdiscs(index)):
            return False
        ipr.tc("add", "clsact", index)
        return True


def add_bpf_filter(index: int, direction: str, prog_fd: int, name: str, prio: int,
                   handle: int, what: str) -> None:
    """A direct-action cls_bpf filter running ``prog_fd`` for every protocol (ETH_P_ALL)."""
    with iproute(what) as ipr:
        ipr.tc("add-filter", "bpf", index, handle, fd=prog_fd, name=name or "pybpf",
               parent=tc_parent(direction), prio=prio, protocol=_ETH_P_ALL,
               direct_action=True)


def del_bpf_filter(index: int, direction: str, prio: int, handle: int, what: str,
                   netns: Optional[FD] = None) -> None:
    with iproute(what, netns) as ipr:
        ipr.tc("del-filter", "bpf", index, handle, parent=tc_parent(direction), prio=prio,
               protocol=_ETH_P_ALL)


@dataclass(frozen=True)
class BpfFilter:
    """A cls_bpf filter: where, its program id and name, direct-action or not."""

    prio: int
    handle: int
    prog_id: int
    name: str
    direct_action: bool


def _raw_u32(opts: Any, nla_type: int) -> int:
    for slot in opts["attrs"]:
        nla = slot.nla if hasattr(slot, "nla") else None
        if nla is not None and nla["header"]["type"] == nla_type:
            return struct.unpack_from("=I", nla.data, nla.offset + 4)[0]
    return 0


def bpf_filters(index: int, direction: str) -> list[BpfFilter]:
    """The cls_bpf filters on ``direction`` of interface ``index`` (RTM_GETTFILTER)."""
    out = []
    with iproute("tc filter query") as ipr:
        for msg in ipr.get_filters(index, parent=tc_parent(direction)):
            opts = msg.get_attr("TCA_OPTIONS")
            if msg.get_attr("TCA_KIND") != "bpf" or opts is None:
                continue
            out.append(BpfFilter(prio=msg["info"] >> 16, handle=msg["handle"],
                                 prog_id=_raw_u32(opts, _TCA_BPF_ID),
                                 name=opts.get_attr("TCA_BPF_NAME") or "",
                                 direct_action=bool((opts.get_attr("TCA_BPF_FLAGS") or 0)
                                                    & _TCA_BPF_FLAG_ACT_DIRECT)))
    return out
