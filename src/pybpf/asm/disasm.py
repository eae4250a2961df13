"""Disassembly in the kernel's notation, line for line as ``bpftool prog dump xlated`` prints it.

The instruction text follows the kernel's ``print_bpf_insn`` (``kernel/bpf/disasm.c``); 64-bit
immediates name maps as bpftool does (``map[id:N]``, ``map[id:N][0]+off``, ``subprog[+n]``).

Calls are named in one of two ways. Without ``symbols`` an instruction is read as written by its
author (a helper id, a subprogram offset in ``imm``): ``call bpf_ktime_get_ns#5``,
``call pc+3``, as the verifier log prints them. With ``symbols`` (``KernelSymbols``) it is read
as the kernel translated it (``BPF_OBJ_GET_INFO_BY_FD``'s ``xlated_prog_insns``): helper and
kfunc calls hold a kernel address relative to ``__bpf_call_base``, named from /proc/kallsyms
(``call __htab_map_lookup_elem#123456``), and subprogram calls hold the offset in ``off`` and
the subprogram index in ``imm``, named from the program's ``jited_ksyms``
(``call pc+5#bpf_prog_4c1d1b0c66e3d3a4_sub``), exactly as bpftool names them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Optional, Sequence

from ..sys import kallsyms
from ..sys.uapi import Helper, PseudoCall, PseudoSrc
from .insn import INSN_SIZE, Instruction
from .opcodes import AluOp, AtomicOp, Class, JmpOp, Mode, Size, Source

__all__ = ["KernelSymbols", "format_instruction", "disassemble"]

_ALU: dict[int, str] = {
    AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
    AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.NEG: "neg", AluOp.MOD: "%=",
    AluOp.XOR: "^=", AluOp.MOV: "=", AluOp.ARSH: "s>>=", AluOp.END: "endian"}
_ALU_SIGNED: dict[int, str] = {AluOp.DIV: "s/=", AluOp.MOD: "s%="}
_MOVSX: dict[int, str] = {8: "(s8)", 16: "(s16)", 32: "(s32)"}
_ATOMIC_FETCH: dict[int, str] = {AtomicOp.FETCH_ADD: "add", AtomicOp.FETCH_AND: "and",
                                 AtomicOp.FETCH_OR: "or", AtomicOp.FETCH_XOR: "xor"}
_UNSIGNED: dict[int, str] = {Size.W: "u32", Size.H: "u16", Size.B: "u8", Size.DW: "u64"}
_SIGNED: dict[int, str] = {Size.W: "s32", Size.H: "s16", Size.B: "s8"}
_JMP: dict[int, str] = {
    JmpOp.JA: "jmp", JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JLT: "<", JmpOp.JGE: ">=",
    JmpOp.JLE: "<=", JmpOp.JSET: "&", JmpOp.JNE: "!=", JmpOp.JSGT: "s>", JmpOp.JSLT: "s<",
    JmpOp.JSGE: "s>=", JmpOp.JSLE: "s<=", JmpOp.CALL: "call", JmpOp.EXIT: "exit"}
_NULL = "(null)"  # what printf makes of the kernel's missing table entries
_MODE_NOSPEC = 0xC0  # BPF_ST | BPF_NOSPEC, kernel-internal speculation barrier
_ADDR_SPACE_CAST = 1  # off of ALU64 MOV X: arena address space cast
_ADDR_PERCPU = -1  # off of ALU64 MOV X: per-cpu address (kernel-internal)
_U64 = (1 << 64) - 1
_HELPER_NAMES = {int(h): f"bpf_{h.name}" for h in Helper}  # the kernel's func_id_str


@dataclass(frozen=True)
class KernelSymbols:
    """Kernel symbols by address and the address of ``__bpf_call_base``, as bpftool loads them
    from /proc/kallsyms (nothing at all when kptr_restrict hides the addresses)."""

    names: Mapping[int, str] = field(default_factory=dict)
    call_base: int = 0

    @classmethod
    def parse(cls, text: str) -> KernelSymbols:
        """Symbols from the text of /proc/kallsyms."""
        return cls._of(kallsyms.parse(text.splitlines()))

    @classmethod
    def load(cls, path: str = kallsyms.KALLSYMS) -> KernelSymbols:
        """Symbols of the running kernel; none when ``path`` cannot be read."""
        try:
            return cls._of(kallsyms.read(path))
        except OSError:
            return cls()

    @classmethod
    def _of(cls, symbols: Iterable[tuple[int, str, str]]) -> KernelSymbols:
        names: dict[int, str] = {}
        call_base = 0
        for address, _, name in symbols:
            if name == "__bpf_call_base":
                if not address:
                    return cls()  # addresses hidden (kptr_restrict)
                call_base = address
            if address:
                names.setdefault(address, name)
        return cls(names, call_base)


def _s32(value: int) -> int:
    return value - (1 << 32) if value >= 1 << 31 else value


def _imm64(insn: Instruction) -> str:
    """bpftool's ``print_imm``."""
    low, high = insn.imm & 0xFFFFFFFF, (insn.imm >> 32) & 0xFFFFFFFF
    if insn.src == PseudoSrc.MAP_FD:
        return f"map[id:{low}]"
    if insn.src == PseudoSrc.MAP_VALUE:
        return f"map[id:{low}][0]+{high}"
    if insn.src == PseudoSrc.FUNC:
        return f"subprog[{_s32(low):+d}]"
    return f"0x{insn.imm & _U64:x}"


