"""BCC's ``bcc.disassembler``: instructions and table layouts in BCC's notation.

``disassemble_str(code)`` gives one line per 8-byte slot, ``"%4d: (%02x) text"``: ``r1 += 4``,
``r2 |= 0xff``, ``if r1 > r2 goto pc+3 <7>``, ``goto -2 <5>``, ``r0 = *(u32*)skb[12]``,
``r3 = *(u64*)(r10 -8)``, ``call bpf_map_lookup_elem#1``, ``r1 = <map at fd #3>``, and the
second slot of a 64-bit load as ``(64-bit upper word)``. Instructions BCC's notation has no
form for (JMP32, atomics, sign extension, byte swaps, kfunc calls, other 64-bit loads) are
written as ``bpftool prog dump xlated`` writes them. ``disassemble_prog`` adds BCC's header;
``decode_map`` writes a table's key and value as C declarations from its ctypes classes
(``BPF.disassemble_func``, ``BPF.decode_table``).
"""
from __future__ import annotations

import ctypes as ct
import os
import struct
from typing import Any, Optional

from ..asm.opcodes import AluOp, Class, JmpOp, Mode, Size, Source
from ..sys.uapi import Helper, MapType, PseudoCall, PseudoSrc

_INSN = struct.Struct("<BBhi")
_BITS = {Size.B: 8, Size.H: 16, Size.W: 32, Size.DW: 64}
_ALU: dict[int, str] = {AluOp.ADD: "+=", AluOp.SUB: "-=", AluOp.MUL: "*=", AluOp.DIV: "/=", AluOp.OR: "|=",
        AluOp.AND: "&=", AluOp.LSH: "<<=", AluOp.RSH: ">>=", AluOp.MOD: "%=",
        AluOp.XOR: "^=", AluOp.MOV: "=", AluOp.ARSH: "s>>="}
_HEX_IMM = (AluOp.OR, AluOp.AND, AluOp.XOR)
_JMP: dict[int, str] = {JmpOp.JEQ: "==", JmpOp.JGT: ">", JmpOp.JGE: ">=", JmpOp.JSET: "&", JmpOp.JNE: "!=",
        JmpOp.JSGT: "s>", JmpOp.JSGE: "s>=", JmpOp.JLT: "<", JmpOp.JLE: "<=",
        JmpOp.JSLT: "s<", JmpOp.JSLE: "s<="}


def _bcc_text(i: int, code: int, dst: int, src: int, off: int, imm: int,
              upper: Optional[int]) -> Optional[str]:
    """Instruction ``i`` in BCC's notation, or None where BCC has no form for it."""
    cls, op, mode, size = code & 0x07, code & 0xF0, code & 0xE0, code & 0x18
    x = code & Source.X
    if cls in (Class.ALU, Class.ALU64):
        if op == AluOp.NEG and not x:
            return f"r{dst} = ~ (u{64 if cls == Class.ALU64 else 32})r{dst}"
        if op == AluOp.END:
            return f"r{dst} endian r{src}" if cls == Class.ALU and x else None
        if (op in (AluOp.DIV, AluOp.MOD) and off == 1) or (op == AluOp.MOV and x and off in (
                (8, 16, 32) if cls == Class.ALU64 else (8, 16))):
            return None  # sdiv, smod, movsx (cpu v4); BCC reads other offsets as unused
        if op not in _ALU:
            return None
        if x:
            return f"r{dst} {_ALU[op]} r{src}"
        return f"r{dst} {_ALU[op]} {imm & 0xFFFFFFFF:#x}" if op in _HEX_IMM else \
            f"r{dst} {_ALU[op]} {imm}"
    if cls == Class.JMP:
        if op == JmpOp.JA and not x:
            return f"goto {off:+d} <{i + off + 1}>"
        if op == JmpOp.EXIT:
            return "exit"
        if op == JmpOp.CALL:
            if src == PseudoCall.CALL:
                return f"call {imm:+d}"
            if src:  # a kfunc
                return None
            try:
                return f"call bpf_{Helper(imm).name}#{imm}"
            except ValueError:
                return f"call <unknown helper #{imm}>"
        if op in _JMP:
            rhs = f"r{src}" if x else str(imm)
            return f"if r{dst} {_JMP[op]} {rhs} goto pc{off:+d} <{i + off + 1}>"
        return None
    bits = _BITS[Size(size)]
    if cls == Class.LD:
        if mode == Mode.IMM and size == Size.DW:
            if upper is None:
                return f"r{dst} = <64-bit load missing its second slot>"
            if src == PseudoSrc.MAP_FD:
                return f"r{dst} = <map at fd #{imm}>"
            return f"r{dst} = {(upper & 0xFFFFFFFF) << 32 | imm & 0xFFFFFFFF:#x}" if not src \
                else None
        if mode == Mode.ABS:
            return f"r0 = *(u{bits}*)skb[{imm}]"
        if mode == Mode.IND:
            return f"r0 = *(u{bits}*)skb[r{src} {imm:+d}]"
        return None
    if mode != Mode.MEM:
        return None
    if cls == Class.LDX:
        return f"r{dst} = *(u{bits}*)(r{src} {off:+d})"
    if cls == Class.ST:
        return f"*(u{bits}*)(r{dst} {off:+d}) = {imm}"
    return f"*(u{bits}*)(r{dst} {off:+d}) = r{src}"


