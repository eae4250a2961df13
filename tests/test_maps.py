"""Maps against the running kernel: every map type, dict-style access, batch ops, mmap, pinning.

Nothing here assumes the machine's BPF state is empty: other programs and maps may exist, so
tests only look at objects they created (by fd or id) and never at totals.
"""
from __future__ import annotations

import ctypes
import errno
import mmap as _mmap
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from pybpf import features
from pybpf.btf import BTF, int_btf
from pybpf.errors import BPFError, MapKeyError, UnsupportedFeatureError, UsageError
from pybpf.maps import Map, MapInfo, list_maps, map_type_of
from pybpf.programs import Program
from pybpf.sys.cpus import possible_cpus
from pybpf.sys.trace import tracing
from pybpf.sys.uapi import MapFlag, MapType, ProgType, UpdateFlag

NCPUS = len(possible_cpus())
RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit
PAGE = _mmap.PAGESIZE


@pytest.fixture
def int_btf_obj():
    with BTF.load(int_btf(), "test int btf") as btf:
        yield btf


@pytest.fixture
def prog():
    with Program.load(ProgType.SOCKET_FILTER, RET0, name="pybpf_t_ret0") as p:
        yield p


def wait_gone(map_id: int, timeout: float = 5.0) -> bool:
    """Map freeing is deferred in the kernel (RCU, work queue): poll for the id to vanish."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if map_id not in Map.ids():
            return True
        time.sleep(0.02)
    return False


# -- creating every map type ---------------------------------------------------------------------

# (type, key_size, value_size, max_entries, flags, expected max_entries in info)
SIMPLE_TYPES = [
    ("hash", 4, 8, 16, 0, 16),
    ("array", 4, 8, 16, 0, 16),
    ("percpu_hash", 4, 4, 16, 0, 16),
    ("percpu_array", 4, 4, 16, 0, 16),
    ("lru_hash", 4, 4, 16, 0, 16),
    ("lru_percpu_hash", 4, 4, 16, 0, 16),
    ("lpm_trie", 8, 4, 16, MapFlag.NO_PREALLOC, 16),
    ("prog_array", 4, 4, 4, 0, 4),
    ("perf_event_array", 4, 4, 0, 0, NCPUS),
    ("stack_trace", 4, 8 * 127, 16, 0, 16),
    ("cgroup_array", 4, 4, 4, 0, 4),
    ("queue", 0, 4, 8, 0, 8),
    ("stack", 0, 4, 8, 0, 8),
    ("bloom_filter", 0, 4, 64, 0, 64),
    ("ringbuf", 0, 0, 4 * PAGE, 0, 4 * PAGE),
    ("user_ringbuf", 0, 0, 4 * PAGE, 0, 4 * PAGE),
    ("devmap", 4, 4, 4, 0, 4),
    ("devmap_hash", 4, 4, 4, 0, 4),
    ("cpumap", 4, 4, 4, 0, 4),
    ("xskmap", 4, 4, 4, 0, 4),
    ("sockmap", 4, 4, 4, 0, 4),
    ("sockhash", 4, 4, 4, 0, 4),
    ("reuseport_sockarray", 4, 8, 4, 0, 4),
    ("cgroup_storage", 8, 8, 0, 0, 0),
    ("percpu_cgroup_storage", 8, 8, 0, 0, 0),
    ("arena", 0, 0, 4, MapFlag.MMAPABLE, 4),
]


@pytest.mark.parametrize("tname,ksz,vsz,entries,flags,want_entries", SIMPLE_TYPES,
                         ids=[t[0] for t in SIMPLE_TYPES])
def test_create_every_type(tname, ksz, vsz, entries, flags, want_entries):
    mtype = map_type_of(tname)
    name = f"t_{tname}"[:15]
    support = features.map_type(mtype)
    if not support:  # the clear error, then skipped with the probe's reason
        with pytest.raises(UnsupportedFeatureError, match=re.escape(support.reason)):
            Map.create(tname, ksz, vsz, entries, name=name, flags=flags)
        pytest.skip(support.reason)
    with Map.create(tname, ksz, vsz, entries, name=name, flags=flags) as m:
        info = m.info()
        assert isinstance(info, MapInfo)
        assert info.type == mtype
        assert info.name == name
        assert (info.key_size, info.value_size) == (ksz, vsz)
        assert info.max_entries == want_entries
        assert info.flags & flags == flags
        assert info.id > 0 and info.id in Map.ids()
        assert m.type == mtype and m.max_entries == want_entries
        # what Map.create knows without asking the kernel is what the kernel reports
        assert (m.name, m.key_size, m.value_size, m.flags) == \
            (info.name, info.key_size, info.value_size, info.flags)


@pytest.mark.parametrize("tname", ["sk_storage", "inode_storage", "task_storage", "cgrp_storage"])
def test_create_local_storage_with_btf(tname, int_btf_obj):
    with Map.create(tname, 4, 4, 0, name="t_storage", flags=MapFlag.NO_PREALLOC,
                    btf=int_btf_obj, btf_key_type_id=1, btf_value_type_id=1) as m:
        info = m.info()
        assert info.type == map_type_of(tname)
        assert info.btf_id == int_btf_obj.info().id
        assert (info.btf_key_type_id, info.btf_value_type_id) == (1, 1)
        assert info.flags & MapFlag.NO_PREALLOC
        assert info.max_entries == 0


def test_local_storage_without_btf_is_refused():
    with pytest.raises(BPFError) as ei:
        Map.create("task_storage", 4, 4, 0, flags=MapFlag.NO_PREALLOC)
    assert ei.value.errno == errno.EINVAL
    assert "BPF_MAP_CREATE" in str(ei.value)


def test_hash_with_btf_key_value_ids(int_btf_obj):
    with Map.create("hash", 4, 4, 8, name="t_btfids", btf=int_btf_obj, btf_key_type_id=1,
                    btf_value_type_id=1) as m:
        info = m.info()
        assert info.btf_id == int_btf_obj.info().id
        assert (info.btf_key_type_id, info.btf_value_type_id) == (1, 1)


def test_numa_node_flag():
    with Map.create("hash", 4, 4, 8, numa_node=0) as m:
        assert m.info().flags & MapFlag.NUMA_NODE
    with Map.create("hash", 4, 4, 8) as m:
        assert not m.info().flags & MapFlag.NUMA_NODE


def test_flags_are_the_kernels():
    """RDONLY/WRONLY restrict the creating fd and are not reported; a devmap gains
    RDONLY_PROG: ``flags`` says what the kernel holds."""
    with Map.create("hash", 4, 4, 8, flags=MapFlag.WRONLY | MapFlag.NO_PREALLOC) as m:
        assert m.flags == m.info().flags == MapFlag.NO_PREALLOC
        with pytest.raises(BPFError) as e:
            m[b"\0" * 4]  # the fd may only write
        assert e.value.errno == errno.EPERM
    with Map.create("devmap", 4, 4, 4) as m:
        assert m.flags == m.info().flags == MapFlag.RDONLY_PROG


def test_flags_reach_the_kernel():
    with Map.create("hash", 4, 4, 8, flags=MapFlag.NO_PREALLOC | MapFlag.RDONLY_PROG) as m:
        assert m.info().flags & (MapFlag.NO_PREALLOC | MapFlag.RDONLY_PROG) == \
            MapFlag.NO_PREALLOC | MapFlag.RDONLY_PROG
        assert m.flags == m.info().flags


def test_name_too_long_is_usage_error():
    with pytest.raises(UsageError, match="longer than 15"):
        Map.create("hash", 4, 4, 1, name="x" * 16)


def test_unknown_type_name_lists_names():
    with pytest.raises(UsageError) as ei:
        Map.create("no_such_map_type", 4, 4, 1)
    msg = str(ei.value)
    assert "'no_such_map_type'" in msg
    for name in ("hash", "lru_percpu_hash", "bloom_filter", "cgroup_storage"):
        assert name in msg.split("known: ")[1].split(", ")


def test_type_names_as_bpftool_and_uapi_spell_them():
    assert map_type_of("lru_hash") is MapType.LRU_HASH
    assert map_type_of("BPF_MAP_TYPE_LRU_HASH") is MapType.LRU_HASH
    assert map_type_of(MapType.QUEUE) is MapType.QUEUE
    assert map_type_of(2) is MapType.ARRAY


def test_map_type_the_kernel_does_not_know():
    unknown = max(MapType) + 1000
    with pytest.raises(UnsupportedFeatureError) as ei:
        Map.create(unknown, 4, 4, 1)
    msg = str(ei.value)
    assert str(unknown) in msg and "not supported" in msg and os.uname().release in msg


def test_feature_probe_of_known_types():
    assert features.map_type(MapType.HASH)
    assert features.map_type(MapType.HASH).reason == ""
    for t in (MapType.QUEUE, MapType.LPM_TRIE, MapType.RINGBUF, MapType.ARRAY_OF_MAPS):
        s = features.map_type(t)
        assert bool(s) == s.ok
        assert s.ok or t.name.lower() in s.reason


def test_bad_attributes_are_bpf_errors_not_unsupported():
    # a supported type with nonsense sizes: EINVAL, explained, not "unsupported"
    with pytest.raises(BPFError) as ei:
        Map.create("array", 4, 4, 0, name="t_bad")
    assert ei.value.errno == errno.EINVAL
    assert "map 't_bad'" in str(ei.value)


# -- per-CPU maps -------------------------------------------------------------------------------

@pytest.mark.parametrize("tname", ["percpu_hash", "percpu_array", "lru_percpu_hash"])
def test_percpu_values(tname):
    with Map.create(tname, 4, 4, 8, key="I", value="I") as m:
        assert m.value_codec.stride == 8  # 4-byte values padded to 8 per CPU
        assert m.value_codec.size == 8 * NCPUS
        m[1] = list(range(10, 10 + NCPUS))
        assert m[1] == list(range(10, 10 + NCPUS))
        m[2] = 7  # a single value goes to every CPU
        assert m[2] == [7] * NCPUS
        with pytest.raises(UsageError, match=f"list of {NCPUS} values"):
            m[3] = [1] * (NCPUS + 1)


def test_percpu_stride_for_odd_sizes():
    with Map.create("percpu_array", 4, 12, 2, value="<I8s") as m:
        assert m.value_codec.stride == 16
        m[0] = [(i, b"abcdefgh") for i in range(NCPUS)]
        assert m[0] == [(i, b"abcdefgh") for i in range(NCPUS)]


def test_percpu_batch():
    with Map.create("percpu_array", 4, 8, 4, key="I", value="Q") as m:
        vals = [[k * 100 + c for c in range(NCPUS)] for k in range(4)]
        assert m.update_batch(list(range(4)), vals) == 4
        keys, got = m.lookup_batch()
        assert dict(zip(keys, got)) == dict(zip(range(4), vals))


# -- special types ----------------------------------------------------------------------------

def test_lpm_trie_longest_prefix_match():
    with Map.create("lpm_trie", 8, 4, 16, flags=MapFlag.NO_PREALLOC, key="I4s", value="I") as m:
        m[(8, bytes([10, 0, 0, 0]))] = 1
        m[(24, bytes([10, 1, 2, 0]))] = 2
        m[(32, bytes([10, 1, 2, 3]))] = 3
        assert m[(32, bytes([10, 1, 2, 3]))] == 3
        assert m[(32, bytes([10, 1, 2, 4]))] == 2
        assert m[(32, bytes([10, 9, 9, 9]))] == 1
        assert m.get((32, bytes([11, 0, 0, 1]))) is None
        assert (32, bytes([192, 168, 0, 1])) not in m
        assert sorted(m.keys()) == [(8, bytes([10, 0, 0, 0])), (24, bytes([10, 1, 2, 0])),
                                    (32, bytes([10, 1, 2, 3]))]
        del m[(24, bytes([10, 1, 2, 0]))]
        assert m[(32, bytes([10, 1, 2, 4]))] == 1


def test_lru_hash_evicts():
    with Map.create("lru_hash", 4, 4, 8, key="I", value="I") as m:
        for i in range(200):
            m[i] = i
        items = dict(m.items())
        assert 0 < len(items) <= 8 * NCPUS + 8
        assert 199 in items and items[199] == 199
        assert 0 not in items


def test_prog_array_holds_programs(prog):
    with Map.create("prog_array", 4, 4, 4, key="I") as m:
        m[1] = prog
        assert m[1] == prog.info().id
        assert 0 not in m
        m[2] = prog.fd  # a raw fd works too
        assert m[2] == prog.info().id
        del m[1]
        assert 1 not in m


@pytest.mark.parametrize("outer", ["array_of_maps", "hash_of_maps"])
def test_map_in_map(outer):
    with Map.create("array", 4, 4, 1, name="t_inner_tpl") as tpl, \
            Map.create(outer, 4, 4, 4, inner_map=tpl, key="I") as m, \
            Map.create("array", 4, 4, 1, name="t_inner") as inner:
        m[3] = inner
        assert m[3] == inner.id
        assert m.info().value_size == 4
        assert dict(m.items())[3] == inner.id
        del m[3]
        assert 3 not in m
        with pytest.raises(BPFError):  # incompatible with the template: different value size
            with Map.create("array", 4, 8, 1) as wrong:
                m[0] = wrong


def test_perf_event_array_defaults():
    with Map.create("perf_event_array") as m:
        info = m.info()
        assert (info.key_size, info.value_size, info.max_entries) == (4, 4, NCPUS)


def test_ringbuf_creation_only():
    with Map.create("ringbuf", 0, 0, 16 * PAGE, name="t_rb") as m:
        info = m.info()
        assert info.type == MapType.RINGBUF and info.max_entries == 16 * PAGE
    with pytest.raises(BPFError) as ei:  # not a power-of-two number of pages
        Map.create("ringbuf", 0, 0, 3 * PAGE)
    assert ei.value.errno == errno.EINVAL


def test_queue_order():
    with Map.create("queue", 0, 4, 4, value="I") as q:
        assert q.peek() is None
        for v in (3, 1, 2):
            q.push(v)
        assert q.peek() == 3
        assert [q.pop(), q.pop(), q.pop()] == [3, 1, 2]
        with pytest.raises(MapKeyError) as ei:
            q.pop()
        assert ei.value.errno == errno.ENOENT and isinstance(ei.value, KeyError)
        assert q.peek() is None


def test_stack_order_and_overflow():
    with Map.create("stack", 0, 4, 2, value="I") as s:
        s.push(1)
        s.push(2)
        assert s.peek() == 2
        with pytest.raises(BPFError) as ei:
            s.push(3)
        assert ei.value.errno == errno.E2BIG
        s.push(3, UpdateFlag.EXIST)  # overwrite the oldest
        assert [s.pop(), s.pop()] == [3, 2]
        assert s.peek() is None
        with pytest.raises(MapKeyError):
            s.pop()


def test_bloom_filter():
    with Map.create("bloom_filter", 0, 4, 128, map_extra=3, value="I", name="t_bloom") as bf:
        assert bf.info().map_extra == 3
        for v in (5, 17, 1000):
            bf.push(v)
        assert 5 in bf and 17 in bf and 1000 in bf
        assert bf.peek(17) == 17
        absent = [v for v in range(2000, 2100) if v not in bf]
        assert len(absent) > 50  # a few false positives are allowed, not all
        assert bf.peek(absent[0]) is None


def test_stack_trace_map_is_empty():
    with Map.create("stack_trace", 4, 8 * 127, 16, key="I") as m:
        assert list(m) == []
        with pytest.raises(MapKeyError):
            m[0]


def test_devmap_holds_ifindex():
    lo = socket.if_nametoindex("lo")
    with Map.create("devmap", 4, 4, 4, key="I") as m:
        m[0] = lo
        assert m[0] == lo
        assert 1 not in m


def test_sockmap_holds_socket_cookie():
    with Map.create("sockmap", 4, 8, 4, key="I") as m, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        m[0] = s
        so_cookie = getattr(socket, "SO_COOKIE", 57)
        cookie = struct.unpack("=Q", s.getsockopt(socket.SOL_SOCKET, so_cookie, 8))[0]
        assert m[0] == cookie
        del m[0]
        assert 0 not in m


@pytest.mark.kernel("arena")
def test_arena_mmap():
    with Map.create("arena", 0, 0, 4, flags=MapFlag.MMAPABLE, name="t_arena") as a:
        assert a.info().max_entries == 4
        mm = a.mmap()
        try:
            assert len(mm) == 4 * PAGE
            mm[PAGE:PAGE + 5] = b"hello"
            assert mm[PAGE:PAGE + 5] == b"hello"
            assert mm[0:4] == b"\0\0\0\0"
        finally:
            mm.close()


# -- dict-style access ----------------------------------------------------------------------------

def test_item_access_raw_bytes_and_ints():
    with Map.create("hash", 4, 8, 16, name="t_raw") as m:
        m[b"\x01\0\0\0"] = b"abcdefgh"
        assert m[1] == b"abcdefgh"  # ints are host-endian
        m[2] = 5
        assert m[b"\x02\0\0\0"] == (5).to_bytes(8, sys.byteorder)
        m[ctypes.c_uint32(3)] = ctypes.c_uint64(9)
        assert m[3] == (9).to_bytes(8, sys.byteorder)
        assert 1 in m and 4 not in m
        assert m.get(4) is None and m.get(4, "d") == "d"
        with pytest.raises(MapKeyError) as ei:
            m[4]
        assert isinstance(ei.value, KeyError) and ei.value.errno == errno.ENOENT
        assert "map 't_raw'" in str(ei.value)
        del m[1]
        assert 1 not in m
        with pytest.raises(MapKeyError) as ei:
            del m[1]
        assert ei.value.errno == errno.ENOENT


def test_array_elements_always_exist():
    with Map.create("array", 4, 4, 4, key="I", value="I") as m:
        assert [m[i] for i in range(4)] == [0, 0, 0, 0]
        assert sorted(m) == [0, 1, 2, 3]
        m[2] = 9
        assert dict(m.items())[2] == 9
        with pytest.raises(BPFError) as ei:
            m[4] = 1
        assert ei.value.errno == errno.E2BIG
        with pytest.raises(BPFError) as ei:
            del m[0]
        assert ei.value.errno == errno.EINVAL


def test_update_flags():
    with Map.create("hash", 4, 4, 4, name="t_flags", key="I", value="I") as m:
        m.update(1, 10, UpdateFlag.NOEXIST)
        with pytest.raises(BPFError) as ei:
            m.update(1, 11, UpdateFlag.NOEXIST)
        assert ei.value.errno == errno.EEXIST
        assert "map 't_flags'" in str(ei.value) and "NOEXIST" in str(ei.value)
        assert m[1] == 10
        with pytest.raises(BPFError) as ei:
            m.update(2, 20, UpdateFlag.EXIST)
        assert ei.value.errno == errno.ENOENT and not isinstance(ei.value, KeyError)
        assert "map 't_flags'" in str(ei.value) and "EXIST" in str(ei.value)
        m.update(1, 12, UpdateFlag.EXIST)
        m.update(3, 30, UpdateFlag.ANY)
        assert dict(m.items()) == {1: 12, 3: 30}


def test_full_hash_map():
    with Map.create("hash", 4, 4, 2, key="I", value="I") as m:
        m[1], m[2] = 1, 2
        with pytest.raises(BPFError) as ei:
            m[3] = 3
        assert ei.value.errno == errno.E2BIG
        m[2] = 22  # replacing still works when full
        assert m[2] == 22


def test_lookup_and_delete():
    with Map.create("hash", 4, 4, 4, key="I", value="I") as m:
        m[7] = 70
        assert m.lookup_and_delete(7) == 70
        assert 7 not in m
        with pytest.raises(MapKeyError):
            m.lookup_and_delete(7)


def test_iteration_survives_deletion():
    with Map.create("hash", 4, 8, 1000, key="I", value="Q") as m:
        for i in range(1000):
            m[i] = i * 3
        assert dict(m.items()) == {i: i * 3 for i in range(1000)}
        seen = 0
        for k in m:
            del m[k]
            seen += 1
        assert seen == 1000
        assert list(m) == [] and list(m.items()) == []


def test_items_values_clear():
    with Map.create("hash", 4, 4, 16, key="I", value="I") as m:
        for i in range(10):
            m[i] = i + 100
        assert sorted(m.values()) == list(range(100, 110))
        assert sorted(m.items()) == [(i, i + 100) for i in range(10)]
        m.clear()
        assert list(m) == []


def test_freeze():
    with Map.create("array", 4, 4, 2, name="t_frozen", key="I", value="I") as m:
        m[0] = 5
        assert m.info().frozen is False
        m.freeze()
        assert m.info().frozen is True
        with pytest.raises(BPFError) as ei:
            m[0] = 6
        assert ei.value.errno == errno.EPERM and "map 't_frozen'" in str(ei.value)
        assert m[0] == 5  # reads still work


# -- keys and values: codecs ------------------------------------------------------------------

class Pair(ctypes.Structure):
    _fields_ = [("a", ctypes.c_uint32), ("b", ctypes.c_uint16)]


def test_struct_format_codecs():
    with Map.create("hash", 4, 16, 4, key="I", value="<I12s") as m:
        m[1] = (5, b"hello")
        assert m[1] == (5, b"hello" + b"\0" * 7)
        with pytest.raises(UsageError, match="does not pack"):
            m[2] = 5  # a two-field format wants a tuple
        with pytest.raises(UsageError):
            m["x"] = (1, b"")


def test_ctypes_codecs():
    assert ctypes.sizeof(Pair) == 8
    with Map.create("hash", 4, 8, 4, key=ctypes.c_uint32, value=Pair) as m:
        m[1] = Pair(1, 2)
        m[2] = (3, 4)
        got = m[2]
        assert isinstance(got, Pair) and (got.a, got.b) == (3, 4)
        assert (m[1].a, m[1].b) == (1, 2)
        assert sorted(k.value for k in m) == [1, 2]


def test_ctypes_objects_into_raw_map():
    with Map.create("hash", 4, 8, 4) as m:
        m[ctypes.c_uint32(1)] = Pair(7, 8)
        assert Pair.from_buffer_copy(m[1]).a == 7


def test_custom_codec_object():
    class Upper:
        size = 4

        def put(self, buf, off, value):
            buf[off:off + 4] = value.upper().encode().ljust(4, b"\0")

        def get(self, buf, off):
            return bytes(buf[off:off + 4]).rstrip(b"\0").decode()

    with Map.create("hash", 4, 4, 4, key=Upper(), value=Upper()) as m:
        m["ab"] = "cd"
        assert m["AB"] == "CD"


def test_wrong_sizes_are_usage_errors():
    with Map.create("hash", 4, 8, 4, name="t_sizes") as m:
        with pytest.raises(UsageError) as ei:
            m[b"abc"] = b"12345678"
        assert "map 't_sizes'" in str(ei.value) and "4 bytes" in str(ei.value)
        with pytest.raises(UsageError) as ei:
            m[1] = b"123"
        assert "map 't_sizes'" in str(ei.value) and "8 bytes" in str(ei.value)
        with pytest.raises(UsageError, match="does not fit"):
            m[2**40] = 1
        with pytest.raises(UsageError):
            m[1.5] = 1
        with pytest.raises(UsageError) as ei:
            m[1] = ctypes.c_uint32(1)  # a ctypes object of the wrong size
        assert "8 bytes" in str(ei.value)
    with pytest.raises(UsageError) as ei:
        Map.create("hash", 4, 4, 4, name="t_codec", key="Q")
    assert "map 't_codec'" in str(ei.value) and "4 bytes" in str(ei.value) and "8" in str(ei.value)
    with pytest.raises(UsageError):
        Map.create("hash", 4, 4, 4, value=Pair)


# -- batch operations -------------------------------------------------------------------------

def test_hash_batch_round_trip():
    with Map.create("hash", 4, 8, 1000, key="I", value="Q") as m:
        assert m.update_batch(list(range(500)), [i * 2 for i in range(500)]) == 500
        keys, values = m.lookup_batch(chunk=64)
        assert dict(zip(keys, values)) == {i: i * 2 for i in range(500)}
        assert len(keys) == 500
        assert m.delete_batch(list(range(100))) == 100
        assert sorted(m) == list(range(100, 500))
        kraw, vraw, n = m.lookup_batch(raw=True)
        assert n == 400 and len(kraw) == 400 * 4 and len(vraw) == 400 * 8
        assert sorted(struct.unpack(f"={n}I", kraw)) == list(range(100, 500))
        keys, values = m.lookup_batch(delete=True)
        assert len(keys) == 400 and list(m) == []


def test_array_batch_with_buffers():
    import array
    with Map.create("array", 4, 4, 16, key="I", value="I") as m:
        keys = array.array("I", range(16))
        vals = array.array("I", range(100, 116))
        assert m.update_batch(keys, vals) == 16
        assert m.lookup_batch() == (list(range(16)), list(range(100, 116)))
        assert m.update_batch(struct.pack("=2I", 0, 1), struct.pack("=2I", 7, 8)) == 2
        assert m[0] == 7 and m[1] == 8
        with pytest.raises(UsageError):
            m.update_batch([1, 2], [1])


def test_batch_reports_partial_update():
    with Map.create("hash", 4, 4, 2, name="t_partial", key="I", value="I") as m:
        with pytest.raises(BPFError) as ei:
            m.update_batch([1, 2, 3], [1, 1, 1])
        assert ei.value.errno == errno.E2BIG
        assert "map 't_partial'" in str(ei.value) and "2 of 3" in str(ei.value)
        assert dict(m.items()) == {1: 1, 2: 1}


def test_batch_elem_flags_only_take_f_lock():
    # the kernel's batch update accepts only BPF_F_LOCK per element, not NOEXIST/EXIST
    with Map.create("hash", 4, 4, 8, key="I", value="I") as m:
        with pytest.raises(BPFError) as ei:
            m.update_batch([1, 2], [1, 1], elem_flags=UpdateFlag.NOEXIST)
        assert ei.value.errno == errno.EINVAL
        assert list(m) == []


def test_batch_fallback_devmap():
    lo = socket.if_nametoindex("lo")
    assert not features.map_batch(MapType.DEVMAP)
    with Map.create("devmap", 4, 4, 4, key="I") as m:
        assert m.update_batch([0, 2], [lo, lo]) == 2
        assert m.lookup_batch() == ([0, 2], [lo, lo])
        assert m.delete_batch([0]) == 1
        assert m.lookup_batch() == ([2], [lo])


def test_batch_fallback_queue():
    with Map.create("queue", 0, 4, 8, value="I") as q:
        for v in (3, 1, 2):
            q.push(v)
        with pytest.raises(UsageError, match="queue"):
            q.lookup_batch()
        _, values = q.lookup_batch(delete=True)
        assert values == [3, 1, 2]
        assert q.peek() is None


# -- mmap -------------------------------------------------------------------------------------

def test_mmap_array_both_ways():
    with Map.create("array", 4, 8, 8, flags=MapFlag.MMAPABLE, key="I", value="Q") as m:
        mm = m.mmap()
        try:
            assert len(mm) == PAGE
            struct.pack_into("=Q", mm, 3 * 8, 42)
            assert m[3] == 42
            m[5] = 99
            assert struct.unpack_from("=Q", mm, 5 * 8)[0] == 99
            with pytest.raises(BPFError) as ei:  # writable mapping blocks freezing
                m.freeze()
            assert ei.value.errno == errno.EBUSY
        finally:
            mm.close()
        m.freeze()
        with pytest.raises(BPFError) as ei:
            m.mmap()
        assert ei.value.errno == errno.EPERM and "read-only" in str(ei.value)
        ro = m.mmap(writable=False)
        try:
            assert struct.unpack_from("=Q", ro, 3 * 8)[0] == 42
        finally:
            ro.close()


def test_mmap_needs_mmapable():
    with Map.create("array", 4, 4, 4, name="t_nommap") as m:
        with pytest.raises(UsageError, match="BPF_F_MMAPABLE") as ei:
            m.mmap()
        assert "t_nommap" in str(ei.value)


# -- opening existing maps, info ----------------------------------------------------------------

def test_from_id_and_from_fd():
    with Map.create("hash", 4, 4, 4, name="t_byid", key="I", value="I") as m:
        m[1] = 11
        with Map.from_id(m.id, key="I", value="I") as again:
            assert again.name == "t_byid" and again[1] == 11
            assert again.fd != m.fd and again.id == m.id
        with Map.from_fd(m.fd) as dup:
            assert dup.fd != m.fd and dup.id == m.id
        assert not m.closed and m[1] == 11  # from_fd duplicated, closing it left ours open


def test_from_id_missing():
    with Map.create("array", 4, 4, 1) as m:
        gone = m.id
    assert wait_gone(gone)
    with pytest.raises(BPFError) as ei:
        Map.from_id(gone)
    assert ei.value.errno == errno.ENOENT and str(gone) in str(ei.value)


def test_from_name():
    name = f"t_n{os.getpid() % 100000}"
    with Map.create("hash", 4, 4, 4, name=name) as m:
        with Map.from_name(name) as again:
            assert again.id == m.id
        with Map.create("hash", 4, 4, 4, name=name) as twin:
            with pytest.raises(BPFError) as ei:
                Map.from_name(name)
            msg = str(ei.value)
            assert str(m.id) in msg and str(twin.id) in msg
    with pytest.raises(BPFError) as ei:
        Map.from_name("t_no_such_map_")
    assert ei.value.errno == errno.ENOENT


def test_list_maps_sees_ours():
    with Map.create("hash", 4, 4, 4, name="t_listed") as m:
        found = [i for i in list_maps() if i.id == m.id]
        assert len(found) == 1 and found[0].name == "t_listed"
        assert found[0].type == MapType.HASH


def test_info_fields():
    with Map.create("lru_hash", 8, 16, 32, name="t_info", flags=MapFlag.NO_COMMON_LRU) as m:
        info = m.info()
        assert info.type == MapType.LRU_HASH
        assert (info.key_size, info.value_size, info.max_entries) == (8, 16, 32)
        assert info.flags & MapFlag.NO_COMMON_LRU
        assert info.name == "t_info" and m.name == "t_info"
        assert info.btf_id == 0 and info.ifindex == 0 and info.frozen is False
        assert info.id == m.id


# -- pinning ------------------------------------------------------------------------------------

def test_pin_open_unpin(pin_dir):
    path = pin_dir / "m"
    with Map.create("hash", 4, 4, 4, name="t_pinned", key="I", value="I") as m:
        m[1] = 2
        m.pin(path)
        assert path.exists()
        mid = m.id
    with Map.from_pin(path, key="I", value="I") as again:  # the pin kept it alive
        assert again.id == mid and again[1] == 2
        assert mid in Map.ids()
    Map.unpin(path)
    assert not path.exists()
    assert wait_gone(mid)


def test_pin_outside_bpffs(tmp_path):
    with Map.create("array", 4, 4, 1, name="t_nobpffs") as m:
        with pytest.raises(BPFError) as ei:
            m.pin(tmp_path / "m")
        msg = str(ei.value)
        assert "not on a bpffs mount" in msg and "map 't_nobpffs'" in msg
        assert not (tmp_path / "m").exists()


def test_pin_onto_existing_path(pin_dir):
    path = pin_dir / "taken"
    with Map.create("array", 4, 4, 1) as a, Map.create("array", 4, 4, 1, name="t_second") as b:
        a.pin(path)
        with pytest.raises(BPFError) as ei:
            b.pin(path)
        assert ei.value.errno == errno.EEXIST
        assert "exists" in str(ei.value) and "t_second" in str(ei.value)
        with Map.from_pin(path) as again:
            assert again.id == a.id


def test_pin_into_missing_directory(pin_dir):
    with Map.create("array", 4, 4, 1) as m:
        with pytest.raises(BPFError) as ei:
            m.pin(pin_dir / "no" / "such" / "m")
        assert ei.value.errno == errno.ENOENT


def test_from_pin_missing(pin_dir):
    path = pin_dir / "nothing-here"
    with pytest.raises(BPFError) as ei:
        Map.from_pin(path)
    assert ei.value.errno == errno.ENOENT
    assert str(path) in str(ei.value) and "nothing is pinned" in str(ei.value)


# -- lifetime -----------------------------------------------------------------------------------

def test_context_manager_closes():
    with Map.create("hash", 4, 4, 4, name="t_ctx", key="I", value="I") as m:
        m[1] = 1
        mid = m.id
        assert not m.closed
    assert m.closed
    for use in (lambda: m[1], lambda: m.update(1, 2), lambda: 1 in m, lambda: m.delete(1),
                lambda: list(m), lambda: m.info(), lambda: m.fd):
        with pytest.raises(ValueError):
            use()
    m.close()  # idempotent
    assert wait_gone(mid)


def test_closed_map_never_reaches_a_reused_fd():
    m = Map.create("hash", 4, 4, 4, key="I", value="I")
    old = m.fd
    m.close()
    with Map.create("hash", 4, 4, 4, key="I", value="I") as other:
        other[1] = 1
        assert other.fd == old  # the lowest free fd number is reused
        with pytest.raises(ValueError):
            m[1]
        with pytest.raises(ValueError):
            m[1] = 5
        assert other[1] == 1


def test_id_gone_after_last_reference():
    m = Map.create("array", 4, 4, 1)
    mid = m.id
    other = Map.from_id(mid)
    m.close()
    time.sleep(0.05)
    assert mid in Map.ids()  # still referenced by `other`
    del other  # the finalizer closes a forgotten fd
    assert wait_gone(mid)


def test_bad_key_type_is_a_usage_error_on_every_access_path():
    with Map.create("hash", 4, 4, 4, name="badkey", key="I") as m:
        for op in (lambda: m["x"], lambda: m.update("x", 1), lambda: "x" in m,
                   lambda: m.lookup_and_delete("x"), lambda: m.delete("x"),
                   lambda: m.update("x", b"1234"), lambda: m.update(-1, b"1234")):
            with pytest.raises(UsageError, match="map 'badkey': key: .* does not pack as 'I'"):
                op()


def test_exact_bytes_values_with_a_struct_key():
    """Key and value packed in one step; any other value goes through the value codec."""
    with Map.create("hash", 4, 4, 4, name="t_pair", key="I") as m:
        m[7] = b"abcd"
        assert m[7] == b"abcd" and m.lookup(7) == b"abcd"
        m[7] = bytearray(b"efgh")
        assert m[7] == b"efgh"
        m[7] = 0x64636261
        assert m[7] == (0x64636261).to_bytes(4, sys.byteorder)
        for bad in (b"abc", b"abcde"):
            with pytest.raises(UsageError, match="map 't_pair': value must be 4 bytes"):
                m[7] = bad
        assert m[7] == (0x64636261).to_bytes(4, sys.byteorder)  # untouched by the refusals


# -- threads and tracing ---------------------------------------------------------------------

@pytest.fixture
def fast_switching():
    """Let the interpreter switch threads as often as it can."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("value", [None, "Q"], ids=["raw", "codec"])
