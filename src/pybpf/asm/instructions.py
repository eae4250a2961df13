"""One function per instruction, named as the kernel's ``filter.h`` macros and the ISA name them.

``mov64_imm(R0, 0)`` is ``BPF_MOV64_IMM(BPF_REG_0, 0)``; ``ldx(W, R1, R6, 4)`` is
``BPF_LDX_MEM(BPF_W, BPF_REG_1, BPF_REG_6, 4)``. ALU operations come as ``<op>64_imm``,
``<op>64_reg``, ``<op>32_imm``, ``<op>32_reg``; jumps as ``<op>_imm``, ``<op>_reg`` (64-bit
compare) and ``<op>32_imm``, ``<op>32_reg`` (32-bit compare). A jump or call ``target`` is a label
name, resolved by the assembler, or an int: the offset in instructions relative to the next one.
"""
from __future__ import annotations

import difflib
from typing import Callable, Tuple, Union

from ..sys.uapi import Helper, PseudoCall, PseudoSrc
from .insn import AssemblyError, Instruction
from .opcodes import (FETCH, LD_IMM64, MAX_REG, AluOp, AtomicOp, Class, JmpOp, Mode, Reg, Size,
                      Source)

Target = Union[int, str]
"""A label name or a relative offset (in instructions, from the next instruction)."""
RegLike = Union[Reg, int]

__all__ = [
    "Target", "helper_id", "alu64_imm", "alu64_reg", "alu32_imm", "alu32_reg", "neg64",
    "neg32", "movsx64_reg", "movsx32_reg", "le", "be", "bswap", "ldx", "ldx_sx", "stx", "st",
    "atomic", "atomic_add", "atomic_or", "atomic_and", "atomic_xor", "atomic_xchg",
    "atomic_cmpxchg", "load_acquire", "store_release", "ld_imm64", "ld_map_fd", "ld_map_value",
    "ld_btf_id", "ld_func", "ld_abs", "ld_ind", "jmp_imm", "jmp_reg", "jmp32_imm", "jmp32_reg",
    "ja", "ja32", "may_goto", "call", "call_subprog", "call_kfunc", "exit_",
    # <op>64_imm, <op>64_reg, <op>32_imm, <op>32_reg; j<cond>[32]_imm, j<cond>[32]_reg
    "add64_imm", "add64_reg", "add32_imm", "add32_reg", "sub64_imm", "sub64_reg", "sub32_imm",
    "sub32_reg", "mul64_imm", "mul64_reg", "mul32_imm", "mul32_reg", "div64_imm", "div64_reg",
    "div32_imm", "div32_reg", "sdiv64_imm", "sdiv64_reg", "sdiv32_imm", "sdiv32_reg",
    "mod64_imm", "mod64_reg", "mod32_imm", "mod32_reg", "smod64_imm", "smod64_reg",
    "smod32_imm", "smod32_reg", "or64_imm", "or64_reg", "or32_imm", "or32_reg", "and64_imm",
    "and64_reg", "and32_imm", "and32_reg", "lsh64_imm", "lsh64_reg", "lsh32_imm", "lsh32_reg",
    "rsh64_imm", "rsh64_reg", "rsh32_imm", "rsh32_reg", "arsh64_imm", "arsh64_reg",
    "arsh32_imm", "arsh32_reg", "xor64_imm", "xor64_reg", "xor32_imm", "xor32_reg",
    "mov64_imm", "mov64_reg", "mov32_imm", "mov32_reg", "jeq_imm", "jeq_reg", "jeq32_imm",
    "jeq32_reg", "jne_imm", "jne_reg", "jne32_imm", "jne32_reg", "jgt_imm", "jgt_reg",
    "jgt32_imm", "jgt32_reg", "jge_imm", "jge_reg", "jge32_imm", "jge32_reg", "jlt_imm",
    "jlt_reg", "jlt32_imm", "jlt32_reg", "jle_imm", "jle_reg", "jle32_imm", "jle32_reg",
    "jsgt_imm", "jsgt_reg", "jsgt32_imm", "jsgt32_reg", "jsge_imm", "jsge_reg", "jsge32_imm",
    "jsge32_reg", "jslt_imm", "jslt_reg", "jslt32_imm", "jslt32_reg", "jsle_imm", "jsle_reg",
    "jsle32_imm", "jsle32_reg", "jset_imm", "jset_reg", "jset32_imm", "jset32_reg",
]


