"""CO-RE relocations (pybpf.btf.core) of a clang-compiled object against the running kernel.

Expected values come from bpftool's view of vmlinux BTF and from the UAPI, not from pybpf's
parser; each relocated program is then loaded and run, so the kernel confirms the result.
Where the kernel relocates itself (BPF_PROG_LOAD ``core_relos``), its code is compared with
pybpf's, program by program.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from pybpf import features
from pybpf.btf import Spec, core
from pybpf.btf.ext import parse_ext
from pybpf.elf import ObjectSpec, load
from pybpf.errors import BTFError, ObjectError, UnsupportedFeatureError, UsageError, VerifierError
from pybpf.programs import Program
from pybpf.sys.uapi import CoreReloKind, MapType

SECTION = "raw_tp/core_"


class Obj:
    """core_relos.o: its BTF, CO-RE records and code by program (section raw_tp/core_<name>)."""

    def __init__(self, path) -> None:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.btf = Spec.parse(elf.get_section_by_name(".BTF").data())
            self.ext = parse_ext(elf.get_section_by_name(".BTF.ext").data(), self.btf.string)
            self.code = {s.name[len(SECTION):]: s.data() for s in elf.iter_sections()
                         if s.name.startswith(SECTION)}

    def relocated(self, name: str) -> tuple[bytearray, list]:
        insns = bytearray(self.code[name])
        relos = [(r.insn_off, r.type_id, r.access_str, r.kind)
                 for r in self.ext.core_relos.get(SECTION + name, [])]
        return insns, core.apply(insns, relos, self.btf)

    def run(self, name: str) -> int:
        insns, _ = self.relocated(name)
        with Program.load("raw_tracepoint", bytes(insns), name=name) as prog:
            return prog.test_run(ctx_in=bytes(8)).retval


@pytest.fixture(scope="module")
def obj(bpf_objects) -> Obj:
    return Obj(bpf_objects["core_relos"])


@pytest.fixture(scope="module")
def kernel() -> dict:
    """task_struct's size and members, list_head's id, as bpftool prints vmlinux BTF."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux",
                          "format", "raw"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"^\[(\d+)\] STRUCT 'task_struct' size=(\d+) vlen=(\d+)\n((?:\t.*\n)+)",
                  out, re.M)
    members = {mm.group(1): int(mm.group(2)) // 8 for mm in
               re.finditer(r"'(\w+)' type_id=\d+ bits_offset=(\d+)", m.group(4))}
    list_head = re.search(r"^\[(\d+)\] STRUCT 'list_head' ", out, re.M)
    return {"task_size": int(m.group(2)), "members": members, "list_head": int(list_head.group(1))}


def test_field_relocations_match_bpftool_and_run(obj, kernel):
    members = kernel["members"]
    assert obj.run("off_pid") == members["pid"]
    assert obj.run("off_tgid") == members["tgid"]
    assert obj.run("off_comm3") == members["comm"] + 3
    assert obj.run("size_comm") == 16
    assert obj.run("exists_pid") == 1
    assert obj.run("exists_missing") == 0
    assert obj.run("signed_pid") == 1


def test_type_and_enum_relocations(obj, kernel):
    assert obj.run("type_exists") == 1
    assert obj.run("type_missing") == 0
    assert obj.run("type_size") == kernel["task_size"]
    assert obj.run("enum_exists") == 1
    assert obj.run("enum_missing") == 0
    assert obj.run("enum_value") == MapType.RINGBUF
    assert obj.run("type_id_kernel") == 1
    _, done = obj.relocated("type_id_kernel")
    assert [r.new for _, r in done] == [kernel["list_head"]]


def test_relocated_read_sees_the_calling_process(obj):
    """The kernel runs the program in this process: tgid read at the relocated offset."""
    assert obj.run("read_tgid") == os.getpid()


def test_guarded_missing_field_is_poisoned_in_dead_code(obj):
    insns, done = obj.relocated("guarded_missing")
    poisoned = [i for i, r in done if r.poison]
    assert len(poisoned) == 1
    assert struct.unpack_from("=BBhi", insns, poisoned[0] * 8) == (0x85, 0, 0, core.POISON_HELPER)
    assert obj.run("guarded_missing") == 0xFFFFFFFF  # -1: the guard took the other branch


def test_unguarded_missing_field_fails_load_and_says_which_relocation(obj):
    insns, done = obj.relocated("unguarded_missing")
    with pytest.raises(VerifierError) as e:
        Program.load("raw_tracepoint", bytes(insns), name="unguarded")
    assert str(core.POISON_HELPER) in e.value.log
    why = core.explain_poison(e.value.log, done)
    assert "task_struct___pybpf.no_such_member" in why
    assert "cannot be satisfied" in why


def test_type_matches(obj):
    local = obj.btf
    lh = local.find("list_head___pybpf").id
    ts = local.find("task_struct___pybpf").id
    targets = core.kernel_specs()
    assert core.relocate(local, lh, "0", CoreReloKind.TYPE_MATCHES, targets).new == 1
    # task_struct___pybpf has a member the kernel's lacks: exists, but does not match
    assert core.relocate(local, ts, "0", CoreReloKind.TYPE_EXISTS, targets).new == 1
    assert core.relocate(local, ts, "0", CoreReloKind.TYPE_MATCHES, targets).new == 0


