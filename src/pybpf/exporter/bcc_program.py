"""Configs written in BCC's C dialect: ``DIR/NAME.bcc.c`` beside ``DIR/NAME.yaml``.

The program is compiled by pybpf's BCC front end at start (``pybpf.bcc.BPF``): its maps are
created and its prefixed functions (``TRACEPOINT_PROBE``, ``tracepoint__CAT__EV``,
``kprobe__FN``, ``RAW_TRACEPOINT_PROBE``...) loaded and attached at construction, as BCC does;
a function that fails to load or attach stops start-up (BCC's ``BPF()`` raises), whatever
``--config.strict`` says. The exporter then reads the tables' maps as it reads an ELF
object's (:class:`BCCProgram` has a collection's ``maps``, ``programs`` and ``close()``).
``kaddrs`` symbols are passed as ``-Dkaddr_<symbol>=<address>ULL``, the way BCC tools put
kernel addresses into their C text.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Iterator, Optional

if TYPE_CHECKING:
    from ..bcc import BPF
    from ..maps import Map
    from .config import Config

SUFFIX = ".bcc.c"


def source_of(cfg: "Config") -> Optional[str]:
    """``DIR/NAME.bcc.c`` if the config has one (else the config is an ELF object's)."""
    path = cfg.bpf_path[:-len(".bpf.o")] + SUFFIX
    return path if os.path.exists(path) else None


class _Maps(Mapping):
    """The program's tables by name, each as its ``pybpf.maps.Map`` (the table's ``map``)."""

    def __init__(self, bpf: "BPF") -> None:
        self.bpf = bpf

    def __getitem__(self, name: str) -> "Map":
        if name not in self.bpf:
            raise KeyError(name)
        return self.bpf[name].map

    def __iter__(self) -> Iterator[str]:
        return iter(self.bpf)

    def __len__(self) -> int:
        return len(list(self.bpf))


class BCCProgram:
    """A compiled, loaded and attached BCC program as the exporter uses an ELF collection:
    ``maps`` and ``programs`` by name; ``close()`` detaches and closes everything."""

    def __init__(self, bpf: "BPF") -> None:
        self.bpf = bpf
        self.maps = _Maps(bpf)
        self.programs = {name: fn.program for name, fn in bpf.funcs.items()}

    def attachments(self) -> dict[str, Any]:
        """Each loaded function's attachment, from the tables BCC keeps of them."""
        b = self.bpf
        out: dict[str, Any] = {}
        for table in (b.kprobe_fds, b.uprobe_fds, b.tracepoint_fds):
            for by_function in table.values():
                out.update(by_function)
        out.update(b.kfunc_fds)
        out.update(b.lsm_fds)
        for tp, link in b.raw_tracepoint_fds.items():
            out["raw_tracepoint__" + tp] = link
        return {name: out.get(name) for name in self.programs}

    def close(self) -> None:
        self.bpf.cleanup()


def load(source: str, kaddrs: dict[str, int]) -> BCCProgram:
    """Compile, load and attach ``source`` (PyBPFError from the front end on failure)."""
    from ..bcc import BPF
    cflags = [f"-Dkaddr_{name}=0x{addr:x}ULL" for name, addr in kaddrs.items()]
    return BCCProgram(BPF(src_file=source, cflags=cflags))
