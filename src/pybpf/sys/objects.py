"""Thin wrappers for the bpf() commands common to all object kinds.

Pinning (OBJ_PIN/OBJ_GET), id iteration (*_GET_NEXT_ID), fd by id (*_GET_FD_BY_ID),
info (OBJ_GET_INFO_BY_FD), and the bpffs check that pinning needs.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import Iterator, TypeVar

from ..errors import BPFError
from .attrs import GetIdAttr, InfoAttr, ObjAttr
from .fd import FD
from .host import is_bpffs, mounts
from .syscall import bpf, bpf_raw
from .uapi import Cmd

KINDS = ("prog", "map", "btf", "link")
_NEXT_ID = {"prog": Cmd.PROG_GET_NEXT_ID, "map": Cmd.MAP_GET_NEXT_ID,
            "btf": Cmd.BTF_GET_NEXT_ID, "link": Cmd.LINK_GET_NEXT_ID}
_FD_BY_ID = {"prog": Cmd.PROG_GET_FD_BY_ID, "map": Cmd.MAP_GET_FD_BY_ID,
             "btf": Cmd.BTF_GET_FD_BY_ID, "link": Cmd.LINK_GET_FD_BY_ID}

S = TypeVar("S", bound=ctypes.Structure)


def obj_pin(fd: int, path: str, obj: str) -> None:
    """Pin ``fd`` at ``path``, which must be a new name in a bpffs directory."""
    parent = os.path.dirname(os.path.abspath(path)) or "/"
    if not os.path.isdir(parent):
        raise BPFError(_errno.ENOENT, "BPF_OBJ_PIN", obj, f"directory {parent} does not exist")
    if not is_bpffs(parent):
        raise BPFError(_errno.EPERM, "BPF_OBJ_PIN", obj,
                       f"{parent} is not on a bpffs mount",
                       "pin under a bpffs mount, e.g. `mount -t bpf bpf /sys/fs/bpf`")
    if "." in os.path.basename(path):
        raise BPFError(_errno.EPERM, "BPF_OBJ_PIN", f"{obj} at {path}",
                       "bpffs refuses names with a '.'", "replace the dots (libbpf uses '_')")
    name = ctypes.create_string_buffer(os.fsencode(path))
    bpf(Cmd.OBJ_PIN, ObjAttr(pathname=ctypes.addressof(name), bpf_fd=fd),
        f"{obj} at {path}")


def obj_get(path: str, flags: int = 0) -> FD:
    """Open the object pinned at ``path`` (BPF_OBJ_GET)."""
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=ctypes.addressof(name), file_flags=flags)
    ret = bpf_raw(Cmd.OBJ_GET, ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret < 0:
        hint = ""
        if -ret in (_errno.EPERM, _errno.EINVAL) and not is_bpffs(os.path.dirname(path) or "/"):
            hint = f"{path} is not on a bpffs mount"
        raise BPFError(-ret, "BPF_OBJ_GET", f"pinned object {path}", hint=hint)
    return FD(ret)


def next_ids(kind: str) -> Iterator[int]:
    """All ids of ``kind`` ("prog", "map", "btf", "link") currently in the kernel, ascending."""
    attr = GetIdAttr()
    cmd = _NEXT_ID[kind]
    while True:
        ret = bpf_raw(cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
        if ret == -_errno.ENOENT:
            return
        if ret < 0:
            raise BPFError(-ret, f"BPF_{cmd.name}", f"{kind} ids after {attr.start_id}")
        yield attr.next_id
        attr.start_id = attr.next_id


def open_all(kind: str) -> Iterator[tuple[int, FD]]:
    """(id, fd) of every ``kind`` object in the kernel, whoever owns it; objects that go away
    between the id walk and the open (ENOENT), or links caught half made or half released
    (EAGAIN), are skipped. The caller closes each fd."""
    for obj_id in next_ids(kind):
        try:
            yield obj_id, fd_by_id(kind, obj_id)
        except BPFError as e:
            if e.errno not in (_errno.ENOENT, _errno.EAGAIN):
                raise


def fd_by_id(kind: str, obj_id: int, flags: int = 0) -> FD:
    """Open ``kind`` object ``obj_id`` (BPF_*_GET_FD_BY_ID)."""
    attr = GetIdAttr(start_id=obj_id, open_flags=flags)
    return FD(bpf(_FD_BY_ID[kind], attr, f"{kind} id {obj_id}"))


_ANON_KINDS = {"anon_inode:bpf-map": "map", "anon_inode:bpf-prog": "prog",
               "anon_inode:bpf_link": "link", "anon_inode:bpf-link": "link",  # new fd / opened pin
               "anon_inode:btf": "btf"}


def fd_kind(fd: int) -> str:
    """"map", "prog", "link" or "btf": what kind of BPF object ``fd`` refers to ("" if none)."""
    try:
        return _ANON_KINDS.get(os.readlink(f"/proc/self/fd/{fd}"), "")
    except OSError:
        return ""


def fdinfo(fd: int) -> dict[str, str]:
    """The ``key: value`` lines of /proc/self/fdinfo/FD (``memlock``, ``frozen``, ``map_id``...)."""
    out = {}
    with open(f"/proc/self/fdinfo/{fd}") as f:
        for line in f:
            key, sep, value = line.partition(":")
            if sep:
                out[key] = value.strip()
    return out


def pins(kind: str) -> dict[int, list[str]]:
    """Paths pinned on every bpffs mount, by object id, for objects of ``kind``.

    Walks each mount depth-first in directory order without following symlinks (as bpftool's
    ``-f`` does), opening every file (BPF_OBJ_GET); files that cannot be opened or hold
    another kind of object are skipped.
    """
    out: dict[int, list[str]] = {}
    id_key = {"map": "map_id", "prog": "prog_id", "link": "link_id", "btf": "btf_id"}[kind]

    def visit(directory: str) -> None:
        try:
            entries = list(os.scandir(directory))
        except OSError:
            return
        for entry in entries:
            if entry.is_dir(follow_symlinks=False):
                visit(entry.path)
            elif entry.is_file(follow_symlinks=False):
                obj_id = _pinned_id(entry.path, kind, id_key)
                if obj_id is not None:
                    out.setdefault(obj_id, []).append(entry.path)

    for mount in mounts("bpf"):
        visit(mount)
    return out


def _pinned_id(path: str, kind: str, id_key: str) -> int | None:
    name = ctypes.create_string_buffer(os.fsencode(path))
    attr = ObjAttr(pathname=ctypes.addressof(name))
    ret = bpf_raw(Cmd.OBJ_GET, ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret < 0:
        return None
    with FD(ret) as fd:
        if fd_kind(fd.fd) != kind:
            return None
        try:
            return int(fdinfo(fd.fd)[id_key])
        except (OSError, KeyError, ValueError):
            return None


def obj_info(fd: int, info: S, obj: str = "") -> S:
    """Fill ``info`` (a bpf_*_info struct, pointers in it set by the caller) for ``fd``."""
    attr = InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=ctypes.addressof(info))
    bpf(Cmd.OBJ_GET_INFO_BY_FD, attr, obj)
    return info
