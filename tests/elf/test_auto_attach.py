"""Programs by section name on the ELF path: the BTF hooks the loader resolves for them, clear
errors for sections that do not say where to attach, and real auto-attachment
(``load(ObjectSpec(...))`` + ``program.attach()``) of uprobes, USDT, iterators and, where the
kernel has them, kprobes. Tracepoints, raw tracepoints and tp_btf: test_load.py; fentry/fexit:
test_load.py; the table itself: test_sections.py."""
from __future__ import annotations

import os
import struct
import subprocess
from pathlib import Path

import pytest

from pybpf import features
from pybpf.btf import Spec
from pybpf.btf import types as T
from pybpf.elf import ObjectSpec, load
from pybpf.elf.loader import attach_btf_target
from pybpf.elf.sections import SECTION_DEFS, section
from pybpf.errors import ObjectError, UnsupportedFeatureError, UsageError
from pybpf.links import LinkGroup
from pybpf.links.btf_tracing import HOOKS
from pybpf.links.kprobe import syscall_function
from pybpf.sys.uapi import AttachType as A
from pybpf.sys.uapi import ProgType as P
from tests.conftest import BPF_SRC, MULTIARCH_INCLUDE
from tests.links.conftest import probe_target  # noqa: F401 (fixture)
from tests.links.progs import run_children

SOURCE = Path(__file__).with_name("auto_attach.c")


def build(clang: str, out: Path, *defines: str) -> ObjectSpec:
    """tests/elf/auto_attach.c compiled with ``defines`` (``-DNAME=VALUE``), parsed."""
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", str(BPF_SRC), "-I",
                    MULTIARCH_INCLUDE, *defines, "-c", str(SOURCE), "-o", str(out)], check=True)
    return ObjectSpec.from_file(out)


@pytest.fixture(scope="module")
def auto_attach_spec(clang, probe_target, tmp_path_factory) -> ObjectSpec:  # noqa: F811
    """The object whose sections name the probe target, execve and the task iterator."""
    out = tmp_path_factory.mktemp("auto_attach") / "auto_attach.o"
    return build(clang, out, f'-DTARGET="{probe_target}"',
                 f'-DEXECVE="{syscall_function("execve")}"')


def only(spec: ObjectSpec, *names: str) -> ObjectSpec:
    """``spec`` with only programs ``names`` loading."""
    for name, ps in spec.programs.items():
        ps.autoload = name in names
    return spec


def test_every_btf_section_has_its_hook():
    """The SEC() table and btf_tracing.HOOKS agree on the program and attach type."""
    defs = [d for d in SECTION_DEFS if d.attach_btf and d.prog_type != P.EXT]
    assert {d.btf_hook for d in defs} == set(HOOKS)
    for d in defs:
        hook = HOOKS[d.btf_hook]
        assert (hook.prog_type, hook.attach_type) == (d.prog_type, d.attach_type), d.pattern


@pytest.mark.parametrize("name, btf_name, kind, attach_type, sleepable", [
    ("tp_btf/sched_process_exec", "btf_trace_sched_process_exec", T.Typedef, A.TRACE_RAW_TP,
     False),
    ("fentry.s/do_sys_openat2", "do_sys_openat2", T.Func, A.TRACE_FENTRY, True),
    ("fmod_ret/security_task_setnice", "security_task_setnice", T.Func, A.MODIFY_RETURN, False),
    ("lsm/file_open", "bpf_lsm_file_open", T.Func, A.LSM_MAC, False),
    ("lsm_cgroup/socket_bind", "bpf_lsm_socket_bind", T.Func, A.LSM_CGROUP, False),
    ("iter/task", "bpf_iter_task", T.Func, A.TRACE_ITER, False),
])
def test_btf_hooks_resolve_in_vmlinux(name, btf_name, kind, attach_type, sleepable):
    sec = section(name)
    assert (sec.attach_type, sec.definition.sleepable) == (attach_type, sleepable)
    target = attach_btf_target(sec, "test")
    assert target is not None and target.module == ""
    assert target.btf_id == Spec.vmlinux().find(btf_name, kind).id


@pytest.mark.parametrize("name", ["kprobe/do_sys_openat2", "uprobe.s//bin/bash:readline",
                                  "tp/syscalls/sys_enter_execve", "raw_tp/sys_enter",
                                  "perf_event", "xdp"])
