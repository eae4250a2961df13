"""BCC's table classes on ``pybpf.maps.Map``: dict-like access with ctypes keys and values.

``Key``/``Leaf`` are ctypes types built from the object's BTF with BCC's conventions
(``char[N]`` is ``c_char * N``, read as bytes, so ``.decode()`` works; structs are
``ctypes.Structure`` subclasses named after the C struct). Values shorter than the map's
value size (``create_string_buffer(b"Hey root!")``) are zero-padded; longer ones are cut to
it, as BCC (which hands the kernel a pointer) does.
"""
from __future__ import annotations

import ctypes as ct
import functools
from collections.abc import MutableMapping
from typing import TYPE_CHECKING, Any, Callable, Iterator, Optional

from ..errors import MapKeyError, UsageError
from ..sys.uapi import MapType

if TYPE_CHECKING:
    from ..maps import Map
    from .bpf import BPF, _Built

# BCC's BPF_MAP_TYPE_* module constants
BPF_MAP_TYPE_HASH = int(MapType.HASH)
BPF_MAP_TYPE_ARRAY = int(MapType.ARRAY)
BPF_MAP_TYPE_PROG_ARRAY = int(MapType.PROG_ARRAY)
BPF_MAP_TYPE_PERF_EVENT_ARRAY = int(MapType.PERF_EVENT_ARRAY)
BPF_MAP_TYPE_PERCPU_HASH = int(MapType.PERCPU_HASH)
BPF_MAP_TYPE_PERCPU_ARRAY = int(MapType.PERCPU_ARRAY)
BPF_MAP_TYPE_STACK_TRACE = int(MapType.STACK_TRACE)
BPF_MAP_TYPE_CGROUP_ARRAY = int(MapType.CGROUP_ARRAY)
BPF_MAP_TYPE_LRU_HASH = int(MapType.LRU_HASH)
BPF_MAP_TYPE_LRU_PERCPU_HASH = int(MapType.LRU_PERCPU_HASH)
BPF_MAP_TYPE_LPM_TRIE = int(MapType.LPM_TRIE)
BPF_MAP_TYPE_ARRAY_OF_MAPS = int(MapType.ARRAY_OF_MAPS)
BPF_MAP_TYPE_HASH_OF_MAPS = int(MapType.HASH_OF_MAPS)
BPF_MAP_TYPE_DEVMAP = int(MapType.DEVMAP)
BPF_MAP_TYPE_SOCKMAP = int(MapType.SOCKMAP)
BPF_MAP_TYPE_CPUMAP = int(MapType.CPUMAP)
BPF_MAP_TYPE_XSKMAP = int(MapType.XSKMAP)
BPF_MAP_TYPE_SOCKHASH = int(MapType.SOCKHASH)
BPF_MAP_TYPE_CGROUP_STORAGE = int(MapType.CGROUP_STORAGE)
BPF_MAP_TYPE_QUEUE = int(MapType.QUEUE)
BPF_MAP_TYPE_STACK = int(MapType.STACK)
BPF_MAP_TYPE_DEVMAP_HASH = int(MapType.DEVMAP_HASH)
BPF_MAP_TYPE_RINGBUF = int(MapType.RINGBUF)

BPF_F_STACK_BUILD_ID = 1 << 5


