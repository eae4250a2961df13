"""The program type each network and cgroup attach type takes (the kernel's
``attach_type_to_prog_type``), and which attach types are cgroup hooks."""
from __future__ import annotations

from .uapi import AttachType, ProgType

_SOCK_ADDR = ("INET4_BIND", "INET6_BIND", "INET4_CONNECT", "INET6_CONNECT", "UDP4_SENDMSG",
              "UDP6_SENDMSG", "UDP4_RECVMSG", "UDP6_RECVMSG", "INET4_GETPEERNAME",
              "INET6_GETPEERNAME", "INET4_GETSOCKNAME", "INET6_GETSOCKNAME", "UNIX_CONNECT",
              "UNIX_SENDMSG", "UNIX_RECVMSG", "UNIX_GETPEERNAME", "UNIX_GETSOCKNAME")
_SOCK = ("INET_SOCK_CREATE", "INET4_POST_BIND", "INET6_POST_BIND", "INET_SOCK_RELEASE")

PROG_TYPE_OF_ATTACH: dict[AttachType, ProgType] = {
    AttachType.CGROUP_INET_INGRESS: ProgType.CGROUP_SKB,
    AttachType.CGROUP_INET_EGRESS: ProgType.CGROUP_SKB,
    **{AttachType["CGROUP_" + n]: ProgType.CGROUP_SOCK for n in _SOCK},
    **{AttachType["CGROUP_" + n]: ProgType.CGROUP_SOCK_ADDR for n in _SOCK_ADDR},
    AttachType.CGROUP_SOCK_OPS: ProgType.SOCK_OPS,
    AttachType.CGROUP_DEVICE: ProgType.CGROUP_DEVICE,
    AttachType.CGROUP_SYSCTL: ProgType.CGROUP_SYSCTL,
    AttachType.CGROUP_GETSOCKOPT: ProgType.CGROUP_SOCKOPT,
    AttachType.CGROUP_SETSOCKOPT: ProgType.CGROUP_SOCKOPT,
    AttachType.LSM_CGROUP: ProgType.LSM,
    AttachType.SK_SKB_STREAM_PARSER: ProgType.SK_SKB,
    AttachType.SK_SKB_STREAM_VERDICT: ProgType.SK_SKB,
    AttachType.SK_SKB_VERDICT: ProgType.SK_SKB,
    AttachType.SK_MSG_VERDICT: ProgType.SK_MSG,
    AttachType.FLOW_DISSECTOR: ProgType.FLOW_DISSECTOR,
    AttachType.SK_LOOKUP: ProgType.SK_LOOKUP,
    AttachType.XDP: ProgType.XDP,
    AttachType.TCX_INGRESS: ProgType.SCHED_CLS,
    AttachType.TCX_EGRESS: ProgType.SCHED_CLS,
    AttachType.NETFILTER: ProgType.NETFILTER,
}
"""The program type each network/cgroup attach type takes."""

CGROUP_ATTACH_TYPES = frozenset(a for a, p in PROG_TYPE_OF_ATTACH.items()
                                if a.name.startswith("CGROUP_") or a == AttachType.LSM_CGROUP)
