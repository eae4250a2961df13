"""``pybpf prog``: show, dump xlated, pin, load, loadall, run, tracelog."""
from __future__ import annotations

import os
import sys
from typing import Any, Optional

from ..errors import BPFError, PyBPFError
from .common import (Args, CLIError, Options, dev_json, dev_plain, dispatch, emit, emit_objects,
                     errno_code, help_command, hex_list, json_null, jsonw, open_all, pin_command,
                     pin_fd, pinned_table, strtoul, type_json, type_plain, why)
from .handles import full_name, map_fd, prog_fd, prog_fds

USAGE = """Usage: pybpf prog { show | list } [PROG]
       pybpf prog dump xlated PROG [{ file FILE | opcodes | linum }]
       pybpf prog pin   PROG FILE
       pybpf prog { load | loadall } OBJ  PATH \\
                         [type TYPE] [map { idx IDX | name NAME } MAP] \\
                         [pinmaps MAP_DIR] [autoattach]
       pybpf prog tracelog
       pybpf prog run PROG \\
                         data_in FILE \\
                         [data_out FILE [data_size_out L]] \\
                         [ctx_in FILE [ctx_out FILE [ctx_size_out M]]] \\
                         [repeat N]
       pybpf prog help

       MAP := { id MAP_ID | pinned FILE | name MAP_NAME }
       PROG := { id PROG_ID | pinned FILE | tag PROG_TAG | name PROG_NAME }
"""


# -- opening programs -----------------------------------------------------------------------------
def open_prog(args: Args) -> Any:
    from ..programs import Program
    return Program.from_fd(prog_fd(args))


# -- show -----------------------------------------------------------------------------------------
def loaded_at(load_time_ns: int) -> int:
    """Wall-clock seconds of a load time (ns since boot), computed as bpftool does."""
    import time
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    boot = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
    rs, rn = divmod(real, 10**9)
    bs, bn = divmod(boot, 10**9)
    rest = rn - bn + load_time_ns
    return (rs - bs) + (rest // 10**9 if rest >= 0 else -(-rest // 10**9))


def _loaded_plain(load_time_ns: int) -> str:
    import time
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(loaded_at(load_time_ns)))


def _show_json(info: Any, name: str, fdinfo: dict, pins: dict, opts: Options,
               metadata: list[tuple[str, Any]]) -> dict:
    rec = _header_json(info, name)
    rec.update(dev_json(info.ifindex, info.netns_dev, info.netns_ino))
    if info.load_time:
        rec.update(loaded_at=loaded_at(info.load_time), uid=info.created_by_uid)
    rec["bytes_xlated"] = info.xlated_prog_len
    rec["jited"] = bool(info.jited_prog_len)
    if info.jited_prog_len:
        rec["bytes_jited"] = info.jited_prog_len
    if "memlock" in fdinfo:
        rec["bytes_memlock"] = int(fdinfo["memlock"])
    if info.map_ids:
        rec["map_ids"] = list(info.map_ids)
    if info.btf_id:
        rec["btf_id"] = info.btf_id
    if opts.bpffs:
        rec["pinned"] = pins.get(info.id, [])
    rec["verified_insns"] = info.verified_insns
    if metadata:
        rec["metadata"] = dict(metadata)
    return rec


_METADATA = "bpf_metadata_"


def _metadata(info: Any) -> list[tuple[str, Any]]:
    """The program's ``bpf_metadata_*`` constants, formatted by BTF (bpftool's
    ``show_prog_metadata``): from the first of its maps that is a one-element ``.rodata``
    array with BTF."""
    from ..btf import BTF, values
    from ..btf import types as T
    from ..maps import Map, MapType
    from ..sys import objects
    for map_id in info.map_ids:
        try:
            with Map.from_fd(objects.fd_by_id("map", map_id), raw=True) as m:
                minfo = m.info()
                if (minfo.type != MapType.ARRAY or minfo.key_size != 4 or minfo.max_entries != 1
                        or not minfo.btf_value_type_id or ".rodata" not in minfo.name):
                    continue
                value = m.lookup(0)
            with BTF.from_id(minfo.btf_id) as b:
                sec = b.spec().type_by_id(minfo.btf_value_type_id)
        except PyBPFError:
            return []
        if not isinstance(sec, T.Datasec):
            return []
        return [(v.type.name[len(_METADATA):],
                 values.format_json(v.type.type, value[v.offset:v.offset + v.size]))
                for v in sec.vars if v.type.name.startswith(_METADATA)]
    return []


