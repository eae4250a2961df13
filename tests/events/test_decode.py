"""Record decoding from BTF (the pybpf.btf.values codec) and ctypes: layouts, text, bitfields,
numpy dtypes (no kernel)."""
from __future__ import annotations

import ctypes
import os
import struct

import pytest

from pybpf.btf import types as T, values
from pybpf.errors import BTFError, UsageError
from pybpf.events import decoder_for
from pybpf.events.arrays import dtype_of

U8 = T.Int("unsigned char", 1)
CHAR = T.Int("char", 1, T.INT_SIGNED | T.INT_CHAR)
U16 = T.Int("unsigned short", 2)
U32 = T.Int("unsigned int", 4)
S32 = T.Int("int", 4, T.INT_SIGNED)
U64 = T.Int("unsigned long long", 8)
BOOL = T.Int("_Bool", 1, T.INT_BOOL)


def arr(t, n):
    return T.Array(t, U32, n)


# struct event { u32 pid; u32 kind:3; int delta:5; u64 ts; char comm[16]; u8 mac[6]; bool ok;
#                union { u32 a; u16 b; }; u16 ports[2]; const volatile typedef'd int neg; }
INNER = T.Union("", 4, [T.Member("a", U32, 0), T.Member("b", U16, 0)])
EVENT = T.Struct("event", 56, [
    T.Member("pid", U32, 0), T.Member("kind", U32, 32, 3), T.Member("delta", S32, 35, 5),
    T.Member("ts", U64, 64), T.Member("comm", arr(CHAR, 16), 128), T.Member("mac", arr(U8, 6), 256),
    T.Member("ok", BOOL, 304), T.Member("", INNER, 320), T.Member("ports", arr(U16, 2), 352),
    T.Member("neg", T.Const(T.Volatile(T.Typedef("s32", S32))), 384),
])
FLAT = T.Struct("flat", 48, [m for m in EVENT.members if not m.bitfield_size
                             and m.name not in ("", "neg")])


def event_bytes() -> bytes:
    b = bytearray(56)
    struct.pack_into("<IIQ16s6s?xIHHi", b, 0, 4242, 0b10110_101, 7 << 40, b"bash\0junk",
                     b"\x02\x00\x00\x00\x00\x01", True, 0x10002, 80, 443, -9)
    return bytes(b)


def test_btf_struct_decodes_to_attributes():
    ev = decoder_for(EVENT).one(memoryview(event_bytes()), 0, 56)
    assert (ev.pid, ev.kind, ev.delta, ev.ts) == (4242, 5, -10, 7 << 40)
    assert ev.comm == "bash" and isinstance(ev.comm, str)
    assert ev.mac == [2, 0, 0, 0, 0, 1] and ev.ok is True
    assert (ev.a, ev.b) == (0x10002, 2)  # the anonymous union is flattened, as in C
    assert ev.ports == [80, 443] and ev.neg == -9
    assert ev.to_dict()["comm"] == "bash" and ev["pid"] == 4242
    assert repr(ev).startswith("struct event(pid=4242, kind=5, delta=-10,")
    assert isinstance(ev, values.StructValue) and isinstance(ev, ctypes.Structure)
    assert ctypes.sizeof(ev) == 56
    assert values.codec(EVENT) is values.codec(EVENT)  # made once
    assert ev == values.decode(EVENT, event_bytes())  # the one codec maps use too
    short = decoder_for(EVENT).one(memoryview(event_bytes()[:8]), 0, 8)  # zero-padded
    assert (short.pid, short.ts, short.comm) == (4242, 0, "")


def test_offsets_follow_btf_not_ctypes_alignment():
    packed = T.Struct("packed", 13, [T.Member("c", CHAR, 0), T.Member("v", U64, 8),
                                     T.Member("w", U32, 72)])
    rec = values.decode(packed, b"A" + (9).to_bytes(8, "little") + (5).to_bytes(4, "little"))
    assert (rec.c, rec.v, rec.w) == (65, 9, 5)  # a lone char is a number, as in C


def test_types_without_layout_are_refused():
    with pytest.raises(BTFError):
        decoder_for(T.VOID)
    with pytest.raises(BTFError, match="runs past its size"):
        decoder_for(T.Struct("bad", 8, [T.Member("a", U64, 0), T.Member("b", U32, 64)]))


