"""SEC() names: which program type, expected attach type and flags an ELF section means.

The table follows libbpf's ``section_defs`` (libbpf 1.4): the first matching entry wins.
A pattern ending in ``+`` matches the name exactly or followed by ``/extras``; one ending in
``/`` needs the extras; any other pattern matches only exactly. The extras name the attach
target (``tracepoint/sched/sched_switch`` -> ``sched/sched_switch``) that auto-attach uses.

``register_section`` adds a convention of the application's (libbpf's
``libbpf_register_prog_handler``): registered ones are matched before the table, in the order
registered, and may bring their own auto-attach function.
"""
from __future__ import annotations

from enum import Enum
import threading
from typing import Any, Callable, NamedTuple, Optional

from ..errors import ObjectError, UsageError
from ..sys.uapi import AttachType as A
from ..sys.uapi import ProgType as P


class AutoAttach(Enum):
    """How ``Program.attach()`` attaches a program of a section kind (libbpf's attach_fn)."""

    KPROBE = "kprobe"
    KSYSCALL = "ksyscall"
    KPROBE_MULTI = "kprobe_multi"
    UPROBE = "uprobe"
    UPROBE_MULTI = "uprobe_multi"
    USDT = "usdt"
    TRACEPOINT = "tracepoint"
    RAW_TRACEPOINT = "raw_tracepoint"
    TRACING = "tracing"  # fentry, fexit, fmod_ret, tp_btf, freplace: BTF-targeted links
    LSM = "lsm"
    ITER = "iter"
    CUSTOM = "custom"  # a registered section's own function (SectionDef.attach_fn)

# (program, extras of the section name) -> the attachment; typed loosely here (this layer
# imports neither the loader nor the links)
AttachFn = Callable[[Any, str], Any]


class SectionDef(NamedTuple):
    """One SEC() convention.

    ``attach_btf``: the extras name a kernel function/type whose BTF id the load needs
    (tracing, LSM, iterators). ``retprobe``: a return probe (kretprobe, uretprobe, ...).
    """

    pattern: str
    prog_type: P
    attach_type: Optional[A] = None
    sleepable: bool = False
    attach_btf: bool = False
    xdp_frags: bool = False
    auto_attach: Optional[AutoAttach] = None
    retprobe: bool = False
    attach_fn: Optional[AttachFn] = None  # auto_attach CUSTOM: how to attach

    def match(self, name: str) -> Optional[str]:
        """The extras after the prefix ('' when none) if ``name`` matches, else None."""
        pat = self.pattern
        if pat.endswith("/"):
            return name[len(pat):] if name.startswith(pat) else None
        if pat.endswith("+"):
            base = pat[:-1]
            if name == base:
                return ""
            return name[len(base) + 1:] if name.startswith(base + "/") else None
        return "" if name == pat else None

    @property
    def btf_hook(self) -> str:
        """The hook kind of an ``attach_btf`` section, a key of ``links.btf_tracing.HOOKS``
        (``fentry.s+`` -> ``fentry``)."""
        return self.pattern.rstrip("+/").split(".")[0]


class Section(NamedTuple):
    """A program section resolved: its definition and the extras of its name."""

    name: str
    definition: SectionDef
    target: str

    @property
    def prog_type(self) -> P:
        return self.definition.prog_type

    @property
    def attach_type(self) -> Optional[A]:
        return self.definition.attach_type


_d = SectionDef  # short for the table: (pattern, prog type, attach type, keywords)


_K, _TP, _RTP = AutoAttach.KPROBE, AutoAttach.TRACEPOINT, AutoAttach.RAW_TRACEPOINT
_U, _UM, _TR = AutoAttach.UPROBE, AutoAttach.UPROBE_MULTI, AutoAttach.TRACING

