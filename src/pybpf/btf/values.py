"""The BTF value codec: bytes <-> Python for every C type, and bpftool's ``map dump`` output.

The one place pybpf decides how a C type looks in Python (map keys and values, event records,
``pybpf map dump``, numpy dtypes all use it):

* integers with the type's signedness and size, ``bool``, ``float``, pointers as ints;
* enums as :class:`EnumInt` (an ``int`` with ``.name``);
* ``char`` arrays (bpftool's rule, :func:`is_char`) as ``str`` up to the first NUL, other
  arrays as lists;
* bitfields as ints;
* structs and unions as :class:`StructValue` records: ctypes classes laid out as the BTF
  says, members as attributes (anonymous struct/union members reachable from the outer
  value, as in C), ``to_dict()``, ``dict(v)``, ``v["name"]``; decoding one is a single
  ``from_buffer_copy``.

``codec(t)`` compiles (once per type) a :class:`Codec`: ``decode``/``encode`` of whole
values, and ``get``/``put`` at an offset of a buffer (what maps and event readers call).
``encode`` takes records, dicts or tuples for structs, names or ints for enums, str/bytes for
char arrays, and raw bytes of the type's size for any type; a wrong value raises BTFError
naming the type and field. ``numpy_dtype(t, np)`` is the type as a numpy structured dtype.
``format_json(t, data)`` / ``format_plain(t, data)`` print a value as ``bpftool map dump``
does with BTF (its ``btf_dumper``), for ``-j`` and for plain text.
"""
from __future__ import annotations

import ctypes
import keyword
import struct
import sys
from typing import TYPE_CHECKING, Any, Callable, Iterator, Literal, Mapping, Optional

from ..errors import BTFError
from ..sys.uapi import BtfKind
from . import types as T

if TYPE_CHECKING:
    from .spec import Spec

ByteOrder = Literal["little", "big"]
_Decode = Callable[[Any, int], Any]
_Encode = Callable[[Any, bytearray, int, str], None]

_MAX_NESTING = 128    # struct in struct in ...: deeper means malformed BTF
_MAX_FIELDS = 65536   # members (anonymous ones inlined) or zero-size array elements

_INT_CODES = {(1, False): "B", (1, True): "b", (2, False): "H", (2, True): "h",
              (4, False): "I", (4, True): "i", (8, False): "Q", (8, True): "q"}
_FLOAT_CODES = {2: "e", 4: "f", 8: "d"}


class EnumInt(int):
    """An enum's value: an ``int`` that knows its enumerator's ``name``."""

    name: str

    def __new__(cls, value: int, name: str) -> "EnumInt":
        self = super().__new__(cls, value)
        self.name = name
        return self

    def __repr__(self) -> str:
        return f"<{self.name}: {int(self)}>"

    def __str__(self) -> str:
        return self.name


class StructValue:
    """A decoded struct or union (the base of the ctypes record classes ``codec`` makes):
    members as attributes, ``to_dict()``, ``dict(value)``, ``value["member"]``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()   # member names (anonymous members' inlined)
    _slots: tuple[str, ...] = ()    # their attributes ('_m_' + name if taken, e.g. 'keys')
    _slot_of: dict[str, str] = {}
    _type: T.Composite

    def keys(self) -> tuple[str, ...]:
        return self._fields

    def __getitem__(self, name: str) -> Any:
        slot = self._slot_of.get(name)
        if slot is None:
            raise KeyError(name)
        return getattr(self, slot)

    def __getattr__(self, name: str) -> Any:
        """Members stored under another name ('__state', 'keys', 'class') by their own."""
        slot = self._slot_of.get(name)
        if slot is None or slot == name:
            raise AttributeError(f"{type(self).__name__} has no member {name!r}")
        return getattr(self, slot)

    def __iter__(self) -> Iterator[str]:  # the member names, as a mapping's
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StructValue):
            return self._type is other._type and self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    # unhashable (mutable, compares by value); typeshed types object.__hash__ as a method, so
    # the data model's None does not fit its stub
    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Members as a dict; nested structs, unions and arrays converted too."""
        return {f: _plain(getattr(self, s)) for f, s in zip(self._fields, self._slots)}

    def __repr__(self) -> str:
        kind = "union" if self._type.kind == BtfKind.UNION else "struct"
        body = ", ".join(f"{f}={getattr(self, s)!r}" for f, s in zip(self._fields, self._slots))
        return f"{kind} {self._type.name or '(anon)'}({body})"


_TAKEN = frozenset(dir(StructValue)) | frozenset(dir(ctypes.Structure)) | {"_m_"}


