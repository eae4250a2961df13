"""``pybpf cgroup show CGROUP [effective]`` and ``pybpf cgroup tree [ROOT] [effective]``,
from ``pybpf.links.cgroup.list_cgroup`` (BPF_PROG_QUERY per attach type)."""
from __future__ import annotations

import os
from typing import Any, Optional

from ..errors import BPFError, PyBPFError
from .common import Args, CLIError, Options, dispatch, emit, help_command, why

USAGE = """Usage: pybpf cgroup { show | list } CGROUP [**effective**]
       pybpf cgroup tree [CGROUP_ROOT] [**effective**]
       pybpf cgroup help
"""

_FLAGS = {0: "", 1: "override", 2: "multi"}  # BPF_F_ALLOW_OVERRIDE, BPF_F_ALLOW_MULTI


def _flags(value: int) -> str:
    return _FLAGS.get(value, f"unknown({value:x})")


def _header(effective: bool) -> str:
    if effective:
        return f"{'ID':<8} {'AttachType':<15} {'Name':<15}\n"
    return f"{'ID':<8} {'AttachType':<15} {'AttachFlags':<15} {'Name':<15}\n"


def _records(path: str, effective: bool) -> list[dict]:
    """One record per attached program, in bpftool's field order."""
    from ..links.cgroup import list_cgroup
    from ..programs import ProgInfo
    from ..sys import objects
    out = []
    for hook in list_cgroup(path, effective):
        for prog in hook.programs:
            try:
                with objects.fd_by_id("prog", prog.prog_id) as fd:
                    info = ProgInfo.from_fd(fd.fd)
            except BPFError:
                continue  # unloaded meanwhile
            rec: dict[str, Any] = {"id": prog.prog_id,
                                   "attach_type": hook.attach_type.name.lower()}
            if not effective:
                rec["attach_flags"] = _flags(prog.attach_flags or hook.attach_flags)
            rec.update(name=info.name, attach_btf_name=_btf_name(info),
                       attach_btf_obj_id=info.attach_btf_obj_id,
                       attach_btf_id=info.attach_btf_id)
            out.append(rec)
    return out


def _btf_name(info: Any) -> str:
    """The kernel function an LSM cgroup program attaches to (from vmlinux BTF)."""
    if not info.attach_btf_id:
        return ""
    try:
        from ..btf import Spec
        return Spec.vmlinux().type_by_id(info.attach_btf_id).name
    except PyBPFError:
        return ""


def _plain(rec: dict, level: int) -> str:
    text = f"{'    ' if level else ''}{rec['id']:<8} {rec['attach_type']:<15}"
    if "attach_flags" in rec:
        text += f" {rec['attach_flags']:<15}"
    text += f" {rec['name']:<15}"
    if rec["attach_btf_name"] or not rec["attach_btf_id"]:
        text += f" {rec['attach_btf_name']:<15}"
    else:
        text += (f" attach_btf_obj_id={rec['attach_btf_obj_id']}"
                 f" attach_btf_id={rec['attach_btf_id']}")
    return text + "\n"


def _query(path: str, effective: bool) -> list[dict]:
    try:
        return _records(path, effective)
    except (PyBPFError, OSError) as e:
        raise CLIError(f"can't query cgroup {path}: {why(e)}") from None


def _parse_effective(args: Args) -> bool:
    effective = False
    while len(args):
        if args.at("effective"):
            args.next()
            effective = True
        else:
            raise CLIError(f"unknown arg {args.peek()}")
    return effective


def do_show(args: Args, opts: Options) -> int:
    if not len(args):
        raise CLIError("expected a cgroup path: pybpf cgroup show CGROUP [effective]")
    path = args.next()
    effective = _parse_effective(args)
    if not os.path.isdir(path):
        raise CLIError(f"can't open cgroup {path}")
    records = _query(path, effective)
    if opts.json:
        emit(records, opts)
    elif records:
        opts.out.write(_header(effective) + "".join(_plain(r, 0) for r in records))
    return 0


def do_tree(args: Args, opts: Options) -> int:
    root: Optional[str] = None
    if len(args) and not args.at("effective"):
        root = args.next()
    effective = _parse_effective(args)
    if root is None:
        from ..sys.host import cgroup2_mount
        try:
            root = cgroup2_mount()
        except PyBPFError as e:
            raise CLIError(f"cgroup v2 isn't mounted: {why(e)}") from None
    if not os.path.isdir(root):
        raise CLIError(f"can't open cgroup {root}")
    found: list[tuple[str, int, list[dict]]] = []

    def visit(path: str, level: int) -> None:
        records = _query(path, effective)
        if records:
            found.append((path, level, records))
        try:
            entries = list(os.scandir(path))
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                visit(entry.path, level + 1)

    visit(root, 0)
    if opts.json:
        emit([{"cgroup": p, "programs": r} for p, _, r in found], opts)
        return 0
    text = "CgroupPath\n" + _header(effective)
    for path, level, records in found:
        text += path + "\n" + "".join(_plain(r, level) for r in records)
    opts.out.write(text)
    return 0


COMMANDS = [("show", do_show), ("list", do_show), ("tree", do_tree), ("help", help_command(USAGE))]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "cgroup")
