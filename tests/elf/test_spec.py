"""ObjectSpec without the kernel: what the parser makes of the corpus objects."""
from __future__ import annotations

import subprocess

import pytest

from pybpf.btf.ext import encode_func_info, encode_line_info, parse_ext
from pybpf.elf import ObjectSpec, Pinning
from pybpf.elf.linker import link
from pybpf.elf.maps import internal_map_name, object_name
from pybpf.elf.spec import RefKind
from pybpf.errors import BTFError, ObjectError
from pybpf.sys.uapi import INSN_SIZE, CoreReloKind, MapType, ProgFlag, ProgType
from tests.conftest import MULTIARCH_INCLUDE


def compile_c(clang: str, tmp_path, source: str, name: str = "x"):
    src, obj = tmp_path / f"{name}.c", tmp_path / f"{name}.o"
    src.write_text("#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n" + source)
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", MULTIARCH_INCLUDE, "-c",
                    str(src), "-o", str(obj)], check=True)
    return obj


@pytest.mark.parametrize("obj, section, expected", [
    ("elf_globals", ".rodata", "elf_glob.rodata"),
    ("elf_globals", ".bss", "elf_glob.bss"),
    ("a_very_long_object_name", ".data", "a_very_l.data"),  # 8 + 7 reserved
    ("x", ".kconfig", "x.kconfig"),
    ("obj", ".data.custom", ".data.custom"),
    ("obj", ".rodata.a_long_custom_name", ".rodata.a_long_"),
    ("my-obj", ".bss", "my_obj.bss"),
])
def test_internal_map_names_as_libbpf(obj, section, expected) -> None:
    assert internal_map_name(obj, section) == expected


def test_object_name() -> None:
    assert object_name("/a/b/prog.bpf.o") == "prog"


def test_programs_maps_and_variables(bpf_objects) -> None:
    spec = ObjectSpec.from_file(bpf_objects["elf_prog_array"])
    assert sorted(spec.programs) == ["entry", "tail_drop", "tail_pass"]
    assert all(p.type == ProgType.XDP and p.section.name == "xdp"
               for p in spec.programs.values())
    assert spec.license == "GPL" and spec.programs["entry"].license == "GPL"
    jt = spec.maps["jump_table"]
    assert (jt.type, jt.key_size, jt.value_size, jt.max_entries) == (MapType.PROG_ARRAY, 4, 4, 4)
    assert spec.variables["slot"].map is spec.maps["elf_prog.rodata"]
    pin = ObjectSpec.from_file(bpf_objects["elf_pinning"])
    assert pin.maps["shared_counter"].pinning == Pinning.BY_NAME
    assert pin.maps["private_counter"].pinning == Pinning.NONE
    mim = ObjectSpec.from_file(bpf_objects["elf_map_in_map"])
    assert mim.maps["outer"].contents == {0: "first", 2: "second"}
    inner = mim.maps["by_hash"].inner
    assert inner is not None and (inner.type, inner.value_size) == (MapType.HASH, 8)


def test_externs_layout_like_libbpf(bpf_objects) -> None:
    spec = ObjectSpec.from_file(bpf_objects["elf_kconfig"])
    layout = {e.name: (e.offset, e.size) for e in spec.externs.values()}
    assert layout == {"CONFIG_BPF_JIT": (0, 4), "CONFIG_HZ": (4, 4),
                      "CONFIG_PYBPF_DOES_NOT_EXIST": (8, 4), "LINUX_KERNEL_VERSION": (12, 4),
                      "CONFIG_BPF_SYSCALL": (16, 1), "CONFIG_LOCALVERSION": (17, 16)}
    ks = ObjectSpec.from_file(bpf_objects["elf_ksyms"]).externs
    assert ks["bpf_task_from_pid"].kind == RefKind.KFUNC and not ks["bpf_task_from_pid"].weak
    assert ks["pybpf_no_such_kfunc"].weak
    assert ks["__start_rodata"].kind == RefKind.KSYM and ks["__start_rodata"].type is None


