"""BPF maps: create every map type, open existing ones, and access them like dicts.

Element access reuses a per-thread scratch (key and value buffer, the attr pointing at
them, ``bound_calls`` of ``pybpf.sys.syscall``), so ``m[k]``, ``m[k] = v`` and ``del m[k]``
cost one syscall and a few pack/unpack steps. Keys and values are converted by codecs
(``pybpf.codec``).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import mmap as _mmap
import os
import struct
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional, Union

from . import caps as _caps
from ._lazy import exports
from .codec import Codec, CodecSpec, RawCodec, codec_for, pair_packer
from .btf import types as T
from .btf.kernel import BTF
from .btf.spec import Spec
from .errors import BPFError, MapKeyError, UnsupportedFeatureError, UsageError
from .object import KernelObject
from .sys import objects, probes
from .sys import commands as _cmd
from .sys.commands import ELEM_KEY_END, ELEM_SIZE
from .sys.cpus import possible_cpus
from .sys.fd import FD
from .sys import syscall as _syscall
from .sys.syscall import command_name, elem_done
from .sys.uapi import ENOTSUPP, OBJ_NAME_LEN, Cmd, MapFlag, MapType, UpdateFlag

if TYPE_CHECKING:
    from .sys.info import MapInfo


__getattr__, __dir__ = exports(__name__, {"pybpf.sys.info": "MapInfo"})  # on first use

# plain ints for the element fast path (an IntEnum member costs ~70 ns to fetch on 3.11)
_LOOKUP, _UPDATE, _DELETE = int(Cmd.MAP_LOOKUP_ELEM), int(Cmd.MAP_UPDATE_ELEM), int(Cmd.MAP_DELETE_ELEM)
_ANY = int(UpdateFlag.ANY)
_CLOSED_FD = 0xFFFFFFFF  # what a closed map's attrs hold: never a reused fd; the kernel says EBADF
_get_ident = threading.get_ident
_claim = threading.Lock()  # guards the first element access of every map (who owns the fast buffers)

PERCPU_TYPES = frozenset({MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH,
                          MapType.PERCPU_CGROUP_STORAGE})
FD_VALUE_TYPES = frozenset({MapType.PROG_ARRAY, MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY,
                            MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.DEVMAP,
                            MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP,
                            MapType.SOCKMAP, MapType.SOCKHASH})
"""Maps whose updates take a file descriptor (or a pybpf object) as the value."""

MapTypeLike = Union[MapType, int, str]
_MISSING = object()


def map_type_of(t: MapTypeLike) -> Union[MapType, int]:
    """MapType from an enum, its number, or a name as bpftool spells it (``hash``, ``lru_hash``).

    A number pybpf has no name for is passed through as an int (the kernel may be newer).
    """
    if isinstance(t, str):
        try:
            return MapType[t.upper().removeprefix("BPF_MAP_TYPE_")]
        except KeyError:
            names = ", ".join(n.lower() for n in MapType.__members__ if n != "UNSPEC")
            raise UsageError(f"unknown map type {t!r}; known: {names}") from None
    try:
        return MapType(t)
    except ValueError:
        if isinstance(t, int) and t > 0:
            return int(t)
        raise UsageError(f"unknown map type {t}") from None


def _type_name(t: Union[MapType, int]) -> str:
    return t.name.lower() if isinstance(t, MapType) else f"type {int(t)}"


def _round8(n: int) -> int:
    return (n + 7) & ~7


class _FdCodec(RawCodec):
    """Values of fd-valued maps: a pybpf object or an fd in; the kernel's answer out.

    A lookup gives what the kernel reports for the slot: an int (a program or inner map id,
    an ifindex, a socket cookie) for 4- and 8-byte values, raw bytes for larger structs.
    """

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        if hasattr(value, "fileno") and not isinstance(value, int):
            value = value.fileno()
        super().put(buf, offset, value)

    def get(self, buf: bytearray, offset: int) -> Any:
        if self.size in (4, 8):
            return int.from_bytes(buf[offset:offset + self.size], sys.byteorder)
        return super().get(buf, offset)


class _PerCpuCodec:
    """One value per possible CPU, each padded to 8 bytes: a list in, a list out.

    A single (non-list) value is written to every CPU.
    """

    def __init__(self, inner: Codec, what: str) -> None:
        self.inner = inner
        self.stride = _round8(inner.size)
        self.ncpus = len(possible_cpus())
        self.size = self.stride * self.ncpus
        self.what = what

    def put(self, buf: bytearray, offset: int, value: Any) -> None:
        if isinstance(value, list):
            if len(value) != self.ncpus:
                raise UsageError(f"{self.what}: a per-CPU value is a list of {self.ncpus} "
                                 f"values (one per possible CPU), got {len(value)}")
            values = value
        else:
            values = [value] * self.ncpus
        for i, v in enumerate(values):
            self.inner.put(buf, offset + i * self.stride, v)

    def get(self, buf: bytearray, offset: int) -> list:
        return [self.inner.get(buf, offset + i * self.stride) for i in range(self.ncpus)]


class _Scratch:
    """One thread's buffers for the element commands of one map.

    ``buf`` holds the key (at 0) and then the value (at ``key_size``); ``attr`` points at
    both (its flags are 0 but during a call that sets them); ``lookup``, ``update`` and
    ``delete`` are that attr's bound bpf() calls; ``value`` is the value as a ctypes array
    (``.raw`` copies it out).
    """

    __slots__ = ("buf", "kptr", "attr", "addr", "value", "lookup", "update", "delete",
                 "__weakref__")

    def __init__(self, fd: int, key_size: int, value_size: int) -> None:
        vsize = max(value_size, 1)
        self.buf = bytearray(key_size + vsize)
        # an export of buf: it can never be resized, so the addresses stay valid
        self.value = (ctypes.c_char * vsize).from_buffer(self.buf, key_size)
        base = _address(self.buf)
        self.kptr = base if key_size else 0  # what attr.key holds
        self.attr = _cmd.map_elem_attr(fd, self.kptr, base + key_size)
        self.addr = ctypes.addressof(self.attr)
        self.lookup, self.update, self.delete = _cmd.map_elem_calls(self.attr)


class Map(KernelObject):
    """A BPF map: ``m[key]``, ``m[key] = value``, ``del m[key]``, ``key in m``, iteration.

    ``key``/``value`` codecs fix how Python objects are converted (see ``pybpf.codec``);
    without one, keys and values are bytes (ints and ctypes objects are accepted too).
    Maps of an object (the ELF loader) and maps opened from the kernel with BTF key/value
    types convert by those types (``pybpf.btf.values``: ints, ``StructValue`` records, char
    arrays as text) unless opened with ``raw=True``; ``raw()`` is a raw view of any map.
    ``btf`` is the BTF those types come from (``decode="struct event"`` of event readers
    looks types up there). Per-CPU maps return a list with one value per possible CPU.

    A Map may be used from several threads: each has its own element buffers, made on its
    first element access (the first thread's are found fastest).
    """

    kind = "map"
    # the first thread's element buffers, set (before ``_owner``) on its first element
    # access: read only when ``_owner`` is the calling thread, so never before it is set
    _own: _Scratch

    def __init__(self, fd: FD, name: str, map_type: Union[MapType, int], key_size: int,
                 value_size: int, max_entries: int, flags: Optional[int],
                 key: CodecSpec = None, value: CodecSpec = None,
                 btf: Optional[Spec] = None) -> None:
        super().__init__(fd, name)
        self.btf = btf
        self.type = map_type
        self.key_size = key_size
        self.value_size = value_size
        self.max_entries = max_entries
        self._flags = flags
        what = self.describe()
        self.key_codec: Codec = codec_for(key, self.key_size, f"{what}: key")
        vcodec: Codec
        if self.type in FD_VALUE_TYPES and (value is None or isinstance(value, T.Type)):
            vcodec = _FdCodec(self.value_size, f"{what}: value")  # objects in, ids out
        else:
            vcodec = codec_for(value, self.value_size, f"{what}: value")
        if self.type in PERCPU_TYPES:
            vcodec = _PerCpuCodec(vcodec, f"{what}: value")
        self.value_codec: Codec = vcodec
        # element scratch: the first thread's (``_own``), and one per other thread; all
        # weakly listed for close(); made on first use, so maps never accessed by element
        # cost nothing
        self._owner: Optional[int] = None
        self._local = threading.local()
        self._others: "weakref.WeakSet[_Scratch]" = weakref.WeakSet()
        # lookup/update pack keys unchecked and fall back to the checked put on error
        self._kput = getattr(self.key_codec, "put_unchecked", self.key_codec.put)
        self._vput = self.value_codec.put
        self._vget = self.value_codec.get
        # plain bytes values: a lookup returns the value buffer's bytes without a codec call,
        # an update of exactly value_size bytes packs them directly, with a struct key in
        # the same step
        self._raw_value = type(vcodec) is RawCodec and vcodec.size > 0
        self._raw_size = vcodec.size if self._raw_value else -1
        self._vpack = struct.Struct(f"{vcodec.size}s").pack_into
        self._kvpack = pair_packer(self.key_codec, vcodec.size) if self._raw_value else None

    # -- creating and opening -----------------------------------------------------------------
    @classmethod
    def create(cls, map_type: MapTypeLike, key_size: int = 0, value_size: int = 0,
               max_entries: int = 0, *, name: str = "", flags: int = 0,
               inner_map: Optional["Map"] = None, numa_node: Optional[int] = None,
               map_extra: int = 0, btf: Any = None, btf_key_type_id: int = 0,
               btf_value_type_id: int = 0, btf_vmlinux_value_type_id: int = 0,
               value_type_btf_obj_fd: int = 0, ifindex: int = 0, key: CodecSpec = None,
               value: CodecSpec = None) -> "Map":
        """BPF_MAP_CREATE. ``btf`` is anything with ``fileno()`` (a loaded BTF object) or an fd.
        ``value_type_btf_obj_fd``: the module BTF holding a struct_ops map's value type
        (``btf_vmlinux_value_type_id``; Linux 6.9, sets BPF_F_VTYPE_BTF_OBJ_FD).

        As libbpf does, a perf event array with ``max_entries=0`` gets one slot per possible CPU.
        """
        mtype = map_type_of(map_type)
        if len(name.encode()) >= OBJ_NAME_LEN:
            raise UsageError(f"map name {name!r} is longer than {OBJ_NAME_LEN - 1} bytes")
        if mtype == MapType.PERF_EVENT_ARRAY:
            key_size, value_size = key_size or 4, value_size or 4
            max_entries = max_entries or len(possible_cpus())
        if numa_node is not None:
            flags |= MapFlag.NUMA_NODE
        if value_type_btf_obj_fd:
            flags |= MapFlag.VTYPE_BTF_OBJ_FD
        what = f"map {name!r}" if name else f"{_type_name(mtype)} map"
        ret = _cmd.map_create(
            map_type=mtype, key_size=key_size, value_size=value_size, max_entries=max_entries,
            map_flags=flags, inner_map_fd=inner_map.fd if inner_map is not None else 0,
            numa_node=numa_node or 0, map_name=name.encode(), map_ifindex=ifindex,
            btf_fd=_fileno(btf), btf_key_type_id=btf_key_type_id,
            btf_value_type_id=btf_value_type_id,
            btf_vmlinux_value_type_id=btf_vmlinux_value_type_id, map_extra=map_extra,
            value_type_btf_obj_fd=value_type_btf_obj_fd)
        if ret < 0:
            refused = -ret == _errno.EPERM and not _caps.missing()  # a policy, not privileges
            if refused or -ret in (_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP):
                if not isinstance(mtype, MapType):
                    raise UnsupportedFeatureError(
                        f"BPF_MAP_CREATE on {what}: map type {int(mtype)} is unknown to pybpf and "
                        f"not supported by this kernel ({os.uname().release}: BPF_MAP_CREATE "
                        f"gives {_errno.errorcode.get(-ret, 'ENOTSUPP')})")
                from .btf.probes import map_type as probe  # on a refusal only (start-up)
                support = probe(mtype)
                if not support:
                    raise UnsupportedFeatureError(f"BPF_MAP_CREATE on {what}: {support.reason}")
            raise BPFError(-ret, "BPF_MAP_CREATE", what)
        fd = FD(ret)
        try:  # the kernel keeps type, sizes and name as given; flags it may change (devmaps
            # gain BPF_F_RDONLY_PROG, fd-only flags are dropped): ``flags`` asks it when read
            return cls(fd, name, mtype, key_size, value_size, max_entries, None, key, value)
        except BaseException:
            fd.close()
            raise

    @classmethod
    def from_fd(cls, fd: Union[int, FD], key: CodecSpec = None, value: CodecSpec = None, *,
                raw: bool = False) -> "Map":
        """Wrap a map fd; an int is duplicated (the caller keeps its own fd).

        Without ``key``/``value`` codecs, a map whose info names BTF key/value types converts
        by them (its BTF fetched from the kernel: BPF_BTF_GET_FD_BY_ID); ``raw=True``: bytes.
        """
        from .sys.info import MapInfo
        owned = fd if isinstance(fd, FD) else FD(os.dup(fd))
        try:
            i = MapInfo.from_fd(owned.fd)
            btf = None
            if not raw and key is None and value is None and i.btf_id \
                    and (i.btf_key_type_id or i.btf_value_type_id):
                with BTF.from_id(i.btf_id) as b:
                    btf = b.spec()
                key = btf.type_by_id(i.btf_key_type_id) if i.btf_key_type_id else None
                value = btf.type_by_id(i.btf_value_type_id) if i.btf_value_type_id else None
            return cls(owned, i.name, i.type, i.key_size, i.value_size, i.max_entries, i.flags,
                       key, value, btf)
        except BaseException:
            owned.close()
            raise

    @classmethod
    def from_pin(cls, path: Union[str, os.PathLike], key: CodecSpec = None,
                 value: CodecSpec = None, flags: int = 0, *, raw: bool = False) -> "Map":
        """Open the map pinned at ``path`` (BPF_OBJ_GET); codecs as ``from_fd``."""
        return cls.from_fd(cls._fd_from_pin(path, flags), key, value, raw=raw)

    @classmethod
    def from_id(cls, map_id: int, key: CodecSpec = None, value: CodecSpec = None, *,
                raw: bool = False) -> "Map":
        """Open map ``map_id`` (BPF_MAP_GET_FD_BY_ID); codecs as ``from_fd``."""
        return cls.from_fd(cls._fd_from_id(map_id), key, value, raw=raw)

    @classmethod
    def from_name(cls, name: str, key: CodecSpec = None, value: CodecSpec = None, *,
                  raw: bool = False) -> "Map":
        """Open the one map named ``name``; none or several is an error listing the ids."""
        return cls.from_id(cls._id_by_name(name, list_maps()), key, value, raw=raw)

    def raw(self) -> "Map":
        """The same map with raw codecs (bytes keys and values), on its own fd: close it
        (or use it as a context manager) when done."""
        return Map(FD(os.dup(self.fd)), self.name, self.type, self.key_size,
                   self.value_size, self.max_entries, self._flags, btf=self.btf)

    def info(self) -> MapInfo:
        """The kernel's view of this map (BPF_OBJ_GET_INFO_BY_FD)."""
        from .sys.info import MapInfo
        return MapInfo.from_fd(self.fd, self.describe())

    @property
    def flags(self) -> int:
        """``map_flags`` as the kernel reports them (asked on first use for created maps)."""
        if self._flags is None:
            self._flags = self.info().flags
        return self._flags

    def close(self) -> None:
        """Drop this reference; element access afterwards raises ValueError."""
        super().close()
        for scratch in self._others:
            scratch.attr.map_fd = _CLOSED_FD

    def _scratch(self) -> _Scratch:
        """This thread's element buffers (ValueError once the map is closed)."""
        me = _get_ident()
        if me == self._owner:
            return self._own
        scratch = getattr(self._local, "scratch", None)
        if scratch is None:
            scratch = _Scratch(self.fd, self.key_size, self.value_codec.size)
            with _claim:
                if self._owner is None:  # the first thread: its buffers take the fast path
                    self._own = scratch
                    self._owner = me
                else:
                    self._local.scratch = scratch
                self._others.add(scratch)
                if self.closed:  # closed meanwhile by another thread
                    scratch.attr.map_fd = _CLOSED_FD
        return scratch

    # -- element access ------------------------------------------------------------------------
    def _endless_walk(self) -> BPFError:
        """A key walk (BPF_MAP_GET_NEXT_KEY) that outran its limit: the map churns."""
        return BPFError(_errno.EAGAIN, "BPF_MAP_GET_NEXT_KEY", self.describe(),
                        "iteration did not end: the map changes faster than it is read")

    def _fail(self, cmd: int, err: int, key: Any = _MISSING) -> Exception:
        if self.closed:
            return ValueError(f"{self.describe()} is closed")
        if err == _errno.ENOENT and cmd in (Cmd.MAP_LOOKUP_ELEM, Cmd.MAP_DELETE_ELEM,
                                            Cmd.MAP_LOOKUP_AND_DELETE_ELEM):
            obj = self.describe() if key is _MISSING else f"{self.describe()} key {key!r}"
            return MapKeyError(err, command_name(cmd), obj)
        return BPFError(err, command_name(cmd), self.describe())

    # The element fast paths (m[k], m[k] = v, del m[k]) call instance attributes through
    # locals: ``self._kput(...)`` would be a method call the interpreter cannot specialize.
    def __getitem__(self, key: Any) -> Any:
        """The value for ``key``; MapKeyError (a KeyError) when absent."""
        sc = self._own if _get_ident() == self._owner else self._scratch()
        put = self._kput
        try:
            put(sc.buf, 0, key)
        except Exception:  # the checked put: a form only it takes, or the explanatory error
            self.key_codec.put(sc.buf, 0, key)
        call = sc.lookup
        ret = call()
        if ret or _syscall.tracer:
            ret = elem_done(_LOOKUP, sc.addr, ELEM_SIZE, ret)
            if ret < 0:
                raise self._fail(Cmd.MAP_LOOKUP_ELEM, -ret, key)
        if self._raw_value:
            return sc.value.raw
        get = self._vget
        return get(sc.buf, self.key_size)

    def lookup(self, key: Any, flags: int = 0) -> Any:
        """``m[key]``; ``flags``: UpdateFlag.F_LOCK (a value holding a bpf_spin_lock)."""
        if not flags:
            return self.__getitem__(key)
        return self._flagged(flags, self.__getitem__, key)

    def _flagged(self, flags: int, op: Any, *args: Any) -> Any:
        """``op(*args)`` with ``flags`` in this thread's attr (which holds 0 otherwise)."""
        attr = self._scratch().attr
        attr.flags = flags
        try:
            return op(*args)
        finally:
            attr.flags = 0

    def get(self, key: Any, default: Any = None) -> Any:
        try:
            return self.lookup(key)
        except MapKeyError:
            return default

    def __contains__(self, key: Any) -> bool:
        if self.type == MapType.BLOOM_FILTER:
            return self.peek(key) is not None
        sc = self._scratch()
        self.key_codec.put(sc.buf, 0, key)
        ret = _cmd.map_lookup_elem(sc.addr)
        if ret < 0 and ret != -_errno.ENOENT:
            raise self._fail(Cmd.MAP_LOOKUP_ELEM, -ret, key)
        return ret == 0

    def __setitem__(self, key: Any, value: Any) -> None:
        """Set ``key`` to ``value`` (UpdateFlag.ANY); UsageError when a codec refuses either."""
        sc = self._own if _get_ident() == self._owner else self._scratch()
        buf = sc.buf
        try:
            if type(value) is bytes and len(value) == self._raw_size:
                pack = self._kvpack
                if pack is not None:
                    pack(buf, 0, key, value)  # a struct key and the value in one step
                else:
                    put = self._kput
                    put(buf, 0, key)
                    pack = self._vpack
                    pack(buf, self.key_size, value)
            else:
                put = self._kput
                put(buf, 0, key)
                put = self._vput
                put(buf, self.key_size, value)
        except Exception:  # the checked puts: forms only they take, or the explanatory error
            self.key_codec.put(buf, 0, key)
            self.value_codec.put(buf, self.key_size, value)
        call = sc.update
        ret = call()
        if ret or _syscall.tracer:
            ret = elem_done(_UPDATE, sc.addr, ELEM_SIZE, ret)
            if ret < 0:
                raise self._fail(Cmd.MAP_UPDATE_ELEM, -ret)

    def update(self, key: Any, value: Any, flags: int = _ANY) -> None:
        """``m[key] = value``; ``flags``: UpdateFlag.ANY, NOEXIST, EXIST (| F_LOCK)."""
        if not flags:
            self.__setitem__(key, value)
        else:
            self._flagged(flags, self.__setitem__, key, value)

    def delete(self, key: Any) -> None:
        """Remove ``key``; MapKeyError when absent."""
        sc = self._own if _get_ident() == self._owner else self._scratch()
        self.key_codec.put(sc.buf, 0, key)
        call = sc.delete
        ret = call()
        if ret or _syscall.tracer:
            ret = elem_done(_DELETE, sc.addr, ELEM_KEY_END, ret)
            if ret < 0:
                raise self._fail(Cmd.MAP_DELETE_ELEM, -ret, key)

    __delitem__ = delete

    def lookup_and_delete(self, key: Any) -> Any:
        """Remove ``key`` and return its value, atomically (hash maps; kernel >= 5.14)."""
        sc = self._scratch()
        self.key_codec.put(sc.buf, 0, key)
        ret = _cmd.map_lookup_and_delete_elem(sc.addr)
        if ret < 0:
            raise self._fail(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, -ret, key)
        return self._vget(sc.buf, self.key_size)

    # queue, stack and bloom filter: no keys ----------------------------------------------------
    def _keyless(self, sc: _Scratch, call: Callable[[int], int], flags: int = 0) -> int:
        """``call`` (an element command of ``pybpf.sys.commands``) with no key."""
        sc.attr.key = 0
        sc.attr.flags = flags
        try:
            return call(sc.addr)
        finally:
            sc.attr.key = sc.kptr
            sc.attr.flags = 0

    def push(self, value: Any, flags: int = UpdateFlag.ANY) -> None:
        """Queue/stack push, bloom filter add; ``UpdateFlag.EXIST`` overwrites the oldest when full."""
        sc = self._scratch()
        self._vput(sc.buf, self.key_size, value)
        ret = self._keyless(sc, _cmd.map_update_elem, flags)
        if ret < 0:
            raise self._fail(Cmd.MAP_UPDATE_ELEM, -ret)

    def pop(self) -> Any:
        """Queue/stack: remove and return the next value; MapKeyError when empty."""
        sc = self._scratch()
        ret = self._keyless(sc, _cmd.map_lookup_and_delete_elem)
        if ret < 0:
            raise self._fail(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, -ret)
        return self._vget(sc.buf, self.key_size)

    def peek(self, value: Any = _MISSING) -> Any:
        """Queue/stack: the next value without removing it (None when empty).

        Bloom filter: ``peek(value)`` returns ``value`` when it may be in the set, else None.
        """
        sc = self._scratch()
        if value is not _MISSING:
            self._vput(sc.buf, self.key_size, value)
        ret = self._keyless(sc, _cmd.map_lookup_elem)
        if ret == -_errno.ENOENT:
            return None
        if ret < 0:
            raise self._fail(Cmd.MAP_LOOKUP_ELEM, -ret)
        return value if value is not _MISSING else self._vget(sc.buf, self.key_size)

    def freeze(self) -> None:
        """Make the map read-only from user space for good (BPF_MAP_FREEZE)."""
        _cmd.map_freeze(self.fd, self.describe())

    # -- iteration -------------------------------------------------------------------------------
    def keys(self) -> Iterator[Any]:
        """All keys (BPF_MAP_GET_NEXT_KEY), decoded.

        The next key is fetched before the current one is yielded, so deleting the yielded
        key (``for k in m: del m[k]``) does not restart or end the walk.
        """
        size = self.key_size
        cur, nxt = bytearray(max(size, 1)), bytearray(max(size, 1))
        cptr = _address(cur)
        nptr = _address(nxt)
        attr = _cmd.map_elem_attr(self.fd, 0, nptr)
        addr = ctypes.addressof(attr)
        next_key = _cmd.map_get_next_key
        ret = next_key(addr)
        attr.key = cptr
        limit = 2 * self.max_entries + 16  # a walk longer than this means concurrent churn
        while ret == 0:
            cur[:] = nxt
            ret = next_key(addr)
            yield self.key_codec.get(cur, 0)
            limit -= 1
            if limit == 0:
                raise self._endless_walk()
        if ret != -_errno.ENOENT:
            raise self._fail(Cmd.MAP_GET_NEXT_KEY, -ret)

    __iter__ = keys

    def next_key(self, key: Any = None) -> Any:
        """The key after ``key``, or the first key when ``key`` is None (BPF_MAP_GET_NEXT_KEY);
        BPFError (ENOENT) after the last key."""
        nxt = bytearray(max(self.key_size, 1))
        attr = _cmd.map_elem_attr(self.fd, 0, _address(nxt))
        if key is not None:
            sc = self._scratch()
            self.key_codec.put(sc.buf, 0, key)
            attr.key = sc.kptr
        ret = _cmd.map_get_next_key(ctypes.addressof(attr))
        if ret < 0:
            raise self._fail(Cmd.MAP_GET_NEXT_KEY, -ret)
        return self.key_codec.get(nxt, 0)

    def items(self) -> Iterator[tuple[Any, Any]]:
        """(key, value) pairs; keys deleted meanwhile are skipped."""
        for k in self.keys():
            try:
                yield k, self.lookup(k)
            except MapKeyError:
                continue

    def values(self) -> Iterator[Any]:
        return (v for _, v in self.items())

    def clear(self) -> None:
        """Delete every element (not for arrays, whose elements always exist)."""
        for k in self.keys():
            try:
                self.delete(k)
            except MapKeyError:
                pass

    # -- batch operations ------------------------------------------------------------------------
    def _pack(self, codec: Codec, items: Any, count: int) -> bytearray:
        if _is_buffer(items):
            raw = bytearray(memoryview(items).cast("B"))
            if len(raw) != count * codec.size:
                raise UsageError(f"{self.describe()}: {len(raw)} bytes are not {count} elements of "
                                 f"{codec.size} bytes")
            return raw
        buf = bytearray(count * codec.size)
        put, size = codec.put, codec.size
        for i, item in enumerate(items):
            put(buf, i * size, item)
        return buf

    def update_batch(self, keys: Any, values: Any, flags: int = 0, elem_flags: int = 0) -> int:
        """Update many elements in one call (BPF_MAP_UPDATE_BATCH); returns how many.

        ``keys``/``values`` are sequences (encoded by the codecs) or contiguous buffers of
        packed elements (bytes, array.array, numpy arrays). Map types without batch support
        fall back to one update per element.
        """
        n, nvals = _count(keys, self.key_size), _count(values, self.value_codec.size)
        if n != nvals:
            raise UsageError(f"{self.describe()}: {n} keys but {nvals} values")
        kbuf = self._pack(self.key_codec, keys, n)
        vbuf = self._pack(self.value_codec, values, n)
        ret, attr = _cmd.map_batch(Cmd.MAP_UPDATE_BATCH, keys=_address(kbuf), values=_address(vbuf),
                                   count=n, map_fd=self.fd, elem_flags=elem_flags, flags=flags)
        # the kernel leaves count untouched when the map type has no batch op
        if ret in (-_errno.EINVAL, -ENOTSUPP, -_errno.EOPNOTSUPP) \
                and not self._supports_batch():
            sc, ks, vs = self._scratch(), self.key_size, self.value_codec.size
            for i in range(n):
                sc.buf[:ks] = kbuf[i * ks:(i + 1) * ks]
                sc.buf[ks:ks + vs] = vbuf[i * vs:(i + 1) * vs]
                r = self._flagged(elem_flags, _cmd.map_update_elem, sc.addr)
                if r < 0:
                    raise self._fail(Cmd.MAP_UPDATE_ELEM, -r)
            return n
        if ret < 0:
            raise BPFError(-ret, "BPF_MAP_UPDATE_BATCH", self.describe(),
                           hint=f"{attr.count} of {n} elements were updated" if attr.count < n else "")
        return attr.count

    def delete_batch(self, keys: Any, flags: int = 0) -> int:
        """Delete many keys in one call (BPF_MAP_DELETE_BATCH); returns how many."""
        n = _count(keys, self.key_size)
        kbuf = self._pack(self.key_codec, keys, n)
        ret, attr = _cmd.map_batch(Cmd.MAP_DELETE_BATCH, keys=_address(kbuf), count=n,
                                   map_fd=self.fd, flags=flags)
        # the kernel leaves count untouched when the map type has no batch op
        if ret in (-_errno.EINVAL, -ENOTSUPP, -_errno.EOPNOTSUPP) \
                and not self._supports_batch():
            sc, ks = self._scratch(), self.key_size
            for i in range(n):
                sc.buf[:ks] = kbuf[i * ks:(i + 1) * ks]
                r = _cmd.map_delete_elem(sc.addr)
                if r < 0:
                    raise self._fail(Cmd.MAP_DELETE_ELEM, -r)
            return n
        if ret < 0:
            raise self._fail(Cmd.MAP_DELETE_BATCH, -ret)
        return attr.count

    def lookup_batch(self, chunk: int = 0, delete: bool = False, raw: bool = False) -> Any:
        """Every element, read ``chunk`` at a time (BPF_MAP_LOOKUP[_AND_DELETE]_BATCH).

        Returns ``(keys, values)`` lists, or with ``raw=True`` two bytes objects of packed
        elements and the count. Map types without batch support fall back to a key walk.
        """
        cmd = Cmd.MAP_LOOKUP_AND_DELETE_BATCH if delete else Cmd.MAP_LOOKUP_BATCH
        ksz, vsz = self.key_size, self.value_codec.size
        chunk = chunk or max(1, min(self.max_entries, 16384))
        keys, vals = bytearray(), bytearray()
        total = 0
        cursor_in, cursor_out = bytearray(max(ksz, 8)), bytearray(max(ksz, 8))
        cin = _address(cursor_in)
        cout = _address(cursor_out)
        first = True
        while True:
            kb, vb = bytearray(chunk * ksz), bytearray(chunk * vsz)
            ret, attr = _cmd.map_batch(cmd, in_batch=0 if first else cin, out_batch=cout,
                                       keys=_address(kb), values=_address(vb), count=chunk,
                                       map_fd=self.fd)
            if ret < 0 and -ret not in (_errno.ENOENT,):
                if -ret == _errno.ENOSPC and attr.count == 0:
                    chunk *= 2  # a hash bucket holds more elements than one chunk
                    continue
                if first and -ret in (_errno.EINVAL, ENOTSUPP, _errno.EOPNOTSUPP) \
                        and not self._supports_batch():
                    return self._lookup_walk(delete, raw)
                raise BPFError(-ret, command_name(cmd), self.describe())
            got = attr.count
            keys += kb[:got * ksz]
            vals += vb[:got * vsz]
            total += got
            if ret < 0:  # ENOENT: that was the last chunk
                break
            cursor_in[:] = cursor_out
            first = False
        if raw:
            return bytes(keys), bytes(vals), total
        kget, vget = self.key_codec.get, self.value_codec.get
        return ([kget(keys, i * ksz) for i in range(total)],
                [vget(vals, i * vsz) for i in range(total)])

    def _lookup_walk(self, delete: bool, raw: bool) -> Any:
        if self.type in (MapType.QUEUE, MapType.STACK):
            if not delete:
                raise UsageError(f"{self.describe()}: a queue or stack cannot be read without "
                                 "removing elements; use lookup_batch(delete=True), pop() or peek()")
            popped = []
            sc, ks, vs = self._scratch(), self.key_size, self.value_codec.size
            while True:
                ret = self._keyless(sc, _cmd.map_lookup_and_delete_elem)
                if ret == -_errno.ENOENT:
                    break
                if ret < 0:
                    raise self._fail(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, -ret)
                popped.append(bytes(sc.buf[ks:ks + vs]))
            if raw:
                return b"", b"".join(popped), len(popped)
            return ([self.key_codec.get(bytearray(), 0)] * len(popped),
                    [self.value_codec.get(bytearray(v), 0) for v in popped])
        pairs = list(self.items())
        if delete:
            for k, _ in pairs:
                self.delete(k)
        if not raw:
            return [k for k, _ in pairs], [v for _, v in pairs]
        kb, vb = bytearray(len(pairs) * self.key_size), bytearray(len(pairs) * self.value_codec.size)
        for i, (k, v) in enumerate(pairs):
            self.key_codec.put(kb, i * self.key_size, k)
            self.value_codec.put(vb, i * self.value_codec.size, v)
        return bytes(kb), bytes(vb), len(pairs)

    def _supports_batch(self) -> bool:
        return bool(probes.map_batch(self.type))

    def dump_raw(self) -> Iterator[tuple[bytes, Union[bytes, int]]]:
        """Every element as ``(key, value)`` bytes, undecoded (``bpftool map dump``).

        Map types with batch operations are read with BPF_MAP_LOOKUP_BATCH, others with a
        BPF_MAP_GET_NEXT_KEY walk and one lookup per key; a key whose lookup fails yields its
        errno instead of the value (the kernel's answer for an empty prog array slot, say).
        Per-CPU values are all CPUs' values, each padded to 8 bytes. A failing key walk
        (queue, stack: no keys) raises BPFError.
        """
        ksz, vsz = self.key_size, self.value_codec.size
        if self._supports_batch():
            kb, vb, n = self.lookup_batch(raw=True)
            for i in range(n):
                yield kb[i * ksz:(i + 1) * ksz], vb[i * vsz:(i + 1) * vsz]
            return
        cur, nxt, val = bytearray(max(ksz, 1)), bytearray(max(ksz, 1)), bytearray(max(vsz, 1))
        walk = _cmd.map_elem_attr(self.fd, 0, _address(nxt))
        look = _cmd.map_elem_attr(self.fd, _address(cur), _address(val))
        waddr, laddr = ctypes.addressof(walk), ctypes.addressof(look)
        next_key, lookup = _cmd.map_get_next_key, _cmd.map_lookup_elem
        ret = next_key(waddr)
        walk.key = _address(cur)
        limit = 2 * self.max_entries + 16  # a walk longer than this means concurrent churn
        while ret == 0:
            cur[:] = nxt
            r = lookup(laddr)
            yield bytes(cur[:ksz]), (bytes(val[:vsz]) if r == 0 else -r)
            ret = next_key(waddr)
            limit -= 1
            if limit == 0:
                raise self._endless_walk()
        if ret != -_errno.ENOENT:
            raise self._fail(Cmd.MAP_GET_NEXT_KEY, -ret)

    # -- memory mapping --------------------------------------------------------------------------
    def mmap(self, writable: bool = True) -> _mmap.mmap:
        """Map the values of a ``BPF_F_MMAPABLE`` array (or an arena) into this process."""
        if not self.flags & MapFlag.MMAPABLE:
            raise UsageError(f"{self.describe()} was not created with BPF_F_MMAPABLE")
        if self.type == MapType.ARENA:  # max_entries counts pages
            length = self.max_entries * _mmap.PAGESIZE
        else:
            length = -(-self.value_size * self.max_entries // _mmap.PAGESIZE) * _mmap.PAGESIZE
        prot = _mmap.PROT_READ | (_mmap.PROT_WRITE if writable else 0)
        try:
            return _mmap.mmap(self.fd, length, _mmap.MAP_SHARED, prot)
        except OSError as e:
            frozen = writable and e.errno == _errno.EPERM and self.info().frozen
            raise BPFError(e.errno or 0, "mmap", self.describe(),
                           "the map is frozen: it can only be mapped read-only" if frozen else "",
                           "use mmap(writable=False)" if frozen else "") from None

    def describe(self) -> str:
        if self.name:
            return f"map {self.name!r}"
        return f"{_type_name(self.type)} map" if hasattr(self, "type") else "map"


def _address(buf: bytearray) -> int:
    """Where a bytearray's bytes live (0 when empty): valid while it is neither freed nor resized."""
    return ctypes.addressof((ctypes.c_char * len(buf)).from_buffer(buf)) if buf else 0


def _is_buffer(items: Any) -> bool:
    """Packed elements (bytes, array.array, numpy arrays: anything with the buffer protocol)."""
    try:
        memoryview(items)
    except TypeError:
        return False
    return True


def _count(items: Any, size: int) -> int:
    """Elements in a sequence, or in a buffer of packed ``size``-byte elements."""
    return memoryview(items).nbytes // max(size, 1) if _is_buffer(items) else len(items)


def _fileno(obj: Any) -> int:
    if obj is None:
        return 0
    return obj if isinstance(obj, int) else obj.fileno()


def list_maps() -> Iterator[MapInfo]:
    """Info on every map in the kernel (other tenants' too); maps freed meanwhile are skipped."""
    from .sys.info import MapInfo
    for obj_id, fd in objects.open_all("map"):
        with fd:
            yield MapInfo.from_fd(fd.fd, f"map id {obj_id}")

