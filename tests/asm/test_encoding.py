"""Instruction encoding: round trips for every opcode, known encodings checked against clang."""
from __future__ import annotations

import random
import re
import struct
from pathlib import Path

import pytest

from pybpf.asm import (B, DW, H, R0, R1, R2, R3, R4, R9, R10, W, AtomicOp, Instruction, Size,
                       decode)
from pybpf.asm import instructions as I
from pybpf.sys.uapi import Helper


# The operation families exported as <op>64_imm, ... and j<cond>32_imm, ...
ALU_FAMILIES = [n[:-len("64_imm")] for n in I.__all__ if n.endswith("64_imm") and n != "alu64_imm"]
JMP_FAMILIES = [n[:-len("32_imm")] for n in I.__all__ if n.endswith("32_imm")
                and n.startswith("j") and n != "jmp32_imm"]


def every_instruction() -> list[Instruction]:
    """At least one instruction of every opcode the kernel knows, in every form."""
    out: list[Instruction] = []
    for op in ALU_FAMILIES:
        for width in ("64", "32"):
            out.append(getattr(I, f"{op}{width}_imm")(R1, -7))
            out.append(getattr(I, f"{op}{width}_reg")(R2, R3))
    out += [I.neg64(R4), I.neg32(R4), I.movsx64_reg(R1, R2, 8), I.movsx64_reg(R1, R2, 16),
            I.movsx64_reg(R1, R2, 32), I.movsx32_reg(R1, R2, 8), I.movsx32_reg(R1, R2, 16)]
    for bits in (16, 32, 64):
        out += [I.le(R1, bits), I.be(R1, bits), I.bswap(R1, bits)]
    for size in Size:
        out += [I.ldx(size, R1, R2, -8), I.stx(size, R10, R1, -16), I.st(size, R10, -4, -1),
                I.ld_abs(size, 12), I.ld_ind(size, R3, 2), I.load_acquire(size, R1, R2, 8),
                I.store_release(size, R1, R2, 8)]
    out += [I.ldx_sx(size, R1, R2, 3) for size in (B, H, W)]
    for size in (W, DW):
        for fetch in (False, True):
            out += [I.atomic_add(size, R1, R2, 0, fetch), I.atomic_or(size, R1, R2, 4, fetch),
                    I.atomic_and(size, R1, R2, -4, fetch), I.atomic_xor(size, R1, R2, 8, fetch)]
        out += [I.atomic_xchg(size, R1, R2, 0), I.atomic_cmpxchg(size, R1, R2, 0)]
    for op in JMP_FAMILIES:
        for width in ("", "32"):
            out.append(getattr(I, f"{op}{width}_imm")(R1, -1, 3))
            out.append(getattr(I, f"{op}{width}_reg")(R1, R2, -3))
    out += [I.ja(5), I.ja(-1), I.ja32(100000), I.ja32(-100000), I.may_goto(2),
            I.call("map_lookup_elem"), I.call(Helper.ktime_get_ns), I.call(211),
            I.call_subprog(10), I.call_kfunc(1234, 2), I.exit_(),
            I.ld_imm64(R1, 0x123456789ABCDEF0), I.ld_imm64(R2, -1), I.ld_imm64(R3, 1 << 63),
            I.ld_map_fd(R1, 7), I.ld_map_value(R2, 7, 24), I.ld_btf_id(R3, 55, 9), I.ld_func(R4, 6)]
    return out


def test_families_are_complete() -> None:
    assert len(ALU_FAMILIES) == 14 and len(JMP_FAMILIES) == 11


@pytest.mark.parametrize("insn", every_instruction(), ids=repr)
def test_round_trip(insn: Instruction) -> None:
    raw = insn.encode()
    assert len(raw) == 8 * insn.slots
    back = Instruction.decode(raw)
    assert back == insn
    assert back.encode() == raw


def test_every_opcode_byte_round_trips() -> None:
    """Any 8 bytes decode (known opcode or not) and encode back to themselves."""
    rng = random.Random(1)
    for code in range(256):
        for _ in range(20):
            raw = struct.pack("<BBhi", code, rng.randrange(256), rng.randrange(-32768, 32768),
                              rng.randrange(-2**31, 2**31))
            if code == 0x18:  # ld_imm64: the second half is zero but for its imm
                raw = raw + struct.pack("<BBhi", 0, 0, 0, rng.randrange(-2**31, 2**31))
            assert Instruction.decode(raw).encode() == raw