class TableNotFound(UsageError, KeyError):
    """``b["name"]`` for a table the program does not have."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


# -- BTF -> ctypes, BCC's conventions ------------------------------------------------------------
_INTS = {(1, False): ct.c_ubyte, (1, True): ct.c_byte, (2, False): ct.c_ushort,
         (2, True): ct.c_short, (4, False): ct.c_uint, (4, True): ct.c_int,
         (8, False): ct.c_ulonglong, (8, True): ct.c_longlong}


@functools.lru_cache(maxsize=512)
def ctypes_of(t: Any) -> Any:
    """The ctypes type of BTF type ``t`` as BCC makes it: ``char`` is ``c_char`` (arrays read
    as bytes), pointers ``c_ulonglong``, structs and unions classes with the C member names."""
    from ..btf import types as T
    from ..errors import BTFError
    t = T.skip_qualifiers(t)
    if isinstance(t, T.Int):
        if t.encoding & T.INT_BOOL:
            return ct.c_bool
        if t.size == 1 and (t.encoding & T.INT_CHAR or t.name == "char"):
            return ct.c_char
        if (t.size, t.signed) in _INTS:
            return _INTS[(t.size, t.signed)]
        return ct.c_ulonglong * (t.size // 8)  # __int128: two words, as BCC
    if isinstance(t, T.Enum):
        return _INTS[(t.size, t.signed)]
    if isinstance(t, T.Float):
        return {4: ct.c_float, 8: ct.c_double}.get(t.size) or ct.c_ubyte * t.size
    if isinstance(t, T.Pointer):
        return ct.c_ulonglong
    if isinstance(t, T.Array):
        return ctypes_of(t.type) * t.nelems
    if isinstance(t, T.Composite):
        return _composite(t)
    raise BTFError(f"{t!r} has no fixed layout for a table key or value")


def _composite(t: Any) -> type:
    """A Structure/Union subclass laid out as BTF says: C's natural layout when it matches
    (bitfields included), else packed with explicit padding (packed or odd structs)."""
    from ..btf import types as T
    from ..errors import BTFError
    union = not isinstance(t, T.Struct)  # a BTF union
    base = ct.Union if union else ct.Structure
    name = t.name if t.name and t.name.isidentifier() else "anon"
    natural: list[tuple] = []
    anonymous: list[str] = []
    for i, m in enumerate(t.members):
        field = m.name or f"__anon{i}"
        if not m.name:
            anonymous.append(field)
        ctype = ctypes_of(m.type)
        natural.append((field, ctype, m.bitfield_size) if m.bitfield_size else (field, ctype))
    cls = type(name, (base,), {"_anonymous_": anonymous, "_fields_": natural})
    if ct.sizeof(cls) == t.size and all(
            m.bitfield_size or getattr(cls, f[0]).offset == m.offset // 8
            for m, f in zip(t.members, natural)):
        return cls
    if any(m.bitfield_size or m.offset % 8 for m in t.members):
        raise BTFError(f"{'union' if union else 'struct'} {t.name or '(anon)'}: bitfields in a "
                       "packed layout cannot be represented with ctypes")
    fields: list[tuple] = []
    pos = 0
    for m, f in zip(t.members, natural):
        off = m.offset // 8
        if not union and off > pos:
            fields.append((f"__pad{pos}", ct.c_ubyte * (off - pos)))
        fields.append(f)
        pos = max(pos, off + ct.sizeof(f[1]))
    if t.size > pos:
        fields.append((f"__pad{pos}", ct.c_ubyte * (t.size - pos)))
    return type(name, (base,), {"_pack_": 1, "_anonymous_": anonymous, "_fields_": fields})


def _by_size(size: int) -> Any:
    return {1: ct.c_ubyte, 2: ct.c_ushort, 4: ct.c_uint, 8: ct.c_ulonglong}.get(size) \
        or ct.c_ubyte * size


# -- tables --------------------------------------------------------------------------------------
class TableBase(MutableMapping):
    """A BPF map as BCC's table: ``t[key]``, ``t[key] = leaf``, ``del t[key]``, ``len(t)``,
    ``keys()``/``values()``/``items()`` (ctypes objects), ``clear()``, batch operations."""

    def __init__(self, bpf: "BPF", map: "Map", name: str, keytype: Any, leaftype: Any,
                 event_type: Any = None) -> None:
        self.bpf = bpf
        self.map = map
        self.name = name.encode()
        self.map_fd = map.fd
        self.map_type = int(map.type)
        self.max_entries = map.max_entries
        self.Key = keytype
        self.Leaf = leaftype
        self._event_type = event_type
        self._ksize = map.key_size
        self._vsize = map.value_size

    def get_fd(self) -> int:
        return self.map_fd

    @property
    def flags(self) -> int:
        return self.map.flags

    @property
    def map_id(self) -> int:
        return self.map.id

    def _key(self, key: Any) -> bytes:
        if isinstance(key, int) and not isinstance(key, bool):
            key = self.Key(key)
        data = bytes(key) if not isinstance(key, bytes) else key
        if len(data) != self._ksize:
            data = data[:self._ksize].ljust(self._ksize, b"\0")
        return data

    def _leaf_bytes(self, leaf: Any, size: int) -> bytes:
        if isinstance(leaf, int) and not isinstance(leaf, bool):
            leaf = self.Leaf(leaf)
        data = leaf if isinstance(leaf, bytes) else bytes(leaf)
        return data[:size].ljust(size, b"\0")

    def _leaf(self, raw: Any) -> Any:
        if isinstance(raw, int):  # maps of fds, ifindexes, CPUs: the map gives the number
            return self.Leaf(raw)
        return self.Leaf.from_buffer_copy(raw)

    def __getitem__(self, key: Any) -> Any:
        try:
            raw = self.map[self._key(key)]
        except MapKeyError:
            raise KeyError(key) from None
        return self._leaf(raw)

    def __setitem__(self, key: Any, leaf: Any) -> None:
        self.map[self._key(key)] = self._leaf_bytes(leaf, self._vsize)

    def __delitem__(self, key: Any) -> None:
        try:
            self.map.delete(self._key(key))
        except MapKeyError:
            raise KeyError(key) from None

    def __contains__(self, key: object) -> bool:
        return self._key(key) in self.map

    def __iter__(self) -> Iterator[Any]:
        for raw in self.map.keys():
            yield self.Key.from_buffer_copy(raw)

    def __len__(self) -> int:
        return sum(1 for _ in self.map.keys())

    def keys(self) -> Any:
        return list(self)

    def itervalues(self) -> Iterator[Any]:
        for k in self:
            try:
                yield self[k]
            except KeyError:
                continue

    def iteritems(self) -> Iterator[tuple[Any, Any]]:
        for k in self:
            try:
                yield k, self[k]
            except KeyError:
                continue

    def values(self) -> Any:
        return list(self.itervalues())

    def items(self) -> Any:
        return list(self.iteritems())

    def clear(self) -> None:
        for k in self.keys():
            try:
                del self[k]
            except KeyError:
                pass

    def zero(self) -> None:
        """Set every existing element to a zeroed Leaf."""
        for k in self.keys():
            self[k] = self.Leaf()

    def next(self, key: Any) -> Any:
        return self.Key.from_buffer_copy(self.map.next_key(self._key(key)))

    # batch operations (BPF_MAP_*_BATCH, with a key walk where the map type lacks them)
    def items_lookup_batch(self) -> Iterator[tuple[Any, Any]]:
        keys, vals = self.map.lookup_batch()
        for k, v in zip(keys, vals):
            yield self.Key.from_buffer_copy(k), self._leaf(v)

    def items_lookup_and_delete_batch(self) -> Iterator[tuple[Any, Any]]:
        keys, vals = self.map.lookup_batch(delete=True)
        for k, v in zip(keys, vals):
            yield self.Key.from_buffer_copy(k), self._leaf(v)

    def items_delete_batch(self, ct_keys: Any = None) -> None:
        """Delete the keys given (a ctypes array of Key), or every element."""
        if ct_keys is None:
            self.map.lookup_batch(delete=True)
            return
        self.map.delete_batch(b"".join(self._key(k) for k in ct_keys))

    def items_update_batch(self, ct_keys: Any, ct_values: Any) -> None:
        """Set each key of ``ct_keys`` to the value at the same place in ``ct_values``."""
        if len(ct_keys) != len(ct_values):
            raise UsageError(f"items_update_batch: {len(ct_keys)} keys but {len(ct_values)} "
                             "values")
        self.map.update_batch(b"".join(self._key(k) for k in ct_keys),
                              b"".join(self._leaf_bytes(v, self._vsize) for v in ct_values))

    # histograms (printed by hist.py)
    def print_log2_hist(self, val_type: str = "value", section_header: str = "Bucket ptr",
                        section_print_fn: Optional[Callable[[Any], Any]] = None,
                        bucket_fn: Optional[Callable[[Any], Any]] = None,
                        strip_leading_zero: Optional[bool] = None,
                        bucket_sort_fn: Optional[Callable[[Any], Any]] = None) -> None:
        from .hist import print_log2_hist
        print_log2_hist(self, val_type=val_type, section_header=section_header,
                        section_print_fn=section_print_fn, bucket_fn=bucket_fn,
                        strip_leading_zero=strip_leading_zero, bucket_sort_fn=bucket_sort_fn)

    def print_linear_hist(self, val_type: str = "value", section_header: str = "Bucket ptr",
                          section_print_fn: Optional[Callable[[Any], Any]] = None,
                          bucket_fn: Optional[Callable[[Any], Any]] = None,
                          strip_leading_zero: Optional[bool] = None,
                          bucket_sort_fn: Optional[Callable[[Any], Any]] = None) -> None:
        from .hist import print_linear_hist
        print_linear_hist(self, val_type=val_type, section_header=section_header,
                          section_print_fn=section_print_fn, bucket_fn=bucket_fn,
                          strip_leading_zero=strip_leading_zero, bucket_sort_fn=bucket_sort_fn)

    def print_json_hist(self, val_type: str = "value", section_header: str = "Bucket ptr",
                        section_print_fn: Optional[Callable[[Any], Any]] = None,
                        bucket_fn: Optional[Callable[[Any], Any]] = None,
                        bucket_sort_fn: Optional[Callable[[Any], Any]] = None) -> None:
        from .hist import print_json_hist
        print_json_hist(self, val_type=val_type, section_header=section_header,
                        section_print_fn=section_print_fn, bucket_fn=bucket_fn,
                        bucket_sort_fn=bucket_sort_fn)

    # events
    def event(self, data: Any) -> Any:
        """The record at address ``data`` (a perf/ring buffer callback's argument) as a ctypes
        structure of the type the program submits (a copy)."""
        cls = self._event_type
        if cls is None:
            raise UsageError(f"{self.name.decode()}.event(): the type the program submits to "
                             f"{self.name.decode()!r} is not known (no perf_submit or "
                             "ringbuf_output of a typed object in the program)")
        return cls.from_buffer_copy(ct.string_at(data, ct.sizeof(cls)))

    def close(self) -> None:
        """Close the table's own fd of the map (the map lives while the program holds it)."""
        self.map.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name.decode()!r} fd {self.map_fd}>"


