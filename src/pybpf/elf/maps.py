"""Map specifications from an object: BTF-defined ``.maps`` and global data sections.

Pure: the object's ELF and BTF in, :class:`MapSpec` out. Naming follows libbpf, so the
kernel shows the same map names for an object whoever loads it: a ``.maps`` variable keeps
its name (cut to 15 bytes); a data section becomes ``<object name prefix><section>``.
"""
from __future__ import annotations

import copy
from enum import IntEnum
from typing import Literal, Optional, Union

from .._record import field, record
from ..btf import types as T
from ..errors import BTFError, ObjectError
from ..sys.fastenum import member_or_int
from ..sys.uapi import OBJ_NAME_LEN, MapFlag, MapType

DATA_PREFIXES = (".data", ".rodata", ".bss")
KCONFIG_SECTION = ".kconfig"


class Pinning(IntEnum):
    """``__uint(pinning, ...)`` of a BTF-defined map (enum libbpf_pin_type)."""

    NONE = 0
    BY_NAME = 1


@record
class MapSpec:
    """What BPF_MAP_CREATE needs for one map of an object, and its initial contents.

    ``contents``: slot -> program or map name (``.maps`` initialisers of prog arrays and
    map-in-maps). ``data``: the initial value of a global data map (one element at key 0).
    ``key_type``/``value_type``: BTF types (ids in the object's BTF) when known. Set
    ``autocreate = False`` to skip the map at load (libbpf's ``bpf_map__set_autocreate``):
    code that uses it is poisoned and fails the load only if the verifier reaches it; the
    struct_ops programs of a struct_ops map not created do not load. ``pin_path`` (libbpf's
    ``bpf_map__set_pin_path``): the map pinned there is used if it matches the definition,
    else the map is created and pinned there.
    """

    name: str  # the kernel gets its first 15 bytes (kernel_name)
    type: Union[MapType, int]
    key_size: int
    value_size: int
    max_entries: int
    flags: int = 0
    numa_node: Optional[int] = None
    pinning: Pinning = Pinning.NONE
    map_extra: int = 0
    inner: Optional["MapSpec"] = None
    key_type: Optional[T.Type] = None
    value_type: Optional[T.Type] = None
    contents: dict[int, str] = field(default_factory=dict)
    data: Optional[bytearray] = None
    section: str = ".maps"
    freeze: bool = False  # .rodata and .kconfig: read-only for user space after load
    autocreate: bool = True
    pin_path: Optional[str] = None

    @property
    def kernel_name(self) -> str:
        """The name BPF_MAP_CREATE gets: cut to BPF_OBJ_NAME_LEN - 1 bytes, as libbpf does."""
        return self.name.encode()[:OBJ_NAME_LEN - 1].decode(errors="ignore")

    @property
    def is_data(self) -> bool:
        """A global data section's map (``.data``, ``.rodata``, ``.bss``, ``.kconfig``...)."""
        return self.section != ".maps"

    def copy(self) -> "MapSpec":
        return copy.deepcopy(self)


@record
class VariableSpec:
    """A global variable: ``size`` bytes at ``offset`` of map ``map_name``'s value.

    ``value`` reads and writes the bytes of the initial value (before load); ints are
    packed in the object's byte order with the variable's size (signed per its BTF type).
    """

    name: str
    map: MapSpec
    offset: int
    size: int
    type: Optional[T.Type] = None
    byte_order: Literal["little", "big"] = "little"

    @property
    def signed(self) -> bool:
        """Whether the variable's BTF type is a signed int or enum."""
        t = T.skip_qualifiers(self.type) if self.type is not None else None
        return isinstance(t, (T.Int, T.Enum)) and t.signed

    @property
    def value(self) -> bytes:
        if self.map.data is None:  # .bss, .kconfig before load: zeros
            return bytes(self.size)
        return bytes(self.map.data[self.offset:self.offset + self.size])

    @value.setter
    def value(self, v: Union[bytes, int, bool]) -> None:
        if self.map.data is None:
            self.map.data = bytearray(self.map.value_size)
        if isinstance(v, (bool, int)):
            try:
                raw = int(v).to_bytes(self.size, self.byte_order, signed=self.signed)
            except OverflowError:
                raise ObjectError(f"variable {self.name!r}: {v} does not fit in {self.size} "
                                  "bytes") from None
        else:
            raw = bytes(v)
            if len(raw) != self.size:
                raise ObjectError(f"variable {self.name!r} is {self.size} bytes, got "
                                  f"{len(raw)}")
        self.map.data[self.offset:self.offset + self.size] = raw

    def __int__(self) -> int:
        return int.from_bytes(self.value, self.byte_order, signed=self.signed)


def object_name(path_name: str) -> str:
    """libbpf's object name: the file name up to its first dot (``x.bpf.o`` -> ``x``)."""
    base = path_name.rsplit("/", 1)[-1]
    return base.split(".", 1)[0] if not base.startswith(".") else base


def internal_map_name(obj_name: str, section: str) -> str:
    """libbpf's name of a data section's map: as much of the object name as fits before
    the section name (which gets at least 7 bytes); sections with a second dot
    (``.data.foo``) keep their own name only. Characters the kernel refuses become ``_``."""
    limit = OBJ_NAME_LEN - 1
    sfx = min(max(7, len(section)), limit)
    pfx = 0 if "." in section[1:] else min(limit - sfx, len(obj_name))
    name = (obj_name[:pfx] + section[:sfx])[:limit]
    return "".join(c if c.isalnum() and c.isascii() or c in "_." else "_" for c in name)


