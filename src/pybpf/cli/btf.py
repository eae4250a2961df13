"""``pybpf btf``: show, dump (raw as bpftool prints it, or C from ``pybpf.btf.cdump``)."""
from __future__ import annotations

from typing import Any, Optional

from ..errors import PyBPFError
from .common import (Args, CLIError, Options, dispatch, emit, emit_objects, help_command,
                     open_all, open_by_id, parse_id, why)
from .handles import map_fd, prog_fd

USAGE = """Usage: pybpf btf { show | list } [id BTF_ID]
       pybpf btf dump BTF_SRC [format FORMAT]
       pybpf btf help

       BTF_SRC := { id BTF_ID | prog PROG | map MAP [{key | value | kv | all}] | file FILE }
       FORMAT  := { raw | c }
       MAP     := { id MAP_ID | pinned FILE | name MAP_NAME }
       PROG    := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
"""


# -- show -----------------------------------------------------------------------------------------
def _users() -> tuple[dict[int, list[int]], dict[int, list[int]]]:
    """Program and map ids by the BTF id they use (newest first, as bpftool lists them)."""
    from ..maps import MapInfo
    from ..programs import ProgInfo
    progs: dict[int, list[int]] = {}
    maps: dict[int, list[int]] = {}
    for kind, table, info_of in (("prog", progs, ProgInfo.from_fd), ("map", maps, MapInfo.from_fd)):
        for fd in open_all(kind):
            with fd:
                info = info_of(fd.fd)
            if info.btf_id:
                table.setdefault(info.btf_id, []).insert(0, info.id)
    return progs, maps


def _show_plain(info: Any, progs: dict, maps: dict) -> str:
    if info.kernel_btf:
        text = f"{info.id}: name [{info.name}]  "
    else:
        text = f"{info.id}: name {info.name or '<anon>'}  "
    text += f"size {info.size}B"
    if progs.get(info.id):
        text += "  prog_ids " + ",".join(map(str, progs[info.id]))
    if maps.get(info.id):
        text += "  map_ids " + ",".join(map(str, maps[info.id]))
    return text + "\n"


def _show_json(info: Any, progs: dict, maps: dict) -> dict:
    rec: dict[str, Any] = {"id": info.id, "size": info.size,
                           "prog_ids": progs.get(info.id, []), "map_ids": maps.get(info.id, []),
                           "kernel": info.kernel_btf}
    if info.name:
        rec["name"] = info.name
    return rec


def do_show(args: Args, opts: Options) -> int:
    from ..btf import BTF
    single = bool(len(args))
    if single:
        if not args.at("id"):
            raise CLIError(f"expected 'id', got: '{args.peek()}'?")
        args.next()
        fds = [open_by_id("btf", parse_id(args))]
    args.done()
    infos = []
    for fd in (fds if single else open_all("btf")):
        with BTF(fd) as b:
            infos.append(b.info())
    progs, maps = _users()
    if opts.json:
        emit_objects((_show_json(i, progs, maps) for i in infos), opts, single)
    else:
        opts.out.write("".join(_show_plain(i, progs, maps) for i in infos))
    return 0


# -- dump -----------------------------------------------------------------------------------------
_INT_ENC = {0: "(none)", 1: "SIGNED", 2: "CHAR", 4: "BOOL"}
_LINKAGE = {0: "static", 1: "global", 2: "extern"}


def _name(name: str) -> str:
    return name or "(anon)"


