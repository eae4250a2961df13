"""The probing mechanism, on the syscall layer only: each probe is a real tiny create, load,
link or query through ``pybpf.sys.commands``, cached for the process, answering a ``Support``.

The probes that need BTF (storage maps, iterator targets, BTF kinds, CO-RE by the kernel) are
in ``pybpf.btf.probes``; ``pybpf.features`` is the front that users ask, and nothing below it
imports it: maps, programs, links and the loader ask these modules.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import functools
import os
from typing import TYPE_CHECKING, Any, NamedTuple, Optional

from .. import caps
from ..errors import UnsupportedFeatureError
from . import commands
from .hooks import CGROUP_ATTACH_TYPES
from .host import cgroup2_mount, kernel_version_code
from .uapi import ENOTSUPP, AttachType, MapType, PerfSwId, PerfTypeId, ProgFlag, ProgType

if TYPE_CHECKING:
    from .helper_ids import Helper

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit


class Support(NamedTuple):
    """A probe's answer: ``ok``, and ``reason`` explaining a missing feature."""

    ok: bool
    reason: str = ""

    def __bool__(self) -> bool:
        return self.ok

    def require(self) -> None:
        """Raise UnsupportedFeatureError with the reason unless supported."""
        if not self.ok:
            raise UnsupportedFeatureError(self.reason)


def privileged() -> bool:
    """Does this process hold CAP_BPF or CAP_SYS_ADMIN (effective)?"""
    return not caps.missing()


TRACING_CAPS = ("CAP_PERFMON",)


def eperm(what: str, command: str, instead: str = "", needs: tuple[str, ...] = ()) -> Support:
    """``what`` answered EPERM by ``command``: missing capabilities (named) or, when they are
    held, the kernel's refusal, with ``instead`` the alternative."""
    lacking = caps.missing(needs)
    text = f"{what}: {command} gives EPERM: {caps.eperm_reason(needs)}"
    return Support(False, text + (f": {instead}" if instead and not lacking else ""))


def errname(err: int) -> str:
    return _errno.errorcode.get(err, "ENOTSUPP" if err == ENOTSUPP else str(err))


def create_map(**fields: Any) -> int:
    """Create and close a probe map; 0 or the errno."""
    ret = commands.map_create(**fields)
    if ret >= 0:
        os.close(ret)
        return 0
    return -ret


def load(prog_type: int, insns: bytes = RET0, expected_attach_type: int = 0,
          attach_btf_id: int = 0, log: Optional[ctypes.Array] = None, flags: int = 0) -> int:
    """Load and close a probe program; 0 or the errno."""
    ret = load_fd(prog_type, insns, expected_attach_type, attach_btf_id, log, flags)
    if ret >= 0:
        os.close(ret)
        return 0
    return -ret