def test_threads_never_see_each_others_keys_or_values(fast_switching, value):
    """Four threads update, read back and delete their own keys at once (the first on the
    map's fast buffers): a key or value buffer shared between threads would mix them up."""
    nthreads, per = 4, 2000
    failures: list[str] = []
    with Map.create("hash", 4, 8, nthreads * per, name="t_threads", key="I",
                    value=value) as m:

        def encode(k: int):
            return k * 7 if value else (k * 7).to_bytes(8, sys.byteorder)

        def work(t: int) -> None:
            try:
                for i in range(per):
                    k = t * per + i
                    m[k] = encode(k)
                    got = m[k]
                    if got != encode(k):
                        failures.append(f"thread {t}: m[{k}] = {got!r}")
                    if i % 2:
                        del m[k]
                    else:
                        m.update(k, encode(k), UpdateFlag.EXIST)
            except Exception as e:  # noqa: BLE001 - reported below
                failures.append(f"thread {t}: {e!r}")

        others = [threading.Thread(target=work, args=(t,)) for t in range(1, nthreads)]
        for th in others:
            th.start()
        work(0)  # the creating thread, meanwhile
        for th in others:
            th.join()
        assert failures == []
        assert dict(m.items()) == {k: encode(k) for k in range(0, nthreads * per, 2)}


