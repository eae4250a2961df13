"""``pybpf map``: show, dump, lookup, update, delete, getnext, create, pin, freeze, queue ops,
event_pipe. Output and errors as bpftool prints them."""
from __future__ import annotations

import errno as _errno
import os
import sys
from typing import Any, Callable, Optional

from ..errors import BPFError, PyBPFError
from .common import (Args, CLIError, Options, dev_json, dev_plain, dispatch, emit, emit_objects,
                     errno_code, help_command, hex_json, hex_list, hex_plain, json_null, jsonw,
                     known, open_all, parse_bytes, parse_u32, pin_command, pin_fd,
                     pinned_table, type_json, type_name, type_plain, why)
from .handles import map_fd, map_fds, prog_fd

USAGE = """Usage: pybpf map { show | list }   [MAP]
       pybpf map create     FILE type TYPE key KEY_SIZE value VALUE_SIZE \\
                                  entries MAX_ENTRIES name NAME [flags FLAGS] \\
                                  [inner_map MAP] [dev NAME]
       pybpf map dump       MAP
       pybpf map update     MAP [key DATA] [value VALUE] [UPDATE_FLAGS]
       pybpf map lookup     MAP [key DATA]
       pybpf map getnext    MAP [key DATA]
       pybpf map delete     MAP  key DATA
       pybpf map pin        MAP  FILE
       pybpf map event_pipe MAP [cpu N index M]
       pybpf map peek       MAP
       pybpf map push       MAP value VALUE
       pybpf map pop        MAP
       pybpf map enqueue    MAP value VALUE
       pybpf map dequeue    MAP
       pybpf map freeze     MAP
       pybpf map help

       MAP := { id MAP_ID | pinned FILE | name MAP_NAME }
       DATA := { [hex] BYTES }
       PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
       VALUE := { DATA | MAP | PROG }
       UPDATE_FLAGS := { any | exist | noexist }
"""


# -- opening maps ---------------------------------------------------------------------------------
def open_map(args: Args) -> Any:
    """The one Map a ``MAP`` handle names (raw bytes keys and values)."""
    from ..maps import Map
    return Map.from_fd(map_fd(args), raw=True)


def _per_cpu(info: Any) -> bool:
    from ..maps import PERCPU_TYPES
    return info.type in PERCPU_TYPES


# -- show -----------------------------------------------------------------------------------------
def _record(fd: Any) -> tuple[Any, dict[str, str]]:
    from ..maps import MapInfo
    from ..sys import objects
    return MapInfo.from_fd(fd.fd), objects.fdinfo(fd.fd)


def _show_json(info: Any, fdinfo: dict[str, str], pins: dict[int, list[str]],
               opts: Options) -> dict:
    from ..sys.uapi import MapType, ProgType
    rec = _header_json(info, None)
    rec.update(dev_json(info.ifindex, info.netns_dev, info.netns_ino))
    rec.update(bytes_key=info.key_size, bytes_value=info.value_size, max_entries=info.max_entries)
    if "memlock" in fdinfo:
        rec["bytes_memlock"] = int(fdinfo["memlock"])
    if info.type == MapType.PROG_ARRAY:
        if "owner_prog_type" in fdinfo:
            rec["owner_prog_type"] = type_json(known(ProgType, int(fdinfo["owner_prog_type"])))
        if "owner_jited" in fdinfo:
            rec["owner_jited"] = bool(int(fdinfo["owner_jited"]))
    rec["frozen"] = int(fdinfo.get("frozen", "0"))
    if info.btf_id:
        rec["btf_id"] = info.btf_id
    if opts.bpffs:
        rec["pinned"] = pins.get(info.id, [])
    return rec


def _header_plain(info: Any) -> str:
    name = f"name {info.name}  " if info.name else ""
    return (f"{info.id}: {type_plain(info.type)}  {name}flags 0x{info.flags:x}"
            f"{dev_plain(info.ifindex, info.netns_dev, info.netns_ino)}")