def header_plain(info: Any, name: str) -> str:
    """``ID: TYPE  name NAME  tag TAG  gpl``: the first line of ``prog show``."""
    text = f"{info.id}: {type_plain(info.type)}  "
    if info.name:
        text += f"name {name}  "
    text += f"tag {info.tag}{dev_plain(info.ifindex, info.netns_dev, info.netns_ino)}"
    text += "  gpl" if info.gpl_compatible else ""
    if info.run_time_ns:
        text += f" run_time_ns {info.run_time_ns} run_cnt {info.run_cnt}"
    if info.recursion_misses:
        text += f" recursion_misses {info.recursion_misses}"
    return text


def _show_plain(info: Any, name: str, fdinfo: dict, pins: dict,
                metadata: list[tuple[str, Any]]) -> str:
    text = header_plain(info, name) + "\n"
    if info.load_time:
        text += f"\tloaded_at {_loaded_plain(info.load_time)}  uid {info.created_by_uid}\n"
    text += f"\txlated {info.xlated_prog_len}B"
    text += f"  jited {info.jited_prog_len}B" if info.jited_prog_len else "  not jited"
    if "memlock" in fdinfo:
        text += f"  memlock {fdinfo['memlock']}B"
    if info.map_ids:
        text += "  map_ids " + ",".join(map(str, info.map_ids))
    for path in pins.get(info.id, []):
        text += f"\n\tpinned {path}"
    if info.btf_id:
        text += f"\n\tbtf_id {info.btf_id}"
    text += "\n"
    if metadata:
        text += "\tmetadata:" + "".join(f"\n\t\t{k} = {jsonw(v, False)}" for k, v in metadata)
        text += "\n"
    return text


def do_show(args: Args, opts: Options) -> int:
    from ..programs import ProgInfo
    from ..sys import objects
    pins = pinned_table("prog", opts)
    single = bool(len(args))
    fds = prog_fds(args) if single else None
    args.done()
    records = []
    for fd in (fds if fds is not None else open_all("prog")):
        with fd:
            info = ProgInfo.from_fd(fd.fd)
            records.append((info, full_name(info, fd.fd), objects.fdinfo(fd.fd),
                            _metadata(info) if info.map_ids else []))
    if opts.json:
        emit_objects((_show_json(i, n, f, pins, opts, md) for i, n, f, md in records), opts,
                     single)
    else:
        opts.out.write("".join(_show_plain(i, n, f, pins, md) for i, n, f, md in records))
    return 0


# -- dump xlated ----------------------------------------------------------------------------------
def do_dump(args: Args, opts: Options) -> int:
    if not len(args):
        raise CLIError("expected 'xlated' or 'jited'")
    what = args.next()
    if "jited".startswith(what):
        raise CLIError("dump jited is not supported by pybpf (it has no native disassembler); "
                       "use 'prog dump xlated'")
    if not "xlated".startswith(what):
        raise CLIError(f"expected 'xlated' or 'jited', got: {what}")
    args.require(2)
    fds = prog_fds(args)
    opcodes = linum = False
    path: Optional[str] = None
    try:
        while len(args):
            if args.at("file"):
                args.next()
                path = args.next("file name")
            elif args.at("opcodes"):
                args.next()
                opcodes = True
            elif args.at("linum"):
                args.next()
                linum = True
            elif args.at("visual"):
                raise CLIError("'visual' (DOT graph) output is not supported by pybpf")
            else:
                raise CLIError(f"unknown arg {args.peek()}")
        from ..programs import Program
        progs = [Program.from_fd(fd) for fd in fds]
    except BaseException:
        for fd in fds:
            fd.close()
        raise
    many = len(progs) > 1
    docs = []
    try:
        for n, prog in enumerate(progs):
            if path is not None:
                with open(path, "wb") as f:
                    f.write(prog.xlated())
                continue
            insns = _dump_xlated(prog, opts, opcodes, linum, many)
            if opts.json:
                docs.append(insns)
            elif many and n != len(progs) - 1:
                opts.out.write("\n")
    finally:
        for p in progs:
            p.close()
    if path is not None:
        json_null(opts)
    elif opts.json:
        emit(docs if many else docs[0], opts)
    return 0


