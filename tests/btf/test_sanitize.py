"""ELF fix-ups and sanitization: the kernel loads the result, and no type changes its id."""
from __future__ import annotations

from pathlib import Path

import pytest

from pybpf import features
from pybpf._record import fields, replace
from pybpf.btf import BTF, Spec, types as T
from pybpf.btf.encode import encode
from pybpf.btf.sanitize import KernelBTF, fixup_datasecs, sanitize
from pybpf.errors import BPFError, BTFError
from pybpf.sys.uapi import BtfKind
from tests.btf.conftest import btf_section, elf_facts
from tests.vm.kernels import guest_kernel

NOTHING = KernelBTF(**{f: False for f in fields(KernelBTF)})


@pytest.fixture(scope="module")
def fixed(kinds_obj: Path) -> bytes:
    return fixup_datasecs(btf_section(kinds_obj), *elf_facts(kinds_obj))


# what the VM runner's kernels lack (measured: python3 -m tests.vm 5.10 -- ...); the host's
# 6.18 has every kind
MISSING = {"5.10": {"float", "decl_tag", "type_tag", "enum64"}, "6.1": set(), "6.12": set()}


def test_features_probe_btf_kinds() -> None:
    missing = MISSING.get(guest_kernel() or "", set())
    for probe in (features.btf_func, features.btf_func_global, features.btf_datasec,
                  features.btf_float, features.btf_decl_tag, features.btf_type_tag,
                  features.btf_enum64):
        support = probe()
        assert bool(support) == (probe.__name__[4:] not in missing), support.reason
        if not support:
            assert "not supported by this kernel" in support.reason
    assert KernelBTF.probe() == replace(KernelBTF(), **{m: False for m in missing})


def test_object_btf_loads_on_this_kernel(fixed: bytes) -> None:
    """What the ELF loader does: fix up, sanitize for the running kernel, load."""
    kernel = KernelBTF.probe()
    out = sanitize(fixed, kernel)
    with BTF.load(out, "pybpf-test-object") as btf:
        assert btf.fd >= 0
    if kernel == KernelBTF():
        assert out == fixed
    else:  # the unsanitized BTF is refused, and the error says why
        with pytest.raises(BPFError, match="BTF log: "):
            BTF.load(fixed, "pybpf-test-unsanitized").close()


def test_clang_btf_needs_the_fixups(kinds_obj: Path, fixed: bytes) -> None:
    with pytest.raises(BPFError, match="DATASEC .* size == 0|Invalid"):
        BTF.load(btf_section(kinds_obj), "pybpf-test-unfixed").close()
    spec = Spec.parse(fixed)
    sizes, offsets, _ = elf_facts(kinds_obj)
    bss = spec.find(".bss", T.Datasec)
    assert bss.size == sizes[".bss"] > 0
    assert [(v.type.name, v.offset) for v in bss.vars] == sorted(
        ((v.type.name, offsets[v.type.name]) for v in bss.vars), key=lambda x: x[1])
    assert len(spec) == len(Spec.parse(btf_section(kinds_obj)))
    with BTF.load(sanitize(fixed), "pybpf-test-fixed") as btf:  # for this kernel's kinds
        assert btf.fd >= 0


def test_fixup_hidden_and_errors(kinds_obj: Path) -> None:
    raw = btf_section(kinds_obj)
    sizes, offsets, _ = elf_facts(kinds_obj)
    spec = Spec.parse(fixup_datasecs(raw, sizes, offsets, hidden={"counter"}))
    assert spec.find("counter").linkage == T.LINKAGE_STATIC
    assert spec.find("bss_value").linkage == T.LINKAGE_GLOBAL
    with pytest.raises(BTFError, match="no section '.data.counters'"):
        fixup_datasecs(raw, {k: v for k, v in sizes.items() if k != ".data.counters"}, offsets)
    with pytest.raises(BTFError, match="no ELF symbol for global variable 'bss_value'"):
        fixup_datasecs(raw, sizes, {k: v for k, v in offsets.items() if k != "bss_value"})


def _kinds(spec: Spec) -> dict[int, BtfKind]:
    return {t.id: t.kind for t in list(spec)[1:]}


@pytest.mark.parametrize("missing", list(fields(KernelBTF)) + ["all"])
def test_sanitize_keeps_ids_and_loads(fixed: bytes, missing: str) -> None:
    running = KernelBTF.probe()  # and whatever else this kernel lacks
    kernel = NOTHING if missing == "all" else replace(running, **{missing: False})
    before = Spec.parse(fixed)
    out = Spec.parse(sanitize(fixed, kernel))
    old, new = _kinds(before), _kinds(out)
    assert list(new)[:len(old)] == list(old)           # same ids; at most one type appended
    assert len(new) - len(old) <= 1
    gone = {"func": {BtfKind.FUNC, BtfKind.FUNC_PROTO}, "datasec": {BtfKind.VAR, BtfKind.DATASEC},
            "float": {BtfKind.FLOAT}, "decl_tag": {BtfKind.DECL_TAG},
            "type_tag": {BtfKind.TYPE_TAG}, "enum64": {BtfKind.ENUM64}, "func_global": set()}
    lost = set().union(*gone.values()) if missing == "all" else set().union(
        gone[missing], *(gone[f] for f in fields(KernelBTF)
                         if not getattr(kernel, f)))
    assert not lost & set(new.values())
    retagged = {t.id for t in before if isinstance(t, T.DeclTag) and t.type.kind in lost}
    assert all(new[tid] == BtfKind.INT for tid in retagged)  # tags on what was rewritten
    for tid, kind in old.items():  # every other type is untouched
        if kind not in lost and tid not in retagged and not (
                kind == BtfKind.FUNC and not kernel.func_global):
            assert new[tid] == kind
            assert out.type_by_id(tid).name == before.type_by_id(tid).name or kind == BtfKind.DATASEC
    if not kernel.func_global:
        assert all(t.linkage == T.LINKAGE_STATIC for t in out if isinstance(t, T.Func))
    if not kernel.datasec:
        sec = out.find("_bss", T.Struct)              # dots become underscores
        assert {m.name for m in sec.members} >= {"bss_value", "global_kinds"}
    if not kernel.float:
        f = out.type_by_id(before.find("float").id)
        assert isinstance(f, T.Struct) and f.size == 4 and f.name == ""
    # a kernel without FUNC would also lack the identifier checks the FUNC_PROTO->ENUM rewrite
    # trips on this kernel (anonymous parameters become nameless enumerators): load the rest
    if kernel.func:
        with BTF.load(out.raw, f"pybpf-test-sanitized-{missing}") as btf:
            assert btf.fd >= 0


def test_sanitize_enum64() -> None:
    e64 = T.Enum64("wide", 8, [T.EnumValue("LOW", 1), T.EnumValue("HIGH", -(1 << 40))], True)
    e32 = T.Enum("narrow", 4, [T.EnumValue("NEG", -1)], signed=True)
    blob = encode([T.Int("int", 4, T.INT_SIGNED), e64, e32])
    out = Spec.parse(sanitize(blob, replace(KernelBTF.probe(), enum64=False)))
    assert len(out) == 5 and out.type_by_id(4).name == "enum64_placeholder"
    u, e = out.type_by_id(2), out.type_by_id(3)
    assert isinstance(u, T.Union) and u.size == 8 and [m.name for m in u.members] == ["LOW", "HIGH"]
    assert isinstance(e, T.Enum) and not e.signed and e.values[0].value == 0xFFFFFFFF
    with BTF.load(out.raw, "pybpf-test-enum64-sanitized") as btf:
        assert btf.fd >= 0


def test_sanitize_enum64_on_vmlinux() -> None:
    v = Spec.vmlinux()
    if not any(isinstance(t, T.Enum64) for t in v):
        pytest.skip("this kernel's BTF has no ENUM64 (pahole < 1.24 or Linux < 6.0)")
    out = Spec.parse(sanitize(v, replace(KernelBTF(), enum64=False)))
    assert len(out) == len(v) + 1
    placeholder = out.type_by_id(len(v))
    assert placeholder.name == "enum64_placeholder" and placeholder.size == 1
    e64 = next(t for t in v if isinstance(t, T.Enum64))
    u = out.type_by_id(e64.id)
    assert isinstance(u, T.Union) and [m.name for m in u.members] == [x.name for x in e64.values]
    assert all(m.type is placeholder for m in u.members)
    with BTF.load(out.raw, "pybpf-test-vmlinux-sanitized") as btf:
        assert btf.fd >= 0
    assert sanitize(v, KernelBTF()) == v.raw   # nothing to do: the same bytes
