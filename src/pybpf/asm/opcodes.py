"""The fields of an eBPF opcode byte (``include/uapi/linux/bpf_common.h`` and ``bpf.h``).

An opcode is ``class | op | source`` for ALU and JMP classes and ``class | size | mode`` for
loads and stores. Registers r0..r10 are ``Reg``; ``R10`` (alias ``FP``) is the read-only frame
pointer.
"""
from __future__ import annotations

from enum import IntEnum

from ..sys.fastenum import IntEnumBase, enum_of

__all__ = ["Reg", "R0", "R1", "R2", "R3", "R4", "R5", "R6", "R7", "R8", "R9", "R10", "FP",
           "Class", "Size", "B", "H", "W", "DW", "Mode", "Source", "AluOp", "JmpOp", "AtomicOp",
           "FETCH", "LD_IMM64", "MAX_REG"]


@enum_of(IntEnum)
class Reg(IntEnumBase):
    """A register: r0 return value, r1-r5 arguments (clobbered by calls), r6-r9 callee-saved."""

    R0 = 0
    R1 = 1
    R2 = 2
    R3 = 3
    R4 = 4
    R5 = 5
    R6 = 6
    R7 = 7
    R8 = 8
    R9 = 9
    R10 = 10
    FP = 10


R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10 = Reg
FP = Reg.FP
MAX_REG = 10  # the kernel rejects register numbers above r10


@enum_of(IntEnum)
class Class(IntEnumBase):
    """BPF_CLASS(code): the low 3 bits."""

    LD = 0x00
    LDX = 0x01
    ST = 0x02
    STX = 0x03
    ALU = 0x04
    JMP = 0x05
    JMP32 = 0x06
    ALU64 = 0x07


@enum_of(IntEnum)
class Size(IntEnumBase):
    """BPF_SIZE(code) of loads and stores."""

    W = 0x00
    H = 0x08
    B = 0x10
    DW = 0x18

    @property
    def bytes(self) -> int:
        """Width of the access in bytes."""
        return {Size.B: 1, Size.H: 2, Size.W: 4, Size.DW: 8}[self]


B, H, W, DW = Size.B, Size.H, Size.W, Size.DW


@enum_of(IntEnum)
class Mode(IntEnumBase):
    """BPF_MODE(code) of loads and stores."""

    IMM = 0x00
    ABS = 0x20
    IND = 0x40
    MEM = 0x60
    MEMSX = 0x80
    ATOMIC = 0xC0


@enum_of(IntEnum)
class Source(IntEnumBase):
    """BPF_SRC(code): operand from ``imm`` (K) or ``src`` (X); for BPF_END, the byte order."""

    K = 0x00
    X = 0x08
    TO_LE = 0x00
    TO_BE = 0x08


@enum_of(IntEnum)
class AluOp(IntEnumBase):
    """BPF_OP(code) of the ALU and ALU64 classes."""

    ADD = 0x00
    SUB = 0x10
    MUL = 0x20
    DIV = 0x30
    OR = 0x40
    AND = 0x50
    LSH = 0x60
    RSH = 0x70
    NEG = 0x80
    MOD = 0x90
    XOR = 0xA0
    MOV = 0xB0
    ARSH = 0xC0
    END = 0xD0


@enum_of(IntEnum)
class JmpOp(IntEnumBase):
    """BPF_OP(code) of the JMP and JMP32 classes."""

    JA = 0x00
    JEQ = 0x10
    JGT = 0x20
    JGE = 0x30
    JSET = 0x40
    JNE = 0x50
    JSGT = 0x60
    JSGE = 0x70
    CALL = 0x80
    EXIT = 0x90
    JLT = 0xA0
    JLE = 0xB0
    JSLT = 0xC0
    JSLE = 0xD0
    JCOND = 0xE0


FETCH = 0x01  # atomic op flag: the old value is loaded into src


@enum_of(IntEnum)
class AtomicOp(IntEnumBase):
    """``imm`` of a BPF_STX | BPF_ATOMIC instruction."""

    ADD = 0x00
    OR = 0x40
    AND = 0x50
    XOR = 0xA0
    FETCH_ADD = 0x00 | FETCH
    FETCH_OR = 0x40 | FETCH
    FETCH_AND = 0x50 | FETCH
    FETCH_XOR = 0xA0 | FETCH
    XCHG = 0xE0 | FETCH
    CMPXCHG = 0xF0 | FETCH
    LOAD_ACQ = 0x100
    STORE_REL = 0x110


LD_IMM64 = Class.LD | Mode.IMM | Size.DW  # 0x18: the only 16-byte instruction