def _header_json(info: Any, name: str) -> dict:
    """bpftool's ``print_prog_header_json``: what heads each program of a multi-program dump
    and starts each ``prog show`` object."""
    rec: dict[str, Any] = {"id": info.id, "type": type_json(info.type)}
    if info.name:
        rec["name"] = name
    rec.update(tag=info.tag, gpl_compatible=info.gpl_compatible)
    if info.run_time_ns:
        rec.update(run_time_ns=info.run_time_ns, run_cnt=info.run_cnt)
    if info.recursion_misses:
        rec["recursion_misses"] = info.recursion_misses
    return rec


def _dump_xlated(prog: Any, opts: Options, opcodes: bool, linum: bool, header: bool) -> Any:
    """Print one program's instructions (with ``header``, its ``prog show`` line first); in
    JSON mode return them (under a header object with ``header``) instead."""
    from ..asm import INSN_SIZE, Instruction, KernelSymbols, format_instruction
    code = prog.xlated()
    symbols = KernelSymbols.load()
    ksyms = prog.jited_ksyms()
    source = _source_lines(prog, linum)
    plain: list[str] = []
    records: list[dict] = []
    pc = 0
    while pc * INSN_SIZE < len(code):
        insn = Instruction.decode(code, pc * INSN_SIZE)
        raw = code[pc * INSN_SIZE:(pc + insn.slots) * INSN_SIZE]
        text = format_instruction(insn, symbols, ksyms)
        if opts.json:
            rec: dict[str, Any] = {}
            if pc in source:
                rec.update(source[pc][1])
            rec["disasm"] = text
            if opcodes:
                rec["opcodes"] = {"code": f"0x{raw[0]:02x}", "src_reg": f"0x{raw[1] >> 4:x}",
                                  "dst_reg": f"0x{raw[1] & 0xF:x}", "off": hex_list(raw[2:4]),
                                  "imm": hex_list(raw[4:])}
            records.append(rec)
        else:
            if pc in source:
                plain.append(source[pc][0])
            plain.append(f"{pc:4d}: {text}")
            if opcodes:
                plain.append("       " + raw.hex(" "))
        pc += insn.slots
    if opts.json:
        if not header:
            return records
        info = prog.info()
        return {**_header_json(info, full_name(info, prog.fd)), "insns": records}
    if header:
        info = prog.info()
        opts.out.write(header_plain(info, full_name(info, prog.fd)) + "\n")
    opts.out.write("\n".join(plain) + ("\n" if plain else ""))
    return None


def _source_lines(prog: Any, linum: bool) -> dict[int, tuple[str, dict]]:
    """Function prototypes (``int hello(struct xdp_md * ctx):``) and source lines
    (``; counter++;``) from the program's BTF func and line info, by instruction index."""
    func_info, line_info = prog.btf_ext_info()
    if not (func_info or line_info):
        return {}
    from ..btf import BTF
    info = prog.info()
    try:
        with BTF.from_id(info.btf_id) as b:
            spec = b.spec()
    except PyBPFError:
        return {}
    out: dict[int, tuple[str, dict]] = {}
    for insn_off, type_id in func_info:
        sig = _signature(spec, type_id)
        if sig:
            out[insn_off] = (f"{sig}:", {"proto": sig})
    for insn_off, file_off, line_off, line_col in line_info:
        line = spec.string(line_off).lstrip()
        text, data = f"; {line}", {"src": line}
        if linum:
            file = spec.string(file_off)
            text += f" [file:{file} line_num:{line_col >> 10} line_col:{line_col & 0x3FF}]"
            data.update(file=file, line_num=line_col >> 10, line_col=line_col & 0x3FF)
        head = out.get(insn_off)
        out[insn_off] = ((head[0] + "\n" if head else "") + text, {**(head[1] if head else {}),
                                                                    **data})
    return out


