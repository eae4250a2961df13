"""``pybpf struct_ops``: show, register, unregister (bpftool's ``struct_ops``)."""
from __future__ import annotations

import os
from typing import Any

from ..errors import BPFError, PyBPFError
from .common import (Args, CLIError, Options, dispatch, emit_objects, errno_code, help_command,
                     json_null, open_all, parse_handles, why)

USAGE = """Usage: pybpf struct_ops { show | list } [STRUCT_OPS_MAP]
       pybpf struct_ops register OBJ [LINK_DIR]
       pybpf struct_ops unregister STRUCT_OPS_MAP
       pybpf struct_ops help

       STRUCT_OPS_MAP := [ id STRUCT_OPS_MAP_ID | name STRUCT_OPS_MAP_NAME ]
"""


def _infos(args: Args) -> list[Any]:
    """The struct_ops maps the handle names (all of them without one)."""
    from ..maps import MapInfo
    from ..sys.uapi import MapType
    if len(args) and args.at("id"):
        with parse_handles(args, "map", None, ("id",))[0] as fd:
            info = MapInfo.from_fd(fd.fd)
        if info.type != MapType.STRUCT_OPS:
            raise CLIError(f"map id {info.id} is not a struct_ops map")
        return [info]
    name = None
    if len(args):
        if not args.at("name"):
            raise CLIError(f"expected 'id' or 'name', got: '{args.peek()}'")
        args.next()
        name = args.next("name")
    infos = []
    for fd in open_all("map"):
        with fd:
            info = MapInfo.from_fd(fd.fd)
        if info.type == MapType.STRUCT_OPS and name in (None, info.name):
            infos.append(info)
    if name is not None and not infos:
        raise CLIError(f"no struct_ops found for {name}")
    return infos


def _kernel_struct(info: Any) -> str:
    """The kernel struct a struct_ops map implements: its value type without the prefix
    (vmlinux's parsed once per process; a module's split BTF on top of it)."""
    from ..btf import Spec
    from ..elf.struct_ops import VALUE_PREFIX
    from .btf import spec_of_id
    vmlinux, type_id = Spec.vmlinux(), info.btf_vmlinux_value_type_id
    spec = vmlinux if type_id < len(vmlinux) else spec_of_id(info.btf_vmlinux_id)
    name = spec.type_by_id(type_id).name
    return name[len(VALUE_PREFIX):] if name.startswith(VALUE_PREFIX) else name


def do_show(args: Args, opts: Options) -> int:
    single = args.at("id")  # as bpftool: one object for an id, a list for a name
    infos = _infos(args)
    args.done()
    rows = [(i, _kernel_struct(i)) for i in infos]
    if opts.json:
        emit_objects(({"id": i.id, "name": i.name, "kernel_struct_ops": k} for i, k in rows),
                     opts, single)
    else:
        opts.out.write("".join(f"{i.id}: {i.name:<15} {k:<32}\n" for i, k in rows))
    return 0


def do_register(args: Args, opts: Options) -> int:
    """Load OBJ and register each struct_ops map: one of SEC(".struct_ops") stays registered;
    one of SEC(".struct_ops.link") through its link, pinned in LINK_DIR under the map's name."""
    from ..elf import ObjectSpec, load
    args.require(1)
    path = args.next("object file")
    link_dir = args.next("link directory") if len(args) else None
    args.done()
    try:
        spec = ObjectSpec.from_file(path)
        if not spec.struct_ops:
            raise CLIError(f"no struct_ops map in {path}")
        linked = [n for n, so in spec.struct_ops.items() if so.link]
        if linked and link_dir is None:
            raise CLIError(f"struct_ops map {linked[0]!r} registers through a BPF link, which "
                           "pybpf must pin to keep: give LINK_DIR (a bpffs directory)")
        lines = []
        with load(spec) as coll:
            for name in spec.struct_ops:
                attached = coll.attach_struct_ops(name)
                coll.links.remove(attached)  # outlives this process: not closed with coll
                info = coll.maps[name].info()
                what = f"Registered {_kernel_struct(info)} {name}"
                if spec.struct_ops[name].link:
                    assert link_dir is not None  # checked above for every linked map
                    with attached:
                        attached.pin(os.path.join(link_dir, name))
                        lines.append(f"{what} map id {info.id} link id {attached.info().id}")
                else:
                    lines.append(f"{what} id {info.id}")
    except PyBPFError as e:
        raise CLIError(f"failed to register struct_ops from {path}: {why(e)}",
                       errno_code(getattr(e, "errno", 0) or 0)) from None
    if not opts.json:
        opts.out.write("".join(line + "\n" for line in lines))
    json_null(opts)
    return 0


def do_unregister(args: Args, opts: Options) -> int:
    from ..links.struct_ops import unregister
    from ..sys import objects
    args.require(2)
    infos = _infos(args)
    args.done()
    for info in infos:
        with objects.fd_by_id("map", info.id) as fd:
            try:
                unregister(fd, f"struct_ops map {info.name!r}")
            except BPFError as e:
                raise CLIError(f"failed to unregister struct_ops {info.name}: {why(e)}",
                               errno_code(e.errno)) from None
        if not opts.json:
            opts.out.write(f"Unregistered {_kernel_struct(info)} {info.name} id {info.id}\n")
    json_null(opts)
    return 0


COMMANDS = [("show", do_show), ("list", do_show), ("help", help_command(USAGE)),
            ("register", do_register), ("unregister", do_unregister)]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "struct_ops")
