"""BPF object files: ``ObjectSpec`` (pure parse of a clang-built ELF) and loading it.

    spec = ObjectSpec.from_file("x.o")
    spec.variables["factor"].value = 5          # .rodata constants, before load
    spec.programs["unused"].autoload = False
    with load(spec, pin_root="/sys/fs/bpf/app") as obj:
        obj.maps["config"][0] = ...
        obj.programs["hello"].attach()
"""
from __future__ import annotations

from .._lazy import exports

# each name imported from its module on first use: parsing (``spec``) needs no syscall, the
# loader (maps, programs, the syscall layer) is imported by loading
__getattr__, __dir__ = exports(__name__, {
    ".loader": "DEFAULT_PIN_ROOT, Collection, ObjectProgram, load",
    ".maps": "MapSpec, Pinning, VariableSpec",
    ".sections": "SECTION_DEFS, AutoAttach, Section, SectionDef, find_section, "
                 "register_section, unregister_section",
    ".spec": "ExternSpec, ObjectSpec, ProgramSpec",
})


__all__ = ["DEFAULT_PIN_ROOT", "SECTION_DEFS", "AutoAttach", "Collection", "ExternSpec",
           "MapSpec", "ObjectProgram", "ObjectSpec", "Pinning", "ProgramSpec", "Section",
           "SectionDef", "VariableSpec", "find_section", "load", "register_section",
           "unregister_section"]