def is_data_section(name: str) -> bool:
    return any(name == p or name.startswith(p + ".") for p in DATA_PREFIXES)


def _uint_member(m: T.Member, where: str) -> int:
    """``__uint(name, N)`` is ``int (*name)[N]``: N is the array's element count."""
    t = T.skip_qualifiers(m.type)
    if not isinstance(t, T.Pointer):
        raise ObjectError(f"{where}: member {m.name!r} is not __uint(...) (a pointer to array)")
    arr = T.skip_qualifiers(t.target)
    if not isinstance(arr, T.Array):
        raise ObjectError(f"{where}: member {m.name!r} is not __uint(...) (a pointer to array)")
    return arr.nelems


def _type_member(m: T.Member, where: str) -> T.Type:
    """``__type(name, X)`` is ``typeof(X) *name``: the pointer's target."""
    t = T.skip_qualifiers(m.type)
    if not isinstance(t, T.Pointer):
        raise ObjectError(f"{where}: member {m.name!r} is not __type(...) (a pointer)")
    return t.target


# ``__uint(member, N)`` members that set a MapSpec field to N as it is
_UINT_FIELDS = {"max_entries": "max_entries", "map_flags": "flags", "numa_node": "numa_node",
                "key_size": "key_size", "value_size": "value_size", "map_extra": "map_extra"}


def btf_map(name: str, struct_type: T.Type, where: str, inner: bool = False) -> MapSpec:
    """A BTF-defined map from its definition struct (``struct { __uint(type, ...); ... }``)."""
    st = T.skip_qualifiers(struct_type)
    if not isinstance(st, T.Struct):
        raise ObjectError(f"{where}: map {name!r} is not defined by a struct")
    spec = MapSpec(name=name, type=MapType.UNSPEC, key_size=0,
                   value_size=0, max_entries=0)
    try:
        for m in st.members:
            if m.name == "type":
                spec.type = member_or_int(MapType, _uint_member(m, where))
            elif m.name in _UINT_FIELDS:
                setattr(spec, _UINT_FIELDS[m.name], _uint_member(m, where))
            elif m.name == "pinning":
                n = _uint_member(m, where)
                if n not in (0, 1):
                    raise ObjectError(f"{where}: map {name!r}: pinning {n} is not supported "
                                      "(0: none, 1: LIBBPF_PIN_BY_NAME)")
                spec.pinning = Pinning(n)
            elif m.name == "key":
                spec.key_type = _type_member(m, where)
                spec.key_size = T.sizeof(spec.key_type)
            elif m.name == "value":
                spec.value_type = _type_member(m, where)
                spec.value_size = T.sizeof(spec.value_type)
            elif m.name == "values":
                arr = T.skip_qualifiers(m.type)
                if not isinstance(arr, T.Array):
                    raise ObjectError(f"{where}: map {name!r}: 'values' is not __array(...)")
                ptr = T.skip_qualifiers(arr.type)
                target = T.skip_qualifiers(ptr.target) if isinstance(ptr, T.Pointer) else None
                if spec.type == MapType.PROG_ARRAY:
                    if not isinstance(target, T.FuncProto):
                        raise ObjectError(f"{where}: prog array {name!r}: 'values' must be "
                                          "an array of function pointers")
                elif isinstance(target, T.Struct) and not inner:
                    spec.inner = btf_map(name + ".inner", target, where, inner=True)
                else:
                    raise ObjectError(f"{where}: map {name!r}: 'values' must hold map "
                                      "definitions (map-in-map) or functions (prog array)")
                spec.value_size = spec.value_size or 4
            else:
                raise ObjectError(f"{where}: map {name!r} has unknown member {m.name!r}")
    except BTFError as e:
        raise ObjectError(f"{where}: map {name!r}: {e}") from None
    if spec.type == MapType.UNSPEC:
        raise ObjectError(f"{where}: map {name!r} has no type (__uint(type, BPF_MAP_TYPE_...))")
    if spec.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS) and spec.inner is None:
        raise ObjectError(f"{where}: map-in-map {name!r} needs an inner map definition "
                          "(__array(values, struct {...}))")
    return spec


def data_map(obj_name: str, section: str, size: int, data: bytes) -> MapSpec:
    """The single-element array map holding a global data section's variables."""
    ro = section == ".rodata" or section.startswith(".rodata.") or section == KCONFIG_SECTION
    flags = MapFlag.MMAPABLE | (MapFlag.RDONLY_PROG if ro else 0)
    return MapSpec(name=internal_map_name(obj_name, section), type=MapType.ARRAY, key_size=4,
                   value_size=size, max_entries=1, flags=int(flags),
                   data=bytearray(data) if data else None, section=section, freeze=ro)


def pack_slot_index(offset: int, values_offset: int, where: str, name: str) -> int:
    """The slot of a ``.maps`` relocation at byte ``offset`` in map ``name``'s ``values``."""
    rel = offset - values_offset
    if rel < 0 or rel % 8:
        raise ObjectError(f"{where}: relocation at byte {offset} of map {name!r} is not in its "
                          "'values' array")
    return rel // 8

