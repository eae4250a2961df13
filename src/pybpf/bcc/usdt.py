"""BCC's ``bcc.usdt``: USDT probes of a binary or a process, their argument-reading C code,
and their attachment as uprobes, on :mod:`pybpf.links.usdt` (SDT notes, argument specs).

Use, as in BCC::

    u = USDT(pid=1234)                      # or USDT(path="/usr/bin/python3"), or both
    u.enable_probe("provider:probe", "fn")  # the BPF function "fn" runs at every site
    b = BPF(text=program, usdt_contexts=[u])

What ``BPF`` uses of a context (plain methods):

- ``get_text()``: C code to put before the program: for each enabled probe and each argument
  N (1-based), ``static __always_inline int _bpf_readarg_<fn>_<N>(struct pt_regs *ctx,
  void *dest, size_t len)`` storing the argument (as ``get_probe_arg_ctype`` types it) in
  ``dest`` and returning 0, or -1 when ``len`` is not its size. The translator turns
  ``bpf_usdt_readarg(N, ctx, &v)`` in function ``fn`` into
  ``_bpf_readarg_<fn>_<N>(ctx, &v, sizeof(*(&v)))`` and ``bpf_usdt_readarg_p(N, ctx, buf,
  len)`` into a read of that many user bytes at the address the argument holds. A probe with
  several sites picks the site's spec by ``PT_REGS_IP(ctx)`` (by its offset in the page
  when the sites' page offsets differ, else by its address, which needs a pid for PIE
  code). The text is BCC's, character for character.
- ``sites()``: every (binary path, function, file offset, semaphore offset, pid) to attach.
- ``attach(bpf, ignore_pid=False)``: loads each function as a kprobe program
  (``bpf.load_func(fn, BPF.KPROBE)``) and attaches a uprobe at each site, the probe's
  semaphore as the uprobe's reference counter (the kernel sets it while attached); returns
  the attachments (each has ``close()``).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Optional, Sequence, Union

from ..elf.reader import ET_DYN
from ..errors import UsageError
from ..links.usdt import UsdtArg, UsdtNote, parse_arg, usdt_notes
from .utils import _as_path, _as_str

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_PT_REGS = {"rax": "ax", "rbx": "bx", "rcx": "cx", "rdx": "dx", "rsi": "si", "rdi": "di",
            "rbp": "bp", "rsp": "sp", "rip": "ip"}
"""x86-64 registers as the fields of the kernel's ``struct pt_regs`` (r8-r15 keep names)."""
_BARRIER = '__asm__ __volatile__("": : :"memory");'


class USDTException(Exception):
    """A probe that cannot be found, enabled or read (BCC's exception type)."""


def _ctype(arg: UsdtArg) -> str:
    return f"{'' if arg.signed else 'u'}int{8 * arg.size}_t"


def _field(arg: UsdtArg) -> str:
    assert arg.register is not None
    return _PT_REGS.get(arg.register, arg.register)


class USDTProbeArgument:
    """One argument of one site: ``size``, ``signed``, and its location."""

    def __init__(self, arg: UsdtArg) -> None:
        self.arg = arg
        self.size, self.signed = arg.size, arg.signed
        if arg.kind == "const":
            self.constant = arg.value
        else:
            self.base_register_name = _field(arg).encode()
        if arg.kind == "deref":
            self.deref_offset = arg.value

    def __str__(self) -> str:
        prefix = f"{self.size} {'signed  ' if self.signed else 'unsigned'} bytes"
        if self.arg.kind == "const":
            where = f"{self.arg.value}"
        elif self.arg.kind == "reg":
            where = _field(self.arg)
        else:
            sign = "+" if self.arg.value >= 0 else "-"
            where = f"*({_field(self.arg)} {sign} {abs(self.arg.value)})"
        return f"{prefix} @ {where}"


class USDTProbeLocation:
    """One site of a probe: ``address`` (in the file's address space) in ``bin_path``."""

    def __init__(self, probe: "USDTProbe", index: int, note: UsdtNote) -> None:
        self.probe, self.index, self.note = probe, index, note
        self.num_arguments = probe.num_arguments
        self.address = note.address
        self.bin_path = note.path.encode()

    def __str__(self) -> str:
        return f"{self.note.path} 0x{self.address:x}"

    def get_argument(self, index: int) -> USDTProbeArgument:
        args = self.note.args_text.split()
        if not 0 <= index < len(args):
            raise USDTException(f"USDT probe {self.probe.short_name()} has {len(args)} "
                                f"arguments, not {index + 1}")
        return USDTProbeArgument(parse_arg(args[index]))