def _call(insn: Instruction, symbols: Optional[KernelSymbols], jited_ksyms: Sequence[int]) -> str:
    """The callee of a call instruction: the kernel's ``__func_get_name`` with bpftool's
    ``print_call`` callback when ``symbols`` are given."""
    if insn.src == 0 and insn.imm in _HELPER_NAMES:
        name = _HELPER_NAMES[insn.imm]
    elif symbols is not None:
        address = (symbols.call_base + insn.imm) & _U64
        if insn.src == PseudoCall.CALL and 0 <= insn.imm < len(jited_ksyms):
            address = jited_ksyms[insn.imm]
        sym = symbols.names.get(address)
        if insn.src != PseudoCall.CALL:
            name = sym if sym is not None else f"0x{address:x}"
        elif not jited_ksyms:
            name = f"{insn.off:+d}"
        else:
            name = f"{insn.off:+d}#{sym if sym is not None else f'0x{address:x}'}"
    elif insn.src == PseudoCall.CALL:
        name = f"{insn.imm:+d}"
    elif insn.src == PseudoCall.KFUNC_CALL:
        name = "kernel-function"
    else:
        name = "unknown"
    if insn.src == PseudoCall.CALL:
        return f"call pc{name}"
    return f"call {name}#{insn.imm}"


def _alu(insn: Instruction) -> str:
    r = "r" if insn.cls == Class.ALU64 else "w"
    d = insn.dst
    if insn.op == AluOp.END:
        if insn.cls == Class.ALU64:
            return f"r{d} = bswap{insn.imm} r{d}"
        return f"r{d} = {'be' if insn.source == Source.TO_BE else 'le'}{insn.imm} r{d}"
    if insn.op == AluOp.NEG:
        return f"{r}{d} = -{r}{d}"
    if insn.opcode == Class.ALU64 | AluOp.MOV | Source.X and insn.off == _ADDR_SPACE_CAST:
        imm = insn.imm & 0xFFFFFFFF
        return f"r{d} = addr_space_cast(r{insn.src}, {imm >> 16}, {imm & 0xFFFF})"
    if insn.opcode == Class.ALU64 | AluOp.MOV | Source.X and insn.off == _ADDR_PERCPU:
        return f"r{d} = &(void __percpu *)(r{insn.src})"
    if insn.op in _ALU_SIGNED and insn.off == 1:
        op = _ALU_SIGNED[insn.op]
    else:
        op = _ALU.get(insn.op, _NULL)
    if insn.source == Source.K:
        return f"{r}{d} {op} {insn.imm}"
    movsx = _MOVSX.get(insn.off, "") if insn.op == AluOp.MOV else ""
    return f"{r}{d} {op} {movsx}{r}{insn.src}"


def _stx(insn: Instruction) -> Optional[str]:
    size, d, s, off = _UNSIGNED[insn.size], insn.dst, insn.src, insn.off
    if insn.mode == Mode.MEM:
        return f"*({size} *)(r{d} {off:+d}) = r{s}"
    if insn.mode != Mode.ATOMIC:
        return None
    bits = "64" if insn.size == Size.DW else ""
    if insn.imm in (AtomicOp.ADD, AtomicOp.AND, AtomicOp.OR, AtomicOp.XOR):
        return f"lock *({size} *)(r{d} {off:+d}) {_ALU[insn.imm]} r{s}"
    if insn.imm in _ATOMIC_FETCH:
        return (f"r{s} = atomic{bits}_fetch_{_ATOMIC_FETCH[insn.imm]}"
                f"(({size} *)(r{d} {off:+d}), r{s})")
    if insn.imm == AtomicOp.CMPXCHG:
        return f"r0 = atomic{bits}_cmpxchg(({size} *)(r{d} {off:+d}), r0, r{s})"
    if insn.imm == AtomicOp.XCHG:
        return f"r{s} = atomic{bits}_xchg(({size} *)(r{d} {off:+d}), r{s})"
    if insn.imm == AtomicOp.LOAD_ACQ:
        return f"r{d} = load_acquire(({size} *)(r{s} {off:+d}))"
    if insn.imm == AtomicOp.STORE_REL:
        return f"store_release(({size} *)(r{d} {off:+d}), r{s})"
    return None