class HashTable(TableBase):
    pass


class LruHash(HashTable):
    pass


class ArrayBase(TableBase):
    """Arrays: every index exists; deleting an element zeroes it (as BCC)."""

    def _key(self, key: Any) -> bytes:
        if isinstance(key, int) and not isinstance(key, bool):
            if key < 0:
                key += self.max_entries
            if not 0 <= key < self.max_entries:
                raise IndexError(f"{self.name.decode()}: index {key} out of range "
                                 f"(0..{self.max_entries - 1})")
        return super()._key(key)

    def __len__(self) -> int:
        return self.max_entries

    def __delitem__(self, key: Any) -> None:
        self[key] = self.Leaf()

    def clear(self) -> None:
        self.zero()

    def __iter__(self) -> Iterator[Any]:
        for i in range(self.max_entries):
            yield self.Key(i)


class Array(ArrayBase):
    pass


class CgroupArray(ArrayBase):
    """Cgroup array: ``t[i] = "/sys/fs/cgroup/..."`` (a path) or a cgroup directory fd."""

    def __setitem__(self, key: Any, leaf: Any) -> None:
        import os
        if isinstance(leaf, (str, bytes)):
            fd = os.open(leaf, os.O_RDONLY | os.O_CLOEXEC)
            try:
                self.map[self._key(key)] = fd
            finally:
                os.close(fd)
        else:
            self.map[self._key(key)] = int(getattr(leaf, "value", leaf))

    def __getitem__(self, key: Any) -> Any:
        raise UsageError(f"{self.name.decode()}: a cgroup array cannot be read from user space")


