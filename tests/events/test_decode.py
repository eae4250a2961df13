"""Record decoding from BTF and ctypes: layouts, text, bitfields, numpy dtypes (no kernel)."""
from __future__ import annotations

import ctypes
import os
import struct

import pytest

from pybpf.btf import types as T
from pybpf.errors import UsageError
from pybpf.events import ctypes_from_btf, decoder_for
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
    assert ev.mac == b"\x02\x00\x00\x00\x00\x01" and ev.ok is True
    assert (ev.a, ev.b) == (0x10002, 2)  # the anonymous union is flattened, as in C
    assert list(ev.ports) == [80, 443] and ev.neg == -9
    assert ev._asdict()["comm"] == "bash"
    assert repr(ev).startswith("event(pid=4242, kind=5, delta=-10,")
    assert ctypes.sizeof(ctypes_from_btf(EVENT)) == 56
    assert ctypes_from_btf(EVENT) is ctypes_from_btf(EVENT)  # made once


def test_offsets_follow_btf_not_ctypes_alignment():
    packed = T.Struct("packed", 13, [T.Member("c", CHAR, 0), T.Member("v", U64, 8),
                                     T.Member("w", U32, 72)])
    rec = ctypes_from_btf(packed).from_buffer_copy(b"A" + (9).to_bytes(8, "little")
                                                   + (5).to_bytes(4, "little"))
    assert (rec.c, rec.v, rec.w) == (b"A", 9, 5)


def test_types_without_layout_are_refused():
    from pybpf.errors import BTFError
    with pytest.raises(BTFError):
        ctypes_from_btf(T.VOID)
    with pytest.raises(BTFError, match="overlaps"):
        ctypes_from_btf(T.Struct("bad", 8, [T.Member("a", U64, 0), T.Member("b", U32, 32)]))


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
    with pytest.raises(UsageError, match="bitfield"):
        dtype_of(EVENT)
    assert dtype_of(ctypes_from_btf(FLAT)) == dt  # a class made from BTF: BTF's dtype

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
    for t in composites[::5]:
        cls = ctypes_from_btf(t)
        assert ctypes.sizeof(cls) == t.size, t
        rec = cls()
        for name in cls._names:
            getattr(rec, name)


@pytest.mark.parametrize("name", ["iphdr", "tcphdr", "ethhdr", "sockaddr_in6", "bpf_attr"])
def test_vmlinux_records_agree_with_btf_values(vmlinux, name):
    """Random bytes decoded here and by pybpf.btf.values give the same members (bitfields,
    anonymous unions, char arrays included)."""
    from pybpf.btf import values
    t = vmlinux.find(name)
    data = os.urandom(t.size)
    ours = decoder_for(t).one(memoryview(data), 0, t.size)
    theirs = values.decode(t, data)
    compared = 0
    for member in ours._names:
        a, b = getattr(ours, member), getattr(theirs, member)
        if isinstance(b, (int, str, bytes)):
            assert a == b, member
            compared += 1
    assert compared >= 1
