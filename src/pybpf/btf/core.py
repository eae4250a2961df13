"""CO-RE: relocating a program's field offsets, sizes, type ids and enum values to the target
kernel's BTF, with libbpf's rules (pure: specs and instruction bytes in, patched bytes out).

clang records each ``__builtin_preserve_*`` use as a ``bpf_core_relo`` (instruction offset,
local root type id, access string such as ``"0:1:2"``, kind) in ``.BTF.ext``. For each, the
local *spec* (accessor chain) is parsed from the object's BTF, target *candidates* are the
kernel types with the same essential name (``task_struct___old`` -> ``task_struct``) and a
compatible kind, each candidate is matched field by field (field names exactly, through
anonymous members), and every matching candidate must agree on the result. An unsatisfiable
relocation poisons its instruction (a call to helper ``0xbad2310``), which the verifier
rejects only if the instruction is reachable, exactly as libbpf does.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Iterable, Optional, Sequence

from ..asm import rewrite
from ..asm.opcodes import LD_IMM64, Class, Size, Source
from ..asm.rewrite import POISON_HELPER
from ..errors import BTFError
from ..sys.uapi import INSN_SIZE, CoreReloKind
from . import types as T
from .spec import Spec

MAX_SPEC_LEN = 64          # BPF_CORE_SPEC_MAX_LEN
_MAX_DEPTH = 32
_ORDER = sys.byteorder     # CO-RE relocates for the running kernel: host byte order

_SIZE_OF_BYTES = {s.bytes: s for s in Size}  # 1 -> BPF_B ...

_FIELD_KINDS = frozenset({CoreReloKind.FIELD_BYTE_OFFSET, CoreReloKind.FIELD_BYTE_SIZE,
                          CoreReloKind.FIELD_EXISTS, CoreReloKind.FIELD_SIGNED,
                          CoreReloKind.FIELD_LSHIFT_U64, CoreReloKind.FIELD_RSHIFT_U64})
_TYPE_KINDS = frozenset({CoreReloKind.TYPE_ID_LOCAL, CoreReloKind.TYPE_ID_TARGET,
                         CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_SIZE,
                         CoreReloKind.TYPE_MATCHES})
_ENUMVAL_KINDS = frozenset({CoreReloKind.ENUMVAL_EXISTS, CoreReloKind.ENUMVAL_VALUE})


class CoreError(BTFError):
    """A CO-RE relocation is malformed or ambiguous (not merely unsatisfiable: that poisons)."""


def essential_name(name: str) -> str:
    """``name`` without its flavor suffix: ``task_struct___v5`` -> ``task_struct``."""
    for i in range(len(name) - 5, -1, -1):
        if name[i] != "_" and name[i + 1:i + 4] == "___" and name[i + 4] != "_":
            return name[:i + 1]
    return name


@dataclass
class Accessor:
    """One step of a spec: ``idx`` into type ``type`` (member index, or array index if no name)."""

    type: T.Type
    idx: int
    name: str = ""


@dataclass
class CoreSpec:
    """A parsed access chain on one BTF: named/array accessors, raw indices, bit offset."""

    spec: Spec
    root: T.Type
    kind: CoreReloKind
    access: list[Accessor] = field(default_factory=list)
    raw: list[int] = field(default_factory=list)
    bit_offset: int = 0

    def __str__(self) -> str:
        path = "".join(f".{a.name}" if a.name else f"[{a.idx}]" for a in self.access[1:])
        if self.kind in _ENUMVAL_KINDS and self.access:
            return f"{_describe(self.root)}::{self.access[0].name}"
        if self.kind in _TYPE_KINDS:
            return _describe(self.root)
        head = f"[{self.access[0].idx}]" if self.access and self.access[0].idx else ""
        return f"{_describe(self.root)}{head}{path} ({':'.join(map(str, self.raw))} " \
               f"@ bit {self.bit_offset})"


@dataclass
class CoreResult:
    """What a relocation does to its instruction: ``orig`` (as compiled) -> ``new`` value."""

    kind: CoreReloKind
    local: CoreSpec
    target: Optional[CoreSpec] = None
    orig: int = 0
    new: int = 0
    poison: bool = False
    validate: bool = True
    orig_size: int = 0
    new_size: int = 0
    orig_type: Optional[T.Type] = None
    new_type: Optional[T.Type] = None
    fail_size_adjust: bool = False
    reason: str = ""

    def describe(self) -> str:
        """One line for errors and logs: the relocation, and its outcome."""
        what = f"CO-RE {self.kind.name.lower()} of {self.local}"
        if self.poison:
            return f"{what}: cannot be satisfied: {self.reason or 'not found in the target BTF'}"
        target = f" in {self.target}" if self.target is not None else ""
        return f"{what}: {self.orig} -> {self.new}{target}"


def _describe(t: T.Type) -> str:
    return f"{t.kind.name.lower()} {t.name or '(anon)'}"


def _skip(t: T.Type) -> T.Type:
    return T.skip_qualifiers(t)


def _is_enum(t: T.Type) -> bool:
    return isinstance(t, T.Enum)


def _kinds_compatible(a: T.Type, b: T.Type) -> bool:
    return a.kind == b.kind or (_is_enum(a) and _is_enum(b))


# --- local spec ---------------------------------------------------------------------------

def parse_spec(spec: Spec, type_id: int, access: str, kind: CoreReloKind) -> CoreSpec:
    """The local access chain of a relocation (``bpf_core_parse_spec``)."""
    try:
        raw = [int(x) for x in access.split(":")]
    except ValueError:
        raise CoreError(f"CO-RE access string {access!r} is malformed") from None
    if not raw or len(raw) > MAX_SPEC_LEN or min(raw) < 0:
        raise CoreError(f"CO-RE access string {access!r} is malformed")
    root = spec.type_by_id(type_id)
    out = CoreSpec(spec, root, kind, raw=list(raw))
    if kind in _TYPE_KINDS:
        if raw != [0]:
            raise CoreError(f"type relocation on {_describe(root)} has access {access!r}, not '0'")
        return out
    t = _skip(root)
    if kind in _ENUMVAL_KINDS:
        if not isinstance(t, T.Enum) or len(raw) > 1 or raw[0] >= len(t.values):
            raise CoreError(f"enum value relocation {access!r} does not index {_describe(root)}")
        out.access.append(Accessor(t, raw[0], t.values[raw[0]].name))
        return out
    if kind not in _FIELD_KINDS:
        raise CoreError(f"unknown CO-RE relocation kind {kind}")
    out.access.append(Accessor(t, raw[0]))
    out.bit_offset = raw[0] * T.sizeof(t) * 8
    cur = t
    for idx in raw[1:]:
        cur = _skip(cur)
        if isinstance(cur, T.Composite):
            if idx >= len(cur.members):
                raise CoreError(f"CO-RE access {access!r}: {_describe(cur)} has no member #{idx}")
            m = cur.members[idx]
            out.bit_offset += m.offset
            if m.name:
                out.access.append(Accessor(cur, idx, m.name))
            cur = m.type
        elif isinstance(cur, T.Array):
            elem = _skip(cur.type)
            if not _is_flex(out.access[-1], cur) and idx >= cur.nelems:
                raise CoreError(f"CO-RE access {access!r}: index {idx} past the end of an "
                                f"array of {cur.nelems}")
            out.access.append(Accessor(elem, idx))
            out.bit_offset += idx * T.sizeof(elem) * 8
            cur = elem
        else:
            raise CoreError(f"CO-RE access {access!r} goes into {_describe(cur)}, which is "
                            f"neither a struct/union nor an array")
    return out


def _is_flex(prev: Accessor, array: T.Array) -> bool:
    """A zero-length array as the last member of its struct (a flexible array member)."""
    return bool(prev.name) and array.nelems == 0 and isinstance(prev.type, T.Composite) \
        and prev.idx == len(prev.type.members) - 1


# --- candidates and matching --------------------------------------------------------------

def candidates(local: T.Type, targets: Sequence[Spec]) -> list[T.Type]:
    """Target types with ``local``'s essential name (flavors on either side ignored) and a
    compatible kind (enum ~ enum64), in target order (vmlinux first)."""
    name = essential_name(local.name)
    found: list[T.Type] = []
    for target in targets:
        for full in [name] + _flavored(target, name):
            found.extend(t for t in target.find_all(full) if _kinds_compatible(t, local))
    return found


def _flavored(spec: Spec, name: str) -> list[str]:
    """The names in ``spec``'s strings that are ``name`` with a flavor (``name___x``)."""
    strings, key, found = spec._all_strings(), b"\0" + name.encode() + b"___", []
    pos = strings.find(key)
    while pos >= 0:
        end = strings.find(b"\0", pos + 1)
        full = strings[pos + 1:end].decode("utf-8", "replace")
        if essential_name(full) == name and full not in found:
            found.append(full)
        pos = strings.find(key, pos + 1)
    return found


