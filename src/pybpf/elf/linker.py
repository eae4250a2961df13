"""Linking one program: its entry function plus every subprogram it reaches, as libbpf does.

Subprograms are appended after the entry function in the order calls reach them (each once
per program), and every call and function-address load gets its relative offset. The
``.BTF.ext`` records of each appended function move with it. Map, data and extern
references come out with absolute instruction indices for the loader to patch with fds.
Pure: no kernel.
"""
from __future__ import annotations


from .._record import field, record
from ..asm import rewrite as I
from ..btf.ext import CoreRelo, FuncInfo, LineInfo
from ..sys.uapi import INSN_SIZE, PseudoCall, PseudoSrc
from .spec import FuncKey, Function, ObjectSpec, ProgramSpec, Reference, RefKind


@record
class LinkedProgram:
    """A program's final code (still without fds) and its records, indices absolute."""

    code: bytearray
    refs: list[Reference] = field(default_factory=list)
    func_info: list[FuncInfo] = field(default_factory=list)
    line_info: list[LineInfo] = field(default_factory=list)
    core_relos: list[CoreRelo] = field(default_factory=list)
    functions: list[tuple[int, Function]] = field(default_factory=list)  # (start, function)

    def function_at(self, insn: int) -> Function:
        """The function instruction ``insn`` belongs to."""
        found = self.functions[0][1]
        for start, fn in self.functions:
            if start <= insn:
                found = fn
        return found


def link(spec: ObjectSpec, prog: ProgramSpec) -> LinkedProgram:
    """``prog``'s code with its subprograms appended and calls relocated."""
    order = spec.byte_order
    entry = prog.function
    out = LinkedProgram(bytearray(entry.code))
    placed: dict[FuncKey, int] = {entry.key: 0}
    queue: list[tuple[int, Function]] = [(0, entry)]
    out.functions.append((0, entry))
    while queue:
        base, fn = queue.pop(0)
        out.func_info += [r._replace(insn_off=r.insn_off + base) for r in fn.func_info]
        out.line_info += [r._replace(insn_off=r.insn_off + base) for r in fn.line_info]
        out.core_relos += [r._replace(insn_off=r.insn_off + base) for r in fn.core_relos]
        for ref in fn.refs:
            idx = base + ref.insn
            if ref.kind not in (RefKind.CALL, RefKind.FUNC_ADDR):
                out.refs.append(ref._replace(insn=idx))
                continue
            target = spec.functions[ref.target]
            if target.key not in placed:
                placed[target.key] = len(out.code) // INSN_SIZE
                out.code += target.code
                queue.append((placed[target.key], target))
                out.functions.append((placed[target.key], target))
            rel = placed[target.key] - idx - 1
            if ref.kind == RefKind.CALL:
                I.patch(out.code, idx, order, src=PseudoCall.CALL, imm=rel)
            else:  # BPF_PSEUDO_FUNC: the verifier reads the target from imm, like a call
                I.patch(out.code, idx, order, src=PseudoSrc.FUNC, imm=rel)
                I.patch(out.code, idx + 1, order, imm=0)
    return out
