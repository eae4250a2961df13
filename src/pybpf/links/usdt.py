"""USDT probes (SystemTap SDT notes, ``.note.stapsdt``): find them, parse their argument
specs (x86-64), attach a program to every site of a probe as a uprobe with the probe's
semaphore as reference counter, and fetch arguments in the program (``fetch_arg``).

libbpf does the fetching in a BPF-side library (``usdt.bpf.h``) reading specs from maps;
pybpf emits the instructions for one spec straight into the program instead.
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Optional

from ..asm import (DW, FP, R0, R1, R2, R3, Instruction, add64_imm, arsh64_imm, call, ld_imm64,
                   ldx, lsh64_imm, mov64_imm, mov64_reg, rsh64_imm, st)
from ..errors import UsageError
from ..object import KernelObject
from .link import LinkGroup
from .uprobe import attach_uprobe, elf_file, resolve_binary

NT_STAPSDT = 3

PT_REGS_X86_64 = {"r15": 0, "r14": 8, "r13": 16, "r12": 24, "rbp": 32, "rbx": 40, "r11": 48,
                  "r10": 56, "r9": 64, "r8": 72, "rax": 80, "rcx": 88, "rdx": 96, "rsi": 104,
                  "rdi": 112, "rip": 128, "rsp": 152}
"""Offsets of the general registers in x86-64 ``struct pt_regs`` (a kprobe program's ctx)."""

_SUBREGS = {  # every name of a register's low parts -> the 64-bit register
    **{n: r for r, names in {
        "rax": ("eax", "ax", "al"), "rbx": ("ebx", "bx", "bl"), "rcx": ("ecx", "cx", "cl"),
        "rdx": ("edx", "dx", "dl"), "rsi": ("esi", "si", "sil"), "rdi": ("edi", "di", "dil"),
        "rbp": ("ebp", "bp", "bpl"), "rsp": ("esp", "sp", "spl"), "rip": ("eip",),
    }.items() for n in (r, *names)},
    **{n: f"r{i}" for i in range(8, 16) for n in (f"r{i}", f"r{i}d", f"r{i}w", f"r{i}b")},
}

_ARG = re.compile(r"""\s*(?P<size>-?\d+)\s*@\s*(?:
      \$(?P<const>-?(?:0x[0-9a-fA-F]+|\d+))
    | %(?P<reg>[a-z0-9]+)
    | (?P<off>-?(?:0x[0-9a-fA-F]+|\d+))?\(\s*%(?P<base>[a-z0-9]+)\s*\)
    )\s*$""", re.X)


@dataclass(frozen=True)
class UsdtArg:
    """One argument spec: ``size`` bytes, ``signed``; ``kind`` is ``const`` (``value``),
    ``reg`` (the 64-bit ``register``) or ``deref`` (memory at ``register`` + ``value``)."""

    text: str
    size: int
    signed: bool
    kind: str
    register: Optional[str] = None
    value: int = 0

    @property
    def pt_regs_offset(self) -> int:
        """Where ``register`` is in the kprobe context (x86-64 ``struct pt_regs``)."""
        if self.register is None:
            raise UsageError(f"USDT argument {self.text!r} reads no register")
        return PT_REGS_X86_64[self.register]


def parse_arg(text: str) -> UsdtArg:
    """One x86-64 SDT argument: ``-4@%eax``, ``8@-16(%rbp)``, ``8@(%rdi)``, ``-4@$-7``."""
    m = _ARG.fullmatch(text)
    if m is None:
        raise UsageError(f"USDT argument {text!r}: not a form pybpf understands on x86-64 "
                         "(N@$const, N@%reg, N@off(%reg))")
    size = int(m["size"])
    if abs(size) not in (1, 2, 4, 8):
        raise UsageError(f"USDT argument {text!r}: size {abs(size)} is not 1, 2, 4 or 8")
    if m["const"] is not None:
        return UsdtArg(text, abs(size), size < 0, "const", None, int(m["const"], 0))
    name = m["reg"] or m["base"]
    reg = _SUBREGS.get(name)
    if reg is None:
        raise UsageError(f"USDT argument {text!r}: unknown register %{name}")
    if m["reg"]:
        return UsdtArg(text, abs(size), size < 0, "reg", reg)
    return UsdtArg(text, abs(size), size < 0, "deref", reg, int(m["off"] or "0", 0))


def parse_args(text: str) -> tuple[UsdtArg, ...]:
    """The space-separated argument specs of a note."""
    return tuple(parse_arg(a) for a in text.split())


@dataclass(frozen=True)
class UsdtNote:
    """A USDT site: ``provider:name`` at ``address`` (file ``offset``), its ``semaphore``
    (address and file offset, 0 when the probe has none) and argument specs."""

    path: str
    provider: str
    name: str
    address: int
    offset: int
    base: int
    semaphore: int
    semaphore_offset: int
    args_text: str

    @property
    def args(self) -> tuple[UsdtArg, ...]:
        return parse_args(self.args_text)


def usdt_notes(binary: str) -> list[UsdtNote]:
    """Every USDT site in ``binary`` (a path, program or library name), in note order.

    Addresses are corrected for prelinking by the ``.stapsdt.base`` section, as SystemTap
    and libbpf do, and turned into file offsets through the loadable segments.
    """
    path = resolve_binary(binary)
    elf = elf_file(path)
    base_section = elf.sections.get(".stapsdt.base")
    notes = []
    data = elf.section_data(".note.stapsdt")
    addr_fmt = "<QQQ" if elf.elf_class == 64 else "<III"
    addr_size = struct.calcsize(addr_fmt)
    pos = 0
    while pos + 12 <= len(data):
        namesz, descsz, ntype = struct.unpack_from("<III", data, pos)
        name_start = pos + 12
        desc_start = name_start + (namesz + 3 & ~3)
        pos = desc_start + (descsz + 3 & ~3)
        if ntype != NT_STAPSDT or data[name_start:name_start + namesz] != b"stapsdt\0":
            continue
        desc = data[desc_start:desc_start + descsz]
        if len(desc) < addr_size:
            raise UsageError(f"{path}: truncated stapsdt note")
        pc, base, sema = struct.unpack_from(addr_fmt, desc)
        strings = desc[addr_size:].split(b"\0")
        if len(strings) < 3:
            raise UsageError(f"{path}: stapsdt note without provider, name and arguments")
        provider, name, args = (s.decode(errors="replace") for s in strings[:3])
        if base_section is not None and base:
            pc += base_section[0] - base
        notes.append(UsdtNote(path, provider, name, pc, elf.file_offset(pc), base, sema,
                              elf.file_offset(sema) if sema else 0, args))
    return notes


def find_usdt(binary: str, provider: str, name: str) -> list[UsdtNote]:
    """The sites of probe ``provider:name`` in ``binary``; an error lists the probes there."""
    notes = usdt_notes(binary)
    sites = [n for n in notes if n.provider == provider and n.name == name]
    if not sites:
        have = sorted({f"{n.provider}:{n.name}" for n in notes})
        raise UsageError(f"no USDT probe {provider}:{name} in {resolve_binary(binary)} "
                         f"(it has: {', '.join(have) or 'no USDT probes'})")
    return sites


def attach_usdt(program: KernelObject, binary: str, provider: str, name: str, *,
                pid: int = -1, cookie: int = 0) -> LinkGroup:
    """Run ``program`` (a kprobe program) at every site of USDT probe ``provider:name``.

    Each site is a uprobe; a probe with a semaphore gets it as the uprobe's reference counter,
    so the traced program sees the probe enabled while the group is attached.
    """
    sites = find_usdt(binary, provider, name)
    return LinkGroup.collect((attach_uprobe(program, site.path, offset=site.offset, pid=pid,
                                            ref_ctr_offset=site.semaphore_offset, cookie=cookie)
                              for site in sites), f"usdt {provider}:{name}")


def fetch_arg(arg: UsdtArg, dst: int, ctx: int, stack_off: int = -8) -> list[Instruction]:
    """Instructions that put USDT argument ``arg`` in register ``dst``, sign- or zero-extended
    to 64 bits, from the kprobe context pointer in ``ctx`` (``dst`` and ``ctx`` must not be
    R0-R3: a deref calls ``bpf_probe_read_user`` with the 8 stack bytes at ``stack_off``)."""
    if arg.kind == "const":
        return [ld_imm64(dst, arg.value & (1 << 64) - 1)]
    if dst in (R0, R1, R2, R3) or ctx in (R0, R1, R2, R3):
        raise UsageError("fetch_arg: dst and ctx must be callee-saved registers (R6-R9)")
    if arg.kind == "reg":
        insns = [ldx(DW, dst, ctx, arg.pt_regs_offset)]
    else:
        insns = [st(DW, FP, stack_off, 0),
                 ldx(DW, R3, ctx, arg.pt_regs_offset), add64_imm(R3, arg.value),
                 mov64_reg(R1, FP), add64_imm(R1, stack_off), mov64_imm(R2, arg.size),
                 call("probe_read_user"),
                 ldx(DW, dst, FP, stack_off)]
    shift = 64 - 8 * arg.size
    if shift:
        insns += [lsh64_imm(dst, shift), (arsh64_imm if arg.signed else rsh64_imm)(dst, shift)]
    return insns