def test_flavored_target_and_ambiguity(obj):
    """A target BTF whose type carries a flavor is a candidate; candidates that disagree on
    the offset are an error, as in libbpf."""
    local = obj.btf
    ts = local.find("task_struct___pybpf").id
    own = core.relocate(local, ts, "0:1", CoreReloKind.FIELD_BYTE_OFFSET, [local])
    assert (own.orig, own.new) == (4, 4)
    with pytest.raises(BTFError, match="ambiguous"):
        core.relocate(local, ts, "0:1", CoreReloKind.FIELD_BYTE_OFFSET,
                      [local, Spec.vmlinux()])


def test_essential_name():
    assert core.essential_name("task_struct___v5_10") == "task_struct"
    assert core.essential_name("task_struct") == "task_struct"
    assert core.essential_name("a____b") == "a____b"  # four underscores: no flavor
    assert core.essential_name("___x") == "___x"


@pytest.mark.parametrize("access", ["", "x", "0:-1", "0:999", ":".join(["0"] * 70)])
def test_malformed_access_strings_are_clear_errors(obj, access):
    ts = obj.btf.find("task_struct___pybpf").id
    with pytest.raises(BTFError, match="access"):
        core.relocate(obj.btf, ts, access, CoreReloKind.FIELD_BYTE_OFFSET, core.kernel_specs())


def test_unexpected_instruction_is_refused(obj):
    """The instruction must hold the value clang computed locally (libbpf's validation)."""
    insns = bytearray(obj.code["off_tgid"])
    (relo,) = obj.ext.core_relos[SECTION + "off_tgid"]
    struct.pack_into("=i", insns, relo.insn_off * 8 + 4, 99)
    with pytest.raises(BTFError, match="expected 4"):
        core.apply(insns, [(relo.insn_off, relo.type_id, relo.access_str, relo.kind)], obj.btf)


def test_relocation_past_the_program_is_refused(obj):
    insns = bytearray(obj.code["off_tgid"])
    (relo,) = obj.ext.core_relos[SECTION + "off_tgid"]
    with pytest.raises(BTFError, match="past the program"):
        core.apply(insns, [(1000, relo.type_id, relo.access_str, relo.kind)], obj.btf)


# -- relocation by the kernel ----------------------------------------------------------------

def loadable(bpf_objects) -> ObjectSpec:
    """core_relos.o for the loader, without the program that cannot load."""
    spec = ObjectSpec.from_file(bpf_objects["core_relos"])
    spec.programs["unguarded_missing"].autoload = False
    return spec


@pytest.mark.kernel("kernel_core")
def test_kernel_relocates_every_kind_like_pybpf(bpf_objects, obj):
    """Same translated code and same result for every program, kernel or pybpf relocating."""
    spec = loadable(bpf_objects)
    with load(spec, core_in_kernel=True) as by_kernel, load(spec, core_in_kernel=False) as by_us:
        assert set(by_kernel.programs) == set(by_us.programs) == set(obj.code) - {
            "unguarded_missing"}
        for name, prog in by_kernel.programs.items():
            ours = by_us.programs[name]
            assert prog.xlated() == ours.xlated(), name
            assert prog.test_run(ctx_in=bytes(8)).retval == \
                ours.test_run(ctx_in=bytes(8)).retval == obj.run(name), name
        assert by_kernel.programs["read_tgid"].test_run(ctx_in=bytes(8)).retval == os.getpid()


@pytest.mark.kernel("kernel_core")
def test_kernel_poisoned_relocation_is_explained(bpf_objects):
    """The kernel poisons the unsatisfiable read; the error says which relocation, as pybpf's."""
    spec = ObjectSpec.from_file(bpf_objects["core_relos"])
    for p in spec.programs.values():
        p.autoload = p.name == "unguarded_missing"
    with pytest.raises(ObjectError, match="no_such_member.*cannot be satisfied") as e:
        load(spec, core_in_kernel=True)
    assert isinstance(e.value.__cause__, VerifierError)
    assert str(core.POISON_HELPER) in e.value.__cause__.log  # the kernel's own poison


def test_kernel_relocation_when_asked_for(bpf_objects, obj):
    """``core_in_kernel=True``: refused clearly with a target BTF given, or without func_info;
    on a kernel without CO-RE in BPF_PROG_LOAD (before 5.17) refused with the probe's reason,
    while the default still relocates in Python."""
    spec = loadable(bpf_objects)
    with pytest.raises(UsageError, match="core_btf"):
        load(spec, core_in_kernel=True, core_btf=[Spec.vmlinux()])
    support = features.kernel_core()
    if support:
        with pytest.raises(UnsupportedFeatureError, match="func_info"):
            load(spec, core_in_kernel=True, btf=False)
    else:
        assert "5.17" in support.reason
        with pytest.raises(UnsupportedFeatureError, match="5.17"):
            load(spec, core_in_kernel=True)
    with load(spec) as coll:
        assert coll.programs["off_tgid"].test_run(ctx_in=bytes(8)).retval == obj.run("off_tgid")
