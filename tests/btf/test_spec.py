"""The BTF parser against clang's and the kernel's BTF, checked type by type with bpftool."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pybpf.btf import Spec, types as T
from pybpf.btf.encode import encode
from pybpf.errors import BTFError
from pybpf.sys.uapi import BtfKind
from tests.btf.conftest import (as_bpftool, assert_raw_same_as_bpftool, assert_same_as_bpftool,
                                btf_section)
from tests.conftest import BPF_SRC, MULTIARCH_INCLUDE

VMLINUX = Path("/sys/kernel/btf/vmlinux")
ALL_KINDS = {k for k in BtfKind if k not in (BtfKind.UNKN,) and k.name != "MAX"}


def test_clang_object_has_every_kind_clang_emits(kinds_spec: Spec) -> None:
    kinds = {t.kind for t in kinds_spec}
    # clang 14 encodes 64-bit enums as 8-byte ENUM (no ENUM64 before clang 15): vmlinux has them
    assert ALL_KINDS - kinds <= {BtfKind.ENUM64}
    assert kinds_spec.byte_order == "little"


def test_vmlinux_has_every_kind() -> None:
    assert {t.kind for t in Spec.vmlinux()} >= ALL_KINDS


def test_clang_object_matches_bpftool(kinds_obj: Path, kinds_spec: Spec) -> None:
    assert assert_same_as_bpftool(kinds_spec, kinds_obj) == len(kinds_spec) - 1
    assert assert_raw_same_as_bpftool(kinds_spec, kinds_obj) == len(kinds_spec) - 1
    small = kinds_spec.find("small", T.Enum)  # clang 14: no signed flag, -3 stored as u32
    assert small.values[2].value == 4294967293 and not small.signed


def test_clang_object_decoded(kinds_spec: Spec) -> None:
    s = kinds_spec
    bits = s.find("bits", T.Struct)
    assert [(m.name, m.offset, m.bitfield_size, T.skip_qualifiers(m.type).name)
            for m in bits.members] == [
        ("a", 0, 3, "unsigned int"), ("b", 3, 5, "int"), ("c", 8, 40, "unsigned long long"),
        ("flag", 48, 1, "_Bool"), ("tail", 56, 0, "unsigned char")]
    kinds = s.find("kinds", T.Struct)
    assert T.sizeof(kinds) == kinds.size == 216 and T.alignof(kinds) == 8
    assert T.sizeof(kinds.member("matrix").type) == 24
    assert kinds.member("name").type.nelems == 16
    b = T.skip_qualifiers(kinds.member("b").type)
    assert isinstance(b, T.Int) and b.encoding == T.INT_BOOL and b.size == 1
    cv = kinds.member("cv").type
    assert isinstance(cv, T.Const) and isinstance(cv.type, T.Volatile)
    assert isinstance(kinds.member("rp").type, T.Restrict)
    tagged = kinds.member("tagged").type
    assert isinstance(tagged.target, T.TypeTag) and tagged.target.name == "user"
    assert tagged.target.type.name == "int" and not tagged.target.attribute
    assert kinds.member("fwdu").type.target.union
    assert not kinds.member("fwd").type.target.union
    proto = kinds.member("fnptr").type.target
    assert isinstance(proto, T.FuncProto) and proto.variadic and proto.return_type is T.VOID
    anon = kinds.member("anon").type
    assert anon.name == "" and isinstance(anon.members[1].type, T.Union)
    assert [f.name for f in s.find_all("float")] == ["float"]
    assert s.find("double").size == 8
    assert {(v.name, v.value) for v in s.find("big", T.Enum).values} >= {("BIG_LOW", 1)}
    tags = {t.name: t for t in s if isinstance(t, T.DeclTag)}
    assert tags["member_tag"].type is kinds and tags["member_tag"].component_idx == 5
    assert tags["bits_struct"].type is bits and tags["bits_struct"].component_idx == -1
    helper = s.find("helper", T.Func)
    assert tags["param_tag"].type is helper and tags["param_tag"].component_idx == 0
    assert tags["var_tag"].type is s.find("global_kinds", T.Var)
    assert helper.linkage == T.LINKAGE_STATIC and s.find("prog").linkage == T.LINKAGE_GLOBAL
    assert [p.name for p in helper.proto.params] == ["x", "p"]
    assert s.find("ro_value").linkage == T.LINKAGE_STATIC
    secs = {t.name: t for t in s if isinstance(t, T.Datasec)}
    assert {".bss", ".data.counters", ".maps", ".rodata", "license"} <= set(secs)
    assert [v.type.name for v in secs[".data.counters"].vars] == ["counter"]
    assert secs[".bss"].size == 0  # clang leaves sizes to the loader (sanitize.fixup_datasecs)


def test_same_id_same_object(kinds_spec: Spec) -> None:
    kinds = kinds_spec.find("kinds", T.Struct)
    assert kinds_spec.type_by_id(kinds.id) is kinds
    assert kinds.member("self").type.target is kinds
    assert kinds_spec.type_by_id(0) is T.VOID


def test_vmlinux_matches_bpftool() -> None:
    spec = Spec.parse(VMLINUX.read_bytes(), name="vmlinux")  # a fresh parse, not the cache
    assert assert_same_as_bpftool(spec, VMLINUX) == len(spec) - 1 > 10000   # -j: every type
    # raw: 1 in 50 structs, unions, funcs, protos, pointers, consts, arrays, typedefs; all else
    assert assert_raw_same_as_bpftool(spec, VMLINUX, every=50) > 5000


def test_vmlinux_find() -> None:
    v = Spec.vmlinux()
    assert v is Spec.vmlinux()
    task = v.find("task_struct", T.Struct)
    assert task.size > 1000 and task.member("pid").type.name == "pid_t"
    assert v.find("task_struct") is task
    assert v.find("task_struct", BtfKind.STRUCT) is task
    assert v.find_all("task_struct", T.Union) == []
    with pytest.raises(BTFError, match="no type struct no_such_type_xyz"):
        v.find("no_such_type_xyz", T.Struct)
    both = {t.kind for t in v.find_all("u64")} | {t.kind for t in v.find_all("bpf_map")}
    assert BtfKind.TYPEDEF in both
    assert all(t.name == "bpf_prog" for t in v.find_all("bpf_prog"))


def test_names_ending_finds_strings_without_decoding() -> None:
    """``names_ending``: every string of the section ending with the suffix (a function's
    static variable is ``function.variable``), split BTF's base included; no type decoded."""
    v = Spec.vmlinux()
    names = v.names_ending("task_struct")
    assert "task_struct" in names and "put_task_struct" in names
    assert len(names) == len(set(names)) and all(n.endswith("task_struct") for n in names)
    assert v.names_ending("no_such_suffix_xyz") == []
    i = T.Int("int", 4, T.INT_SIGNED, 32)
    spec = Spec.parse(encode([i, T.Var("greet.__ev", i, T.LINKAGE_STATIC), T.Var("other", i)]))
    assert spec.names_ending("__ev") == ["greet.__ev"] and not spec._types
    assert [t.name for t in spec.find_all("greet.__ev", T.Var)] == ["greet.__ev"]