def _show_plain(info: Any, fdinfo: dict[str, str], pins: dict[int, list[str]]) -> str:
    from ..sys.uapi import MapType, ProgType
    text = (_header_plain(info) + "\n"
            f"\tkey {info.key_size}B  value {info.value_size}B  max_entries {info.max_entries}")
    if "memlock" in fdinfo:
        text += f"  memlock {fdinfo['memlock']}B"
    if info.type == MapType.PROG_ARRAY:
        owner, jited = fdinfo.get("owner_prog_type"), fdinfo.get("owner_jited")
        if owner is not None or jited is not None:
            text += "\n\t"
        if owner is not None:
            text += f"owner_prog_type {type_name(known(ProgType, int(owner)))}  "
        if jited is not None:
            text += "owner jited" if int(jited) else "owner not jited"
    for path in pins.get(info.id, []):
        text += f"\n\tpinned {path}"
    frozen = int(fdinfo.get("frozen", "0"))
    if info.btf_id or frozen:
        text += "\n\t"
    if info.btf_id:
        text += f"btf_id {info.btf_id}"
    if frozen:
        text += "  frozen" if info.btf_id else "frozen"
    return text + "\n"


def do_show(args: Args, opts: Options) -> int:
    pins = pinned_table("map", opts)
    single = bool(len(args))
    fds = map_fds(args) if single else None
    args.done()
    records = []
    for fd in (fds if fds is not None else open_all("map")):
        with fd:
            records.append(_record(fd))
    if opts.json:
        emit_objects((_show_json(i, f, pins, opts) for i, f in records), opts, single)
    else:
        opts.out.write("".join(_show_plain(i, f, pins) for i, f in records))
    return 0


# -- elements -------------------------------------------------------------------------------------
class _BTFFormat:
    """A map's keys and values formatted from its BTF as bpftool's ``btf_dumper`` prints them:
    ``json(key, value)`` for ``-j`` (under "formatted"), ``plain(key, value)`` for plain text
    (members are functions of the JSON nesting depth, rendered by ``jsonw``)."""

    def __init__(self, info: Any, key_type: Any, value_type: Any, ncpus: int) -> None:
        self.key_type, self.value_type = key_type, value_type
        self.per_cpu = _per_cpu(info)
        self.step = (info.value_size + 7) & ~7
        self.ncpus = ncpus

    def _build(self, key: bytes, value: bytes, conv: Callable[[Any, bytes], Any]) -> dict:
        rec: dict[str, Any] = {}
        if self.key_type is not None:
            rec["key"] = conv(self.key_type, key)
        if not self.per_cpu:
            rec["value"] = conv(self.value_type, value)
        else:
            rec["values"] = [{"cpu": c, "value": conv(self.value_type,
                                                     value[c * self.step:(c + 1) * self.step])}
                             for c in range(self.ncpus)]
        return rec

    def json(self, key: bytes, value: bytes) -> dict:
        from ..btf import values
        return self._build(key, value, values.format_json)

    def plain(self, key: bytes, value: bytes) -> dict:
        from ..btf import values
        return self._build(key, value, lambda t, data: (
            lambda depth: values.format_plain(t, data, depth)))


def _btf_formatter(info: Any) -> Optional[_BTFFormat]:
    """The map's BTF formatter, or None for a map without BTF key/value types."""
    value_id = info.btf_vmlinux_value_type_id or info.btf_value_type_id
    if not (info.btf_id and value_id):
        return None
    from ..btf import BTF, Spec
    try:
        if info.btf_vmlinux_value_type_id:
            value_type = Spec.vmlinux().type_by_id(value_id)
            spec = None
        else:
            with BTF.from_id(info.btf_id) as b:
                spec = b.spec()
            value_type = spec.type_by_id(value_id)
        key_type = None
        if info.btf_key_type_id:
            if spec is None:
                with BTF.from_id(info.btf_id) as b:
                    spec = b.spec()
            key_type = spec.type_by_id(info.btf_key_type_id)
    except PyBPFError as e:
        raise CLIError(f"failed to get btf: {why(e)}") from None
    return _BTFFormat(info, key_type, value_type, _ncpus())


def _hexer(size: int) -> Callable[[bytes], str]:
    """``hex_plain`` for values of ``size`` bytes (one C call when it fits on a line)."""
    return (lambda b: b.hex(" ")) if size <= 8 else hex_plain


