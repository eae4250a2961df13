"""Make an object's BTF loadable: the ELF fix-ups clang leaves to the loader, and rewrites of
kinds an older kernel's BTF checker refuses (as libbpf's ``bpf_object__sanitize_btf``).

For the ELF loader: ``fixup_datasecs(btf, section_sizes, var_offsets, hidden)`` fills each
DATASEC's size from ``{section name: size}`` (clang writes 0) and its variables' offsets from
``{variable name: symbol value}``, turns variables with hidden visibility static, and sorts
each section's variables by offset (the kernel wants them in order). Then
``sanitize(blob)`` rewrites for the running kernel (``KernelBTF.probe()``)::

    sizes = {sec.name: sec.size for sec in elf.sections}             # NOBITS .bss included
    values = {sym.name: sym.value for sym in elf.symbols if sym.type == STT_OBJECT}
    hidden = {sym.name for sym in ... if sym.visibility in (STV_HIDDEN, STV_INTERNAL)}
    blob = sanitize(fixup_datasecs(elf.section(".BTF").data, sizes, values, hidden))
    btf = BTF.load(blob)   # map and program BTF ids are those of the object's .BTF

Both work on the raw words in place: every type keeps its id and every string its offset
(programs and ``.BTF.ext`` refer to them); the only addition is one INT appended after all
types when ENUM64 must become a union.
"""
from __future__ import annotations

import struct
import sys
from array import array
from typing import Collection, Mapping, Union

from .._record import record
from ..errors import BTFError
from ..sys.uapi import BtfKind
from . import types as T
from .spec import BTF_MAGIC, Spec

_KFLAG = 1 << 31
_EXTERN_SECTIONS = (".kconfig", ".ksyms")  # sizes and offsets set by the loader's extern pass


def _info(kind: int, vlen: int = 0, kflag: bool = False) -> int:
    return (_KFLAG if kflag else 0) | kind << 24 | vlen


@record(frozen=True)
class KernelBTF:
    """Which BTF kinds the kernel accepts (all True: no rewriting)."""

    func: bool = True
    func_global: bool = True
    datasec: bool = True
    float: bool = True
    decl_tag: bool = True
    type_tag: bool = True
    enum64: bool = True

    @classmethod
    def probe(cls) -> "KernelBTF":
        """The running kernel's answers (``pybpf.btf.probes``, cached)."""
        from . import probes as f  # the syscall layer on use: pybpf.btf imports anywhere
        return cls(func=bool(f.btf_func()), func_global=bool(f.btf_func_global()),
                   datasec=bool(f.btf_datasec()), float=bool(f.btf_float()),
                   decl_tag=bool(f.btf_decl_tag()), type_tag=bool(f.btf_type_tag()),
                   enum64=bool(f.btf_enum64()))


class _Raw:
    """A mutable copy of a spec's type words and own strings."""

    def __init__(self, btf: Union[bytes, Spec]) -> None:
        self.spec = btf if isinstance(btf, Spec) else Spec.parse(btf)
        self.words = array("I", self.spec._words)
        self.strings = bytearray(self.spec._strings)
        self.offsets = self.spec._index()
        self.first_id = self.spec._first_id

    def word_of(self, type_id: int) -> int:
        """The word offset of (own) type ``type_id``."""
        i = type_id - self.first_id
        if not 0 <= i < len(self.offsets):
            raise BTFError(f"{self.spec.name}: type id {type_id} is not in this BTF")
        return self.offsets[i]

    def name(self, w: int) -> str:
        return self.spec.string(self.words[w]) if self.words[w] else ""

    def add_string(self, s: str) -> int:
        off = self.spec._str_base + len(self.strings)
        self.strings += s.encode() + b"\0"
        return off

    def blob(self) -> bytes:
        words = array("I", self.words)
        if self.spec.byte_order != sys.byteorder:
            words.byteswap()
        types, strings = words.tobytes(), bytes(self.strings)
        prefix = "<" if self.spec.byte_order == "little" else ">"
        header = struct.pack(prefix + "HBBIIIII", BTF_MAGIC, 1, 0, 24, 0, len(types),
                             len(types), len(strings))
        return header + types + strings


