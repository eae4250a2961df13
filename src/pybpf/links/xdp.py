"""XDP: a program on a network interface's receive path, before the kernel allocates an skb.

A BPF link (LINK_CREATE with BPF_XDP and the ifindex, Linux 5.9) where the kernel has them;
otherwise, or when asked, netlink (IFLA_XDP), which is what ``ip link set dev X xdp`` does.
Modes: generic (``XdpFlag.SKB_MODE``, any device), native (``DRV_MODE``, the driver runs it)
and offload (``HW_MODE``, the NIC runs it); no mode flag lets the kernel pick native when
the driver has it, else generic.
"""
from __future__ import annotations

import errno as _errno
import os
from dataclasses import dataclass
from typing import Optional, Union

from ..errors import BPFError, PyBPFError, UsageError
from ..object import KernelObject
from ..sys import probes
from ..sys.fd import FD
from ..sys.host import current_netns
from ..sys.uapi import AttachType, XdpFlag
from . import netlink
from .attach import HookAttachment, check_prog_type, link_create
from .link import Link
from .netlink import InterfaceLike

MODES = {"skb": XdpFlag.SKB_MODE, "generic": XdpFlag.SKB_MODE, "native": XdpFlag.DRV_MODE,
         "drv": XdpFlag.DRV_MODE, "driver": XdpFlag.DRV_MODE, "hw": XdpFlag.HW_MODE,
         "offload": XdpFlag.HW_MODE}
_MODE_FLAGS = XdpFlag.SKB_MODE | XdpFlag.DRV_MODE | XdpFlag.HW_MODE


class XdpAttachment(HookAttachment):
    """An XDP program attached by netlink (IFLA_XDP): ``close()`` removes it from the
    interface, only if it is still the attached program (XDP_FLAGS_REPLACE)."""

    _GONE = frozenset({_errno.EEXIST, _errno.ENODEV, _errno.ENOENT})  # replaced, or no interface
    _NO_PIN = ("attached by netlink (IFLA_XDP): there is no BPF link to pin",
               "attach with a BPF link (netlink=False) to pin the attachment")

    def __init__(self, program: FD, ifindex: int, flags: int, what: str) -> None:
        super().__init__(program, what, current_netns())  # the ifindex means something there
        self.ifindex = ifindex
        self.flags = flags

    def _detach(self) -> None:
        netlink.set_xdp(self.ifindex, -1, (self.flags & _MODE_FLAGS) | XdpFlag.REPLACE,
                        f"XDP detach from {self.name}", expected_fd=self._prog.fd,
                        netns=self._netns)


def xdp_flags(flags: int = 0, mode: Optional[str] = None) -> int:
    """XDP flags from ``flags`` and a mode name (``skb``/``generic``, ``native``/``drv``,
    ``hw``/``offload``)."""
    if mode is not None:
        if mode not in MODES:
            raise UsageError(f"unknown XDP mode {mode!r}; modes: {', '.join(MODES)}")
        flags |= MODES[mode]
    if bin(flags & _MODE_FLAGS).count("1") > 1:
        raise UsageError("XDP flags: at most one of SKB_MODE, DRV_MODE, HW_MODE")
    return flags


def attach_xdp(program: KernelObject, interface: InterfaceLike, flags: int = 0, *,
               mode: Optional[str] = None,
               netlink_attach: Optional[bool] = None) -> Union[Link, XdpAttachment]:
    """Run the XDP ``program`` on ``interface`` (name or ifindex, in this network namespace).

    ``netlink_attach``: None uses a BPF link where the kernel has XDP links, else netlink;
    True forces netlink (IFLA_XDP; ``flags`` may then hold UPDATE_IF_NOEXIST), False a link.
    """
    flags = xdp_flags(flags, mode)
    index = netlink.ifindex(interface)
    what = f"XDP of {netlink.describe(index)}"
    check_prog_type(program, AttachType.XDP, what)
    if netlink_attach is None:
        netlink_attach = not probes.xdp_link()
    try:
        if netlink_attach:
            netlink.set_xdp(index, program.fd, flags, f"{program.describe()} on {what}")
            return XdpAttachment(FD(os.dup(program.fd)), index, flags, what)
        if flags & ~_MODE_FLAGS:
            raise UsageError(f"{what}: XDP links take only a mode flag (SKB_MODE, DRV_MODE, "
                             "HW_MODE); they never replace an attached program")
        return link_create(program, index, AttachType.XDP, what, flags,
                           missing=probes.xdp_link)
    except BPFError as e:
        raise _explain(e, index, flags, what) from None


def _explain(e: BPFError, index: int, flags: int, what: str) -> BPFError:
    """Say why the kernel refused: busy interface, a mode the driver lacks."""
    if e.errno == _errno.EBUSY or (e.errno == _errno.EEXIST and e.command == "rtnetlink"):
        try:
            held = ", ".join(f"{m} id {i}" for x in netlink.xdp_links(index)
                             for m, i in x[3].items())
        except PyBPFError:  # no pyroute2: say it without the ids
            held = ""
        return BPFError(e.errno, e.command, e.obj,
                        f"another XDP program is attached already ({held or 'by a link'})",
                        "detach it first (or attach in another mode)")
    if e.errno == _errno.EOPNOTSUPP and flags & (XdpFlag.DRV_MODE | XdpFlag.HW_MODE):
        return BPFError(e.errno, e.command, e.obj,
                        "the driver does not support this XDP mode",
                        "use mode='skb' (generic XDP works on every device)")
    return e


@dataclass(frozen=True)
class XdpInfo:
    """XDP on one interface (``bpftool net``): attach mode and program id per mode."""

    ifindex: int
    ifname: str
    mode: str  # "none", "driver", "generic", "offload" or "multi"
    prog_ids: dict

    @property
    def prog_id(self) -> int:
        """The one attached program's id (0 when none; with several modes, the first)."""
        return next(iter(self.prog_ids.values()), 0)


def list_xdp(interface: Optional[InterfaceLike] = None) -> list[XdpInfo]:
    """XDP programs per interface in this network namespace (netlink RTM_GETLINK); only
    interfaces with a program, unless ``interface`` is given."""
    index = netlink.ifindex(interface) if interface is not None else None
    return [XdpInfo(i, name, mode, ids) for i, name, mode, ids in netlink.xdp_links(index)
            if ids or index is not None]