def _reg(value: RegLike, what: str = "register") -> int:
    """``value`` checked to be r0..r10."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_REG:
        raise AssemblyError(f"bad {what} {value!r}: eBPF registers are R0..R10 (pybpf.asm.R0)")
    return int(value)


def _jump(opcode: int, dst: int, src: int, imm: int, target: Target) -> Instruction:
    """A control transfer to ``target``: a label, or an offset placed as ``resolved`` does."""
    if isinstance(target, str):
        return Instruction(opcode, dst, src, 0, imm, target=target)
    return Instruction(opcode, dst, src, 0, imm).resolved(target)


# --- ALU -------------------------------------------------------------------------------------

def _alu(cls: Class, op: AluOp, dst: RegLike, src: RegLike, imm: int, source: Source,
         off: int = 0) -> Instruction:
    return Instruction(cls | op | source, _reg(dst), _reg(src, "source register"), off, imm)


def alu64_imm(op: AluOp, dst: RegLike, imm: int) -> Instruction:
    """``dst = dst <op> imm`` on 64 bits, imm sign-extended (BPF_ALU64_IMM)."""
    return _alu(Class.ALU64, op, dst, 0, imm, Source.K)


def alu64_reg(op: AluOp, dst: RegLike, src: RegLike) -> Instruction:
    """``dst = dst <op> src`` on 64 bits (BPF_ALU64_REG)."""
    return _alu(Class.ALU64, op, dst, src, 0, Source.X)


def alu32_imm(op: AluOp, dst: RegLike, imm: int) -> Instruction:
    """``wdst = wdst <op> imm`` on the low 32 bits, upper 32 zeroed (BPF_ALU32_IMM)."""
    return _alu(Class.ALU, op, dst, 0, imm, Source.K)


def alu32_reg(op: AluOp, dst: RegLike, src: RegLike) -> Instruction:
    """``wdst = wdst <op> wsrc`` on the low 32 bits, upper 32 zeroed (BPF_ALU32_REG)."""
    return _alu(Class.ALU, op, dst, src, 0, Source.X)


AluImm = Callable[[RegLike, int], Instruction]
AluReg = Callable[[RegLike, RegLike], Instruction]


def _alu_family(op: AluOp, off: int = 0) -> Tuple[AluImm, AluReg, AluImm, AluReg]:
    """The four forms (64 imm, 64 reg, 32 imm, 32 reg) of ``op``; ``off`` 1 selects signed
    division and modulo (cpu v4)."""
    name = ("s" if off else "") + op.name.lower()

    def forms(cls: Class) -> Tuple[AluImm, AluReg]:
        width = "64" if cls == Class.ALU64 else "32"

        def imm_form(dst: RegLike, imm: int) -> Instruction:
            return _alu(cls, op, dst, 0, imm, Source.K, off)

        def reg_form(dst: RegLike, src: RegLike) -> Instruction:
            return _alu(cls, op, dst, src, 0, Source.X, off)

        for fn, kind in ((imm_form, "imm"), (reg_form, "reg")):
            fn.__name__ = fn.__qualname__ = f"{name}{width}_{kind}"
            fn.__doc__ = (f"BPF_ALU{width}_{kind.upper()}(BPF_{name.upper()}, dst, "
                          f"{'src' if kind == 'reg' else 'imm'}): {width}-bit {name}.")
        return imm_form, reg_form

    return (*forms(Class.ALU64), *forms(Class.ALU))


add64_imm, add64_reg, add32_imm, add32_reg = _alu_family(AluOp.ADD)
sub64_imm, sub64_reg, sub32_imm, sub32_reg = _alu_family(AluOp.SUB)
mul64_imm, mul64_reg, mul32_imm, mul32_reg = _alu_family(AluOp.MUL)
div64_imm, div64_reg, div32_imm, div32_reg = _alu_family(AluOp.DIV)
sdiv64_imm, sdiv64_reg, sdiv32_imm, sdiv32_reg = _alu_family(AluOp.DIV, off=1)
mod64_imm, mod64_reg, mod32_imm, mod32_reg = _alu_family(AluOp.MOD)
smod64_imm, smod64_reg, smod32_imm, smod32_reg = _alu_family(AluOp.MOD, off=1)
or64_imm, or64_reg, or32_imm, or32_reg = _alu_family(AluOp.OR)
and64_imm, and64_reg, and32_imm, and32_reg = _alu_family(AluOp.AND)
lsh64_imm, lsh64_reg, lsh32_imm, lsh32_reg = _alu_family(AluOp.LSH)
rsh64_imm, rsh64_reg, rsh32_imm, rsh32_reg = _alu_family(AluOp.RSH)
arsh64_imm, arsh64_reg, arsh32_imm, arsh32_reg = _alu_family(AluOp.ARSH)
xor64_imm, xor64_reg, xor32_imm, xor32_reg = _alu_family(AluOp.XOR)
mov64_imm, mov64_reg, mov32_imm, mov32_reg = _alu_family(AluOp.MOV)


def neg64(dst: RegLike) -> Instruction:
    """``dst = -dst`` (64-bit)."""
    return _alu(Class.ALU64, AluOp.NEG, dst, 0, 0, Source.K)


def neg32(dst: RegLike) -> Instruction:
    """``wdst = -wdst`` (32-bit)."""
    return _alu(Class.ALU, AluOp.NEG, dst, 0, 0, Source.K)


def _movsx(cls: Class, dst: RegLike, src: RegLike, bits: int,
           allowed: Tuple[int, ...]) -> Instruction:
    if bits not in allowed:
        raise AssemblyError(f"movsx sign-extends from {', '.join(map(str, allowed))} bits, "
                            f"not {bits}")
    return _alu(cls, AluOp.MOV, dst, src, 0, Source.X, off=bits)


def movsx64_reg(dst: RegLike, src: RegLike, bits: int) -> Instruction:
    """``dst = (s<bits>)src``, sign-extending the low 8, 16 or 32 bits (cpu v4)."""
    return _movsx(Class.ALU64, dst, src, bits, (8, 16, 32))


def movsx32_reg(dst: RegLike, src: RegLike, bits: int) -> Instruction:
    """``wdst = (s<bits>)wsrc``, sign-extending the low 8 or 16 bits (cpu v4)."""
    return _movsx(Class.ALU, dst, src, bits, (8, 16))


def _endian(cls: Class, order: Source, dst: RegLike, bits: int) -> Instruction:
    if bits not in (16, 32, 64):
        raise AssemblyError(f"byte swaps are 16, 32 or 64 bits wide, not {bits}")
    return _alu(cls, AluOp.END, dst, 0, bits, order)


def le(dst: RegLike, bits: int) -> Instruction:
    """``dst = htole<bits>(dst)``: truncate (and swap on big-endian hosts), zero-extend."""
    return _endian(Class.ALU, Source.TO_LE, dst, bits)


def be(dst: RegLike, bits: int) -> Instruction:
    """``dst = htobe<bits>(dst)``: truncate (and swap on little-endian hosts), zero-extend."""
    return _endian(Class.ALU, Source.TO_BE, dst, bits)


def bswap(dst: RegLike, bits: int) -> Instruction:
    """``dst = bswap<bits>(dst)``: unconditional byte swap of the low bits (cpu v4)."""
    return _endian(Class.ALU64, Source.TO_LE, dst, bits)


# --- memory ----------------------------------------------------------------------------------

def ldx(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``dst = *(u<size> *)(src + off)``, zero-extended (BPF_LDX_MEM)."""
    return Instruction(Class.LDX | size | Mode.MEM, _reg(dst), _reg(src, "source register"), off)