def sanitize(btf: Union[bytes, Spec], kernel: KernelBTF | None = None) -> bytes:
    """Rewrite what ``kernel`` (default: the running kernel) lacks, keeping every type id.

    VAR and DECL_TAG (also one tagging a rewritten VAR or FUNC) become a 1-byte INT, DATASEC a STRUCT of its variables (dots in its name
    made underscores), FUNC_PROTO an ENUM and FUNC a TYPEDEF (no func info), global FUNC
    static, FLOAT an empty anonymous STRUCT of its size, TYPE_TAG a CONST, ENUM64 a UNION of
    one-byte INTs (and ENUM loses its signedness flag).
    """
    k = kernel if kernel is not None else KernelBTF.probe()
    r = _Raw(btf)
    words = r.words
    placeholder = 0
    for w in r.offsets:
        info = words[w + 1]
        kind, vlen = info >> 24 & 31, info & 0xFFFF
        if (kind == BtfKind.VAR and not k.datasec) or (kind == BtfKind.DECL_TAG and (
                not k.decl_tag or _rewritten(r, words[w + 2], k))):
            words[w + 1], words[w + 2], words[w + 3] = _info(BtfKind.INT), 1, 8
        elif kind == BtfKind.DATASEC and not k.datasec:
            start = words[w] - r.spec._str_base
            end = r.strings.find(b"\0", start)
            if start >= 0 and end > start:
                r.strings[start:end] = r.strings[start:end].replace(b".", b"_")
            words[w + 1] = _info(BtfKind.STRUCT, vlen)
            for j in range(w + 3, w + 3 + 3 * vlen, 3):
                var_id, offset = words[j], words[j + 1]
                words[j] = words[r.word_of(var_id)] if var_id >= r.first_id else 0
                words[j + 1], words[j + 2] = var_id, offset * 8
        elif kind == BtfKind.FUNC_PROTO and not k.func:
            words[w + 1], words[w + 2] = _info(BtfKind.ENUM, vlen), 4
        elif kind == BtfKind.FUNC and not k.func:
            words[w + 1] = _info(BtfKind.TYPEDEF)
        elif kind == BtfKind.FUNC and not k.func_global:
            words[w + 1] = _info(BtfKind.FUNC, T.LINKAGE_STATIC)
        elif kind == BtfKind.FLOAT and not k.float:
            words[w], words[w + 1] = 0, _info(BtfKind.STRUCT)
        elif kind == BtfKind.TYPE_TAG and not k.type_tag:
            words[w], words[w + 1] = 0, _info(BtfKind.CONST)
        elif kind == BtfKind.ENUM and not k.enum64:
            words[w + 1] = _info(BtfKind.ENUM, vlen)
        elif kind == BtfKind.ENUM64 and not k.enum64:
            if not placeholder:
                placeholder = r.first_id + len(r.offsets)
            words[w + 1] = _info(BtfKind.UNION, vlen)
            for j in range(w + 3, w + 3 + 3 * vlen, 3):
                words[j + 1], words[j + 2] = placeholder, 0
    if placeholder:
        words.extend((r.add_string("enum64_placeholder"), _info(BtfKind.INT), 1, 8))
    return r.blob()


def _rewritten(r: _Raw, type_id: int, k: KernelBTF) -> bool:
    """Does sanitize turn (own) type ``type_id`` into a kind a DECL_TAG cannot point at?"""
    if type_id < r.first_id or type_id - r.first_id >= len(r.offsets):
        return False
    kind = r.spec._words[r.offsets[type_id - r.first_id] + 1] >> 24 & 31
    return (kind == BtfKind.VAR and not k.datasec) or (kind == BtfKind.FUNC and not k.func)


def fixup_datasecs(btf: Union[bytes, Spec], section_sizes: Mapping[str, int],
                   var_offsets: Mapping[str, int], hidden: Collection[str] = ()) -> bytes:
    """Fill what clang leaves to the loader (as libbpf's ``btf_fixup_datasec``).

    A DATASEC of size 0 gets ``section_sizes[name]`` (the ELF section's size) and its
    variables the offsets ``var_offsets[var name]`` (their ELF symbols' values): a global
    variable without one is an error, a static or extern one keeps its offset. Variables named
    in ``hidden`` (STV_HIDDEN/STV_INTERNAL symbols) become static. ``.kconfig``/``.ksyms`` are
    only sorted. Entries end up sorted by offset.
    """
    r = _Raw(btf)
    words = r.words
    for w in r.offsets:
        info = words[w + 1]
        if info >> 24 & 31 != BtfKind.DATASEC:
            continue
        sec, vlen = r.name(w), info & 0xFFFF
        entries = [tuple(words[j:j + 3]) for j in range(w + 3, w + 3 + 3 * vlen, 3)]
        if sec not in _EXTERN_SECTIONS:
            fix = words[w + 2] == 0
            if fix:
                size = section_sizes.get(sec, 0)
                if not size:
                    raise BTFError(f"DATASEC {sec!r}: the ELF object has no section {sec!r} "
                                   f"(or it is empty) to take its size from")
                words[w + 2] = size
            for n, (var_id, offset, vsize) in enumerate(entries):
                vw = r.word_of(var_id)
                if words[vw + 1] >> 24 & 31 != BtfKind.VAR:
                    raise BTFError(f"DATASEC {sec!r}: entry {n} (type {var_id}) is not a VAR")
                var, linkage = r.name(vw), words[vw + 3]
                if var in var_offsets:
                    if fix:
                        offset = var_offsets[var]
                elif linkage == T.LINKAGE_GLOBAL:
                    raise BTFError(f"DATASEC {sec!r}: no ELF symbol for global variable {var!r}")
                if var in hidden and linkage == T.LINKAGE_GLOBAL:
                    words[vw + 3] = T.LINKAGE_STATIC
                entries[n] = (var_id, offset, vsize)
        entries.sort(key=lambda e: e[1])
        for j, e in zip(range(w + 3, w + 3 + 3 * vlen, 3), entries):
            words[j:j + 3] = array("I", e)
    return r.blob()