def load_fd(prog_type: int, insns: bytes = RET0, expected_attach_type: int = 0,
             attach_btf_id: int = 0, log: Optional[ctypes.Array] = None, flags: int = 0) -> int:
    """Load a probe program: its fd (the caller closes it) or -errno."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(b"GPL")
    logged: dict[str, Any] = {} if log is None else {
        "log_level": 1, "log_size": len(log), "log_buf": ctypes.addressof(log)}
    ret, _ = commands.prog_load(prog_type=prog_type, insn_cnt=len(insns) // 8,
                                insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                                expected_attach_type=expected_attach_type,
                                attach_btf_id=attach_btf_id, prog_flags=flags, **logged)
    return ret


_PROG_ATTACH_FOR_PROBE = {
    ProgType.CGROUP_SOCK_ADDR: AttachType.CGROUP_INET4_CONNECT,
    ProgType.SK_LOOKUP: AttachType.SK_LOOKUP,
    ProgType.NETFILTER: AttachType.NETFILTER,
    ProgType.CGROUP_SOCKOPT: AttachType.CGROUP_GETSOCKOPT,
}


@functools.lru_cache(maxsize=None)
def prog_type(t: ProgType) -> Support:
    """Can a program of type ``t`` be loaded? (tracing kinds: see ``fentry``, ``lsm``)."""
    if t == ProgType.EXT:
        return freplace()
    if t in (ProgType.TRACING, ProgType.STRUCT_OPS):
        return fentry() if t == ProgType.TRACING else Support(True, "needs an attach target; not probed")
    if t == ProgType.LSM:
        return lsm()
    err = load(t, expected_attach_type=_PROG_ATTACH_FOR_PROBE.get(t, 0),
                flags=ProgFlag.SLEEPABLE if t == ProgType.SYSCALL else 0)
    name = t.name.lower()
    if err == 0:
        return Support(True)
    if err == _errno.EPERM:
        return eperm(f"program type {name}", "BPF_PROG_LOAD", needs=prog_caps(t))
    return Support(False, f"program type {name} is not supported by this kernel "
                          f"({os.uname().release}: BPF_PROG_LOAD gives {errname(err)})")


@functools.lru_cache(maxsize=None)
def helper(t: ProgType, h: Helper) -> Support:
    """May programs of type ``t`` call helper ``h``? (the verifier's answer, as libbpf probes)."""
    call = bytes([0x85, 0, 0, 0]) + int(h).to_bytes(4, "little")
    log = ctypes.create_string_buffer(64 * 1024)
    err = load(t, call + RET0, _PROG_ATTACH_FOR_PROBE.get(t, 0), log=log)
    text = log.value.decode(errors="replace")
    if err == 0 or ("invalid func " not in text and "unknown func " not in text
                    and "program of this type cannot use helper" not in text):
        if err in (_errno.EPERM, _errno.EINVAL) and not text:
            return Support(False, f"program type {t.name.lower()} could not be probed "
                                  f"({errname(err)})")
        return Support(True)
    return Support(False, f"helper bpf_{h.name} is not available to {t.name.lower()} programs "
                          "on this kernel")


@functools.lru_cache(maxsize=None)
def kprobes() -> Support:
    """kprobe/kretprobe attachment: the perf kprobe PMU or tracefs kprobe_events."""
    if os.path.exists("/sys/bus/event_source/devices/kprobe/type"):
        return Support(True)
    if any(os.path.exists(f"{d}/kprobe_events") for d in
           ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")):
        return Support(True, "legacy kprobe_events only")
    return Support(False, "kprobes are not available on this kernel (no kprobe PMU in "
                          "/sys/bus/event_source/devices and no kprobe_events: CONFIG_KPROBES is "
                          "off): use a tracepoint instead, e.g. syscalls/sys_enter_execve, or a "
                          "raw_tracepoint / tp_btf program")


@functools.lru_cache(maxsize=None)
def uprobes() -> Support:
    """uprobe/uretprobe attachment through the perf uprobe PMU."""
    if os.path.exists("/sys/bus/event_source/devices/uprobe/type"):
        return Support(True)
    return Support(False, "uprobes are not available on this kernel (no uprobe PMU: "
                          "CONFIG_UPROBE_EVENTS is off)")


def _multi_link(attach: AttachType, target: str, instead: str) -> Support:
    """A kprobe program linked with ``attach`` to a target that cannot exist: a kernel with
    the link type answers ESRCH/ENOENT/EBADF from target lookup, one without EINVAL or
    EOPNOTSUPP."""
    what = "kprobe_multi" if attach == AttachType.TRACE_KPROBE_MULTI else "uprobe_multi"
    prog = load_fd(ProgType.KPROBE, expected_attach_type=attach)
    if prog < 0:
        return Support(False, f"{what} links: kprobe programs cannot be loaded "
                              f"({errname(-prog)})")
    name = ctypes.create_string_buffer(target.encode())
    ptrs = (ctypes.c_uint64 * 1)(ctypes.addressof(name))
    offsets = (ctypes.c_uint64 * 1)(0)
    union = {"kprobe_multi": {"cnt": 1, "syms": ctypes.addressof(ptrs)}} \
        if attach == AttachType.TRACE_KPROBE_MULTI else \
        {"uprobe_multi": {"path": ctypes.addressof(name), "offsets": ctypes.addressof(offsets),
                          "cnt": 1}}
    try:
        ret = commands.link_create(prog_fd=prog, attach_type=attach, target=union)
    finally:
        os.close(prog)
    if ret >= 0:
        os.close(ret)
        return Support(True)
    if -ret in (_errno.EINVAL, _errno.EOPNOTSUPP, ENOTSUPP):
        return Support(False, f"{what} links are not supported by this kernel "
                              f"({os.uname().release}: BPF_LINK_CREATE gives {errname(-ret)}): "
                              f"{instead}")
    if -ret == _errno.EPERM:
        return eperm(f"{what} links", "BPF_LINK_CREATE", instead, TRACING_CAPS)
    return Support(True)


@functools.lru_cache(maxsize=None)
def kprobe_multi() -> Support:
    """kprobe_multi links (BPF_TRACE_KPROBE_MULTI: Linux 5.18+ built with CONFIG_FPROBE)."""
    return _multi_link(AttachType.TRACE_KPROBE_MULTI, "pybpf_no_such_function",
                       "they need Linux 5.18+ with CONFIG_FPROBE; attach one kprobe per "
                       "function (attach_kprobe), or use tracepoints")


@functools.lru_cache(maxsize=None)
def uprobe_multi() -> Support:
    """uprobe_multi links (BPF_TRACE_UPROBE_MULTI: Linux 6.6+)."""
    return _multi_link(AttachType.TRACE_UPROBE_MULTI, "/",
                       "they need Linux 6.6+; attach one uprobe per function (attach_uprobe)")


def _tracing_load(prog: ProgType, attach: int, what: str, instead: str) -> Support:
    # attach_btf_id 0 is never a valid target: a kernel that allows the program type answers
    # EINVAL from target validation; one whose policy refuses it answers EPERM first.
    err = load(prog, expected_attach_type=attach)
    if err == _errno.EINVAL:
        return Support(True)
    if err == _errno.EPERM:
        return eperm(f"{what} programs", "BPF_PROG_LOAD", instead, TRACING_CAPS)
    return Support(False, f"{what} programs: BPF_PROG_LOAD gives {errname(err)}: not supported "
                          f"by this kernel ({os.uname().release}): {instead}")


_PERFMON_TYPES = frozenset({ProgType.KPROBE, ProgType.TRACEPOINT, ProgType.PERF_EVENT,
                            ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE,
                            ProgType.TRACING, ProgType.LSM, ProgType.STRUCT_OPS, ProgType.EXT})
_NET_ADMIN_TYPES = frozenset({ProgType.SCHED_CLS, ProgType.SCHED_ACT, ProgType.XDP,
                              ProgType.LWT_IN, ProgType.LWT_OUT, ProgType.LWT_XMIT,
                              ProgType.LWT_SEG6LOCAL, ProgType.SK_SKB, ProgType.SK_MSG,
                              ProgType.FLOW_DISSECTOR, ProgType.CGROUP_DEVICE,
                              ProgType.CGROUP_SOCK, ProgType.CGROUP_SKB,
                              ProgType.CGROUP_SOCK_ADDR, ProgType.CGROUP_SOCKOPT,
                              ProgType.CGROUP_SYSCTL, ProgType.SOCK_OPS})


def prog_caps(t: int) -> tuple[str, ...]:
    """What a program type needs beyond CAP_BPF (the kernel's bpf_prog_load checks)."""
    if t in _PERFMON_TYPES:
        return TRACING_CAPS
    return ("CAP_NET_ADMIN",) if t in _NET_ADMIN_TYPES else ()


@functools.lru_cache(maxsize=None)
def tp_btf() -> Support:
    """tp_btf (BPF_PROG_TYPE_TRACING, BPF_TRACE_RAW_TP) programs: BTF-typed tracepoints."""
    return _tracing_load(ProgType.TRACING, AttachType.TRACE_RAW_TP, "tp_btf",
                         "use a raw_tracepoint program, or a tracepoint")


@functools.lru_cache(maxsize=None)
def fentry() -> Support:
    """fentry/fexit/fmod_ret (BPF_PROG_TYPE_TRACING) programs."""
    return _tracing_load(ProgType.TRACING, AttachType.TRACE_FENTRY, "fentry/fexit",
                         "use a tp_btf or raw_tracepoint program, or a tracepoint")


@functools.lru_cache(maxsize=None)
def freplace() -> Support:
    """freplace (BPF_PROG_TYPE_EXT) programs, which replace a global function of a program."""
    return _tracing_load(ProgType.EXT, 0, "freplace",
                         "keep the logic in the target program, or switch programs with a "
                         "prog_array and tail calls")


@functools.lru_cache(maxsize=None)
def lsm() -> Support:
    """BPF LSM programs (also needs ``bpf`` in the kernel's active LSM list)."""
    try:
        with open("/sys/kernel/security/lsm") as f:
            active = f.read().split(",")
    except OSError:
        active = None
    if active is not None and "bpf" not in active:
        return Support(False, "the BPF LSM is not active (boot with lsm=...,bpf): use a "
                              "tracepoint or cgroup program instead")
    return _tracing_load(ProgType.LSM, AttachType.LSM_MAC, "LSM",
                         "use cgroup programs (cgroup/connect4, cgroup/sock_create ...) or tracepoints")


@functools.lru_cache(maxsize=None)
def perf_link() -> Support:
    """BPF links for perf events (LINK_CREATE with BPF_PERF_EVENT, kernel >= 5.15).

    Probed for real: a perf_event program linked to a disabled software event.
    """
    from . import perf  # perf_event_open for this probe only (start-up of maps, programs)
    prog = load_fd(ProgType.PERF_EVENT)
    if prog < 0:
        return Support(False, f"perf_event programs cannot be loaded ({errname(-prog)})")
    try:
        attr = perf.PerfEventAttr(type=PerfTypeId.SOFTWARE, config=PerfSwId.CPU_CLOCK,
                                  sample_period=10**9, flags=perf.PerfAttrFlag.DISABLED)
        with perf.perf_event_open(attr, pid=0, cpu=-1, what="probe") as pfd:
            ret = commands.link_create(prog_fd=prog, target_fd=pfd.fd,
                                       attach_type=AttachType.PERF_EVENT)
    finally:
        os.close(prog)
    if ret >= 0:
        os.close(ret)
        return Support(True)
    return Support(False, f"this kernel cannot create perf-event BPF links (BPF_LINK_CREATE gives "
                          f"{errname(-ret)}; Linux 5.15 added them): PERF_EVENT_IOC_SET_BPF is "
                          "used instead")


def map_batch(t: int) -> Support:
    """Batch operations exist for hash, array, LPM and map-in-map types (kernel >= 5.6)."""
    name = t.name.lower() if isinstance(t, MapType) else f"type {t}"
    return Support(t in _BATCH_TYPES, f"{name} maps have no batch operations")


_BATCH_TYPES = frozenset({MapType.HASH, MapType.PERCPU_HASH, MapType.LRU_HASH,
                          MapType.LRU_PERCPU_HASH, MapType.ARRAY, MapType.PERCPU_ARRAY,
                          MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.LPM_TRIE})


def _query_errno(target: int, attach: AttachType) -> int:
    """0 or the errno of a BPF_PROG_QUERY of ``attach`` on ``target`` (read-only)."""
    ret, _ = commands.prog_query(target_fd=target, attach_type=attach)
    return -ret if ret < 0 else 0


@functools.lru_cache(maxsize=None)
def attach_type(t: AttachType) -> Support:
    """Does the kernel know the cgroup, netns or tcx attach type ``t``?

    Probed by BPF_PROG_QUERY of the hook (the cgroup2 root, this network namespace, lo):
    the kernel answers EINVAL for an attach type it does not know.
    """
    name = t.name.lower()
    if t in CGROUP_ATTACH_TYPES:
        try:
            fd = os.open(cgroup2_mount(), os.O_RDONLY | os.O_DIRECTORY)
        except (OSError, UnsupportedFeatureError) as e:
            return Support(False, f"cgroup attach type {name}: {e}")
        try:
            err = _query_errno(fd, t)
        finally:
            os.close(fd)
    elif t in (AttachType.SK_LOOKUP, AttachType.FLOW_DISSECTOR):
        fd = os.open("/proc/self/ns/net", os.O_RDONLY)
        try:
            err = _query_errno(fd, t)
        finally:
            os.close(fd)
    elif t in (AttachType.TCX_INGRESS, AttachType.TCX_EGRESS):
        err = _query_errno(1, t)  # lo is ifindex 1 in every network namespace
        if err:
            return Support(False, f"tcx hooks are not supported by this kernel "
                                  f"({os.uname().release}: BPF_PROG_QUERY gives {errname(err)}; "
                                  "Linux 6.6 added them): attach a sched_cls program with a "
                                  "clsact qdisc and a cls_bpf filter instead (pybpf.links.tc."
                                  "attach_tc)")
    else:
        return Support(True, f"attach type {name} is not probed")
    if err in (0, _errno.ENOENT):
        return Support(True)
    if err == _errno.EPERM:
        return eperm(f"attach type {name}", "BPF_PROG_QUERY", needs=("CAP_NET_ADMIN",))
    return Support(False, f"attach type {name} is not supported by this kernel "
                          f"({os.uname().release}: BPF_PROG_QUERY gives {errname(err)})")


def vmlinux_btf_has(name: str) -> Optional[bool]:
    """Is ``name`` a string of the kernel's BTF? None when the kernel has no BTF."""
    try:
        with open("/sys/kernel/btf/vmlinux", "rb") as f:
            return b"\0" + name.encode() + b"\0" in f.read()
    except OSError:
        return None


def _kernel_at_least(major: int, minor: int) -> bool:
    return kernel_version_code() >= (major << 16 | minor << 8)


def _link_kind(struct: str, since: tuple[int, int], what: str, instead: str) -> Support:
    """A kind of BPF link the kernel has when its BTF has ``struct`` (its link object), or,
    without BTF, when it is at least Linux ``since``."""
    has = vmlinux_btf_has(struct)
    if has or (has is None and _kernel_at_least(*since)):
        return Support(True)
    return Support(False, f"this kernel ({os.uname().release}) has no {what} BPF links (Linux "
                          f"{since[0]}.{since[1]} added them): {instead}")


@functools.lru_cache(maxsize=None)
def xdp_link() -> Support:
    """BPF links for XDP (LINK_CREATE with BPF_XDP, Linux 5.9): ``struct bpf_xdp_link`` in the
    kernel's BTF, or the kernel version where there is no BTF (no probe can tell an absent
    XDP link from a bad ifindex: both are EINVAL)."""
    return _link_kind("bpf_xdp_link", (5, 9), "XDP",
                      "XDP programs are attached by netlink (IFLA_XDP) instead")


@functools.lru_cache(maxsize=None)
def netfilter_link() -> Support:
    """Netfilter BPF programs and links (BPF_PROG_TYPE_NETFILTER, Linux 6.4)."""
    support = prog_type(ProgType.NETFILTER)
    if support:
        return support
    return Support(False, f"{support.reason}; netfilter BPF links need Linux 6.4 and "
                          "CONFIG_NETFILTER_BPF_LINK: count or drop packets with a tcx/tc or "
                          "XDP program instead")


@functools.lru_cache(maxsize=None)
def struct_ops_link() -> Support:
    """struct_ops maps registered through a BPF link (BPF_F_LINK, Linux 6.4): ``struct
    bpf_struct_ops_link`` in the kernel's BTF, or the kernel version where there is no BTF."""
    return _link_kind("bpf_struct_ops_link", (6, 4), "struct_ops",
                      "define the map in SEC(\".struct_ops\"), registered by a map update "
                      "instead")


@functools.lru_cache(maxsize=None)
def sockmap_link() -> Support:
    """BPF links for sk_skb/sk_msg programs on a sockmap (Linux 6.10): ``struct
    sockmap_link`` in the kernel's BTF, or the kernel version where there is no BTF."""
    return _link_kind("sockmap_link", (6, 10), "sockmap",
                      "attach with BPF_PROG_ATTACH instead (link=False)")
