"""``MAP`` and ``PROG`` handles (``id N | pinned PATH | name NAME``, ``tag T`` for programs)
to file descriptors: shared by every command that takes a map or a program."""
from __future__ import annotations

from typing import Any

from ..errors import PyBPFError
from .common import Args, one_handle, parse_handles


def _map_match(fd: Any, keyword: str, value: str) -> bool:
    from ..maps import MapInfo
    return MapInfo.from_fd(fd.fd).name == value


def map_fds(args: Args) -> list[Any]:
    """FDs of the maps a ``MAP`` handle names (all maps of that name for ``name``)."""
    return parse_handles(args, "map", _map_match)


def map_fd(args: Args) -> Any:
    """The FD of the one map a ``MAP`` handle names."""
    return one_handle(map_fds(args), "map")


def full_name(info: Any, fd: int) -> str:
    """The program's name; when the kernel truncated it to 15 characters, its function's name
    in the program's BTF (bpftool's ``get_prog_full_name``)."""
    if len(info.name) < 15 or not info.btf_id or not info.nr_func_info:
        return info.name
    from ..btf import BTF
    from ..programs import Program
    try:
        with Program.from_fd(fd) as prog, BTF.from_id(info.btf_id) as btf:
            func_info, _ = prog.btf_ext_info()
            return btf.spec().type_by_id(func_info[0][1]).name or info.name
    except (PyBPFError, IndexError):
        return info.name


def _prog_match(fd: Any, keyword: str, value: str) -> bool:
    from ..programs import ProgInfo
    info = ProgInfo.from_fd(fd.fd)
    if keyword == "tag":
        return info.tag == value
    return full_name(info, fd.fd) == value


def prog_fds(args: Args) -> list[Any]:
    """FDs of the programs a ``PROG`` handle names (every match for ``name`` and ``tag``)."""
    return parse_handles(args, "prog", _prog_match, ("id", "tag", "name", "pinned"))


def prog_fd(args: Args) -> Any:
    """The FD of the one program a ``PROG`` handle names."""
    return one_handle(prog_fds(args), "prog")
