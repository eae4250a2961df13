"""struct_ops maps: a kernel ops table (``struct tcp_congestion_ops``...) filled by programs.

An object defines one as a variable of the struct in ``SEC(".struct_ops")`` (registered by a
map update, it stays until unregistered) or ``SEC(".struct_ops.link")`` (registered through a
BPF link, Linux 6.4); its function pointer members point to ``SEC("struct_ops/...")``
programs (ELF relocations), its other members hold data. As libbpf does, pybpf matches the
object's struct to the kernel's by member name (its layout may differ, a ``___flavor``
suffix is dropped): each program loads with the kernel struct's BTF id and the member's
index, and the map's value is the kernel's ``struct bpf_struct_ops_<name>`` with the data
copied and the programs' fds in their slots. ``StructOpsSpec`` is pure; ``resolve`` reads
the kernel's BTF.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Union

from ..btf import types as T
from ..btf.spec import Spec
from ..errors import ObjectError

VALUE_PREFIX = "bpf_struct_ops_"  # the kernel's map value type: bpf_struct_ops_<struct name>


@dataclass
class StructOpsSpec:
    """A struct_ops variable of the object: ``data``, its initial bytes in the object's
    layout (native byte order: set members with ``set`` before load); ``programs``,
    function pointer member -> program name; ``link``: defined in ``.struct_ops.link``."""

    name: str
    type: T.Struct
    data: bytearray
    link: bool
    programs: dict[str, str] = field(default_factory=dict)

    def set(self, member: str, value: Union[bytes, int]) -> None:
        """Set data member ``member`` (bytes, zero-padded to its size, or an int)."""
        m = next((m for m in self.type.members if m.name == member), None)
        if m is None or isinstance(T.skip_qualifiers(m.type), T.Pointer):
            raise ObjectError(f"struct_ops {self.name!r}: no data member {member!r} in "
                              f"struct {self.type.name}")
        size, off = T.sizeof(m.type), m.offset // 8
        if isinstance(value, int):
            raw = value.to_bytes(size, sys.byteorder, signed=value < 0)
        else:
            if len(value) > size:
                raise ObjectError(f"struct_ops {self.name!r}: {member} holds {size} bytes, "
                                  f"got {len(value)}")
            raw = bytes(value).ljust(size, b"\0")
        self.data[off:off + size] = raw


@dataclass
class KernelStructOps:
    """A struct_ops map as the running kernel takes it: ``value`` (``struct
    bpf_struct_ops_<name>``, programs' fds still to put at ``slots``), the BTF ids BPF_MAP_CREATE
    and the programs need, and each program's member index (its expected attach type)."""

    type_id: int        # the kernel struct: attach_btf_id of the programs
    value_type_id: int  # btf_vmlinux_value_type_id of the map
    module: str         # '' for vmlinux, else the module whose BTF has them
    value: bytearray
    slots: dict[int, str] = field(default_factory=dict)     # value offset -> program
    members: dict[str, int] = field(default_factory=dict)   # program -> member index

    def filled(self, fds: dict[str, int]) -> bytes:
        """The value with each program's fd in its function pointer's slot."""
        value = bytearray(self.value)
        for off, prog in self.slots.items():
            value[off:off + 8] = fds[prog].to_bytes(8, sys.byteorder)
        return bytes(value)


def resolve(so: StructOpsSpec, where: str) -> KernelStructOps:
    """Match ``so`` to the kernel's struct of the same (essential) name, as libbpf's
    ``bpf_map__init_kern_struct_ops``; ObjectError says what does not fit."""
    from ..btf.core import essential_name
    what = f"{where}: struct_ops {so.name!r}"
    tname = essential_name(so.type.name)
    found = Spec.find_kernel(tname, T.Struct)
    if found is None:
        raise ObjectError(f"{what}: the kernel's BTF has no struct {tname} (vmlinux or modules)")
    module, ktype = found
    kspec = Spec.module(module) if module else Spec.vmlinux()
    vtypes = kspec.find_all(VALUE_PREFIX + tname, T.Struct, own=bool(module))
    data = next((m for m in vtypes[0].members if m.type.id == ktype.id), None) if vtypes \
        else None
    if data is None:
        raise ObjectError(f"{what}: struct {tname} is not a struct_ops type of this kernel (no "
                          f"struct {VALUE_PREFIX}{tname} holding it)")
    out = KernelStructOps(T.type_id(ktype), T.type_id(vtypes[0]), module,
                          bytearray(vtypes[0].size))
    base = data.offset // 8
    kmembers = {m.name: (i, m) for i, m in enumerate(ktype.members)}
    for m in so.type.members:
        off = m.offset // 8
        ltype = T.skip_qualifiers(m.type)
        size = T.sizeof(ltype)
        prog = so.programs.get(m.name)
        if m.name not in kmembers:
            if prog is None and any(so.data[off:off + size]):
                raise ObjectError(f"{what}: member {m.name!r} is set but the kernel's struct "
                                  f"{tname} has no such member")
            continue  # unset here: its program (if any) does not load, as in libbpf
        idx, km = kmembers[m.name]
        ktype_m = T.skip_qualifiers(km.type)
        if m.bitfield_size or km.bitfield_size:
            raise ObjectError(f"{what}: member {m.name!r} is a bitfield, which struct_ops "
                              "maps cannot set")
        if type(ltype) is not type(ktype_m):
            raise ObjectError(f"{what}: member {m.name!r} is a {ltype.kind.name.lower()} here "
                              f"but a {ktype_m.kind.name.lower()} in the kernel's struct")
        koff = base + km.offset // 8
        if isinstance(ltype, T.Pointer) and isinstance(ktype_m, T.Pointer):  # one class (above)
            if prog is None:
                continue
            if not isinstance(T.skip_qualifiers(ktype_m.target), T.FuncProto):
                raise ObjectError(f"{what}: member {m.name!r} is not a function pointer in "
                                  "the kernel's struct: only programs can be set")
            if out.members.get(prog, idx) != idx:
                raise ObjectError(f"{what}: program {prog!r} is set to two members; a "
                                  "program attaches to one")
            out.slots[koff] = prog
            out.members[prog] = idx
        elif T.sizeof(ktype_m) != size:
            raise ObjectError(f"{what}: member {m.name!r} is {size} bytes here but "
                              f"{T.sizeof(ktype_m)} in the kernel's struct")
        else:
            out.value[koff:koff + size] = so.data[off:off + size]
    return out
