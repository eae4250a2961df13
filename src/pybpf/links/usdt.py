"""USDT probes (SystemTap SDT notes, ``.note.stapsdt``): find them, parse their argument
specs (x86-64), attach a program to every site of a probe as a uprobe with the probe's
semaphore as reference counter, and give the program the arguments, two ways:

- inline: ``fetch_arg`` emits the instructions that fetch one argument straight into the
  program (pybpf's own form; the BPF cookie is the caller's);
- libbpf's convention (``<bpf/usdt.bpf.h>``: ``bpf_usdt_arg()``, ``bpf_usdt_arg_cnt()``,
  ``bpf_usdt_cookie()``): each site's argument specs are written at attach time as a
  ``struct __bpf_usdt_spec`` into the object's ``__bpf_usdt_specs`` array under a spec id,
  which the program finds in its BPF cookie, or, where the kernel has no BPF cookies
  (``LINUX_HAS_BPF_COOKIE`` false), in ``__bpf_usdt_ip_to_spec_id`` by the probe's address.
"""
from __future__ import annotations

import errno as _errno
import os
import re
import struct
import threading
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from ..asm import (DW, FP, R0, R1, R2, R3, Instruction, add64_imm, arsh64_imm, call, ld_imm64,
                   ldx, lsh64_imm, mov64_imm, mov64_reg, rsh64_imm, st)
from ..elf.reader import ET_DYN
from ..errors import BPFError, UsageError
from ..maps import Map
from ..object import KernelObject
from ..sys import probes
from ..sys.uapi import Helper, ProgType, UpdateFlag
from .link import Attachment, LinkGroup
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
    binfile = elf_file(path)
    elf = binfile.elf
    base_section = elf.section(".stapsdt.base")
    section = elf.section(".note.stapsdt")
    if section is None:
        return []
    addr_fmt = "QQQ" if elf.elf_class == 64 else "III"
    addr_size = struct.calcsize("=" + addr_fmt)
    notes = []
    for note in elf.notes(section):
        if note.type != NT_STAPSDT or note.name != b"stapsdt":
            continue
        if len(note.desc) < addr_size:
            raise UsageError(f"{path}: truncated stapsdt note")
        pc, base, sema = elf.unpack(addr_fmt, note.desc)
        strings = note.desc[addr_size:].split(b"\0")
        if len(strings) < 3:
            raise UsageError(f"{path}: stapsdt note without provider, name and arguments")
        provider, name, args = (s.decode(errors="replace") for s in strings[:3])
        if base_section is not None and base:
            pc += base_section.addr - base
        notes.append(UsdtNote(path, provider, name, pc, binfile.file_offset(pc), base, sema,
                              binfile.file_offset(sema) if sema else 0, args))
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


SPECS_MAP = "__bpf_usdt_specs"
IP_MAP = "__bpf_usdt_ip_to_spec_id"
MAX_SPEC_ARGS = 12  # BPF_USDT_MAX_ARG_CNT of usdt.bpf.h
_ARG_SPEC = struct.Struct("=QIh?B")  # struct __bpf_usdt_arg_spec: val_off, arg_type, reg_off,
#                                      arg_signed, arg_bitshift (16 bytes)
_SPEC_TAIL = struct.Struct("=Qh")     # usdt_cookie, arg_cnt after the args array
SPEC_SIZE = 208  # sizeof(struct __bpf_usdt_spec): 12 * 16 + 8 + 2, padded to 8
_ARG_TYPES = {"const": 0, "reg": 1, "deref": 2}  # enum __bpf_usdt_arg_type


def encode_spec(args: Sequence[UsdtArg], cookie: int = 0) -> bytes:
    """``struct __bpf_usdt_spec`` (usdt.bpf.h) for one site: each argument's kind (constant,
    register, memory at register + offset), its ``struct pt_regs`` offset, sign and the shift
    that narrows the fetched 8 bytes to its size; then the user's cookie and the count."""
    if len(args) > MAX_SPEC_ARGS:
        raise UsageError(f"USDT site with {len(args)} arguments: usdt.bpf.h holds at most "
                         f"{MAX_SPEC_ARGS}")
    out = bytearray(SPEC_SIZE)
    for i, a in enumerate(args):
        _ARG_SPEC.pack_into(out, i * _ARG_SPEC.size, a.value & (1 << 64) - 1, _ARG_TYPES[a.kind],
                            a.pt_regs_offset if a.register else 0, a.signed, 64 - 8 * a.size)
    _SPEC_TAIL.pack_into(out, MAX_SPEC_ARGS * _ARG_SPEC.size, cookie & (1 << 64) - 1, len(args))
    return bytes(out)