class USDTProbe:
    """A probe ``provider:name`` with its sites (locations): in one binary, or in every binary
    a process maps (``bin_path``: the first's), as BCC merges them."""

    def __init__(self, notes: list[UsdtNote]) -> None:
        first = notes[0]
        self.notes = notes
        self.provider, self.name = first.provider.encode(), first.name.encode()
        self.bin_path = first.path.encode()
        self.semaphore = first.semaphore
        self.semaphore_offset = first.semaphore_offset
        self.num_locations = len(notes)
        self.num_arguments = len(first.args_text.split())

    def __str__(self) -> str:
        return f"{self.provider.decode()}:{self.name.decode()} [sema 0x{self.semaphore:x}]"

    def short_name(self) -> str:
        return f"{self.provider.decode()}:{self.name.decode()}"

    def get_location(self, index: int) -> USDTProbeLocation:
        if not 0 <= index < self.num_locations:
            raise USDTException(f"USDT probe {self.short_name()} has {self.num_locations} "
                                f"locations, not {index + 1}")
        return USDTProbeLocation(self, index, self.notes[index])

    def args(self, site: int) -> tuple[UsdtArg, ...]:
        try:
            return self.notes[site].args
        except UsageError as e:
            raise USDTException(f"USDT probe {self.short_name()}: {e}") from None

    def arg_ctype(self, index: int) -> str:
        """The C type of argument ``index`` (0-based): its largest size over the sites."""
        largest = max((self.args(i)[index] for i in range(self.num_locations)),
                      key=lambda a: a.size)
        return _ctype(largest)


@dataclass(frozen=True)
class UsdtSite:
    """Where to attach: file ``offset`` of a site in ``path``, the probe's semaphore
    (``ref_ctr_offset``, 0 without one), the function to run and the process (-1: all)."""

    path: str
    fn_name: str
    offset: int
    ref_ctr_offset: int
    pid: int
    probe: str


