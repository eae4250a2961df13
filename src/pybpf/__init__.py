"""pybpf: eBPF for Python, straight on the bpf() system call."""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .elf import Collection

__version__ = "0.1.0"


def load(path: Union[str, os.PathLike, bytes], **kwargs: Any) -> Collection:
    """Load the BPF object file at ``path`` (or its bytes, or a parsed ``ObjectSpec``):
    ``pybpf.elf.load`` (maps, programs, by name)."""
    from .elf import load as _load  # the ELF loader only when used
    return _load(path, **kwargs)


def __getattr__(name: str) -> Any:
    """``pybpf.compile``: the (callable) module :mod:`pybpf.compile`, imported on first use."""
    if name == "compile":
        import importlib
        return importlib.import_module(".compile", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