def _names_match(local: str, target: str) -> bool:
    if not target:
        return not local
    return essential_name(local) == essential_name(target)


def types_compatible(local: T.Type, target: T.Type, depth: int = _MAX_DEPTH) -> bool:
    """libbpf's ``bpf_core_types_are_compat``: same kind after modifiers; composites, enums and
    fwds by name only; ints unless bitfield-like; pointers, arrays, prototypes recursively."""
    if depth <= 0:
        raise CoreError("CO-RE type compatibility check nests too deep (a type loop?)")
    local, target = _skip(local), _skip(target)
    if not _kinds_compatible(local, target):
        return False
    if isinstance(local, (T.Void, T.Composite, T.Enum, T.Fwd, T.Float)):
        return True
    # one kind from here: each test of local's class holds for target's too
    if isinstance(local, T.Int) and isinstance(target, T.Int):
        return local.offset == 0 and target.offset == 0
    if isinstance(local, T.Pointer) and isinstance(target, T.Pointer):
        return types_compatible(local.target, target.target, depth - 1)
    if isinstance(local, T.Array) and isinstance(target, T.Array):
        return types_compatible(local.type, target.type, depth - 1)
    if isinstance(local, T.FuncProto) and isinstance(target, T.FuncProto):
        if len(local.params) != len(target.params):
            return False
        return all(types_compatible(a.type, b.type, depth - 1)
                   for a, b in zip(local.params, target.params)) \
            and types_compatible(local.return_type, target.return_type, depth - 1)
    return False


