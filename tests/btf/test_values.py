"""BTF-driven values: decode/encode, and bpftool's map-dump formatting of the same bytes."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from pybpf.btf import BTF, Spec, types as T, values as V
from pybpf.btf.encode import encode
from pybpf.errors import BTFError
from pybpf.maps import Map
from pybpf.btf.sanitize import fixup_datasecs
from tests.btf.conftest import btf_section, elf_facts
from tests.conftest import BPF_SRC, MULTIARCH_INCLUDE

FULL = dict(comm="hi\"x'", raw=[1, 2, 3, 255], bytes=[1, -2, 0, 0], s=-2, us=65535, i=-7,
            ui=7, ll=-(2 ** 63), ull=2 ** 64 - 1, e="SMALL_NEG", e_unknown=77, eb="BIG_HIGH",
            bf=dict(a=5, b=-3, c=2 ** 40 - 1, flag=1, tail=9), alias=-1,
            grid=[[1, 2], [3, 4]], ptr=0xFFFF888012345678,
            nested=dict(pid=1, uid=2, command="cmd", message="msg"), ok=True, after=0,
            wide=2 ** 100 + 5, td=12, cvi=-1)
SPARSE = dict(comm="\x01\x7f", e="SMALL_A", eb=3, bf=dict(b=15), half=-2,
              nested=dict(command="a" * 16))  # unterminated string: bpftool prints bytes
VALUES = [FULL, SPARSE, {}]


@pytest.fixture(scope="module")
def dump_value(kinds_spec: Spec) -> T.Struct:
    return kinds_spec.find("dump_value", T.Struct)


def test_decode_struct(dump_value: T.Struct) -> None:
    v = V.decode(dump_value, V.encode(dump_value, FULL))
    assert v.comm == "hi\"x'" and v.raw == [1, 2, 3, 255] and v.s == -2 and v.us == 65535
    assert v.ll == -(2 ** 63) and v.ull == 2 ** 64 - 1 and v.ok is True
    assert v.e == 4294967293 and v.e.name == "SMALL_NEG" and isinstance(v.e, V.EnumInt)
    assert v.e_unknown == 77 and not isinstance(v.e_unknown, V.EnumInt)
    assert v.eb.name == "BIG_HIGH"
    assert (v.bf.a, v.bf.b, v.bf.c, v.bf.flag, v.bf.tail) == (5, -3, 2 ** 40 - 1, 1, 9)
    assert v.alias == -1 and v.half == -1           # members of the anonymous union
    assert v.grid == [[1, 2], [3, 4]] and v.ptr == 0xFFFF888012345678
    assert v.nested.command == "cmd" and v.wide == 2 ** 100 + 5 and v.cvi == -1
    d = v.to_dict()
    assert d["nested"] == {"pid": 1, "uid": 2, "command": "cmd", "message": "msg"}
    assert d["bf"]["c"] == 2 ** 40 - 1 and dict(v)["s"] == -2 and v["ui"] == 7
    assert list(v) == list(v.keys()) and len(v) == len(d)
    assert json.dumps(d)  # plain JSON-able data
    assert v == d and "struct dump_value(comm=" in repr(v)


@pytest.mark.parametrize("value", VALUES)
def test_encode_decode_round_trip(dump_value: T.Struct, value: dict) -> None:
    raw = V.encode(dump_value, value)
    assert len(raw) == T.sizeof(dump_value)
    v = V.decode(dump_value, raw)
    assert V.encode(dump_value, v) == raw
    assert V.encode(dump_value, v.to_dict()) == raw


def test_scalars_and_top_level_types(kinds_spec: Spec) -> None:
    s = kinds_spec
    assert V.decode(s.find("int"), (-5).to_bytes(4, "little", signed=True)) == -5
    assert V.decode(s.find("u64_t"), b"\xff" * 8) == 2 ** 64 - 1
    assert V.decode(s.find("_Bool"), b"\x01") is True
    assert V.decode(s.find("double"), V.encode(s.find("double"), 2.5)) == 2.5
    small = s.find("small", T.Enum)
    assert V.decode(small, V.encode(small, "SMALL_B")).name == "SMALL_B"
    assert V.encode(small, -3) == V.encode(small, "SMALL_NEG")
    kinds = s.find("kinds", T.Struct)
    k = V.decode(kinds, V.encode(kinds, {"name": "x", "f": 1.5, "u": {"f": 2.0}, "anon": {"y": 3}}))
    assert k.name == "x" and k.f == 1.5 and k.u.f == 2.0 and k.anon.y == 3 and k.anon.z == 3
    assert V.decode(kinds.member("matrix").type, bytes(range(24)))[1][2] == 0x17161514


def test_python_built_types_with_awkward_names() -> None:
    i = T.Int("int", 4, T.INT_SIGNED)
    s = T.Struct("odd", 12, [T.Member("keys", i, 0), T.Member("class", i, 32),
                             T.Member("to_dict", i, 64)])
    v = V.decode(s, V.encode(s, {"keys": 1, "class": 2, "to_dict": 3}))
    assert v["keys"] == 1 and v["class"] == 2 and v.to_dict() == {"keys": 1, "class": 2,
                                                                    "to_dict": 3}


def test_value_errors_name_the_field(dump_value: T.Struct) -> None:
    cases = [({"s": 40000}, r"struct dump_value\.s: 40000 does not fit signed 16 bits"),
             ({"nested": {"pid": "x"}}, r"dump_value\.nested\.pid: expected an int"),
             ({"comm": "123456789"}, r"dump_value\.comm: 9 bytes do not fit char\[8\]"),
             ({"e": "NOPE"}, r"dump_value\.e: enum small has no enumerator 'NOPE'"),
             ({"nope": 1}, "struct dump_value has no member 'nope'"),
             ({"grid": [[1, 2, 3]]}, r"dump_value\.grid\[0\]: 3 elements do not fit"),
             ({"bf": {"a": 8}}, r"dump_value\.bf\.a: 8 does not fit unsigned 3 bits"),
             (5, "expected a dict, tuple or struct value")]
    for value, match in cases:
        with pytest.raises(BTFError, match=match):
            V.encode(dump_value, value)
    with pytest.raises(BTFError, match="struct dump_value: 10 bytes, need"):
        V.decode(dump_value, bytes(10))
    with pytest.raises(BTFError, match="has no size|cannot be decoded"):
        V.decode(T.FuncProto(T.VOID, []), b"")


def test_self_containing_struct_is_an_error() -> None:
    s = T.Struct("loop", 8, [])
    s.members.append(T.Member("me", s, 0))
    with pytest.raises(BTFError):
        V.codec(s)


def _bpftool_dump(map_id: int, *args: str) -> str:
    return subprocess.run(["bpftool", *args, "map", "dump", "id", str(map_id)], check=True,
                          capture_output=True, text=True).stdout


def test_formatting_matches_bpftool_map_dump(kinds_spec: Spec, dump_value: T.Struct) -> None:
    key_t = kinds_spec.find("int")
    blob = encode([key_t, dump_value])
    with BTF.load(blob, "pybpf-test-values") as btf, \
            Map.create("hash", 4, T.sizeof(dump_value), 4, name="pybpf_values", btf=btf,
                       btf_key_type_id=1, btf_value_type_id=2) as m:
        mid = m.info().id
        for n, value in enumerate(VALUES):
            key, raw = V.encode(key_t, n - 1), V.encode(dump_value, value)
            m.clear()
            m[key] = raw
            entry = json.loads(_bpftool_dump(mid, "-j"))[0]["formatted"]
            assert entry == {"key": V.format_json(key_t, key),
                             "value": V.format_json(dump_value, raw)}
            plain = (f'[{{\n        "key": {V.format_plain(key_t, key)},\n        "value": '
                     f'{V.format_plain(dump_value, raw)}\n    }}\n]\n')
            assert _bpftool_dump(mid) == plain


def test_datasec_formatting_matches_bpftool(kinds_obj: Path) -> None:
    """Global-data maps (.data, .bss ...) have a DATASEC value type: bpftool prints
    {section: [{var: value}, ...]}."""
    spec = Spec.parse(fixup_datasecs(btf_section(kinds_obj), *elf_facts(kinds_obj)))
    sec = spec.find(".data.counters", T.Datasec)
    raw = V.encode(sec, {"counter": -7})
    assert V.decode(sec, raw) == {"counter": -7}
    with BTF.load(spec.raw, "pybpf-test-datasec") as btf, \
            Map.create("array", 4, sec.size, 1, name="pybpf_counters", btf=btf,
                       btf_value_type_id=sec.id) as m:
        m[b"\0\0\0\0"] = raw
        entry = json.loads(_bpftool_dump(m.info().id, "-j"))[0]["formatted"]
        assert entry == {"value": V.format_json(sec, raw)} == {
            "value": {".data.counters": [{"counter": -7}]}}
        assert _bpftool_dump(m.info().id) == \
            f'[{{\n        "value": {V.format_plain(sec, raw)}\n    }}\n]\n'


def test_enum64_from_vmlinux() -> None:
    e = next(t for t in Spec.vmlinux().find_all("perf_callchain_context") if t.kind.name == "ENUM64")
    raw = V.encode(e, "PERF_CONTEXT_USER")
    v = V.decode(e, raw)
    assert v.name == "PERF_CONTEXT_USER" and v == e.values[2].value & (2 ** 64 - 1)
    assert V.format_json(e, raw) == "PERF_CONTEXT_USER"
    assert V.format_json(e, (2 ** 64 - 2).to_bytes(8, "little")) == -2  # bpftool: jsonw_int


def test_big_endian_values(clang: str, tmp_path: Path, dump_value: T.Struct) -> None:
    obj = tmp_path / "btf_kinds.bpfeb.o"
    subprocess.run([clang, "-g", "-O2", "-target", "bpfeb", "-I", str(BPF_SRC), "-I",
                    MULTIARCH_INCLUDE, "-c", str(BPF_SRC / "btf_kinds.c"), "-o", str(obj)],
                   check=True)
    be = Spec.parse(btf_section(obj)).find("dump_value", T.Struct)
    for value in VALUES:
        raw_be, raw_le = V.encode(be, value), V.encode(dump_value, value)
        assert raw_be != raw_le or not value
        got, want = V.decode(be, raw_be).to_dict(), V.decode(dump_value, raw_le).to_dict()
        if "half" in value:  # the union's other member sees the other half of the int
            assert (got.pop("alias"), want.pop("alias")) == (-2 << 16, 0xFFFE)
        assert got == want
        if "half" not in value:
            assert V.format_json(be, raw_be) == V.format_json(dump_value, raw_le)
    assert V.encode(be, {"s": 1})[16:18] == b"\x00\x01"


def test_members_named_like_private_python_names() -> None:
    """task_struct.__state: stored under another slot name, read by its own name."""
    task = Spec.vmlinux().find("task_struct", T.Struct)
    data = bytearray(T.sizeof(task))
    state = task.member("__state")
    data[state.offset // 8] = 5
    v = V.decode(task, bytes(data))
    assert getattr(v, "__state") == 5 and v["__state"] == 5 and v.to_dict()["__state"] == 5
    with pytest.raises(AttributeError, match="no member 'nonexistent'"):
        getattr(v, "nonexistent")