def _jmp(insn: Instruction, symbols: Optional[KernelSymbols], jited_ksyms: Sequence[int]) -> str:
    r = "w" if insn.cls == Class.JMP32 else "r"
    if insn.op == JmpOp.CALL:
        return _call(insn, symbols, jited_ksyms)
    if insn.opcode == Class.JMP | JmpOp.JA:
        return f"goto pc{insn.off:+d}"
    if insn.opcode == Class.JMP | JmpOp.JA | Source.X:
        return f"gotox r{insn.dst}"
    if insn.opcode == Class.JMP | JmpOp.JCOND and insn.src == 0:
        return f"may_goto pc{insn.off:+d}"
    if insn.opcode == Class.JMP32 | JmpOp.JA:
        return f"gotol pc{insn.imm:+d}"
    if insn.opcode == Class.JMP | JmpOp.EXIT:
        return "exit"
    op = _JMP.get(insn.op, _NULL)
    if insn.source == Source.X:
        return f"if {r}{insn.dst} {op} {r}{insn.src} goto pc{insn.off:+d}"
    return f"if {r}{insn.dst} {op} 0x{insn.imm & 0xFFFFFFFF:x} goto pc{insn.off:+d}"


def format_instruction(insn: Instruction, symbols: Optional[KernelSymbols] = None,
                       jited_ksyms: Sequence[int] = ()) -> str:
    """One instruction as bpftool prints it after the index: ``(b7) r0 = 0``; ``BUG_...`` for
    encodings the kernel does not know."""
    code, cls = insn.opcode, insn.cls
    text: Optional[str]
    if cls in (Class.ALU, Class.ALU64):
        text = _alu(insn)
    elif cls == Class.STX:
        text = _stx(insn)
        if text is None:
            return f"BUG_{code:02x}"
    elif cls == Class.ST:
        if insn.mode == Mode.MEM:
            text = f"*({_UNSIGNED[insn.size]} *)(r{insn.dst} {insn.off:+d}) = {insn.imm}"
        elif insn.mode == _MODE_NOSPEC:
            text = "nospec"
        else:
            return f"BUG_st_{code:02x}"
    elif cls == Class.LDX:
        if insn.mode == Mode.MEM:
            size = _UNSIGNED[insn.size]
        elif insn.mode == Mode.MEMSX:
            size = _SIGNED.get(insn.size, _NULL)
        else:
            return f"BUG_ldx_{code:02x}"
        text = f"r{insn.dst} = *({size} *)(r{insn.src} {insn.off:+d})"
    elif cls == Class.LD:
        size = _UNSIGNED[insn.size]
        if insn.mode == Mode.ABS:
            text = f"r0 = *({size} *)skb[{insn.imm}]"
        elif insn.mode == Mode.IND:
            text = f"r0 = *({size} *)skb[r{insn.src} + {insn.imm}]"
        elif insn.is_wide:
            text = f"r{insn.dst} = {_imm64(insn)}"
        else:
            return f"BUG_ld_{code:02x}"
    else:
        text = _jmp(insn, symbols, jited_ksyms)
    return f"({code:02x}) {text}"


def disassemble(code: bytes, *, opcodes: bool = False, symbols: Optional[KernelSymbols] = None,
                jited_ksyms: Sequence[int] = ()) -> list[str]:
    """The lines of ``bpftool prog dump xlated`` (``opcodes`` adds the byte dump lines) for the
    program ``code``; ``symbols`` and ``jited_ksyms`` read it as translated by the kernel."""
    lines = []
    pc = 0
    while pc * INSN_SIZE < len(code):
        insn = Instruction.decode(code, pc * INSN_SIZE)
        lines.append(f"{pc: 4d}: {format_instruction(insn, symbols, jited_ksyms)}")
        if opcodes:
            raw = code[pc * INSN_SIZE:(pc + insn.slots) * INSN_SIZE]
            lines.append("       " + " ".join(f"{b:02x}" for b in raw))
        pc += insn.slots
    return lines