def raw_type(t: Any) -> tuple[str, dict]:
    """One type as ``btf dump ... format raw`` prints it: the plain text and the JSON object."""
    from ..btf import types as T
    kind = t.kind.name
    head = f"[{t.id}] {kind} '{_name(t.name)}'"
    rec: dict[str, Any] = {"id": t.id, "kind": kind, "name": _name(t.name)}
    text = ""
    if isinstance(t, T.Int):
        enc = _INT_ENC.get(t.encoding, "UNKN")
        text = f" size={t.size} bits_offset={t.offset} nr_bits={t.bits} encoding={enc}"
        rec.update(size=t.size, bits_offset=t.offset, nr_bits=t.bits, encoding=enc)
    elif isinstance(t, T.Pointer):
        text, rec["type_id"] = f" type_id={t.target.id}", t.target.id
    elif isinstance(t, (T.Typedef, T.Qualifier)):
        text, rec["type_id"] = f" type_id={t.type.id}", t.type.id
    elif isinstance(t, T.Array):
        text = f" type_id={t.type.id} index_type_id={t.index_type.id} nr_elems={t.nelems}"
        rec.update(type_id=t.type.id, index_type_id=t.index_type.id, nr_elems=t.nelems)
    elif isinstance(t, T.Composite):
        text = f" size={t.size} vlen={len(t.members)}"
        members = []
        for m in t.members:
            text += f"\n\t'{_name(m.name)}' type_id={m.type.id} bits_offset={m.offset}"
            mrec: dict[str, Any] = {"name": _name(m.name), "type_id": m.type.id,
                                    "bits_offset": m.offset}
            if m.bitfield_size:
                text += f" bitfield_size={m.bitfield_size}"
                mrec["bitfield_size"] = m.bitfield_size
            members.append(mrec)
        rec.update(size=t.size, vlen=len(t.members), members=members)
    elif isinstance(t, T.Enum):
        enc = "SIGNED" if t.signed else "UNSIGNED"
        text = f" encoding={enc} size={t.size} vlen={len(t.values)}"
        bits = 64 if isinstance(t, T.Enum64) else 32
        values = []
        for v in t.values:
            val = _signed(v.value, bits) if t.signed else v.value & ((1 << bits) - 1)
            suffix = ("LL" if t.signed else "ULL") if bits == 64 else ""
            text += f"\n\t'{_name(v.name)}' val={val}{suffix}"
            values.append({"name": _name(v.name), "val": val})
        rec.update(encoding=enc, size=t.size, vlen=len(t.values), values=values)
    elif isinstance(t, T.Fwd):
        fwd = "union" if t.union else "struct"
        text, rec["fwd_kind"] = f" fwd_kind={fwd}", fwd
    elif isinstance(t, T.Func):
        link = _LINKAGE.get(t.linkage, "(unknown)")
        text = f" type_id={t.proto.id} linkage={link}"
        rec.update(type_id=t.proto.id, linkage=link)
    elif isinstance(t, T.FuncProto):
        text = f" ret_type_id={t.return_type.id} vlen={len(t.params)}"
        params = []
        for p in t.params:
            text += f"\n\t'{_name(p.name)}' type_id={p.type.id}"
            params.append({"name": _name(p.name), "type_id": p.type.id})
        rec.update(ret_type_id=t.return_type.id, vlen=len(t.params), params=params)
    elif isinstance(t, T.Var):
        link = _LINKAGE.get(t.linkage, "(unknown)")
        text = f" type_id={t.type.id}, linkage={link}"
        rec.update(type_id=t.type.id, linkage=link)
    elif isinstance(t, T.Datasec):
        text = f" size={t.size} vlen={len(t.vars)}"
        vars_ = []
        for sec in t.vars:
            text += (f"\n\ttype_id={sec.type.id} offset={sec.offset} size={sec.size} "
                     f"({sec.type.kind.name} '{_name(sec.type.name)}')")
            vars_.append({"type_id": sec.type.id, "offset": sec.offset, "size": sec.size})
        rec.update(size=t.size, vlen=len(t.vars), vars=vars_)
    elif isinstance(t, T.Float):
        text, rec["size"] = f" size={t.size}", t.size
    elif isinstance(t, T.DeclTag):
        text = f" type_id={t.type.id} component_idx={t.component_idx}"
        rec.update(type_id=t.type.id, component_idx=t.component_idx)
    return head + text, rec


def _signed(value: int, bits: int) -> int:
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def _vmlinux() -> Any:
    from ..btf import Spec
    return Spec.vmlinux()


def spec_of_id(btf_id: int) -> Any:
    """A kernel BTF object parsed; a module's split BTF on top of vmlinux's."""
    from ..btf import BTF
    with BTF(open_by_id("btf", btf_id)) as b:
        info = b.info()
        raw = b.raw()
    from ..btf import Spec
    base = _vmlinux() if info.kernel_btf and info.name != "vmlinux" else None
    return Spec.parse(raw, base, f"btf id {btf_id}")


