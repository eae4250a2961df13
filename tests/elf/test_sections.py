"""SEC() conventions: pybpf's table against libbpf's own answers (libbpf_prog_type_by_name)."""
from __future__ import annotations

import ctypes
import ctypes.util

import pytest

from pybpf.elf.sections import SECTION_DEFS, AutoAttach, find_section, section
from pybpf.errors import ObjectError
from pybpf.sys.uapi import AttachType as A
from pybpf.sys.uapi import ProgType as P

NAMES = [
    "socket", "sk_reuseport", "sk_reuseport/migrate", "kprobe/do_sys_open", "kretprobe/x",
    "uprobe/bin:func", "uprobe.s/bin:f", "uretprobe/x", "uretprobe.s/x", "kprobe.multi/vfs_*",
    "kretprobe.multi/x", "ksyscall/openat",
    "kretsyscall/openat", "usdt/x", "tracepoint/sched/sched_switch", "tp/syscalls/sys_enter_x",
    "raw_tracepoint/sys_enter", "raw_tp/sys_enter", "raw_tracepoint.w/x", "raw_tp.w/x",
    "tp_btf/sched_switch", "fentry/do_unlinkat", "fexit/do_unlinkat", "fmod_ret/x",
    "fentry.s/x", "fexit.s/x", "fmod_ret.s/x", "freplace/x", "lsm/file_open", "lsm.s/bprm",
    "lsm_cgroup/socket_bind", "iter/task", "iter.s/task", "syscall", "xdp", "xdp.frags",
    "xdp/devmap", "xdp/cpumap", "xdp.frags/devmap", "xdp.frags/cpumap", "perf_event",
    "lwt_in", "lwt_out", "lwt_xmit", "lwt_seg6local", "sockops", "sk_skb",
    "sk_skb/stream_parser", "sk_skb/stream_verdict", "sk_msg", "lirc_mode2", "flow_dissector",
    "cgroup_skb/ingress", "cgroup_skb/egress", "cgroup/skb", "cgroup/sock",
    "cgroup/sock_create", "cgroup/sock_release", "cgroup/post_bind4", "cgroup/post_bind6",
    "cgroup/bind4", "cgroup/bind6", "cgroup/connect4", "cgroup/connect6", "cgroup/sendmsg4",
    "cgroup/sendmsg6", "cgroup/recvmsg4", "cgroup/recvmsg6", "cgroup/getpeername4",
    "cgroup/getpeername6", "cgroup/getsockname4", "cgroup/getsockname6", "cgroup/sysctl",
    "cgroup/getsockopt", "cgroup/setsockopt", "cgroup/dev", "struct_ops/x", "struct_ops",
    "sk_lookup", "tc", "classifier", "action",
]
NEWER_THAN_LIBBPF_1_1 = ["tc/ingress", "tc/egress", "tcx/ingress", "tcx/egress",
                         "netkit/primary", "netkit/peer", "cgroup/connect_unix",
                         "cgroup/sendmsg_unix", "cgroup/recvmsg_unix",
                         "cgroup/getpeername_unix", "cgroup/getsockname_unix",
                         "uprobe.multi.s/x", "kprobe.session/x", "usdt.s/x", "uprobe.multi/x",
                         "uretprobe.multi/x", "struct_ops.s/x", "netfilter"]


@pytest.fixture(scope="module")
def libbpf():
    path = ctypes.util.find_library("bpf")
    if path is None:
        pytest.fail("libbpf (the reference peer) is missing: apt-get install libbpf-dev")
    lib = ctypes.CDLL(path)
    lib.libbpf_prog_type_by_name.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int),
                                             ctypes.POINTER(ctypes.c_int)]
    return lib


