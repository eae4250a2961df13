"""Netfilter programs (Linux 6.4): a BPF program as a netfilter hook of this network namespace.

The program sees each packet at ``hooknum`` (NF_INET_PRE_ROUTING ... POST_ROUTING) of
protocol family ``pf`` (NFPROTO_IPV4/IPV6) and returns NF_ACCEPT or NF_DROP; ``priority``
orders it among the other hooks there (iptables' filter table is 0), excluding the
extremes INT_MIN and INT_MAX. A BPF link (LINK_CREATE with BPF_NETFILTER) holds it.
"""
from __future__ import annotations

from ..errors import UsageError
from ..object import KernelObject
from ..sys import probes
from ..sys.uapi import AttachType, NfInetHook, NfProto
from .attach import link_create
from .link import Link

_INT_MIN, _INT_MAX = -(1 << 31), (1 << 31) - 1


def attach_netfilter(program: KernelObject, pf: int = NfProto.IPV4,
                     hooknum: int = NfInetHook.LOCAL_IN, priority: int = 0,
                     flags: int = 0) -> Link:
    """Run the netfilter ``program`` at (``pf``, ``hooknum``, ``priority``) in the calling
    thread's network namespace; ``flags`` may hold ``NetfilterFlag.IP_DEFRAG`` (the program
    sees reassembled packets; the priority must then be after defragmentation)."""
    if pf not in (NfProto.IPV4, NfProto.IPV6):
        raise UsageError(f"netfilter programs attach to NFPROTO_IPV4 or NFPROTO_IPV6, not {pf}")
    if not NfInetHook.PRE_ROUTING <= hooknum <= NfInetHook.POST_ROUTING:
        raise UsageError(f"netfilter hook number must be 0..4 (NF_INET_PRE_ROUTING .. "
                         f"POST_ROUTING), not {hooknum}")
    if not _INT_MIN < priority < _INT_MAX:
        raise UsageError("netfilter priority must lie strictly between INT_MIN and INT_MAX")
    what = (f"netfilter {NfProto(pf).name.lower()} {NfInetHook(hooknum).name.lower()} "
            f"priority {priority}")

    nf = {"pf": pf, "hooknum": hooknum, "priority": priority, "flags": flags}
    return link_create(program, 0, AttachType.NETFILTER, what, data={"netfilter": nf},
                       missing=probes.netfilter_link)
