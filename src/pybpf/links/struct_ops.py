"""Registering a struct_ops map: the kernel starts calling its programs as the ops table.

A map of SEC(".struct_ops.link") registers through a BPF link (BPF_LINK_CREATE with
BPF_STRUCT_OPS, Linux 6.4): closing the link unregisters it, pinning keeps it. A map of
SEC(".struct_ops") registers by the map update itself and stays registered, even after this
process, until ``close()`` of the registration deletes the map's element. The value comes
from the loader (``Collection.struct_ops``), which lays it out for the running kernel.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import os
from typing import Union

from ..errors import BPFError
from ..maps import Map
from ..sys import commands
from ..sys.fd import FD
from ..sys.uapi import AttachType, MapFlag
from .attach import HookAttachment, link_create
from .info import AttachmentInfo
from .link import Link

_KEY = b"\0\0\0\0"


class StructOpsRegistration(HookAttachment):
    """A struct_ops map registered without a link: ``close()`` unregisters it
    (BPF_MAP_DELETE_ELEM); nothing unregisters it otherwise."""

    _GONE = frozenset({_errno.ENOENT, _errno.EINPROGRESS})  # not registered, or going
    _NO_PIN = ("registered without a BPF link: there is nothing to pin (it stays registered "
               "until unregistered)", "define the map in SEC(\".struct_ops.link\") to get a link")

    def __init__(self, struct_ops_map: Map, what: str) -> None:
        super().__init__(FD(os.dup(struct_ops_map.fd)), what)  # its own reference

    def _detach(self) -> None:
        unregister(self._prog, self.name)

    def info(self) -> AttachmentInfo:
        """No program is attached: the map is (its programs run as its members)."""
        return AttachmentInfo(prog_id=0)


def attach_struct_ops(struct_ops_map: Map, value: bytes) -> Union[Link, StructOpsRegistration]:
    """Register ``struct_ops_map`` with ``value`` (its ``struct bpf_struct_ops_<name>``)."""
    what = f"struct_ops {struct_ops_map.describe()}"
    link = bool(struct_ops_map.flags & MapFlag.LINK)
    try:
        struct_ops_map.update(_KEY, value)
    except BPFError as e:
        if not (link and e.errno == _errno.EBUSY):  # a link map's value is set once, as libbpf
            raise
    if link:
        return link_create(struct_ops_map, 0, AttachType.STRUCT_OPS, what)
    return StructOpsRegistration(struct_ops_map, what)


def unregister(struct_ops_map: Union[FD, Map], what: str) -> None:
    """Unregister a struct_ops map registered by a map update (BPF_MAP_DELETE_ELEM)."""
    key = ctypes.c_uint32(0)
    try:
        commands.map_delete_key(struct_ops_map.fileno(), ctypes.addressof(key), what)
    except BPFError as e:
        if e.errno != _errno.EOPNOTSUPP:
            raise
        raise BPFError(e.errno, "BPF_MAP_DELETE_ELEM", what, "it is registered through a BPF "
                       "link", "close or unpin its link instead") from None