@pytest.mark.parametrize("name", NAMES)
def test_matches_libbpf(libbpf, name: str) -> None:
    ptype, atype = ctypes.c_int(), ctypes.c_int()
    assert libbpf.libbpf_prog_type_by_name(name.encode(), ctypes.byref(ptype),
                                           ctypes.byref(atype)) == 0, name
    sec = section(name)
    assert int(sec.prog_type) == ptype.value
    assert int(sec.attach_type or 0) == atype.value


@pytest.mark.parametrize("name", NEWER_THAN_LIBBPF_1_1)
def test_newer_sections(name: str) -> None:
    sec = section(name)
    assert sec.prog_type in (P.SCHED_CLS, P.CGROUP_SOCK_ADDR, P.KPROBE, P.STRUCT_OPS,
                             P.NETFILTER)


@pytest.mark.parametrize("name, ptype, atype, sleepable, target, kind", [
    ("tracepoint/sched/sched_switch", P.TRACEPOINT, None, False, "sched/sched_switch",
     AutoAttach.TRACEPOINT),
    ("tp", P.TRACEPOINT, None, False, "", AutoAttach.TRACEPOINT),
    ("raw_tp/sys_enter", P.RAW_TRACEPOINT, None, False, "sys_enter", AutoAttach.RAW_TRACEPOINT),
    ("uprobe.s//bin/true:main", P.KPROBE, None, True, "/bin/true:main", AutoAttach.UPROBE),
    ("kprobe/do_sys_openat2", P.KPROBE, None, False, "do_sys_openat2", AutoAttach.KPROBE),
    ("kretprobe.multi/vfs_*", P.KPROBE, A.TRACE_KPROBE_MULTI, False, "vfs_*",
     AutoAttach.KPROBE_MULTI),
    ("uretprobe.multi//bin/bash:read*", P.KPROBE, A.TRACE_UPROBE_MULTI, False,
     "/bin/bash:read*", AutoAttach.UPROBE_MULTI),
    ("usdt//usr/bin/python3:python:gc__start", P.KPROBE, None, False,
     "/usr/bin/python3:python:gc__start", AutoAttach.USDT),
    ("perf_event", P.PERF_EVENT, None, False, "", None),
    ("freplace/verdict", P.EXT, None, False, "verdict", AutoAttach.TRACING),
    ("fentry.s/do_unlinkat", P.TRACING, A.TRACE_FENTRY, True, "do_unlinkat", AutoAttach.TRACING),
    ("lsm.s/file_open", P.LSM, A.LSM_MAC, True, "file_open", AutoAttach.LSM),
    ("iter/bpf_map", P.TRACING, A.TRACE_ITER, False, "bpf_map", AutoAttach.ITER),
    ("tcx/ingress", P.SCHED_CLS, A.TCX_INGRESS, False, "", None),
    ("xdp.frags", P.XDP, A.XDP, False, "", None),
    ("syscall", P.SYSCALL, None, True, "", None),
])
def test_attributes(name, ptype, atype, sleepable, target, kind) -> None:
    sec = section(name)
    assert (sec.prog_type, sec.attach_type, sec.definition.sleepable, sec.target,
            sec.definition.auto_attach) == (ptype, atype, sleepable, target, kind)


def test_frags_flag() -> None:
    assert section("xdp.frags/devmap").definition.xdp_frags
    assert not section("xdp/devmap").definition.xdp_frags


@pytest.mark.parametrize("name", ["xdp/foo", "tracepointx", "kprobex/y", "nonsense",
                                  "cgroup/unknown", "sk_reuseport/other", ""])
def test_unknown_is_a_clear_error(name: str) -> None:
    assert find_section(name) is None
    with pytest.raises(ObjectError, match="unknown program section") as e:
        section(name, "x.o")
    assert repr(name) in str(e.value)


def test_exact_and_plus_patterns() -> None:
    assert section("kprobe").target == ""  # "kprobe+" matches the bare name too
    assert find_section("xdp/devmapx") is None
    assert section("sk_skb/stream_parser").attach_type == A.SK_SKB_STREAM_PARSER
    assert all(d.pattern for d in SECTION_DEFS)
