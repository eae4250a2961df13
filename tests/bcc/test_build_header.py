"""A BCC program's own runtime header: the kernel types it uses instead of the whole vmlinux.h,
so a new program (or an empty cache) costs one syntax-tree dump and one compile, with no
vmlinux.h dump and no precompiled header; kernel types the header lacked at first are added
from clang's diagnostics."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from pybpf.btf import types as T
from pybpf.btf.cdump import dump_c, names_index
from pybpf.btf.spec import Spec

from .conftest import EXAMPLES, RUNNER


def _compiler_log(tmp_path: Path, clang: str) -> tuple[Path, Path]:
    """A compiler wrapper (for PYBPF_CC) logging each command line, and its log."""
    log = tmp_path / "clang.log"
    wrapper = tmp_path / "clang-logged"
    wrapper.write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {clang} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, log


def _runs(log: Path) -> list[str]:
    return log.read_text().splitlines() if log.exists() else []


def test_new_program_runs_the_compiler_twice_and_a_cached_one_never(tmp_path, clang):
    """exec_greeter (a kprobe on execve: on a kernel without kprobes, its syscall tracepoint
    form, translated again) with an empty cache: one -ast-dump and one compile, no vmlinux.h
    dumped, no runtime precompiled; run again, no compiler at all."""
    wrapper, log = _compiler_log(tmp_path, clang)
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYBPF_CC=str(wrapper))
    cmd = [*RUNNER, str(EXAMPLES / "exec_greeter.py"), "--count", "1", "--run", "/bin/true"]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert " Hey root!" in res.stdout
    runs = _runs(log)   # (the object compiled while the syntax tree is analysed)
    assert len(runs) == 2 and sum("-ast-dump=json" in r for r in runs) == 1, runs
    assert sum(" -c " in r for r in runs) == 1
    cache = tmp_path / "cache" / "pybpf"
    assert not (cache / "vmlinux").exists() and not (cache / "bcc" / "runtime").exists()
    headers = list((cache / "bcc" / "headers").iterdir())
    assert len(headers) == 1 and headers[0].stat().st_size < 200_000
    log.unlink()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _runs(log) == []


MM_PROGRAM = r"""
#include <linux/sched.h>
BPF_HASH(config, u32, u64);
int prog(struct pt_regs *ctx) {
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    u64 start = task->mm->arg_start;
    u32 key = TASK_COMM_LEN;
    config.update(&key, &start);
    return 0;
}
"""


def test_the_header_defines_what_the_program_uses(tmp_path):
    """The header defines the structs the program names and those it reaches through a
    member it names (task->mm), the enums of its constants; other structs are not defined;
    the map called ``config`` does not clash with a kernel name."""
    from pybpf.bcc.build import build
    from pybpf.bcc.dialect import translate
    from pybpf.bcc.toolchain import program_header
    from pybpf.elf import ObjectSpec

    tr = translate(MM_PROGRAM + f"/* {uuid.uuid4()} */\n")
    text = program_header(tr.source, set(tr.tables) | set(tr.functions)).read_text()
    assert "struct task_struct {" in text and "struct mm_struct {" in text
    assert "TASK_COMM_LEN = " in text and "struct pt_regs {" in text
    assert "struct sk_buff {" not in text and "struct net_device {" not in text
    whole = len(Path(Spec.vmlinux().name).read_bytes())   # the BTF alone is larger
    assert len(text) < whole / 4
    spec = ObjectSpec.from_file(build(tr))
    assert "prog" in spec.programs and "config" in spec.maps


def test_kernel_types_named_only_in_an_included_header_are_added(tmp_path, clang):
    """A kernel struct named only in the program's own header (not scanned) is added from
    clang's diagnostics, and what it reaches through members too: the program builds
    without the whole runtime."""
    header = tmp_path / "mine.h"
    header.write_text("static inline unsigned long mm_arg(struct task_struct *t) {\n"
                      "    struct mm_struct *mm = 0;\n    unsigned long arg = 0;\n"
                      "    bpf_probe_read_kernel(&mm, sizeof(mm), &t->mm);\n"
                      "    bpf_probe_read_kernel(&arg, sizeof(arg), &mm->arg_start);\n"
                      "    return arg;\n}\n")
    wrapper, log = _compiler_log(tmp_path, clang)
    script = ("import sys\nfrom pybpf.bcc.build import build\n"
              "from pybpf.bcc.dialect import translate\nfrom pybpf.elf import ObjectSpec\n"
              "tr = translate(sys.argv[1])\n"
              "print(sorted(ObjectSpec.from_file(build(tr)).programs))\n")
    text = (f'#include "{header}"\nint prog(struct bpf_raw_tracepoint_args *ctx) {{\n'
            f"    return mm_arg((void *)bpf_get_current_task()) != 0;\n}}\n")
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), PYBPF_CC=str(wrapper))
    res = subprocess.run([sys.executable, "-c", script, text], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["['prog']"]
    # the syntax tree's header grown once (clang names both structs), the object built with
    # it (after the one compiled ahead with the first header failed)
    runs = _runs(log)
    first, grown = (r.split("-include ")[1].split()[0] for r in runs if "-ast-dump" in r)
    assert first != grown
    objects = [r.split("-include ")[1].split()[0] for r in runs if " -c " in r]
    assert sorted(objects) == sorted([first, grown]), runs
    assert not (tmp_path / "cache" / "pybpf" / "bcc" / "runtime").exists()


def test_names_index_agrees_with_find():
    """names_index: tags and typedefs name their types, an enumerator its enum, a kfunc its
    FUNC (with the bpf_kfunc decl tag), as look-ups by name find them."""
    spec = Spec.vmlinux()
    index = names_index(spec)
    for name in ("task_struct", "u32", "pt_regs", "sk_buff"):
        assert sorted(index[name]) == sorted(T.type_id(t) for t in spec.find_all(name)
                                             if not isinstance(t, T.Func))
    (enum,) = {spec.type_by_id(i) for i in index["BPF_F_CURRENT_CPU"]}
    assert isinstance(enum, T.Enum) and "BPF_F_CURRENT_CPU" in [v.name for v in enum.values]
    tags = spec.find_all("bpf_kfunc", T.DeclTag)
    kfuncs = {t.type.name for t in tags if t.component_idx == -1}
    for name in sorted(kfuncs)[:5]:
        (func,) = [spec.type_by_id(i) for i in index[name]]
        assert isinstance(func, T.Func) and func.name == name
    assert "vfs_read" not in index or not any(
        isinstance(spec.type_by_id(i), T.Func) for i in index["vfs_read"])


def test_subset_dump_compiles(tmp_path, clang):
    """dump_c(subset=True) of a few vmlinux types: their definitions, those they embed,
    forward declarations of structs only pointed to, an anonymous enum asked for as its
    constants, and the prototypes of the kfuncs asked for; clang accepts it."""
    spec = Spec.vmlinux()
    index = names_index(spec)
    kfunc = sorted(n for n, ids in index.items()
                   if any(isinstance(spec.type_by_id(i), T.Func) for i in ids))[0]
    ids = [*index["task_struct"], *index["TASK_COMM_LEN"], *index[kfunc]]
    text = dump_c(spec, ids, kfuncs=True, subset=True)
    assert "struct task_struct {" in text and "TASK_COMM_LEN = " in text
    assert "struct mm_struct;" in text and "struct mm_struct {" not in text
    assert f" {kfunc}(" in text and text.count("__ksym;") == 1
    path = tmp_path / "types.h"
    path.write_text(text + "int f(struct task_struct *t) { return t->pid + TASK_COMM_LEN; }\n")
    subprocess.run([clang, "-target", "bpf", "-fsyntax-only", "-x", "c", str(path)], check=True)


def test_an_error_of_the_program_is_reported_without_the_whole_runtime(tmp_path):
    """A call of a function nobody declares fails with the program's own header: reported at
    the user's line, without dumping vmlinux.h for the whole runtime (it would fail too)."""
    script = ("import sys\nfrom pybpf.bcc.build import build\n"
              "from pybpf.bcc.dialect import translate\nfrom pybpf.errors import CompileError\n"
              "try:\n    build(translate(sys.argv[1]), name='myprog.c')\n"
              "except CompileError as e:\n    print(e.stderr)\n")
    text = "BPF_HASH(counts);\nint prog(void *ctx) {\n  nobody_declares_this(1);\n  return 0;\n}\n"
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    res = subprocess.run([sys.executable, "-c", script, text], env=env, capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "myprog.c:3:" in res.stdout and "nobody_declares_this" in res.stdout
    cache = tmp_path / "cache" / "pybpf"
    assert not (cache / "vmlinux").exists() and not (cache / "bcc" / "runtime").exists()


def test_the_cache_removed_while_a_process_runs(tmp_path):
    """A process that built a program builds the next one after its cache was removed (the
    runtime's generated headers are written again, not assumed from earlier)."""
    script = ("import shutil, sys\nfrom pybpf.bcc.build import build\n"
              "from pybpf.bcc.dialect import translate\nfrom pybpf.elf import ObjectSpec\n"
              "text = 'BPF_ARRAY(seen, u64, 1);\\nint prog(struct xdp_md *ctx) { return %d; }\\n'\n"
              "ObjectSpec.from_file(build(translate(text % 1)))\n"
              "shutil.rmtree(sys.argv[1])\n"
              "print(sorted(ObjectSpec.from_file(build(translate(text % 2))).programs))\n")
    cache = tmp_path / "cache"
    env = dict(os.environ, XDG_CACHE_HOME=str(cache))
    res = subprocess.run([sys.executable, "-c", script, str(cache)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["['prog']"]
    assert list((cache / "pybpf" / "bcc" / "runtime-files").iterdir())
