"""Values described by BTF: bytes <-> Python, and bpftool's ``formatted`` map-dump output.

``decode(t, data)`` turns the bytes of a value of type ``t`` into Python: integers (with the
type's signedness and size), bool, ``float``, pointers as ints, char arrays as ``str`` (up to
the first NUL), other arrays as lists, enums as :class:`EnumInt` (an ``int`` with ``.name``),
bitfields as ints, structs and unions as :class:`StructValue` objects (attributes, ``to_dict()``,
``dict(v)``; members of anonymous structs/unions are reachable from the outer value, as in C).
``encode(t, value)`` is the reverse (dicts or StructValues for structs, names or ints for
enums, str/bytes for char arrays); a wrong value raises BTFError naming the type and field.

``codec(t)`` compiles (once per type) a decoder: one ``struct.Struct`` for the plain members of
a struct and generated code for the rest, so decoding event records costs about a
microsecond or less. ``format_json(t, data)`` / ``format_plain(t, data)`` print a value as
``bpftool map dump`` does with BTF (its ``btf_dumper``), for ``-j`` and for plain text.
"""
from __future__ import annotations

import keyword
import struct
import sys
from typing import Any, Callable, Mapping, Optional

from ..errors import BTFError
from . import types as T

Decoder = Callable[[Any, int], Any]

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
    """A decoded struct or union: members as attributes, ``to_dict()`` and ``dict(value)``."""

    __slots__ = ()
    _fields: tuple[str, ...] = ()   # member names
    _slots: tuple[str, ...] = ()    # where they are stored ('_m_' + name if taken, e.g. 'keys')
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

    def __iter__(self):  # noqa: ANN204 (the member names, as a mapping's)
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, StructValue):
            return self._type is other._type and self.to_dict() == other.to_dict()
        if isinstance(other, Mapping):
            return self.to_dict() == dict(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def to_dict(self) -> dict[str, Any]:
        """Members as a dict; nested structs, unions and arrays converted too."""
        return {f: _plain(getattr(self, s)) for f, s in zip(self._fields, self._slots)}

    def __repr__(self) -> str:
        kind = "union" if isinstance(self._type, T.Union) else "struct"
        body = ", ".join(f"{f}={getattr(self, s)!r}" for f, s in zip(self._fields, self._slots))
        return f"{kind} {self._type.name or '(anon)'}({body})"


_TAKEN = frozenset(dir(StructValue)) | {"_m_"}


def _plain(v: Any) -> Any:
    if isinstance(v, StructValue):
        return v.to_dict()
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _cstr(b: bytes) -> str:
    return b.partition(b"\0")[0].decode("utf-8", "surrogateescape")


def _type_name(t: T.Type) -> str:
    if isinstance(t, (T.Struct, T.Union, T.Enum, T.Fwd)):
        return f"{type(t).__name__.lower()} {t.name or '(anon)'}"
    return t.name or t.kind.name.lower()


class Codec:
    """Decoder and encoder for one type (``codec(t)`` builds and caches it)."""

    def __init__(self, t: T.Type, size: int, decode: Decoder,
                 encode: Callable[[Any, bytearray, int, str], None], byte_order: str) -> None:
        self.type, self.size, self._decode, self._encode = t, size, decode, encode
        self.byte_order = byte_order
        #: ``decode_unchecked(data, offset)``: no length check (the caller guarantees ``size``
        #: bytes from ``offset``, e.g. fixed-size ring-buffer records); the fastest path
        self.decode_unchecked = decode

    def decode(self, data: Any, offset: int = 0) -> Any:
        """The value at ``offset`` of ``data`` (bytes, bytearray, memoryview)."""
        if len(data) - offset < self.size:
            raise BTFError(f"{_type_name(self.type)}: {len(data) - offset} bytes, "
                           f"need {self.size}")
        return self._decode(data, offset)

    def encode(self, value: Any) -> bytes:
        out = bytearray(self.size)
        self._encode(value, out, 0, _type_name(self.type))
        return bytes(out)


_cache: dict[int, tuple[T.Type, Codec]] = {}
_CACHE_MAX = 4096


def codec(t: T.Type, byte_order: Optional[str] = None) -> Codec:
    """The compiled codec of ``t`` (cached per type object)."""
    order = byte_order or _order_of(t)
    key = id(t) ^ (order == "big")
    hit = _cache.get(key)
    if hit is not None and hit[0] is t:
        return hit[1]
    c = _Compiler(order).codec(t)
    if len(_cache) >= _CACHE_MAX:  # bounded: codecs keep their types alive
        _cache.clear()
    _cache[key] = (t, c)
    return c


def decode(t: T.Type, data: Any, offset: int = 0) -> Any:
    """Decode a value of type ``t`` from ``data``."""
    return codec(t).decode(data, offset)


def encode(t: T.Type, value: Any) -> bytes:
    """Encode ``value`` as type ``t`` (the inverse of ``decode``)."""
    return codec(t).encode(value)


def _order_of(t: T.Type) -> str:
    spec = t._spec
    return spec.byte_order if spec is not None else sys.byteorder


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

    def __init__(self, byte_order: str) -> None:
        self.order = byte_order
        self.prefix = "<" if byte_order == "little" else ">"
        self.active: set[int] = set()
        self.done: dict[int, tuple[Decoder, Callable, int]] = {}

    def codec(self, t: T.Type) -> Codec:
        dec, enc, size = self.compile(t)
        return Codec(t, size, dec, enc, self.order)

    def compile(self, t: T.Type) -> tuple[Decoder, Callable, int]:
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

    def _compile(self, t: T.Type) -> tuple[Decoder, Callable, int]:
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
            names = {}
            for v in t.values:
                raw = v.value & ((1 << (8 * t.size)) - 1)
                if t.signed and raw >> (8 * t.size - 1):
                    raw -= 1 << (8 * t.size)
                names.setdefault(raw, EnumInt(raw, v.name))
            get = names.get
            return lambda x: get(x, x)
        return None

    def scalar(self, t: T.Type, code: str, size: int) -> tuple[Decoder, Callable, int]:
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
             size: int) -> tuple[Decoder, Callable, int]:
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

    def array(self, t: T.Array, size: int) -> tuple[Decoder, Callable, int]:
        elem = T.skip_qualifiers(t.type)
        n = t.nelems
        if _is_char(t.type):
            st = struct.Struct(f"{n}s")
            unpack, pack_into = st.unpack_from, st.pack_into

            def dec(buf: Any, off: int) -> str:
                return _cstr(unpack(buf, off)[0])

            def enc(value: Any, out: bytearray, off: int, what: str) -> None:
                if isinstance(value, str):
                    raw = value.encode("utf-8", "surrogateescape")
                elif isinstance(value, (bytes, bytearray)):
                    raw = value
                elif isinstance(value, (list, tuple)):
                    raw = bytes(_check_int(c, 9, True, f"{what}[{i}]") & 0xFF if c < 0
                                else _check_int(c, 8, False, f"{what}[{i}]")
                                for i, c in enumerate(value))
                else:
                    raise BTFError(f"{what}: expected str, bytes or a list of ints, got {value!r}")
                if len(raw) > n:
                    raise BTFError(f"{what}: {len(raw)} bytes do not fit char[{n}]")
                pack_into(out, off, bytes(raw))
            return dec, enc, size
        code = self.scalar_code(elem)
        esize = T.sizeof(elem) if n else 0
        if not esize and n > _MAX_FIELDS:
            raise BTFError(f"{_type_name(elem)}[{n}]: too many elements of size 0")
        if code is not None and self.wrap(elem) is None:
            st = struct.Struct(f"{self.prefix}{n}{code}")
            unpack = st.unpack_from
            enc_one = self.scalar_encoder(elem, code)

            def dec(buf: Any, off: int) -> list:
                return list(unpack(buf, off))

            def enc(value: Any, out: bytearray, off: int, what: str) -> None:
                items = _items(value, n, what)
                st.pack_into(out, off, *[enc_one(v, f"{what}[{i}]") for i, v in enumerate(items)])
            return dec, enc, size
        edec, eenc, _ = self.compile(t.type)

        def dec(buf: Any, off: int) -> list:
            return [edec(buf, off + i * esize) for i in range(n)]

        def enc(value: Any, out: bytearray, off: int, what: str) -> None:
            for i, v in enumerate(_items(value, n, what)):
                eenc(v, out, off + i * esize, f"{what}[{i}]")
        return dec, enc, size

    def composite(self, t: T.Composite, size: int) -> tuple[Decoder, Callable, int]:
        fields = []
        for f in _flatten(t, 0):
            fields.append(f)
            if len(fields) > _MAX_FIELDS:
                raise BTFError(f"{_type_name(t)} has more than {_MAX_FIELDS} members")
        names = tuple(f[0] for f in fields)
        if len(set(names)) != len(names):
            raise BTFError(f"{_type_name(t)} has two members of the same name")
        slots = tuple("_m_" + n if n in _TAKEN or keyword.iskeyword(n) or n.startswith("__")
                      else n for n in names)  # '__x' would be name-mangled in __slots__
        fmt, cursor, exprs, env = self.prefix, 0, [], {"_new": object.__new__}
        encoders = []
        lazy: set[str] = set()  # char arrays: raw bytes kept, made str on access
        k = 0
        for i, (name, mtype, bit_off, bf_size) in enumerate(fields):
            base = T.skip_qualifiers(mtype)
            byte_off = bit_off // 8
            end = bit_off + (bf_size or 8 * T.sizeof(mtype))
            if end > 8 * size:
                raise BTFError(f"{_type_name(t)}: member {name} (bits {bit_off}..{end}) runs "
                               f"past its size ({size} bytes)")
            if bf_size or bit_off % 8:
                bsigned = isinstance(base, (T.Int, T.Enum)) and base.signed
                dec, enc, _ = self.bits(bf_size or T.sizeof(base) * 8, bit_off % 8, bsigned, 0)
                env[f"_d{i}"] = dec
                exprs.append(f"_d{i}(buf, off + {byte_off})")
                encoders.append((name, byte_off, enc))
                continue
            dec, enc, msize = self.compile(mtype)
            encoders.append((name, byte_off, enc))
            code = self.scalar_code(base)
            wrap = self.wrap(base) if code is not None else None
            char_n = base.nelems if isinstance(base, T.Array) and _is_char(base.type) else 0
            if byte_off >= cursor and (code is not None or char_n):
                if byte_off > cursor:
                    fmt += f"{byte_off - cursor}x"
                if char_n:
                    fmt += f"{char_n}s"
                    lazy.add(slots[i])
                    exprs.append(f"v[{k}]")
                else:
                    fmt += code
                    if wrap is not None:
                        env[f"_w{i}"] = wrap
                        exprs.append(f"_w{i}(v[{k}])")
                    else:
                        exprs.append(f"v[{k}]")
                k += 1
                cursor = byte_off + msize
            else:
                env[f"_d{i}"] = dec
                exprs.append(f"_d{i}(buf, off + {byte_off})")
        store = tuple("_r_" + s if s in lazy else s for s in slots)
        ns: dict[str, Any] = {"__slots__": store, "_fields": names, "_slots": slots, "_type": t,
                              "_slot_of": dict(zip(names, slots)), "__module__": __name__}
        for slot in lazy:  # one generated getter each: no call layers
            getter: dict[str, Any] = {}
            exec(f"def get(o): return o._r_{slot}.partition(b'\\0')[0]"  # noqa: S102
                 f".decode('utf-8', 'surrogateescape')", getter)
            ns[slot] = property(getter["get"])
        env["_cls"] = type(t.name or "anon", (StructValue,), ns)
        env["_unpack"] = struct.Struct(fmt).unpack_from
        params = ", ".join(f"{name}={name}" for name in env)  # bound as fast locals
        body = [f"def decode(buf, off, {params}):", "    o = _new(_cls)"]
        if exprs == [f"v[{j}]" for j in range(len(exprs))] and exprs:  # one unpack fills all
            body.append(f"    {', '.join(f'o.{a}' for a in store)}, = _unpack(buf, off)")
        else:
            if k:
                body.insert(1, "    v = _unpack(buf, off)")
            body += [f"    o.{a} = {expr}" for a, expr in zip(store, exprs)]
        body.append("    return o")
        env = dict(env)
        exec("\n".join(body), env)  # noqa: S102 (identifiers checked by _flatten)
        kind = "union" if isinstance(t, T.Union) else "struct"
        tname = f"{kind} {t.name or '(anon)'}"
        union = isinstance(t, T.Union)

        def enc(value: Any, out: bytearray, off: int, what: str) -> None:
            if isinstance(value, StructValue):
                items = {f: value[f] for f in value._fields}
            elif isinstance(value, Mapping):
                items = dict(value)
            else:
                raise BTFError(f"{what}: expected a dict or struct value for {tname}, "
                               f"got {type(value).__name__}")
            unknown = set(items) - set(names)
            if unknown:
                raise BTFError(f"{what}: {tname} has no member {sorted(unknown)[0]!r}")
            if union and isinstance(value, Mapping) and len(items) > 1:
                raise BTFError(f"{what}: give one member of {tname}, not {sorted(items)}")
            for name, byte_off, e in encoders:
                if name in items:
                    e(items[name], out, off + byte_off, f"{what}.{name}")
        return env["decode"], enc, size

    def datasec(self, t: T.Datasec) -> tuple[Decoder, Callable, int]:
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


def _is_char(t: T.Type) -> bool:
    """An element type bpftool prints arrays of as strings: 1-byte int, CHAR or named char."""
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
    def __init__(self, plain: bool, order: str) -> None:
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
            return self.int(t, data, off, bit_off)
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

    def int(self, t: T.Int, data: Any, off: int, bit_off: int) -> Any:
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
        if n and _is_char(t.type):
            raw = bytes(data[off:off + n])
            end = raw.find(b"\0")
            if end >= 0 and all(0x20 <= c < 0x7F for c in raw[:end]):
                return raw[:end].decode()
        esize = T.sizeof(t.type) if n else 0
        if not esize and n > _MAX_FIELDS:
            raise BTFError(f"{_type_name(t.type)}[{n}]: too many elements of size 0")
        return [self.do(t.type, data, off + i * esize, 0) for i in range(n)]