def test_struct_records_go_back_to_bytes():
    raw = event_bytes()
    ev = values.decode(EVENT, raw)
    assert values.encode(EVENT, ev) == raw  # a record: its bytes
    again = values.decode(EVENT, values.encode(EVENT, ev.to_dict()))
    assert again == ev  # a dict: member by member (the junk after comm's NUL is not kept)
    t = T.Struct("pair", 8, [T.Member("x", U32, 0), T.Member("y", S32, 32)])
    assert values.encode(t, (1, -2)) == values.encode(t, {"x": 1, "y": -2}) \
        == struct.pack("<Ii", 1, -2)  # tuples in member order
    assert values.encode(t, b"\1\0\0\0\2\0\0\0") == struct.pack("<II", 1, 2)  # raw bytes


def test_missing_type_is_explained():
    from pybpf.btf import Spec
    from pybpf.btf.encode import encode
    spec = Spec.parse(encode([EVENT]), name="obj.o")
    assert values.find_type(spec, "struct event") is spec.find("event", T.Struct)
    with pytest.raises(BTFError, match="no type struct data_t: clang .* only by local variables"
                                       ".* from a global .* __type"):
        values.find_type(spec, "struct data_t")
    with pytest.raises(UsageError, match="has no BTF"):
        decoder_for("struct event", None, "map 'rb'")


def test_bad_decode_spec():
    with pytest.raises(UsageError, match="decode="):
        decoder_for(3)


def test_numpy_dtype_from_btf_and_ctypes():
    np = pytest.importorskip("numpy")
    dt = dtype_of(FLAT)
    assert dt.itemsize == 48 and dt.names == ("pid", "ts", "comm", "mac", "ok", "ports")
    assert dt["comm"] == np.dtype("S16") and dt["ports"] == np.dtype(("<u2", (2,)))
    assert dt.fields["ts"][1] == 8 and dt.fields["ok"][1] == 38
    rec = np.frombuffer(event_bytes()[:48], dtype=dt)[0]
    assert rec["pid"] == 4242 and rec["ports"].tolist() == [80, 443]
    assert rec["comm"] == b"bash\0junk"  # numpy strips trailing NULs only: the raw 16 bytes
    with pytest.raises(BTFError, match="bitfield"):
        dtype_of(EVENT)
    assert dtype_of(values.codec(FLAT).record) == dt  # a record class: its BTF's dtype

    class C(ctypes.Structure):
        _fields_ = [("x", ctypes.c_uint32), ("name", ctypes.c_char * 8), ("v", ctypes.c_uint64)]
    dc = dtype_of(C)
    assert dc.itemsize == 24 and dc["name"] == np.dtype("S8") and dc.fields["v"][1] == 16


@pytest.fixture(scope="module")
def vmlinux():
    from pybpf.btf import Spec
    return Spec.vmlinux()


def test_every_fifth_vmlinux_struct_converts_with_its_size(vmlinux):
    composites = [t for t in vmlinux if isinstance(t, T.Composite) and t.name]
    assert len(composites) > 1000
    converted = 0
    for t in composites[::5]:
        try:
            codec = values.codec(t)
        except BTFError as e:  # only what C allows and Python cannot name
            assert "same name" in str(e) or "identifier" in str(e), (t, e)
            continue
        rec = codec.decode(bytes(t.size))
        assert ctypes.sizeof(rec) == t.size, t
        rec.to_dict()  # every member decodes
        converted += 1
    assert converted > 1000


@pytest.mark.parametrize("name", ["iphdr", "tcphdr", "ethhdr", "sockaddr_in6", "bpf_attr"])
def test_vmlinux_records_round_trip(vmlinux, name):
    """Random bytes of kernel structs (bitfields, anonymous unions, char arrays) decode, and
    the record encodes back to the same bytes; the dict of it too, for structs."""
    t = vmlinux.find(name)
    data = os.urandom(t.size)
    ev = decoder_for(t).one(memoryview(data), 0, t.size)
    assert values.encode(t, ev) == data
    assert len(ev.to_dict()) == len(ev.keys()) > 1
