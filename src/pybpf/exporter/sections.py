"""The two SEC() conventions ebpf_exporter adds to libbpf's, registered with pybpf's loader
while the exporter loads its configs (``registered()``):

- ``xdp/<interface>``: an XDP program, attached to that interface (of the exporter's network
  namespace) with a BPF link where the kernel has XDP links, else by netlink.
- ``perf_event/type=T,config=C,frequency=F``: a perf_event program run on the samples of
  perf event (T, C) opened on every online CPU for all processes, F samples a second
  (``period=P``: every P events instead). Decimal numbers as there (``0x`` also read);
  an absent type or config is 0, as ebpf_exporter's zero values.

Registered sections are matched before the built-in table (libbpf's order), so while they are
``xdp/devmap`` and ``xdp/cpumap`` name interfaces too, as under ebpf_exporter.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from ..elf.sections import SectionDef, register_section, unregister_section
from ..errors import UsageError
from ..sys.uapi import AttachType, ProgType

if TYPE_CHECKING:
    from ..elf.loader import ObjectProgram
    from ..links.link import Attachment

XDP_PREFIX = "xdp/"
PERF_EVENT_PREFIX = "perf_event/"
_PERF_KEYS = ("type", "config", "frequency", "period")


def attach_xdp_section(prog: "ObjectProgram", interface: str) -> "Attachment":
    """``xdp/<interface>``: ``prog`` on that interface's receive path."""
    from ..links.xdp import attach_xdp
    return attach_xdp(prog, interface)


def parse_perf_event(prog: "ObjectProgram", spec: str) -> dict[str, int]:
    """The ``key=value`` items after ``perf_event/``; a malformed, unknown or repeated item,
    or neither (or both) of frequency and period, is a UsageError naming the section."""
    sec = prog.spec.section.name
    items: dict[str, int] = {}
    for item in spec.split(","):
        key, eq, value = item.partition("=")
        problem = ("is not key=value" if not eq else
                   f"is no key of {', '.join(_PERF_KEYS)}" if key not in _PERF_KEYS else
                   "is repeated" if key in items else "")
        if not problem:
            try:
                items[key] = int(value, 0)
            except ValueError:
                problem = "has no integer value"
        if problem:
            raise UsageError(f"{prog.describe()}: SEC({sec!r}): item {item!r} {problem}; "
                             "the section reads perf_event/type=T,config=C,frequency=F "
                             "(or period=P)")
    if ("frequency" in items) == ("period" in items):
        raise UsageError(f"{prog.describe()}: SEC({sec!r}) needs one of frequency=F "
                         "(samples a second) and period=P (events a sample)")
    return items


def attach_perf_event_section(prog: "ObjectProgram", spec: str) -> "Attachment":
    """``perf_event/type=..,config=..,frequency=..|period=..``: one event per online CPU."""
    from ..links.perf_event import attach_perf_event_program
    items = parse_perf_event(prog, spec)
    return attach_perf_event_program(prog, (items.get("type", 0), items.get("config", 0)),
                                     sample_freq=items.get("frequency", 0),
                                     sample_period=items.get("period", 0))


_lock = threading.Lock()
_users = 0
_defs: list[SectionDef] = []


@contextmanager
def registered() -> Iterator[None]:
    """The two conventions registered for the ``with`` block (counted: nested and concurrent
    blocks share one registration, removed when the last ends)."""
    global _users
    with _lock:
        if not _users:
            _defs.append(register_section(XDP_PREFIX, ProgType.XDP, AttachType.XDP,
                                          attach_xdp_section))
            _defs.append(register_section(PERF_EVENT_PREFIX, ProgType.PERF_EVENT,
                                          AttachType.PERF_EVENT, attach_perf_event_section))
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if not _users:
                while _defs:
                    unregister_section(_defs.pop())
