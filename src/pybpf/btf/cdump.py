"""BTF as C: compilable type definitions, like ``bpftool btf dump file X format c`` (vmlinux.h).

Types are emitted in an order C accepts: a type embedded in another (a member, an array
element, a typedef's target) is defined first; a named struct/union only needed through a
pointer gets a forward declaration (``struct foo;``), which also breaks reference cycles.
Anonymous structs, unions and enums are defined inline where they are used; an anonymous enum
that no type references is a block of global constants and is emitted on its own.

Names that clash in C get libbpf's ``___N`` suffix, in emission order: struct/union/enum tags
share one namespace, typedef names and enumerators another. Layout is reproduced exactly:
bitfields, explicit padding (``long: 64;``), ``__attribute__((packed))`` where members are off
their natural alignment, ``mode(byte)``/``mode(word)`` for enums of unusual size.

The algorithm and output follow libbpf's ``btf_dump.c``: for the running kernel the output is
Debian's bpftool 7.1 (libbpf 1.1) output line for line, except that 1-byte enums keep their
size with ``mode(byte)`` as current libbpf emits (libbpf 1.1 lets them grow to 4 bytes).
``dump_c(..., kfuncs=True)`` adds the kfunc prototypes newer bpftool appends.
"""
from __future__ import annotations

import itertools
import sys
from typing import Iterable, Optional, Union

from ..errors import BTFError
from ..sys.uapi import BtfKind
from . import types as T
from .spec import Spec

VMLINUX_GUARD = "__VMLINUX_H__"

_NOT, _BUSY, _DONE = 0, 1, 2   # ordering and emission states of a type id

_MODS = frozenset({BtfKind.VOLATILE, BtfKind.CONST, BtfKind.RESTRICT, BtfKind.TYPE_TAG})
_LEAVES = frozenset({BtfKind.INT, BtfKind.ENUM, BtfKind.ENUM64, BtfKind.FWD, BtfKind.STRUCT,
                     BtfKind.UNION, BtfKind.TYPEDEF, BtfKind.FLOAT})
_QUALIFIER_WORD = {BtfKind.VOLATILE: "volatile", BtfKind.CONST: "const",
                   BtfKind.RESTRICT: "restrict"}

# Base types GCC's ARM SIMD intrinsics use without defining them.
_MISSING_BASE_TYPES = {"__Poly8_t": "unsigned char", "__Poly16_t": "unsigned short",
                       "__Poly64_t": "unsigned long long", "__Poly128_t": "unsigned __int128"}

TypeOrId = Union[T.Type, int]


def _pfx(lvl: int) -> str:
    return "\t" * min(lvl, 13)