def plain_entry_formatter(info: Any, ncpus: int) -> Callable[[bytes, bytes], str]:
    """bpftool's ``print_entry_plain`` for the map's key and value sizes, built once per map:
    ``key: .. ..  value: .. ..`` on one line when both fit in 24 bytes, else on several."""
    ks, vs = info.key_size, info.value_size
    khex, vhex = _hexer(ks), _hexer(vs)
    if _per_cpu(info):
        step = (vs + 7) & ~7
        sep = "\n" if vs > 16 else " "

        def per_cpu(key: bytes, value: bytes) -> str:
            text = f"key:\n{khex(key)}\n" if ks else ""
            if vs:
                text += "".join(f"value (CPU {c:02d}):{sep}{vhex(value[c * step:c * step + vs])}\n"
                                for c in range(ncpus))
            return text
        return per_cpu
    brk = ks > 16 or vs > 16
    sep = "\n" if brk else " "
    mid = "  " if ks + vs <= 24 and not brk else "\n"
    if ks and vs:
        return lambda key, value: f"key:{sep}{khex(key)}{mid}value:{sep}{vhex(value)}\n"
    if ks:
        return lambda key, value: f"key:{sep}{khex(key)}{mid}\n"
    return lambda key, value: f"value:{sep}{vhex(value)}\n" if vs else "\n"


def json_entry_formatter(info: Any, ncpus: int,
                         fmt: Optional[_BTFFormat]) -> Callable[[bytes, bytes], str]:
    """bpftool's ``print_entry_json`` (JSON text) for the map, built once per map."""
    per_cpu, vs, step = _per_cpu(info), info.value_size, (info.value_size + 7) & ~7

    def entry(key: bytes, value: bytes) -> str:
        if not per_cpu:
            text = '{"key":' + hex_json(key) + ',"value":' + hex_json(value)
        else:
            text = '{"key":' + hex_json(key) + ',"values":[' + ",".join(
                f'{{"cpu":{cpu},"value":{hex_json(value[cpu * step:cpu * step + vs])}}}'
                for cpu in range(ncpus)) + "]"
        if fmt is not None:
            text += ',"formatted":' + jsonw(fmt.json(key, value), False)
        return text + "}"
    return entry


def _entry_error(info: Any, key: bytes, err: int, as_json: bool) -> Optional[str]:
    from ..sys.uapi import MapType
    if err == _errno.ENOENT and info.type in (MapType.PROG_ARRAY, MapType.ARRAY_OF_MAPS,
                                              MapType.HASH_OF_MAPS):
        return None  # an empty slot, not an error
    if as_json:
        return ('{"key":' + hex_json(key) + ',"value":{"error":' +
                jsonw(os.strerror(err), False) + "}}")
    msg = "<no entry>" if err == _errno.ENOENT else (
        "<cannot read>" if err == _errno.ENOSPC and info.type == MapType.REUSEPORT_SOCKARRAY
        else os.strerror(err))
    brk = info.key_size > 16 or len(msg) > 16
    single = info.key_size + len(msg) <= 24 and not brk
    sep = "\n" if brk else " "
    return f"key:{sep}{hex_plain(key)}{'  ' if single else chr(10)}value:{sep}{msg}\n"


def _ncpus() -> int:
    from ..sys.cpus import possible_cpus
    return len(possible_cpus())


def do_dump(args: Args, opts: Options) -> int:
    from ..maps import Map
    if len(args) != 2:
        raise CLIError("expected a MAP: id N | name NAME | pinned PATH")
    fds = map_fds(args)
    maps = [Map.from_fd(fd, raw=True) for fd in fds]
    try:
        return _dump(maps, opts)
    finally:
        for m in maps:
            m.close()


