"""The BTF type model: one class per BTF kind (``BTF_KIND_*``).

Types form a graph: reference attributes (``Pointer.target``, ``Member.type``, ...) return
``Type`` objects. Types decoded from a :class:`~pybpf.btf.spec.Spec` hold their references as
type ids and resolve them through the spec on first access, so touching one vmlinux type does
not decode the whole graph. Types built in Python hold ``Type`` objects directly; their ``id``
is ``None`` until an encoder numbers them.
"""
from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Any, Optional

from ..errors import BTFError
from ..sys.uapi import BtfKind

if TYPE_CHECKING:
    from .spec import Spec

INT_SIGNED = 1 << 0   # BTF_INT_SIGNED
INT_CHAR = 1 << 1     # BTF_INT_CHAR
INT_BOOL = 1 << 2     # BTF_INT_BOOL

LINKAGE_STATIC = 0    # BTF_FUNC_STATIC / BTF_VAR_STATIC
LINKAGE_GLOBAL = 1    # BTF_FUNC_GLOBAL / BTF_VAR_GLOBAL_ALLOCATED
LINKAGE_EXTERN = 2    # BTF_FUNC_EXTERN / BTF_VAR_GLOBAL_EXTERN

MAX_RESOLVE_DEPTH = 32  # libbpf's bound on modifier/typedef chains; deeper means a loop

TypeRef = typing.Union["Type", int]  # typing's: ``Union`` here is BTF_KIND_UNION


class _Ref:
    """A reference to another type, stored as a ``Type`` or as an id resolved on first access."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, obj: Any, owner: Optional[type] = None) -> Any:
        if obj is None:
            return self
        value = getattr(obj, self.slot)
        if value.__class__ is int:
            value = obj._spec.type_by_id(value)
            setattr(obj, self.slot, value)
        return value

    def __set__(self, obj: Any, value: TypeRef) -> None:
        setattr(obj, self.slot, value)


class Type:
    """A BTF type: ``id`` in its spec (``None`` if built in Python), ``name`` ('' if anonymous)."""

    kind: BtfKind = BtfKind.UNKN
    __slots__ = ("name", "id", "_spec")

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.id: Optional[int] = None
        self._spec: Optional[Spec] = None

    def _refs(self) -> tuple[str, ...]:
        return ()

    def __repr__(self) -> str:
        ident = f"[{self.id}] " if self.id is not None else ""
        return f"<{ident}{self.kind.name} {self.name or '(anon)'!s}>"


class Void(Type):
    """Type id 0: ``void``, and the type of a variadic function's last parameter."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__("")
        self.id = 0

    def __repr__(self) -> str:
        return "<[0] void>"


VOID = Void()


class Int(Type):
    """BTF_KIND_INT: ``size`` bytes; ``encoding`` of INT_SIGNED/INT_CHAR/INT_BOOL; ``bits`` wide
    at bit ``offset``."""

    kind = BtfKind.INT
    __slots__ = ("size", "encoding", "bits", "offset")

    def __init__(self, name: str, size: int, encoding: int = 0, bits: Optional[int] = None,
                 offset: int = 0) -> None:
        super().__init__(name)
        self.size, self.encoding, self.offset = size, encoding, offset
        self.bits = size * 8 if bits is None else bits

    @property
    def signed(self) -> bool:
        return bool(self.encoding & INT_SIGNED)


class Pointer(Type):
    """BTF_KIND_PTR to ``target``."""

    kind = BtfKind.PTR
    __slots__ = ("_target",)
    target = _Ref()

    def __init__(self, target: TypeRef) -> None:
        super().__init__("")
        self.target = target


class Array(Type):
    """BTF_KIND_ARRAY of ``nelems`` elements of ``type``, indexed by ``index_type``."""

    kind = BtfKind.ARRAY
    __slots__ = ("_type", "_index_type", "nelems")
    type = _Ref()
    index_type = _Ref()

    def __init__(self, type: TypeRef, index_type: TypeRef, nelems: int) -> None:
        super().__init__("")
        self.type, self.index_type, self.nelems = type, index_type, nelems


class Member:
    """A struct/union member: ``offset`` in bits from the start; ``bitfield_size`` 0 unless a
    bitfield."""

    __slots__ = ("name", "_type", "offset", "bitfield_size", "_spec")
    type = _Ref()

    def __init__(self, name: str, type: TypeRef, offset: int = 0, bitfield_size: int = 0,
                 spec: Optional[Spec] = None) -> None:
        self.name, self.type, self.offset, self.bitfield_size = name, type, offset, bitfield_size
        self._spec = spec

    def __repr__(self) -> str:
        bits = f":{self.bitfield_size}" if self.bitfield_size else ""
        return f"<member {self.name or '(anon)'}{bits} @bit {self.offset}>"