def test_sections_without_a_btf_hook(name):
    assert attach_btf_target(section(name), "test") is None


def test_btf_hook_errors():
    with pytest.raises(ObjectError, match=r"prog: SEC\('fentry'\) needs a target after '/'"):
        attach_btf_target(section("fentry"), "prog")
    with pytest.raises(ObjectError, match="prog: 'btf_trace_pybpf_no_such_tp' \\(Typedef\\) is "
                                          "not in the kernel's BTF"):
        attach_btf_target(section("tp_btf/pybpf_no_such_tp"), "prog")
    with pytest.raises(ObjectError, match="'bpf_lsm_pybpf_nope' \\(Func\\) is not in"):
        attach_btf_target(section("lsm.s/pybpf_nope"), "prog")
    with pytest.raises(UsageError, match="freplace programs replace a function of another"):
        attach_btf_target(section("freplace/verdict"), "prog")


def test_sections_that_do_not_say_where_to_attach(clang, tmp_path):
    spec = build(clang, tmp_path / "bad.o", "-DBAD")
    with load(spec) as obj:
        p = obj.programs
        for prog, match in [
            ("no_category", r"SEC\('tracepoint/sys_enter_execve'\) should read "
                            r"tracepoint/<category>/<name>"),
            ("no_binary", r"SEC\('uprobe/readline'\) should read "
                          r"uprobe/<binary>:<function>\[\+offset\]"),
            ("no_usdt_name", r"SEC\('usdt//bin/true:gc'\) should read "
                             r"usdt/<binary>:<provider>:<name>"),
            ("bare_tracepoint", r"SEC\('tracepoint'\) does not say where to attach"),
            ("on_perf_event", r"SEC\('perf_event'\) does not say where to attach"),
        ]:
            with pytest.raises(UsageError, match=match) as e:
                p[prog].attach()
            assert str(e.value).startswith(p[prog].describe())
    with load(only(spec, "bare_tracepoint", "on_perf_event")) as obj:
        assert obj.attach_all() == []  # attach_all skips what names no target


def test_uprobe_and_usdt(auto_attach_spec, probe_target):  # noqa: F811
    with load(only(auto_attach_spec, "on_uprobe", "on_usdt")) as obj:
        counts = obj.maps["counts"]
        with obj.programs["on_uprobe"].attach() as up, \
                obj.programs["on_usdt"].attach() as group:
            assert up.info().prog_id == obj.programs["on_uprobe"].id
            assert isinstance(group, LinkGroup)
            pids = run_children(1, [str(probe_target), "3"])
            assert len(pids) == 1
            assert counts.get(pids[0]) == 6
        pids = run_children(1, [str(probe_target), "3"])  # detached: no more hits
        assert counts.get(pids[0]) is None


def test_task_iterator(auto_attach_spec):
    with load(only(auto_attach_spec, "dump_task")) as obj:
        with obj.programs["dump_task"].attach() as link:
            out = link.read()
    ids = set(struct.iter_unpack("=II", out))
    assert (os.getpid(), os.getpid()) in ids  # the main thread: tgid == pid


def _kprobe_counts(spec: ObjectSpec) -> int:
    with load(only(spec, "on_ksyscall", "on_kprobe")) as obj:
        with obj.programs["on_ksyscall"].attach(), obj.programs["on_kprobe"].attach():
            pids = run_children(1)
        return int(obj.maps["counts"].get(pids[0], 0))  # u32 -> u64 by its BTF types


def test_kprobe_sections_or_the_reason_they_cannot_attach(auto_attach_spec):
    support = features.kprobes()
    if support:
        assert _kprobe_counts(auto_attach_spec) == 2
        return
    with load(only(auto_attach_spec, "on_ksyscall", "on_kprobe")) as obj:
        for name in ("on_ksyscall", "on_kprobe"):
            with pytest.raises(UnsupportedFeatureError,
                               match=r"kprobes are not available on this kernel .*CONFIG_KPROBES"):
                obj.programs[name].attach()


@pytest.mark.kernel("kprobe")
def test_kprobe_sections_attach_in_vm(auto_attach_spec):
    assert _kprobe_counts(auto_attach_spec) == 2
