"""Programs by ELF section name (``SEC("kprobe/do_sys_openat2")``), as libbpf reads them:
how to load (program type, expected attach type, BTF hook, sleepable) and how to attach.

``SECTIONS`` is the table, one ``SectionDef`` per prefix; ``attach(program, section)`` is
what a loader's auto-attach calls. Other hook families add their rows with ``register``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import UsageError
from ..sys.uapi import AttachType, ProgType
from . import btf_tracing, iter as iters, kprobe, tracing, uprobe, usdt

Attacher = Callable[[Any, str], Any]


@dataclass(frozen=True)
class SectionDef:
    """Section prefix ``prefix`` (then ``/target`` or nothing): programs of ``prog_type``
    loaded with ``attach_type``; ``btf_hook`` names a ``btf_tracing.HOOKS`` kind whose BTF
    target is the rest of the name; ``attach`` takes (program, rest); None: no auto-attach."""

    prefix: str
    prog_type: ProgType
    attach_type: Optional[AttachType] = None
    attach: Optional[Attacher] = None
    btf_hook: str = ""
    sleepable: bool = False


@dataclass(frozen=True)
class LoadSpec:
    """What a loader needs to load the program of one section."""

    prog_type: ProgType
    expected_attach_type: Optional[AttachType]
    btf_target: Optional[btf_tracing.BtfTarget]
    sleepable: bool


SECTIONS: dict[str, SectionDef] = {}


def register(*defs: SectionDef) -> None:
    """Add (or replace) section definitions."""
    for d in defs:
        SECTIONS[d.prefix] = d


def _func_offset(rest: str, what: str) -> tuple[str, int]:
    m = re.fullmatch(r"([^+]+)(?:\+(0x[0-9a-fA-F]+|\d+))?", rest)
    if m is None:
        raise UsageError(f"{what}: expected FUNCTION[+OFFSET], got {rest!r}")
    return m[1], int(m[2] or "0", 0)


def _kprobe(retprobe: bool) -> Attacher:
    def attach(program: Any, rest: str) -> Any:
        func, off = _func_offset(rest, "kprobe section")
        return kprobe.attach_kprobe(program, func, off, retprobe=retprobe)
    return attach


def _uprobe(retprobe: bool) -> Attacher:
    def attach(program: Any, rest: str) -> Any:
        path, sep, func = rest.rpartition(":")
        if not sep or not path:
            raise UsageError(f"uprobe section: expected PATH:FUNCTION[+OFFSET], got {rest!r}")
        name, off = _func_offset(func, "uprobe section")
        return uprobe.attach_uprobe(program, path, name, off, retprobe=retprobe)
    return attach


def _uprobe_multi(retprobe: bool) -> Attacher:
    def attach(program: Any, rest: str) -> Any:
        path, sep, pattern = rest.rpartition(":")
        if not sep or not path:
            raise UsageError(f"uprobe.multi section: expected PATH:PATTERN, got {rest!r}")
        return uprobe.attach_uprobe_multi(program, path, pattern, retprobe=retprobe)
    return attach


def _usdt(program: Any, rest: str) -> Any:
    parts = rest.rsplit(":", 2)
    if len(parts) != 3 or not all(parts):
        raise UsageError(f"usdt section: expected PATH:PROVIDER:NAME, got {rest!r}")
    return usdt.attach_usdt(program, *parts)


def _tracepoint(program: Any, rest: str) -> Any:
    category, sep, name = rest.partition("/")
    if not sep:
        raise UsageError(f"tracepoint section: expected CATEGORY/NAME, got {rest!r}")
    return tracing.attach_tracepoint(program, category, name)


def _btf(program: Any, rest: str) -> Any:
    return btf_tracing.attach(program)


def _iter(program: Any, rest: str) -> Any:
    return iters.attach_iter(program)


_K, _T = ProgType.KPROBE, ProgType.TRACING
register(
    SectionDef("kprobe", _K, attach=_kprobe(False)),
    SectionDef("kretprobe", _K, attach=_kprobe(True)),
    SectionDef("ksyscall", _K, attach=lambda p, r: kprobe.attach_ksyscall(p, r)),
    SectionDef("kretsyscall", _K, attach=lambda p, r: kprobe.attach_ksyscall(p, r, retprobe=True)),
    SectionDef("kprobe.multi", _K, AttachType.TRACE_KPROBE_MULTI,
               lambda p, r: kprobe.attach_kprobe_multi(p, r)),
    SectionDef("kretprobe.multi", _K, AttachType.TRACE_KPROBE_MULTI,
               lambda p, r: kprobe.attach_kprobe_multi(p, r, retprobe=True)),
    SectionDef("uprobe", _K, attach=_uprobe(False)),
    SectionDef("uretprobe", _K, attach=_uprobe(True)),
    SectionDef("uprobe.s", _K, attach=_uprobe(False), sleepable=True),
    SectionDef("uretprobe.s", _K, attach=_uprobe(True), sleepable=True),
    SectionDef("uprobe.multi", _K, AttachType.TRACE_UPROBE_MULTI, _uprobe_multi(False)),
    SectionDef("uretprobe.multi", _K, AttachType.TRACE_UPROBE_MULTI, _uprobe_multi(True)),
    SectionDef("usdt", _K, attach=_usdt),
    SectionDef("tracepoint", ProgType.TRACEPOINT, attach=_tracepoint),
    SectionDef("tp", ProgType.TRACEPOINT, attach=_tracepoint),
    SectionDef("raw_tracepoint", ProgType.RAW_TRACEPOINT,
               attach=lambda p, r: tracing.attach_raw_tracepoint(p, r)),
    SectionDef("raw_tp", ProgType.RAW_TRACEPOINT,
               attach=lambda p, r: tracing.attach_raw_tracepoint(p, r)),
    SectionDef("perf_event", ProgType.PERF_EVENT),  # needs an event: attach_perf_event_program
    SectionDef("freplace", ProgType.EXT),  # needs a target program: btf_tracing.load_freplace
    *(SectionDef(f"{kind}{suffix}", hook.prog_type, hook.attach_type,
                 _iter if kind == "iter" else _btf, btf_hook=kind, sleepable=bool(suffix))
      for kind, hook in btf_tracing.HOOKS.items()
      for suffix in ("", ".s") if not (suffix and kind == "tp_btf")),
)


def section_def(section: str) -> tuple[SectionDef, str]:
    """The definition of ``section`` and the rest of its name (after ``prefix/``)."""
    prefix, _, rest = section.partition("/")
    d = SECTIONS.get(prefix)
    if d is None:
        raise UsageError(f"section {section!r}: unknown program kind {prefix!r}; known: "
                         f"{', '.join(sorted(SECTIONS))}")
    return d, rest


def load_spec(section: str) -> LoadSpec:
    """How to load the program of ``section`` (the BTF hook resolved in the running kernel)."""
    d, rest = section_def(section)
    target = btf_tracing.find_target(d.btf_hook, rest) if d.btf_hook and rest else None
    if d.btf_hook and not rest:
        raise UsageError(f"section {section!r}: {d.prefix} programs name their hook "
                         f"({d.prefix}/NAME)")
    return LoadSpec(d.prog_type, d.attach_type, target, d.sleepable)


def attach(program: Any, section: str) -> Any:
    """Attach ``program`` where its section name says (a Link, an attachment or a group)."""
    d, rest = section_def(section)
    if d.attach is None:
        raise UsageError(f"section {section!r}: {d.prefix} programs cannot be attached from the "
                         "section name alone (perf_event needs an event, freplace a target "
                         "program)")
    if not rest and d.attach not in (_btf, _iter):
        raise UsageError(f"section {section!r}: {d.prefix} needs a target ({d.prefix}/...)")
    return d.attach(program, rest)
