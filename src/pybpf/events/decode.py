"""Record decoding: how the bytes of one event become a Python object.

A reader's ``decode=`` is one of

* ``None``: each record is ``bytes`` (a copy);
* a ``ctypes.Structure`` (or ``Union``) subclass: ``cls.from_buffer_copy`` of the record;
* a BTF struct or union (``pybpf.btf.types.Struct``): converted once into a ctypes class
  (:func:`ctypes_from_btf`) whose instances have one attribute per member, ``char`` arrays
  read as ``str``, ``unsigned char`` arrays as ``bytes``, bitfields as ints;
* any callable taking a ``memoryview`` of the record: its result is the record. The view is
  valid only during the call (the memory goes back to the kernel afterwards): copy what you
  keep.

Fixed-size decoders (ctypes, BTF) let the readers decode a run of equal records in one C-level
``map()``; records shorter than the struct are zero-padded.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Any, Callable, Optional

from ..errors import BTFError, UsageError

DecodeSpec = Any
"""None, a ctypes Structure/Union subclass, a BTF Struct/Union, or a callable(memoryview)."""

_CTYPES_COMPOSITE = (ctypes.Structure, ctypes.Union)


class Decoder:
    """Turns the record at ``buf[off:off + length]`` into an object.

    ``size`` is the fixed record size the decoder reads (None for variable-size records);
    ``at(buf, off)`` decodes a record of at least ``size`` bytes without a length check.
    """

    size: Optional[int] = None
    at: Optional[Callable[[Any, int], Any]] = None

    def one(self, buf: memoryview, off: int, length: int) -> Any:
        raise NotImplementedError


class RawDecoder(Decoder):
    """Records as ``bytes``."""

    def one(self, buf: memoryview, off: int, length: int) -> bytes:
        return bytes(buf[off:off + length])


class CallableDecoder(Decoder):
    """Records through ``fn(memoryview)``."""

    def __init__(self, fn: Callable[[memoryview], Any]) -> None:
        self.fn = fn

    def one(self, buf: memoryview, off: int, length: int) -> Any:
        return self.fn(buf[off:off + length])


class CtypesDecoder(Decoder):
    """Records as instances of a ctypes Structure/Union (copies)."""

    def __init__(self, cls: type) -> None:
        self.cls = cls
        self.size = ctypes.sizeof(cls)
        self.at = cls.from_buffer_copy

    def one(self, buf: memoryview, off: int, length: int) -> Any:
        if length >= self.size:
            return self.cls.from_buffer_copy(buf, off)
        return self.cls.from_buffer_copy(bytes(buf[off:off + length]).ljust(self.size, b"\0"))


def decoder_for(decode: DecodeSpec) -> Decoder:
    """The decoder for a reader's ``decode=`` argument."""
    if decode is None:
        return RawDecoder()
    if isinstance(decode, Decoder):
        return decode
    if isinstance(decode, type) and issubclass(decode, _CTYPES_COMPOSITE):
        return CtypesDecoder(decode)
    from ..btf import types as T
    if isinstance(decode, T.Type):
        return CtypesDecoder(ctypes_from_btf(decode))
    if callable(decode):
        return CallableDecoder(decode)
    raise UsageError(f"decode={decode!r}: expected None, a ctypes Structure subclass, a BTF "
                     "struct (pybpf.btf.types.Struct) or a callable taking a memoryview")


# -- BTF -> ctypes ------------------------------------------------------------------------------

class Record:
    """Mixin of the ctypes classes made from BTF: a readable repr and ``_asdict()``."""

    _names: tuple = ()
    _btf: Any = None
    _conversions: tuple = ()
    _bitfields: tuple = ()

    def _asdict(self) -> dict:
        return {n: getattr(self, n) for n in self._names}

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._names)
        return f"{type(self).__name__}({body})"

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return bytes(self) == bytes(other)  # type: ignore[call-overload]

    __hash__ = None  # type: ignore[assignment]


_INTS = {(1, False): ctypes.c_uint8, (1, True): ctypes.c_int8, (2, False): ctypes.c_uint16,
         (2, True): ctypes.c_int16, (4, False): ctypes.c_uint32, (4, True): ctypes.c_int32,
         (8, False): ctypes.c_uint64, (8, True): ctypes.c_int64}


def _is_char(t: Any) -> bool:
    from ..btf import types as T
    t = T.skip_qualifiers(t)
    return isinstance(t, T.Int) and t.size == 1 and (
        bool(t.encoding & T.INT_CHAR) or t.name in ("char", "signed char"))


def _is_byte(t: Any) -> bool:
    from ..btf import types as T
    t = T.skip_qualifiers(t)
    return isinstance(t, T.Int) and t.size == 1 and not _is_char(t)


