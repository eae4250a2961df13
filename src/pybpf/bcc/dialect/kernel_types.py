"""Questions BCC programs ask about the running kernel's types, answered from its BTF."""
from __future__ import annotations

from typing import Any, Union


def kernel_struct_has_field(struct_name: Union[str, bytes], field_name: Union[str, bytes]) -> int:
    """BCC's ``BPF.kernel_struct_has_field``: 1 if ``struct <struct_name>`` of the running
    kernel has a member ``field_name`` (also inside its anonymous structs and unions), 0 if
    not, -1 if the kernel has no such struct (or no BTF)."""
    from ...btf import types as T
    from ...btf.spec import Spec
    from ...errors import PyBPFError

    sname = struct_name.decode() if isinstance(struct_name, bytes) else struct_name
    fname = field_name.decode() if isinstance(field_name, bytes) else field_name
    try:
        found = Spec.vmlinux().find_all(sname, T.Struct)
    except (PyBPFError, OSError):
        return -1
    if not found:
        return -1
    return int(_has_member(found[0], fname))


def _has_member(t: Any, name: str) -> bool:
    from ...btf import types as T

    for m in getattr(t, "members", ()):
        if m.name == name:
            return True
        if not m.name and _has_member(T.skip_qualifiers(m.type), name):
            return True
    return False
