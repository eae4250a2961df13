"""``pybpf link``: show, pin, detach."""
from __future__ import annotations

from typing import Any

from ..errors import BPFError
from .common import (Args, CLIError, Options, dispatch, emit_objects, errno_code,
                     help_command, json_null, known, one_handle, open_all,
                     parse_handles, pin_command, pinned_table, type_json, type_name, type_plain,
                     why)

USAGE = """Usage: pybpf link { show | list }   [LINK]
       pybpf link pin        LINK  FILE
       pybpf link detach     LINK
       pybpf link help

       LINK := { id LINK_ID | pinned FILE }
"""


def link_fd(args: Args) -> Any:
    return one_handle(parse_handles(args, "link", None, ("id", "pinned")), "link")


def _prog_type(prog_id: int) -> Any:
    from ..programs import ProgInfo
    from ..sys import objects
    with objects.fd_by_id("prog", prog_id) as fd:
        return ProgInfo.from_fd(fd.fd).type


def _ifindex_plain(ifindex: int) -> str:
    from ..links.netlink import ifname
    if not ifindex:
        return "(detached)"
    name = ifname(ifindex)
    return f"{name}({ifindex})" if name else "(unknown)"


def _fields(info: Any) -> list[tuple[str, Any, str]]:
    """(json name, json value, plain text) of the type-specific fields, in bpftool's order.

    Plain text follows Debian's bpftool 7.1 where it knows the link type (it prints nothing
    more for XDP links); tcx and netkit links, which it does not know, are printed as newer
    bpftool versions print them. JSON carries the interface for all three.
    """
    from ..links.netlink import ifname
    from ..sys.uapi import AttachType, LinkType
    d = info.details
    out: list[tuple[str, Any, str]] = []

    def attach(value: Any) -> None:
        t = known(AttachType, int(value))
        out.append(("attach_type", type_json(t), f"attach_type {type_name(t)}  "))

    def interface(plain: bool) -> None:
        index = d["ifindex"]
        out.append(("ifindex", index, f"\n\tifindex {_ifindex_plain(index)}  " if plain else ""))
        name = ifname(index) if index else None
        if name:
            out.append(("devname", name, ""))

    if info.type == LinkType.RAW_TRACEPOINT:
        out.append(("tp_name", d.get("tp_name", ""), f"\n\ttp '{d.get('tp_name', '')}'  "))
    elif info.type == LinkType.TRACING:
        ptype = _prog_type(info.prog_id)
        out.append(("prog_type", type_json(ptype), f"\n\tprog_type {type_name(ptype)}  "))
        attach(d["attach_type"])
    elif info.type == LinkType.CGROUP:
        out.append(("cgroup_id", d["cgroup_id"], f"\n\tcgroup_id {d['cgroup_id']}  "))
        attach(d["attach_type"])
    elif info.type == LinkType.NETNS:
        out.append(("netns_ino", d["netns_ino"], f"\n\tnetns_ino {d['netns_ino']}  "))
        attach(d["attach_type"])
    elif info.type == LinkType.XDP:
        interface(False)
    elif info.type in (LinkType.TCX, LinkType.NETKIT):
        interface(True)
        attach(d["attach_type"])
    return out


def _show_json(info: Any, pins: dict, opts: Options) -> dict:
    rec: dict[str, Any] = {"id": info.id, "type": type_json(info.type), "prog_id": info.prog_id}
    for name, value, _ in _fields(info):
        rec[name] = value
    if opts.bpffs:
        rec["pinned"] = pins.get(info.id, [])
    return rec


def _show_plain(info: Any, pins: dict) -> str:
    text = f"{info.id}: {type_plain(info.type)}  prog {info.prog_id}  "
    text += "".join(plain for _, _, plain in _fields(info))
    for path in pins.get(info.id, []):
        text += f"\n\tpinned {path}"
    return text + "\n"


def do_show(args: Args, opts: Options) -> int:
    from ..links.link import LinkInfo
    pins = pinned_table("link", opts)
    single = bool(len(args))
    fds = [link_fd(args)] if single else None
    args.done()
    infos = []
    for fd in (fds if fds is not None else open_all("link")):
        with fd:
            infos.append(LinkInfo.from_fd(fd.fd))
    if opts.json:
        emit_objects((_show_json(i, pins, opts) for i in infos), opts, single)
    else:
        opts.out.write("".join(_show_plain(i, pins) for i in infos))
    return 0


def do_detach(args: Args, opts: Options) -> int:
    from ..links.link import Link
    if len(args) != 2:
        raise CLIError("link specifier is invalid or missing")
    with Link(link_fd(args)) as link:
        try:
            link.detach()
        except BPFError as e:
            raise CLIError(f"failed link detach: {why(e)}", errno_code(e.errno)) from None
    json_null(opts)
    return 0


COMMANDS = [("show", do_show), ("list", do_show), ("help", help_command(USAGE)),
            ("pin", pin_command(link_fd)), ("detach", do_detach)]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "link")
