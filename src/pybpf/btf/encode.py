"""Encoding BTF: ``types.Type`` graphs to the raw blob the kernel's BPF_BTF_LOAD takes.

``encode(types)`` numbers the given types 1, 2, ... in order (after the base's types for split
BTF), appends every type they refer to that is not in the list (nor in ``base``), and writes
``struct btf_header``, the type section and a deduplicated string section. Types of ``base``
keep their ids, so split BTF refers to them directly. ``encode_spec(spec)`` re-encodes a parsed
spec with the same ids and, by starting from its string section, the same string offsets (so
``.BTF.ext`` offsets stay valid).
"""
from __future__ import annotations

import struct
import sys
from array import array
from typing import Iterable, Optional

from ..errors import BTFError
from ..sys.uapi import BtfKind
from . import types as T
from .spec import BTF_MAGIC, Spec

_HEADER_LEN = 24
_MAX_VLEN = 0xFFFF


class StringTable:
    """A BTF string section: each string stored once; ``start`` is the base's string length
    for split BTF."""

    def __init__(self, initial: bytes = b"\0", start: int = 0) -> None:
        self.data = bytearray(initial)
        self.start = start
        self._offsets: dict[str, int] = {}
        pos = 0
        for s in bytes(initial).split(b"\0")[:-1]:
            self._offsets.setdefault(s.decode("utf-8", "replace"), start + pos)
            pos += len(s) + 1

    def add(self, s: str) -> int:
        """The offset of ``s``, appending it if new ('' is always offset 0: base or own)."""
        if not s:
            return 0
        off = self._offsets.get(s)
        if off is None:
            raw = s.encode()
            if b"\0" in raw:
                raise BTFError(f"BTF name {s!r} contains a NUL byte")
            off = self.start + len(self.data)
            self.data += raw + b"\0"
            self._offsets[s] = off
        return off