class _NumberArray(ArrayBase):
    """Arrays whose elements hold a number the kernel resolves (a program fd, an ifindex, a
    queue size, a socket fd): ``t[i] = ct.c_int(n)``; deleting empties the slot."""

    def __setitem__(self, key: Any, leaf: Any) -> None:
        self.map[self._key(key)] = int(getattr(leaf, "value", leaf))

    def __delitem__(self, key: Any) -> None:
        try:
            self.map.delete(self._key(key))
        except MapKeyError:
            raise KeyError(key) from None

    def clear(self) -> None:
        for k in self.keys():
            try:
                del self[k]
            except KeyError:
                pass


class ProgArray(_NumberArray):
    """Tail-call table: ``t[ct.c_int(i)] = ct.c_int(fn.fd)`` (or the function object)."""

    def __setitem__(self, key: Any, leaf: Any) -> None:
        super().__setitem__(key, leaf.fd if hasattr(leaf, "fd") else leaf)


class DevMap(_NumberArray):
    """Device map: ``t[i] = ct.c_int(ifindex)``."""


class CpuMap(_NumberArray):
    """CPU map: ``t[cpu] = ct.c_int(queue_size)``."""


class XskMap(_NumberArray):
    """AF_XDP socket map: ``t[i] = ct.c_int(xsk_fd)``."""


