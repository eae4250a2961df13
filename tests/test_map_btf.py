"""Maps convert keys and values by their BTF types by default (objects, and maps opened from
the kernel); raw bytes on request; event readers take a record type by its C name."""
from __future__ import annotations

import os
import struct

import pytest

from pybpf.btf import values
from pybpf.elf import ObjectSpec, load
from pybpf.errors import BTFError, UsageError
from pybpf.events import PerfBuffer, RingBuffer
from pybpf.maps import Map

PACKET = bytes(64)
FLOW = {"saddr": 0x0100007F, "port": 443, "proto": 6, "comm": "curl"}


@pytest.fixture
def obj(bpf_objects):
    with load(ObjectSpec.from_file(bpf_objects["map_values"])) as coll:
        yield coll


def test_int_map_reads_as_ints(obj):
    counts = obj.maps["counts"]
    assert dict(counts.items()) == {}
    obj.programs["emit"].test_run(PACKET)
    assert dict(counts.items()) == {0: 1}
    obj.programs["emit"].test_run(PACKET)
    assert counts[0] == 2 and counts.get(1) is None and list(counts.keys()) == [0]
    counts[5] = 7
    assert counts.lookup_batch() == ([0, 5], [2, 7]) or \
        counts.lookup_batch() == ([5, 0], [7, 2])
    keys, vals, n = counts.lookup_batch(raw=True)  # packed bytes stay on request
    assert n == 2 and sorted(struct.iter_unpack("=I", keys)) == [(0,), (5,)]
    assert sorted(struct.iter_unpack("=Q", vals)) == [(2,), (7,)]


def test_struct_keys_and_values(obj):
    flows = obj.maps["flows"]
    flows[FLOW] = {"packets": 3, "name": "web", "kind": "KIND_TCP", "ports": [80, 443]}
    (key, value), = flows.items()
    assert key.to_dict() == FLOW and key.comm == "curl"
    assert (value.packets, value.name, value.ports) == (3, "web", [80, 443])
    assert value.kind == 6 and value.kind.name == "KIND_TCP"
    assert isinstance(value, values.StructValue) and repr(value).startswith("struct stats(")
    # back in: a decoded record, a dict, a tuple in member order, or the raw bytes
    flows[key] = value
    assert flows[key] == value
    flows[key] = dict(value.to_dict(), packets=4)
    assert flows[key].packets == 4
    flows[(FLOW["saddr"], 443, 6, "curl")] = (5, "tuple", 17, [1, 2])
    assert flows[FLOW].to_dict() == {"packets": 5, "name": "tuple", "kind": 17, "ports": [1, 2]}
    with flows.raw() as raw:
        packed = raw[values.encode(key._type, key)]
    assert isinstance(packed, bytes) and len(packed) == 24
    flows[key] = {"packets": 0}
    flows[key] = packed
    assert flows[key].packets == 5 and flows[key].name == "tuple"
    with pytest.raises(BTFError, match="struct stats has no member 'nope'"):
        flows[key] = {"nope": 1}


def test_raw_views_and_maps_without_btf(obj):
    obj.programs["emit"].test_run(PACKET)
    with obj.maps["counts"].raw() as raw:
        assert dict(raw.items()) == {b"\0\0\0\0": (1).to_bytes(8, "little")}
    with Map.create("hash", 4, 8, 4, name="no_btf") as plain:  # no BTF: bytes as before
        plain[b"\1\0\0\0"] = bytes(8)
        assert dict(plain.items()) == {b"\1\0\0\0": bytes(8)}


def test_maps_opened_from_the_kernel_use_its_btf(obj, pin_dir):
    obj.programs["emit"].test_run(PACKET)
    obj.maps["flows"][FLOW] = {"packets": 9, "name": "k", "kind": 17, "ports": [7, 8]}
    counts_id = obj.maps["counts"].id
    with Map.from_id(counts_id) as m:
        assert dict(m.items()) == {0: 1}
    with Map.from_id(counts_id, raw=True) as m:
        assert dict(m.items()) == {b"\0\0\0\0": (1).to_bytes(8, "little")}
    obj.maps["flows"].pin(pin_dir / "flows")
    try:
        with Map.from_pin(pin_dir / "flows") as m:
            (k, v), = m.items()
            assert k.to_dict() == FLOW and v.kind.name == "KIND_UDP" and v.ports == [7, 8]
            assert m.btf is not None and m.btf.find("flow") is k._type
    finally:
        os.unlink(pin_dir / "flows")


def test_ring_and_perf_buffers_take_a_type_name(obj):
    with RingBuffer(obj.maps["events"], decode="struct event") as rb, \
            PerfBuffer(obj.maps["perf_events"], decode="struct event") as pb:
        obj.programs["emit"].test_run(PACKET)
        ring = rb.read(timeout_ms=1000)
        perf = pb.read(timeout_ms=1000)
    assert (ring[0].pid, ring[0].comm, ring[0].seq) == (42, "pybpf-ring", 1)
    assert (perf[0].pid, perf[0].comm, perf[0].seq) == (43, "pybpf-perf", 1)
    assert len(ring) == 2  # and struct local_only's record, zero-padded to struct event
    assert ring[1].pid == 1 and ring[1].comm.startswith("\2")


def test_a_type_left_out_of_the_object_is_explained(obj):
    with pytest.raises(BTFError, match="no type struct local_only: clang .* only by local "
                                       "variables .* from a global .* __type"):
        RingBuffer(obj.maps["events"], decode="struct local_only")
    with Map.create("ringbuf", 0, 0, 4096) as rb_map:
        with pytest.raises(UsageError, match="has no BTF"):
            RingBuffer(rb_map, decode="struct event")
