"""The assembler: labels forward and backward, program bytes, and clear errors for bad input."""
from __future__ import annotations

import pytest

from pybpf.asm import (DW, R0, R1, R2, W, Assembler, AssemblyError, Instruction, Label, assemble,
                       call, call_subprog, decode, exit_, ja, ja32, jeq_imm, ld_func, ld_map_fd,
                       ldx, label, mov64_imm, mov64_reg, resolve)
from pybpf.errors import UsageError
from pybpf.sys.uapi import Helper, PseudoCall, PseudoSrc


def test_forward_and_backward_labels() -> None:
    insns = resolve([
        label("top"),
        mov64_imm(R0, 0),                 # 0
        jeq_imm(R1, 0, "out"),            # 1 -> 5: off 3
        ld_map_fd(R2, 3),                 # 2, 3 (two slots)
        ja("top"),                        # 4 -> 0: off -5
        label("out"),
        exit_(),                          # 5
    ])
    assert [i.off for i in insns] == [0, 3, 0, -5, 0]
    assert all(i.target is None for i in insns)


def test_targets_in_imm() -> None:
    """gotol, subprogram calls and function pointers carry the offset in imm."""
    insns = resolve([ja32("f"), call_subprog("f"), ld_func(R1, "f"), exit_(), label("f"),
                     exit_()])
    assert [(i.off, i.imm) for i in insns[:3]] == [(0, 4), (0, 3), (0, 2)]
    assert insns[1].src == PseudoCall.CALL and insns[2].src == PseudoSrc.FUNC


def test_numeric_targets() -> None:
    assert jeq_imm(R1, 0, -2).off == -2
    assert call_subprog(7).imm == 7 and ja32(-9).imm == -9


def test_assembler_builder() -> None:
    a = Assembler([mov64_imm(R0, 1)])
    a.emit(jeq_imm(R1, 0, "out"), [ldx(W, R0, R1, 0), ld_map_fd(R2, 4)]).label("out").emit(exit_())
    code = a.assemble()
    assert a.insn_count == len(a) == 6 == len(code) // 8
    assert code == assemble(a.items)
    assert decode(code) == a.instructions()
    assert a.instructions()[1].off == 3


def test_helper_calls() -> None:
    assert call("map_lookup_elem") == call("bpf_map_lookup_elem") == call(Helper.map_lookup_elem)
    assert call("map_lookup_elem").imm == 1 == call(1).imm
    assert call("ktime_get_ns").encode() == bytes.fromhex("8500000005000000")


def test_unknown_helper_lists_close_matches() -> None:
    with pytest.raises(AssemblyError, match=r"unknown helper 'map_lookup'.*map_lookup_elem"):
        call("map_lookup")
    with pytest.raises(AssemblyError, match="unknown helper 'zzz'; see"):
        call("zzz")


def test_undefined_label() -> None:
    with pytest.raises(AssemblyError, match=r"undefined label 'ou'.*instruction 1.*'out'"):
        assemble([mov64_imm(R0, 0), jeq_imm(R1, 0, "ou"), label("out"), exit_()])


def test_duplicate_label() -> None:
    with pytest.raises(AssemblyError, match=r"duplicate label 'x' \(at instructions 0 and 1\)"):
        assemble([label("x"), mov64_imm(R0, 0), label("x"), exit_()])


def test_jump_out_of_range() -> None:
    far = [jeq_imm(R1, 0, "end")] + [mov64_reg(R0, R1)] * 32768 + [label("end"), exit_()]
    with pytest.raises(AssemblyError, match="32768 instructions away.*ja32"):
        assemble(far)
    assert len(assemble(far[:-3] + [label("end"), exit_()])) == (1 + 32767 + 1) * 8  # off 32767
    assert resolve([ja32("end")] + far[1:])[0].imm == 32768
    with pytest.raises(AssemblyError, match="16-bit"):
        ja(40000)


def test_unresolved_target_cannot_encode() -> None:
    with pytest.raises(AssemblyError, match="unresolved label 'x'"):
        ja("x").encode()


@pytest.mark.parametrize("bad", [11, -1, 15, "r1", 1.0, True, None])
def test_bad_register(bad) -> None:
    with pytest.raises(AssemblyError, match="bad register.*R0..R10"):
        mov64_imm(bad, 0)
    with pytest.raises(AssemblyError, match="bad source register"):
        mov64_reg(R0, bad)


def test_bad_fields() -> None:
    with pytest.raises(AssemblyError, match="immediate 4294967296 does not fit in 32 bits"):
        mov64_imm(R0, 1 << 32)
    with pytest.raises(AssemblyError, match="offset 32768 does not fit"):
        ldx(DW, R0, R1, 32768)
    with pytest.raises(AssemblyError, match="not a whole number"):
        decode(b"\x95" * 9)
    with pytest.raises(AssemblyError, match="second half is missing"):
        decode(ld_map_fd(R1, 1).encode()[:8])
    with pytest.raises(AssemblyError, match="neither an Instruction nor a Label"):
        assemble([exit_(), "exit"])  # type: ignore[list-item]
    assert issubclass(AssemblyError, UsageError) and issubclass(AssemblyError, ValueError)


def test_unsigned_spellings_normalise() -> None:
    assert mov64_imm(R0, 0xFFFFFFFF) == mov64_imm(R0, -1)
    assert Instruction(0x18, imm=(1 << 64) - 1).imm == -1
    assert Label("a") == label("a")