class Encoder:
    """Numbers types and writes their ``struct btf_type`` records (native words)."""

    def __init__(self, base: Optional[Spec] = None, strings: Optional[StringTable] = None) -> None:
        self.base = base
        self.first_id = len(base) if base is not None else 1
        self.strings = strings or (StringTable(b"", len(base._all_strings())) if base is not None
                                   else StringTable())
        self._ids: dict[int, int] = {}       # id(Type) -> type id
        self._order: list[T.Type] = []

    def add(self, t: T.Type) -> int:
        """The id ``t`` gets (numbering it now if new; base types keep theirs)."""
        if t is T.VOID or isinstance(t, T.Void):
            return 0
        if not isinstance(t, T.Type):
            raise BTFError(f"cannot encode {t!r}: not a BTF type")
        tid = self._ids.get(id(t))
        if tid is not None:
            return tid
        if self.base is not None and t._spec is not None and t.id is not None \
                and t.id < self.first_id and _in_chain(t._spec, self.base):
            return t.id
        tid = self.first_id + len(self._order)
        self._ids[id(t)] = tid
        self._order.append(t)
        return tid

    def encode(self, byte_order: str = sys.byteorder) -> bytes:
        """The raw BTF blob: header, types, strings."""
        words = array("I")
        i = 0
        while i < len(self._order):  # referenced types are appended while we go
            self._emit(self._order[i], words)
            i += 1
        if byte_order not in ("little", "big"):
            raise BTFError(f"byte order must be 'little' or 'big', not {byte_order!r}")
        if byte_order != sys.byteorder:
            words.byteswap()
        types = words.tobytes()
        strings = bytes(self.strings.data)
        prefix = "<" if byte_order == "little" else ">"
        header = struct.pack(prefix + "HBBIIIII", BTF_MAGIC, 1, 0, _HEADER_LEN, 0, len(types),
                             len(types), len(strings))
        return header + types + strings

    def _emit(self, t: T.Type, out: array) -> None:
        ref, name = self.add, self.strings.add
        kind = t.kind
        vlen = kflag = 0
        size_or_type = 0
        extra: list[int] = []
        try:
            if isinstance(t, T.Int):
                size_or_type = t.size
                extra = [(t.encoding & 0xF) << 24 | (t.offset & 0xFF) << 16 | (t.bits & 0xFF)]
            elif isinstance(t, T.Pointer):
                size_or_type = ref(t.target)
            elif isinstance(t, T.Array):
                extra = [ref(t.type), ref(t.index_type), t.nelems]
            elif isinstance(t, T.Composite):
                size_or_type, vlen = t.size, len(t.members)
                kflag = int(any(m.bitfield_size for m in t.members))
                for m in t.members:
                    off = m.bitfield_size << 24 | m.offset if kflag else m.offset
                    if kflag and (m.offset >> 24 or m.bitfield_size >> 8):
                        raise BTFError(f"member {m.name!r}: bit offset {m.offset} / bitfield size "
                                       f"{m.bitfield_size} do not fit a bitfield record")
                    extra += (name(m.name), ref(m.type), off)
            elif isinstance(t, T.Enum64):
                size_or_type, vlen, kflag = t.size, len(t.values), int(t.signed)
                for v in t.values:
                    u = v.value & 0xFFFFFFFFFFFFFFFF
                    extra += (name(v.name), u & 0xFFFFFFFF, u >> 32)
            elif isinstance(t, T.Enum):
                size_or_type, vlen, kflag = t.size, len(t.values), int(t.signed)
                for v in t.values:
                    extra += (name(v.name), v.value & 0xFFFFFFFF)
            elif isinstance(t, T.Fwd):
                kflag = int(t.union)
            elif isinstance(t, (T.Typedef, T.Qualifier)):
                size_or_type = ref(t.type)
                kflag = int(getattr(t, "attribute", False))
            elif isinstance(t, T.Func):
                size_or_type, vlen = ref(t.proto), t.linkage
            elif isinstance(t, T.FuncProto):
                size_or_type, vlen = ref(t.return_type), len(t.params)
                for p in t.params:
                    extra += (name(p.name), ref(p.type))
            elif isinstance(t, T.Var):
                size_or_type, extra = ref(t.type), [t.linkage]
            elif isinstance(t, T.Datasec):
                size_or_type, vlen = t.size, len(t.vars)
                for sec in t.vars:
                    extra += (ref(sec.type), sec.offset, sec.size)
            elif isinstance(t, T.Float):
                size_or_type = t.size
            elif isinstance(t, T.DeclTag):
                size_or_type, extra = ref(t.type), [t.component_idx & 0xFFFFFFFF]
                kflag = int(t.attribute)
            else:
                raise BTFError(f"cannot encode {t!r}: unknown kind")
            if vlen > _MAX_VLEN:
                raise BTFError(f"{t!r} has {vlen} members/values/params; BTF allows {_MAX_VLEN}")
            out.extend((name(t.name), kflag << 31 | kind << 24 | vlen, size_or_type))
            out.extend(extra)
        except OverflowError:
            raise BTFError(f"cannot encode {t!r}: a size, offset or count is out of range "
                           f"(negative or over 32 bits)") from None


def _in_chain(spec: Spec, base: Spec) -> bool:
    s: Optional[Spec] = base
    while s is not None:
        if s is spec:
            return True
        s = s.base
    return False


def encode(types: Iterable[T.Type], base: Optional[Spec] = None,
           byte_order: str = sys.byteorder) -> bytes:
    """Raw BTF holding ``types`` (ids 1, 2, ... in order; after ``base``'s for split BTF) and
    every type they refer to."""
    enc = Encoder(base)
    for t in types:
        enc.add(t)
    return enc.encode(byte_order)


def encode_spec(spec: Spec, byte_order: Optional[str] = None) -> bytes:
    """Re-encode a parsed spec: same type ids, same string offsets (new strings appended)."""
    base = spec.base
    strings = StringTable(spec._strings, len(base._all_strings()) if base is not None else 0)
    enc = Encoder(base, strings)
    for tid in range(enc.first_id, len(spec)):
        enc.add(spec.type_by_id(tid))
    return enc.encode(byte_order or spec.byte_order)


def int_btf() -> bytes:
    """Raw BTF with one type, [1] ``int`` (signed, 32 bits): enough for storage-map keys."""
    strings = b"\0int\0"
    types = struct.pack("=III", 1, BtfKind.INT << 24, 4) + struct.pack("=I", (1 << 24) | 32)
    header = struct.pack("=HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings
