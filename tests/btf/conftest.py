"""BTF test helpers: .BTF sections of clang objects, and bpftool's view of the same BTF."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.btf import Spec, types as T

_INT_ENC = {0: "(none)", T.INT_SIGNED: "SIGNED", T.INT_CHAR: "CHAR", T.INT_BOOL: "BOOL"}
_FUNC_LINKAGE = {0: "static", 1: "global", 2: "extern"}
_VAR_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def btf_section(obj: Path, name: str = ".BTF") -> bytes:
    """The raw bytes of an ELF section (pyelftools)."""
    with open(obj, "rb") as f:
        sec = ELFFile(f).get_section_by_name(name)
        assert sec is not None, f"{obj} has no {name} section"
        return sec.data()


def elf_facts(obj: Path) -> tuple[dict[str, int], dict[str, int], set[str]]:
    """What sanitize.fixup_datasecs needs from the ELF: section sizes, object symbols' values,
    and the hidden ones."""
    with open(obj, "rb") as f:
        elf = ELFFile(f)
        sizes = {s.name: s["sh_size"] for s in elf.iter_sections()}
        syms = [s for s in elf.get_section_by_name(".symtab").iter_symbols()
                if s["st_info"]["type"] == "STT_OBJECT"]
        offsets = {s.name: s["st_value"] for s in syms}
        hidden = {s.name for s in syms
                  if s["st_other"]["visibility"] in ("STV_HIDDEN", "STV_INTERNAL")}
    return sizes, offsets, hidden


def bpftool_json(path: Path, base: Optional[Path] = None) -> list[dict[str, Any]]:
    """``bpftool -j btf dump file PATH`` (``-B base`` for split BTF): the types list."""
    cmd = ["bpftool", "-j", "btf", "dump", "file", str(path)]
    if base is not None:
        cmd[1:1] = ["-B", str(base)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out)["types"]


def bpftool_raw(path: Path) -> str:
    return subprocess.run(["bpftool", "btf", "dump", "file", str(path), "format", "raw"],
                          check=True, capture_output=True, text=True).stdout


def as_bpftool(t: T.Type) -> dict[str, Any]:
    """What bpftool's JSON says about ``t`` (built from the parsed type, to compare)."""
    d: dict[str, Any] = {"id": t.id, "kind": t.kind.name, "name": t.name or "(anon)"}
    if isinstance(t, T.Int):
        d.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits,
                 encoding=_INT_ENC.get(t.encoding, "UNKN"))
    elif isinstance(t, (T.Pointer, T.Typedef, T.Qualifier)):
        d["type_id"] = t.type.id if not isinstance(t, T.Pointer) else t.target.id
    elif isinstance(t, T.Array):
        d.update(type_id=t.type.id, index_type_id=t.index_type.id, nr_elems=t.nelems)
    elif isinstance(t, T.Composite):
        members = []
        for m in t.members:
            md = {"name": m.name or "(anon)", "type_id": m.type.id, "bits_offset": m.offset}
            if m.bitfield_size:
                md["bitfield_size"] = m.bitfield_size
            members.append(md)
        d.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, T.Enum):
        d.update(encoding="SIGNED" if t.signed else "UNSIGNED", size=t.size, vlen=len(t.values),
                 values=[{"name": v.name, "val": v.value} for v in t.values])
    elif isinstance(t, T.Fwd):
        d["fwd_kind"] = "union" if t.union else "struct"
    elif isinstance(t, T.Func):
        d.update(type_id=t.proto.id, linkage=_FUNC_LINKAGE[t.linkage])
    elif isinstance(t, T.FuncProto):
        d.update(ret_type_id=t.return_type.id, vlen=len(t.params),
                 params=[{"name": p.name or "(anon)", "type_id": p.type.id} for p in t.params])
    elif isinstance(t, T.Var):
        d.update(type_id=t.type.id, linkage=_VAR_LINKAGE[t.linkage])
    elif isinstance(t, T.Datasec):
        d.update(size=t.size, vlen=len(t.vars),
                 vars=[{"type_id": v.type.id, "offset": v.offset, "size": v.size} for v in t.vars])
    elif isinstance(t, T.Float):
        d["size"] = t.size
    elif isinstance(t, T.DeclTag):
        d.update(type_id=t.type.id, component_idx=t.component_idx)
    return d