def _fields_compatible(local: T.Type, target: T.Type, depth: int = _MAX_DEPTH) -> bool:
    """libbpf's ``bpf_core_fields_are_compat``."""
    if depth <= 0:
        raise CoreError("CO-RE field compatibility check nests too deep (a type loop?)")
    local, target = _skip(local), _skip(target)
    if isinstance(local, T.Composite) and isinstance(target, T.Composite):
        return True
    if not _kinds_compatible(local, target):
        return False
    if isinstance(local, (T.Fwd, T.Float, T.Pointer)):
        return True
    if isinstance(local, T.Enum):
        return _names_match(local.name, target.name)
    if isinstance(local, T.Int) and isinstance(target, T.Int):  # one kind (above)
        return local.offset == 0 and target.offset == 0
    if isinstance(local, T.Array) and isinstance(target, T.Array):
        return _fields_compatible(local.type, target.type, depth - 1)
    return False


def types_match(local: T.Type, target: T.Type, behind_ptr: bool = False,
                depth: int = _MAX_DEPTH) -> bool:
    """libbpf's ``bpf_core_types_match`` (``bpf_core_type_matches()``): a stricter, recursive
    comparison of layouts and names."""
    if depth <= 0:
        raise CoreError("CO-RE type match nests too deep (a type loop?)")
    local, target = _skip(local), _skip(target)
    if not _names_match(local.name, target.name):
        return False
    if isinstance(local, T.Void):
        return isinstance(target, T.Void)
    if isinstance(local, T.Fwd):
        if behind_ptr and not isinstance(target, T.Fwd):
            return isinstance(target, T.Union if local.union else T.Struct)
        return isinstance(target, T.Fwd) and target.union == local.union
    if isinstance(local, T.Enum):
        if not isinstance(target, T.Enum) or local.size != target.size \
                or len(local.values) > len(target.values):
            return False
        return all(any(_names_match(v.name, w.name) for w in target.values) for v in local.values)
    if isinstance(local, T.Composite):
        if behind_ptr:
            if local.kind == target.kind:
                return True
            return isinstance(target, T.Fwd) and target.union == isinstance(local, T.Union)
        if not isinstance(target, T.Composite) or local.kind != target.kind \
                or len(local.members) > len(target.members):
            return False
        return all(any(_names_match(m.name, n.name) and
                       types_match(m.type, n.type, behind_ptr, depth - 1)
                       for n in target.members) for m in local.members)
    if local.kind != target.kind:
        return False
    # one kind from here: each test of local's class holds for target's too
    if isinstance(local, T.Int) and isinstance(target, T.Int):
        return local.size == target.size and local.signed == target.signed
    if isinstance(local, T.Pointer) and isinstance(target, T.Pointer):
        return types_match(local.target, target.target, True, depth - 1)
    if isinstance(local, T.Array) and isinstance(target, T.Array):
        return local.nelems == target.nelems and \
            types_match(local.type, target.type, behind_ptr, depth - 1)
    if isinstance(local, T.FuncProto) and isinstance(target, T.FuncProto):
        return len(local.params) == len(target.params) and \
            all(types_match(a.type, b.type, behind_ptr, depth - 1)
                for a, b in zip(local.params, target.params)) and \
            types_match(local.return_type, target.return_type, behind_ptr, depth - 1)
    return False


def _match_member(local_member: T.Member, target: T.Type, out: CoreSpec,
                  depth: int = _MAX_DEPTH) -> tuple[bool, Optional[T.Type]]:
    """Find ``local_member`` by name in ``target``, descending into anonymous members; extends
    ``out`` with the accessors on success (``bpf_core_match_member``)."""
    if depth <= 0:
        raise CoreError("CO-RE member search nests too deep (a type loop?)")
    target = _skip(target)
    if not isinstance(target, T.Composite):
        return False, None
    for i, m in enumerate(target.members):
        out.bit_offset += m.offset
        out.raw.append(i)
        if not m.name:
            found, nxt = _match_member(local_member, m.type, out, depth - 1)
            if found:
                return found, nxt
        elif m.name == local_member.name:
            if not _fields_compatible(local_member.type, m.type):
                return False, None
            out.access.append(Accessor(target, i, m.name))
            return True, m.type
        out.bit_offset -= m.offset
        out.raw.pop()
    return False, None


def match_spec(local: CoreSpec, target_root: T.Type) -> Optional[CoreSpec]:
    """The target spec for ``local`` on candidate ``target_root``, or None if it does not match
    (``bpf_core_spec_match``)."""
    target_btf = target_root._spec
    assert target_btf is not None  # candidates are types of a parsed spec
    out = CoreSpec(target_btf, target_root, local.kind)
    if local.kind in _TYPE_KINDS:
        ok = types_match(local.root, target_root) if local.kind == CoreReloKind.TYPE_MATCHES \
            else types_compatible(local.root, target_root)
        return out if ok else None
    if local.kind in _ENUMVAL_KINDS:
        t = _skip(target_root)
        if not isinstance(t, T.Enum):
            return None
        want = essential_name(local.access[0].name)
        for i, v in enumerate(t.values):
            if essential_name(v.name) == want:
                out.access.append(Accessor(t, i, v.name))
                out.raw.append(i)
                return out
        return None
    cur: T.Type = target_root
    for n, acc in enumerate(local.access):
        cur = _skip(cur)
        if acc.name:
            owner = acc.type
            assert isinstance(owner, T.Composite)  # a named accessor is a member's
            found, nxt = _match_member(owner.members[acc.idx], cur, out)
            if not found or nxt is None:  # (found: nxt is the member's type)
                return None
            cur = nxt
            continue
        if n > 0:
            if not isinstance(cur, T.Array):
                return None
            if not _is_flex(out.access[-1], cur) and acc.idx >= cur.nelems:
                return None
            cur = _skip(cur.type)
        if len(out.raw) >= MAX_SPEC_LEN:
            raise CoreError(f"CO-RE spec {local} nests deeper than {MAX_SPEC_LEN}")
        out.access.append(Accessor(cur, acc.idx))
        out.raw.append(acc.idx)
        out.bit_offset += acc.idx * T.sizeof(cur) * 8
    return out


# --- values -------------------------------------------------------------------------------

class _Poison(Exception):
    """The relocation cannot be satisfied: poison the instruction."""


def _field_value(kind: CoreReloKind,
                 spec: Optional[CoreSpec]) -> tuple[int, int, Optional[T.Type], bool]:
    """(value, field size for memory access, field type, validate): libbpf's
    ``bpf_core_calc_field_relo``."""
    if kind == CoreReloKind.FIELD_EXISTS:
        return (1 if spec is not None else 0), 0, None, True
    if spec is None:
        raise _Poison()
    acc = spec.access[-1]
    if not acc.name:  # a[n]: only offset and size make sense
        size = T.sizeof(acc.type)
        if kind == CoreReloKind.FIELD_BYTE_OFFSET:
            return spec.bit_offset // 8, size, acc.type, True
        if kind == CoreReloKind.FIELD_BYTE_SIZE:
            return size, 0, None, True
        raise CoreError(f"CO-RE {kind.name.lower()} cannot be applied to an array element")
    owner = acc.type
    assert isinstance(owner, T.Composite)  # a named accessor is a member's
    member = owner.members[acc.idx]
    mtype = _skip(member.type)
    bit_off, bit_sz = spec.bit_offset, member.bitfield_size
    if bit_sz:
        byte_sz = T.sizeof(mtype)
        byte_off = bit_off // 8 // byte_sz * byte_sz
        while bit_off + bit_sz - byte_off * 8 > byte_sz * 8:
            if byte_sz >= 8:
                raise CoreError(f"bitfield {member.name} cannot be read with a 64-bit load")
            byte_sz *= 2
            byte_off = bit_off // 8 // byte_sz * byte_sz
    else:
        byte_sz = T.sizeof(member.type)
        byte_off = bit_off // 8
        bit_sz = byte_sz * 8
    validate = not member.bitfield_size
    if kind == CoreReloKind.FIELD_BYTE_OFFSET:
        if member.bitfield_size:
            return byte_off, 0, None, validate
        return byte_off, byte_sz, mtype, validate
    if kind == CoreReloKind.FIELD_BYTE_SIZE:
        return byte_sz, 0, None, validate
    if kind == CoreReloKind.FIELD_SIGNED:
        signed = (isinstance(mtype, T.Enum) and mtype.signed) or \
            (isinstance(mtype, T.Int) and mtype.signed)
        return int(signed), 0, None, True
    if kind == CoreReloKind.FIELD_LSHIFT_U64:
        if spec.spec.byte_order == "little":
            return 64 - (bit_off + bit_sz - byte_off * 8), 0, None, validate
        return (8 - byte_sz) * 8 + (bit_off - byte_off * 8), 0, None, validate
    if kind == CoreReloKind.FIELD_RSHIFT_U64:
        return 64 - bit_sz, 0, None, True
    raise CoreError(f"unknown CO-RE field relocation kind {kind}")


