"""Loading an ObjectSpec: BTF, maps, then programs, into a Collection that closes them all.

Order (libbpf's): the object's BTF goes to the kernel first (BTF_LOAD; an object whose BTF
the kernel refuses loads without it, as libbpf does), then every map is created (or a
compatible pinned or given one reused), filled with its initial data and frozen when read-only, then
each program marked ``autoload`` is linked (``linker``), gets map fds, extern values and
CO-RE results patched into its code (or hands its CO-RE records to the kernel, which
relocates them itself), and is loaded with its func/line info. Last, prog
array and map-in-map slots named in ``.maps`` are filled. struct_ops tables are matched to
the kernel's structs before the maps are made (``struct_ops``); their programs load for
their members, and the values that register them are kept (``Collection.struct_ops``).
Any failure closes what was made.
"""
from __future__ import annotations

import errno as _errno
import os
import sys
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

from .._record import replace
from ..asm import rewrite as I
from ..btf import types as T
from ..btf.encode import encode_spec
from ..btf.ext import encode_core_relos, encode_func_info, encode_line_info
from ..btf.kernel import BTF
from ..btf.probes import kernel_core
from ..btf.sanitize import fixup_datasecs, sanitize
from ..btf.spec import Spec
from ..errors import (BPFError, BTFError, ObjectError, UnsupportedFeatureError, UsageError,
                      VerifierError)
from ..maps import Map
from ..programs import Program
from ..sys import probes
from ..sys.uapi import ENOTSUPP, MapFlag, MapType, ProgType, PseudoCall, PseudoSrc
from .attach import auto_attach, auto_attach_kind
from .linker import LinkedProgram, link
from .maps import MapSpec, Pinning
from .reader import STT_FUNC, STT_SECTION
from .spec import ObjectSpec, ProgramSpec, RefKind

if TYPE_CHECKING:  # externs, links: imported where an object has some (start-up time)
    from ..links.btf_tracing import BtfTarget
    from ..links.link import Attachment
    from ..sys.info import MapInfo
    from .externs import KernelBTFId
    from .sections import Section
    from .struct_ops import KernelStructOps

DEFAULT_PIN_ROOT = "/sys/fs/bpf"
# map types the kernel refuses BTF key/value types for (libbpf clears them too)
_NO_BTF_TYPES = frozenset({MapType.PERF_EVENT_ARRAY, MapType.CGROUP_ARRAY, MapType.STACK_TRACE,
                           MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.DEVMAP,
                           MapType.DEVMAP_HASH, MapType.CPUMAP, MapType.XSKMAP, MapType.SOCKMAP,
                           MapType.SOCKHASH, MapType.QUEUE, MapType.STACK, MapType.RINGBUF,
                           MapType.USER_RINGBUF, MapType.PROG_ARRAY, MapType.REUSEPORT_SOCKARRAY})


class ObjectProgram(Program):
    """A program loaded from an object: ``spec`` says its section; ``attach()`` auto-attaches;
    ``object_maps`` are its collection's maps (libbpf's USDT spec maps are found there)."""

    spec: ProgramSpec
    object_maps: Mapping[str, Map]

    def attach(self) -> "Attachment":
        """Attach by the program's SEC() name (``tracepoint/<cat>/<name>``, ``raw_tp/<name>``
        ...); UsageError for sections that need a target given in code (xdp, tc, cgroup...)."""
        return auto_attach(self)