class Composite(Type):
    """A struct or union of ``size`` bytes."""

    __slots__ = ("size", "members")

    def __init__(self, name: str, size: int, members: list[Member]) -> None:
        super().__init__(name)
        self.size, self.members = size, members

    def member(self, name: str) -> Member:
        """The member called ``name`` (not searching anonymous members)."""
        for m in self.members:
            if m.name == name:
                return m
        raise BTFError(f"{self.kind.name.lower()} {self.name or '(anon)'} has no member {name!r}")


class Struct(Composite):
    """BTF_KIND_STRUCT."""

    kind = BtfKind.STRUCT
    __slots__ = ()


class Union(Composite):
    """BTF_KIND_UNION."""

    kind = BtfKind.UNION
    __slots__ = ()


class EnumValue:
    """An enumerator."""

    __slots__ = ("name", "value")

    def __init__(self, name: str, value: int) -> None:
        self.name, self.value = name, value

    def __repr__(self) -> str:
        return f"<{self.name} = {self.value}>"


class Enum(Type):
    """BTF_KIND_ENUM: 32-bit (or smaller) values, ``signed`` per the kind flag."""

    kind = BtfKind.ENUM
    __slots__ = ("size", "values", "signed")

    def __init__(self, name: str, size: int, values: list[EnumValue], signed: bool = False) -> None:
        super().__init__(name)
        self.size, self.values, self.signed = size, values, signed


class Enum64(Enum):
    """BTF_KIND_ENUM64: 64-bit values."""

    kind = BtfKind.ENUM64
    __slots__ = ()


class Fwd(Type):
    """BTF_KIND_FWD: a forward declaration of a struct (or union if ``union``)."""

    kind = BtfKind.FWD
    __slots__ = ("union",)

    def __init__(self, name: str, union: bool = False) -> None:
        super().__init__(name)
        self.union = union


class Typedef(Type):
    """BTF_KIND_TYPEDEF ``name`` for ``type``."""

    kind = BtfKind.TYPEDEF
    __slots__ = ("_type",)
    type = _Ref()

    def __init__(self, name: str, type: TypeRef) -> None:
        super().__init__(name)
        self.type = type


class Qualifier(Type):
    """A modifier of ``type``: const, volatile, restrict, type tag."""

    __slots__ = ("_type",)
    type = _Ref()

    def __init__(self, type: TypeRef, name: str = "") -> None:
        super().__init__(name)
        self.type = type


class Volatile(Qualifier):
    kind = BtfKind.VOLATILE
    __slots__ = ()


class Const(Qualifier):
    kind = BtfKind.CONST
    __slots__ = ()


class Restrict(Qualifier):
    kind = BtfKind.RESTRICT
    __slots__ = ()


class TypeTag(Qualifier):
    """BTF_KIND_TYPE_TAG: ``__attribute__((btf_type_tag(name)))`` on ``type``; ``attribute``
    (the kind flag, Linux 6.14+): ``name`` is a whole ``__attribute__((name))``."""

    kind = BtfKind.TYPE_TAG
    __slots__ = ("attribute",)

    def __init__(self, name: str, type: TypeRef, attribute: bool = False) -> None:
        super().__init__(type, name)
        self.attribute = attribute


class FuncParam:
    """A function prototype's parameter (``name`` may be '')."""

    __slots__ = ("name", "_type", "_spec")
    type = _Ref()

    def __init__(self, name: str, type: TypeRef, spec: Optional[Spec] = None) -> None:
        self.name, self.type, self._spec = name, type, spec

    def __repr__(self) -> str:
        return f"<param {self.name or '(anon)'}>"


class FuncProto(Type):
    """BTF_KIND_FUNC_PROTO: ``return_type`` (VOID for void) and ``params``; a last parameter
    of type VOID with no name marks a variadic function."""

    kind = BtfKind.FUNC_PROTO
    __slots__ = ("_return_type", "params")
    return_type = _Ref()

    def __init__(self, return_type: TypeRef, params: list[FuncParam]) -> None:
        super().__init__("")
        self.return_type, self.params = return_type, params

    @property
    def variadic(self) -> bool:
        return bool(self.params) and self.params[-1].type is VOID and not self.params[-1].name


class Func(Type):
    """BTF_KIND_FUNC ``name`` with prototype ``proto`` and ``linkage``."""

    kind = BtfKind.FUNC
    __slots__ = ("_proto", "linkage")
    proto = _Ref()

    def __init__(self, name: str, proto: TypeRef, linkage: int = LINKAGE_STATIC) -> None:
        super().__init__(name)
        self.proto, self.linkage = proto, linkage


class Var(Type):
    """BTF_KIND_VAR: a global variable of ``type``."""

    kind = BtfKind.VAR
    __slots__ = ("_type", "linkage")
    type = _Ref()

    def __init__(self, name: str, type: TypeRef, linkage: int = LINKAGE_GLOBAL) -> None:
        super().__init__(name)
        self.type, self.linkage = type, linkage


