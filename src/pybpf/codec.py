"""Key and value codecs: how Python objects become the bytes a map stores, and back.

A codec has a fixed ``size`` and puts/gets one element at an offset of a bytearray.
``codec_for(spec, size)`` accepts: None (raw: bytes, bytearray, int or ctypes object in;
bytes out), a ``struct`` format string (values or tuples), a ctypes type (instances), or a
BTF type (``pybpf.btf.values``: the BTF codec; plain integers take the ``struct`` path).
"""
from __future__ import annotations

import ctypes
import struct
import sys
from typing import Any, Callable, Optional, Protocol, Union

from .btf import types as T
from .btf import values
from .errors import UsageError

CodecSpec = Union[None, str, type, T.Type, "Codec"]
_BYTEORDER = sys.byteorder
_CData: Any = ctypes._SimpleCData.__mro__[1]  # base of every ctypes type


class Codec(Protocol):
    """``put``/``get`` one element at ``offset`` of a buffer.

    A codec may also have ``put_unchecked``: a faster ``put`` that raises any exception on bad
    input, after which the caller runs ``put`` to get the explanatory UsageError.
    """

    size: int

    def put(self, buf: bytearray, offset: int, value: Any) -> None: ...

    def get(self, buf: bytearray, offset: int) -> Any: ...


class RawCodec:
    """bytes of exactly ``size``, host-endian ints, or ctypes objects in; bytes out."""

    def __init__(self, size: int, what: str) -> None:
        self.size = size
        self.what = what
        self._int = struct.Struct({1: "=B", 2: "=H", 4: "=I", 8: "=Q"}.get(size, "=B"))
        self._bytes = struct.Struct(f"{size}s")  # copies in and out faster than slicing

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        size = self.size
        if type(value) is bytes and len(value) == size:  # the common case, first
            self._bytes.pack_into(buf, offset, value)
        elif isinstance(value, (bytes, bytearray, memoryview)):
            if len(value) != size:
                raise UsageError(f"{self.what} must be {size} bytes, got {len(value)}")
            buf[offset:offset + size] = value
        elif isinstance(value, int):
            if size in (1, 2, 4, 8) and value >= 0:
                try:
                    self._int.pack_into(buf, offset, value)
                    return
                except struct.error:
                    pass
            try:
                buf[offset:offset + size] = value.to_bytes(size, _BYTEORDER, signed=value < 0)
            except OverflowError:
                raise UsageError(f"{self.what}: {value} does not fit in {size} bytes") from None
        elif isinstance(value, _CData):
            self.put(buf, offset, bytes(value))
        else:
            raise UsageError(f"{self.what} must be bytes, int or a ctypes object of {size} bytes, "
                             f"not {type(value).__name__}")

    def get(self, buf: bytearray, offset: int) -> bytes:
        return self._bytes.unpack_from(buf, offset)[0]


class StructCodec:
    """A ``struct`` format: one field gives plain values, several give tuples."""

    def __init__(self, fmt: str, what: str) -> None:
        self._s = struct.Struct(fmt)
        self._pack_into, self._unpack_from = self._s.pack_into, self._s.unpack_from
        self.size = self._s.size
        self.what = what
        self._single = len(self._s.unpack(bytes(self.size))) == 1
        if self._single:
            self.put_unchecked = self._pack_into

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        try:
            if self._single:
                self._pack_into(buf, offset, value)
            else:
                self._pack_into(buf, offset, *value)
        except (struct.error, TypeError) as e:
            raise UsageError(f"{self.what}: {value!r} does not pack as {self._s.format!r}: {e}") from None

    def get(self, buf: bytearray, offset: int) -> Any:
        v = self._unpack_from(buf, offset)
        return v[0] if self._single else v


class ScalarCodec(StructCodec):
    """A BTF integer, pointer or float (``pybpf.btf.values.plain_format``): numbers, or raw
    bytes of its size, in; numbers out."""

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        if isinstance(value, (bytes, bytearray)) and len(value) == self.size:
            buf[offset:offset + self.size] = value
        else:
            super().put(buf, offset, value)


class CtypesCodec:
    """A ctypes type: instances (or anything its constructor takes) in, instances out."""

    def __init__(self, ctype: Any, what: str) -> None:
        self.ctype = ctype
        self.size = ctypes.sizeof(ctype)
        self.what = what

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        if not isinstance(value, self.ctype):
            try:
                value = self.ctype(*value) if isinstance(value, tuple) else self.ctype(value)
            except TypeError as e:
                raise UsageError(f"{self.what}: cannot make {self.ctype.__name__} from {value!r}: {e}") from None
        buf[offset:offset + self.size] = bytes(value)

    def get(self, buf: bytearray, offset: int) -> Any:
        return self.ctype.from_buffer_copy(buf, offset)


def pair_packer(key: Codec, value_size: int) -> Optional[Callable[[bytearray, int, Any, bytes], None]]:
    """``pack(buf, offset, key, value)``: a one-field ``struct`` key, then ``value_size`` raw
    bytes right after it, in one step; None for other key codecs.

    The value must be bytes of exactly ``value_size`` (others are padded or cut silently);
    a bad key raises ``struct.error``, after which the caller runs ``key.put`` for the
    explanatory UsageError.
    """
    if not isinstance(key, StructCodec) or not key._single:
        return None
    pair = struct.Struct(f"{key._s.format}{value_size}s")  # "s" has no alignment: no padding
    if pair.size != key.size + value_size:
        return None
    return pair.pack_into


def codec_for(spec: CodecSpec, size: int, what: str) -> Codec:
    """The codec for ``spec`` of an element of ``size`` bytes; a mismatch is a UsageError."""
    if spec is None:
        return RawCodec(size, what)
    if isinstance(spec, str):
        codec: Codec = StructCodec(spec, what)
    elif isinstance(spec, type) and issubclass(spec, _CData):
        codec = CtypesCodec(spec, what)
    elif isinstance(spec, T.Type):
        fmt = values.plain_format(spec)
        codec = ScalarCodec(fmt, what) if fmt is not None else values.codec(spec)
    elif hasattr(spec, "put") and hasattr(spec, "get") and hasattr(spec, "size"):
        codec = spec
    else:
        raise UsageError(f"{what}: a codec is a struct format, a ctypes type, a BTF type or a "
                         f"Codec, not {spec!r}")
    if codec.size != size:
        raise UsageError(f"{what} is {size} bytes but the codec {spec!r} is {codec.size}")
    return codec
