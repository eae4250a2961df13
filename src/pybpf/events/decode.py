"""Record decoding: how the bytes of one event become a Python object.

A reader's ``decode=`` is one of

* ``None``: each record is ``bytes`` (a copy);
* a ``ctypes.Structure`` (or ``Union``) subclass: ``cls.from_buffer_copy`` of the record;
* a BTF type (``pybpf.btf.types.Struct``...), or its C name (``"struct event"``) looked up
  in the BTF of the map's object: decoded by ``pybpf.btf.values`` (the codec maps and
  ``pybpf map dump`` use too): structs as ``StructValue`` records, one attribute per member,
  ``char`` arrays as ``str``, other arrays as lists, enums as ``EnumInt``, bitfields as ints;
* any callable taking a ``memoryview`` of the record: its result is the record. The view is
  valid only during the call (the memory goes back to the kernel afterwards): copy what you
  keep.

Fixed-size decoders (ctypes, BTF) let the readers decode a run of equal records in one C-level
``map()``; records shorter than the type are zero-padded.
"""
from __future__ import annotations

import ctypes
from typing import Any, Callable, Optional

from ..btf import types as T
from ..btf import values
from ..errors import UsageError

DecodeSpec = Any
"""None, a ctypes Structure/Union subclass, a BTF type or its C name, or a callable(memoryview)."""

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


class FixedDecoder(Decoder):
    """Records of a fixed-size type: ``at(buf, off)`` (a ctypes class's ``from_buffer_copy``
    or a BTF codec's ``get``) on the record, zero-padded when shorter."""

    def __init__(self, at: Callable[[Any, int], Any], size: int) -> None:
        self.at, self.size = at, size

    def one(self, buf: memoryview, off: int, length: int) -> Any:
        at, size = self.at, self.size
        assert at is not None and size is not None
        if length >= size:
            return at(buf, off)
        return at(bytes(buf[off:off + length]).ljust(size, b"\0"), 0)


def decoder_for(decode: DecodeSpec, btf: Optional[Any] = None, what: str = "") -> Decoder:
    """The decoder for a reader's ``decode=`` argument; a C type name is looked up in ``btf``
    (a ``pybpf.btf.Spec``: the map's object's BTF; ``what`` names the map)."""
    if decode is None:
        return RawDecoder()
    if isinstance(decode, Decoder):
        return decode
    if isinstance(decode, type) and issubclass(decode, _CTYPES_COMPOSITE):
        return FixedDecoder(decode.from_buffer_copy, ctypes.sizeof(decode))
    if isinstance(decode, str):
        decode = record_type(decode, btf, what)
    if isinstance(decode, T.Type):
        codec = values.codec(decode)
        return FixedDecoder(codec.get, codec.size)
    if callable(decode):
        return CallableDecoder(decode)
    raise UsageError(f"decode={decode!r}: expected None, a ctypes Structure subclass, a BTF "
                     "type (pybpf.btf.types.Struct) or its name (\"struct event\"), or a "
                     "callable taking a memoryview")


def record_type(name: str, btf: Optional[Any], what: str) -> T.Type:
    """The BTF type ``name`` (``"struct event"``) of ``btf``, the BTF of the map's object."""
    if btf is None:
        raise UsageError(f"decode={name!r} names a BTF type, but {what or 'the map'} has no "
                         "BTF to find it in (made without an object, or its BTF is not in the "
                         "kernel): give the type itself, e.g. decode=spec.btf.find(...)")
    return values.find_type(btf, name)