@functools.lru_cache(maxsize=256)
def ctypes_from_btf(t: Any) -> type:
    """A ctypes type laid out exactly as BTF type ``t`` (struct, union, int, array, ...).

    Structs and unions become classes with the member names as attributes (``Record``);
    anonymous struct/union members are flattened as in C. Pointers read as ``c_uint64``
    addresses. Raises BTFError for types without a size (void, functions, forward declarations).
    """
    from ..btf import types as T
    t = T.skip_qualifiers(t)
    if isinstance(t, T.Int):
        if t.encoding & T.INT_BOOL and t.size == 1:
            return ctypes.c_bool
        if _is_char(t):
            return ctypes.c_char
        if t.size in (1, 2, 4, 8):
            return _INTS[(t.size, t.signed)]
        return ctypes.c_uint8 * t.size  # __int128
    if isinstance(t, T.Enum):
        return _INTS[(t.size, t.signed)]
    if isinstance(t, T.Float):
        return {4: ctypes.c_float, 8: ctypes.c_double}.get(t.size) or ctypes.c_uint8 * t.size
    if isinstance(t, T.Pointer):
        return ctypes.c_uint64 if T.sizeof(t) == 8 else ctypes.c_uint32
    if isinstance(t, T.Array):
        return ctypes_from_btf(t.type) * t.nelems
    if isinstance(t, T.Composite):
        return _composite(t)
    raise BTFError(f"{t!r} has no fixed layout to decode records with")


def _composite(t: Any) -> type:
    """A Record class for a struct/union: a ctypes layout class (``_layout``; padding fields
    put members at their BTF offsets) and a subclass adding properties for text, bytes and
    bitfields; anonymous members use the layout class, their properties lifted to the outer."""
    from ..btf import types as T
    union = isinstance(t, T.Union)
    what = f"{'union' if union else 'struct'} {t.name or '(anon)'}"
    fields: list[tuple] = []
    conversions: list[tuple[str, Callable[[Any], Any]]] = []
    bitfields: list[tuple[str, Any, int]] = []  # (name, member, bit offset of its container)
    anonymous: list[str] = []
    names: list[str] = []
    pos = 0
    for i, m in enumerate(t.members):
        name = m.name or f"_anon{i}"
        if m.bitfield_size or m.offset % 8:
            bitfields.append((name, m, 0))
            names.append(name)
            continue
        off = m.offset // 8
        ctype = ctypes_from_btf(m.type)
        if not m.name and hasattr(ctype, "_layout"):
            anonymous.append(name)
            names.extend(ctype._names)
            conversions.extend(ctype._conversions)
            bitfields.extend((n, bm, base + m.offset) for n, bm, base in ctype._bitfields)
            ctype = ctype._layout
        elif m.name:
            names.append(name)
            mt = T.skip_qualifiers(m.type)
            if isinstance(mt, T.Array) and _is_char(mt.type):
                conversions.append((name, _text))
            elif isinstance(mt, T.Array) and _is_byte(mt.type):
                conversions.append((name, bytes))
        if not union:
            if off < pos:
                raise BTFError(f"{what}: member {name!r} at byte {off} overlaps the previous one")
            if off > pos:
                fields.append((f"_pad{pos}", ctypes.c_uint8 * (off - pos)))
            pos = off + ctypes.sizeof(ctype)
        elif off:
            raise BTFError(f"{what}: union member {name!r} is not at offset 0")
        fields.append((name, ctype))
    if union:
        fields.append(("_size", ctypes.c_uint8 * t.size))
    elif t.size > pos:
        fields.append((f"_pad{pos}", ctypes.c_uint8 * (t.size - pos)))
    base = ctypes.Union if union else ctypes.Structure
    ident = t.name if t.name.isidentifier() else "anon"
    layout = type(f"{ident}_layout", (Record, base),
                  {"_pack_": 1, "_anonymous_": anonymous, "_fields_": fields})
    if ctypes.sizeof(layout) != t.size:
        raise BTFError(f"{what}: members do not fit its {t.size} bytes")
    props = {name: _converted(layout.__dict__[name], layout, convert)
             for name, convert in conversions}
    props.update((name, _bitfield(m, base_bits, what)) for name, m, base_bits in bitfields)
    return type(ident, (layout,), {
        **props, "_names": tuple(names), "_btf": t, "_layout": layout,
        "_conversions": tuple(conversions), "_bitfields": tuple(bitfields),
        "__module__": __name__})


def _text(raw: bytes) -> str:
    return raw.decode(errors="surrogateescape")  # as pybpf.btf.values: bytes survive


def _converted(field: Any, owner: type, convert: Callable[[Any], Any]) -> property:
    """The ctypes ``field`` of ``owner`` read through ``convert`` (char[] -> str, u8[] -> bytes)."""
    get = field.__get__
    return property(lambda self: convert(get(self, owner)))


def _bitfield(m: Any, base_bits: int, what: str) -> property:
    """Bitfield ``m`` of a struct that starts ``base_bits`` into the record class's bytes."""
    from ..btf import types as T
    mt = T.skip_qualifiers(m.type)
    bits = m.bitfield_size or 8 * T.sizeof(mt)
    offset = base_bits + m.offset
    lo, shift = divmod(offset, 8)
    hi = (offset + bits + 7) // 8
    mask = (1 << bits) - 1
    signed = isinstance(mt, (T.Int, T.Enum)) and mt.signed

    def get(self: Any) -> int:  # little-endian bit numbering (x86, arm64, riscv, BPF)
        v = (int.from_bytes(bytes(self)[lo:hi], "little") >> shift) & mask
        return v - (1 << bits) if signed and v >> (bits - 1) else v
    return property(get, doc=f"bitfield {m.name} of {what} ({bits} bits at bit {offset})")