def test_linking_appends_subprograms_once(bpf_objects) -> None:
    spec = ObjectSpec.from_file(bpf_objects["elf_subprogs"])
    lp = link(spec, spec.programs["calls_a"])
    names = [fn.name for _, fn in lp.functions]
    assert names == ["calls_a", "sum_of_squares", "square"]  # in the order calls reach them
    assert [fi.insn_off for fi in lp.func_info] == [start for start, _ in lp.functions]
    assert len(lp.code) == INSN_SIZE * sum(fn.insn_count for _, fn in lp.functions)
    assert all(li.insn_off < len(lp.code) // INSN_SIZE for li in lp.line_info)
    assert {r.kind for r in lp.refs} == {RefKind.MAP_VALUE}
    assert len(encode_func_info(lp.func_info)) == 8 * len(lp.func_info)
    assert len(encode_line_info(lp.line_info)) == 16 * len(lp.line_info)
    lb = link(spec, spec.programs["calls_b"])
    assert [fn.name for _, fn in lb.functions] == ["calls_b", "square"]


def test_btf_ext_records(bpf_objects) -> None:
    spec = ObjectSpec.from_file(bpf_objects["elf_core"])
    ext = parse_ext(spec.elf.section(".BTF.ext").data, spec.btf.string)
    relos = ext.core_relos["tracepoint/syscalls/sys_enter_getppid"]
    assert {r.kind for r in relos} == {CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_EXISTS}
    assert all(spec.btf.type_by_id(r.type_id).name.startswith("task_struct") for r in relos)
    lines = ext.line_info["tracepoint/syscalls/sys_enter_getppid"]
    assert lines[0].file_name.endswith("elf_core.c") and lines[0].line > 0
    assert "bpf_get_current_task" in lines[0].line_text
    with pytest.raises(BTFError, match="bad magic"):
        parse_ext(b"\0" * 32, spec.btf.string)
    with pytest.raises(BTFError):
        parse_ext(spec.elf.section(".BTF.ext").data[:40], spec.btf.string)


def test_section_flags(clang, tmp_path) -> None:
    obj = compile_c(clang, tmp_path, """
SEC("xdp.frags") int frags(struct xdp_md *c) { return XDP_PASS; }
SEC("syscall") int sys(void *c) { return 0; }
SEC("tp_btf/sched_switch") int btf_tp(void *c) { return 0; }
SEC("kprobe/do_unlinkat") int an_overlong_program_name(void *c) { return 0; }
char LICENSE[] SEC("license") = "Dual BSD/GPL";
__u32 _version SEC("version") = 0x050a00;
""")
    spec = ObjectSpec.from_file(obj)
    assert spec.license == "Dual BSD/GPL" and spec.kern_version == 0x050A00
    assert spec.programs["an_overlong_program_name"].kern_version == 0x050A00
    assert spec.programs["frags"].flags == ProgFlag.XDP_HAS_FRAGS
    assert spec.programs["sys"].flags == ProgFlag.SLEEPABLE
    assert spec.programs["btf_tp"].attach_target == "sched_switch"


@pytest.mark.parametrize("source, message", [
    ('SEC("xdp/bogus") int p(struct xdp_md *c) { return 0; }', "unknown program section"),
    ('static __attribute__((used)) SEC("xdp") int p(struct xdp_md *c) { return 0; }',
     "is static"),
    ('struct bpf_map_def { int a, b, c, d; };\n'
     'struct bpf_map_def SEC("maps") m = {1, 4, 4, 1};\n'
     'SEC("xdp") int p(struct xdp_md *c) { return 0; }', "legacy 'maps' section"),
    ('extern int some_undefined_var;\n'
     'SEC("xdp") int p(struct xdp_md *c) { return some_undefined_var; }',
     "neither __kconfig nor __ksym"),
    ('struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(whatever, 3); } m SEC(".maps");\n'
     'SEC("xdp") int p(struct xdp_md *c) { return 0; }', "unknown member 'whatever'"),
])
def test_clear_errors(clang, tmp_path, source, message) -> None:
    obj = compile_c(clang, tmp_path, source + '\nchar LICENSE[] SEC("license") = "GPL";\n')
    with pytest.raises(ObjectError, match=message) as e:
        ObjectSpec.from_file(obj)
    assert str(obj) in str(e.value)