def _plain(v: Any) -> Any:
    if isinstance(v, StructValue):
        return v.to_dict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _cstr(b: bytes) -> str:
    return b.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _type_name(t: T.Type) -> str:
    if isinstance(t, (T.Composite, T.Enum, T.Fwd)):
        return f"{type(t).__name__.lower()} {t.name or '(anon)'}"
    return t.name or t.kind.name.lower()


class Codec:
    """Decoder and encoder for one type (``codec(t)`` builds and caches it).

    Also a map codec (``pybpf.codec.Codec``): ``get(buf, offset)`` decodes without a length
    check, ``put(buf, offset, value)`` encodes into ``size`` bytes at ``offset``.
    """

    def __init__(self, t: T.Type, size: int, decode: _Decode, encode: _Encode,
                 byte_order: str) -> None:
        self.type, self.size, self._decode, self._encode = t, size, decode, encode
        self.byte_order = byte_order
        self.what = _type_name(t)
        #: ``decode_unchecked(data, offset)``: no length check (the caller guarantees ``size``
        #: bytes from ``offset``, e.g. fixed-size ring-buffer records); the fastest path
        self.decode_unchecked = self.get = decode
        #: the StructValue class of a struct or union (a ctypes type), else None
        rec = getattr(decode, "__self__", None)
        self.record: Optional[type] = rec if isinstance(rec, type) \
            and issubclass(rec, StructValue) else None

    def decode(self, data: Any, offset: int = 0) -> Any:
        """The value at ``offset`` of ``data`` (bytes, bytearray, memoryview)."""
        if len(data) - offset < self.size:
            raise BTFError(f"{self.what}: {len(data) - offset} bytes, need {self.size}")
        return self._decode(data, offset)

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        """Encode ``value`` into ``buf[offset:offset + size]`` (every byte written)."""
        size = self.size
        if type(value) is bytes and len(value) == size:
            buf[offset:offset + size] = value
            return
        record: Any = self.record
        if type(value) is record:
            buf[offset:offset + size] = bytes(value)
            return
        buf[offset:offset + size] = bytes(size)
        self._encode(value, buf, offset, self.what)

    def encode(self, value: Any) -> bytes:
        out = bytearray(self.size)
        self.put(out, 0, value)
        return bytes(out)


_cache: dict[int, tuple[T.Type, Codec]] = {}
_CACHE_MAX = 4096


def codec(t: T.Type, byte_order: Optional[str] = None) -> Codec:
    """The compiled codec of ``t`` (cached per type object)."""
    order: ByteOrder = _order_of(t) if byte_order is None else \
        "big" if byte_order == "big" else "little"
    key = id(t) ^ (order == "big")
    hit = _cache.get(key)
    if hit is not None and hit[0] is t:
        return hit[1]
    c = _Compiler(order).codec(t)
    if len(_cache) >= _CACHE_MAX:  # bounded: codecs keep their types alive
        _cache.clear()
    _cache[key] = (t, c)
    return c


_C_KINDS: dict[str, Any] = {"struct": T.Struct, "union": T.Union, "enum": T.Enum}


def find_type(btf: "Spec", name: str) -> T.Type:
    """The type a C name means in ``btf``: ``"struct event"``, ``"union u"``, ``"enum e"``, or
    a typedef's (or other type's) bare name. A type missing from an object's BTF is
    explained: clang emits only the types the object's code and globals use."""
    words = name.split()
    kind: Any = _C_KINDS.get(words[0]) if len(words) == 2 else None
    if len(words) != (2 if kind is not None else 1):
        raise BTFError(f"{name!r} is not a C type name: give 'struct NAME', 'union NAME', "
                       "'enum NAME' or a typedef's name")
    found = btf.find_all(words[-1], kind)
    if kind is None and found:
        return btf.find(words[-1])  # the several-kinds error when ambiguous
    if found:
        return found[0]
    raise BTFError(f"{btf.name}: no type {name}: clang puts in an object's BTF only the types "
                   "its programs, maps and global variables use, and leaves out types used "
                   "only by local variables or casts (bpf_ringbuf_reserve'd records, say); "
                   f"keep it by referencing it from a global (e.g. '{name} *unused_{words[-1]} "
                   "__attribute__((unused));') or from a map's __type(value, ...)")


def decode(t: T.Type, data: Any, offset: int = 0) -> Any:
    """Decode a value of type ``t`` from ``data``."""
    return codec(t).decode(data, offset)


def encode(t: T.Type, value: Any) -> bytes:
    """Encode ``value`` as type ``t`` (the inverse of ``decode``)."""
    return codec(t).encode(value)