def _signature(spec: Any, type_id: int) -> str:
    """A function as bpftool's ``btf_dumper_type_only`` spells it: ``int f(struct s * p)``."""
    from ..btf import types as T
    parts: list[str] = []

    def emit(t: Any) -> bool:
        if t is None or t.id == 0:
            parts.append("void ")
        elif isinstance(t, (T.Int, T.Typedef, T.Float)):
            parts.append(f"{t.name} ")
        elif isinstance(t, T.Struct):
            parts.append(f"struct {t.name} ")
        elif isinstance(t, T.Union):
            parts.append(f"union {t.name} ")
        elif isinstance(t, T.Enum):
            parts.append(f"enum {t.name} ")
        elif isinstance(t, T.Array):
            if not emit(t.type):
                return False
            parts.append(f"[{t.nelems}]")
        elif isinstance(t, T.Pointer):
            if not emit(t.target):
                return False
            parts.append("* ")
        elif isinstance(t, T.Fwd):
            parts.append(f"{'union' if t.union else 'struct'} {t.name} ")
        elif isinstance(t, (T.Volatile, T.Const, T.Restrict)):
            parts.append({T.Volatile: "volatile ", T.Const: "const ",
                          T.Restrict: "restrict "}[type(t)])
            return emit(t.type)
        elif isinstance(t, (T.FuncProto, T.Func)):
            proto, name = (t.proto, t.name) if isinstance(t, T.Func) else (t, None)
            if not emit(proto.return_type):
                return False
            parts.append(f"{name}(" if name is not None else "(")
            for i, param in enumerate(proto.params):
                if i:
                    parts.append(", ")
                if param.type.id == 0:
                    parts.append("...")
                    continue
                if not emit(param.type):
                    return False
                if param.name:
                    parts.append(param.name)
                elif parts and parts[-1].endswith(" "):
                    parts[-1] = parts[-1][:-1]
            parts.append(")")
        else:
            return False
        return True

    try:
        ok = emit(spec.type_by_id(type_id))
    except PyBPFError:
        return ""
    return "".join(parts) if ok else ""


# -- pin, run -------------------------------------------------------------------------------------
def _read_input(path: str, what: str) -> bytes:
    try:
        if path == "-":
            return sys.stdin.buffer.read()
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise CLIError(f"failed to open {path}: {e.strerror}") from None


def _hex_dump(data: bytes) -> str:
    """bpftool's ``hex_print`` for data_out/ctx_out on stdout."""
    rows = []
    for row in range(0, len(data), 16):
        chunk = data[row:row + 16]
        hexes = "".join(f"{b:02x}{' ' if (row + j) % 2 else ''}" for j, b in enumerate(chunk))
        hexes += "".join("  " + (" " if (row + j) % 2 else "") for j in range(len(chunk), 16))
        text = "".join(chr(b) if 32 <= b <= 126 else "." for b in chunk)
        if len(chunk) >= 8:  # a space after the 8th character
            text = text[:8] + " " + text[8:]
        rows.append(f"{row:07x}\t{hexes}| {text}")
    return "\n".join(rows) + ("\n" if rows else "")