def test_program_round_trip() -> None:
    code = b"".join(i.encode() for i in every_instruction())
    assert b"".join(i.encode() for i in decode(code)) == code


# LLVM assembly accepted by clang 14's BPF assembler, and the same instruction from pybpf.asm.
CLANG_ASM = [
    ("r1 = 5", I.mov64_imm(R1, 5)),
    ("w1 = -5", I.mov32_imm(R1, -5)),
    ("r1 = r2", I.mov64_reg(R1, R2)),
    ("w1 = w2", I.mov32_reg(R1, R2)),
    ("r1 += 5", I.add64_imm(R1, 5)),
    ("w3 -= w4", I.sub32_reg(R3, R4)),
    ("r1 *= r2", I.mul64_reg(R1, R2)),
    ("w1 /= 7", I.div32_imm(R1, 7)),
    ("w1 |= 1", I.or32_imm(R1, 1)),
    ("r1 &= r2", I.and64_reg(R1, R2)),
    ("r1 <<= 3", I.lsh64_imm(R1, 3)),
    ("w1 >>= w2", I.rsh32_reg(R1, R2)),
    ("r1 s>>= 5", I.arsh64_imm(R1, 5)),
    ("w1 s>>= 3", I.arsh32_imm(R1, 3)),
    ("r1 ^= r9", I.xor64_reg(R1, R9)),
    ("w2 ^= 0x7fffffff", I.xor32_imm(R2, 0x7FFFFFFF)),
    ("r1 = -r1", I.neg64(R1)),
    ("w1 = -w1", I.neg32(R1)),
    ("r1 = be16 r1", I.be(R1, 16)),
    ("r1 = be32 r1", I.be(R1, 32)),
    ("r1 = le64 r1", I.le(R1, 64)),
    ("r1 = *(u64 *)(r2 + 4)", I.ldx(DW, R1, R2, 4)),
    ("r3 = *(u8 *)(r10 - 1)", I.ldx(B, R3, R10, -1)),
    ("r3 = *(u16 *)(r1 + 2)", I.ldx(H, R3, R1, 2)),
    ("r3 = *(u32 *)(r1 + 32767)", I.ldx(W, R3, R1, 32767)),
    ("*(u8 *)(r10 - 4) = r1", I.stx(B, R10, R1, -4)),
    ("*(u16 *)(r10 - 32768) = r1", I.stx(H, R10, R1, -32768)),
    ("*(u32 *)(r1 + 0) = r2", I.stx(W, R1, R2, 0)),
    ("*(u64 *)(r10 - 8) = r9", I.stx(DW, R10, R9, -8)),
    ("r1 = 0x123456789 ll", I.ld_imm64(R1, 0x123456789)),
    ("r1 = -1 ll", I.ld_imm64(R1, -1)),
    ("r4 = 0x8000000000000000 ll", I.ld_imm64(R4, 1 << 63)),
    ("if r1 s>= 5 goto +2", I.jsge_imm(R1, 5, 2)),
    ("if w1 <= w2 goto -3", I.jle32_reg(R1, R2, -3)),
    ("if r1 != r0 goto +0", I.jne_reg(R1, R0, 0)),
    ("if r1 == 0 goto +1", I.jeq_imm(R1, 0, 1)),
    ("if r1 > r2 goto +1", I.jgt_reg(R1, R2, 1)),
    ("if r1 >= 3 goto +1", I.jge_imm(R1, 3, 1)),
    ("if r1 < r2 goto +1", I.jlt_reg(R1, R2, 1)),
    ("if r1 s> -1 goto +1", I.jsgt_imm(R1, -1, 1)),
    ("if r1 s< r2 goto +1", I.jslt_reg(R1, R2, 1)),
    ("if r1 s<= 9 goto +1", I.jsle_imm(R1, 9, 1)),
    ("if w1 == 7 goto +4", I.jeq32_imm(R1, 7, 4)),
    ("if w1 s< w2 goto -1", I.jslt32_reg(R1, R2, -1)),
    ("if w3 > 1 goto +9", I.jgt32_imm(R3, 1, 9)),
    ("goto -5", I.ja(-5)),
    ("call 7", I.call("get_prandom_u32")),
    ("call 1", I.call("bpf_map_lookup_elem")),
    ("exit", I.exit_()),
    ("r0 = *(u8 *)skb[4]", I.ld_abs(B, 4)),
    ("r0 = *(u32 *)skb[12]", I.ld_abs(W, 12)),
    ("r0 = *(u16 *)skb[r1]", I.ld_ind(H, R1, 0)),
    ("lock *(u64 *)(r1 + 8) += r2", I.atomic_add(DW, R1, R2, 8)),
    ("lock *(u32 *)(r1 - 8) += w2", I.atomic_add(W, R1, R2, -8)),
]