def test_close_reaches_every_threads_buffers():
    """After close(), a thread that used the map gets ValueError, never the reused fd."""
    m = Map.create("hash", 4, 4, 4, key="I", value="I")
    used, closed, outcome = threading.Event(), threading.Event(), []

    def other_thread() -> None:
        m[1] = 1  # makes this thread's buffers, holding the fd
        used.set()
        closed.wait(10)
        try:
            m[1] = 2
        except Exception as e:  # noqa: BLE001 - checked below
            outcome.append(e)

    th = threading.Thread(target=other_thread)
    th.start()
    used.wait(10)
    old = m.fd
    m.close()
    with Map.create("hash", 4, 4, 4, key="I", value="I") as other:
        assert other.fd == old  # the lowest free fd number is reused
        closed.set()
        th.join()
        assert len(outcome) == 1 and isinstance(outcome[0], ValueError)
        assert 1 not in other


LIBC_PATH = """
import errno, types
import pytest
from pybpf.errors import BPFError, MapKeyError
from pybpf.maps import Map
from pybpf.sys.trace import tracing
from pybpf.sys.uapi import UpdateFlag
lines = []
with Map.create("hash", 4, 8, 2, name="t_libc", key="I") as m, tracing(lines):
    m[1] = b"abcdefgh"
    assert not isinstance(m._own.lookup, types.BuiltinFunctionType)
    m.update(2, b"ABCDEFGH", UpdateFlag.NOEXIST)
    assert m[1] == b"abcdefgh" and m.lookup(2) == b"ABCDEFGH"
    with pytest.raises(BPFError) as ei:
        m[3] = b"xxxxxxxx"
    assert ei.value.errno == errno.E2BIG
    del m[1]
    with pytest.raises(MapKeyError):
        del m[1]
assert len(lines) == 7 and lines[-1].endswith("= -1 ENOENT (No such file or directory)")
"""