SECTION_DEFS: tuple[SectionDef, ...] = (
    _d("socket", P.SOCKET_FILTER),
    _d("sk_reuseport/migrate", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT_OR_MIGRATE),
    _d("sk_reuseport", P.SK_REUSEPORT, A.SK_REUSEPORT_SELECT),
    _d("kprobe+", P.KPROBE, auto_attach=_K),
    _d("uprobe+", P.KPROBE, auto_attach=_U),
    _d("uprobe.s+", P.KPROBE, sleepable=True, auto_attach=_U),
    _d("kretprobe+", P.KPROBE, auto_attach=_K, retprobe=True),
    _d("uretprobe+", P.KPROBE, auto_attach=_U, retprobe=True),
    _d("uretprobe.s+", P.KPROBE, sleepable=True, auto_attach=_U, retprobe=True),
    _d("kprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, auto_attach=AutoAttach.KPROBE_MULTI),
    _d("kretprobe.multi+", P.KPROBE, A.TRACE_KPROBE_MULTI, auto_attach=AutoAttach.KPROBE_MULTI,
       retprobe=True),
    _d("kprobe.session+", P.KPROBE, A.TRACE_KPROBE_SESSION,
       auto_attach=AutoAttach.KPROBE_MULTI),
    _d("uprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, auto_attach=_UM),
    _d("uretprobe.multi+", P.KPROBE, A.TRACE_UPROBE_MULTI, auto_attach=_UM, retprobe=True),
    _d("uprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, sleepable=True, auto_attach=_UM),
    _d("uretprobe.multi.s+", P.KPROBE, A.TRACE_UPROBE_MULTI, sleepable=True, auto_attach=_UM,
       retprobe=True),
    _d("ksyscall+", P.KPROBE, auto_attach=AutoAttach.KSYSCALL),
    _d("kretsyscall+", P.KPROBE, auto_attach=AutoAttach.KSYSCALL, retprobe=True),
    _d("usdt+", P.KPROBE, auto_attach=AutoAttach.USDT),
    _d("usdt.s+", P.KPROBE, sleepable=True, auto_attach=AutoAttach.USDT),
    _d("tc/ingress", P.SCHED_CLS, A.TCX_INGRESS),  # libbpf: an alias of tcx/ingress
    _d("tc/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _d("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS),
    _d("tcx/egress", P.SCHED_CLS, A.TCX_EGRESS),
    _d("tc", P.SCHED_CLS),
    _d("classifier", P.SCHED_CLS),
    _d("action", P.SCHED_ACT),
    _d("netkit/primary", P.SCHED_CLS, A.NETKIT_PRIMARY),
    _d("netkit/peer", P.SCHED_CLS, A.NETKIT_PEER),
    _d("tracepoint+", P.TRACEPOINT, auto_attach=_TP),
    _d("tp+", P.TRACEPOINT, auto_attach=_TP),
    _d("raw_tracepoint+", P.RAW_TRACEPOINT, auto_attach=_RTP),
    _d("raw_tp+", P.RAW_TRACEPOINT, auto_attach=_RTP),
    _d("raw_tracepoint.w+", P.RAW_TRACEPOINT_WRITABLE, auto_attach=_RTP),
    _d("raw_tp.w+", P.RAW_TRACEPOINT_WRITABLE, auto_attach=_RTP),
    _d("tp_btf+", P.TRACING, A.TRACE_RAW_TP, attach_btf=True, auto_attach=_TR),
    _d("fentry+", P.TRACING, A.TRACE_FENTRY, attach_btf=True, auto_attach=_TR),
    _d("fmod_ret+", P.TRACING, A.MODIFY_RETURN, attach_btf=True, auto_attach=_TR),
    _d("fexit+", P.TRACING, A.TRACE_FEXIT, attach_btf=True, auto_attach=_TR),
    _d("fentry.s+", P.TRACING, A.TRACE_FENTRY, attach_btf=True, sleepable=True,
       auto_attach=_TR),
    _d("fmod_ret.s+", P.TRACING, A.MODIFY_RETURN, attach_btf=True, sleepable=True,
       auto_attach=_TR),
    _d("fexit.s+", P.TRACING, A.TRACE_FEXIT, attach_btf=True, sleepable=True, auto_attach=_TR),
    _d("freplace+", P.EXT, attach_btf=True, auto_attach=_TR),
    _d("lsm+", P.LSM, A.LSM_MAC, attach_btf=True, auto_attach=AutoAttach.LSM),
    _d("lsm.s+", P.LSM, A.LSM_MAC, attach_btf=True, sleepable=True, auto_attach=AutoAttach.LSM),
    _d("lsm_cgroup+", P.LSM, A.LSM_CGROUP, attach_btf=True),
    _d("iter+", P.TRACING, A.TRACE_ITER, attach_btf=True, auto_attach=AutoAttach.ITER),
    _d("iter.s+", P.TRACING, A.TRACE_ITER, attach_btf=True, sleepable=True,
       auto_attach=AutoAttach.ITER),
    _d("syscall", P.SYSCALL, sleepable=True),
    _d("xdp.frags/devmap", P.XDP, A.XDP_DEVMAP, xdp_frags=True),
    _d("xdp/devmap", P.XDP, A.XDP_DEVMAP),
    _d("xdp.frags/cpumap", P.XDP, A.XDP_CPUMAP, xdp_frags=True),
    _d("xdp/cpumap", P.XDP, A.XDP_CPUMAP),
    _d("xdp.frags", P.XDP, A.XDP, xdp_frags=True),
    _d("xdp", P.XDP, A.XDP),
    _d("perf_event", P.PERF_EVENT),
    _d("lwt_in", P.LWT_IN),
    _d("lwt_out", P.LWT_OUT),
    _d("lwt_xmit", P.LWT_XMIT),
    _d("lwt_seg6local", P.LWT_SEG6LOCAL),
    _d("sockops", P.SOCK_OPS, A.CGROUP_SOCK_OPS),
    _d("sk_skb/stream_parser", P.SK_SKB, A.SK_SKB_STREAM_PARSER),
    _d("sk_skb/stream_verdict", P.SK_SKB, A.SK_SKB_STREAM_VERDICT),
    _d("sk_skb", P.SK_SKB),
    _d("sk_msg", P.SK_MSG, A.SK_MSG_VERDICT),
    _d("lirc_mode2", P.LIRC_MODE2, A.LIRC_MODE2),
    _d("flow_dissector", P.FLOW_DISSECTOR, A.FLOW_DISSECTOR),
    _d("cgroup_skb/ingress", P.CGROUP_SKB, A.CGROUP_INET_INGRESS),
    _d("cgroup_skb/egress", P.CGROUP_SKB, A.CGROUP_INET_EGRESS),
    _d("cgroup/skb", P.CGROUP_SKB),
    _d("cgroup/sock_create", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    _d("cgroup/sock_release", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_RELEASE),
    _d("cgroup/sock", P.CGROUP_SOCK, A.CGROUP_INET_SOCK_CREATE),
    _d("cgroup/post_bind4", P.CGROUP_SOCK, A.CGROUP_INET4_POST_BIND),
    _d("cgroup/post_bind6", P.CGROUP_SOCK, A.CGROUP_INET6_POST_BIND),
    _d("cgroup/bind4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_BIND),
    _d("cgroup/bind6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_BIND),
    _d("cgroup/connect4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_CONNECT),
    _d("cgroup/connect6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_CONNECT),
    _d("cgroup/connect_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_CONNECT),
    _d("cgroup/sendmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_SENDMSG),
    _d("cgroup/sendmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_SENDMSG),
    _d("cgroup/sendmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_SENDMSG),
    _d("cgroup/recvmsg4", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP4_RECVMSG),
    _d("cgroup/recvmsg6", P.CGROUP_SOCK_ADDR, A.CGROUP_UDP6_RECVMSG),
    _d("cgroup/recvmsg_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_RECVMSG),
    _d("cgroup/getpeername4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETPEERNAME),
    _d("cgroup/getpeername6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETPEERNAME),
    _d("cgroup/getpeername_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETPEERNAME),
    _d("cgroup/getsockname4", P.CGROUP_SOCK_ADDR, A.CGROUP_INET4_GETSOCKNAME),
    _d("cgroup/getsockname6", P.CGROUP_SOCK_ADDR, A.CGROUP_INET6_GETSOCKNAME),
    _d("cgroup/getsockname_unix", P.CGROUP_SOCK_ADDR, A.CGROUP_UNIX_GETSOCKNAME),
    _d("cgroup/sysctl", P.CGROUP_SYSCTL, A.CGROUP_SYSCTL),
    _d("cgroup/getsockopt", P.CGROUP_SOCKOPT, A.CGROUP_GETSOCKOPT),
    _d("cgroup/setsockopt", P.CGROUP_SOCKOPT, A.CGROUP_SETSOCKOPT),
    _d("cgroup/dev", P.CGROUP_DEVICE, A.CGROUP_DEVICE),
    _d("struct_ops+", P.STRUCT_OPS),
    _d("struct_ops.s+", P.STRUCT_OPS, sleepable=True),
    _d("sk_lookup", P.SK_LOOKUP, A.SK_LOOKUP),
    _d("netfilter", P.NETFILTER, A.NETFILTER),
)


STRUCT_OPS_SECTIONS = (".struct_ops", ".struct_ops.link")  # the struct_ops map tables

_registered: tuple[SectionDef, ...] = ()
_registering = threading.Lock()


def register_section(pattern: str, prog_type: P, attach_type: Optional[A] = None,
                     attach_fn: Optional[AttachFn] = None, *,
                     sleepable: bool = False) -> SectionDef:
    """Make SEC() names matching ``pattern`` (``+``/``/`` endings as in the table) load as
    ``prog_type`` with expected ``attach_type`` and auto-attach with ``attach_fn(program,
    extras)`` (None: attached in code). Matched before the built-in table, as libbpf's
    registered handlers are, so ``xdp/`` also takes ``xdp/devmap``. Returns the definition,
    the handle ``unregister_section`` takes; a pattern registered already is a UsageError."""
    global _registered
    if not pattern or pattern in ("+", "/"):
        raise UsageError(f"register_section: pattern {pattern!r} names no section prefix")
    d = SectionDef(pattern, prog_type, attach_type, sleepable=sleepable,
                   auto_attach=AutoAttach.CUSTOM if attach_fn is not None else None,
                   attach_fn=attach_fn)
    with _registering:
        if any(r.pattern == pattern for r in _registered):
            raise UsageError(f"register_section: SEC pattern {pattern!r} is registered "
                             "already; unregister_section() it first")
        _registered = (*_registered, d)
    return d


def unregister_section(definition: SectionDef) -> None:
    """Remove a definition ``register_section`` returned; UsageError when not registered."""
    global _registered
    with _registering:
        if not any(r is definition for r in _registered):
            raise UsageError(f"unregister_section: SEC pattern {definition.pattern!r} is not "
                             "registered")
        _registered = tuple(r for r in _registered if r is not definition)


def find_section(name: str) -> Optional[Section]:
    """The convention of program section ``name`` (registered ones first), or None when no
    entry matches."""
    for d in (*_registered, *SECTION_DEFS):
        extras = d.match(name)
        if extras is not None:
            return Section(name, d, extras)
    return None


def section(name: str, where: str = "") -> Section:
    """The convention of program section ``name``; an unknown name is an ObjectError."""
    found = find_section(name)
    if found is None:
        raise ObjectError(f"{where}{': ' if where else ''}unknown program section "
                          f"SEC({name!r}): it names no program type pybpf (or libbpf) knows; "
                          "see pybpf.elf.sections.SECTION_DEFS for the conventions, "
                          "or add the application's with register_section()")
    return found
