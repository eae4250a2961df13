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
from .._lazy import exports

# each name imported from its module on first use; the instruction functions (every name in
# instructions.__all__) too: loading an object needs only ``opcodes``
__getattr__, __dir__ = exports(__name__, {
    ".assembler": "Assembler, Item, Label, assemble, label, resolve",
    ".disasm": "KernelSymbols, disassemble, format_instruction",
    ".insn": "INSN_SIZE, AssemblyError, Instruction, decode",
    ".opcodes": "B, DW, FETCH, FP, H, LD_IMM64, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, W, "
                "AluOp, AtomicOp, Class, JmpOp, Mode, Reg, Size, Source",
}, star=".instructions")
