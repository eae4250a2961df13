"""Programs from instructions and labels: label references resolved, bytes for BPF_PROG_LOAD.

A label names the instruction that follows it. Jumps, ``call_subprog`` and ``ld_func`` name a
label as their target; the relative offset (in 8-byte slots, from the slot after the
instruction, as the kernel counts) is filled in when the program is assembled.
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Iterable, Union

from .insn import AssemblyError, Instruction

__all__ = ["Label", "label", "Item", "Assembler", "resolve", "assemble"]


@dataclass(frozen=True)
class Label:
    """A position in a program, named for jumps and calls to it."""

    name: str


def label(name: str) -> Label:
    """The label ``name``, to place before the instruction it names."""
    return Label(name)


Item = Union[Instruction, Label]


def resolve(items: Iterable[Item]) -> list[Instruction]:
    """The instructions of ``items`` with every label target replaced by its offset."""
    insns: list[tuple[int, Instruction]] = []
    labels: dict[str, int] = {}
    pc = 0
    for item in items:
        if isinstance(item, Label):
            if item.name in labels:
                raise AssemblyError(f"duplicate label {item.name!r} (at instructions "
                                    f"{labels[item.name]} and {pc})")
            labels[item.name] = pc
        elif isinstance(item, Instruction):
            insns.append((pc, item))
            pc += item.slots
        else:
            raise AssemblyError(f"{item!r} is neither an Instruction nor a Label")
    out = []
    for pc, insn in insns:
        if insn.target is not None:
            if insn.target not in labels:
                close = difflib.get_close_matches(insn.target, labels, n=3)
                hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
                raise AssemblyError(f"undefined label {insn.target!r} (used by instruction "
                                    f"{pc}){hint}")
            insn = insn.resolved(labels[insn.target] - pc - 1)
        out.append(insn)
    return out


def assemble(items: Iterable[Item]) -> bytes:
    """The program's bytes, ready for BPF_PROG_LOAD (``len // 8`` is its insn_cnt)."""
    return b"".join(insn.encode() for insn in resolve(items))


class Assembler:
    """Builds a program step by step: ``emit`` instructions, place ``label``s, ``assemble``.

    ``Assembler().emit(mov64_imm(R0, 0), jeq_imm(R1, 0, "out"), mov64_imm(R0, 1))
    .label("out").emit(exit_()).assemble()``
    """

    def __init__(self, items: Iterable[Item] = ()) -> None:
        self.items: list[Item] = []
        self.emit(*items)

    def emit(self, *items: Union[Item, Iterable[Item]]) -> Assembler:
        """Append instructions and labels (or sequences of them); returns self to chain."""
        for item in items:
            if isinstance(item, (Instruction, Label)):
                self.items.append(item)
            else:
                self.emit(*item)
        return self

    def label(self, name: str) -> Assembler:
        """Name the next instruction ``name``; returns self to chain."""
        self.items.append(Label(name))
        return self

    @property
    def insn_count(self) -> int:
        """The number of 8-byte slots (``insn_cnt`` of BPF_PROG_LOAD)."""
        return sum(item.slots for item in self.items if isinstance(item, Instruction))

    def __len__(self) -> int:
        return self.insn_count

    def instructions(self) -> list[Instruction]:
        """The instructions with labels resolved."""
        return resolve(self.items)

    def assemble(self) -> bytes:
        """The program's bytes, ready for BPF_PROG_LOAD."""
        return assemble(self.items)

