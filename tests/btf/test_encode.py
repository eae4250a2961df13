"""Encoding BTF: round trips through the parser and the kernel's BTF_LOAD."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybpf.btf import BTF, Spec, types as T
from pybpf.btf.encode import encode, encode_spec
from pybpf.errors import BPFError, BTFError
from tests.btf.conftest import as_bpftool, btf_section


def _built() -> list[T.Type]:
    i = T.Int("int", 4, T.INT_SIGNED)
    c = T.Int("char", 1, T.INT_SIGNED)
    node = T.Struct("node", 24, [])
    node.members += [T.Member("value", i, 0), T.Member("flags", T.Int("unsigned int", 4), 32, 3),
                     T.Member("next", T.Pointer(node), 64),
                     T.Member("name", T.Array(c, i, 8), 128)]
    e = T.Enum("colour", 4, [T.EnumValue("RED", 0), T.EnumValue("NEG", -1)], signed=True)
    e64 = T.Enum64("wide", 8, [T.EnumValue("BIG", 1 << 40)])
    proto = T.FuncProto(i, [T.FuncParam("n", T.Pointer(node)), T.FuncParam("count", i)])
    func = T.Func("walk", proto, T.LINKAGE_GLOBAL)
    var = T.Var("head", node, T.LINKAGE_GLOBAL)
    sec = T.Datasec(".data", 24, [T.VarSecinfo(var, 0, 24)])
    return [i, node, e, e64, func, T.DeclTag("tagged", func, 0), sec,
            T.Typedef("node_t", T.Const(T.Volatile(node))), T.Float("double", 8),
            T.Pointer(T.TypeTag("user", i)), T.Fwd("later", union=True),
            T.Pointer(T.Restrict(T.Pointer(i)))]


def test_built_types_round_trip_and_load() -> None:
    types = _built()
    blob = encode(types)
    spec = Spec.parse(blob)
    # the given types get ids 1..n in order; what they refer to follows
    assert [(spec.type_by_id(n).kind, spec.type_by_id(n).name) for n in range(1, len(types) + 1)] \
        == [(t.kind, t.name) for t in types]
    assert all(t.id is None for t in types)  # the encoder does not renumber the caller's types
    node = spec.find("node", T.Struct)
    assert node.id == 2 and node.member("next").type.target is node
    assert node.member("flags").bitfield_size == 3
    assert [(v.name, v.value) for v in spec.find("colour").values] == [("RED", 0), ("NEG", -1)]
    assert spec.find("wide").values[0].value == 1 << 40
    assert spec.find("walk").linkage == T.LINKAGE_GLOBAL
    assert spec.find("tagged").component_idx == 0
    assert spec.find("later").union
    assert encode(list(spec)[1:]) == blob           # parse . encode is the identity
    assert encode_spec(spec) == blob
    with BTF.load(blob, "pybpf-test-built") as btf:
        assert btf.raw() == blob                     # the kernel keeps exactly these bytes
        assert as_bpftool(btf.spec().find("node")) == as_bpftool(node)


def test_encoder_numbers_new_types_only() -> None:
    i = T.Int("int", 4, T.INT_SIGNED)
    p = T.Pointer(i)
    blob = encode([p])                               # referenced types are appended
    spec = Spec.parse(blob)
    assert len(spec) == 3 and spec.type_by_id(1).target is spec.type_by_id(2)
    assert p.id is None and i.id is None
    assert encode([i, i, p]) == encode([i, p])       # each type once


def test_clang_object_reencodes_byte_identical(kinds_obj: Path, kinds_spec: Spec) -> None:
    raw = btf_section(kinds_obj)
    assert encode_spec(kinds_spec) == raw
    again = Spec.parse(encode(list(kinds_spec)[1:]))   # fresh string table: same meaning
    assert [as_bpftool(t) for t in again][1:] == [as_bpftool(t) for t in kinds_spec][1:]


def test_vmlinux_reencodes_byte_identical() -> None:
    spec = Spec.parse(Path("/sys/kernel/btf/vmlinux").read_bytes(), name="vmlinux")
    assert encode_spec(spec) == spec.raw


def test_big_endian_encoding() -> None:
    blob = encode(_built(), byte_order="big")
    spec = Spec.parse(blob)
    assert spec.byte_order == "big" and blob[:2] == b"\xeb\x9f"
    little = Spec.parse(encode(_built()))
    assert [as_bpftool(t) for t in spec] == [as_bpftool(t) for t in little]
    assert encode_spec(spec) == blob


def test_invalid_btf_load_error_carries_the_kernel_log() -> None:
    i = T.Int("int", 4, T.INT_SIGNED)
    bad = T.Struct("bad", 4, [T.Member("x", i, 0), T.Member("y", i, 32)])  # y past the end
    with pytest.raises(BPFError) as err:
        BTF.load(encode([bad]), "pybpf-test-bad")
    assert err.value.errno == 22 and "BPF_BTF_LOAD" in str(err.value)
    assert "Member exceeds struct_size" in str(err.value)


def test_encode_errors_are_btf_errors() -> None:
    with pytest.raises(BTFError, match="not a BTF type"):
        encode(["int"])  # type: ignore[list-item]
    with pytest.raises(BTFError, match="NUL"):
        encode([T.Int("a\0b", 4)])
    with pytest.raises(BTFError, match="out of range"):
        encode([T.Int("int", -4)])
    with pytest.raises(BTFError, match="byte order"):
        encode([T.Int("int", 4)], byte_order="middle")
    many = T.Enum("e", 4, [T.EnumValue(f"V{n}", n) for n in range(70000)])
    with pytest.raises(BTFError, match="65535"):
        encode([many])