class USDT:
    """The USDT probes of a binary (``path``: a path, library or program name), or of every
    binary process ``pid`` maps (only ``path`` in it when both are given)."""

    def __init__(self, pid: Optional[int] = None, path: Union[str, bytes, None] = None) -> None:
        from .introspect import resolve_module
        self.pid = pid if pid and pid != -1 else -1
        self.path = _as_path(path) if path else None
        if self.pid == -1 and not self.path:
            raise USDTException("USDT: give the process (pid=) or the binary (path=)")
        if self.path is not None:
            binaries = [resolve_module(self.path, max(self.pid, 0))]
        else:
            binaries = self._mapped_binaries()
        # a probe is provider:name; its sites may be in several of the process's binaries
        grouped: dict[tuple[str, str], list[UsdtNote]] = {}
        for binary in binaries:
            try:
                notes = usdt_notes(binary)
            except UsageError as e:
                if self.path is not None:
                    raise USDTException(f"USDT: cannot read the probes of {self.path}: {e}") \
                        from None
                continue  # a mapped file that is not ELF
            for note in notes:
                grouped.setdefault((note.provider, note.name), []).append(note)
        self.probes = [USDTProbe(group) for group in grouped.values()]
        self.enabled: list[tuple[USDTProbe, str]] = []

    def _mapped_binaries(self) -> list[str]:
        from ..symbols import ProcessSymbols
        paths = list(dict.fromkeys(m.path for m in ProcessSymbols(self.pid).mappings))
        if not paths:
            raise USDTException(f"USDT: process {self.pid} maps no executable file (is it "
                                "running?)")
        return [p if os.path.exists(p) else f"/proc/{self.pid}/root{p}" for p in paths]

    def _find(self, probe: str) -> USDTProbe:
        provider, _, name = probe.rpartition(":")
        for p in self.probes:
            if p.name.decode() == name and (not provider or p.provider.decode() == provider):
                return p
        found = ", ".join(sorted({p.short_name() for p in self.probes})) or "none"
        where = self.path or f"process {self.pid}"
        raise USDTException(
            f"Failed to enable USDT probe '{probe}': {where} has no such probe (it has: "
            f"{found}); a language runtime has its probes only when built with them "
            "(--with-dtrace, --enable-dtrace)")

    def enable_probe(self, probe: Union[str, bytes], fn_name: Union[str, bytes]) -> None:
        """Run BPF function ``fn_name`` at probe ``probe`` (``name`` or ``provider:name``)."""
        found = self._find(_as_str(probe))
        for site in range(found.num_locations):  # specs pybpf cannot read fail here
            found.args(site)
        self.enabled.append((found, _as_str(fn_name)))

    def enable_probe_or_bail(self, probe: Union[str, bytes], fn_name: Union[str, bytes]) -> None:
        """``enable_probe``, or print why not on stderr and exit with status 1."""
        try:
            self.enable_probe(probe, fn_name)
        except USDTException as e:
            print(e, file=sys.stderr)
            sys.exit(1)

    def get_context(self) -> "USDT":
        return self

    def enumerate_probes(self) -> list[USDTProbe]:
        return list(self.probes)

    def get_probe_arg_ctype(self, probe_name: Union[str, bytes], arg_index: int) -> str:
        """The C type (``int32_t``, ``uint64_t``, ...) of argument ``arg_index`` (0-based)."""
        probe = self._find(_as_str(probe_name))
        if not 0 <= arg_index < probe.num_arguments:
            raise USDTException(f"USDT probe {probe.short_name()} has {probe.num_arguments} "
                                f"arguments, not {arg_index + 1}")
        return probe.arg_ctype(arg_index)

    def _assign(self, arg: UsdtArg, dest: str) -> str:
        if arg.kind == "const":
            return f"{dest} = {arg.value};"
        if arg.kind == "reg":
            return f"{dest} = ctx->{_field(arg)}; {_BARRIER}"
        return (f"{{ u64 __addr = ctx->{_field(arg)} + {arg.value}; {_BARRIER} "
                f"{_ctype(arg)} __res = 0x0; "
                f"bpf_probe_read_user(&__res, sizeof(__res), (void *)__addr); {dest} = __res; }}")

    def _site_address(self, note: UsdtNote) -> int:
        """``PT_REGS_IP(ctx)`` at ``note``: its address in a fixed-address executable, else where
        the context's process mapped it."""
        from ..links.uprobe import elf_file
        from ..symbols import ProcessSymbols
        if elf_file(note.path).elf.type != ET_DYN:
            return note.address
        where = ProcessSymbols(self.pid).runtime_address(note.path, note.offset) \
            if self.pid > 0 else None
        if where is None:
            raise USDTException(
                f"USDT probe {note.provider}:{note.name}: its sites share page offsets, so "
                f"they are told apart by address, and {note.path} is position-independent: "
                "its addresses are known only in a process mapping it (give USDT(pid=))")
        return where

    def _readargs(self, probe: USDTProbe, fn_name: str) -> list[str]:
        out = []
        by_page = len({n.address % PAGE_SIZE for n in probe.notes}) == probe.num_locations
        for n in range(probe.num_arguments):
            ctype = probe.arg_ctype(n)
            dest = f"*(({ctype} *)dest)"
            lines = [f"static __always_inline int _bpf_readarg_{fn_name}_{n + 1}("
                     "struct pt_regs *ctx, void *dest, size_t len) {",
                     f"  if (len != sizeof({ctype})) return -1;"]
            if probe.num_locations == 1:
                lines += [f"  {self._assign(probe.args(0)[n], dest)}", "  return 0;", "}"]
            else:
                lines.append(f"  switch (PT_REGS_IP(ctx) % 0x{PAGE_SIZE:x}ULL) {{" if by_page
                             else "  switch (PT_REGS_IP(ctx)) {")
                for i, note in enumerate(probe.notes):
                    case = note.address % PAGE_SIZE if by_page else self._site_address(note)
                    lines.append(f"  case 0x{case:x}ULL: {self._assign(probe.args(i)[n], dest)}"
                                 " return 0;")
                lines += ["  }", "  return -1;", "}"]
            out.append("\n".join(lines) + "\n")
        return out

    def get_text(self) -> str:
        """The argument-reading functions of every enabled probe (see the module's doc)."""
        return usdt_text([self])

    def sites(self, ignore_pid: bool = False) -> list[UsdtSite]:
        """Every site of every enabled probe, to attach as a uprobe."""
        pid = -1 if ignore_pid else self.pid
        return [UsdtSite(n.path, fn_name, n.offset, n.semaphore_offset, pid, probe.short_name())
                for probe, fn_name in self.enabled for n in probe.notes]

    def enumerate_active_probes(self) -> list[tuple[bytes, bytes, int, int]]:
        """(binary, function, file offset, pid) of every site to attach (BCC's tuples)."""
        return [(s.path.encode(), s.fn_name.encode(), s.offset, s.pid) for s in self.sites()]

    def attach(self, bpf: Any, ignore_pid: bool = False) -> list[Any]:
        """Load each enabled function as a kprobe program of ``bpf`` and attach it at every
        site of its probe; on an error nothing stays attached."""
        from ..links.uprobe import attach_uprobe
        done: list[Any] = []
        try:
            for site in self.sites(ignore_pid):
                program = bpf.load_func(site.fn_name, bpf.KPROBE).program
                done.append(attach_uprobe(program, site.path, offset=site.offset, pid=site.pid,
                                          ref_ctr_offset=site.ref_ctr_offset))
        except BaseException:
            for attachment in done:
                attachment.close()
            raise
        return done


def usdt_text(contexts: Sequence[USDT]) -> str:
    """The argument readers of every probe the ``contexts`` enabled, as BCC generates them for
    ``BPF(usdt_contexts=)``: a probe enabled for one function in several contexts (processes
    of one binary) is read by one set of functions."""
    parts: list[str] = []
    seen: set[tuple[bytes, bytes, bytes, str]] = set()
    for ctx in contexts:
        for probe, fn_name in ctx.enabled:
            key = (probe.bin_path, probe.provider, probe.name, fn_name)
            if key not in seen:
                seen.add(key)
                parts += ctx._readargs(probe, fn_name)
    return "#include <uapi/linux/ptrace.h>\n" + "".join(parts) if parts else ""