def _type_value(kind: CoreReloKind, spec: Optional[CoreSpec]) -> tuple[int, bool]:
    if spec is None:
        return 0, True
    if kind == CoreReloKind.TYPE_ID_TARGET:
        return spec.root.id or 0, False  # ids change in linking: never validated
    if kind in (CoreReloKind.TYPE_EXISTS, CoreReloKind.TYPE_MATCHES):
        return 1, True
    if kind == CoreReloKind.TYPE_SIZE:
        return T.sizeof(spec.root), True
    raise CoreError(f"unknown CO-RE type relocation kind {kind}")


def _enumval_value(kind: CoreReloKind, spec: Optional[CoreSpec]) -> int:
    if kind == CoreReloKind.ENUMVAL_EXISTS:
        return 1 if spec is not None else 0
    if spec is None:
        raise _Poison()
    acc = spec.access[0]
    assert isinstance(acc.type, T.Enum)  # parse_spec/match_spec made it of an enum
    return acc.type.values[acc.idx].value


def _calc(local: CoreSpec, target: Optional[CoreSpec]) -> CoreResult:
    """``bpf_core_calc_relo``: the local (as compiled) and target values."""
    res = CoreResult(local.kind, local, target)
    kind = local.kind
    try:
        if kind in _FIELD_KINDS:
            res.orig, res.orig_size, res.orig_type, res.validate = _field_value(kind, local)
            res.new, res.new_size, res.new_type, _ = _field_value(kind, target)
            if res.orig_size != res.new_size:
                o, n = res.orig_type, res.new_type
                both_ptrs = isinstance(o, T.Pointer) and isinstance(n, T.Pointer)
                both_unsigned = isinstance(o, T.Int) and isinstance(n, T.Int) and \
                    not o.signed and not n.signed
                res.fail_size_adjust = not (both_ptrs or both_unsigned)
        elif kind in _TYPE_KINDS:
            res.orig, res.validate = _type_value(kind, local)
            res.new, _ = _type_value(kind, target)
        else:
            res.orig = _enumval_value(kind, local)
            res.new = _enumval_value(kind, target)
    except _Poison:
        res.poison = True
        res.reason = f"no {_describe(local.root)} in the target BTF has it"
    return res


def relocate(local_spec: Spec, type_id: int, access: str, kind: int,
             targets: Sequence[Spec]) -> CoreResult:
    """Resolve one CO-RE relocation against ``targets`` (vmlinux, then module BTFs)."""
    kind = CoreReloKind(kind)
    local = parse_spec(local_spec, type_id, access, kind)
    if kind == CoreReloKind.TYPE_ID_LOCAL:
        return CoreResult(kind, local, None, type_id, type_id, validate=False)
    if not local.root.name:
        raise CoreError(f"CO-RE relocation against an anonymous {_describe(local.root)} "
                        f"(type id {type_id}): libbpf does not support this either")
    chosen: Optional[CoreResult] = None
    chosen_bits = 0  # the chosen target's bit offset
    for cand in candidates(local.root, targets):
        target = match_spec(local, cand)
        if target is None:
            continue
        res = _calc(local, target)
        if chosen is None:
            chosen, chosen_bits = res, target.bit_offset
        elif target.bit_offset != chosen_bits:
            raise CoreError(f"CO-RE {kind.name.lower()} of {local}: ambiguous field offset in "
                            f"{_describe(cand)} ({target.bit_offset} != {chosen_bits} bits)")
        elif res.poison != chosen.poison or res.new != chosen.new:
            raise CoreError(f"CO-RE {kind.name.lower()} of {local}: candidates disagree "
                            f"({chosen.new} vs {res.new} in {_describe(cand)})")
    if chosen is None:
        chosen = _calc(local, None)
        if chosen.poison:
            chosen.reason = f"no type named {essential_name(local.root.name)!r} of a compatible " \
                            f"kind has a matching {local}"
    return chosen


# --- instructions -------------------------------------------------------------------------

def patch(insns: bytearray, index: int, res: CoreResult) -> None:
    """Apply ``res`` to instruction ``index`` of ``insns`` (``bpf_core_patch_insn``)."""
    if (index + 1) * INSN_SIZE > len(insns):
        raise CoreError(f"{res.describe()}: instruction #{index} is past the program's end")
    if res.poison:
        rewrite.poison(insns, index, _ORDER)
        return
    code, _, src, off, imm = rewrite.fields(insns, index, _ORDER)
    cls = code & 0x07
    where = f"{res.describe()}: instruction #{index}"
    if cls in (Class.ALU, Class.ALU64):
        if code & 0x08 != Source.K:
            raise CoreError(f"{where} is an ALU instruction with a register source")
        if res.validate and imm & 0xFFFFFFFF != res.orig & 0xFFFFFFFF:
            raise CoreError(f"{where}: immediate is {imm}, expected {res.orig}")
        rewrite.patch(insns, index, _ORDER, imm=res.new)
    elif cls in (Class.LDX, Class.ST, Class.STX):
        if res.validate and off != res.orig:
            raise CoreError(f"{where}: offset is {off}, expected {res.orig}")
        if res.new > 0x7FFF:
            raise CoreError(f"{where}: offset {res.new} does not fit the instruction")
        if res.fail_size_adjust:
            res.poison = True
            res.reason = (f"the field is {res.orig_size} bytes locally and {res.new_size} in the "
                          f"target; only pointers and unsigned integers can be resized")
            rewrite.poison(insns, index, _ORDER)
            return
        if res.new_size != res.orig_size:
            size = Size(code & 0x18).bytes
            if size != res.orig_size:
                raise CoreError(f"{where}: accesses {size} bytes, expected {res.orig_size}")
            if res.new_size not in _SIZE_OF_BYTES:
                raise CoreError(f"{where}: cannot access {res.new_size} bytes in one instruction")
            code = (code & ~0x18) | _SIZE_OF_BYTES[res.new_size]
        rewrite.patch(insns, index, _ORDER, op=code, off=res.new)
    elif code == LD_IMM64:
        if (index + 2) * INSN_SIZE > len(insns):
            raise CoreError(f"{where}: ld_imm64 is cut short")
        code2, dst2, src2, off2, imm2 = rewrite.fields(insns, index + 1, _ORDER)
        if src or off or code2 or dst2 or src2 or off2:
            raise CoreError(f"{where}: ld_imm64 has an unexpected form")
        value = (imm & 0xFFFFFFFF) | (imm2 & 0xFFFFFFFF) << 32
        if res.validate and value != res.orig & 0xFFFFFFFFFFFFFFFF:
            raise CoreError(f"{where}: immediate is {value}, expected {res.orig}")
        rewrite.set_imm64(insns, index, _ORDER, res.new & 0xFFFFFFFFFFFFFFFF)
    else:
        raise CoreError(f"{where} (opcode {code:#04x}) cannot be relocated")


def apply(insns: bytearray, relos: Iterable[tuple[int, int, str, int]], local_spec: Spec,
          targets: Optional[Sequence[Spec]] = None) -> list[tuple[int, CoreResult]]:
    """Relocate ``insns`` in place for ``relos`` = (instruction index, local type id, access
    string, kind); returns each instruction index with its result (poisoned ones included)."""
    if targets is None:
        targets = kernel_specs()
    done = []
    for index, type_id, access, kind in relos:
        res = relocate(local_spec, type_id, access, kind, targets)
        patch(insns, index, res)
        done.append((index, res))
    return done


def kernel_specs() -> list[Spec]:
    """vmlinux's BTF, then each kernel module's: the default CO-RE targets."""
    return [Spec.vmlinux()] + [Spec.module(m) for m in Spec.module_names()]


def explain_poison(log: str, results: Iterable[tuple[int, CoreResult]]) -> str:
    """The poisoned relocations a verifier log trips over, one line each ('' if none)."""
    if str(POISON_HELPER) not in log and f"{POISON_HELPER:#x}" not in log:
        return ""
    return "\n".join(f"instruction #{i}: {r.describe()}" for i, r in results if r.poison)
