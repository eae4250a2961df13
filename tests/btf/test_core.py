"""CO-RE relocations (pybpf.btf.core) of a clang-compiled object against the running kernel.

Expected values come from bpftool's view of vmlinux BTF and from the UAPI, not from pybpf's
parser; each relocated program is then loaded and run, so the kernel confirms the result.
"""
from __future__ import annotations

import os
import re
import struct
import subprocess

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.btf import Spec, core
from pybpf.btf.ext import parse_ext
from pybpf.errors import BTFError, VerifierError
from pybpf.programs import Program
from pybpf.sys.uapi import CoreReloKind, MapType


class Obj:
    """core_relos.o: its BTF, CO-RE records and code by section."""

    def __init__(self, path) -> None:
        with open(path, "rb") as f:
            elf = ELFFile(f)
            self.btf = Spec.parse(elf.get_section_by_name(".BTF").data())
            self.ext = parse_ext(elf.get_section_by_name(".BTF.ext").data(), self.btf.string)
            self.code = {s.name: s.data() for s in elf.iter_sections()
                         if s.name.startswith("core/")}

    def relocated(self, section: str) -> tuple[bytearray, list]:
        insns = bytearray(self.code[section])
        relos = [(r.insn_off, r.type_id, r.access_str, r.kind)
                 for r in self.ext.core_relos.get(section, [])]
        return insns, core.apply(insns, relos, self.btf)

    def run(self, section: str) -> int:
        insns, _ = self.relocated(section)
        with Program.load("raw_tracepoint", bytes(insns), name=section[5:]) as prog:
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
    assert obj.run("core/off_pid") == members["pid"]
    assert obj.run("core/off_tgid") == members["tgid"]
    assert obj.run("core/off_comm3") == members["comm"] + 3
    assert obj.run("core/size_comm") == 16
    assert obj.run("core/exists_pid") == 1
    assert obj.run("core/exists_missing") == 0
    assert obj.run("core/signed_pid") == 1


def test_type_and_enum_relocations(obj, kernel):
    assert obj.run("core/type_exists") == 1
    assert obj.run("core/type_missing") == 0
    assert obj.run("core/type_size") == kernel["task_size"]
    assert obj.run("core/enum_exists") == 1
    assert obj.run("core/enum_missing") == 0
    assert obj.run("core/enum_value") == MapType.RINGBUF
    assert obj.run("core/type_id_kernel") == 1
    _, done = obj.relocated("core/type_id_kernel")
    assert [r.new for _, r in done] == [kernel["list_head"]]


def test_relocated_read_sees_the_calling_process(obj):
    """The kernel runs the program in this process: tgid read at the relocated offset."""
    assert obj.run("core/read_tgid") == os.getpid()


def test_guarded_missing_field_is_poisoned_in_dead_code(obj):
    insns, done = obj.relocated("core/guarded_missing")
    poisoned = [i for i, r in done if r.poison]
    assert len(poisoned) == 1
    assert struct.unpack_from("=BBhi", insns, poisoned[0] * 8) == (0x85, 0, 0, core.POISON_HELPER)
    assert obj.run("core/guarded_missing") == 0xFFFFFFFF  # -1: the guard took the other branch


def test_unguarded_missing_field_fails_load_and_says_which_relocation(obj):
    insns, done = obj.relocated("core/unguarded_missing")
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
    insns = bytearray(obj.code["core/off_tgid"])
    (relo,) = obj.ext.core_relos["core/off_tgid"]
    struct.pack_into("=i", insns, relo.insn_off * 8 + 4, 99)
    with pytest.raises(BTFError, match="expected 4"):
        core.apply(insns, [(relo.insn_off, relo.type_id, relo.access_str, relo.kind)], obj.btf)


def test_relocation_past_the_program_is_refused(obj):
    insns = bytearray(obj.code["core/off_tgid"])
    (relo,) = obj.ext.core_relos["core/off_tgid"]
    with pytest.raises(BTFError, match="past the program"):
        core.apply(insns, [(1000, relo.type_id, relo.access_str, relo.kind)], obj.btf)