def test_big_endian_object_parses_identically(clang: str, tmp_path: Path,
                                              kinds_spec: Spec) -> None:
    obj = tmp_path / "btf_kinds.bpfeb.o"
    subprocess.run([clang, "-g", "-O2", "-target", "bpfeb", "-I", str(BPF_SRC), "-I",
                    MULTIARCH_INCLUDE, "-c", str(BPF_SRC / "btf_kinds.c"), "-o", str(obj)],
                   check=True)
    raw = btf_section(obj)
    assert raw[:2] == b"\xeb\x9f"
    be = Spec.parse(raw, name=str(obj))
    assert be.byte_order == "big" and len(be) == len(kinds_spec)
    assert [as_bpftool(t) for t in list(be)[1:]] == [as_bpftool(t) for t in list(kinds_spec)[1:]]
    assert_same_as_bpftool(be, obj)


def test_split_btf_on_vmlinux(tmp_path: Path) -> None:
    base = Spec.vmlinux()
    task, u32 = base.find("task_struct", T.Struct), base.find("u32", T.Typedef)
    node = T.Struct("pybpf_split_node", 16, [])
    node.members += [T.Member("task", T.Pointer(task), 0), T.Member("next", T.Pointer(node), 64)]
    tag = T.Typedef("pybpf_split_u32", u32)
    blob = encode([node, tag], base=base)
    split = Spec.parse(blob, base=base, name="split")
    n = len(base)
    assert len(split) == n + 4  # node, tag and the two pointers it refers to
    got = split.find("pybpf_split_node", T.Struct)
    assert got.id == n and split.type_by_id(n) is got
    assert got.member("task").type.target is task  # base types keep their ids and objects
    assert got.member("next").type.target is got
    assert split.find("pybpf_split_u32").type is u32
    assert split.find("task_struct") is task
    assert split._str_base == len(base._all_strings())
    name_off = split._words[0]
    assert name_off >= split._str_base and split.string(name_off) == "pybpf_split_node"
    path = tmp_path / "split.btf"
    path.write_bytes(blob)
    assert_same_as_bpftool(split, path, base=VMLINUX, first_id=n)
    with pytest.raises(BTFError):
        split.type_by_id(n + 4)