@pytest.fixture(scope="module")
def clang_listing(compile_bpf, objdump, tmp_path_factory) -> list:
    """``CLANG_ASM`` assembled by clang as inline assembly, listed by llvm-objdump."""
    body = "".join(f'\t\t"{text}\\n"\n' for text, _ in CLANG_ASM)
    src = Path(tmp_path_factory.mktemp("clangasm")) / "asm_inline.c"
    src.write_text(f"int f(void)\n{{\n\tasm volatile(\n{body}\t);\n\treturn 0;\n}}\n")
    return objdump(compile_bpf(src, src.with_suffix(".o"), "-mcpu=v3"))


@pytest.mark.parametrize("n", range(len(CLANG_ASM)), ids=[t for t, _ in CLANG_ASM])
def test_known_encoding_matches_clang(clang_listing: list, n: int) -> None:
    text, insn = CLANG_ASM[n]
    line = clang_listing[n]
    assert line.raw.hex(" ") == insn.encode().hex(" "), text
    assert Instruction.decode(line.raw) == insn


def test_clang_objects_round_trip(objdump, asm_progs_v1: Path, asm_progs_v3: Path) -> None:
    """Every instruction clang emits for the C test programs decodes and encodes back."""
    for obj in (asm_progs_v1, asm_progs_v3):
        listing = objdump(obj)
        assert len(listing) > 50
        for line in listing:
            assert Instruction.decode(line.raw).encode() == line.raw, line


_ADDR = r"r(?P<dst>\d+) (?P<off>[+-] \d+)"
_SIZE = r"u(?P<size>32|64) \*"
# llvm-objdump's text of an atomic -> the AtomicOp name, {op} the operation it names
_ATOMIC_TEXT = {
    rf"lock \*\({_SIZE}\)\({_ADDR}\) (?P<op>[+|&^])= [rw](?P<src>\d+)": "{op}",
    rf"[rw](?P<src>\d+) = atomic_fetch_(?P<op>add|and|or|xor)\(\({_SIZE}\)\({_ADDR}\), [rw]\d+\)":
        "FETCH_{op}",
    rf"[rw](?P<src>\d+) = xchg(?:32)?_(?P<size>32|64)\({_ADDR}, [rw]\d+\)": "XCHG",
    rf"[rw]0 = cmpxchg(?:32)?_(?P<size>32|64)\({_ADDR}, [rw]0, [rw](?P<src>\d+)\)": "CMPXCHG",
}
_SIGN_NAMES = {"+": "add", "|": "or", "&": "and", "^": "xor"}


def test_atomics_match_clang(objdump, asm_progs_v3: Path) -> None:
    """Each atomic clang emits (clang 14 cannot assemble them inline) equals pybpf's."""
    seen = set()
    for line in objdump(asm_progs_v3):
        for pattern, name in _ATOMIC_TEXT.items():
            m = re.fullmatch(pattern, line.text)
            if m:
                f = m.groupdict()
                op = AtomicOp[name.format(op=_SIGN_NAMES.get(f.get("op", ""), f.get("op", ""))
                                          .upper())]
                insn = I.atomic(W if f["size"] == "32" else DW, op, int(f["dst"]),
                                int(f["src"]), int(f["off"].replace(" ", "")))
                assert insn.encode() == line.raw, line
                seen.add(pattern)
    assert seen == set(_ATOMIC_TEXT)