def _dump(maps: list, opts: Options) -> int:
    try:
        return _dump_all(maps, opts)
    except BPFError as e:
        from ..sys.uapi import ENOTSUPP
        if e.errno not in (_errno.EINVAL, _errno.EOPNOTSUPP, ENOTSUPP):
            raise CLIError(f"can't get next key: {why(e)}", errno_code(e.errno)) from None
        from ..sys.uapi import MapType
        keyless = [m for m in maps if m.type in (
            MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER, MapType.RINGBUF,
            MapType.USER_RINGBUF, MapType.ARENA)]
        m = keyless[0] if keyless else maps[0]
        hint = "; use 'map peek' or 'map pop'" if m.type in (MapType.QUEUE,
                                                                 MapType.STACK) else ""
        err = _errno.errorcode.get(e.errno, "ENOTSUPP")
        raise CLIError(f"can't dump {m.describe()}: {type_plain(m.type)} maps cannot be "
                       f"walked by key (BPF_MAP_GET_NEXT_KEY gives {err}){hint}",
                       errno_code(e.errno)) from None


def _dump_all(maps: list, opts: Options) -> int:
    ncpus = _ncpus()
    many = len(maps) > 1
    write = opts.out.write
    infos = [m.info() for m in maps]
    formatters = [_btf_formatter(i) for i in infos]
    if not opts.json and all(formatters):
        return _dump_btf_plain(maps, infos, formatters, opts)
    if opts.json and opts.pretty:
        import json
        docs = []
        for m, info, fmt in zip(maps, infos, formatters):
            elems = [json.loads(e) for e in _json_entries(m, info, ncpus, fmt)]
            docs.append(_header_json(info, elems) if many else elems)
        emit(docs if many else docs[0], opts)
        return 0
    if opts.json:
        parts = []
        for m, info, fmt in zip(maps, infos, formatters):
            text = "[" + ",".join(_json_entries(m, info, ncpus, fmt)) + "]"
            if many:
                head = jsonw(_header_json(info, None), False)[:-1]
                text = head + ',"elements":' + text + "}"
            parts.append(text)
        write(("[" + ",".join(parts) + "]" if many else parts[0]) + "\n")
        return 0
    for n, (m, info) in enumerate(zip(maps, infos)):
        if many:
            write(_header_plain(info) + "\n")
        count = 0
        chunk: list[str] = []
        entry = plain_entry_formatter(info, ncpus)
        for key, value in m.dump_raw():
            if type(value) is int:
                line = _entry_error(info, key, value, False)
                if line:
                    chunk.append(line)
                continue
            chunk.append(entry(key, value))
            count += 1
            if len(chunk) >= 8192:
                write("".join(chunk))
                chunk.clear()
        write("".join(chunk))
        write(f"Found {count} element{'s' if count != 1 else ''}\n")
        if many and n != len(maps) - 1:
            write("\n")
    return 0


def _json_entries(m: Any, info: Any, ncpus: int, fmt: Any) -> list[str]:
    out = []
    entry = json_entry_formatter(info, ncpus, fmt)
    for key, value in m.dump_raw():
        if type(value) is int:
            err = _entry_error(info, key, value, True)
            if err:
                out.append(err)
        else:
            out.append(entry(key, value))
    return out


def _header_json(info: Any, elements: Any) -> dict:
    rec: dict[str, Any] = {"id": info.id, "type": type_json(info.type)}
    if info.name:
        rec["name"] = info.name
    rec["flags"] = info.flags
    if elements is not None:
        rec["elements"] = elements
    return rec


def _dump_btf_plain(maps: list, infos: list, formatters: list, opts: Options) -> int:
    """Maps with BTF, without ``-j``: the formatted elements in bpftool's pretty JSON layout."""
    docs = []
    for m, info, fmt in zip(maps, infos, formatters):
        elems = [fmt.plain(k, v) for k, v in m.dump_raw() if not isinstance(v, int)]
        docs.append(_header_json(info, elems) if len(maps) > 1 else elems)
    opts.out.write(jsonw(docs if len(maps) > 1 else docs[0], True) + "\n")
    return 0


def _print_key_value(info: Any, key: bytes, value: bytes, opts: Options) -> None:
    fmt = _btf_formatter(info)
    ncpus = _ncpus()
    if opts.json:
        text = json_entry_formatter(info, ncpus, fmt)(key, value)
        if opts.pretty:
            import json
            text = jsonw(json.loads(text), True)
        opts.out.write(text + "\n")
    elif fmt is not None:
        opts.out.write(jsonw(fmt.plain(key, value), True) + "\n")
    else:
        opts.out.write(plain_entry_formatter(info, ncpus)(key, value))