class Collection:
    """The maps and programs of a loaded object, by name; closing it closes them all."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self.maps: dict[str, Map] = {}
        self.programs: dict[str, ObjectProgram] = {}
        self.btf: Optional[BTF] = None
        self.links: list[Attachment] = []
        self.struct_ops: dict[str, bytes] = {}  # struct_ops map -> the value registering it

    def attach_all(self) -> list["Attachment"]:
        """Auto-attach every loaded program whose section says where (tracepoints, raw
        tracepoints, ...), and register every struct_ops map; the links are kept and closed
        with the collection."""
        out: list[Attachment] = []
        for p in self.programs.values():
            if auto_attach_kind(p) is not None:
                link = p.attach()
                self.links.append(link)
                out.append(link)
        for name in self.struct_ops:
            out.append(self.attach_struct_ops(name))
        return out

    def attach_struct_ops(self, name: str) -> "Attachment":
        """Register struct_ops map ``name`` with the kernel (``links.attach_struct_ops``); the
        attachment is kept and closed (unregistered) with the collection."""
        from ..links.struct_ops import attach_struct_ops
        if name not in self.struct_ops:
            raise UsageError(f"{self.spec.path}: no struct_ops map {name!r}; the object's: "
                             f"{', '.join(self.struct_ops) or '(none)'}")
        attached = attach_struct_ops(self.maps[name], self.struct_ops[name])
        self.links.append(attached)
        return attached

    def load_program(self, name: str, log_level: int = 0) -> ObjectProgram:
        """Load program ``name`` of the spec (left out at load: ``autoload`` off) with this
        collection's maps and BTF, as its ``ProgramSpec`` says now (a front end may have set
        another ``section``, hence program type). The caller owns the program: it is not
        added to ``programs``."""
        ps = self.spec.programs.get(name)
        if ps is None:
            raise UsageError(f"{self.spec.path}: no program {name!r}; the object's: "
                             f"{', '.join(self.spec.programs) or '(none)'}")
        ksyms = _Ksyms(self.spec)
        try:
            return _load_program(self.spec, ps, self, ksyms, log_level, None, None)
        finally:
            ksyms.close()

    def close(self) -> None:
        for obj in [*self.links, *self.programs.values(), *self.maps.values(), self.btf]:
            if obj is not None:
                obj.close()
        self.links.clear()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"<Collection {self.spec.path!r}: programs {sorted(self.programs)}, "
                f"maps {sorted(self.maps)}>")


def load(spec: Union[ObjectSpec, str, os.PathLike, bytes], *,
         pin_root: Union[str, os.PathLike] = DEFAULT_PIN_ROOT,
         maps: Optional[Mapping[str, Map]] = None, log_level: int = 0,
         kconfig: Optional[dict[str, str]] = None, btf: bool = True,
         core_btf: Optional[list[Spec]] = None,
         core_in_kernel: Optional[bool] = None) -> Collection:
    """Create ``spec``'s maps and load its autoload programs (``spec``: an ``ObjectSpec``, or
    the path of an object file, or its bytes, parsed first).

    ``pin_root``: directory of maps with ``pinning = LIBBPF_PIN_BY_NAME``. ``maps``: existing
    maps to use instead of creating the object's maps of those names (libbpf's
    ``bpf_map__reuse_fd``); each must match its definition as a reused pinned map must (type,
    key and value size, max entries, flags) and is used as it is: not filled, frozen or
    pinned. The collection holds its own fd of each; the caller's maps stay open. ``kconfig``:
    CONFIG_* values that override the running kernel's. ``btf=False`` loads without the
    object's BTF (no func/line info, no BTF map types). ``core_btf``: the BTF specs CO-RE
    relocates against (default: the running kernel's vmlinux, and its modules' BTF for types
    vmlinux lacks). ``core_in_kernel``: who relocates against the running kernel's BTF; by
    default the kernel itself (BPF_PROG_LOAD ``core_relos``, Linux 5.17, the same rules as
    libbpf's, without reading vmlinux's 5 MB of BTF in Python) where it can, else pybpf, whose
    relocation is also the reference a program the kernel refuses is loaded again with; False:
    always pybpf; True: the kernel or UnsupportedFeatureError.
    """
    if not isinstance(spec, ObjectSpec):
        spec = (ObjectSpec.from_bytes(spec) if isinstance(spec, bytes)
                else ObjectSpec.from_file(spec))
    if spec.byte_order != sys.byteorder:
        raise ObjectError(f"{spec.path}: a {spec.byte_order}-endian object cannot be loaded "
                          f"into this {sys.byteorder}-endian kernel: compile with -target "
                          f"bpf{'el' if sys.byteorder == 'little' else 'eb'} (or -target bpf)")
    given = dict(maps or {})
    unknown = [name for name in given if name not in spec.maps]
    if unknown:
        raise UsageError(f"{spec.path}: no map named {', '.join(map(repr, unknown))} to replace; "
                         f"the object's maps: {', '.join(spec.maps) or '(none)'}")
    if core_in_kernel and core_btf is not None:
        raise UsageError(f"{spec.path}: core_in_kernel relocates against the running kernel's "
                         "BTF only, not the core_btf given")
    if core_in_kernel:
        kernel_core().require()
    coll = Collection(spec)
    new_pins: list[str] = []  # maps this load pinned by name: unpinned again if it fails
    try:
        kcfg = [e for e in spec.externs.values() if e.kind == RefKind.KCONFIG]
        if kcfg:
            from .externs import fill_kconfig
            fill_kconfig(kcfg, spec.variables, kconfig)
        if btf and spec.btf is not None:
            coll.btf = _load_btf(spec)
        ksyms = _Ksyms(spec)
        try:
            struct_ops = _resolve_struct_ops(spec, coll)
            for ms in spec.maps.values():
                if not ms.autocreate:
                    continue
                k = struct_ops.get(ms.name)
                coll.maps[ms.name] = _reuse_given(ms, given[ms.name]) if ms.name in given \
                    else _create_map(spec, ms, coll.btf, os.fspath(pin_root), new_pins,
                                     struct_ops=(k, ksyms.module_fd(k.module)) if k else None)
                coll.maps[ms.name].btf = spec.btf  # decode="struct event" looks types up here
            attach = {p: (k, i) for k in struct_ops.values() for p, i in k.members.items()}
            for ps in spec.programs.values():
                if ps.autoload and (ps.type != ProgType.STRUCT_OPS or ps.name in attach):
                    coll.programs[ps.name] = _load_program(spec, ps, coll, ksyms, log_level,
                                                           core_btf, core_in_kernel,
                                                           attach.get(ps.name))
        finally:
            ksyms.close()
        _fill_slots(spec, coll)
        fds = {name: p.fd for name, p in coll.programs.items()}
        coll.struct_ops = {name: k.filled(fds) for name, k in struct_ops.items()}
    except BaseException:
        coll.close()
        for path in new_pins:  # as libbpf: a failed load leaves no pin behind
            try:
                os.unlink(path)
            except OSError:
                pass
        raise
    return coll


# -- BTF ---------------------------------------------------------------------------------
def object_btf(spec: ObjectSpec) -> bytes:
    """The object's BTF as BTF_LOAD takes it.

    ``btf.sanitize.fixup_datasecs`` fills DATASEC sizes and variable offsets from the ELF
    (clang leaves them zero); global functions of hidden visibility in ``.text`` become static
    (as libbpf: verified in their callers' context); the extern pass lays out ``.kconfig``
    and turns ``.ksyms`` entries into allocated int variables (kfunc entries into a dummy
    one, their FUNCs static), as libbpf does, since the kernel refuses extern linkage. Kinds
    an older kernel lacks are left to ``_load_btf``.
    """
    assert spec.btf is not None
    elf = spec.elf
    sizes = {s.name: s.size for s in elf.sections if s.size}
    offsets = {}
    hidden = set()
    hidden_subprogs = set()  # global .text functions of hidden visibility (usdt.bpf.h's)
    for sym in elf.symbols:
        if sym.name and 0 < sym.shndx < len(elf.sections) and sym.type != STT_SECTION:
            offsets[sym.name] = sym.value
            if sym.visibility in (1, 2):  # STV_INTERNAL, STV_HIDDEN
                hidden.add(sym.name)
                if sym.type == STT_FUNC and elf.sections[sym.shndx].name == ".text":
                    hidden_subprogs.add(sym.name)
    fixed = fixup_datasecs(spec.btf, sizes, offsets, hidden)
    if not hidden_subprogs and not spec.externs:
        return fixed  # nothing for the passes below: no decoding, no re-encoding
    fresh = Spec.parse(fixed, name=spec.btf.name)
    int_type: Optional[T.Type] = None
    dummy: Optional[T.Var] = None
    for t in list(fresh):
        if isinstance(t, T.Func) and t.name in hidden_subprogs:
            # as libbpf: verified with its caller (a global function's pointer arguments
            # may be NULL, and usdt.bpf.h's bpf_usdt_arg() writes through one unchecked)
            t.linkage = T.LINKAGE_STATIC
        if not isinstance(t, T.Datasec) or t.name not in (".kconfig", ".ksyms"):
            continue
        if t.name == ".kconfig":
            t.size = next((m.value_size for m in spec.maps.values() if m.section == ".kconfig"),
                          0)
            for vs in t.vars:
                ext = spec.externs.get(vs.type.name)
                vs.offset = ext.offset if ext is not None else 0
                if isinstance(vs.type, T.Var):
                    vs.type.linkage = T.LINKAGE_GLOBAL
        else:
            if int_type is None:
                int_type = next((x for x in fresh.find_all("int", T.Int) if x.size == 4),
                                None) or T.Int("int", 4, T.INT_SIGNED, 32)
            for n, vs in enumerate(t.vars):
                if isinstance(vs.type, T.Func):
                    vs.type.linkage = T.LINKAGE_STATIC
                    for param in vs.type.proto.params:  # clang leaves extern params unnamed
                        param.name = param.name or "dummy_ksym"
                    if dummy is None:
                        dummy = T.Var("dummy_ksym", int_type, T.LINKAGE_GLOBAL)
                    vs.type = dummy
                elif isinstance(vs.type, T.Var):
                    vs.type.type, vs.type.linkage = int_type, T.LINKAGE_GLOBAL
                vs.offset, vs.size = 4 * n, 4
            t.size = 4 * len(t.vars)
        t.vars.sort(key=lambda vs: vs.offset)
    return encode_spec(fresh)


def _load_btf(spec: ObjectSpec) -> Optional[BTF]:
    """The object's BTF loaded, or None: as libbpf, an object whose BTF the kernel refuses
    loads without it. The kernel gets the BTF as the object has it first; only an EINVAL
    refusal probes which kinds it lacks (``btf.sanitize``) and retries with those rewritten,
    so a current kernel sees one BTF_LOAD (the chapter's trace) and an older one the probes."""
    name = f"BTF of {spec.path}"
    try:
        blob = object_btf(spec)
        return BTF.load(blob, name=name)
    except BTFError:
        return None
    except BPFError as e:
        if e.errno != _errno.EINVAL:
            return None
    try:
        fixed = sanitize(blob)
        return BTF.load(fixed, name=name) if fixed != blob else None
    except (BPFError, BTFError):
        return None


# -- maps --------------------------------------------------------------------------------
def _create_map(spec: ObjectSpec, ms: MapSpec, btf: Optional[BTF], pin_root: str,
                new_pins: list[str], inner: bool = False,
                struct_ops: Optional[tuple[KernelStructOps, int]] = None) -> Map:
    """``struct_ops``: a struct_ops map's kernel layout and the fd of the module BTF holding
    its value type (0: vmlinux)."""
    path = ms.pin_path or (os.path.join(pin_root, ms.name)
                           if ms.pinning == Pinning.BY_NAME and not inner else None)
    if path is not None and os.path.exists(path):
        return _reuse_pinned(ms, path)
    inner_map = None
    if ms.inner is not None:
        inner_map = _create_map(spec, ms.inner, btf, pin_root, new_pins, inner=True)
    try:
        ids: dict[str, Any] = {}
        if struct_ops is not None:  # the kernel's value type; the object's BTF, as libbpf
            kernel, module_fd = struct_ops
            ids = {"btf": btf, "btf_vmlinux_value_type_id": kernel.value_type_id,
                   "value_type_btf_obj_fd": module_fd}
            ms = replace(ms, value_size=len(kernel.value))
        elif btf is not None and ms.type not in _NO_BTF_TYPES:
            ids = {"btf": btf, "btf_key_type_id": _id(ms.key_type),
                   "btf_value_type_id": _id(ms.value_type)}
            if not ids["btf_value_type_id"]:
                ids = {}
        numa = ms.numa_node if ms.flags & MapFlag.NUMA_NODE else None  # as libbpf: the flag
        kw: dict[str, Any] = dict(name=ms.kernel_name, flags=ms.flags, inner_map=inner_map,
                                  numa_node=numa, map_extra=ms.map_extra, **_element_types(ms))
        try:
            m = Map.create(ms.type, ms.key_size, ms.value_size, ms.max_entries, **kw, **ids)
        except BPFError as e:
            if struct_ops is not None:
                raise _struct_ops_refused(ms, e) from None
            if not ids or e.errno not in (_errno.EINVAL, _errno.ENOTSUP, ENOTSUPP):
                raise
            m = Map.create(ms.type, ms.key_size, ms.value_size, ms.max_entries, **kw)
    finally:
        if inner_map is not None:
            inner_map.close()
    try:
        if ms.data is not None and any(ms.data):
            m.update(b"\0\0\0\0", bytes(ms.data))
        if ms.freeze:
            m.freeze()
        if path is not None:
            m.pin(path)
            new_pins.append(path)
    except BaseException:
        m.close()
        raise
    return m


def _resolve_struct_ops(spec: ObjectSpec, coll: Collection) -> dict[str, KernelStructOps]:
    """Each struct_ops map matched to the kernel's struct (``struct_ops.resolve``)."""
    if not spec.struct_ops:
        return {}
    from .struct_ops import resolve
    if coll.btf is None:
        raise ObjectError(f"{spec.path}: struct_ops maps need the object's BTF in the kernel "
                          "(compile with -g; load with btf=True)")
    probes.prog_type(ProgType.SOCKET_FILTER)  # a first program load: older kernels (5.10)
    # parse their own BTF only then, and refuse struct_ops maps until they have (as libbpf,
    # whose loads start with such a probe program)
    out: dict[str, KernelStructOps] = {}
    target: dict[str, tuple[int, int]] = {}  # program -> (kernel struct, member index)
    for name, so in spec.struct_ops.items():
        if not spec.maps[name].autocreate:
            continue  # as libbpf: its programs do not load either
        out[name] = k = resolve(so, spec.path)
        for prog, idx in k.members.items():
            if not spec.programs[prog].autoload:
                raise ObjectError(f"{spec.path}: struct_ops {name!r} needs program {prog!r}, "
                                  "whose autoload is off")
            if target.setdefault(prog, (k.type_id, idx)) != (k.type_id, idx):
                raise ObjectError(f"{spec.path}: program {prog!r} is set to members of "
                                  "different kernel structs or positions: it loads for one")
    return out


def _struct_ops_refused(ms: MapSpec, e: BPFError) -> Exception:
    """Why the kernel refused a struct_ops map: links before 6.4 are a missing feature."""
    if ms.flags & MapFlag.LINK and e.errno == _errno.EINVAL:
        support = probes.struct_ops_link()
        if not support:
            return UnsupportedFeatureError(f"struct_ops map {ms.name!r} "
                                           f"(SEC(\".struct_ops.link\")): {support.reason}")
    return e


def _id(t: Optional[T.Type]) -> int:
    return t.id if t is not None and t.id is not None else 0


def _reuse_pinned(ms: MapSpec, path: str) -> Map:
    """libbpf's pin reuse: the pinned map must match the definition."""
    return _reuse(ms, Map.from_pin(path, raw=True), f"the map pinned at {path}",
                  f"unpin it (rm {path})" + ("" if ms.pin_path else " or use another pin_root"))


def _reuse_given(ms: MapSpec, given: Map) -> Map:
    """A map the caller gave for ``ms`` (a new fd of it): it must match the definition."""
    what = f"the given map (id {given.id})"
    return _reuse(ms, Map.from_fd(given.fd, raw=True), what,
                  "give a map created as the object defines it")


def _reuse(ms: MapSpec, m: Map, what: str, fix: str) -> Map:
    """``m`` if it matches ``ms`` as libbpf checks a reused map (``map_is_reuse_compat``);
    otherwise ``m`` is closed and ObjectError says what differs."""
    try:
        info: MapInfo = m.info()
        want = {"type": ms.type, "key_size": ms.key_size, "value_size": ms.value_size,
                "max_entries": ms.max_entries, "flags": ms.flags, "map_extra": ms.map_extra}
        if ms.type == MapType.PERF_EVENT_ARRAY and not ms.max_entries:
            want.pop("max_entries")
        diff = [f"{k} {_shown(k, getattr(info, k))} (wanted {_shown(k, v)})"
                for k, v in want.items() if getattr(info, k) != v]
        if diff:
            raise ObjectError(f"map {ms.name!r}: {what} is incompatible with the object's "
                              f"definition: {', '.join(diff)}; {fix}")
    except BaseException:
        m.close()
        raise
    types = _element_types(ms)
    if not types:
        return m
    with m:
        return Map.from_fd(m.fd, types.get("key"), types.get("value"))  # by the object's types


def _element_types(ms: MapSpec) -> dict[str, T.Type]:
    """The object's BTF types of ``ms``'s keys and values that the map converts by (``key=``,
    ``value=`` of Map): those of the map's sizes (not a struct_ops map's kernel value)."""
    types = {}
    if ms.key_type is not None and T.sizeof(ms.key_type) == ms.key_size:
        types["key"] = ms.key_type
    if ms.value_type is not None and T.sizeof(ms.value_type) == ms.value_size:
        types["value"] = ms.value_type
    return types


def _shown(field: str, value: int) -> str:
    """A map attribute as errors show it: the type by name (``hash``), numbers as numbers."""
    if field == "type" and value in MapType._value2member_map_:
        return MapType(value).name.lower()
    return str(int(value))


def _fill_slots(spec: ObjectSpec, coll: Collection) -> None:
    for ms in spec.maps.values():
        if ms.name not in coll.maps:
            continue  # not created
        for slot, target in ms.contents.items():
            obj: Any = (coll.programs if ms.type == MapType.PROG_ARRAY else coll.maps).get(target)
            if obj is None:
                continue  # not loaded or not created: the slot stays empty, as in libbpf
            coll.maps[ms.name].update(slot.to_bytes(4, sys.byteorder), obj.fd)


# -- programs ----------------------------------------------------------------------------
class _Ksyms:
    """Kernel symbol values for one load: kallsyms addresses, BTF ids, module BTF fds."""

    def __init__(self, spec: ObjectSpec) -> None:
        self.spec = spec
        self._addrs: Optional[dict[str, int]] = None
        self._module_btf: dict[str, BTF] = {}

    def address(self, name: str) -> Optional[int]:
        if self._addrs is None:
            names = {e.name for e in self.spec.externs.values()
                     if e.kind == RefKind.KSYM and e.type is None}
            from .externs import kallsyms
            self._addrs = kallsyms(names)
        return self._addrs.get(name)

    def btf_id(self, name: str, kind: type) -> Optional[KernelBTFId]:
        from .externs import kernel_btf_id
        return kernel_btf_id(name, kind)

    def module_fd(self, module: str) -> int:
        """The fd of kernel ``module``'s BTF object, opened once per load; 0 for vmlinux ('')."""
        if not module:
            return 0
        if module not in self._module_btf:
            from ..links.btf_tracing import module_btf
            try:
                self._module_btf[module] = module_btf(module)
            except UsageError:
                raise ObjectError(f"kernel module {module!r} has no loaded BTF object") from None
        return self._module_btf[module].fd

    def close(self) -> None:
        for b in self._module_btf.values():
            b.close()


def patch_map_ref(code: bytearray, i: int, order: str, kind: RefKind, fd: int,
                  off: int = 0) -> None:
    """Point the 64-bit load at instruction ``i`` to map ``fd`` (``RefKind.MAP_FD``) or to
    byte ``off`` of its value (``MAP_VALUE``, ``KCONFIG``), as BPF_PROG_LOAD takes it."""
    src = PseudoSrc.MAP_FD if kind == RefKind.MAP_FD else PseudoSrc.MAP_VALUE
    I.patch(code, i, order, src=src, imm=fd)
    I.patch(code, i + 1, order, imm=0 if kind == RefKind.MAP_FD else off)


def _load_program(spec: ObjectSpec, ps: ProgramSpec, coll: Collection, ksyms: _Ksyms,
                  log_level: int, core_targets: Optional[list[Spec]],
                  core_in_kernel: Optional[bool],
                  struct_ops: Optional[tuple[KernelStructOps, int]] = None) -> ObjectProgram:
    lp = link(spec, ps)
    code, order = lp.code, spec.byte_order
    fd_array: list[int] = []
    what = f"program {ps.name!r} (SEC {ps.section.name!r}) of {spec.path}"
    for ref in lp.refs:
        i = ref.insn
        if ref.kind in (RefKind.MAP_FD, RefKind.MAP_VALUE, RefKind.KCONFIG):
            name, off = ref.target, ref.offset
            if ref.kind == RefKind.KCONFIG:
                name = next(m.name for m in spec.maps.values() if m.section == ".kconfig")
                off += spec.externs[ref.target].offset
            if name not in coll.maps:  # autocreate off: fails only if the verifier gets here
                I.poison(code, i, order, I.POISON_MAP_BASE + list(spec.maps).index(name))
                continue
            patch_map_ref(code, i, order, ref.kind, coll.maps[name].fd, off)
        elif ref.kind == RefKind.KSYM:
            _patch_ksym(code, i, order, spec, ref.target, ksyms, what)
        elif ref.kind == RefKind.KFUNC:
            _patch_kfunc(code, i, order, spec, ref.target, ksyms, fd_array, what)
    attach_btf_id, attach_obj_fd = _attach_btf(ps, ksyms, what)
    attach_type: Optional[int] = ps.attach_type
    if struct_ops is not None:  # the kernel struct's id, the member's index
        kernel, attach_type = struct_ops
        attach_btf_id, attach_obj_fd = kernel.type_id, ksyms.module_fd(kernel.module)
    kw: dict[str, Any] = {}
    if coll.btf is not None and lp.func_info:
        kw = {"btf": coll.btf, "func_info": encode_func_info(lp.func_info),
              "line_info": encode_line_info(lp.line_info)}
    core_results: list[tuple[int, Any]] = []
    by_kernel = bool(lp.core_relos) and _kernel_relocates(core_targets, core_in_kernel,
                                                          bool(kw), what)
    if lp.core_relos and not by_kernel:
        core_results = _apply_core(spec, lp, core_targets, what)

    def load(**extra: Any) -> ObjectProgram:
        return ObjectProgram.load(
            ps.type, bytes(code), license=ps.license, name=ps.name[:15],
            expected_attach_type=attach_type, attach_btf_id=attach_btf_id,
            attach_btf_obj_fd=attach_obj_fd,
            kern_version=ps.kern_version or None, flags=ps.flags,
            fd_array=[0, *fd_array] if fd_array else None,
            log_level=ps.log_level or log_level, **kw, **extra)

    try:
        if not by_kernel:
            prog = load()
        else:
            try:
                prog = load(core_relos=encode_core_relos(lp.core_relos))
            except VerifierError:
                # relocated in Python: to say which relocation failed and, unless the kernel's
                # relocation was asked for, as the reference the program loads again with (a
                # kernel may lack a relocation kind)
                core_results = _apply_core(spec, lp, None, what)
                if core_in_kernel:
                    raise
                prog = load()
    except VerifierError as e:
        from ..btf.core import explain_poison
        failed = explain_poison(e.log, core_results) if core_results else ""
        if failed:
            raise ObjectError(f"{what}: the verifier reached an instruction whose CO-RE "
                              f"relocation could not be satisfied on this kernel:\n{failed}"
                              ) from e
        missing = _poisoned_map(e.log, list(spec.maps))
        if missing:
            raise ObjectError(f"{what}: the verifier reached a use of map {missing!r}, which "
                              "was not created (autocreate is off)") from e
        raise
    prog.spec, prog.object_maps = ps, coll.maps
    return prog


def _poisoned_map(log: str, names: list[str]) -> str:
    """The map whose poisoned reference a verifier log trips over ('' if none): the log
    names the poison as ``unknown#<POISON_MAP_BASE + map index>``."""
    import re
    for m in re.finditer(r"unknown#(\d+)", log):
        index = int(m.group(1)) - I.POISON_MAP_BASE
        if 0 <= index < len(names):
            return names[index]
    return ""


def _patch_ksym(code: bytearray, i: int, order: str, spec: ObjectSpec, name: str,
                ksyms: _Ksyms, what: str) -> None:
    ext = spec.externs[name]
    if ext.type is None:  # untyped: the kallsyms address
        addr = ksyms.address(name)
        if addr is None and not ext.weak:
            raise ObjectError(f"{what}: __ksym {name!r} is not in /proc/kallsyms")
        I.set_imm64(code, i, order, addr or 0)
        return
    found = ksyms.btf_id(name, T.Var)
    if found is None:
        if not ext.weak:
            raise ObjectError(f"{what}: typed __ksym {name!r} is not a variable in the kernel's "
                              "BTF (vmlinux or modules)")
        I.set_imm64(code, i, order, 0)
        return
    I.patch(code, i, order, src=PseudoSrc.BTF_ID, imm=found.type_id)
    I.patch(code, i + 1, order, imm=ksyms.module_fd(found.module))


def _patch_kfunc(code: bytearray, i: int, order: str, spec: ObjectSpec, name: str,
                 ksyms: _Ksyms, fd_array: list[int], what: str) -> None:
    """A kfunc call (BPF_PSEUDO_KFUNC_CALL: BTF id, module BTF's fd_array index in ``off``),
    or a load of its address (``bpf_ksym_exists``: 0 when a __weak kfunc is missing)."""
    found = ksyms.btf_id(name, T.Func)
    is_call = I.fields(code, i, order)[0] == I.CALL
    if found is None:
        if not spec.externs[name].weak:
            raise ObjectError(f"{what}: kfunc {name!r} is not in the kernel's BTF (vmlinux or "
                              "modules)")
        if is_call:
            I.poison(code, i, order)  # as libbpf: unreachable once its bpf_ksym_exists() test is 0
        else:
            I.set_imm64(code, i, order, 0)
        return
    from ..btf.core import types_compatible
    from .externs import kernel_type
    local, kernel = spec.externs[name].type, kernel_type(found)
    assert isinstance(local, T.Func) and isinstance(kernel, T.Func)  # a kfunc's; found as one
    if not types_compatible(local.proto, kernel.proto):
        raise ObjectError(f"{what}: kfunc {name!r} is declared with a prototype that does not "
                          f"match the kernel's ({_signature(kernel)}); fix the extern "
                          "declaration")
    fd = ksyms.module_fd(found.module)
    if not is_call:
        I.patch(code, i, order, src=PseudoSrc.BTF_ID, imm=found.type_id)
        I.patch(code, i + 1, order, imm=fd)
        return
    off = 0
    if fd:
        if fd not in fd_array:
            fd_array.append(fd)
        off = fd_array.index(fd) + 1
    I.patch(code, i, order, src=PseudoCall.KFUNC_CALL, imm=found.type_id, off=off)


def _signature(func: T.Func) -> str:
    proto = func.proto
    params = ", ".join(p.type.name or p.type.kind.name.lower() for p in proto.params)
    ret = proto.return_type
    return f"{func.name}({params}) -> {ret.name or ret.kind.name.lower()}"


def attach_btf_target(section: Section, what: str) -> Optional[BtfTarget]:
    """The kernel hook a BTF-attached program of ``section`` loads for, found by
    ``links.btf_tracing.lookup_target`` (vmlinux, then modules); None for other sections.
    ``what`` names the program in the ObjectError when the kernel has no such hook."""
    d = section.definition
    if not d.attach_btf:
        return None
    if d.prog_type == ProgType.EXT:
        raise UsageError(f"{what}: freplace programs replace a function of another loaded "
                         "program; load them with Program.load(..., attach_prog_fd=...)")
    if not section.target:
        raise ObjectError(f"{what}: SEC({section.name!r}) needs a target after '/' "
                          "(a kernel function, tracepoint or iterator)")
    from ..links.btf_tracing import HOOKS, lookup_target
    try:
        found = lookup_target(d.btf_hook, section.target)
    except BTFError as e:
        raise ObjectError(f"{what}: kernel BTF: {e}") from None
    if found is None:
        hook = HOOKS[d.btf_hook]
        raise ObjectError(f"{what}: {hook.prefix + section.target!r} "
                          f"({hook.btf_kind.__name__}) is not in the kernel's BTF: the attach "
                          "target does not exist on this kernel")
    return found


def _attach_btf(ps: ProgramSpec, ksyms: _Ksyms, what: str) -> tuple[int, int]:
    """attach_btf_id (and module BTF fd) of a BTF-attached program, from its section name."""
    found = attach_btf_target(ps.section, what)
    if found is None:
        return 0, 0
    return found.btf_id, ksyms.module_fd(found.module)


def _kernel_relocates(targets: Optional[list[Spec]], in_kernel: Optional[bool],
                      has_func_info: bool, what: str) -> bool:
    """Does the kernel apply this program's CO-RE relocations (see ``load``)? It needs the
    program's BTF and func_info (it relocates while checking them)."""
    if in_kernel is False or targets is not None:
        return False
    if not has_func_info:
        if in_kernel:
            raise UnsupportedFeatureError(f"{what}: the kernel relocates CO-RE only for programs "
                                          "loaded with BTF and func_info (compile with -g)")
        return False
    if in_kernel:
        return True  # probed by load()
    return bool(kernel_core())


def _apply_core(spec: ObjectSpec, lp: LinkedProgram, targets: Optional[list[Spec]],
                what: str) -> list[tuple[int, Any]]:
    """Relocate ``lp``'s CO-RE records through ``pybpf.btf.core``, poisoning what cannot be
    satisfied; the results explain a verifier failure on a poisoned instruction.

    Without explicit ``targets``, as libbpf: vmlinux BTF first, and module BTF only for a
    relocation whose type vmlinux does not have (parsing every module's BTF costs ~60 ms).
    """
    from ..btf import core
    assert spec.btf is not None
    results = []
    try:
        for r in lp.core_relos:
            if targets is not None:
                res = core.relocate(spec.btf, r.type_id, r.access_str, r.kind, targets)
            else:
                res = core.relocate(spec.btf, r.type_id, r.access_str, r.kind,
                                    [Spec.vmlinux()])
                if res.poison and not core.candidates(res.local.root, [Spec.vmlinux()]):
                    res = core.relocate(spec.btf, r.type_id, r.access_str, r.kind,
                                        core.kernel_specs())
            core.patch(lp.code, r.insn_off, res)
            results.append((r.insn_off, res))
    except BTFError as e:
        raise ObjectError(f"{what}: {e}") from None
    return results
