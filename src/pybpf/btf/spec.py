"""Parsed BTF (``struct btf_header`` + type and string sections), pure: bytes in, types out.

A :class:`Spec` indexes its types lazily: the first look-up walks the type headers once to
record each type's offset and name offset (about 30 ms for vmlinux's 126,000 types); types are
decoded on access and cached, so the same id always gives the same object. Split BTF (kernel
modules) continues the ids and string offsets of its base.
"""
from __future__ import annotations

import functools
import mmap
import os
import struct
import sys
from array import array
from typing import Any, BinaryIO, Iterator, Optional, Sequence, TypeVar, Union, overload

from .. import cache
from ..errors import BTFError
from ..sys.uapi import BtfKind
from . import types as T

BTF_MAGIC = 0xEB9F
VMLINUX_PATH = "/sys/kernel/btf/vmlinux"
KERNEL_BTF_DIR = "/sys/kernel/btf"

_HEADER = "HBBIIIII"  # magic, version, flags, hdr_len, type_off, type_len, str_off, str_len
_HEADER_SIZE = struct.calcsize("<" + _HEADER)
_INDEX_MAGIC = b"pybpf-btf-index-1\0"

# Words (u32) that follow the 3-word struct btf_type: fixed per kind, and per vlen entry.
_FIXED_WORDS: dict[int, int] = {BtfKind.INT: 1, BtfKind.ARRAY: 3, BtfKind.VAR: 1,
                                BtfKind.DECL_TAG: 1}
_VLEN_WORDS: dict[int, int] = {BtfKind.STRUCT: 3, BtfKind.UNION: 3, BtfKind.ENUM: 2,
                               BtfKind.FUNC_PROTO: 2, BtfKind.DATASEC: 3, BtfKind.ENUM64: 3}
_INVALID_STEP = 1 << 40  # an unknown kind ends the walk short of the section's end: an error
_STEP = [3 + _FIXED_WORDS.get(k, 0) if 1 <= k <= BtfKind.MAX else _INVALID_STEP for k in range(32)]
_PER = [_VLEN_WORDS.get(k, 0) if 1 <= k <= BtfKind.MAX else 0 for k in range(32)]
_STEP8, _PER8 = [_STEP[k & 31] for k in range(256)], [_PER[k & 31] for k in range(256)]  # info>>24

KindLike = Union[BtfKind, "type[T.Type]", None]
K = TypeVar("K", bound=T.Type)  # a types class given as the kind: what is found is of it


