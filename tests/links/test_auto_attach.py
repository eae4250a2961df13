"""Attaching by section name (what a loader's auto-attach calls): the table's load specs and
real attachments for each family this kernel has."""
from __future__ import annotations

import pytest

from pybpf import features
from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.btf import Spec
from pybpf.btf import types as T
from pybpf.errors import UsageError
from pybpf.links import LinkGroup, btf_tracing
from pybpf.links.kprobe import syscall_function
from pybpf.links.sections import SECTIONS, attach, load_spec, section_def
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, ProgType
from tests.links.progs import count_per_tgid, run_children
from tests.links.test_iter import task_iter_insns


@pytest.mark.parametrize("section, prog_type, attach_type, sleepable", [
    ("kprobe/do_sys_openat2", ProgType.KPROBE, None, False),
    ("kretprobe.multi/vfs_*", ProgType.KPROBE, AttachType.TRACE_KPROBE_MULTI, False),
    ("uprobe.s//bin/bash:readline", ProgType.KPROBE, None, True),
    ("uretprobe.multi//bin/bash:read*", ProgType.KPROBE, AttachType.TRACE_UPROBE_MULTI, False),
    ("usdt//usr/bin/python3:python:gc__start", ProgType.KPROBE, None, False),
    ("tp/syscalls/sys_enter_execve", ProgType.TRACEPOINT, None, False),
    ("raw_tp/sys_enter", ProgType.RAW_TRACEPOINT, None, False),
    ("perf_event", ProgType.PERF_EVENT, None, False),
    ("freplace/verdict", ProgType.EXT, None, False),
])
def test_load_specs(section, prog_type, attach_type, sleepable):
    spec = load_spec(section)
    assert (spec.prog_type, spec.expected_attach_type, spec.btf_target, spec.sleepable) == \
        (prog_type, attach_type, None, sleepable)


@pytest.mark.parametrize("section, btf_name, attach_type", [
    ("tp_btf/sched_process_exec", "btf_trace_sched_process_exec", AttachType.TRACE_RAW_TP),
    ("fentry.s/do_sys_openat2", "do_sys_openat2", AttachType.TRACE_FENTRY),
    ("fmod_ret/security_task_setnice", "security_task_setnice", AttachType.MODIFY_RETURN),
    ("lsm/file_open", "bpf_lsm_file_open", AttachType.LSM_MAC),
    ("iter/task", "bpf_iter_task", AttachType.TRACE_ITER),
])
def test_btf_load_specs_resolve_the_hook(section, btf_name, attach_type):
    spec = load_spec(section)
    assert spec.expected_attach_type == attach_type
    assert spec.sleepable == (".s/" in section)
    kind = T.Typedef if btf_name.startswith("btf_trace_") else T.Func
    assert spec.btf_target.btf_id == Spec.vmlinux().find(btf_name, kind).id


def test_bad_sections():
    with pytest.raises(UsageError, match="unknown program kind 'kprob'; known: .*kprobe"):
        section_def("kprob/x")
    with pytest.raises(UsageError, match="fentry programs name their hook"):
        load_spec("fentry")
    with Program.load("tracepoint", assemble([mov64_imm(R0, 0), exit_()])) as prog:
        with pytest.raises(UsageError, match="expected CATEGORY/NAME"):
            attach(prog, "tracepoint/sys_enter_execve")
        with pytest.raises(UsageError, match="needs a target"):
            attach(prog, "tracepoint")
        with pytest.raises(UsageError, match="cannot be attached from the section name alone"):
            attach(prog, "perf_event")
        with pytest.raises(UsageError, match="expected PATH:FUNCTION"):
            attach(prog, "uprobe/readline")
        with pytest.raises(UsageError, match="expected PATH:PROVIDER:NAME"):
            attach(prog, "usdt//bin/true:gc")
    assert all(name == d.prefix for name, d in SECTIONS.items())


@pytest.mark.usefixtures("tracefs")
@pytest.mark.parametrize("section", ["tracepoint/syscalls/sys_enter_execve", "raw_tp/sched_process_exec",
                                     "tp_btf/sched_process_exec"])
def test_auto_attach_tracing(counts, section):
    spec = load_spec(section)
    insns = count_per_tgid(counts.fd)
    prog = (btf_tracing.load("tp_btf", spec.btf_target.name, insns) if spec.btf_target
            else Program.load(spec.prog_type, insns))
    with prog, attach(prog, section):
        pids = run_children(2)
        assert [counts.get(pid) for pid in pids] == [1, 1]


def test_auto_attach_probes(counts, probe_target):
    with Program.load("kprobe", count_per_tgid(counts.fd)) as prog:
        with attach(prog, f"uprobe/{probe_target}:pybpf_uprobe_target") as up, \
                attach(prog, f"usdt/{probe_target}:pybpf:plain") as group:
            assert up.info().prog_id == prog.info().id
            assert isinstance(group, LinkGroup)
            pids = run_children(1, [str(probe_target), "3"])
            assert counts.get(pids[0]) == 6
        if features.kprobes():
            with attach(prog, "ksyscall/execve"), attach(prog, f"kprobe/{syscall_function('execve')}+0"):
                pids = run_children(1)
                assert counts.get(pids[0]) == 2


def test_auto_attach_iterator():
    with btf_tracing.load("iter", "task", task_iter_insns()) as prog:
        with attach(prog, "iter/task") as link:
            assert link.read()