def ldx_sx(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``dst = *(s<size> *)(src + off)``, sign-extended; size B, H or W (BPF_LDX_MEMSX, v4)."""
    return Instruction(Class.LDX | size | Mode.MEMSX, _reg(dst), _reg(src, "source register"),
                       off)


def stx(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``*(u<size> *)(dst + off) = src`` (BPF_STX_MEM)."""
    return Instruction(Class.STX | size | Mode.MEM, _reg(dst), _reg(src, "source register"), off)


def st(size: Size, dst: RegLike, off: int, imm: int) -> Instruction:
    """``*(u<size> *)(dst + off) = imm`` (BPF_ST_MEM)."""
    return Instruction(Class.ST | size | Mode.MEM, _reg(dst), 0, off, imm)


def atomic(size: Size, op: AtomicOp, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """Atomic ``op`` on ``*(size *)(dst + off)`` with ``src`` (BPF_ATOMIC_OP); size W or DW,
    any size for load-acquire and store-release."""
    return Instruction(Class.STX | size | Mode.ATOMIC, _reg(dst), _reg(src, "source register"),
                       off, int(op))


def _atomic_alu(op: AtomicOp) -> Callable[..., Instruction]:
    def build(size: Size, dst: RegLike, src: RegLike, off: int, fetch: bool = False) -> Instruction:
        return atomic(size, AtomicOp(op | (FETCH if fetch else 0)), dst, src, off)
    name = op.name.lower()
    build.__name__ = build.__qualname__ = f"atomic_{name}"
    build.__doc__ = (f"``lock *(size *)(dst + off) {name}= src``; with ``fetch`` the old value "
                     "is loaded into src.")
    return build


atomic_add = _atomic_alu(AtomicOp.ADD)
atomic_or = _atomic_alu(AtomicOp.OR)
atomic_and = _atomic_alu(AtomicOp.AND)
atomic_xor = _atomic_alu(AtomicOp.XOR)


def atomic_xchg(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``src = xchg(*(size *)(dst + off), src)``."""
    return atomic(size, AtomicOp.XCHG, dst, src, off)


def atomic_cmpxchg(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``r0 = cmpxchg(*(size *)(dst + off), r0, src)``: store src if the value equals r0."""
    return atomic(size, AtomicOp.CMPXCHG, dst, src, off)


def load_acquire(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``dst = load_acquire(*(size *)(src + off))`` (Linux 6.15)."""
    return atomic(size, AtomicOp.LOAD_ACQ, dst, src, off)


def store_release(size: Size, dst: RegLike, src: RegLike, off: int) -> Instruction:
    """``store_release(*(size *)(dst + off), src)`` (Linux 6.15)."""
    return atomic(size, AtomicOp.STORE_REL, dst, src, off)


# --- 64-bit immediates and legacy packet loads ---------------------------------------------

def ld_imm64(dst: RegLike, value: int, src: int = 0) -> Instruction:
    """``dst = value`` (64 bits, two slots); ``src`` a ``PseudoSrc`` reinterprets the value."""
    return Instruction(LD_IMM64, _reg(dst), src, 0, value)


def ld_map_fd(dst: RegLike, fd: int) -> Instruction:
    """``dst = &map`` of map ``fd`` (BPF_LD_MAP_FD; src=BPF_PSEUDO_MAP_FD)."""
    return ld_imm64(dst, fd, PseudoSrc.MAP_FD)


def ld_map_value(dst: RegLike, fd: int, off: int = 0) -> Instruction:
    """``dst = &value[0] + off`` of array map ``fd`` (src=BPF_PSEUDO_MAP_VALUE)."""
    return ld_imm64(dst, (off & 0xFFFFFFFF) << 32 | (fd & 0xFFFFFFFF), PseudoSrc.MAP_VALUE)


def ld_btf_id(dst: RegLike, btf_id: int, btf_obj_fd: int = 0) -> Instruction:
    """``dst = &ksym`` of the BTF variable ``btf_id`` in vmlinux, or in module BTF
    ``btf_obj_fd`` (src=BPF_PSEUDO_BTF_ID)."""
    return ld_imm64(dst, (btf_obj_fd & 0xFFFFFFFF) << 32 | (btf_id & 0xFFFFFFFF),
                    PseudoSrc.BTF_ID)


def ld_func(dst: RegLike, target: Target) -> Instruction:
    """``dst = &subprog`` for callbacks such as bpf_loop (src=BPF_PSEUDO_FUNC)."""
    return _jump(LD_IMM64, _reg(dst), PseudoSrc.FUNC, 0, target)


def ld_abs(size: Size, imm: int) -> Instruction:
    """``r0 = ntoh(*(size *)(skb->data + imm))``, legacy socket filter load (BPF_LD_ABS)."""
    return Instruction(Class.LD | size | Mode.ABS, 0, 0, 0, imm)


def ld_ind(size: Size, src: RegLike, imm: int) -> Instruction:
    """``r0 = ntoh(*(size *)(skb->data + src + imm))`` (BPF_LD_IND)."""
    return Instruction(Class.LD | size | Mode.IND, 0, _reg(src, "source register"), 0, imm)


# --- jumps and calls -------------------------------------------------------------------------

def jmp_imm(op: JmpOp, dst: RegLike, imm: int, target: Target) -> Instruction:
    """``if dst <op> imm goto target``, 64-bit compare (BPF_JMP_IMM)."""
    return _jump(Class.JMP | op | Source.K, _reg(dst), 0, imm, target)


def jmp_reg(op: JmpOp, dst: RegLike, src: RegLike, target: Target) -> Instruction:
    """``if dst <op> src goto target``, 64-bit compare (BPF_JMP_REG)."""
    return _jump(Class.JMP | op | Source.X, _reg(dst), _reg(src, "source register"), 0, target)


def jmp32_imm(op: JmpOp, dst: RegLike, imm: int, target: Target) -> Instruction:
    """``if wdst <op> imm goto target``, 32-bit compare (BPF_JMP32_IMM)."""
    return _jump(Class.JMP32 | op | Source.K, _reg(dst), 0, imm, target)


def jmp32_reg(op: JmpOp, dst: RegLike, src: RegLike, target: Target) -> Instruction:
    """``if wdst <op> wsrc goto target``, 32-bit compare (BPF_JMP32_REG)."""
    return _jump(Class.JMP32 | op | Source.X, _reg(dst), _reg(src, "source register"), 0, target)


JmpImm = Callable[[RegLike, int, Target], Instruction]
JmpReg = Callable[[RegLike, RegLike, Target], Instruction]


def _jmp_family(op: JmpOp) -> Tuple[JmpImm, JmpReg, JmpImm, JmpReg]:
    """``j<op>_imm``, ``j<op>_reg``, ``j<op>32_imm``, ``j<op>32_reg`` from the generic forms."""
    base = op.name.lower()

    def forms(width: str) -> Tuple[JmpImm, JmpReg]:
        generic_imm, generic_reg = (jmp_imm, jmp_reg) if width == "" else (jmp32_imm, jmp32_reg)

        def imm_form(dst: RegLike, imm: int, target: Target) -> Instruction:
            return generic_imm(op, dst, imm, target)

        def reg_form(dst: RegLike, src: RegLike, target: Target) -> Instruction:
            return generic_reg(op, dst, src, target)

        for fn, kind in ((imm_form, "imm"), (reg_form, "reg")):
            fn.__name__ = fn.__qualname__ = f"{base}{width}_{kind}"
            fn.__doc__ = (f"BPF_JMP{width}_{kind.upper()}(BPF_{op.name}, dst, "
                          f"{'src' if kind == 'reg' else 'imm'}, target): "
                          f"{width or '64'}-bit compare.")
        return imm_form, reg_form

    return (*forms(""), *forms("32"))


jeq_imm, jeq_reg, jeq32_imm, jeq32_reg = _jmp_family(JmpOp.JEQ)
jne_imm, jne_reg, jne32_imm, jne32_reg = _jmp_family(JmpOp.JNE)
jgt_imm, jgt_reg, jgt32_imm, jgt32_reg = _jmp_family(JmpOp.JGT)
jge_imm, jge_reg, jge32_imm, jge32_reg = _jmp_family(JmpOp.JGE)
jlt_imm, jlt_reg, jlt32_imm, jlt32_reg = _jmp_family(JmpOp.JLT)
jle_imm, jle_reg, jle32_imm, jle32_reg = _jmp_family(JmpOp.JLE)
jsgt_imm, jsgt_reg, jsgt32_imm, jsgt32_reg = _jmp_family(JmpOp.JSGT)
jsge_imm, jsge_reg, jsge32_imm, jsge32_reg = _jmp_family(JmpOp.JSGE)
jslt_imm, jslt_reg, jslt32_imm, jslt32_reg = _jmp_family(JmpOp.JSLT)
jsle_imm, jsle_reg, jsle32_imm, jsle32_reg = _jmp_family(JmpOp.JSLE)
jset_imm, jset_reg, jset32_imm, jset32_reg = _jmp_family(JmpOp.JSET)


def ja(target: Target) -> Instruction:
    """``goto target`` within -32768..32767 instructions (BPF_JMP_A)."""
    return _jump(Class.JMP | JmpOp.JA, 0, 0, 0, target)


def ja32(target: Target) -> Instruction:
    """``gotol target``: offset in the 32-bit imm (BPF_JMP32 | BPF_JA, cpu v4)."""
    return _jump(Class.JMP32 | JmpOp.JA, 0, 0, 0, target)


def may_goto(target: Target) -> Instruction:
    """``may_goto target``: taken once the kernel's loop budget runs out (Linux 6.9)."""
    return _jump(Class.JMP | JmpOp.JCOND, 0, 0, 0, target)


def helper_id(helper: Union[str, int]) -> int:
    """The id of a helper given by id, ``Helper`` member or name (``bpf_`` prefix optional)."""
    if not isinstance(helper, str):
        return int(helper)
    name = helper[4:] if helper.startswith("bpf_") else helper
    try:
        return Helper[name]
    except KeyError:
        close = difflib.get_close_matches(name, Helper.__members__, n=5, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else \
            "; see pybpf.sys.uapi.Helper for the helpers this kernel knows"
        raise AssemblyError(f"unknown helper {helper!r}{hint}") from None


def call(helper: Union[str, int]) -> Instruction:
    """Call a helper: ``call("map_lookup_elem")``, ``call(Helper.ktime_get_ns)`` or ``call(5)``."""
    return Instruction(Class.JMP | JmpOp.CALL, 0, 0, 0, helper_id(helper))


def call_subprog(target: Target) -> Instruction:
    """bpf-to-bpf call of the function at ``target`` (src=BPF_PSEUDO_CALL, imm=offset)."""
    return _jump(Class.JMP | JmpOp.CALL, 0, PseudoCall.CALL, 0, target)


def call_kfunc(btf_id: int, fd_index: int = 0) -> Instruction:
    """Call the kernel function ``btf_id`` of vmlinux (``fd_index`` 0) or of the module BTF at
    ``fd_array[fd_index]`` (src=BPF_PSEUDO_KFUNC_CALL)."""
    return Instruction(Class.JMP | JmpOp.CALL, 0, PseudoCall.KFUNC_CALL, fd_index, btf_id)


def exit_() -> Instruction:
    """Return r0 to the caller (BPF_EXIT_INSN)."""
    return Instruction(Class.JMP | JmpOp.EXIT)