class CDumper:
    """Emits C definitions of a spec's types; each type (and each dependency) once.

    ``reserved`` are identifiers the including program defines itself (a map called
    ``config``): typedefs and enumerators of those names are emitted as ``name___2``.
    ``subset``: only the types asked for are dumped, so an anonymous enum asked for is
    emitted as its block of constants without checking (one pass over the whole spec)
    whether another type embeds it.
    """

    def __init__(self, spec: Spec, reserved: Iterable[str] = (), subset: bool = False) -> None:
        self.spec = spec
        n = len(spec)
        self._order = bytearray(n)
        self._emit = bytearray(n)
        self._fwd = bytearray(n)
        self._emit[0] = self._order[0] = _DONE
        self._referenced: Optional[bytearray] = bytearray(n) if subset else None
        self._names: dict[int, str] = {}
        self._type_names: dict[str, int] = {}
        self._ident_names: dict[str, int] = dict.fromkeys(reserved, 1)
        self._align: dict[int, int] = {}
        self._ptr_bits = spec.pointer_size * 8
        self._out: list[str] = []

    # --- public -------------------------------------------------------------------------

    def dump_type(self, t: TypeOrId) -> str:
        """C definitions of ``t`` and of every type it needs that was not emitted before
        (nothing for kinds that define no type: funcs, vars, datasecs, decl tags)."""
        t = self._type(t)
        assert t.id is not None  # _type checked it
        if self._order[t.id] == _DONE:
            return ""  # emitted before, or needs no definition
        queue: list[T.Type] = []
        start = len(self._out)
        try:
            self._order_type(t, False, queue)
            for q in queue:
                self._emit_type(q, 0)
        except RecursionError:
            del self._out[start:]
            raise BTFError(f"{self.spec.name}: types nest too deeply below {t!r}") from None
        text = "".join(self._out[start:])
        del self._out[start:]
        return text

    def decl(self, t: TypeOrId, name: str = "") -> str:
        """``t`` as a C declaration of ``name`` (``struct sk_buff *skb``, ``int (*fn)(void)``);
        anonymous structs, unions and enums are spelled out inline."""
        start = len(self._out)
        self._decl(self._type(t), name, 0)
        text = "".join(self._out[start:])
        del self._out[start:]
        return text

    def c_name(self, t: TypeOrId) -> str:
        """The name ``t`` has in the emitted C: its BTF name, or ``name___N`` where that name
        was taken by an earlier type (as bpftool names it); '' if anonymous."""
        t = self._type(t)
        if isinstance(t, T.Typedef):
            return self._ident_name(t)
        return self._type_name(t)

    def _type(self, t: TypeOrId) -> T.Type:
        if isinstance(t, int):
            return self.spec.type_by_id(t)
        if t.id is None or t._spec is None:
            raise BTFError(f"{t!r} does not belong to a parsed spec: encode it first")
        spec: Optional[Spec] = self.spec
        while spec is not t._spec:  # its own spec, or (split BTF) one of its bases
            if spec is None:
                raise BTFError(f"{t!r} belongs to {t._spec.name}, not to {self.spec.name}")
            spec = spec.base
        return t

    # --- ordering (which definitions, in which order) -----------------------------------

    def _is_referenced(self, t: T.Type) -> bool:
        """Whether any type refers to ``t`` (computed on first need: one pass over the spec)."""
        if self._referenced is None:
            ref = bytearray(len(self.spec))
            for u in self.spec:
                for r in _references(u):
                    assert r.id is not None  # types of a parsed spec have ids
                    ref[r.id] = 1
            self._referenced = ref
        assert t.id is not None
        return bool(self._referenced[t.id])

    def _order_type(self, t: T.Type, through_ptr: bool, queue: list[T.Type]) -> bool:
        """Queue the definitions ``t`` needs, dependencies first. True if ``t`` must be fully
        defined before its user (a strong link), False if a forward declaration will do."""
        tid = t.id
        assert tid is not None  # types of a parsed spec have ids
        state = self._order[tid]
        if state == _DONE:
            return True
        if state == _BUSY:
            if isinstance(t, T.Composite) and through_ptr and t.name:
                return False
            raise BTFError(f"{self.spec.name}: type [{tid}] {t.name or '(anon)'} contains "
                           f"itself (an unsatisfiable type cycle)")
        if isinstance(t, (T.Int, T.Float)):
            self._order[tid] = _DONE
            return False
        if isinstance(t, T.Pointer):
            strong = self._order_type(t.target, True, queue)
            self._order[tid] = _DONE
            return strong
        if isinstance(t, T.Array):
            return self._order_type(t.type, False, queue)
        if isinstance(t, T.Composite):
            if through_ptr and t.name:
                return False
            self._order[tid] = _BUSY
            for m in t.members:
                self._order_type(m.type, False, queue)
            if t.name:
                queue.append(t)
            self._order[tid] = _DONE
            return True
        if isinstance(t, (T.Enum, T.Fwd)):
            if t.name or not self._is_referenced(t):
                queue.append(t)
            self._order[tid] = _DONE
            return True
        if isinstance(t, T.Typedef):
            strong = self._order_type(t.type, through_ptr, queue)
            if through_ptr and not strong:
                return False
            queue.append(t)
            self._order[tid] = _DONE
            return True
        if isinstance(t, T.Qualifier):
            return self._order_type(t.type, through_ptr, queue)
        if isinstance(t, T.FuncProto):
            strong = self._order_type(t.return_type, through_ptr, queue)
            for p in t.params:
                strong = self._order_type(p.type, through_ptr, queue) or strong
            return strong
        self._order[tid] = _DONE  # func, var, datasec, decl tag: nothing to define
        return False

    # --- emission -----------------------------------------------------------------------

    def _emit_type(self, t: T.Type, cont_id: int) -> None:
        """Emit ``t``'s definition if at top level (``cont_id`` 0), else whatever forward
        declarations its use inside the definition of type ``cont_id`` requires."""
        tid = t.id
        assert tid is not None  # types of a parsed spec have ids
        state = self._emit[tid]
        if state == _DONE:
            return
        w = self._out.append
        if state == _BUSY:
            if self._fwd[tid]:
                return
            if isinstance(t, T.Composite):
                if tid == cont_id or not t.name:
                    return  # a reference to the struct being defined; or malformed
                self._struct_fwd(t)
                w(";\n\n")
                self._fwd[tid] = 1
            elif isinstance(t, T.Typedef):
                # a typedef used through a pointer inside its own target: define it now
                if t.name != "__builtin_va_list":
                    self._typedef_def(t, 0)
                    w(";\n\n")
                self._fwd[tid] = 1
            return
        if isinstance(t, T.Int):
            alias = _MISSING_BASE_TYPES.get(t.name)
            if alias:
                w(f"typedef {alias} {t.name};\n\n")
            self._emit[tid] = _DONE
        elif isinstance(t, T.Enum):
            if not cont_id:
                self._enum_def(t, 0)
                w(";\n\n")
            self._emit[tid] = _DONE
        elif isinstance(t, T.Pointer):
            self._emit_type(t.target, cont_id)
        elif isinstance(t, (T.Qualifier, T.Array)):
            self._emit_type(t.type, cont_id)
        elif isinstance(t, T.Fwd):
            self._fwd_def(t)
            w(";\n\n")
            self._emit[tid] = _DONE
        elif isinstance(t, T.Typedef):
            self._emit[tid] = _BUSY
            self._emit_type(t.type, tid)
            if not self._fwd[tid] and t.name != "__builtin_va_list":
                self._typedef_def(t, 0)
                w(";\n\n")
            self._emit[tid] = _DONE
        elif isinstance(t, T.Composite):
            self._emit[tid] = _BUSY
            if not cont_id or not t.name:
                inner = cont_id if not t.name else tid
                for m in t.members:
                    self._emit_type(m.type, inner)
            elif not self._fwd[tid] and tid != cont_id:
                self._struct_fwd(t)
                w(";\n\n")
                self._fwd[tid] = 1
            if not cont_id:
                self._struct_def(t, 0)
                w(";\n\n")
                self._emit[tid] = _DONE
            else:
                self._emit[tid] = _NOT
        elif isinstance(t, T.FuncProto):
            self._emit_type(t.return_type, cont_id)
            for p in t.params:
                self._emit_type(p.type, cont_id)

    # --- names --------------------------------------------------------------------------

    def _resolve_name(self, t: T.Type, names: dict[str, int]) -> str:
        """``t``'s name, with a ``___N`` suffix if the name was taken before in ``names``."""
        name = t.name
        if not name:
            return ""
        tid = t.id
        assert tid is not None  # types of a parsed spec have ids
        resolved = self._names.get(tid)
        if resolved is not None:
            return resolved
        # forward declarations (a forward-declared enum: BTF_KIND_ENUM without values) take
        # no name of their own
        if not isinstance(t, T.Fwd) and not (type(t) is T.Enum and not t.values):
            count = names.get(name, 0) + 1
            names[name] = count
            if count > 1:
                name = f"{name}___{count}"
        self._names[tid] = name
        return name

    def _type_name(self, t: T.Type) -> str:
        return self._resolve_name(t, self._type_names)

    def _ident_name(self, t: T.Type) -> str:
        return self._resolve_name(t, self._ident_names)

    # --- definitions --------------------------------------------------------------------

    def _struct_fwd(self, t: T.Composite) -> None:
        kw = "struct" if t.kind == BtfKind.STRUCT else "union"
        self._out.append(f"{kw} {self._type_name(t)}" if t.name else kw)

    def _fwd_def(self, t: T.Fwd) -> None:
        self._out.append(f"{'union' if t.union else 'struct'} {self._type_name(t)}")

    def _typedef_def(self, t: T.Typedef, lvl: int) -> None:
        name = self._ident_name(t)
        if t.type is T.VOID and name == "__gnuc_va_list":
            # old GCC's invalid typedef of __gnuc_va_list to void
            self._out.append("typedef __builtin_va_list __gnuc_va_list")
            return
        self._out.append("typedef ")
        self._decl(t.type, name, lvl)

    def _alignof(self, t: T.Type) -> int:
        """libbpf's ``btf__align_of``, memoized per type id (member alignments included)."""
        tid = t.id
        assert tid is not None  # types of a parsed spec have ids
        a = self._align.get(tid)
        if a is None:
            u = T.skip_qualifiers(t)
            while isinstance(u, T.Array):
                u = T.skip_qualifiers(u.type)
            a = self._layout(u)[0] if isinstance(u, T.Composite) else T.alignof(u)
            self._align[tid] = a
        return a

    def _layout(self, t: T.Composite) -> tuple[int, bool]:
        """A struct/union's alignment, and whether it is packed: a non-bitfield member off
        its natural alignment, or a size that is not a multiple of the alignment (then the
        alignment is 1)."""
        most = 1
        for m in t.members:
            align = self._alignof(m.type)
            if not m.bitfield_size and m.offset % (8 * align):
                return 1, True
            most = max(most, align)
        return (1, True) if t.size % most else (most, False)

    def _struct_def(self, t: T.Composite, lvl: int) -> None:
        w = self._out.append
        is_struct = t.kind == BtfKind.STRUCT
        align, packed = self._layout(t)
        packed = packed and is_struct
        kw = "struct" if is_struct else "union"
        w(f"{kw} {self._type_name(t)} {{" if t.name else f"{kw} {{")
        off, prev_bitfield = 0, False
        inner = _pfx(lvl + 1)
        for m in t.members:
            bits, m_off = m.bitfield_size, m.offset
            m_align = 1 if packed else self._alignof(m.type)
            self._padding(off, m_off, m_align, prev_bitfield and bits != 0, lvl + 1)
            w("\n" + inner)
            self._decl(m.type, m.name, lvl + 1)
            if bits:
                w(f": {bits};")
                off, prev_bitfield = m_off + bits, True
            else:
                w(";")
                off, prev_bitfield = m_off + 8 * self._sizeof(m.type), False
        if is_struct:
            self._padding(off, t.size * 8, align, False, lvl + 1)
        w(f"\n{_pfx(lvl)}}}" if t.members or t.size else "}")
        if packed:
            w(" __attribute__((packed))")

    def _sizeof(self, t: T.Type) -> int:
        try:
            return T.sizeof(t)
        except BTFError:
            return 0

    def _padding(self, cur: int, nxt: int, next_align: int, in_bitfield: bool,
                 lvl: int) -> None:
        """Explicit anonymous bitfields (``long: 64;``) filling bits ``cur`` to ``nxt``, using
        the largest of long/int/short/char that lands on a boundary within the gap and letting
        natural alignment do the rest where it can."""
        if cur >= nxt:
            return
        w = self._out.append
        pfx = _pfx(lvl)
        pads = (("long", self._ptr_bits), ("int", 32), ("short", 16), ("char", 8))
        new = pad_bits = 0
        pad_type = ""
        for pad_type, pad_bits in pads:
            new = -(-cur // pad_bits) * pad_bits
            if new <= nxt:
                break
        if cur < new <= nxt:
            aligned = -(-cur // (next_align * 8)) * next_align * 8
            if (in_bitfield or (new == nxt and aligned != new)
                    or (new != nxt and nxt - new <= new - cur)):
                w(f"\n{pfx}{pad_type}: {new - cur if in_bitfield else 0};")
            cur = new
        while cur != nxt:
            bits = min(nxt - cur, pad_bits)
            if bits == pad_bits:
                w(f"\n{pfx}{pad_type}: {pad_bits};")
                cur += bits
                continue
            for pad_type, pad_bits in reversed(pads):
                if pad_bits >= bits:
                    w(f"\n{pfx}{pad_type}: {bits};")
                    cur += bits
                    break

    def _enum_def(self, t: T.Enum, lvl: int) -> None:
        w = self._out.append
        if t.name and not t.values:  # a forward-declared enum (as libbpf: `enum x;`)
            w(f"enum {self._type_name(t)}")
            return
        w(f"enum {self._type_name(t)} {{" if t.name else "enum {")
        inner = _pfx(lvl + 1)
        suffix = ("LL" if t.signed else "ULL") if t.kind == BtfKind.ENUM64 else ""
        idents = self._ident_names
        for v in t.values:
            count = idents.get(v.name, 0) + 1   # enumerators share typedefs' namespace
            idents[v.name] = count
            name = f"{v.name}___{count}" if count > 1 else v.name
            w(f"\n{inner}{name} = {v.value}{suffix},")
        w(f"\n{_pfx(lvl)}}}")
        if t.size == 1:
            w(" __attribute__((mode(byte)))")
        elif t.size == 8 and self._ptr_bits == 64:
            # 8 bytes come naturally only from a value that does not fit in 32 bits
            if t.kind == BtfKind.ENUM or all(_hi32(v.value) == 0 for v in t.values):
                w(" __attribute__((mode(word)))")

    # --- declarations (the C declarator syntax) -----------------------------------------

    def _decl(self, t: T.Type, fname: str, lvl: int) -> None:
        """Emit ``t`` declaring ``fname``: walk to the base type pushing pointers, modifiers,
        arrays and prototypes, then unwind them in C's inside-out declarator order."""
        stack = []
        for _ in range(T.MAX_RESOLVE_DEPTH * 4):
            stack.append(t)
            k = t.kind
            if t is T.VOID or k in _LEAVES:
                break
            if isinstance(t, T.Pointer):
                t = t.target
            elif isinstance(t, T.FuncProto):
                t = t.return_type
            elif isinstance(t, (T.Array, T.Qualifier)):
                t = t.type
            else:
                raise BTFError(f"{self.spec.name}: {t!r} cannot be part of a declaration")
        else:
            raise BTFError(f"{self.spec.name}: declaration chain from {stack[0]!r} is too long")
        self._chain(stack, fname, lvl)

    def _mods(self, decls: list[T.Type]) -> None:
        """Emit const/volatile/restrict on top of the stack (they precede a base type)."""
        while decls:
            word = _QUALIFIER_WORD.get(decls[-1].kind)
            if word is None:
                return
            self._out.append(word + " ")
            decls.pop()

    @staticmethod
    def _drop_mods(decls: list[T.Type]) -> None:
        while decls and decls[-1].kind in _MODS:
            decls.pop()

    def _name(self, fname: str, last_was_ptr: bool) -> None:
        self._out.append(" " + fname if fname and not last_was_ptr else fname)

    def _chain(self, decls: list[T.Type], fname: str, lvl: int) -> None:
        w = self._out.append
        last_was_ptr = True
        while decls:
            t = decls.pop()
            if t is T.VOID:
                self._mods(decls)
                w("void")
                last_was_ptr = False
                continue
            k = t.kind
            if isinstance(t, (T.Int, T.Float)):
                self._mods(decls)
                w(t.name)
            elif isinstance(t, T.Composite):
                self._mods(decls)
                if t.name:
                    self._struct_fwd(t)
                else:
                    self._struct_def(t, lvl)
            elif isinstance(t, T.Enum):
                self._mods(decls)
                if t.name:
                    w("enum " + self._type_name(t))
                else:
                    self._enum_def(t, lvl)
            elif isinstance(t, T.Fwd):
                self._mods(decls)
                self._fwd_def(t)
            elif isinstance(t, T.Typedef):
                self._mods(decls)
                w(self._ident_name(t))
            elif isinstance(t, T.Pointer):
                w("*" if last_was_ptr else " *")
            elif isinstance(t, T.TypeTag):
                self._mods(decls)
                w(f" __attribute__(({t.name}))" if t.attribute
                  else f' __attribute__((btf_type_tag("{t.name}")))')
            elif k in _QUALIFIER_WORD:
                w(" " + _QUALIFIER_WORD[k])
            elif isinstance(t, T.Array):
                # qualifiers on an array (a GCC quirk) mean nothing: drop them
                self._drop_mods(decls)
                if not decls:
                    self._name(fname, last_was_ptr)
                    w(f"[{t.nelems}]")
                    return
                multidim = decls[-1].kind == BtfKind.ARRAY
                if fname and not last_was_ptr:
                    w(" ")
                if not multidim:
                    w("(")
                self._chain(decls, fname, lvl)
                if not multidim:
                    w(")")
                w(f"[{t.nelems}]")
                return
            elif isinstance(t, T.FuncProto):
                self._drop_mods(decls)  # GCC's volatile on noreturn function pointers
                if decls:
                    w(" (")
                    self._chain(decls, fname, lvl)
                    w(")")
                else:
                    self._name(fname, last_was_ptr)
                params = t.params
                if not params or (len(params) == 1 and params[0].type is T.VOID):
                    w("(void)")
                    return
                w("(")
                last = len(params) - 1
                for i, p in enumerate(params):
                    if i:
                        w(", ")
                    if i == last and p.type is T.VOID:
                        w("...")
                        break
                    self._decl(p.type, p.name, lvl)
                w(")")
                return
            last_was_ptr = k == BtfKind.PTR
        self._name(fname, last_was_ptr)


def _hi32(v: int) -> int:
    return (v >> 32) & 0xFFFFFFFF


def _references(t: T.Type) -> Iterable[T.Type]:
    """The types ``t`` refers to directly."""
    if isinstance(t, T.Composite):
        return [m.type for m in t.members]
    if isinstance(t, T.FuncProto):
        return [p.type for p in t.params]
    if isinstance(t, T.Pointer):
        return (t.target,)
    if isinstance(t, T.Array):
        return (t.type, t.index_type)
    if isinstance(t, T.Func):
        return (t.proto,)
    if isinstance(t, T.Datasec):
        return [v.type for v in t.vars]
    if isinstance(t, (T.Qualifier, T.Typedef, T.Var, T.DeclTag)):
        return (t.type,)
    return ()


_KFUNC_MACROS = """#ifndef __ksym
#define __ksym __attribute__((section(".ksyms")))
#endif

#ifndef __weak
#define __weak __attribute__((weak))
#endif

#ifndef __bpf_fastcall
#if __has_attribute(bpf_fastcall)
#define __bpf_fastcall __attribute__((bpf_fastcall))
#else
#define __bpf_fastcall
#endif
#endif

"""


def kfunc_prototypes(spec: Spec, dumper: Optional[CDumper] = None) -> str:
    """``extern`` declarations of the kernel functions BPF programs may call (kfuncs: FUNCs
    with the ``bpf_kfunc`` decl tag), sorted by name, as newer bpftool appends to vmlinux.h;
    a program that declares them itself defines ``BPF_NO_KFUNC_PROTOTYPES``."""
    dumper = dumper or CDumper(spec)
    kfuncs: dict[str, T.Func] = {}
    fastcall: set[int] = set()
    for t in spec:
        if isinstance(t, T.DeclTag) and t.component_idx == -1 and isinstance(t.type, T.Func):
            if t.name == "bpf_kfunc":
                kfuncs[t.type.name] = t.type
            elif t.name == "bpf_fastcall":
                fastcall.add(T.type_id(t.type))
    return _prototypes(dumper, kfuncs, fastcall)


def _prototypes(dumper: CDumper, kfuncs: dict[str, T.Func], fastcall: set[int]) -> str:
    lines = ["\n/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n"]
    for name in sorted(kfuncs):
        func = kfuncs[name]
        extern = "extern __bpf_fastcall " if func.id in fastcall else "extern "
        lines.append(f"{extern}{dumper.decl(func.proto, name)} __weak __ksym;\n")
    lines.append("#endif\n\n")
    return "".join(lines)


_NAMED_KINDS = frozenset({BtfKind.STRUCT, BtfKind.UNION, BtfKind.ENUM, BtfKind.ENUM64,
                          BtfKind.TYPEDEF, BtfKind.FWD})


def names_index(spec: Spec) -> dict[str, list[int]]:
    """What a C program can name of ``spec``'s own types, with their ids: struct, union and
    enum tags and typedef names (their types), enumerators (their enum), kfuncs (their
    FUNC, tagged ``bpf_kfunc``). One pass over the records of the kinds that name things
    (picked by their info words' top bytes), without decoding the types (for vmlinux, a
    small fraction of dumping it)."""
    words, offsets, infos = spec._words, spec._index(), spec._info_words()
    strings = spec._all_strings()
    text = strings.decode("latin-1")   # a character per byte: string offsets index it
    find = text.find
    pos = strings.find(b"\0bpf_kfunc\0")
    kfunc_off = pos + 1 if pos >= spec._str_base else -1
    first = spec._first_id
    top = infos.tobytes()[3::4] if sys.byteorder == "little" else infos.tobytes()[::4]
    klass = top.translate(_INDEX_CLASS)
    out: dict[str, list[int]] = {}
    for i in itertools.compress(range(len(offsets)), klass):
        w, c = offsets[i], klass[i]
        if c < 4:   # a named kind; enums' enumerators
            tid = first + i
            o = words[w]
            if o:
                out.setdefault(text[o:find("\0", o)], []).append(tid)
            if c > 1:
                for o in words[w + 3:w + 3 + c * (infos[i] & 0xFFFF):c]:
                    out.setdefault(text[o:find("\0", o)], []).append(tid)
        elif words[w] == kfunc_off and words[w + 3] == 0xFFFFFFFF:   # decl tag on a func
            target = words[w + 2]
            o = words[offsets[target - first]]
            out.setdefault(text[o:find("\0", o)], []).append(target)
    if strings.isascii():
        return out
    utf8: dict[str, list[int]] = {}   # names with other bytes than ASCII: decoded as UTF-8
    for name, ids in out.items():
        utf8.setdefault(name.encode("latin-1").decode("utf-8", "replace"), []).extend(ids)
    return utf8


# names_index's class of a type record by its info word's top byte (kind, kflag): 0 skipped,
# 1 named kind, 2/3 enum/enum64 (words per enumerator), 4 decl tag
_INDEX_CLASS = bytes(
    2 if k & 31 == BtfKind.ENUM else 3 if k & 31 == BtfKind.ENUM64 else
    4 if k & 31 == BtfKind.DECL_TAG else 1 if k & 31 in _NAMED_KINDS else 0
    for k in range(256))


def dump_c(spec: Spec, types: Optional[Iterable[TypeOrId]] = None, *,
           guard: str = VMLINUX_GUARD, reserved: Iterable[str] = (),
           kfuncs: bool = False, subset: bool = False) -> str:
    """A C header with the definitions of ``types`` (default: every type of ``spec``) and
    of everything they need, framed like bpftool's ``vmlinux.h``: an include guard and
    ``preserve_access_index`` on every record (CO-RE), unless the includer defines
    ``BPF_NO_PRESERVE_ACCESS_INDEX``. ``kfuncs`` adds :func:`kfunc_prototypes` (and the
    ``__ksym``/``__weak``/``__bpf_fastcall`` macros they use), as bpftool >= 7.4 does;
    with ``subset`` (a few ``types`` out of a large spec, see :class:`CDumper`), the
    prototypes of the kfuncs among ``types`` only."""
    dumper = CDumper(spec, reserved, subset)
    ids: Iterable[TypeOrId] = range(1, len(spec)) if types is None else types
    if subset:
        ids = list(ids)
        funcs = [f for f in map(dumper._type, ids) if isinstance(f, T.Func)]
        ids = [t for t in ids if not isinstance(dumper._type(t), T.Func)]
    parts = [f"#ifndef {guard}\n#define {guard}\n\n"
             "#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n"
             "#pragma clang attribute push (__attribute__((preserve_access_index)), "
             "apply_to = record)\n#endif\n\n"]
    if kfuncs:
        parts.append(_KFUNC_MACROS)
    parts.extend(dumper.dump_type(t) for t in ids)
    if kfuncs and subset:
        parts.append(_prototypes(dumper, {f.name: f for f in funcs}, set()))
    elif kfuncs:
        parts.append(kfunc_prototypes(spec, dumper))
    parts.append("#ifndef BPF_NO_PRESERVE_ACCESS_INDEX\n#pragma clang attribute pop\n#endif\n\n"
                 f"#endif /* {guard} */\n")
    return "".join(parts)