def _spec_of_file(path: str) -> Any:
    """Raw BTF (``/sys/kernel/btf/*``, module BTF split on vmlinux's) or an object's .BTF."""
    try:
        return _read_spec(path)
    except (PyBPFError, OSError) as e:
        raise CLIError(f"failed to load BTF from {path}: {why(e)}") from None


def _read_spec(path: str) -> Any:
    from ..btf import Spec
    with open(path, "rb") as f:
        head = f.read(4)
    if head == b"\x7fELF":  # an object file: its .BTF section
        from ..elf import ObjectSpec
        spec = ObjectSpec.from_file(path).btf
        if spec is None:
            raise CLIError(f"failed to load BTF from {path}: the object has no .BTF section")
        return spec
    base = None
    if path.startswith("/sys/kernel/btf/") and not path.endswith("/vmlinux"):
        base = _vmlinux()
    return Spec.from_file(path, base)


def do_dump(args: Args, opts: Options) -> int:
    args.require(2)
    src = args.next()
    roots: Optional[list[int]] = None
    if "id".startswith(src):
        spec = spec_of_id(parse_id(args))
    elif "file".startswith(src):
        spec = _spec_of_file(args.next("file"))
    elif "map".startswith(src):
        from ..maps import MapInfo
        with map_fd(args) as fd:
            info = MapInfo.from_fd(fd.fd)
        if not info.btf_id:
            raise CLIError("can't get BTF object id: map has no BTF")
        which = "kv"
        if len(args) and not args.at("format"):
            word = args.next()
            which = next((w for w in ("key", "value", "kv", "all") if w.startswith(word)), "")
            if not which:
                raise CLIError(f"unrecognized map BTF type: {word}")
        spec = spec_of_id(info.btf_id)
        if which != "all":
            key = [info.btf_key_type_id] if which in ("key", "kv") else []
            value = [info.btf_vmlinux_value_type_id or info.btf_value_type_id] \
                if which in ("value", "kv") else []
            roots = key + value
    elif "prog".startswith(src):
        from ..programs import ProgInfo
        with prog_fd(args) as fd:
            pinfo = ProgInfo.from_fd(fd.fd)
        if not pinfo.btf_id:
            raise CLIError("can't get BTF object id: prog has no BTF")
        spec = spec_of_id(pinfo.btf_id)
    else:
        raise CLIError(f"unrecognized BTF source specifier: '{src}'")
    fmt = "raw"
    while len(args):
        if args.at("format"):
            args.next()
            word = args.next("format")
            if word not in ("raw", "c"):
                raise CLIError(f"unrecognized format specifier: '{word}', possible values: raw, c")
            fmt = word
        else:
            raise CLIError(f"unrecognized option: '{args.peek()}'")
    first = len(spec.base) if spec.base is not None else 1
    ids = roots if roots is not None else range(first, len(spec))
    try:
        if fmt == "c":
            if opts.json:
                raise CLIError("JSON output is not supported for C dumps")
            from ..btf.cdump import dump_c
            opts.out.write(dump_c(spec, list(ids)))
            return 0
        _dump_raw(spec, ids, opts)
    except PyBPFError as e:
        raise CLIError(f"dumping BTF failed: {why(e)}") from None
    return 0


def _dump_raw(spec: Any, ids: Any, opts: Options) -> None:
    if opts.json:
        emit({"types": [raw_type(spec.type_by_id(i))[1] for i in ids if i]}, opts)
        return
    write = opts.out.write
    chunk: list[str] = []
    for i in ids:
        if i:
            chunk.append(raw_type(spec.type_by_id(i))[0])
        if len(chunk) >= 4096:
            write("\n".join(chunk) + "\n")
            chunk.clear()
    if chunk:
        write("\n".join(chunk) + "\n")


COMMANDS = [("show", do_show), ("list", do_show), ("help", help_command(USAGE)), ("dump", do_dump)]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "btf")