# -- key/value arguments --------------------------------------------------------------------------
def _parse_elem(args: Args, info: Any, want_key: bool, want_value: bool,
                want_flags: bool) -> tuple[bytes, Any, int]:
    """``key DATA``, ``value VALUE`` and ``any|exist|noexist`` in any order, as bpftool's
    ``parse_elem``: a map-in-map value is a MAP handle, a prog array value a PROG handle."""
    from ..maps import MapType
    key: Optional[bytes] = None
    value: Any = None
    flags: Optional[int] = None
    while len(args):
        if args.at("key"):
            if not want_key or key is not None:
                raise CLIError("duplicate key" if info.key_size else "unnecessary key")
            args.next()
            key = parse_bytes(args, "key", info.key_size)
        elif args.at("value"):
            if not want_value or value is not None:
                raise CLIError("duplicate value" if info.value_size else "unnecessary value")
            args.next()
            value = _parse_value(args, info, MapType)
        elif args.at("any") or args.at("noexist") or args.at("exist"):
            if not want_flags or flags is not None:
                raise CLIError(f"flags specified multiple times: {args.peek()}")
            word = args.next()
            flags = 0 if "any".startswith(word) else (1 if "noexist".startswith(word) else 2)
        else:
            raise CLIError(f"expected key or value, got: {args.peek()}")
    if want_key and key is None and info.key_size:
        raise CLIError("did not find key")
    if want_value and value is None:
        raise CLIError("did not find value")
    return key if key is not None else b"", value, flags or 0


def _parse_value(args: Args, info: Any, MapType: Any) -> Any:
    if info.type in (MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS, MapType.PROG_ARRAY):
        progs = info.type == MapType.PROG_ARRAY
        what = "map of progs" if progs else "map in map"
        if info.value_size != 4:
            raise CLIError(f"value smaller than 4B for {what}?")
        if len(args) < 2:
            raise CLIError(f"not enough value arguments for {what}")
        if progs:
            if args.at("id"):
                print("Warning: updating program array via MAP_ID, make sure this map is kept "
                      "open\n         by some process or pinned otherwise update will be lost",
                      file=sys.stderr)
            return prog_fd(args)
        return map_fd(args)
    return parse_bytes(args, "value", info.value_size)


# -- element commands -----------------------------------------------------------------------------
def _element_map(args: Args) -> Any:
    if len(args) < 2:
        raise CLIError("expected a MAP: id N | name NAME | pinned PATH")
    return open_map(args)


def do_update(args: Args, opts: Options) -> int:
    with _element_map(args) as m:
        info = m.info()
        key, value, flags = _parse_elem(args, info, info.key_size > 0, True, True)
        try:
            if info.key_size:
                m.update(key, value, flags)
            else:
                m.push(value, flags)
        except BPFError as e:
            raise CLIError(f"update failed: {why(e)}", errno_code(e.errno)) from None
        finally:
            if hasattr(value, "close"):
                value.close()
    json_null(opts)
    return 0


def do_lookup(args: Args, opts: Options) -> int:
    with _element_map(args) as m:
        info = m.info()
        key, _, _ = _parse_elem(args, info, info.key_size > 0, False, False)
        value = _lookup_raw(m, key, info)
        if isinstance(value, int):
            if value != _errno.ENOENT:
                raise CLIError(f"lookup failed: {os.strerror(value)}", errno_code(value))
            if opts.json:
                opts.out.write("null\n")
            else:
                opts.out.write(f"key:\n{hex_plain(key)}\n\nNot found\n")
            return errno_code(_errno.ENOENT)
        _print_key_value(info, key, value, opts)
    return 0


def _lookup_raw(m: Any, key: bytes, info: Any) -> Any:
    """The value bytes for ``key`` (all CPUs' for per-CPU maps), or the lookup's errno."""
    from ..maps import MapKeyError
    try:
        if info.key_size:
            return _raw_value(m, m.lookup(key))
        value = m.peek()
        return _errno.ENOENT if value is None else _raw_value(m, value)
    except MapKeyError:
        return _errno.ENOENT
    except BPFError as e:
        return e.errno