class VarSecinfo:
    """A DATASEC entry: variable (or func, for .ksyms) ``type`` at ``offset``, ``size`` bytes."""

    __slots__ = ("_type", "offset", "size", "_spec")
    type = _Ref()

    def __init__(self, type: TypeRef, offset: int, size: int, spec: Optional[Spec] = None) -> None:
        self.type, self.offset, self.size, self._spec = type, offset, size, spec

    def __repr__(self) -> str:
        return f"<secinfo {self.type.name} @{self.offset} size {self.size}>"


class Datasec(Type):
    """BTF_KIND_DATASEC: an ELF section (``.data``, ``.maps``, ...) of ``size`` bytes."""

    kind = BtfKind.DATASEC
    __slots__ = ("size", "vars")

    def __init__(self, name: str, size: int, vars: list[VarSecinfo]) -> None:
        super().__init__(name)
        self.size, self.vars = size, vars


class Float(Type):
    """BTF_KIND_FLOAT of ``size`` bytes."""

    kind = BtfKind.FLOAT
    __slots__ = ("size",)

    def __init__(self, name: str, size: int) -> None:
        super().__init__(name)
        self.size = size


class DeclTag(Type):
    """BTF_KIND_DECL_TAG ``name`` on ``type`` (``component_idx`` -1: the type itself, else the
    member/parameter index); ``attribute`` as for TypeTag."""

    kind = BtfKind.DECL_TAG
    __slots__ = ("_type", "component_idx", "attribute")
    type = _Ref()

    def __init__(self, name: str, type: TypeRef, component_idx: int = -1,
                 attribute: bool = False) -> None:
        super().__init__(name)
        self.type, self.component_idx, self.attribute = type, component_idx, attribute


def type_id(t: Type) -> int:
    """``t``'s id in the spec it was parsed from or encoded into (BTFError before it has one)."""
    if t.id is None:
        raise BTFError(f"{t!r} has no type id (built in Python): encode it first")
    return t.id


def skip_qualifiers(t: Type, typedefs: bool = True) -> Type:
    """``t`` without const/volatile/restrict/type tags (and typedefs, unless ``typedefs`` is
    False)."""
    for _ in range(MAX_RESOLVE_DEPTH):
        if isinstance(t, Qualifier) or (typedefs and isinstance(t, Typedef)):
            t = t.type
        else:
            return t
    raise BTFError(f"type chain from {t!r} is longer than {MAX_RESOLVE_DEPTH} (a loop?)")


def sizeof(t: Type) -> int:
    """The size in bytes of a value of type ``t`` (C's ``sizeof``)."""
    depth = 0
    nelems = 1
    while depth < MAX_RESOLVE_DEPTH:
        t = skip_qualifiers(t)
        if isinstance(t, (Int, Composite, Enum, Float, Datasec)):
            return nelems * t.size
        if isinstance(t, Pointer):
            return nelems * _pointer_size(t)
        if isinstance(t, Array):
            nelems *= t.nelems
            t = t.type
            depth += 1
            continue
        if isinstance(t, Var):
            t = t.type
            depth += 1
            continue
        raise BTFError(f"{t!r} has no size")
    raise BTFError(f"array nesting from {t!r} is deeper than {MAX_RESOLVE_DEPTH} (a loop?)")


def alignof(t: Type, _depth: int = 0, _memo: Optional[dict[int, int]] = None) -> int:
    """The alignment of ``t`` in bytes as libbpf computes it: scalars align to their size (at
    most a pointer's), composites to their most aligned member, or 1 when laid out packed."""
    if _memo is None:
        _memo = {}
    for _ in range(MAX_RESOLVE_DEPTH - _depth):
        t = skip_qualifiers(t)
        if isinstance(t, Array):
            t = t.type
            _depth += 1
            continue
        if isinstance(t, (Int, Enum, Float)):
            return max(1, min(t.size, _pointer_size(t)))
        if isinstance(t, Pointer):
            return _pointer_size(t)
        if isinstance(t, Composite):
            known = _memo.get(id(t))  # shared member types are computed once, not per path
            if known is not None:
                return known
            most = 1
            for m in t.members:
                align = alignof(m.type, _depth + 1, _memo)
                if not m.bitfield_size and m.offset % (8 * align):
                    most = 0  # a member off its natural alignment: the struct is packed
                    break
                most = max(most, align)
            _memo[id(t)] = 1 if not most or t.size % most else most
            return _memo[id(t)]
        raise BTFError(f"{t!r} has no alignment")
    raise BTFError(f"type nesting from {t!r} is deeper than {MAX_RESOLVE_DEPTH} (a loop?)")


def _pointer_size(t: Type) -> int:
    return 8 if t._spec is None else t._spec.pointer_size