def do_run(args: Args, opts: Options) -> int:
    args.require(4)
    prog = open_prog(args)
    with prog:
        params: dict[str, str] = {}
        sizes: dict[str, int] = {}
        repeat = 1
        while len(args):
            word = args.next()
            names = ("data_in", "data_out", "data_size_out", "ctx_in", "ctx_out",
                     "ctx_size_out", "repeat")
            name = next((n for n in names if n.startswith(word)), None)
            if name is None:
                raise CLIError(f"unknown arg {word}")
            value = args.next(name)
            if name in ("data_size_out", "ctx_size_out", "repeat"):
                number = strtoul(value)
                if number is None:
                    raise CLIError(f"can't parse {value} as {name.replace('_', ' ')}")
                if name == "repeat":
                    repeat = number
                else:
                    sizes[name] = number
            else:
                params[name] = value
        data_in = _read_input(params["data_in"], "data_in") if "data_in" in params else b""
        ctx_in = _read_input(params["ctx_in"], "ctx_in") if "ctx_in" in params else None
        try:
            res = prog.test_run(data_in, ctx_in=ctx_in, repeat=repeat,
                                data_out_size=sizes.get("data_size_out",
                                                        len(data_in) + 256 if data_in else 0),
                                ctx_out_size=sizes.get("ctx_size_out"))
        except BPFError as e:
            raise CLIError(f"failed to run program: {why(e)}", errno_code(e.errno)) from None
    out: dict[str, Any] = {}
    for name, data in (("data_out", res.data_out), ("ctx_out", res.ctx_out)):
        path = params.get(name)
        if path is None:
            continue
        if path == "-":
            if opts.json:
                out[name] = list(data)
            else:
                opts.out.write(_hex_dump(data))
        else:
            with open(path, "wb") as f:
                f.write(data)
    if opts.json:
        out.update(retval=res.retval, duration=res.duration_ns)
        emit(out, opts)
    else:
        avg = " (average)" if repeat > 1 else ""
        opts.out.write(f"Return value: {res.retval}, duration{avg}: {res.duration_ns}ns\n")
    return 0


# -- load, tracelog -------------------------------------------------------------------------------
def _parse_load(args: Args) -> dict[str, Any]:
    """``OBJ PATH [type TYPE] [map {idx IDX | name NAME} MAP] [pinmaps DIR] [autoattach]``."""
    args.require(2)
    out: dict[str, Any] = {"obj": args.next(), "path": args.next(), "type": None, "maps": [],
                           "pinmaps": None, "autoattach": False}
    while len(args):
        if args.at("type"):
            args.next()
            if out["type"] is not None:
                raise CLIError("program type already specified")
            out["type"] = args.next("program type")
        elif args.at("map"):
            args.next()
            how = args.next("'idx' or 'name'")
            if "idx".startswith(how):
                index = strtoul(args.next("map index"))
                if index is None:
                    raise CLIError("can't parse map index")
                which: Any = int(index)
            elif "name".startswith(how):
                which = args.next("map name")
            else:
                raise CLIError(f"expected 'idx' or 'name', got: '{how}'?")
            out["maps"].append((which, map_fd(args)))
        elif args.at("pinmaps"):
            args.next()
            out["pinmaps"] = args.next("directory")
        elif args.at("autoattach"):
            args.next()
            out["autoattach"] = True
        else:
            raise CLIError(f"expected no more arguments, 'type', 'map', 'pinmaps' or "
                           f"'autoattach', got: '{args.peek()}'?")
    return out


def _load(args: Args, opts: Options, first_only: bool) -> int:
    """Load an object with ``pybpf.elf``; pin its first program (``load``) or every program
    under a directory (``loadall``), their links with ``autoattach``."""
    params = _parse_load(args)
    try:
        return _load_object(params, opts, first_only)
    finally:
        for _, fd in params["maps"]:
            fd.close()


