"""One eBPF instruction (``struct bpf_insn``) and its 8- or 16-byte encoding.

``struct bpf_insn`` is ``u8 code; u8 dst_reg:4, src_reg:4; s16 off; s32 imm`` in host byte order.
A 64-bit immediate load (``BPF_LD | BPF_IMM | BPF_DW``) takes two slots: the second holds the
upper 32 bits in its ``imm`` and zeros elsewhere; here it is one ``Instruction`` whose ``imm`` is
the 64-bit constant.
"""
from __future__ import annotations

import struct
import sys
from dataclasses import dataclass, replace
from typing import Optional

from ..errors import UsageError
from .opcodes import LD_IMM64, Class, JmpOp, Size, Source

__all__ = ["AssemblyError", "Instruction", "decode", "INSN_SIZE"]

INSN_SIZE = 8
_LAYOUT = struct.Struct("=BBhi")  # host byte order, as the kernel reads it
_DST_LOW = sys.byteorder == "little"  # bitfield order of dst_reg:4, src_reg:4


class AssemblyError(UsageError):
    """An instruction cannot be built, assembled or decoded; the message says which and why."""


def _signed(value: int, bits: int, what: str, unsigned_ok: bool = True) -> int:
    """``value`` as a two's complement ``bits``-bit integer; unsigned spellings are accepted
    unless ``unsigned_ok`` is false."""
    limit = 1 << (bits if unsigned_ok else bits - 1)
    if not -(1 << (bits - 1)) <= value < limit:
        raise AssemblyError(f"{what} {value} does not fit in {bits} bits")
    return value - (1 << bits) if value >= 1 << (bits - 1) else value


@dataclass(frozen=True)
class Instruction:
    """An instruction: ``opcode``, ``dst``/``src`` register fields, ``off`` (s16), ``imm``.

    ``imm`` is s32, or s64 for a 64-bit immediate load. ``target`` names a label whose
    relative offset the assembler puts into ``off`` (jumps) or ``imm`` (``gotol``, calls of
    subprograms, ``ld_imm64`` of a function); ``encode`` refuses unresolved targets.
    """

    opcode: int
    dst: int = 0
    src: int = 0
    off: int = 0
    imm: int = 0
    target: Optional[str] = None

    def __post_init__(self) -> None:
        if not 0 <= self.opcode <= 0xFF:
            raise AssemblyError(f"opcode {self.opcode:#x} does not fit in 8 bits")
        for name in ("dst", "src"):
            if not 0 <= getattr(self, name) <= 0xF:
                raise AssemblyError(f"{name} field {getattr(self, name)} does not fit in 4 bits")
        object.__setattr__(self, "off", _signed(self.off, 16, "offset", unsigned_ok=False))
        object.__setattr__(self, "imm", _signed(self.imm, 64 if self.is_wide else 32,
                                                "immediate"))

    @property
    def cls(self) -> Class:
        """BPF_CLASS: the instruction class."""
        return Class(self.opcode & 0x07)

    @property
    def op(self) -> int:
        """BPF_OP: the ALU or JMP operation (``AluOp``/``JmpOp`` value)."""
        return self.opcode & 0xF0

    @property
    def source(self) -> Source:
        """BPF_SRC: K (immediate operand) or X (register operand)."""
        return Source(self.opcode & 0x08)

    @property
    def size(self) -> Size:
        """BPF_SIZE of a load or store."""
        return Size(self.opcode & 0x18)

    @property
    def mode(self) -> int:
        """BPF_MODE of a load or store (a ``Mode`` value, or an unknown one)."""
        return self.opcode & 0xE0

    @property
    def is_wide(self) -> bool:
        """True for the 16-byte 64-bit immediate load."""
        return self.opcode == LD_IMM64

    @property
    def slots(self) -> int:
        """How many 8-byte ``struct bpf_insn`` slots the instruction takes."""
        return 2 if self.is_wide else 1

    @property
    def target_in_imm(self) -> bool:
        """True when the relative offset of ``target`` goes into ``imm`` rather than ``off``."""
        return (self.is_wide or self.op == JmpOp.CALL
                or self.opcode == Class.JMP32 | JmpOp.JA)

    def resolved(self, delta: int) -> Instruction:
        """This instruction jumping ``delta`` slots past the next one, ``target`` cleared."""
        if self.target_in_imm:
            return replace(self, imm=_signed(delta, 32, f"offset to {self.target!r}"), target=None)
        if not -(1 << 15) <= delta < 1 << 15:
            raise AssemblyError(f"jump to {self.target!r} is {delta} instructions away, beyond "
                                "the 16-bit offset (-32768..32767); use ja32 (gotol) for long "
                                "jumps")
        return replace(self, off=delta, target=None)

    def encode(self) -> bytes:
        """The 8 (or 16) bytes the kernel reads, in host byte order."""
        if self.target is not None:
            raise AssemblyError(f"instruction {self} jumps to unresolved label {self.target!r}")
        regs = (self.src << 4 | self.dst) if _DST_LOW else (self.dst << 4 | self.src)
        if not self.is_wide:
            return _LAYOUT.pack(self.opcode, regs, self.off, self.imm)
        low = _signed(self.imm & 0xFFFFFFFF, 32, "immediate")
        high = self.imm >> 32
        return _LAYOUT.pack(self.opcode, regs, self.off, low) + _LAYOUT.pack(0, 0, 0, high)

    def __bytes__(self) -> bytes:
        return self.encode()

    @classmethod
    def decode(cls, data: bytes, offset: int = 0) -> Instruction:
        """The instruction at byte ``offset`` of ``data`` (16 bytes for a 64-bit load)."""
        if len(data) - offset < INSN_SIZE:
            raise AssemblyError(f"truncated instruction at byte {offset}: need {INSN_SIZE} bytes")
        code, regs, off, imm = _LAYOUT.unpack_from(data, offset)
        dst, src = (regs & 0xF, regs >> 4) if _DST_LOW else (regs >> 4, regs & 0xF)
        if code != LD_IMM64:
            return cls(code, dst, src, off, imm)
        if len(data) - offset < 2 * INSN_SIZE:
            raise AssemblyError(f"truncated 64-bit immediate load at byte {offset}: "
                                "the second half is missing")
        code2, regs2, off2, high = _LAYOUT.unpack_from(data, offset + INSN_SIZE)
        if code2 or regs2 or off2:
            raise AssemblyError(f"malformed 64-bit immediate load at byte {offset}: the second "
                                "half must be zero except its imm")
        return cls(code, dst, src, off, high << 32 | (imm & 0xFFFFFFFF))


def decode(code: bytes) -> list[Instruction]:
    """All instructions of a program's bytes (``len(code)`` a multiple of 8)."""
    if len(code) % INSN_SIZE:
        raise AssemblyError(f"program of {len(code)} bytes is not a whole number of "
                            f"{INSN_SIZE}-byte instructions")
    out: list[Instruction] = []
    pos = 0
    while pos < len(code):
        insn = Instruction.decode(code, pos)
        out.append(insn)
        pos += insn.slots * INSN_SIZE
    return out