def as_bpftool_raw(t: T.Type) -> str:
    """The lines ``bpftool btf dump ... format raw`` prints for ``t`` (bpftool 7.x)."""
    d = as_bpftool(t)
    head = f"[{t.id}] {d['kind']} '{d['name']}'"
    if isinstance(t, T.Int):
        return (f"{head} size={t.size} bits_offset={t.offset} nr_bits={t.bits} "
                f"encoding={d['encoding']}")
    if isinstance(t, T.Array):
        return f"{head} type_id={d['type_id']} index_type_id={d['index_type_id']} " \
               f"nr_elems={t.nelems}"
    if isinstance(t, T.Composite):
        lines = [f"{head} size={t.size} vlen={len(t.members)}"]
        for m in d["members"]:
            bits = f" bitfield_size={m['bitfield_size']}" if "bitfield_size" in m else ""
            lines.append(f"\t'{m['name']}' type_id={m['type_id']} bits_offset="
                         f"{m['bits_offset']}{bits}")
        return "\n".join(lines)
    if isinstance(t, T.Enum):
        lines = [f"{head} encoding={d['encoding']} size={t.size} vlen={len(t.values)}"]
        suffix = ("LL" if t.signed else "ULL") if isinstance(t, T.Enum64) else ""
        lines += [f"\t'{v.name}' val={v.value}{suffix}" for v in t.values]
        return "\n".join(lines)
    if isinstance(t, T.Fwd):
        return f"{head} fwd_kind={d['fwd_kind']}"
    if isinstance(t, T.Func):
        return f"{head} type_id={d['type_id']} linkage={d['linkage']}"
    if isinstance(t, T.FuncProto):
        lines = [f"{head} ret_type_id={d['ret_type_id']} vlen={len(t.params)}"]
        lines += [f"\t'{p['name']}' type_id={p['type_id']}" for p in d["params"]]
        return "\n".join(lines)
    if isinstance(t, T.Var):
        return f"{head} type_id={d['type_id']}, linkage={d['linkage']}"
    if isinstance(t, T.Datasec):
        lines = [f"{head} size={t.size} vlen={len(t.vars)}"]
        lines += [f"\ttype_id={v.type.id} offset={v.offset} size={v.size} "
                  f"({v.type.kind.name} '{v.type.name}')" for v in t.vars]
        return "\n".join(lines)
    if isinstance(t, T.Float):
        return f"{head} size={t.size}"
    if isinstance(t, T.DeclTag):
        return f"{head} type_id={d['type_id']} component_idx={t.component_idx}"
    return f"{head} type_id={d['type_id']}"  # pointers, modifiers, typedefs, type tags


_COMMON_KINDS = ("STRUCT", "UNION", "FUNC", "FUNC_PROTO", "PTR", "CONST", "ARRAY", "TYPEDEF")


def assert_raw_same_as_bpftool(spec: Spec, path: Path, every: int = 1) -> int:
    """bpftool's raw listing of ``path`` is, type for type, what the parsed types say: all of
    them, or every ``every``-th of the common kinds and all of the others. Returns the count."""
    blocks = bpftool_raw(path).rstrip("\n").split("\n[")
    assert len(blocks) == len(spec) - 1
    checked = 0
    for tid, block in enumerate(blocks, 1):
        if every > 1 and tid % every and block.split(" ", 2)[1] in _COMMON_KINDS:
            continue
        want = block if tid == 1 else "[" + block
        got = as_bpftool_raw(spec.type_by_id(tid))
        if got != want:
            assert got == want, f"type {tid}: bpftool's raw dump differs"
        checked += 1
    return checked


def assert_same_as_bpftool(spec: Spec, path: Path, base: Optional[Path] = None,
                           first_id: int = 1) -> int:
    """Every type of ``spec`` from ``first_id`` on equals bpftool's decoding; returns the count."""
    theirs = bpftool_json(path, base)
    assert len(theirs) == len(spec) - first_id
    for want in theirs:
        if want["kind"] == "ENUM" and want["encoding"] == "UNSIGNED":
            # bpftool's JSON sign-extends the __s32 btf_enum.val before printing it as u64
            # (its raw format prints the u32 right): undo that quirk
            for v in want["values"]:
                v["val"] &= 0xFFFFFFFF
        got = as_bpftool(spec.type_by_id(want["id"]))
        if got != want:
            assert got == want, f"type {want['id']} differs from bpftool"
    return len(theirs)


@pytest.fixture(scope="session")
def kinds_obj(bpf_objects: dict[str, Path]) -> Path:
    return bpf_objects["btf_kinds"]


@pytest.fixture(scope="session")
def kinds_spec(kinds_obj: Path) -> Spec:
    return Spec.parse(btf_section(kinds_obj), name=str(kinds_obj))