def _load_object(params: dict, opts: Options, first_only: bool) -> int:
    from ..elf import ObjectSpec, find_section, load
    from ..errors import VerifierError
    try:
        spec = ObjectSpec.from_file(params["obj"])
    except PyBPFError as e:
        raise CLIError(f"failed to open object file: {why(e)}") from None
    if not spec.programs:
        raise CLIError("object file doesn't contain any bpf program")
    if params["type"] is not None:
        section = find_section(params["type"])
        if section is None:
            raise CLIError(f"unknown program type '{params['type']}'")
        for ps in spec.programs.values():
            ps.section = section
    given = _given_maps(list(spec.maps), params["maps"])
    try:
        kw: dict[str, Any] = {"log_level": 7} if opts.debug else {}
        try:
            coll = load(spec, maps=given, **kw)
        except VerifierError as e:
            if opts.debug and e.log:
                sys.stderr.write(e.log.rstrip("\n") + "\n")
            reasons = [line for line in e.log.strip().splitlines()
                       if not line.startswith(("processed ", "verification time", "stack depth"))]
            last = reasons[-1] if reasons else ""
            raise CLIError(f"failed to load object file: {e.strerror}"
                           + (f": {last}" if last and not opts.debug else "")
                           + ("" if opts.debug else " (-d prints the verifier log)"),
                           errno_code(e.errno)) from None
        except PyBPFError as e:
            raise CLIError(f"failed to load object file: {why(e)}") from None
    finally:
        for m in given.values():
            m.close()
    with coll:
        if opts.debug:
            for name, p in coll.programs.items():
                if p.verifier_log:
                    sys.stderr.write(f"verifier log of {name}:\n{p.verifier_log.rstrip()}\n")
        progs = list(coll.programs.items())
        if params["pinmaps"] is not None:
            os.makedirs(params["pinmaps"], exist_ok=True)
            for name, m in coll.maps.items():
                pin_fd(m.fd, os.path.join(params["pinmaps"], name.replace(".", "_")))
        targets: list[tuple[str, Any]] = []
        if params["autoattach"]:
            from ..elf.attach import auto_attach_kind
            for name, p in progs[:1] if first_only else progs:
                if auto_attach_kind(p) is None:  # as bpftool: pin the program instead
                    if not opts.json:
                        sys.stderr.write(f"Program {name} does not support autoattach, "
                                         "falling back to pinning\n")
                    targets.append((name, p))
                    continue
                try:
                    link = p.attach()
                except PyBPFError as e:
                    raise CLIError(f"failed to auto-attach program '{name}': {why(e)}") from None
                coll.links.append(link)
                targets.append((name, link))
        else:
            targets = progs[:1] if first_only else progs
        if first_only:
            pin_fd(targets[0][1].fileno(), params["path"])
        else:
            os.makedirs(params["path"], exist_ok=True)
            for name, obj in targets:
                pin_fd(obj.fileno(), os.path.join(params["path"], name.replace(".", "_")))
    json_null(opts)
    return 0


def _given_maps(names: list[str], maps: list[tuple[Any, Any]]) -> dict[str, Any]:
    """The existing maps ``map idx|name ... MAP`` give the loader, by the object's map name."""
    from ..maps import Map
    given: dict[str, Any] = {}
    try:
        for which, fd in maps:
            if isinstance(which, int):
                if which >= len(names):
                    raise CLIError(f"map idx '{which}' is out of range (the object has "
                                   f"{len(names)} maps)")
                which = names[which]
            elif which not in names:
                raise CLIError(f"map '{which}' not found in the object: {', '.join(names)}")
            if which in given:
                given[which].close()
            given[which] = Map.from_fd(fd.fd, raw=True)
    except BaseException:
        for m in given.values():
            m.close()
        raise
    return given


def do_load(args: Args, opts: Options) -> int:
    return _load(args, opts, first_only=True)


def do_loadall(args: Args, opts: Options) -> int:
    return _load(args, opts, first_only=False)


def do_tracelog(args: Args, opts: Options) -> int:
    """Print trace_pipe (``bpf_printk`` output) until interrupted, as bpftool does."""
    args.done()
    from ..events.trace_pipe import TracePipe
    try:
        pipe = TracePipe(function=None)
    except (PyBPFError, OSError) as e:
        raise CLIError(f"can't open trace_pipe: {why(e)}") from None
    with pipe:
        if opts.json:
            opts.out.write("[")
        first = True
        try:
            while True:
                for line in pipe.lines(None):
                    if opts.json:
                        opts.out.write(("" if first else ",") + jsonw(line + "\n", False))
                        first = False
                    else:
                        opts.out.write(line + "\n")
                opts.out.flush()
        except KeyboardInterrupt:
            pass
        if opts.json:
            opts.out.write("]\n")
    return 0


COMMANDS = [("show", do_show), ("list", do_show), ("help", help_command(USAGE)), ("dump", do_dump),
            ("pin", pin_command(prog_fd)), ("load", do_load), ("loadall", do_loadall),
            ("tracelog", do_tracelog), ("run", do_run)]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "prog")
