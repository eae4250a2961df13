"""Auto-attach: attaching an object's program where its SEC() name says (libbpf's attach_fn).

One entry per ``AutoAttach`` kind parses the section's extras into the arguments of the
attach function in ``pybpf.links``. Sections that name no target (``xdp``, ``tc``, cgroup
kinds, a bare ``kprobe``) need the target in code: a UsageError names the section and the
function to call.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Optional

from ..errors import UsageError
from .sections import AutoAttach

if TYPE_CHECKING:
    from ..links.link import Attachment
    from .loader import ObjectProgram


def _split(target: str, parts: int, form: str, prog: "ObjectProgram") -> list[str]:
    out = target.split(":", parts - 1) if parts > 1 else [target]
    if len(out) != parts or not all(out):
        raise UsageError(f"{prog.describe()}: SEC({prog.spec.section.name!r}) should read "
                         f"{form}")
    return out


def _func_offset(spec: str) -> tuple[str, int]:
    """``func+0x10`` -> ("func", 16); a bare number is an offset without a symbol."""
    m = re.fullmatch(r"([^+]*)(?:\+(0x[0-9a-fA-F]+|\d+))?", spec)
    if m is None:
        return spec, 0
    sym, off = m.group(1), int(m.group(2), 0) if m.group(2) else 0
    if re.fullmatch(r"0x[0-9a-fA-F]+|\d+", sym):
        return "", int(sym, 0)
    return sym, off


def _tracepoint(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.tracing import attach_tracepoint
    if target.count("/") != 1:
        raise UsageError(f"{p.describe()}: SEC({p.spec.section.name!r}) should read "
                         "tracepoint/<category>/<name>")
    category, name = target.split("/")
    return attach_tracepoint(p, category, name)


def _raw_tracepoint(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.tracing import attach_raw_tracepoint
    return attach_raw_tracepoint(p, target)


def _kprobe(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.kprobe import attach_kprobe
    symbol, offset = _func_offset(target)
    return attach_kprobe(p, symbol, offset, retprobe=p.spec.section.definition.retprobe)


def _ksyscall(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.kprobe import attach_ksyscall
    return attach_ksyscall(p, target, retprobe=p.spec.section.definition.retprobe)


def _kprobe_multi(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.kprobe import attach_kprobe_multi
    return attach_kprobe_multi(p, target, retprobe=p.spec.section.definition.retprobe)


def _uprobe(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.uprobe import attach_uprobe
    binary, where = _split(target, 2, "uprobe/<binary>:<function>[+offset]", p)
    symbol, offset = _func_offset(where)
    return attach_uprobe(p, binary, symbol, offset, retprobe=p.spec.section.definition.retprobe)


def _uprobe_multi(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.uprobe import attach_uprobe_multi
    binary, pattern = _split(target, 2, "uprobe.multi/<binary>:<pattern>", p)
    return attach_uprobe_multi(p, binary, pattern, retprobe=p.spec.section.definition.retprobe)


def _usdt(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.usdt import attach_usdt
    binary, provider, name = _split(target, 3, "usdt/<binary>:<provider>:<name>", p)
    return attach_usdt(p, binary, provider, name)


def _btf_traced(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.btf_tracing import attach
    return attach(p, p.spec.attach_type)


def _iter(p: "ObjectProgram", target: str) -> "Attachment":
    from ..links.iter import attach_iter
    return attach_iter(p)


def _custom(p: "ObjectProgram", target: str) -> "Attachment":
    fn = p.spec.section.definition.attach_fn
    assert fn is not None  # auto_attach is CUSTOM only with an attach_fn
    attached: "Attachment" = fn(p, target)
    return attached


ATTACHERS: dict[AutoAttach, Callable[["ObjectProgram", str], "Attachment"]] = {
    AutoAttach.TRACEPOINT: _tracepoint,
    AutoAttach.RAW_TRACEPOINT: _raw_tracepoint,
    AutoAttach.KPROBE: _kprobe,
    AutoAttach.KSYSCALL: _ksyscall,
    AutoAttach.KPROBE_MULTI: _kprobe_multi,
    AutoAttach.UPROBE: _uprobe,
    AutoAttach.UPROBE_MULTI: _uprobe_multi,
    AutoAttach.USDT: _usdt,
    AutoAttach.TRACING: _btf_traced,
    AutoAttach.LSM: _btf_traced,
    AutoAttach.ITER: _iter,
    AutoAttach.CUSTOM: _custom,
}
_NEEDS_TARGET = frozenset(set(ATTACHERS) - {AutoAttach.TRACING, AutoAttach.LSM, AutoAttach.ITER,
                                             AutoAttach.CUSTOM})


def auto_attach_kind(prog: "ObjectProgram") -> Optional[AutoAttach]:
    """How ``prog`` auto-attaches, or None when its section needs a target given in code
    (or names none, like a bare ``SEC("kprobe")``)."""
    kind = prog.spec.section.definition.auto_attach
    if kind in _NEEDS_TARGET and not prog.spec.attach_target:
        return None
    return kind


def auto_attach(prog: "ObjectProgram") -> "Attachment":
    """Attach ``prog`` by its section name; the link (or attachment) is returned."""
    kind = auto_attach_kind(prog)
    sec = prog.spec.section.name
    if kind is None:
        raise UsageError(f"{prog.describe()}: SEC({sec!r}) does not say where to attach; "
                         "attach it in code with the pybpf.links function for its hook "
                         "(e.g. links.xdp, links.tc, links.cgroup, or attach_kprobe(prog, "
                         "symbol) for a bare kprobe)")
    return ATTACHERS[kind](prog, prog.spec.attach_target)