class _PerCpu:
    """Per-CPU values: ``Leaf`` is ``sLeaf * ncpus`` (one per possible CPU); with a
    ``reducer``, ``t[key]`` folds them into one; ``sum``/``max``/``average`` for int leaves."""

    reducer: Optional[Callable[[Any, Any], Any]] = None
    Leaf: Any
    sLeaf: Any
    map: Any
    total_cpu: int

    def _setup_percpu(self, reducer: Optional[Callable[[Any, Any], Any]]) -> None:
        from ..sys.cpus import possible_cpus
        self.reducer = reducer
        self.total_cpu = len(possible_cpus())
        self.sLeaf = self.Leaf
        self.Leaf = self.sLeaf * self.total_cpu

    def getvalue(self, key: Any) -> Any:
        try:
            per_cpu = self.map[self._key(key)]  # type: ignore[attr-defined]
        except MapKeyError:
            raise KeyError(key) from None
        return self.Leaf(*(self.sLeaf.from_buffer_copy(v[:ct.sizeof(self.sLeaf)])
                           for v in per_cpu))

    def _leaf(self, raw: Any) -> Any:
        return self.Leaf(*(self.sLeaf.from_buffer_copy(v[:ct.sizeof(self.sLeaf)])
                           for v in raw))

    def __getitem__(self, key: Any) -> Any:
        values = self.getvalue(key)
        if self.reducer is None:
            return values
        return functools.reduce(self.reducer, values)

    def __setitem__(self, key: Any, leaf: Any) -> None:
        size = ct.sizeof(self.sLeaf)
        if isinstance(leaf, ct.Array) and len(leaf) == self.total_cpu:
            per_cpu = [self._leaf_bytes(v, size) for v in leaf]  # type: ignore[attr-defined]
        else:  # one value for every CPU
            one = self._leaf_bytes(leaf, size)  # type: ignore[attr-defined]
            per_cpu = [one] * self.total_cpu
        self.map[self._key(key)] = per_cpu  # type: ignore[attr-defined]

    def _ints(self, key: Any, what: str) -> list[int]:
        if issubclass(self.sLeaf, (ct.Structure, ct.Union)):
            raise UsageError(f"{what}: the leaf type is a struct; sum/max/average need an "
                             "integer leaf")
        return [v for v in self.getvalue(key)]

    def sum(self, key: Any) -> Any:
        return self.sLeaf(sum(self._ints(key, "sum")))

    def max(self, key: Any) -> Any:
        return self.sLeaf(max(self._ints(key, "max")))

    def average(self, key: Any) -> float:
        return sum(self._ints(key, "average")) / self.total_cpu


class PerCpuHash(_PerCpu, HashTable):
    pass


class LruPerCpuHash(_PerCpu, HashTable):
    pass


class PerCpuArray(_PerCpu, ArrayBase):
    pass


class LpmTrie(TableBase):
    """Longest-prefix-match trie: keys are ``{prefixlen, data}`` structs."""

    def __len__(self) -> int:
        return sum(1 for _ in self.map.keys())


class StackTrace(TableBase):
    """Stack traces by stack id: ``walk(stack_id)`` yields the addresses, innermost first."""

    def walk(self, stack_id: int, resolve: Optional[Callable[[int], Any]] = None
             ) -> Iterator[Any]:
        try:
            raw = self.map[self._key(stack_id)]
        except MapKeyError:
            return
        n = len(raw) // 8
        for addr in (ct.c_ulonglong * n).from_buffer_copy(raw):
            if addr == 0:
                break
            yield resolve(addr) if resolve else addr

    def clear(self) -> None:
        TableBase.clear(self)


