"""eBPF instructions: encoding, an assembler with labels, and a bpftool-compatible disassembler.

Programs are lists of instructions and labels::

    from pybpf.asm import *
    code = assemble([
        ldx(W, R2, R1, 0),
        jeq_imm(R2, 0, "zero"),
        call("ktime_get_ns"),
        exit_(),
        label("zero"),
        mov64_imm(R0, 0),
        exit_(),
    ])
    print("\\n".join(disassemble(code)))

This package never calls the kernel.
"""
from . import instructions as _instructions
from .assembler import Assembler, Item, Label, assemble, label, resolve
from .disasm import KernelSymbols, disassemble, format_instruction
from .insn import INSN_SIZE, AssemblyError, Instruction, decode
from .instructions import *  # noqa: F401,F403  (one function per instruction)
from .opcodes import (B, DW, FETCH, FP, H, LD_IMM64, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10,
                      W, AluOp, AtomicOp, Class, JmpOp, Mode, Reg, Size, Source)

__all__ = ["Assembler", "Item", "Label", "assemble", "label", "resolve", "KernelSymbols",
           "disassemble", "format_instruction", "INSN_SIZE", "AssemblyError", "Instruction",
           "decode", "B", "DW", "FETCH", "FP", "H", "LD_IMM64", "R0", "R1", "R2", "R3", "R4", "R5",
           "R6", "R7", "R8", "R9", "R10", "W", "AluOp", "AtomicOp", "Class", "JmpOp", "Mode", "Reg",
           "Size", "Source", *_instructions.__all__]