class Spec:
    """BTF types and strings parsed from a raw blob; ``base`` for split BTF."""

    pointer_size = 8

    def __init__(self, data: bytes, base: Optional[Spec] = None, name: str = "BTF") -> None:
        self.raw = bytes(data)
        self.base = base
        self.name = name
        if len(data) < _HEADER_SIZE:
            raise BTFError(f"{name}: {len(data)} bytes is too short for a BTF header")
        for order, prefix in (("little", "<"), ("big", ">")):
            if struct.unpack_from(prefix + "H", data)[0] == BTF_MAGIC:
                break
        else:
            raise BTFError(f"{name}: bad magic {data[:2].hex()} (not BTF)")
        self.byte_order = order
        (_, version, self.flags, hdr_len, type_off, type_len, str_off,
         str_len) = struct.unpack_from(prefix + _HEADER, data)
        if version != 1:
            raise BTFError(f"{name}: unsupported BTF version {version}")
        if hdr_len < _HEADER_SIZE or hdr_len > len(data):
            raise BTFError(f"{name}: bad header length {hdr_len}")
        end = len(data) - hdr_len
        if type_off + type_len > end or str_off + str_len > end:
            raise BTFError(f"{name}: type or string section runs past the end of the data "
                           f"({len(data)} bytes)")
        if type_len % 4 or type_off % 4:
            raise BTFError(f"{name}: type section offset/length not 4-byte aligned")
        self._strings = self.raw[hdr_len + str_off:hdr_len + str_off + str_len]
        if self._strings and (self._strings[-1] != 0 or (base is None and self._strings[0] != 0)):
            raise BTFError(f"{name}: string section must start and end with a NUL byte")
        section = memoryview(self.raw)[hdr_len + type_off:hdr_len + type_off + type_len]
        if order == sys.byteorder and (hdr_len + type_off) % 4 == 0:
            self._words: Sequence[int] = section.cast("I")  # read in place: no copy
        else:
            words = array("I")  # another byte order, or unaligned: a copy
            words.frombytes(section)
            if order != sys.byteorder:
                words.byteswap()
            self._words = words
        self._first_id = len(base) if base is not None else 1
        self._str_base = len(base._all_strings()) if base is not None else 0
        self._offsets: Optional[array] = None
        self._cache_name: Optional[str] = None
        self._name_offs: Optional[array] = None
        self._infos: Optional[array] = None
        self._types: dict[int, T.Type] = {}
        self._by_name: dict[str, list[int]] = {}

    # --- construction -------------------------------------------------------------------

    @classmethod
    def parse(cls, data: bytes, base: Optional[Spec] = None, name: str = "BTF") -> Spec:
        """Parse a raw BTF blob (an ELF's ``.BTF`` section, ``/sys/kernel/btf/*``)."""
        return cls(data, base, name)

    @classmethod
    def from_file(cls, path: Union[str, os.PathLike], base: Optional[Spec] = None) -> Spec:
        try:
            with open(path, "rb") as f:
                data = _read(f)
        except OSError as e:
            raise BTFError(f"cannot read BTF from {path}: {e.strerror}") from None
        return cls(data, base, str(path))

    @staticmethod
    def vmlinux() -> Spec:
        """The running kernel's BTF (parsed once per process)."""
        return _vmlinux()

    @staticmethod
    def module(name: str) -> Spec:
        """A kernel module's split BTF (``/sys/kernel/btf/<name>``) on top of vmlinux's."""
        return _module(name)

    @staticmethod
    def module_names() -> list[str]:
        """Kernel modules that have BTF."""
        try:
            return sorted(n for n in os.listdir(KERNEL_BTF_DIR) if n != "vmlinux")
        except FileNotFoundError:
            return []

    @overload
    @staticmethod
    def find_kernel(name: str, kind: type[K],
                    module: Optional[str] = None) -> Optional[tuple[str, K]]: ...
    @overload
    @staticmethod
    def find_kernel(name: str, kind: Optional[BtfKind] = None,
                    module: Optional[str] = None) -> Optional[tuple[str, T.Type]]: ...
    @staticmethod
    def find_kernel(name: str, kind: KindLike = None,
                    module: Optional[str] = None) -> Optional[tuple[str, T.Type]]:
        """Kernel type ``name`` (of ``kind``) and where it is ('' for vmlinux, else the
        module): in vmlinux, then in each module's own types (only ``module``'s when given);
        None when no kernel BTF has it."""
        for place in [module] if module else ["", *Spec.module_names()]:
            spec = Spec.module(place) if place else Spec.vmlinux()
            own = spec.find_all(name, kind, own=True)
            if own:
                return place, own[0]
        return None

    # --- index --------------------------------------------------------------------------

    def _index(self) -> array:
        """Walk the type headers once: each type's word offset, name offset and info word
        (for kernel BTF, the first two kept in pybpf's cache for the rest of this boot: the
        walk costs ~25 ms)."""
        if self._offsets is not None:
            return self._offsets
        cached = self._load_index()
        if cached is not None:
            return cached
        words = self._words
        steps: dict[int, int] = {}  # info word -> record length: few distinct values
        get, length = steps.get, _record_length
        starts: list[int] = []
        names: list[int] = []
        infos: list[int] = []
        add, add_name, add_info = starts.append, names.append, infos.append
        i, n = 0, len(words)
        try:
            while True:  # ends in IndexError at the section's end (fastest loop in CPython)
                add(i)
                add_name(words[i])
                info = words[i + 1]
                add_info(info)
                i += get(info) or length(steps, info)
        except IndexError:
            starts.pop()  # the end (or, if malformed, where it ran past it)
        if i != n:
            raise BTFError(f"{self.name}: type {self._first_id + len(starts)} is malformed "
                           f"(unknown kind or runs past the type section)")
        offsets = array("I", starts)
        self._infos = array("I", infos[:len(starts)])
        self._name_offs = array("I", names[:len(starts)])
        self._offsets = offsets
        if self._cache_name:
            cache.write(self._cache_name, _INDEX_MAGIC + struct.pack("=Q", len(offsets)) +
                        offsets.tobytes() + self._name_offs.tobytes())
        return offsets

    def _info_words(self) -> array:
        """Each own type's info word (kind, kflag, vlen), in id order: kept from the walk,
        else read at the indexed offsets."""
        offsets = self._index()
        if self._infos is None:
            self._infos = array("I", map(self._words.__getitem__, map((1).__add__, offsets)))
        return self._infos

    def _load_index(self) -> Optional[array]:
        """The index (the offsets; the name offsets kept too) from the cache, if this BTF is
        cached (kernel BTF) and the entry is there and fits these types."""
        data = cache.read(self._cache_name) if self._cache_name else None
        head = len(_INDEX_MAGIC) + 8
        if data is None or not data.startswith(_INDEX_MAGIC):
            return None
        (count,) = struct.unpack_from("=Q", data, len(_INDEX_MAGIC))
        if len(data) != head + 8 * count or not count:
            return None
        offsets, names = array("I"), array("I")
        offsets.frombytes(data[head:head + 4 * count])
        names.frombytes(data[head + 4 * count:])
        words, last = self._words, offsets[-1]
        if last + 1 >= len(words) or names[-1] != words[last] or \
                last + _record_length({}, words[last + 1]) != len(words):
            return None  # not this BTF's index
        self._offsets, self._name_offs = offsets, names
        return offsets

    def _use_cache(self, path: str) -> None:
        """Cache this kernel BTF's index under a key that changes with the file and the boot."""
        try:
            st = os.stat(path)
            with open("/proc/sys/kernel/random/boot_id") as f:
                boot = f.read().strip()
        except OSError:
            return
        import hashlib  # 2 ms to import (OpenSSL): only for kernel BTF files

        key = f"{path}|{st.st_size}|{st.st_mtime_ns}|{boot}".encode()
        self._cache_name = f"btf-index/{hashlib.sha1(key).hexdigest()[:20]}.idx"

    def __len__(self) -> int:
        """Number of type ids, void included (and the base's types for split BTF)."""
        return self._first_id + len(self._index())

    def _all_strings(self) -> bytes:
        return (self.base._all_strings() if self.base is not None else b"") + self._strings

    def string(self, offset: int) -> str:
        """The NUL-terminated string at ``offset`` of the (base + own) string section."""
        if offset < self._str_base and self.base is not None:  # (a base's: only with one)
            return self.base.string(offset)
        rel = offset - self._str_base
        if rel >= len(self._strings):
            raise BTFError(f"{self.name}: string offset {offset} is out of range")
        end = self._strings.find(b"\0", rel)
        return self._strings[rel:end].decode("utf-8", "replace")

    # --- types --------------------------------------------------------------------------

    def type_by_id(self, type_id: int) -> T.Type:
        """The type with id ``type_id`` (0 is void)."""
        t = self._types.get(type_id)
        if t is not None:
            return t
        if type_id == 0:
            return T.VOID
        if type_id < self._first_id:
            if self.base is None or type_id < 0:
                raise BTFError(f"{self.name}: no type id {type_id}")
            return self.base.type_by_id(type_id)
        offsets = self._index()
        if type_id - self._first_id >= len(offsets):
            raise BTFError(f"{self.name}: no type id {type_id} (it has {len(self)} types)")
        t = self._decode(offsets[type_id - self._first_id])
        t.id, t._spec = type_id, self
        self._types[type_id] = t
        return t

    def __iter__(self) -> Iterator[T.Type]:
        """Every type in id order, void first."""
        return (self.type_by_id(i) for i in range(len(self)))

    def _ref(self, type_id: int) -> int:
        if type_id >= len(self):
            raise BTFError(f"{self.name}: reference to type id {type_id}, which does not exist "
                           f"(it has {len(self)} types)")
        return type_id

    def _decode(self, w: int) -> T.Type:
        words, ref, string, spec = self._words, self._ref, self.string, self
        name_off, info, size_or_type = words[w], words[w + 1], words[w + 2]
        kind, vlen, kflag = info >> 24 & 31, info & 0xFFFF, info >> 31
        name = string(name_off) if name_off else ""
        w += 3
        if kind == BtfKind.INT:
            x = words[w]
            return T.Int(name, size_or_type, x >> 24 & 0xF, x & 0xFF, x >> 16 & 0xFF)
        if kind == BtfKind.PTR:
            return T.Pointer(ref(size_or_type))
        if kind == BtfKind.ARRAY:
            return T.Array(ref(words[w]), ref(words[w + 1]), words[w + 2])
        if kind in (BtfKind.STRUCT, BtfKind.UNION):
            members = []
            for j in range(w, w + 3 * vlen, 3):
                off = words[j + 2]
                bits, off = (off >> 24, off & 0xFFFFFF) if kflag else (0, off)
                members.append(T.Member(string(words[j]) if words[j] else "", ref(words[j + 1]),
                                        off, bits, spec))
            cls = T.Struct if kind == BtfKind.STRUCT else T.Union
            return cls(name, size_or_type, members)
        if kind == BtfKind.ENUM:
            values = [T.EnumValue(string(words[j]), _s32(words[j + 1]) if kflag else words[j + 1])
                      for j in range(w, w + 2 * vlen, 2)]
            return T.Enum(name, size_or_type, values, bool(kflag))
        if kind == BtfKind.ENUM64:
            values = []
            for j in range(w, w + 3 * vlen, 3):
                v = words[j + 1] | words[j + 2] << 32
                values.append(T.EnumValue(string(words[j]),
                                          v - (1 << 64) if kflag and v >> 63 else v))
            return T.Enum64(name, size_or_type, values, bool(kflag))
        if kind == BtfKind.FWD:
            return T.Fwd(name, bool(kflag))
        if kind == BtfKind.TYPEDEF:
            return T.Typedef(name, ref(size_or_type))
        if kind == BtfKind.VOLATILE:
            return T.Volatile(ref(size_or_type))
        if kind == BtfKind.CONST:
            return T.Const(ref(size_or_type))
        if kind == BtfKind.RESTRICT:
            return T.Restrict(ref(size_or_type))
        if kind == BtfKind.TYPE_TAG:
            return T.TypeTag(name, ref(size_or_type), bool(kflag))
        if kind == BtfKind.FUNC:
            return T.Func(name, ref(size_or_type), vlen)
        if kind == BtfKind.FUNC_PROTO:
            params = [T.FuncParam(string(words[j]) if words[j] else "", ref(words[j + 1]), spec)
                      for j in range(w, w + 2 * vlen, 2)]
            return T.FuncProto(ref(size_or_type), params)
        if kind == BtfKind.VAR:
            return T.Var(name, ref(size_or_type), words[w])
        if kind == BtfKind.DATASEC:
            return T.Datasec(name, size_or_type,
                             [T.VarSecinfo(ref(words[j]), words[j + 1], words[j + 2], spec)
                              for j in range(w, w + 3 * vlen, 3)])
        if kind == BtfKind.FLOAT:
            return T.Float(name, size_or_type)
        if kind == BtfKind.DECL_TAG:
            return T.DeclTag(name, ref(size_or_type), _s32(words[w]), bool(kflag))
        raise BTFError(f"{self.name}: unknown BTF kind {kind}")

    # --- look-up by name ----------------------------------------------------------------

    def _name_offsets(self, key: bytes) -> list[int]:
        """Offsets (in the combined string section) of the string ``key`` (NUL-framed)."""
        found = self.base._name_offsets(key) if self.base is not None else []
        strings, pos = self._strings, self._strings.find(key)
        while pos >= 0:
            found.append(self._str_base + pos + 1)
            pos = strings.find(key, pos + 1)
        return found

    def _ids_named(self, name: str) -> list[int]:
        ids = self._by_name.get(name)
        if ids is not None:
            return ids
        self._index()
        name_offs = self._name_offs
        assert name_offs is not None  # the index made it
        key = b"\0" + name.encode() + b"\0"
        offs = self._name_offsets(key)
        ids = self.base._ids_named(name) if self.base is not None else []
        own = []
        if offs:
            packed = name_offs.tobytes()
            for off in offs:
                needle = struct.pack("=I", off)
                pos = packed.find(needle)
                while pos >= 0:
                    if pos % 4 == 0:
                        own.append(self._first_id + pos // 4)
                    pos = packed.find(needle, pos + 1)
        ids = ids + sorted(own)
        self._by_name[name] = ids
        return ids

    @overload
    def find_all(self, name: str, kind: type[K], own: bool = False) -> list[K]: ...
    @overload
    def find_all(self, name: str, kind: Optional[BtfKind] = None,
                 own: bool = False) -> list[T.Type]: ...
    def find_all(self, name: str, kind: KindLike = None, own: bool = False) -> list[Any]:
        """Every type called ``name`` (of ``kind``: a BtfKind or a types class), in id order;
        ``own``: only this spec's, not its base's (split BTF)."""
        ids = self._ids_named(name)
        first = self._first_id if own else 0
        found = [self.type_by_id(i) for i in ids if i >= first]
        if kind is None:
            return found
        if isinstance(kind, type):
            return [t for t in found if isinstance(t, kind)]
        return [t for t in found if t.kind == kind]

    def names_ending(self, suffix: str) -> list[str]:
        """The distinct strings of the string section (base's first) that end with ``suffix``
        (clang names a function's static variable ``function.variable``): found in the
        strings, no type decoded."""
        key = suffix.encode() + b"\0"
        strings = self._all_strings()
        found: dict[str, None] = {}
        pos = strings.find(key)
        while pos >= 0:
            start = strings.rfind(b"\0", 0, pos) + 1
            found[strings[start:pos + len(key) - 1].decode("utf-8", "replace")] = None
            pos = strings.find(key, pos + 1)
        return list(found)

    @overload
    def find(self, name: str, kind: type[K]) -> K: ...
    @overload
    def find(self, name: str, kind: Optional[BtfKind] = None) -> T.Type: ...
    def find(self, name: str, kind: KindLike = None) -> Any:  # T.Type, as the overloads say
        """The first type called ``name`` of ``kind``; without ``kind`` the name must not belong
        to types of different kinds (``typedef struct foo foo``)."""
        found = self.find_all(name, kind)
        if not found:
            what = f"{_kind_name(kind)} {name}" if kind is not None else repr(name)
            raise BTFError(f"{self.name}: no type {what}")
        if kind is None and len({t.kind for t in found}) > 1:
            kinds = ", ".join(sorted({t.kind.name.lower() for t in found}))
            raise BTFError(f"{self.name}: {name!r} names types of several kinds ({kinds}): "
                           f"say which kind")
        return found[0]

    def __repr__(self) -> str:
        return f"<Spec {self.name} ({self.byte_order}-endian, {len(self._words) * 4} bytes of types)>"


def _record_length(steps: dict[int, int], info: int) -> int:
    """Words of a type record with this info word (remembered in ``steps``)."""
    d = steps[info] = _STEP8[info >> 24] + _PER8[info >> 24] * (info & 0xFFFF)
    return d


def _read(f: BinaryIO) -> bytes:
    """The whole file: mapped when possible (sysfs serves /sys/kernel/btf/* in 4 KiB reads;
    a private mapping of vmlinux's BTF, Linux 6.16+, takes one copy)."""
    try:
        with mmap.mmap(f.fileno(), 0, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ) as m:
            return m[:]
    except (OSError, ValueError):  # not mappable (older kernels, pipes) or empty
        return f.read()


def _kind_name(kind: KindLike) -> str:
    if isinstance(kind, type):
        return kind.kind.name.lower()
    return BtfKind(kind).name.lower() if kind is not None else ""


def _s32(v: int) -> int:
    return v - (1 << 32) if v >> 31 else v


@functools.lru_cache(maxsize=None)
def _vmlinux() -> Spec:
    if not os.path.exists(VMLINUX_PATH):
        raise BTFError(f"{VMLINUX_PATH} does not exist: this kernel was built without "
                       f"CONFIG_DEBUG_INFO_BTF")
    spec = Spec.from_file(VMLINUX_PATH)
    spec._use_cache(VMLINUX_PATH)
    return spec


@functools.lru_cache(maxsize=None)
def _module(name: str) -> Spec:
    path = os.path.join(KERNEL_BTF_DIR, name)
    if name == "vmlinux" or "/" in name or not os.path.exists(path):
        raise BTFError(f"no BTF for kernel module {name!r} in {KERNEL_BTF_DIR}")
    spec = Spec.from_file(path, base=_vmlinux())
    spec._use_cache(path)
    return spec
