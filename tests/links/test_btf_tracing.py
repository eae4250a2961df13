"""BTF-typed tracing: tp_btf on the host; fentry, fexit, fmod_ret, LSM and freplace where the
kernel allows them (the VM), with the clear refusal on the host."""
from __future__ import annotations

import errno
import os

import pytest

from pybpf import features
from pybpf.asm import R0, R1, assemble, call, call_subprog, exit_, jne_imm, label, mov64_imm, rsh64_imm
from pybpf.btf import BTF, Spec
from pybpf.btf import types as T
from pybpf.btf.encode import encode
from pybpf.btf.ext import FuncInfo, encode_func_info
from pybpf.errors import UnsupportedFeatureError, UsageError
from pybpf.links import btf_tracing
from pybpf.links.kprobe import syscall_function
from pybpf.programs import Program, kernel_version_code
from pybpf.sys import trace
from pybpf.sys.uapi import AttachType, LinkType
from tests.links.progs import count_per_tgid, run_children


def deny_pid(pid: int, retval: int = -errno.EPERM) -> bytes:
    """Return ``retval`` in process ``pid``, 0 elsewhere (an LSM or fmod_ret verdict)."""
    return assemble([
        call("get_current_pid_tgid"), rsh64_imm(R0, 32),
        jne_imm(R0, pid, "allow"),
        mov64_imm(R0, retval), exit_(),
        label("allow"), mov64_imm(R0, 0), exit_(),
    ])


def test_tp_btf_counts_each_exec(counts):
    with btf_tracing.load("tp_btf", "sched_process_exec", count_per_tgid(counts.fd),
                          name="tpbtf_count") as prog:
        with btf_tracing.attach(prog) as link:
            pids = run_children(3)
            assert [counts.get(pid) for pid in pids] == [1] * 3
            info = link.info()
            assert info.type == LinkType.RAW_TRACEPOINT and info.prog_id == prog.info().id
            assert info.details["tp_name"] == "sched_process_exec"
        pids = run_children(2)
        assert all(pid not in counts for pid in pids)


def test_unknown_hooks_are_clear_errors(counts):
    with pytest.raises(UsageError, match=r"no typedef btf_trace_no_such_tp in the BTF of vmlinux "
                                         r"or any module \(tracepoint names"):
        btf_tracing.find_target("tp_btf", "no_such_tp")
    with pytest.raises(UsageError, match="unknown BTF hook kind 'kprobe'"):
        btf_tracing.find_target("kprobe", "x")
    with btf_tracing.load("tp_btf", "sched_process_exec", count_per_tgid(counts.fd)) as prog:
        prog.expected_attach_type = None  # as when opened by id: the kernel does not say
        with pytest.raises(UsageError, match="say its attach type"):
            btf_tracing.attach(prog)


@pytest.mark.skipif(bool(features.fentry()), reason="this kernel allows fentry")
@pytest.mark.parametrize("kind", ["fentry", "fexit", "fmod_ret"])
def test_refused_fentry_is_a_clear_error(counts, kind):
    with pytest.raises(UnsupportedFeatureError,
                       match=rf"{kind} program for {syscall_function('getpgid')}: fentry/fexit "
                             r"programs: BPF_PROG_LOAD gives \w+: .*use a tp_btf or raw_tracepoint "
                             r"program"):
        btf_tracing.load(kind, syscall_function("getpgid"), count_per_tgid(counts.fd))


@pytest.mark.skipif(bool(features.lsm()), reason="this kernel allows BPF LSM programs")
def test_refused_lsm_is_a_clear_error():
    with pytest.raises(UnsupportedFeatureError, match="LSM .*use cgroup programs"):
        btf_tracing.load("lsm", "task_setnice", deny_pid(os.getpid()))


@pytest.mark.kernel("fentry")
def test_fentry_and_fexit_count_each_execve(counts):
    execve = syscall_function("execve")
    with btf_tracing.load("fentry", execve, count_per_tgid(counts.fd), name="fe_count") as fe, \
            btf_tracing.load("fexit", execve, count_per_tgid(counts.fd), name="fx_count") as fx:
        with trace.tracing([]) as calls:
            l1 = btf_tracing.attach(fe)
        # LINK_CREATE knows tracing programs since 5.13; before, libbpf's fallback
        assert calls[-1].startswith("bpf(BPF_RAW_TRACEPOINT_OPEN" if kernel_version_code() <
                                    0x050d00 else "bpf(BPF_LINK_CREATE"), calls
        with l1, btf_tracing.attach(fx) as l2:
            pids = run_children(3)
            assert [counts.get(pid) for pid in pids] == [2] * 3
            if l1.info().type == LinkType.TRACING:  # 5.10: a raw tracepoint link instead
                assert l1.info().details["attach_type"] == AttachType.TRACE_FENTRY
                assert l2.info().details["target_btf_id"] == fx.info().attach_btf_id
        pids = run_children(2)
        assert all(pid not in counts for pid in pids)


def renice_self() -> None:
    """setpriority(2) to the current value: it passes security_task_setnice()."""
    os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0))


@pytest.mark.kernel("fentry")
def test_fmod_ret_overrides_a_return_value():
    """fmod_ret may change what security_* functions (and error-injectable ones) return."""
    with btf_tracing.load("fmod_ret", "security_task_setnice", deny_pid(os.getpid()),
                          name="fmr_deny") as prog:
        with btf_tracing.attach(prog):
            with pytest.raises(PermissionError):
                renice_self()
        renice_self()


@pytest.mark.kernel("lsm")
def test_lsm_denies_and_stops_denying_when_detached():
    with btf_tracing.load("lsm", "task_setnice", deny_pid(os.getpid()), name="lsm_nice") as prog:
        with btf_tracing.attach(prog) as link:
            with pytest.raises(PermissionError):
                renice_self()
            if link.info().type == LinkType.TRACING:
                assert link.info().details["attach_type"] == AttachType.LSM_MAC
        renice_self()


def _btf_program(funcs: list[tuple[int, T.Func]]) -> tuple[BTF, bytes]:
    """BTF holding ``funcs`` (and what they refer to), and func_info for their offsets."""
    blob = encode([f for _, f in funcs])
    spec = Spec.parse(blob)
    infos = [FuncInfo(off, spec.find(f.name, T.Func).id) for off, f in funcs]
    return BTF.load(blob, "freplace test"), encode_func_info(infos)


def _freplace_pair():
    """An XDP program whose global function ``verdict(int)`` returns XDP_PASS, and the BTF of
    a replacement with the same prototype."""
    int_t = T.Int("int", 4, T.INT_SIGNED)
    proto = T.FuncProto(int_t, [T.FuncParam("x", int_t)])
    ctx_proto = T.FuncProto(int_t, [T.FuncParam("ctx", T.Pointer(T.Fwd("xdp_md")))])
    target_btf, target_info = _btf_program([
        (0, T.Func("entry", ctx_proto, T.LINKAGE_STATIC)),
        (3, T.Func("verdict", proto, T.LINKAGE_GLOBAL))])
    target_insns = assemble([mov64_imm(R1, 7), call_subprog("verdict"), exit_(),
                             label("verdict"), mov64_imm(R0, 2), exit_()])
    ext_btf, ext_info = _btf_program([(0, T.Func("new_verdict", proto, T.LINKAGE_GLOBAL))])
    return target_btf, target_info, target_insns, ext_btf, ext_info


def test_freplace():
    target_btf, target_info, target_insns, ext_btf, ext_info = _freplace_pair()
    with target_btf, ext_btf, Program.load("xdp", target_insns, name="fr_target",
                                           btf=target_btf, func_info=target_info) as target:
        assert target.test_run(bytes(64)).retval == 2  # XDP_PASS from verdict()
        assert btf_tracing.function_btf_id(target, "verdict") > 0
        with pytest.raises(UsageError, match="has no function 'nope' in its BTF"):
            btf_tracing.function_btf_id(target, "nope")
        new = assemble([mov64_imm(R0, 1), exit_()])  # XDP_DROP
        if not features.freplace():
            with pytest.raises(UnsupportedFeatureError,
                               match="freplace programs: BPF_PROG_LOAD gives .*prog_array"):
                btf_tracing.load_freplace(target, "verdict", new)
            pytest.skip(features.freplace().reason)
        with btf_tracing.load_freplace(target, "verdict", new, name="fr_new", btf=ext_btf,
                                       func_info=ext_info) as ext:
            with btf_tracing.attach(ext):
                assert target.test_run(bytes(64)).retval == 1
            assert target.test_run(bytes(64)).retval == 2