def _raw_value(m: Any, value: Any) -> bytes:
    """What the kernel wrote: the Map's raw codec gives bytes, a list per CPU, or an id."""
    if isinstance(value, list):
        step = (m.value_size + 7) & ~7
        return b"".join(v + bytes(step - len(v)) for v in (_raw_value(m, x) for x in value))
    if isinstance(value, int):
        return value.to_bytes(m.value_size, sys.byteorder)
    return bytes(value)


def do_getnext(args: Args, opts: Options) -> int:
    with _element_map(args) as m:
        info = m.info()
        key: Optional[bytes] = None
        if len(args):
            key, _, _ = _parse_elem(args, info, True, False, False)
        try:
            nxt = m.next_key(key)
        except BPFError as e:
            raise CLIError(f"can't get next key: {why(e)}", errno_code(e.errno)) from None
    if opts.json:
        emit({"key": hex_list(key) if key is not None else None, "next_key": hex_list(nxt)}, opts)
    else:
        head = f"key:\n{hex_plain(key)}\n" if key is not None else "key: None\n"
        opts.out.write(f"{head}next key:\n{hex_plain(nxt)}\n")
    return 0


def do_delete(args: Args, opts: Options) -> int:
    with _element_map(args) as m:
        info = m.info()
        key, _, _ = _parse_elem(args, info, True, False, False)
        try:
            m.delete(key)
        except BPFError as e:
            raise CLIError(f"delete failed: {why(e)}", errno_code(e.errno)) from None
    json_null(opts)
    return 0


def do_pop(args: Args, opts: Options) -> int:
    with _element_map(args) as m:
        info = m.info()
        args.done()
        from ..maps import MapKeyError
        try:
            value = _raw_value(m, m.pop())
        except MapKeyError:
            if opts.json:
                opts.out.write("null\n")
                return errno_code(_errno.ENOENT)
            raise CLIError("empty map", errno_code(_errno.ENOENT)) from None
        except BPFError as e:
            raise CLIError(f"pop failed: {why(e)}", errno_code(e.errno)) from None
        _print_key_value(info, b"", value, opts)
    return 0


def do_freeze(args: Args, opts: Options) -> int:
    args.require(2)
    with _element_map(args) as m:
        args.done()
        try:
            m.freeze()
        except BPFError as e:
            raise CLIError(f"failed to freeze map: {why(e)}", errno_code(e.errno)) from None
    json_null(opts)
    return 0


def do_create(args: Args, opts: Options) -> int:
    from ..maps import Map
    from ..sys.uapi import MapType
    args.require(7)
    path = args.next()
    mtype = None
    name = None
    sizes = {"key size": 0, "value size": 0, "max entries": 0, "flags": 0}
    ifindex = 0
    inner = None
    try:
        while len(args):
            args.require(2)
            if args.at("type"):
                args.next()
                if mtype is not None:
                    raise CLIError("map type already specified")
                word = args.next()
                try:
                    mtype = MapType[word.upper()] if word == word.lower() and word else None
                except KeyError:
                    mtype = None
                if mtype is None or mtype == MapType.UNSPEC:
                    raise CLIError(f"unrecognized map type: {word}")
            elif args.at("name"):
                args.next()
                name = args.next()
            elif args.at("key") or args.at("value") or args.at("entries") or args.at("flags"):
                word = args.next()
                what = next(w for k, w in (("key", "key size"), ("value", "value size"),
                                           ("entries", "max entries"), ("flags", "flags"))
                            if k.startswith(word))
                if sizes[what]:
                    raise CLIError(f"{what} already specified")
                sizes[what] = parse_u32(args, what)
            elif args.at("dev"):
                args.next()
                if ifindex:
                    raise CLIError("offload device already specified")
                dev = args.next()
                import socket
                try:
                    ifindex = socket.if_nametoindex(dev)
                except OSError as e:
                    raise CLIError(f"unrecognized netdevice '{dev}': {e.strerror}") from None
            elif args.at("inner_map"):
                args.next()
                args.require(2)
                inner = open_map(args)
            else:
                raise CLIError(f"unknown arg {args.peek()}")
        if name is None:
            raise CLIError("map name not specified")
        try:
            m = Map.create(mtype or 0, sizes["key size"], sizes["value size"],
                           sizes["max entries"], name=name, flags=sizes["flags"],
                           inner_map=inner, ifindex=ifindex)
        except PyBPFError as e:
            code = errno_code(e.errno) if isinstance(e, BPFError) else 255
            raise CLIError(f"map create failed: {why(e)}", code) from None
        with m:
            pin_fd(m.fd, path)
    finally:
        if inner is not None:
            inner.close()
    json_null(opts)
    return 0


