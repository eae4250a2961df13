"""The disassembler: bpftool's notation for every kind of instruction, and line-for-line
agreement with ``bpftool prog dump xlated`` on clang-compiled programs loaded by bpftool."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pybpf.asm import (B, DW, H, R0, R1, R2, R3, R10, W, Instruction, KernelSymbols, assemble,
                       disassemble, format_instruction)
from pybpf.asm import instructions as I

# (instruction, bpftool's text): the kernel's print_bpf_insn with bpftool's print_imm.
EXPECTED = [
    (I.mov64_imm(R0, 0), "(b7) r0 = 0"),
    (I.mov32_imm(R1, -1), "(b4) w1 = -1"),
    (I.mov64_reg(R1, R10), "(bf) r1 = r10"),
    (I.add64_imm(R1, -4), "(07) r1 += -4"),
    (I.sub32_reg(R1, R2), "(1c) w1 -= w2"),
    (I.mul64_imm(R1, 3), "(27) r1 *= 3"),
    (I.div64_reg(R1, R2), "(3f) r1 /= r2"),
    (I.sdiv64_imm(R1, -3), "(37) r1 s/= -3"),
    (I.smod32_reg(R1, R2), "(9c) w1 s%= w2"),
    (I.mod64_imm(R1, 7), "(97) r1 %= 7"),
    (I.or64_reg(R1, R2), "(4f) r1 |= r2"),
    (I.and32_imm(R1, 255), "(54) w1 &= 255"),
    (I.lsh64_imm(R1, 32), "(67) r1 <<= 32"),
    (I.rsh32_reg(R1, R2), "(7c) w1 >>= w2"),
    (I.arsh64_imm(R1, 32), "(c7) r1 s>>= 32"),
    (I.xor32_reg(R0, R0), "(ac) w0 ^= w0"),
    (I.neg64(R3), "(87) r3 = -r3"),
    (I.neg32(R3), "(84) w3 = -w3"),
    (I.movsx64_reg(R1, R2, 8), "(bf) r1 = (s8)r2"),
    (I.movsx64_reg(R1, R2, 32), "(bf) r1 = (s32)r2"),
    (I.movsx32_reg(R1, R2, 16), "(bc) w1 = (s16)w2"),
    (I.be(R1, 16), "(dc) r1 = be16 r1"),
    (I.le(R1, 64), "(d4) r1 = le64 r1"),
    (I.bswap(R1, 32), "(d7) r1 = bswap32 r1"),
    (I.ldx(W, R0, R1, 8), "(61) r0 = *(u32 *)(r1 +8)"),
    (I.ldx(DW, R0, R10, -8), "(79) r0 = *(u64 *)(r10 -8)"),
    (I.ldx_sx(B, R0, R1, 0), "(91) r0 = *(s8 *)(r1 +0)"),
    (I.ldx_sx(H, R0, R1, 2), "(89) r0 = *(s16 *)(r1 +2)"),
    (I.stx(W, R10, R1, -4), "(63) *(u32 *)(r10 -4) = r1"),
    (I.stx(B, R10, R1, -1), "(73) *(u8 *)(r10 -1) = r1"),
    (I.st(H, R10, -2, -5), "(6a) *(u16 *)(r10 -2) = -5"),
    (I.st(DW, R10, -8, 0), "(7a) *(u64 *)(r10 -8) = 0"),
    (I.atomic_add(DW, R1, R2, 0), "(db) lock *(u64 *)(r1 +0) += r2"),
    (I.atomic_xor(W, R1, R2, 4), "(c3) lock *(u32 *)(r1 +4) ^= r2"),
    (I.atomic_add(DW, R1, R2, 0, fetch=True), "(db) r2 = atomic64_fetch_add((u64 *)(r1 +0), r2)"),
    (I.atomic_or(W, R1, R2, 8, fetch=True), "(c3) r2 = atomic_fetch_or((u32 *)(r1 +8), r2)"),
    (I.atomic_xchg(DW, R1, R2, 0), "(db) r2 = atomic64_xchg((u64 *)(r1 +0), r2)"),
    (I.atomic_cmpxchg(W, R1, R2, -4), "(c3) r0 = atomic_cmpxchg((u32 *)(r1 -4), r0, r2)"),
    (I.load_acquire(DW, R0, R1, 8), "(db) r0 = load_acquire((u64 *)(r1 +8))"),
    (I.store_release(B, R1, R2, 0), "(d3) store_release((u8 *)(r1 +0), r2)"),
    (I.ld_imm64(R1, 0x123456789), "(18) r1 = 0x123456789"),
    (I.ld_imm64(R1, -1), "(18) r1 = 0xffffffffffffffff"),
    (I.ld_map_fd(R1, 12), "(18) r1 = map[id:12]"),
    (I.ld_map_value(R2, 12, 16), "(18) r2 = map[id:12][0]+16"),
    (I.ld_func(R2, -3), "(18) r2 = subprog[-3]"),
    (I.ld_btf_id(R1, 0x10, 2), "(18) r1 = 0x200000010"),
    (I.ld_abs(H, 12), "(28) r0 = *(u16 *)skb[12]"),
    (I.ld_ind(B, R1, 3), "(50) r0 = *(u8 *)skb[r1 + 3]"),
    (I.ja(3), "(05) goto pc+3"),
    (I.ja(-1), "(05) goto pc-1"),
    (I.ja32(-70000), "(06) gotol pc-70000"),
    (I.may_goto(4), "(e5) may_goto pc+4"),
    (I.jeq_imm(R1, 0, 2), "(15) if r1 == 0x0 goto pc+2"),
    (I.jne_imm(R1, -1, 2), "(55) if r1 != 0xffffffff goto pc+2"),
    (I.jsgt_reg(R1, R2, -2), "(6d) if r1 s> r2 goto pc-2"),
    (I.jset32_imm(R1, 8, 0), "(46) if w1 & 0x8 goto pc+0"),
    (I.jle32_reg(R1, R2, 1), "(be) if w1 <= w2 goto pc+1"),
    (I.call("ktime_get_ns"), "(85) call bpf_ktime_get_ns#5"),
    (I.call("map_lookup_elem"), "(85) call bpf_map_lookup_elem#1"),
    (I.call(100000), "(85) call unknown#100000"),
    (I.call_subprog(3), "(85) call pc+3"),
    (I.call_kfunc(4242), "(85) call kernel-function#4242"),
    (I.exit_(), "(95) exit"),
    # encodings the kernel does not know
    (Instruction(0xe1), "BUG_ldx_e1"),
    (Instruction(0xe2), "BUG_st_e2"),
    (Instruction(0xc2), "(c2) nospec"),
    (Instruction(0xe3), "BUG_e3"),
    (Instruction(0x00), "BUG_ld_00"),
    (Instruction(0xe7, 1), "(e7) r1 (null) 0"),
]


@pytest.mark.parametrize("insn,text", EXPECTED, ids=[t for _, t in EXPECTED])
def test_format(insn: Instruction, text: str) -> None:
    assert format_instruction(insn) == text


def test_lines_and_opcodes() -> None:
    code = assemble([I.mov64_imm(R0, 0), I.ld_map_fd(R1, 3), I.exit_()])
    assert disassemble(code) == ["   0: (b7) r0 = 0", "   1: (18) r1 = map[id:3]",
                                 "   3: (95) exit"]
    assert disassemble(code, opcodes=True) == [
        "   0: (b7) r0 = 0", "       b7 00 00 00 00 00 00 00",
        "   1: (18) r1 = map[id:3]", "       18 11 00 00 03 00 00 00 00 00 00 00 00 00 00 00",
        "   3: (95) exit", "       95 00 00 00 00 00 00 00"]
    assert disassemble(assemble([I.exit_()] * 10001))[-1] == " 10000: (95) exit"


KALLSYMS = """\
ffffffff81000000 T _stext
ffffffff81200000 T __bpf_call_base
ffffffff81200040 T bpf_map_lookup_elem
ffffffff81200040 t bpf_map_lookup_alias
ffffffff81210000 T __htab_map_lookup_elem
ffffffffc0001000 t bpf_prog_0123456789abcdef_sub	[bpf]
0000000000000000 A fixed_percpu_data
"""


def test_kernel_symbols_name_translated_calls() -> None:
    syms = KernelSymbols.parse(KALLSYMS)
    assert syms.call_base == 0xFFFFFFFF81200000
    assert syms.names[0xFFFFFFFF81200040] == "bpf_map_lookup_elem"
    helper = Instruction(0x85, imm=0x10000)
    assert format_instruction(helper, syms) == "(85) call __htab_map_lookup_elem#65536"
    assert format_instruction(helper) == "(85) call unknown#65536"
    unnamed = Instruction(0x85, imm=-0x20)
    assert format_instruction(unnamed, syms) == "(85) call 0xffffffff811fffe0#-32"
    assert format_instruction(unnamed, KernelSymbols()) == "(85) call 0xffffffffffffffe0#-32"
    sub = Instruction(0x85, src=1, off=7, imm=1)
    assert format_instruction(sub) == "(85) call pc+1"
    assert format_instruction(sub, syms) == "(85) call pc+7"
    assert format_instruction(sub, syms, [0xFFFFFFFFC0000000, 0xFFFFFFFFC0001000]) == \
        "(85) call pc+7#bpf_prog_0123456789abcdef_sub"
    assert format_instruction(sub, syms, [1, 2]) == "(85) call pc+7#0x2"
    assert format_instruction(I.call_kfunc(0x10), syms) == "(85) call 0xffffffff81200010#16"


def test_kptr_restrict_hides_symbols(tmp_path: Path) -> None:
    hidden = KALLSYMS.replace("ffffffff81200000 T __bpf_call_base",
                              "0000000000000000 T __bpf_call_base")
    assert KernelSymbols.parse(hidden) == KernelSymbols()
    assert KernelSymbols.load(str(tmp_path / "missing")) == KernelSymbols()


@pytest.mark.parametrize("obj", ["asm_progs_v1", "asm_progs_v3"])
def test_matches_bpftool_xlated(request, obj: str, bpftool: str, pin_dir: Path,
                                check_xlated) -> None:
    """bpftool loads the clang object; both disassemble each program's translated bytes."""
    subprocess.run([bpftool, "prog", "loadall", str(request.getfixturevalue(obj)), str(pin_dir)],
                   check=True, capture_output=True)
    pins = sorted(pin_dir.iterdir())
    assert [p.name for p in pins] == ["asm_socket", "asm_xdp"]
    assert sum(check_xlated(pin) for pin in pins) > 100