class QueueStack(TableBase):
    """Queue or stack: ``push(leaf)``, ``pop()``, ``peek()``, ``itervalues()`` (pops)."""

    def push(self, leaf: Any, flags: int = 0) -> None:
        self.map.push(self._leaf_bytes(leaf, self._vsize), flags)

    def pop(self) -> Any:  # type: ignore[override]
        try:
            return self._leaf(self.map.pop())
        except MapKeyError:
            raise KeyError("empty queue/stack") from None

    def peek(self) -> Any:
        raw = self.map.peek()  # None when empty
        if raw is None:
            raise KeyError("empty queue/stack")
        return self._leaf(raw)

    def itervalues(self) -> Iterator[Any]:
        while True:
            try:
                yield self.pop()
            except KeyError:
                return

    def values(self) -> Any:
        return list(self.itervalues())

    def __len__(self) -> int:
        raise UsageError(f"{self.name.decode()}: a queue or stack has no length")

    def __getitem__(self, key: Any) -> Any:
        raise UsageError(f"{self.name.decode()}: a queue or stack has no keys: push/pop/peek")

    def __setitem__(self, key: Any, leaf: Any) -> None:
        raise UsageError(f"{self.name.decode()}: a queue or stack has no keys: push/pop/peek")

    def __delitem__(self, key: Any) -> None:
        raise UsageError(f"{self.name.decode()}: a queue or stack has no keys: push/pop/peek")

    def __iter__(self) -> Iterator[Any]:
        raise UsageError(f"{self.name.decode()}: a queue or stack has no keys: push/pop/peek")


class _Buffered(TableBase):
    """Base of the event tables: reading records through ``pybpf.events``."""

    def _decoder(self) -> Callable[[memoryview], Any]:
        size = ct.sizeof(self._event_type) if self._event_type is not None else 0

        def copy(view: memoryview) -> Any:  # valid during the callback, as BCC's pointer
            buf = ct.create_string_buffer(bytes(view), max(len(view), size))
            return buf, len(view)
        return copy


class PerfEventArray(_Buffered):
    """``BPF_PERF_OUTPUT``: ``open_perf_buffer(callback(cpu, data, size))``; ``BPF_PERF_ARRAY``:
    ``open_perf_event(type, config)``."""

    _counters: Optional[dict[int, Any]] = None  # CPU -> the counter's FD

    def open_perf_buffer(self, callback: Callable[[int, int, int], Any], page_cnt: int = 8,
                         lost_cb: Optional[Callable[[int], Any]] = None,
                         wakeup_events: int = 1) -> None:
        from ..events import PerfBuffer
        from ..sys.cpus import online_cpus

        def deliver_from(cpu: int) -> Callable[[Any], None]:
            def deliver(rec: Any) -> None:
                buf, size = rec
                callback(cpu, ct.addressof(buf), size)
            return deliver

        lost = (lambda cpu, count: lost_cb(count)) if lost_cb else None
        for cpu in online_cpus():  # a reader per CPU: the callback is told the record's CPU
            reader = PerfBuffer(self.map, deliver_from(cpu), self._decoder(), pages=page_cnt,
                                wakeup_events=wakeup_events, lost_callback=lost, cpus=[cpu])
            self.bpf._add_reader("_perf_buffers", reader)

    def open_perf_event(self, typ: int, config: int, pid: int = -1) -> None:
        """Open counter ``typ``/``config`` (``PerfType``, ``PerfHWConfig``/``PerfSWConfig``)
        on every online CPU, of process ``pid`` or all, each at its CPU's index: what
        ``BPF_PERF_ARRAY``'s ``perf_read(CUR_CPU_IDENTIFIER)`` reads. Open until
        ``close_perf_event()``."""
        from ..sys.cpus import online_cpus
        from ..sys.perf import PerfEventAttr, perf_event_open
        if self._counters is None:
            self._counters = {}
        events = self._counters
        for cpu in online_cpus():
            fd = perf_event_open(PerfEventAttr(type=int(typ), config=int(config)), pid, cpu,
                                 what=f"{self.name.decode()}: counter type {int(typ)} config "
                                      f"{int(config)} on CPU {cpu}")
            try:
                self.map[self._key(cpu)] = fd.fd
            except BaseException:
                fd.close()
                raise
            old = events.pop(cpu, None)
            if old is not None:
                old.close()
            events[cpu] = fd

    def close_perf_event(self) -> None:
        """Remove the counters ``open_perf_event`` put in the array and close them."""
        events, self._counters = self._counters or {}, None
        for cpu, fd in events.items():
            self.map.delete(self._key(cpu))
            fd.close()

    def __getitem__(self, key: Any) -> Any:
        raise UsageError(f"{self.name.decode()}: a perf event array is read with "
                         "open_perf_buffer() and perf_buffer_poll()")

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


