"""Reading and patching ``struct bpf_insn`` fields in encoded code, in place.

Loaders relocate code as bytes (no decode of whole programs): these helpers touch one field of
one instruction. ``order`` is the code's byte order ("little" | "big"); the register nibbles
swap with it (``dst_reg:4, src_reg:4`` is a bitfield). The ELF loader and CO-RE
(``pybpf.btf.core``) both patch through here.
"""
from __future__ import annotations

import struct
from typing import Union

from ..sys.uapi import INSN_SIZE
from .opcodes import LD_IMM64, Class, JmpOp

CALL = Class.JMP | JmpOp.CALL  # 0x85
# libbpf's "bad relo" helper id: the verifier says "invalid func unknown#195896080"
POISON_HELPER = 0xBAD2310
POISON_MAP_BASE = 2001000000  # + map index: a ld_imm64 of a map not created (libbpf's value)
_FMT = {"little": struct.Struct("<BBhi"), "big": struct.Struct(">BBhi")}


def fields(code: Union[bytes, bytearray], idx: int, order: str) -> tuple[int, int, int, int, int]:
    """(opcode, dst, src, off, imm) of instruction ``idx``."""
    op, regs, off, imm = _FMT[order].unpack_from(code, idx * INSN_SIZE)
    if order == "little":
        return op, regs & 0xF, regs >> 4, off, imm
    return op, regs >> 4, regs & 0xF, off, imm


def patch(code: bytearray, idx: int, order: str, *, op: int = -1, src: int = -1,
          dst: int = -1, off: int | None = None, imm: int | None = None) -> None:
    """Set some fields of instruction ``idx`` (an unset field keeps its value)."""
    o, d, s, f, i = fields(code, idx, order)
    o = o if op < 0 else op
    d = d if dst < 0 else dst
    s = s if src < 0 else src
    f = f if off is None else off
    i = i if imm is None else _s32(imm)
    regs = (s << 4 | d) if order == "little" else (d << 4 | s)
    _FMT[order].pack_into(code, idx * INSN_SIZE, o, regs, f, i)


def set_imm64(code: bytearray, idx: int, order: str, value: int, src: int = 0) -> None:
    """Make instruction ``idx`` (a 64-bit immediate load) load ``value``."""
    patch(code, idx, order, src=src, imm=value & 0xFFFFFFFF)
    patch(code, idx + 1, order, imm=(value >> 32) & 0xFFFFFFFF)


def poison(code: bytearray, idx: int, order: str, helper: int = POISON_HELPER) -> None:
    """Replace instruction ``idx`` with ``call 0xbad2310`` (both slots of a ld_imm64), as
    libbpf marks code the verifier must prove dead: reaching it fails the load. ``helper``:
    another marker (``POISON_MAP_BASE`` + map index for a map that was not created)."""
    slots = 2 if code[idx * INSN_SIZE] == LD_IMM64 and (idx + 2) * INSN_SIZE <= len(code) else 1
    for i in range(idx, idx + slots):
        _FMT[order].pack_into(code, i * INSN_SIZE, CALL, 0, 0, helper)


def _s32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v
