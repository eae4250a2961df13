"""pybpf.compile: clang with the right flags, the cached vmlinux.h, and clear errors."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

import pybpf
from pybpf.btf import Spec, types as T
from pybpf.btf.encode import encode
from pybpf.cache import cache_dir
from pybpf.compile import target_arch, vmlinux_header
from pybpf.errors import CompileError, ToolchainError, UsageError
from pybpf.programs import Program

SOCKET_FILTER = r'''
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("socket")
int answer(struct __sk_buff *skb)
{
	return ANSWER + 1;
}

char LICENSE[] SEC("license") = "GPL";
'''

CORE = r'''
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>

SEC("tp_btf/sched_process_exec")
int on_exec(u64 *ctx)
{
	struct task_struct *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, real_parent, tgid);
}

char LICENSE[] SEC("license") = "GPL";
'''

KFUNCS = r'''
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p)
{
	struct task_struct *t = bpf_task_acquire(p);
	int pid;

	if (!t)
		return 0;
	pid = t->pid;
	bpf_task_release(t);
	return pid;
}

char LICENSE[] SEC("license") = "GPL";
'''

CONFIG_MAP = r'''
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16);
	__type(key, u32);
	__type(value, u64);
} config SEC(".maps");

SEC("tp/syscalls/sys_enter_execve")
int on_execve(void *ctx)
{
	u32 key = 0;
	u64 *value = bpf_map_lookup_elem(&config, &key);
	return value ? *value : 0;
}

char LICENSE[] SEC("license") = "GPL";
'''


def sections(obj: Path) -> dict[str, bytes]:
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        assert elf["e_machine"] == "EM_BPF"
        return {s.name: s.data() for s in elf.iter_sections() if s.name}


def test_without_vmlinux_loads_and_runs(tmp_path):
    obj = pybpf.compile(SOCKET_FILTER, tmp_path / "answer.o", vmlinux=False,
                        defines={"ANSWER": 41})
    assert obj == tmp_path / "answer.o"
    secs = sections(obj)
    with Program.load("socket_filter", secs["socket"], name="answer") as prog:
        assert prog.test_run(bytes(64)).retval == 42  # the define reached the program


def test_with_vmlinux_from_a_path(tmp_path):
    src = tmp_path / "core.bpf.c"
    src.write_text(CORE)
    obj = pybpf.compile(src)
    assert obj == tmp_path / "core.bpf.o"
    btf = Spec.parse(sections(obj)[".BTF"])
    ours, kernel = btf.find("task_struct", T.Struct), Spec.vmlinux().find("task_struct", T.Struct)
    assert ours.size == kernel.size
    assert ours.member("tgid").offset == kernel.member("tgid").offset
    assert ".BTF.ext" in sections(obj)  # CO-RE relocations were recorded


def test_kfunc_program_compiles_and_loads(tmp_path):
    """vmlinux.h declares the kernel's kfuncs: a program calls them and pybpf loads it."""
    obj = pybpf.compile(KFUNCS, tmp_path / "kfuncs.o")
    with pybpf.load(obj) as coll:
        prog = coll.programs["on_exec"]
        assert prog.fd >= 0 and prog.info().name == "on_exec"


def test_source_text_default_output():
    obj = pybpf.compile("int x;\nint get(void) { return x; }\n", vmlinux=False)
    assert obj.parent == cache_dir() / "objects" and obj.suffix == ".o"
    assert ".text" in sections(obj)


def test_map_named_config_with_reserved(tmp_path):
    with pytest.raises(CompileError, match="redefinition of 'config'"):
        pybpf.compile(CONFIG_MAP, tmp_path / "clash.o")
    obj = pybpf.compile(CONFIG_MAP, tmp_path / "config.o", reserved=("config",))
    btf = Spec.parse(sections(obj)[".BTF"])
    maps = btf.find(".maps", T.Datasec)
    assert [v.type.name for v in maps.vars] == ["config"]
    header = vmlinux_header(reserved=["config"]).read_text()
    assert "typedef struct config_s config___2;" in header


def test_compile_error_carries_clang_stderr(tmp_path):
    with pytest.raises(CompileError) as info:
        pybpf.compile("int f(void)\n{\n\treturn nope;\n}\n", tmp_path / "bad.o", vmlinux=False)
    err = info.value
    assert "use of undeclared identifier 'nope'" in err.stderr
    assert "program.c:3:" in err.stderr                 # clang's location, line 3
    assert "use of undeclared identifier 'nope'" in str(err)
    assert Path(err.command[0]).name.startswith("clang") and "-target" in err.command
    assert not (tmp_path / "bad.o").exists()


def test_missing_clang(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH without clang
    with pytest.raises(ToolchainError, match="apt-get install clang"):
        pybpf.compile(SOCKET_FILTER, tmp_path / "x.o", vmlinux=False)


def test_missing_libbpf_header(tmp_path):
    with pytest.raises(ToolchainError, match="apt-get install libbpf-dev") as info:
        pybpf.compile("#include <bpf/pybpf_no_such_header.h>\n", tmp_path / "x.o",
                      vmlinux=False)
    assert "bpf/pybpf_no_such_header.h" in str(info.value)


def test_missing_source_file(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        pybpf.compile(tmp_path / "absent.c")


def test_vmlinux_header_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    btf = tmp_path / "kernel.btf"
    u32 = T.Int("unsigned int", 4)
    btf.write_bytes(encode([T.Struct("first", 4, [T.Member("a", u32, 0)])]))
    header = vmlinux_header(btf)
    assert header.parent.parent == tmp_path / "cache" / "pybpf" / "vmlinux"
    assert header.name == "vmlinux.h" and header.parent.name.startswith("kernel.btf-")
    assert "struct first {" in header.read_text()
    before = header.stat()
    assert vmlinux_header(btf) == header                   # reused, not rewritten
    assert header.stat().st_mtime_ns == before.st_mtime_ns and \
        header.stat().st_ino == before.st_ino
    btf.write_bytes(encode([T.Struct("second", 4, [T.Member("b", u32, 0)])]))
    changed = vmlinux_header(btf)                          # the BTF changed: dumped again
    assert changed != header and "struct second {" in changed.read_text()
    assert "struct first {" in header.read_text()          # the old one is left alone
    assert vmlinux_header(btf, reserved=["x"]) not in (header, changed)
    # the running kernel's: named by release, used by compile
    kernel = vmlinux_header()
    assert kernel.parent.name.startswith(os.uname().release + "-")
    assert "struct task_struct {" in kernel.read_text()
    assert vmlinux_header() == kernel


def test_target_arch():
    assert target_arch("x86_64") == "x86" and target_arch("aarch64") == "arm64"
    assert target_arch("s390x") == "s390"
    with pytest.raises(ToolchainError, match="unknown machine"):
        target_arch("pdp11")


def test_import_is_lazy():
    code = ("import sys, pybpf\n"
            "assert 'pybpf.compile' not in sys.modules and 'pybpf.btf' not in sys.modules\n"
            "assert callable(pybpf.compile) and pybpf.compile.vmlinux_header\n"
            "from pybpf.compile import compile\n"
            "assert callable(pybpf.compile)\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unwritable_cache_is_a_clear_error(monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")  # the cache directory cannot be made under a file
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    btf = tmp_path / "kernel.btf"
    btf.write_bytes(encode([T.Int("int", 4, T.INT_SIGNED)]))
    with pytest.raises(ToolchainError, match="cannot write vmlinux.h to pybpf's cache"):
        vmlinux_header(btf)