class RingBuf(_Buffered):
    """``BPF_RINGBUF_OUTPUT``: ``open_ring_buffer(callback(ctx, data, size))``."""

    def open_ring_buffer(self, callback: Callable[[Any, int, int], Any], ctx: Any = None
                         ) -> None:
        from ..events import RingBuffer

        def deliver(rec: Any) -> None:
            buf, size = rec
            callback(ctx, ct.addressof(buf), size)

        self.bpf._add_reader("_ring_buffers", RingBuffer(self.map, deliver, self._decoder()))

    def __getitem__(self, key: Any) -> Any:
        raise UsageError(f"{self.name.decode()}: a ring buffer is read with open_ring_buffer() "
                         "and ring_buffer_poll()")

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def __len__(self) -> int:
        return 0


_CLASSES: dict[int, type] = {
    MapType.HASH: HashTable, MapType.ARRAY: Array, MapType.PROG_ARRAY: ProgArray,
    MapType.PERF_EVENT_ARRAY: PerfEventArray, MapType.PERCPU_HASH: PerCpuHash,
    MapType.PERCPU_ARRAY: PerCpuArray, MapType.STACK_TRACE: StackTrace,
    MapType.CGROUP_ARRAY: CgroupArray, MapType.LRU_HASH: LruHash,
    MapType.LRU_PERCPU_HASH: LruPerCpuHash, MapType.LPM_TRIE: LpmTrie,
    MapType.DEVMAP: DevMap, MapType.DEVMAP_HASH: DevMap, MapType.CPUMAP: CpuMap,
    MapType.XSKMAP: XskMap, MapType.QUEUE: QueueStack, MapType.STACK: QueueStack,
    MapType.RINGBUF: RingBuf,
    # BCC has no class for these: keyed by (cgroup inode, attach type) like a hash
    MapType.CGROUP_STORAGE: HashTable, MapType.PERCPU_CGROUP_STORAGE: PerCpuHash,
}


def _event_var_type(btf: Any, var: str) -> Any:
    """The type of BTF variable ``var`` (clang may prefix a function-static's name with its
    function's: ``greet.__pybpf_event__output``): the record a program submits to a table."""
    from ..btf import types as T
    for name in btf.names_ending(var):
        if name == var or name.endswith("." + var):
            for t in btf.find_all(name, T.Var):
                return t.type
    return None


def table_of(bpf: "BPF", name: str, built: "_Built", keytype: Any = None, leaftype: Any = None,
             reducer: Optional[Callable[[Any, Any], Any]] = None) -> TableBase:
    """The table object for map ``name`` of a built program, of BCC's class for its type."""
    m = built.collection.maps[name].raw()  # bytes in and out: the tables convert by ctypes
    ms = built.collection.spec.maps[name]
    btf = built.collection.spec.btf
    if keytype is None:
        keytype = ctypes_of(ms.key_type) if ms.key_type is not None else _by_size(m.key_size)
    if leaftype is None:
        leaftype = ctypes_of(ms.value_type) if ms.value_type is not None \
            else _by_size(m.value_size)
    if m.type in (MapType.PERF_EVENT_ARRAY, MapType.PROG_ARRAY, MapType.CGROUP_ARRAY):
        keytype, leaftype = ct.c_int, ct.c_int
    event_type = None
    var = built.translation.event_types.get(name)
    if var and btf is not None:
        t = _event_var_type(btf, var)
        event_type = ctypes_of(t) if t is not None else None
    cls = _CLASSES.get(m.type, TableBase)
    table = cls(bpf, m, name, keytype, leaftype, event_type)
    if isinstance(table, _PerCpu):
        table._setup_percpu(reducer)
    return table