def test_user_built_types_have_no_id() -> None:
    t = T.Int("int", 4, T.INT_SIGNED)
    assert t.id is None and t.signed and t.bits == 32 and repr(t) == "<INT int>"
    assert T.sizeof(T.Array(t, t, 3)) == 12 and T.alignof(T.Array(t, t, 3)) == 4
    with pytest.raises(BTFError, match="no size"):
        T.sizeof(T.FuncProto(T.VOID, []))


def test_bad_blobs_are_btf_errors() -> None:
    good = encode([T.Int("int", 4, T.INT_SIGNED)])
    for bad, match in [(b"", "too short"), (b"\0" * 24, "bad magic"),
                       (good[:2] + b"\x02" + good[3:], "version"),
                       (good[:-1], "past the end"), (good[:-1] + b"x", "NUL")]:
        with pytest.raises(BTFError, match=match):
            Spec.parse(bad)
    with pytest.raises(BTFError, match="cannot read"):
        Spec.from_file("/nonexistent/btf")
    with pytest.raises(BTFError, match="no BTF for kernel module"):
        Spec.module("no_such_module_xyz")


def test_find_kernel_looks_in_vmlinux_then_modules() -> None:
    vmlinux = Spec.vmlinux()
    assert Spec.find_kernel("do_unlinkat", T.Func) == ("", vmlinux.find("do_unlinkat", T.Func))
    assert Spec.find_kernel("do_unlinkat", T.Struct) is None
    assert Spec.find_kernel("pybpf_no_such_function", T.Func) is None
    with pytest.raises(BTFError, match="no BTF for kernel module"):
        Spec.find_kernel("do_unlinkat", T.Func, module="no_such_module_xyz")
    for module in Spec.module_names():  # none on a kernel built without modules' BTF
        own = next((t for t in Spec.module(module) if t.id >= len(vmlinux)
                    and isinstance(t, T.Func) and not vmlinux.find_all(t.name, T.Func)), None)
        if own is not None:
            assert Spec.find_kernel(own.name, T.Func, module) == (module, own)
            place, found = Spec.find_kernel(own.name, T.Func)
            assert place and found.id >= len(vmlinux)  # a module's own type, not vmlinux's
            return


def test_kernel_btf_index_is_cached_for_the_boot(tmp_path, monkeypatch) -> None:
    """The header walk of vmlinux is stored in pybpf's cache; a later parse reads it back and
    decodes the same types; a damaged or foreign cache entry is ignored."""
    from pybpf.btf.spec import VMLINUX_PATH

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))

    def fresh() -> Spec:
        spec = Spec.from_file(VMLINUX_PATH)
        spec._use_cache(VMLINUX_PATH)
        return spec

    first = fresh()
    walked = len(first)
    (entry,) = (tmp_path / "pybpf" / "btf-index").iterdir()
    second = fresh()
    assert second._load_index() and len(second) == walked
    for name in ("task_struct", "sk_buff", "bpf_map_type"):
        a, b = first.find(name), second.find(name)
        assert (a.id, a.kind, T.sizeof(a)) == (b.id, b.kind, T.sizeof(b))
    data = bytearray(entry.read_bytes())
    data[-8:] = b"\xff" * 8  # the last name offset no longer matches the BTF
    entry.write_bytes(bytes(data))
    third = fresh()
    assert not third._load_index()
    assert len(third) == walked and third.find("task_struct").id == first.find("task_struct").id
    entry.write_bytes(b"garbage")
    assert not fresh()._load_index()