class _SpecIds:
    """The spec ids in use in one ``__bpf_usdt_specs`` map (libbpf's per-object allocator):
    freed ids first, then the next never used, up to the map's size."""

    def __init__(self, capacity: int) -> None:
        self.capacity, self.next, self.used = capacity, 0, 0
        self.free: list[int] = []

    def take(self, what: str) -> int:
        if self.free:
            spec_id = self.free.pop()
        elif self.next < self.capacity:
            spec_id, self.next = self.next, self.next + 1
        else:
            raise UsageError(f"{what}: all {self.capacity} entries of {SPECS_MAP} are in use; "
                             "define BPF_USDT_MAX_SPEC_CNT larger before including usdt.bpf.h")
        self.used += 1
        return spec_id

    def give(self, spec_id: int) -> None:
        self.free.append(spec_id)
        self.used -= 1


_SPEC_IDS: dict[int, _SpecIds] = {}  # by the specs map's kernel id
_SPEC_IDS_LOCK = threading.Lock()


@dataclass
class UsdtSpecMaps:
    """libbpf's USDT maps of an object built with ``<bpf/usdt.bpf.h>``.

    ``specs`` is ``__bpf_usdt_specs`` (spec id -> ``struct __bpf_usdt_spec``),
    ``ip_to_spec_id`` is ``__bpf_usdt_ip_to_spec_id`` (probe address -> spec id). The program
    takes its spec id from the BPF cookie when its ``LINUX_HAS_BPF_COOKIE`` is true, else from
    ``ip_to_spec_id``; ``by_cookie`` says which (None: the probe the loader sets
    ``LINUX_HAS_BPF_COOKIE`` by, as libbpf decides both by one probe; give it when the object
    was loaded with a ``kconfig`` override of that value).
    """

    specs: Map
    ip_to_spec_id: Optional[Map] = None
    by_cookie: Optional[bool] = None

    @classmethod
    def of(cls, program: KernelObject) -> Optional["UsdtSpecMaps"]:
        """The maps of the object ``program`` was loaded from (an ``ObjectProgram``'s
        ``object_maps``), or None when that object has no ``__bpf_usdt_specs``."""
        maps: Mapping[str, Map] = getattr(program, "object_maps", None) or {}
        if SPECS_MAP not in maps:
            return None
        return cls(maps[SPECS_MAP], maps.get(IP_MAP))

    def cookies(self) -> bool:
        """Does the program find its spec id in the BPF cookie?"""
        if self.by_cookie is not None:
            return self.by_cookie
        return bool(probes.helper(ProgType.KPROBE, Helper.get_attach_cookie))


class UsdtLinks(LinkGroup):
    """The uprobes of a USDT probe attached with libbpf's spec maps: closing them also frees
    their spec ids and removes their address entries."""

    def __init__(self, links: Sequence[Attachment], name: str,
                 release: Callable[[], None]) -> None:
        super().__init__(links, name)
        self._release: Optional[Callable[[], None]] = release

    def close(self) -> None:
        super().close()
        release, self._release = self._release, None
        if release is not None:
            release()


def attach_usdt(program: KernelObject, binary: str, provider: str, name: str, *,
                pid: int = -1, cookie: int = 0,
                spec_maps: Optional[UsdtSpecMaps] = None) -> LinkGroup:
    """Run ``program`` (a kprobe program) at every site of USDT probe ``provider:name``.

    Each site is a uprobe; a probe with a semaphore gets it as the uprobe's reference counter,
    so the traced program sees the probe enabled while the group is attached. A program of an
    object built with ``<bpf/usdt.bpf.h>`` (or given ``spec_maps``) gets each site's argument
    specs in the object's spec maps and ``cookie`` as its ``bpf_usdt_cookie()``; any other
    program gets ``cookie`` as its BPF cookie and fetches arguments inline (``fetch_arg``).
    """
    sites = find_usdt(binary, provider, name)
    what = f"usdt {provider}:{name}"
    if spec_maps is None:
        spec_maps = UsdtSpecMaps.of(program)
    if spec_maps is not None:
        return _attach_with_specs(program, sites, spec_maps, pid, cookie, what)
    return LinkGroup.collect((attach_uprobe(program, site.path, offset=site.offset, pid=pid,
                                            ref_ctr_offset=site.semaphore_offset, cookie=cookie)
                              for site in sites), what)