def do_event_pipe(args: Args, opts: Options) -> int:
    """Print the samples a program writes to a perf event array, until interrupted.

    One ``pybpf.events.PerfBuffer`` per CPU, so each sample's CPU and slot are known. The
    ``@sec.nsec`` stamp is when pybpf read the sample (CLOCK_MONOTONIC): PerfBuffer does not
    ask the kernel for PERF_SAMPLE_TIME, which bpftool prints.
    """
    from ..maps import MapType
    from ..sys.cpus import online_cpus
    m = _element_map(args)
    with m:
        info = m.info()
        if info.type != MapType.PERF_EVENT_ARRAY:
            raise CLIError("map type must be BPF_MAP_TYPE_PERF_EVENT_ARRAY")
        cpu = index = None
        while len(args):
            word = args.next()
            if "cpu".startswith(word):
                cpu = parse_u32(args, "CPU")
            elif "index".startswith(word):
                index = parse_u32(args, "index")
            else:
                raise CLIError(f"unknown arg {word}")
        if (cpu is None) != (index is None):
            raise CLIError("cpu and index must be specified together")
        cpus = [cpu] if cpu is not None else online_cpus()
        if index is not None and index != cpu:
            raise CLIError("pybpf reads slot N on CPU N only (index must equal cpu)")
        return _pipe_events(m, cpus, opts)


def _pipe_events(m: Any, cpus: list, opts: Options) -> int:
    import time
    from ..events import PerfBuffer, Poller
    write, flush = opts.out.write, opts.out.flush
    first = [True]

    def sample(cpu: int) -> Callable[[Any], None]:
        def show(data: Any) -> None:
            now = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
            data = bytes(data)
            if opts.json:
                rec = {"type": 9, "cpu": cpu, "index": cpu, "timestamp": now, "data": list(data)}
                write(("[" if first[0] else ",") + jsonw(rec, False) + "\n")
                first[0] = False
            else:
                write(f"== @{now // 10**9}.{now % 10**9:09d} CPU: {cpu} index: {cpu} =====\n"
                      f"{hex_plain(data)}\n")
            flush()
        return show

    def lost(cpu: int, count: int) -> None:
        if opts.json:
            rec = {"type": 2, "cpu": cpu, "index": cpu, "lost": {"count": count}}
            write(("[" if first[0] else ",") + jsonw(rec, False) + "\n")
            first[0] = False
        else:
            write(f"lost {count} events\n")
        flush()

    buffers = []
    try:
        for cpu in cpus:
            buffers.append(PerfBuffer(m, sample(cpu), cpus=[cpu], lost_callback=lost))
        with Poller(*buffers) as poller:
            while True:
                poller.poll(-1)
    except KeyboardInterrupt:
        pass
    except PyBPFError as e:
        raise CLIError(f"failed to read perf buffer: {why(e)}") from None
    finally:
        for b in buffers:
            b.close()
        if opts.json and not first[0]:
            write("]\n")
    return 0


COMMANDS = [("show", do_show), ("list", do_show), ("help", help_command(USAGE)), ("dump", do_dump),
            ("update", do_update), ("lookup", do_lookup), ("getnext", do_getnext),
            ("delete", do_delete), ("pin", pin_command(map_fd)), ("event_pipe", do_event_pipe),
            ("create", do_create), ("peek", do_lookup), ("push", do_update),
            ("enqueue", do_update), ("pop", do_pop), ("dequeue", do_pop),
            ("freeze", do_freeze)]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "map")
