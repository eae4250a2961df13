"""BPF object files: ``ObjectSpec`` (pure parse of a clang-built ELF) and loading it.

    spec = ObjectSpec.from_file("x.o")
    spec.variables["factor"].value = 5          # .rodata constants, before load
    spec.programs["unused"].autoload = False
    with spec.load(pin_root="/sys/fs/bpf/app") as obj:
        obj.maps["config"][0] = ...
        obj.programs["hello"].attach()
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

from .._lazy import exports

if TYPE_CHECKING:
    from .loader import Collection

# each name imported from its module on first use: parsing (``spec``) needs no syscall, the
# loader (maps, programs, the syscall layer) is imported by loading
__getattr__, __dir__ = exports(__name__, {
    ".loader": "DEFAULT_PIN_ROOT, Collection, ObjectProgram",
    ".maps": "MapSpec, Pinning, VariableSpec",
    ".sections": "SECTION_DEFS, AutoAttach, Section, SectionDef, find_section",
    ".spec": "ExternSpec, ObjectSpec, ProgramSpec",
})


def load(path: Union[str, os.PathLike, bytes], **kwargs: Any) -> Collection:
    """Parse the object at ``path`` (or its bytes) and load it (``ObjectSpec.load``)."""
    from .spec import ObjectSpec
    spec = ObjectSpec.from_bytes(path) if isinstance(path, bytes) else ObjectSpec.from_file(path)
    return spec.load(**kwargs)


__all__ = ["DEFAULT_PIN_ROOT", "SECTION_DEFS", "AutoAttach", "Collection", "ExternSpec",
           "MapSpec", "ObjectProgram", "ObjectSpec", "Pinning", "ProgramSpec", "Section",
           "SectionDef", "VariableSpec", "find_section", "load"]
