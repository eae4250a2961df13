"""Key/value codecs (pure: no kernel)."""
from __future__ import annotations

import ctypes
import struct
import sys

import pytest

from pybpf.codec import (CtypesCodec, RawCodec, ScalarCodec, StructCodec, codec_for,
                         pair_packer)
from pybpf.errors import UsageError


class Point(ctypes.Structure):
    _fields_ = [("x", ctypes.c_int32), ("y", ctypes.c_int32)]


def roundtrip(codec, value, offset=3):
    buf = bytearray(offset + codec.size + 2)
    codec.put(buf, offset, value)
    assert buf[:offset] == bytes(offset) and buf[offset + codec.size:] == b"\0\0"  # no spill
    return codec.get(buf, offset), bytes(buf[offset:offset + codec.size])


@pytest.mark.parametrize("size", [1, 2, 4, 8, 3, 16])
def test_raw_ints_are_host_endian(size):
    c = RawCodec(size, "key")
    got, raw = roundtrip(c, 5)
    assert got == raw == (5).to_bytes(size, sys.byteorder)


def test_raw_negative_and_overflow():
    c = RawCodec(4, "map 'm': key")
    assert roundtrip(c, -1)[1] == b"\xff" * 4
    with pytest.raises(UsageError, match="map 'm': key: 4294967296 does not fit in 4 bytes"):
        roundtrip(c, 2**32)


def test_raw_bytes_ctypes_and_bad_types():
    c = RawCodec(8, "map 'm': value")
    assert roundtrip(c, b"abcdefgh")[0] == b"abcdefgh"
    assert roundtrip(c, bytearray(b"12345678"))[0] == b"12345678"
    assert roundtrip(c, Point(1, -1))[0] == bytes(Point(1, -1))
    with pytest.raises(UsageError, match="must be 8 bytes, got 3"):
        roundtrip(c, b"abc")
    with pytest.raises(UsageError, match="not str"):
        roundtrip(c, "abcdefgh")


def test_struct_codec_single_and_tuple():
    one = StructCodec("<I", "v")
    assert roundtrip(one, 7) == (7, b"\x07\0\0\0")
    two = StructCodec("<I12s", "v")
    assert two.size == 16
    assert roundtrip(two, (1, b"hi"))[0] == (1, b"hi" + bytes(10))
    with pytest.raises(UsageError, match="does not pack"):
        roundtrip(two, 1)
    with pytest.raises(UsageError, match="does not pack"):
        roundtrip(one, -1)


def test_ctypes_codec():
    c = CtypesCodec(Point, "v")
    got, raw = roundtrip(c, (3, 4))
    assert isinstance(got, Point) and (got.x, got.y) == (3, 4) and raw == bytes(Point(3, 4))
    assert roundtrip(CtypesCodec(ctypes.c_uint16, "k"), 9)[0].value == 9
    with pytest.raises(UsageError, match="cannot make Point"):
        roundtrip(c, (1, 2, 3))


def test_codec_for():
    assert isinstance(codec_for(None, 4, "k"), RawCodec)
    assert isinstance(codec_for("I", 4, "k"), StructCodec)
    assert isinstance(codec_for(Point, 8, "k"), CtypesCodec)
    custom = RawCodec(4, "k")
    assert codec_for(custom, 4, "k") is custom
    with pytest.raises(UsageError, match="map 'm': key is 4 bytes but the codec 'Q' is 8"):
        codec_for("Q", 4, "map 'm': key")
    with pytest.raises(UsageError, match="a codec is"):
        codec_for(42, 4, "k")


def test_btf_types():
    """BTF integers take the struct path (numbers, or their raw bytes); other types the BTF
    codec (pybpf.btf.values), which is itself a map codec."""
    from pybpf.btf import types as T, values
    u32 = T.Int("unsigned int", 4)
    k = codec_for(u32, 4, "key")
    assert isinstance(k, ScalarCodec) and pair_packer(k, 8) is not None
    assert roundtrip(k, 7) == (7, (7).to_bytes(4, sys.byteorder))
    assert roundtrip(k, b"\x07\0\0\0")[0] == 7
    with pytest.raises(UsageError, match="key: -1 does not pack"):
        roundtrip(k, -1)
    pair = T.Struct("pair", 8, [T.Member("a", u32, 0), T.Member("b", u32, 32)])
    v = codec_for(pair, 8, "value")
    assert v is values.codec(pair)
    got, raw = roundtrip(v, {"a": 1, "b": 2})
    assert (got.a, got.b) == (1, 2) and raw == struct.pack("=II", 1, 2)
    assert roundtrip(v, got)[1] == raw and roundtrip(v, (1, 2))[1] == raw
    with pytest.raises(UsageError, match="value is 4 bytes but the codec"):
        codec_for(pair, 4, "value")


@pytest.mark.parametrize("fmt", ["I", "=I", "<H", ">Q", "!i", "b"])
def test_pair_packer_writes_what_the_key_codec_and_raw_bytes_write(fmt):
    key = StructCodec(fmt, "key")
    pack = pair_packer(key, 12)
    value = bytes(range(1, 13))
    one, two = bytearray(2 + key.size + 12), bytearray(2 + key.size + 12)
    pack(one, 2, 5, value)
    key.put(two, 2, 5)
    two[2 + key.size:] = value
    assert one == two


def test_pair_packer_only_for_one_field_struct_keys():
    assert pair_packer(StructCodec("II", "key"), 4) is None  # tuples
    assert pair_packer(RawCodec(4, "key"), 4) is None
    assert pair_packer(CtypesCodec(Point, "key"), 4) is None
    with pytest.raises(struct.error):  # a bad key: the caller then runs key.put for the UsageError
        pair_packer(StructCodec("I", "key"), 4)(bytearray(8), 0, -1, b"abcd")