def test_element_access_with_machine_code_turned_off():
    """PYBPF_MACHINE_CODE=0 (also what systems refusing executable memory get): the libc
    syscall() path, with the same answers, in a process started that way."""
    env = dict(os.environ, PYBPF_MACHINE_CODE="0")
    res = subprocess.run([sys.executable, "-c", LIBC_PATH], env=env, capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr


def test_trace_sees_every_element_call():
    lines: list[str] = []
    with Map.create("hash", 4, 8, 4, name="t_traced", key="I") as m:
        with tracing(lines):
            m[1] = b"abcdefgh"
            assert m[1] == b"abcdefgh"
            m.update(1, b"ABCDEFGH", UpdateFlag.EXIST)
            with pytest.raises(MapKeyError):
                m[2]
            del m[1]
            m[3] = b"xxxxxxxx"  # flags are back to BPF_ANY
        fd = m.fd
    assert [line.split(" = ")[1] for line in lines] == [
        "0", "0", "0", "-1 ENOENT (No such file or directory)", "0", "0"]
    assert [line.split(",")[0] for line in lines] == [
        "bpf(BPF_MAP_UPDATE_ELEM", "bpf(BPF_MAP_LOOKUP_ELEM", "bpf(BPF_MAP_UPDATE_ELEM",
        "bpf(BPF_MAP_LOOKUP_ELEM", "bpf(BPF_MAP_DELETE_ELEM", "bpf(BPF_MAP_UPDATE_ELEM"]
    assert all(f"{{map_fd={fd}, key=0x" in line for line in lines)
    assert "flags=BPF_EXIST}, 32)" in lines[2] and "flags=BPF_ANY}, 32)" in lines[5]
    assert lines[4].endswith("}, 16) = 0")  # DELETE_ELEM's attr ends at key
