"""ObjectSpec: everything a BPF object file says, parsed without touching the kernel.

``ObjectSpec.from_file("x.o")`` reads the ELF (``reader``), its BTF and ``.BTF.ext``, the
programs (one per global function in a SEC() section; ``.text`` functions are subprograms),
the maps (``maps``), global variables and externs, and for every function the references
its instructions make (maps, data, subprograms, externs) from the ELF relocations.
``pybpf.elf.load(spec)`` creates the kernel objects (``loader``).
"""
from __future__ import annotations

import os
import struct
from enum import Enum
from typing import TYPE_CHECKING, Any, NamedTuple, Optional, Union

from .._record import field, record
from ..asm import rewrite as I
from ..asm.opcodes import LD_IMM64
from ..btf import types as T
from ..btf.ext import BTFExt, CoreRelo, FuncInfo, LineInfo, parse_ext
from ..btf.spec import Spec
from ..errors import BTFError, ObjectError
from ..sys.uapi import INSN_SIZE, AttachType, MapFlag, MapType, ProgFlag, ProgType, PseudoCall
from .maps import (KCONFIG_SECTION, MapSpec, VariableSpec, btf_map, data_map, is_data_section,
                   object_name, pack_slot_index)
from .reader import (SHN_UNDEF, STB_GLOBAL, STB_LOCAL, STB_WEAK, STT_FUNC, STT_OBJECT,
                     STT_SECTION, ElfObject, Symbol, read_elf)
from .sections import STRUCT_OPS_SECTIONS, Section, section

if TYPE_CHECKING:  # imported when an object has struct_ops sections
    from .struct_ops import StructOpsSpec


KSYMS_SECTION = ".ksyms"
TEXT = ".text"


class RefKind(Enum):
    """What an instruction refers to (from its ELF relocation)."""

    CALL = "call"            # bpf-to-bpf call of a function (target: function key)
    FUNC_ADDR = "func_addr"  # 64-bit load of a function's address (callbacks)
    MAP_FD = "map_fd"        # 64-bit load of a map (BPF_PSEUDO_MAP_FD)
    MAP_VALUE = "map_value"  # 64-bit load of an address in a data map (BPF_PSEUDO_MAP_VALUE)
    KCONFIG = "kconfig"      # 64-bit load of a .kconfig extern's address
    KSYM = "ksym"            # 64-bit load of a kernel variable (__ksym)
    KFUNC = "kfunc"          # call of a kernel function (__ksym, BPF_PSEUDO_KFUNC_CALL)


FuncKey = tuple[int, int]  # (ELF section index, first instruction)


class Reference(NamedTuple):
    """Instruction ``insn`` (from its function's start) refers to ``target``.

    ``target``: a FuncKey for CALL/FUNC_ADDR, else a map or extern name. ``offset``: bytes
    into a data map (MAP_VALUE) or past an extern (KCONFIG).
    """

    insn: int
    kind: RefKind
    target: Any
    offset: int = 0


@record
class Function:
    """One BPF function of the object (a program's entry or a subprogram)."""

    name: str
    section: str
    key: FuncKey
    code: bytes
    refs: list[Reference] = field(default_factory=list)
    func_info: list[FuncInfo] = field(default_factory=list)   # insn_off from function start
    line_info: list[LineInfo] = field(default_factory=list)
    core_relos: list[CoreRelo] = field(default_factory=list)
    is_global: bool = False

    @property
    def insn_count(self) -> int:
        return len(self.code) // INSN_SIZE


@record
class ProgramSpec:
    """A program of the object: its SEC() convention, entry function and load options.

    Set ``autoload = False`` to skip it at load; ``flags`` are BPF_PROG_LOAD ``prog_flags``
    (sleepable and XDP-frags sections preset theirs).
    """

    name: str
    section: Section
    function: Function
    license: str
    kern_version: int = 0
    autoload: bool = True
    flags: int = 0
    log_level: int = 0

    @property
    def type(self) -> ProgType:
        return self.section.prog_type

    @property
    def attach_type(self) -> Optional[AttachType]:
        return self.section.attach_type

    @property
    def attach_target(self) -> str:
        """The extras of the section name: what auto-attach attaches to."""
        return self.section.target


@record
class ExternSpec:
    """An ``extern`` of the object: a ``.kconfig`` value, a kernel variable or a kfunc."""

    name: str
    kind: RefKind  # KCONFIG, KSYM or KFUNC
    type: Optional[T.Type]
    weak: bool
    offset: int = 0  # KCONFIG: where in the .kconfig map
    size: int = 0