def _attach_with_specs(program: KernelObject, sites: list[UsdtNote], maps: UsdtSpecMaps,
                       pid: int, cookie: int, what: str) -> LinkGroup:
    """As libbpf's ``usdt_manager_attach_usdt``: one spec id per distinct argument spec
    string of the probe, written before the uprobes exist; the spec id is each uprobe's BPF
    cookie, or the value of the site's absolute address in ``ip_to_spec_id``."""
    by_cookie = maps.cookies()
    if not by_cookie and maps.ip_to_spec_id is None:
        raise UsageError(f"{what}: {program.describe()} finds its spec id by address (no BPF "
                         f"cookies), but no {IP_MAP} map was given")
    if maps.specs.value_size != SPEC_SIZE:
        raise UsageError(f"{what}: {maps.specs.describe()} has {maps.specs.value_size}-byte "
                         f"values, not the {SPEC_SIZE} of usdt.bpf.h's struct __bpf_usdt_spec")
    # own fds, with raw codecs: the attachment's, whatever the caller does with its maps
    specs = Map.from_fd(maps.specs.fd, key="i", value=f"{SPEC_SIZE}s")
    ips = Map.from_fd(maps.ip_to_spec_id.fd, key="q", value="I") \
        if maps.ip_to_spec_id is not None and not by_cookie else None
    map_id = specs.id
    with _SPEC_IDS_LOCK:
        ids = _SPEC_IDS.setdefault(map_id, _SpecIds(specs.max_entries))
    taken: list[int] = []
    addresses: list[int] = []

    def release() -> None:
        if ips is not None:
            for ip in addresses:
                try:
                    ips.delete(ip)
                except BPFError:
                    pass  # already gone with the map
            ips.close()
        with _SPEC_IDS_LOCK:
            for spec_id in taken:
                ids.give(spec_id)
            if ids.used == 0:
                _SPEC_IDS.pop(map_id, None)
        specs.close()

    links: list[Attachment] = []
    try:
        by_args: dict[str, int] = {}
        for site in sites:
            spec_id = by_args.get(site.args_text)
            if spec_id is None:
                with _SPEC_IDS_LOCK:
                    spec_id = ids.take(what)
                taken.append(spec_id)
                specs[spec_id] = encode_spec(site.args, cookie)
                by_args[site.args_text] = spec_id
            if ips is not None:
                ip = _absolute_address(site, pid, what)
                try:
                    ips.update(ip, spec_id, UpdateFlag.NOEXIST)
                except BPFError as e:
                    if e.errno != _errno.EEXIST:
                        raise
                    raise UsageError(f"{what}: address {ip:#x} in {site.path} is already in "
                                     f"{IP_MAP} for another attachment (an IP collision: "
                                     "without BPF cookies one address has one spec)") from None
                addresses.append(ip)
            links.append(attach_uprobe(program, site.path, offset=site.offset, pid=pid,
                                       ref_ctr_offset=site.semaphore_offset,
                                       cookie=spec_id if by_cookie else 0))
    except BaseException:
        for link in links:
            link.close()
        release()
        raise
    return UsdtLinks(links, what, release)


def _absolute_address(site: UsdtNote, pid: int, what: str) -> int:
    """The address the program sees for ``site`` (its ``PT_REGS_IP``): the note's address in a
    fixed-address executable; in a shared library or PIE program, where process ``pid`` mapped
    the site's file offset (``pybpf.symbols``: /proc/PID/maps)."""
    if elf_file(site.path).elf.type != ET_DYN:
        return site.address
    if pid < 0:
        raise UsageError(f"{what}: {site.path} is position-independent, so without BPF cookies "
                         "the site's address is known only in one process: give pid=")
    from ..symbols import ProcessSymbols
    where = ProcessSymbols(pid).runtime_address(os.path.realpath(site.path), site.offset)
    if where is None:
        raise UsageError(f"{what}: process {pid} maps no {site.path} at file offset "
                         f"{site.offset:#x} (is it running, and does it load that file?)")
    return where


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