def plain_format(t: T.Type) -> Optional[str]:
    """The ``struct`` format of ``t`` when it decodes to a plain number (an int of 1, 2, 4 or
    8 bytes, a pointer, a float): what map keys and values of such types take as the fast
    path. None for others (enums, bools, odd widths, arrays, structs...)."""
    base = T.skip_qualifiers(t)
    if isinstance(base, T.Enum):
        return None
    code = _Compiler(_order_of(t)).scalar_code(base)
    if code is None or code in "?e":
        return None
    return ("<" if _order_of(t) == "little" else ">") + code


def numpy_dtype(t: T.Type, np: Any) -> Any:
    """``t`` as a numpy dtype (``np``: the numpy module), little-endian as BPF records are:
    ints, bools, floats, pointers as numbers, char arrays as ``S<n>``, other arrays as
    sub-arrays, structs and unions as structured dtypes at the BTF offsets (anonymous
    members flattened as in C). numpy has no bitfields: BTFError names the member."""
    t = T.skip_qualifiers(t)
    if isinstance(t, T.Int):
        if t.encoding & T.INT_BOOL and t.size == 1:
            return np.dtype("?")
        if t.size not in (1, 2, 4, 8) or t.offset or t.bits != 8 * t.size:
            return np.dtype((np.void, t.size))
        return np.dtype(f"<{'i' if t.signed else 'u'}{t.size}")
    if isinstance(t, T.Enum):
        return np.dtype(f"<{'i' if t.signed else 'u'}{t.size}")
    if isinstance(t, T.Float):
        return np.dtype(f"<f{t.size}") if t.size in (2, 4, 8) else np.dtype((np.void, t.size))
    if isinstance(t, T.Pointer):
        return np.dtype(f"<u{T.sizeof(t)}")
    if isinstance(t, T.Array):
        if is_char(t.type):
            return np.dtype(f"S{t.nelems}")
        return np.dtype((numpy_dtype(t.type, np), (t.nelems,)))
    if isinstance(t, T.Composite):
        names, formats, offsets = [], [], []
        for i, m in enumerate(t.members):
            if m.bitfield_size or m.offset % 8:
                raise BTFError(f"{_type_name(t)}: member {m.name!r} is a bitfield, which numpy "
                               "cannot represent; decode records as objects (decode=the "
                               "struct) instead")
            sub = numpy_dtype(m.type, np)
            if not m.name and isinstance(T.skip_qualifiers(m.type), T.Composite):
                for n in sub.names:  # anonymous: flattened as C does
                    f, o = sub.fields[n][:2]
                    names.append(n)
                    formats.append(f)
                    offsets.append(m.offset // 8 + o)
                continue
            names.append(m.name or f"_anon{i}")
            formats.append(sub)
            offsets.append(m.offset // 8)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": t.size})
    raise BTFError(f"{t!r} has no fixed layout for a numpy dtype")


def _order_of(t: T.Type) -> ByteOrder:
    spec = t._spec
    if spec is None:
        return sys.byteorder
    return "big" if spec.byte_order == "big" else "little"


def _check_int(value: Any, bits: int, signed: bool, what: str) -> int:
    if not isinstance(value, int):
        raise BTFError(f"{what}: expected an int, got {type(value).__name__} {value!r}")
    lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if not lo <= value <= hi:
        raise BTFError(f"{what}: {value} does not fit {'signed' if signed else 'unsigned'} "
                       f"{bits} bits ({lo}..{hi})")
    return value


class _Compiler:
    """Builds Codecs; guards against type loops (a struct containing itself)."""

    def __init__(self, byte_order: ByteOrder) -> None:
        self.order = byte_order
        self.prefix = "<" if byte_order == "little" else ">"
        self.active: set[int] = set()
        self.done: dict[int, tuple[_Decode, _Encode, int]] = {}

    def codec(self, t: T.Type) -> Codec:
        dec, enc, size = self.compile(t)
        return Codec(t, size, dec, enc, self.order)

    def compile(self, t: T.Type) -> tuple[_Decode, _Encode, int]:
        done = self.done.get(id(t))
        if done is not None:
            return done
        if id(t) in self.active:
            raise BTFError(f"{_type_name(t)} contains itself")
        if len(self.active) > _MAX_NESTING:
            raise BTFError(f"{_type_name(t)}: types nested more than {_MAX_NESTING} deep")
        self.active.add(id(t))
        try:
            done = self.done[id(t)] = self._compile(t)
            return done
        finally:
            self.active.discard(id(t))

    def _compile(self, t: T.Type) -> tuple[_Decode, _Encode, int]:
        t = T.skip_qualifiers(t)
        if isinstance(t, T.Var):
            return self.compile(t.type)
        size = T.sizeof(t) if not isinstance(t, T.Datasec) else t.size
        code = self.scalar_code(t)
        if code is not None:
            return self.scalar(t, code, size)
        if isinstance(t, T.Int):  # odd widths, bit offsets, 128-bit
            return self.bits(t.bits, t.offset, t.signed, size)
        if isinstance(t, T.Array):
            return self.array(t, size)
        if isinstance(t, T.Composite):
            return self.composite(t, size)
        if isinstance(t, T.Datasec):
            return self.datasec(t)
        raise BTFError(f"values of {t!r} cannot be decoded")

    def scalar_code(self, t: T.Type) -> Optional[str]:
        if isinstance(t, T.Int):
            if t.offset or t.bits != t.size * 8:
                return None
            if t.encoding & T.INT_BOOL and t.size == 1:
                return "?"
            return _INT_CODES.get((t.size, t.signed))
        if isinstance(t, T.Enum):
            return _INT_CODES.get((t.size, t.signed))
        if isinstance(t, T.Pointer):
            return "Q" if T.sizeof(t) == 8 else "I"
        if isinstance(t, T.Float):
            return _FLOAT_CODES.get(t.size)
        return None

    def wrap(self, t: T.Type) -> Optional[Callable[[Any], Any]]:
        """A conversion applied to the raw struct value (enums to EnumInt)."""
        if isinstance(t, T.Enum):
            names: dict[int, EnumInt] = {}
            for v in t.values:
                raw = v.value & ((1 << (8 * t.size)) - 1)
                if t.signed and raw >> (8 * t.size - 1):
                    raw -= 1 << (8 * t.size)
                names.setdefault(raw, EnumInt(raw, v.name))
            get = names.get
            return lambda x: get(x, x)
        return None

    def scalar(self, t: T.Type, code: str, size: int) -> tuple[_Decode, _Encode, int]:
        st = struct.Struct(self.prefix + code)
        unpack, pack_into = st.unpack_from, st.pack_into
        wrap = self.wrap(t)
        if wrap is None:
            def dec(buf: Any, off: int) -> Any:
                return unpack(buf, off)[0]
        else:
            def dec(buf: Any, off: int) -> Any:
                return wrap(unpack(buf, off)[0])
        enc_value = self.scalar_encoder(t, code)

        def enc(value: Any, out: bytearray, off: int, what: str) -> None:
            pack_into(out, off, enc_value(value, what))
        return dec, enc, size

    def scalar_encoder(self, t: T.Type, code: str) -> Callable[[Any, str], Any]:
        if code == "?":
            return lambda v, what: bool(v)
        if code in "efd":
            def fl(v: Any, what: str) -> float:
                if not isinstance(v, (int, float)) or isinstance(v, bool):
                    raise BTFError(f"{what}: expected a number, got {v!r}")
                return float(v)
            return fl
        bits = struct.calcsize(code) * 8
        signed = code.islower()
        if isinstance(t, T.Enum):
            by_name = {v.name: v.value for v in t.values}

            def en(v: Any, what: str) -> int:
                if isinstance(v, str):
                    if v not in by_name:
                        raise BTFError(f"{what}: {_type_name(t)} has no enumerator {v!r}")
                    v = by_name[v]
                if not isinstance(v, int) or not -(1 << (bits - 1)) <= v < (1 << bits):
                    raise BTFError(f"{what}: {v!r} is not an enumerator of {_type_name(t)} "
                                   f"nor a {bits}-bit value")
                v = int(v) & ((1 << bits) - 1)  # C enums take either signedness
                return v - (1 << bits) if signed and v >> (bits - 1) else v
            return en
        return lambda v, what: _check_int(v, bits, signed, what)

    def bits(self, nbits: int, bit_off: int, signed: bool,
             size: int) -> tuple[_Decode, _Encode, int]:
        """A bitfield: ``nbits`` at ``bit_off`` bits from the value's first byte."""
        if nbits <= 0:
            raise BTFError(f"an integer of {nbits} bits has no value")
        first, nbytes = bit_off // 8, (bit_off % 8 + nbits + 7) // 8
        big = self.order == "big"
        shift = (nbytes * 8 - bit_off % 8 - nbits) if big else bit_off % 8
        mask = (1 << nbits) - 1
        order = self.order

        def dec(buf: Any, off: int) -> int:
            x = int.from_bytes(buf[off + first:off + first + nbytes], order) >> shift & mask
            return x - (1 << nbits) if signed and x >> (nbits - 1) else x

        def enc(value: Any, out: bytearray, off: int, what: str) -> None:
            v = _check_int(value, nbits, signed, what) & mask
            start = off + first
            x = int.from_bytes(out[start:start + nbytes], order)
            x = (x & ~(mask << shift)) | v << shift
            out[start:start + nbytes] = x.to_bytes(nbytes, order)
        return dec, enc, size

    def array(self, t: T.Array, size: int) -> tuple[_Decode, _Encode, int]:
        elem = T.skip_qualifiers(t.type)
        n = t.nelems
        if is_char(t.type):
            st = struct.Struct(f"{n}s")
            unpack, pack_into = st.unpack_from, st.pack_into

            def dec_text(buf: Any, off: int) -> str:
                return _cstr(unpack(buf, off)[0])

            def enc_text(value: Any, out: bytearray, off: int, what: str) -> None:
                if isinstance(value, str):
                    raw = value.encode("utf-8", "surrogateescape")
                elif isinstance(value, (bytes, bytearray)):
                    raw = bytes(value)
                elif isinstance(value, (list, tuple)):
                    raw = bytes(_check_int(c, 9, True, f"{what}[{i}]") & 0xFF if c < 0
                                else _check_int(c, 8, False, f"{what}[{i}]")
                                for i, c in enumerate(value))
                else:
                    raise BTFError(f"{what}: expected str, bytes or a list of ints, got {value!r}")
                if len(raw) > n:
                    raise BTFError(f"{what}: {len(raw)} bytes do not fit char[{n}]")
                pack_into(out, off, raw)
            return dec_text, enc_text, size
        code = self.scalar_code(elem)
        esize = T.sizeof(elem) if n else 0
        if not esize and n > _MAX_FIELDS:
            raise BTFError(f"{_type_name(elem)}[{n}]: too many elements of size 0")
        if code is not None and self.wrap(elem) is None:
            st = struct.Struct(f"{self.prefix}{n}{code}")
            unpack = st.unpack_from
            enc_one = self.scalar_encoder(elem, code)

            def dec_plain(buf: Any, off: int) -> list:
                return list(unpack(buf, off))

            def enc_plain(value: Any, out: bytearray, off: int, what: str) -> None:
                items = _items(value, n, what)
                st.pack_into(out, off, *[enc_one(v, f"{what}[{i}]") for i, v in enumerate(items)])
            return dec_plain, enc_plain, size
        edec, eenc, _ = self.compile(t.type)

        def dec(buf: Any, off: int) -> list:
            return [edec(buf, off + i * esize) for i in range(n)]

        def enc(value: Any, out: bytearray, off: int, what: str) -> None:
            for i, v in enumerate(_items(value, n, what)):
                eenc(v, out, off + i * esize, f"{what}[{i}]")
        return dec, enc, size

    def composite(self, t: T.Composite, size: int) -> tuple[_Decode, _Encode, int]:
        """A StructValue record class (a ctypes Structure of ``size`` bytes): plain scalar
        members that do not overlap an earlier one are ctypes fields; char and byte arrays
        are fields read through a conversion; everything else (enums, bitfields, nested
        types, union members after the first) a property decoding the record's bytes with
        the member type's own decoder. Decoding is ``from_buffer_copy``."""
        fields = []
        for f in _flatten(t, 0):
            fields.append(f)
            if len(fields) > _MAX_FIELDS:
                raise BTFError(f"{_type_name(t)} has more than {_MAX_FIELDS} members")
        names = tuple(f[0] for f in fields)
        if len(set(names)) != len(names):
            raise BTFError(f"{_type_name(t)} has two members of the same name")
        slots = tuple("_m_" + n if n in _TAKEN or keyword.iskeyword(n) or n.startswith("__")
                      else n for n in names)
        layout: list[tuple[str, Any]] = []
        props: dict[str, Any] = {}
        converted: list[tuple[str, Callable[[Any], Any]]] = []  # (field, conversion)
        encoders = []
        cursor = 0
        for slot, (name, mtype, bit_off, bf_size) in zip(slots, fields):
            base = T.skip_qualifiers(mtype)
            byte_off = bit_off // 8
            end = bit_off + (bf_size or 8 * T.sizeof(mtype))
            if end > 8 * size:
                raise BTFError(f"{_type_name(t)}: member {name} (bits {bit_off}..{end}) runs "
                               f"past its size ({size} bytes)")
            if bf_size or bit_off % 8:
                bsigned = isinstance(base, (T.Int, T.Enum)) and base.signed
                dec, enc, _ = self.bits(bf_size or T.sizeof(base) * 8, bit_off % 8, bsigned, 0)
            else:
                dec, enc, _ = self.compile(mtype)
            encoders.append((name, byte_off, enc))
            ctype = self.field_type(base) if not (bf_size or bit_off % 8) else None
            if ctype is not None and byte_off >= cursor:
                if byte_off > cursor:
                    layout.append((f" pad{cursor}", ctypes.c_uint8 * (byte_off - cursor)))
                layout.append((slot, ctype))
                cursor = byte_off + ctypes.sizeof(ctype)
                if isinstance(base, T.Array):  # c_char arrays read up to the NUL
                    converted.append((slot, _cstr if is_char(base.type) else list))
            else:
                props[slot] = _member(dec, byte_off, f"member {name} of {_type_name(t)}")
        if size > cursor:
            layout.append((f" pad{cursor}", ctypes.c_uint8 * (size - cursor)))
        order_base = ctypes.BigEndianStructure if self.order == "big" \
            else ctypes.LittleEndianStructure
        ident = t.name if t.name.isidentifier() else "anon"
        cls_layout = type(f"{ident}_layout", (order_base,), {"_pack_": 1, "_fields_": layout})
        for slot, convert in converted:
            props[slot] = _converted(getattr(cls_layout, slot).__get__, cls_layout, convert)
        cls: Any = type(ident, (StructValue, cls_layout), {
            **props, "__slots__": (), "_fields": names, "_slots": slots, "_type": t,
            "_slot_of": dict(zip(names, slots)), "__module__": __name__})
        if ctypes.sizeof(cls) != size:
            raise BTFError(f"{_type_name(t)}: members do not fit its {size} bytes")
        tname = _type_name(t)
        union = t.kind == BtfKind.UNION

        def enc_record(value: Any, out: bytearray, off: int, what: str) -> None:
            if type(value) is cls:
                out[off:off + size] = bytes(value)
                return
            if isinstance(value, StructValue):
                items = {f: value[f] for f in value._fields}
            elif isinstance(value, Mapping):
                items = dict(value)
            elif isinstance(value, (tuple, list)) and not union:
                if len(value) > len(names):
                    raise BTFError(f"{what}: {len(value)} values for the {len(names)} members "
                                   f"of {tname}")
                items = dict(zip(names, value))
            else:
                raise BTFError(f"{what}: expected a dict, tuple or struct value for {tname}, "
                               f"got {type(value).__name__}")
            unknown = set(items) - set(names)
            if unknown:
                raise BTFError(f"{what}: {tname} has no member {sorted(unknown)[0]!r}")
            if union and not isinstance(value, StructValue) and len(items) > 1:
                raise BTFError(f"{what}: give one member of {tname}, not {sorted(items)}")
            for name, byte_off, e in encoders:
                if name in items:
                    e(items[name], out, off + byte_off, f"{what}.{name}")
        return cls.from_buffer_copy, enc_record, size

    def field_type(self, t: T.Type) -> Any:
        """The ctypes type reading ``t`` as the codec decodes it, or None when a property
        must convert it (enums, odd-width or 128-bit ints, half floats, nested types)."""
        code = self.scalar_code(t)
        if code is not None:
            if self.wrap(t) is not None or code == "e" or (code == "?" and self.order == "big"):
                return None  # EnumInt; no half floats in ctypes; c_bool has no byte order
            return _CTYPES[code]
        if isinstance(t, T.Array) and t.nelems:
            if is_char(t.type):
                return ctypes.c_char * t.nelems
            elem = self.field_type(T.skip_qualifiers(t.type))
            if elem is not None and not issubclass(elem, ctypes.Array):
                return elem * t.nelems  # read as a list
        return None

    def datasec(self, t: T.Datasec) -> tuple[_Decode, _Encode, int]:
        parts = [(v.type.name, v.offset, self.compile(v.type)) for v in t.vars]

        def dec(buf: Any, off: int) -> dict:
            return {name: d(buf, off + o) for name, o, (d, _, _) in parts}

        def enc(value: Any, out: bytearray, off: int, what: str) -> None:
            for name, o, (_, e, _) in parts:
                if name in value:
                    e(value[name], out, off + o, f"{what}.{name}")
        return dec, enc, t.size


def _items(value: Any, n: int, what: str) -> list:
    try:
        items = list(value)
    except TypeError:
        raise BTFError(f"{what}: expected a sequence of {n} elements, got {value!r}") from None
    if len(items) > n:
        raise BTFError(f"{what}: {len(items)} elements do not fit an array of {n}")
    return items


_CTYPES = {"B": ctypes.c_uint8, "b": ctypes.c_int8, "H": ctypes.c_uint16, "h": ctypes.c_int16,
           "I": ctypes.c_uint32, "i": ctypes.c_int32, "Q": ctypes.c_uint64, "q": ctypes.c_int64,
           "?": ctypes.c_bool, "f": ctypes.c_float, "d": ctypes.c_double}


def _member(dec: _Decode, off: int, doc: str) -> property:
    """A record's member decoded from the record's bytes at ``off``."""
    return property(lambda self: dec(bytes(self), off), doc=doc)


def _converted(get: Callable[[Any, type], Any], owner: type,
               convert: Callable[[Any], Any]) -> property:
    """A ctypes field of ``owner`` read through ``convert`` (char[] -> str, u8[] -> bytes)."""
    return property(lambda self: convert(get(self, owner)))


def is_char(t: T.Type) -> bool:
    """Arrays of ``t`` are text (``str``; bpftool prints them as strings): a 1-byte int
    named ``char`` or of encoding CHAR, typedefs not looked through (bpftool's rule)."""
    t = T.skip_qualifiers(t, typedefs=False)
    return isinstance(t, T.Int) and t.size == 1 and (t.encoding == T.INT_CHAR or t.name == "char")


def _flatten(t: T.Composite, base: int, depth: int = 0):  # noqa: ANN202
    """(name, type, bit offset, bitfield size) of members; anonymous structs/unions inlined."""
    if depth > T.MAX_RESOLVE_DEPTH:
        raise BTFError(f"{_type_name(t)}: anonymous members nested too deep (a loop?)")
    for m in t.members:
        inner = T.skip_qualifiers(m.type)
        if not m.name and isinstance(inner, T.Composite):
            yield from _flatten(inner, base + m.offset, depth + 1)
        elif m.name:
            if not m.name.isidentifier():
                raise BTFError(f"{_type_name(t)}: member name {m.name!r} is not an identifier")
            yield m.name, m.type, base + m.offset, m.bitfield_size


# --- bpftool's btf_dumper -----------------------------------------------------------------

class _Hex(str):
    """A bitfield or 128-bit int: JSON prints it quoted, plain text bare."""


class _Raw(str):
    """Plain-text output printed as is (pointers, non-printable chars)."""


def format_json(t: T.Type, data: Any) -> Any:
    """``t``'s value in ``data`` as bpftool ``-j map dump`` prints it under ``formatted``
    (JSON-able Python; anonymous members appear under the key '' as json.loads leaves them)."""
    return _strip(_Dumper(False, _order_of(t)).do(t, data, 0, 0))


def format_plain(t: T.Type, data: Any, depth: int = 2) -> str:
    """The same value as ``bpftool map dump`` (no -j) prints it after ``"value": ``; ``depth``
    is the JSON writer's nesting there (2 inside ``[{``)."""
    return _render(_Dumper(True, _order_of(t)).do(t, data, 0, 0), depth)


def _strip(v: Any) -> Any:
    if isinstance(v, list):
        return [_strip(x) for x in v]
    if isinstance(v, _Pairs):
        return {k: _strip(x) for k, x in v.pairs}
    if isinstance(v, (_Hex, _Raw)):
        return str(v)
    return v


class _Pairs:
    """An object with possibly repeated keys, in order (bpftool prints '' for each anon)."""

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        self.pairs = pairs


def _render(v: Any, depth: int) -> str:
    if isinstance(v, _Pairs):
        if not v.pairs:
            return "{}"
        pad = "\n" + "    " * (depth + 1)
        body = ",".join(f'{pad}{_quote(k)}: {_render(x, depth + 1)}' for k, x in v.pairs)
        return "{" + body + "\n" + "    " * depth + "}"
    if isinstance(v, list):
        if not v:
            return "[]"
        return "[" + ",".join(_render(x, depth + 1) for x in v) + "\n" + "    " * depth + "]"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (_Hex, _Raw)):
        return str(v)
    if isinstance(v, str):
        return _quote(v)
    return repr(v) if isinstance(v, float) else str(v)


def _quote(s: str) -> str:
    out = []
    for c in s:  # json_writer's escapes
        out.append({"\t": "\\t", "\n": "\\n", "\r": "\\r", "\f": "\\f", "\b": "\\b",
                    "\\": "\\\\", '"': '\\"'}.get(c, c))
    return '"' + "".join(out) + '"'


class _Dumper:
    def __init__(self, plain: bool, order: ByteOrder) -> None:
        self.plain, self.order = plain, order
        self.depth = 0

    def do(self, t: T.Type, data: Any, off: int, bit_off: int) -> Any:
        self.depth += 1
        try:
            if self.depth > 4 * T.MAX_RESOLVE_DEPTH:
                raise BTFError(f"{_type_name(t)}: type nesting too deep (a loop?)")
            return self._do(t, data, off, bit_off)
        finally:
            self.depth -= 1

    def _read(self, data: Any, off: int, size: int, signed: bool = False) -> int:
        if off < 0 or off + size > len(data):
            raise BTFError(f"value data ends at {len(data)} bytes, field needs {off + size}")
        return int.from_bytes(data[off:off + size], self.order, signed=signed)

    def _do(self, t: T.Type, data: Any, off: int, bit_off: int) -> Any:
        t = T.skip_qualifiers(t)
        if isinstance(t, T.Int):
            return self.integer(t, data, off, bit_off)
        if isinstance(t, T.Composite):
            pairs = []
            for m in t.members:
                o = off + m.offset // 8
                if m.bitfield_size:
                    pairs.append((m.name, self.bitfield(m.bitfield_size, m.offset % 8, data, o)))
                else:
                    pairs.append((m.name, self.do(m.type, data, o, m.offset % 8)))
            return _Pairs(pairs)
        if isinstance(t, T.Array):
            return self.array(t, data, off)
        if isinstance(t, T.Enum64):
            value = self._read(data, off, 8)
            for v in t.values:
                if v.value & 0xFFFFFFFFFFFFFFFF == value:
                    return v.name
            return value - (1 << 64) if value >> 63 else value
        if isinstance(t, T.Enum):
            if t.size not in (1, 2, 4, 8):
                raise BTFError(f"{_type_name(t)}: size {t.size} cannot be printed")
            value = self._read(data, off, t.size, signed=True)
            for v in t.values:
                ev = v.value & 0xFFFFFFFF
                if value == (ev - (1 << 32) if ev >> 31 else ev):
                    return v.name
            return value
        if isinstance(t, T.Pointer):
            value = self._read(data, off, 8)
            if self.plain:
                return _Raw(hex(value) if value else "(nil)")
            return value
        if isinstance(t, T.Float):
            code = _FLOAT_CODES.get(t.size)
            if code is None:
                raise BTFError(f"float of size {t.size} cannot be printed")
            self._read(data, off, t.size)
            return struct.unpack_from(("<" if self.order == "little" else ">") + code, data,
                                      off)[0]
        if isinstance(t, T.Var):
            return _Pairs([(t.name, self.do(t.type, data, off, bit_off))])
        if isinstance(t, T.Datasec):
            return _Pairs([(t.name, [self.do(v.type, data, off + v.offset, 0) for v in t.vars])])
        raise BTFError(f"values of {t!r} cannot be printed")

    def integer(self, t: T.Int, data: Any, off: int, bit_off: int) -> Any:
        bits = t.bits
        if bit_off or t.offset or bits % 8:
            total = bit_off + t.offset
            return self.bitfield(bits, total % 8, data, off + total // 8)
        if bits == 128:
            return self._hex(self._read(data, off, 16))
        if t.encoding == T.INT_CHAR:
            c = self._read(data, off, 1)
            if 0x20 <= c < 0x7F:
                return _Raw(f'"{chr(c)}"') if self.plain else chr(c)
            return _Raw(f"0x{c:x}") if self.plain else chr(c)
        if t.encoding == T.INT_BOOL:
            return bool(self._read(data, off, t.size))
        if bits not in (8, 16, 32, 64) or t.encoding not in (0, T.INT_SIGNED):
            return self.bitfield(bits, 0, data, off)
        return self._read(data, off, bits // 8, signed=bool(t.encoding & T.INT_SIGNED))

    def bitfield(self, nbits: int, bit_off: int, data: Any, off: int) -> Any:
        nbytes = (bit_off + nbits + 7) // 8
        x = self._read(data, off, nbytes)
        shift = nbytes * 8 - bit_off - nbits if self.order == "big" else bit_off
        return self._hex(x >> shift & ((1 << nbits) - 1))

    def _hex(self, value: int) -> Any:
        return _Hex(f"0x{value:x}")

    def array(self, t: T.Array, data: Any, off: int) -> Any:
        n = t.nelems
        if n and is_char(t.type):
            raw = bytes(data[off:off + n])
            end = raw.find(b"\0")
            if end >= 0 and all(0x20 <= c < 0x7F for c in raw[:end]):
                return raw[:end].decode()
        esize = T.sizeof(t.type) if n else 0
        if not esize and n > _MAX_FIELDS:
            raise BTFError(f"{_type_name(t.type)}[{n}]: too many elements of size 0")
        return [self.do(t.type, data, off + i * esize, 0) for i in range(n)]