class ObjectSpec:
    """A parsed BPF object: ``programs``, ``maps``, ``variables``, ``externs``, ``btf``, and
    ``struct_ops`` (the struct_ops maps' tables, by map name)."""

    def __init__(self, data: bytes, name: str = "object") -> None:
        self.path = name
        self.name = object_name(name)
        try:
            self._parse(data, name)
        except ObjectError:
            raise
        except BTFError as e:
            text = str(e)
            raise ObjectError(text if text.startswith(name) else f"{name}: {text}") from None
        except (IndexError, KeyError, ValueError, TypeError, AttributeError, OverflowError,
                RecursionError, struct.error) as e:
            # a malformed object whose BTF and ELF disagree in a way no check above names
            raise ObjectError(f"{name}: malformed BPF object ({type(e).__name__}: {e})") from None

    def _parse(self, data: bytes, name: str) -> None:
        elf = read_elf(data, name)
        self.byte_order = elf.byte_order
        self.elf = elf
        self.btf: Optional[Spec] = None
        self.ext: Optional[BTFExt] = None
        btf_sec, ext_sec = elf.section(".BTF"), elf.section(".BTF.ext")
        try:
            if btf_sec is not None:
                self.btf = Spec.parse(btf_sec.data, name=f"{name}: .BTF")
                if ext_sec is not None:
                    self.ext = parse_ext(ext_sec.data, self.btf.string, f"{name}: .BTF.ext")
        except BTFError as e:
            raise ObjectError(f"{name}: {e}") from None
        self.license = _cstring(elf, "license")
        version = elf.section("version")
        self.kern_version = (struct.unpack_from("<I" if elf.byte_order == "little" else ">I",
                                                version.data)[0]
                             if version is not None and len(version.data) >= 4 else 0)
        self.maps: dict[str, MapSpec] = {}
        self.variables: dict[str, VariableSpec] = {}
        self.externs: dict[str, ExternSpec] = {}
        self.functions: dict[FuncKey, Function] = {}
        self.programs: dict[str, ProgramSpec] = {}
        self.struct_ops: dict[str, StructOpsSpec] = {}
        self._map_at: dict[tuple[int, int], str] = {}  # (section, offset) -> .maps map name
        self._data_maps: dict[int, MapSpec] = {}        # data section index -> its map
        self._struct_ops_at: list[tuple[int, int, StructOpsSpec]] = []  # (section, offset, it)
        self._parse_externs()
        self._parse_btf_maps()   # .maps first, then global data: libbpf's order of creation
        self._parse_data_maps()
        self._parse_struct_ops()
        self._parse_functions()
        self._parse_map_slots()
        self._parse_struct_ops_programs()

    # -- construction --------------------------------------------------------------------
    @classmethod
    def from_file(cls, path: Union[str, os.PathLike]) -> "ObjectSpec":
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as e:
            raise ObjectError(f"cannot read BPF object {os.fspath(path)}: {e.strerror}") from None
        return cls(data, os.fspath(path))

    @classmethod
    def from_bytes(cls, data: bytes, name: str = "object") -> "ObjectSpec":
        return cls(data, name)

    def _where(self, what: str = "") -> str:
        return f"{self.path}{': ' + what if what else ''}"

    # -- global data ---------------------------------------------------------------------
    def _datasec(self, name: str) -> Optional[T.Datasec]:
        if self.btf is None:
            return None
        found = self.btf.find_all(name, T.Datasec)
        return found[0] if found else None

    def _parse_data_maps(self) -> None:
        elf = self.elf
        for s in elf.sections:
            if not is_data_section(s.name) or s.type not in ("SHT_PROGBITS", "SHT_NOBITS") \
                    or s.size == 0:
                continue
            if s.size >= 1 << 32:
                raise ObjectError(self._where(f"section {s.name} is {s.size} bytes, more than "
                                              "a map value can hold"))
            m = data_map(self.name, s.name, s.size, s.data)
            ds = self._datasec(s.name)
            m.value_type = ds
            self._add_map(m)
            self._data_maps[s.index] = m
            types = {vs.type.name: vs.type.type for vs in (ds.vars if ds is not None else [])
                     if isinstance(vs.type, T.Var)}
            for sym in elf.symbols:
                if sym.shndx == s.index and sym.type == STT_OBJECT and sym.name:
                    if sym.value + sym.size > s.size:
                        raise ObjectError(self._where(f"variable {sym.name!r} lies outside "
                                                      f"section {s.name}"))
                    self.variables[sym.name] = VariableSpec(sym.name, m, sym.value, sym.size,
                                                            types.get(sym.name),
                                                            self.byte_order)

    def _add_map(self, m: MapSpec) -> None:
        if m.name in self.maps:
            raise ObjectError(self._where(f"two maps are named {m.name!r}"))
        self.maps[m.name] = m

    # -- BTF-defined maps ----------------------------------------------------------------
    def _parse_btf_maps(self) -> None:
        elf = self.elf
        if elf.section("maps") is not None:
            raise ObjectError(self._where("legacy 'maps' section (struct bpf_map_def) is not "
                                          "supported: define maps in SEC(\".maps\") with "
                                          "__uint/__type (BTF-defined maps)"))
        sec = elf.section(".maps")
        if sec is None:
            return
        ds = self._datasec(".maps")
        if ds is None:
            raise ObjectError(self._where("SEC(\".maps\") needs BTF: compile with clang -g"))
        offsets = {sym.name: sym.value for sym in elf.symbols
                   if sym.shndx == sec.index and sym.type == STT_OBJECT}
        for vs in ds.vars:
            var = vs.type
            if not isinstance(var, T.Var):
                raise ObjectError(self._where(f".maps entry {var!r} is not a variable"))
            m = btf_map(var.name, var.type, self._where(), inner=False)
            self._add_map(m)
            if var.name not in offsets:
                raise ObjectError(self._where(f"map {var.name!r} has no ELF symbol"))
            self._map_at[(sec.index, offsets[var.name])] = m.name

    def _parse_map_slots(self) -> None:
        """``.maps`` relocations: initial slots of prog arrays and map-in-maps."""
        sec = self.elf.section(".maps")
        if sec is None:
            return
        relocs = self.elf.relocations.get(sec.index, [])
        if not relocs:
            return
        ds = self._datasec(".maps")
        layout = []  # (start, end, map name, values offset)
        starts = {name: off for (_, off), name in self._map_at.items()}
        for vs in ds.vars if ds is not None else []:
            st = T.skip_qualifiers(vs.type.type)
            values = [m for m in st.members if m.name == "values"] \
                if isinstance(st, T.Composite) else []  # a map definition is a struct
            start = starts.get(vs.type.name)
            if values and start is not None:
                layout.append((start, start + vs.size, vs.type.name, values[0].offset // 8))
        for r in relocs:
            sym = self.elf.symbol(r.symbol, ".maps relocation")
            hit = [x for x in layout if x[0] <= r.offset < x[1]]
            if not hit:
                raise ObjectError(self._where(f".maps relocation at byte {r.offset} is not in "
                                              "the 'values' of a map-in-map or prog array"))
            start, _, name, voff = hit[0]
            slot = pack_slot_index(r.offset - start, voff, self._where(), name)
            m = self.maps[name]
            if m.type == MapType.PROG_ARRAY:
                fn = self._function_at(sym.shndx, sym.value // INSN_SIZE)
                progs = [p for p in self.programs.values() if p.function is fn]
                if fn is None or not progs:
                    raise ObjectError(self._where(f"prog array {name!r} slot {slot}: "
                                                  f"{sym.name!r} is not a program"))
                m.contents[slot] = progs[0].name
            else:
                target = self._map_at.get((sym.shndx, sym.value))
                if target is None:
                    raise ObjectError(self._where(f"map-in-map {name!r} slot {slot}: "
                                                  f"{sym.name!r} is not a map"))
                m.contents[slot] = target

    # -- struct_ops maps ----------------------------------------------------------------
    def _parse_struct_ops(self) -> None:
        """One STRUCT_OPS map per struct_ops variable (value sizes are the kernel's: set
        at load); where each lies is kept for ``_parse_struct_ops_programs``."""
        elf = self.elf
        for sec in elf.sections:
            if sec.name not in STRUCT_OPS_SECTIONS:
                continue
            from .struct_ops import StructOpsSpec
            ds = self._datasec(sec.name)
            if ds is None:
                raise ObjectError(self._where(f"SEC({sec.name!r}) needs BTF: compile with "
                                              "clang -g"))
            offsets = {sym.name: sym.value for sym in elf.symbols
                       if sym.shndx == sec.index and sym.type == STT_OBJECT}
            for vs in ds.vars:
                var = vs.type
                st = T.skip_qualifiers(var.type) if isinstance(var, T.Var) else var
                if not isinstance(st, T.Struct) or var.name not in offsets:
                    raise ObjectError(self._where(f"{sec.name} entry {var.name!r} is not a "
                                                  "struct variable"))
                off = offsets[var.name]
                if off + st.size > len(sec.data):
                    raise ObjectError(self._where(f"struct_ops {var.name!r} lies outside "
                                                  f"section {sec.name}"))
                link = sec.name == ".struct_ops.link"
                so = StructOpsSpec(var.name, st, bytearray(sec.data[off:off + st.size]), link)
                self._add_map(MapSpec(so.name, MapType.STRUCT_OPS, 4, st.size, 1,
                                      flags=MapFlag.LINK if link else 0, section=sec.name))
                self.struct_ops[so.name] = so
                self._struct_ops_at.append((sec.index, off, so))

    def _parse_struct_ops_programs(self) -> None:
        """The struct_ops sections' relocations: which program each function pointer
        member points to. As libbpf does, a struct_ops program no map uses is not loaded."""
        layout = self._struct_ops_at
        for shndx in sorted({x[0] for x in layout}):
            sec_name = self.elf.sections[shndx].name
            for r in self.elf.relocations.get(shndx, []):
                sym = self.elf.symbol(r.symbol, f"{sec_name} relocation")
                hit = [(off, so) for i, off, so in layout
                       if i == shndx and off <= r.offset < off + so.type.size]
                member = next((m for off, so in hit for m in so.type.members
                               if m.offset == (r.offset - off) * 8), None)
                if member is None or not isinstance(T.skip_qualifiers(member.type), T.Pointer):
                    raise ObjectError(self._where(f"{sec_name} relocation at byte {r.offset} "
                                                  "is not on a function pointer member"))
                so = hit[0][1]
                fn = self._function_at(sym.shndx, sym.value // INSN_SIZE)
                progs = [p for p in self.programs.values() if p.function is fn]
                if not progs or progs[0].type != ProgType.STRUCT_OPS:
                    raise ObjectError(self._where(
                        f"struct_ops {so.name!r}: {member.name} points to {sym.name!r}, which is "
                        "not a SEC(\"struct_ops/...\") program"))
                so.programs[member.name] = progs[0].name
        used = {p for so in self.struct_ops.values() for p in so.programs.values()}
        for p in self.programs.values():
            if p.type == ProgType.STRUCT_OPS and p.name not in used:
                p.autoload = False

    # -- externs -------------------------------------------------------------------------
    def _parse_externs(self) -> None:
        undefined = [s for s in self.elf.symbols
                     if s.shndx == SHN_UNDEF and s.bind in (STB_GLOBAL, STB_WEAK) and s.name]
        if not undefined:
            return
        kinds: dict[str, tuple[str, Union[T.Var, T.Func]]] = {}  # a DATASEC's entries
        for sec in (KCONFIG_SECTION, KSYMS_SECTION):
            ds = self._datasec(sec)
            for vs in ds.vars if ds is not None else []:
                kinds[vs.type.name] = (sec, vs.type)
        kcfg: list[tuple[int, ExternSpec]] = []  # (alignment, extern)
        for sym in undefined:
            if sym.name not in kinds:
                raise ObjectError(self._where(f"extern {sym.name!r} is neither __kconfig nor "
                                              "__ksym (no BTF in .kconfig/.ksyms): pybpf cannot "
                                              "resolve it"))
            sec, t = kinds[sym.name]
            weak = sym.bind == STB_WEAK
            if isinstance(t, T.Func):
                self.externs[sym.name] = ExternSpec(sym.name, RefKind.KFUNC, t, weak)
            elif sec == KCONFIG_SECTION:
                vt = t.type
                ext = ExternSpec(sym.name, RefKind.KCONFIG, vt, weak, size=T.sizeof(vt))
                kcfg.append((T.alignof(vt), ext))
                self.externs[sym.name] = ext
            else:
                vt = T.skip_qualifiers(t.type)
                self.externs[sym.name] = ExternSpec(sym.name, RefKind.KSYM,
                                                    None if isinstance(vt, T.Void) else vt, weak)
        if kcfg:
            # libbpf's layout: by alignment (largest first), then size, then name
            kcfg.sort(key=lambda x: (-x[0], x[1].size, x[1].name))
            off = 0
            for a, e in kcfg:
                off = (off + a - 1) // a * a
                e.offset = off
                off += e.size
            m = data_map(self.name, KCONFIG_SECTION, off, b"")
            m.value_type = self._datasec(KCONFIG_SECTION)
            self._add_map(m)
            for _, e in kcfg:
                self.variables[e.name] = VariableSpec(e.name, m, e.offset, e.size, e.type,
                                                      self.byte_order)

    # -- functions and their references --------------------------------------------------
    def _parse_functions(self) -> None:
        elf = self.elf
        funcs_by_sec: dict[int, list[Symbol]] = {}
        for sym in elf.symbols:
            if sym.type == STT_FUNC and sym.shndx != SHN_UNDEF:
                funcs_by_sec.setdefault(sym.shndx, []).append(sym)
        for s in elf.sections:
            if not s.executable or s.type != "SHT_PROGBITS" or s.size == 0:
                continue
            if s.size % INSN_SIZE:
                raise ObjectError(self._where(f"section {s.name!r} is {s.size} bytes, not a "
                                              "whole number of instructions"))
            syms = sorted(funcs_by_sec.get(s.index, []), key=lambda x: x.value)
            if not syms:
                raise ObjectError(self._where(f"code section {s.name!r} has no function "
                                              "symbol"))
            sec_def = None if s.name == TEXT else section(s.name, self.path)
            for sym in syms:
                start, size = sym.value, sym.size or (s.size - sym.value)
                if start % INSN_SIZE or size % INSN_SIZE or start + size > s.size or size <= 0:
                    raise ObjectError(self._where(f"function {sym.name!r} ({size} bytes at "
                                                  f"{start}) does not fit section {s.name!r}"))
                fn = Function(sym.name, s.name, (s.index, start // INSN_SIZE),
                              s.data[start:start + size], is_global=sym.bind != STB_LOCAL)
                self.functions[fn.key] = fn
                if sec_def is not None:
                    if sym.bind == STB_LOCAL:
                        raise ObjectError(self._where(
                            f"program {sym.name!r} in SEC({s.name!r}) is static: a program "
                            "must be a global function (static functions go in .text)"))
                    self._add_program(fn, sec_def)
            self._parse_refs(s.index, s.name, syms)
            self._attach_ext(s.index, s.name)

    def _add_program(self, fn: Function, sec_def: Section) -> None:
        if fn.name in self.programs:
            raise ObjectError(self._where(f"two programs are named {fn.name!r}"))
        flags = (ProgFlag.SLEEPABLE if sec_def.definition.sleepable else 0) | \
                (ProgFlag.XDP_HAS_FRAGS if sec_def.definition.xdp_frags else 0)
        self.programs[fn.name] = ProgramSpec(fn.name, sec_def, fn, self.license,
                                             self.kern_version, flags=int(flags))

    def _function_at(self, shndx: int, insn: int) -> Optional[Function]:
        return self.functions.get((shndx, insn))

    def _containing(self, shndx: int, insn: int) -> Optional[Function]:
        for (sec, start), fn in self.functions.items():
            if sec == shndx and start <= insn < start + fn.insn_count:
                return fn
        return None

    def _parse_refs(self, shndx: int, sec_name: str, syms: list[Symbol]) -> None:
        elf, order = self.elf, self.byte_order
        code = elf.sections[shndx].data
        n = len(code) // INSN_SIZE
        relocated = set()
        for r in elf.relocations.get(shndx, []):
            where = f"{sec_name}+{r.offset}"
            if r.offset % INSN_SIZE or r.offset // INSN_SIZE >= n:
                raise ObjectError(self._where(f"relocation at {where} is not on an instruction"))
            idx = r.offset // INSN_SIZE
            relocated.add(idx)
            fn = self._containing(shndx, idx)
            if fn is None:
                raise ObjectError(self._where(f"relocation at {where} is outside any function"))
            sym = elf.symbol(r.symbol, f"relocation at {where}")
            fn.refs.append(self._reference(code, idx, idx - fn.key[1], sym, where, n))
        # calls inside one section need no relocation
        for fn in [f for f in self.functions.values() if f.key[0] == shndx]:
            for i in range(fn.insn_count):
                idx = fn.key[1] + i
                if idx in relocated:
                    continue
                op, _, src, _, imm = I.fields(code, idx, order)
                if op == I.CALL and src == PseudoCall.CALL:
                    target = (shndx, idx + imm + 1)
                    if target not in self.functions:
                        raise ObjectError(self._where(f"call at {sec_name}+{idx * 8} goes to "
                                                      "no function start"))
                    fn.refs.append(Reference(i, RefKind.CALL, target))

    def _reference(self, code: bytes, idx: int, rel: int, sym: Symbol, where: str,
                   n: int) -> Reference:
        op, _, src, _, imm = I.fields(code, idx, self.byte_order)
        elf = self.elf
        if sym.shndx == SHN_UNDEF:
            ext = self.externs.get(sym.name)
            if ext is None:
                raise ObjectError(self._where(f"{where}: undefined symbol {sym.name!r}"))
            if op == I.CALL:
                if ext.kind != RefKind.KFUNC:
                    raise ObjectError(self._where(f"{where}: call of extern variable "
                                                  f"{sym.name!r}"))
                return Reference(rel, RefKind.KFUNC, sym.name)
            if op != LD_IMM64:
                raise ObjectError(self._where(f"{where}: extern {sym.name!r} used by an "
                                              f"instruction (opcode {op:#x}) that is neither "
                                              "a call nor a 64-bit load"))
            return Reference(rel, ext.kind, sym.name, imm)
        if not 0 < sym.shndx < len(elf.sections):
            raise ObjectError(self._where(f"{where}: symbol {sym.name!r} is in no section "
                                          f"({sym.shndx:#x})"))
        target_sec = elf.sections[sym.shndx]
        if op == I.CALL:
            if src != PseudoCall.CALL or not target_sec.executable:
                raise ObjectError(self._where(f"{where}: call relocation against "
                                              f"{sym.name or target_sec.name!r}, not a function"))
            target = (sym.shndx, sym.value // INSN_SIZE + imm + 1)
            if target not in self.functions:
                raise ObjectError(self._where(f"{where}: call to {target_sec.name}+"
                                              f"{target[1] * 8}, which is no function start"))
            return Reference(rel, RefKind.CALL, target)
        if op != LD_IMM64 or idx + 1 >= n:
            raise ObjectError(self._where(f"{where}: relocation on an instruction (opcode "
                                          f"{op:#x}) that is neither a call nor a 64-bit load"))
        if target_sec.executable:
            target = (sym.shndx, (sym.value + imm) // INSN_SIZE)
            if target not in self.functions:
                raise ObjectError(self._where(f"{where}: function address of {target_sec.name}"
                                              f"+{sym.value + imm}: no function starts there"))
            return Reference(rel, RefKind.FUNC_ADDR, target)
        if target_sec.name == ".maps":
            name = self._map_at.get((sym.shndx, sym.value + imm))
            if name is None:
                raise ObjectError(self._where(f"{where}: {sym.name!r} is not a map in .maps"))
            return Reference(rel, RefKind.MAP_FD, name)
        m = self._data_maps.get(sym.shndx)
        if m is None:
            raise ObjectError(self._where(f"{where}: reference to {sym.name!r} in section "
                                          f"{target_sec.name!r}, which pybpf does not load "
                                          "(not .data/.rodata/.bss/.maps)"))
        off = sym.value + imm if sym.type in (STT_SECTION, STT_OBJECT) else imm
        return Reference(rel, RefKind.MAP_VALUE, m.name, off)

    def _attach_ext(self, shndx: int, sec_name: str) -> None:
        """Hand each function its .BTF.ext records, offsets made relative to its start."""
        if self.ext is None:
            return
        for records, attr in ((self.ext.func_info.get(sec_name, []), "func_info"),
                              (self.ext.line_info.get(sec_name, []), "line_info"),
                              (self.ext.core_relos.get(sec_name, []), "core_relos")):
            for rec in records:
                fn = self._containing(shndx, rec.insn_off)
                if fn is None:
                    raise ObjectError(self._where(f".BTF.ext {attr} record at instruction "
                                                  f"{rec.insn_off} of {sec_name!r} is outside "
                                                  "every function"))
                getattr(fn, attr).append(_shift(rec, -fn.key[1]))

    def __repr__(self) -> str:
        return (f"<ObjectSpec {self.path!r}: programs {sorted(self.programs)}, "
                f"maps {sorted(self.maps)}>")


def _shift(rec: Any, delta: int) -> Any:
    return rec._replace(insn_off=rec.insn_off + delta)


def _cstring(elf: ElfObject, name: str) -> str:
    sec = elf.section(name)
    if sec is None:
        return ""
    return sec.data.split(b"\0", 1)[0].decode("utf-8", errors="replace")
