"""Patching encoded instructions in place (``pybpf.asm.rewrite``): what the ELF loader and CO-RE
use. Checked against the assembler's own encoding and the disassembler."""
from __future__ import annotations

import sys

import pytest

from pybpf.asm import DW, R1, R2, R3, assemble, decode, disassemble, exit_, ld_imm64, ldx
from pybpf.asm import rewrite


def test_fields_and_patch_keep_the_other_fields() -> None:
    code = bytearray(assemble([ldx(DW, R1, R2, 8), exit_()]))
    op, dst, src, off, imm = rewrite.fields(code, 0, sys.byteorder)
    assert (dst, src, off, imm) == (1, 2, 8, 0)
    rewrite.patch(code, 0, sys.byteorder, src=3, off=-16)
    assert decode(bytes(code[:8]))[0] == ldx(DW, R1, R3, -16)
    assert rewrite.fields(code, 1, sys.byteorder) == rewrite.fields(assemble([exit_()]), 0,
                                                                    sys.byteorder)


@pytest.mark.parametrize("order", ["little", "big"])
def test_register_nibbles_follow_the_byte_order(order: str) -> None:
    code = bytearray(8)
    rewrite.patch(code, 0, order, op=0x79, dst=1, src=2, off=-1, imm=0xFFFFFFFF)
    assert rewrite.fields(code, 0, order) == (0x79, 1, 2, -1, -1)
    assert code[1] == (0x21 if order == "little" else 0x12)


def test_set_imm64() -> None:
    code = bytearray(assemble([ld_imm64(R1, 0), exit_()]))
    rewrite.set_imm64(code, 0, sys.byteorder, 0x1122334455667788, src=2)
    assert decode(bytes(code[:16]))[0] == ld_imm64(R1, 0x1122334455667788, src=2)


def test_poison_covers_both_slots_of_a_ld_imm64() -> None:
    code = bytearray(assemble([ld_imm64(R1, 5), exit_()]))
    rewrite.poison(code, 0, sys.byteorder)
    call = (rewrite.CALL, 0, 0, 0, rewrite.POISON_HELPER)
    assert rewrite.fields(code, 0, sys.byteorder) == call
    assert rewrite.fields(code, 1, sys.byteorder) == call
    assert disassemble(bytes(code))[-1].endswith("exit")  # the next instruction is untouched
