"""``pybpf net show [dev NAME]``: XDP, tc (tcx and cls_bpf) and flow dissector programs of
this network namespace, from ``pybpf.links`` (netlink and BPF_PROG_QUERY)."""
from __future__ import annotations

from typing import Any, Optional

from ..errors import PyBPFError
from .common import Args, CLIError, Options, dispatch, emit, help_command, why

USAGE = """Usage: pybpf net { show | list } [dev <devname>]
       pybpf net help
"""


def _xdp(dev: Optional[str]) -> list[tuple[dict, str]]:
    from ..links.xdp import list_xdp
    out = []
    for x in list_xdp(dev):
        if x.mode == "none" or not x.prog_ids:
            continue
        rec: dict[str, Any] = {"devname": x.ifname, "ifindex": x.ifindex}
        text = f"{x.ifname}({x.ifindex})"
        if x.mode == "multi":
            rec["multi_attachments"] = [{"mode": m, "id": i} for m, i in x.prog_ids.items()]
            text += "".join(f" {m} id {i}" for m, i in x.prog_ids.items())
        else:
            rec.update(mode=x.mode, id=x.prog_id)
            text += f" {x.mode} id {x.prog_id}"
        out.append((rec, text))
    return out


def _tc(dev: Optional[str]) -> list[tuple[dict, str]]:
    from ..links.tc import list_tc
    out = []
    for t in list_tc(dev):
        rec: dict[str, Any] = {"devname": t.ifname, "ifindex": t.ifindex}
        if t.kind == "tcx":
            rec.update(kind=f"tcx/{t.direction}", name=t.name, prog_id=t.prog_id,
                       link_id=t.link_id)
            text = (f"{t.ifname}({t.ifindex}) tcx/{t.direction} {t.name} prog_id {t.prog_id}"
                    + (f" link_id {t.link_id}" if t.link_id else ""))
        else:
            rec.update(kind=f"clsact/{t.direction}", name=t.name, id=t.prog_id)
            text = f"{t.ifname}({t.ifindex}) clsact/{t.direction} {t.name} id {t.prog_id}"
        out.append((rec, text))
    return out


def _flow_dissector() -> list[tuple[dict, str]]:
    from ..links.netns import query_netns
    from ..sys.uapi import AttachType
    q = query_netns(AttachType.FLOW_DISSECTOR)
    return [({"id": p.prog_id}, f"id {p.prog_id}") for p in q.programs]


def do_show(args: Args, opts: Options) -> int:
    dev: Optional[str] = None
    while len(args):
        if args.at("dev"):
            args.next()
            dev = args.next("device name")
            import socket
            try:
                socket.if_nametoindex(dev)
            except OSError:
                raise CLIError(f"invalid devname {dev}") from None
        else:
            raise CLIError(f"unknown arg {args.peek()}")
    try:
        sections = [("xdp", _xdp(dev)), ("tc", _tc(dev)), ("flow_dissector", _flow_dissector())]
    except PyBPFError as e:
        raise CLIError(f"can't list network programs: {why(e)}") from None
    if opts.json:
        emit([{name: [rec for rec, _ in rows] for name, rows in sections}], opts)
        return 0
    # bpftool ends each XDP/tc entry with a newline, but not the flow dissector's "id N"
    opts.out.write("".join(
        f"{name}:\n" + "".join(text + ("" if name == "flow_dissector" else "\n")
                               for _, text in rows) + "\n"
        for name, rows in sections))
    return 0


COMMANDS = [("show", do_show), ("list", do_show), ("help", help_command(USAGE))]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "net")