def disassemble_str(bpfstr: bytes) -> list[str]:
    """The instructions ``bpfstr`` (raw, little-endian), one line per 8-byte slot."""
    n = len(bpfstr) // 8
    insns = [_INSN.unpack_from(bpfstr, 8 * k) for k in range(n)]
    lines: list[str] = []
    upper_slot = False
    for i, (code, regs, off, imm) in enumerate(insns):
        if upper_slot:
            lines.append(f"{i:4d}:      (64-bit upper word)")
            upper_slot = False
            continue
        wide = code == Class.LD | Mode.IMM | Size.DW
        upper = insns[i + 1][3] if wide and i + 1 < n else None
        text = _bcc_text(i, code, regs & 0xF, regs >> 4, off, imm, upper)
        if text is None:
            text = _xlated_text(bpfstr[8 * i:8 * (i + 2 if wide else i + 1)])
        lines.append(f"{i:4d}: ({code:02x}) {text}")
        upper_slot = wide and upper is not None
    return lines


def _xlated_text(insn: bytes) -> str:
    """One instruction as ``bpftool prog dump xlated`` writes it (after its ``(op)``)."""
    from ..asm import disassemble
    line = next(iter(disassemble(insn)), "")
    return line.split(") ", 1)[1] if ") " in line else line.strip()


def disassemble_prog(func_name: Any, bpfstr: bytes) -> str:
    """BCC's ``disassemble_func`` text: a header naming ``func_name``, then the instructions."""
    return os.linesep.join([f"Disassemble of BPF program {func_name}:",
                            *disassemble_str(bpfstr)])


# -- table layouts ------------------------------------------------------------------------------
def _int_name(t: Any) -> str:
    """The C name of ctypes integer type ``t`` (``c_long`` is ``long long``: one 8-byte type
    in ctypes on 64-bit Linux)."""
    if t is ct.c_char:
        return "char"
    if t is ct.c_bool:
        return "_Bool"
    size, signed = ct.sizeof(t), t(-1).value == -1
    name = {1: "char", 2: "short", 4: "int", 8: "long long"}.get(size, f"__int{8 * size}")
    if size == 1:
        return "signed char" if signed else "unsigned char"
    return name if signed else f"unsigned {name}"


def _ctype_name(t: Any) -> str:
    """The C name of ctypes type ``t`` as BCC prints it (structs and unions unnamed)."""
    if issubclass(t, ct.Structure):
        return "struct"
    if issubclass(t, ct.Union):
        return "union"
    if issubclass(t, ct.Array):
        if t._type_ is ct.c_ulonglong and t._length_ == 2:
            return "unsigned __int128"
        return f"{_ctype_name(t._type_)}[{t._length_}]"
    floats = {ct.c_float: "float", ct.c_double: "double", ct.c_longdouble: "long double",
              ct.c_wchar: "wchar_t"}
    if t in floats:
        return floats[t]
    if issubclass(t, ct._SimpleCData) and t._type_ in "bBhHiIlLqQc?":
        return _int_name(t)
    return str(t)


def _layout(t: Any, indent: str, base: int, sizeinfo: bool) -> list[str]:
    """The members of Structure/Union ``t`` at byte ``base``, one C declaration each."""
    lines = []
    for field in t._fields_:
        name, ftype = field[0], field[1]
        if name.startswith("__pad") and name[5:].isdigit():
            continue  # pybpf's explicit padding of a packed layout
        desc = getattr(t, name)
        where = ""
        if len(field) == 3:  # a bitfield: CField.size is bit size << 16 | bit offset
            if sizeinfo:
                where = f"[{base + desc.offset},{desc.size & 0xFFFF} +{desc.size >> 16} bit] "
            lines.append(f"{indent}{where}{_ctype_name(ftype)} {name}:{field[2]};")
            continue
        if sizeinfo:
            where = f"[{base + desc.offset} +{ct.sizeof(ftype)}] "
        if issubclass(ftype, (ct.Structure, ct.Union)):
            lines.append(f"{indent}{where}{_ctype_name(ftype)} {{")
            lines += _layout(ftype, indent + "  ", base + desc.offset, sizeinfo)
            lines.append(f"{indent}}} {name};")
        else:
            lines.append(f"{indent}{where}{_ctype_name(ftype)} {name};")
    return lines


def _declaration(t: Any, name: str, sizeinfo: bool) -> list[str]:
    if issubclass(t, (ct.Structure, ct.Union)):
        return [f"  {_ctype_name(t)} {{", *_layout(t, "    ", 0, sizeinfo), f"  }} {name};"]
    return [f"  {_ctype_name(t)} {name};"]


def decode_map(map_name: Any, map_obj: Any, map_type: int, sizeinfo: bool = False) -> str:
    """BCC's ``decode_table`` text: the table's type, fd and id, then its key and value
    (``Key``/``Leaf``) as C declarations; ``sizeinfo``: each member's ``[offset +size]``."""
    try:
        type_name = MapType(map_type).name
    except ValueError:
        type_name = "<unknown>"
    return os.linesep.join([
        f"Layout of BPF map {map_name} (type {type_name}, FD {map_obj.map_fd}, "
        f"ID {map_obj.map_id}):",
        *_declaration(map_obj.Key, "key", sizeinfo),
        *_declaration(map_obj.Leaf, "value", sizeinfo)])
