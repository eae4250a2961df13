"""One typed function per ``bpf()`` command: each builds its attr struct from keyword fields
(the struct's own names) and issues the call with the struct's size.

Every function returns the kernel's result, or ``-errno`` on failure when ``obj`` is None;
given ``obj`` (what the call acts on, for the message) a failure raises ``BPFError`` instead.
Commands whose attr the kernel writes back (counts, sizes, log sizes) or that callers issue
again with a field changed (a larger log, a smaller query) return ``(result, attr)`` and take
that ``attr`` back.

A nested struct or union is given as a dict: ``link_create(..., target={"kprobe_multi":
{"cnt": 2, ...}})`` sets ``attr.target.kprobe_multi.cnt``.

The map element commands (the hot path) work on a ``MapElemAttr`` made once per buffer
(``map_elem_attr``) and issued by its address, or through ``map_elem_calls``: its
lookup/update/delete as ``bound_calls`` (no arguments, ``-errno`` on failure).
"""
from __future__ import annotations

import ctypes
from typing import Any, Callable, Optional, TypeVar

from ..errors import BPFError
from .attrs import (Attr, BtfLoadAttr, EnableStatsAttr, IterCreateAttr, LinkCreateAttr,
                    LinkDetachAttr, LinkUpdateAttr, MapBatchAttr, MapCreateAttr, MapElemAttr,
                    ProgAttachAttr, ProgLoadAttr, QueryAttr, RawTracepointAttr, TestRunAttr)
from .syscall import bound_calls, bpf_raw, command_name
from .uapi import Cmd

A = TypeVar("A", bound=Attr)

ELEM_SIZE = ctypes.sizeof(MapElemAttr)
"""Size of the element commands' attr (lookup, update, get_next_key, lookup_and_delete)."""
ELEM_KEY_END = MapElemAttr.value.offset
"""Size of BPF_MAP_DELETE_ELEM's attr, which ends at ``key``: the kernel wants the rest zero
or not passed."""


def _set(target: ctypes.Structure, fields: dict[str, Any]) -> None:
    for name, value in fields.items():
        if isinstance(value, dict):  # a nested struct (or a union's member)
            _set(getattr(target, name), value)
        else:
            setattr(target, name, value)


def _make(cls: type[A], attr: Optional[A], fields: dict[str, Any]) -> A:
    if attr is None:
        attr = cls(**{k: v for k, v in fields.items() if not isinstance(v, dict)})
        fields = {k: v for k, v in fields.items() if isinstance(v, dict)}
    _set(attr, fields)
    return attr


def _issue(cmd: int, attr: Attr, obj: Optional[str]) -> int:
    ret = bpf_raw(cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret < 0 and obj is not None:
        raise BPFError(-ret, command_name(cmd), obj)
    return ret


# maps --------------------------------------------------------------------------------------
def map_create(obj: Optional[str] = None, **fields: Any) -> int:
    """BPF_MAP_CREATE: the new map's fd."""
    return _issue(Cmd.MAP_CREATE, MapCreateAttr(**fields), obj)


def map_elem_attr(map_fd: int, key: int = 0, value: int = 0) -> MapElemAttr:
    """The attr of the element commands: ``key`` and ``value`` (or next key) addresses."""
    return MapElemAttr(map_fd=map_fd, key=key, value=value)


def map_elem_calls(attr: MapElemAttr) -> list[Callable[[], int]]:
    """BPF_MAP_LOOKUP_ELEM, UPDATE_ELEM and DELETE_ELEM on ``attr`` (which must outlive
    them), as ``syscall.bound_calls``; a result below 0, and every result while a tracer is
    installed, goes to ``syscall.elem_done``."""
    addr = ctypes.addressof(attr)
    return bound_calls(((Cmd.MAP_LOOKUP_ELEM, addr, ELEM_SIZE),
                        (Cmd.MAP_UPDATE_ELEM, addr, ELEM_SIZE),
                        (Cmd.MAP_DELETE_ELEM, addr, ELEM_KEY_END)))


def map_lookup_elem(attr_addr: int) -> int:
    """BPF_MAP_LOOKUP_ELEM on the ``MapElemAttr`` at ``attr_addr``; 0 or -errno."""
    return bpf_raw(Cmd.MAP_LOOKUP_ELEM, attr_addr, ELEM_SIZE)


def map_update_elem(attr_addr: int) -> int:
    """BPF_MAP_UPDATE_ELEM on the ``MapElemAttr`` at ``attr_addr``; 0 or -errno."""
    return bpf_raw(Cmd.MAP_UPDATE_ELEM, attr_addr, ELEM_SIZE)


def map_delete_elem(attr_addr: int) -> int:
    """BPF_MAP_DELETE_ELEM on the ``MapElemAttr`` at ``attr_addr``; 0 or -errno."""
    return bpf_raw(Cmd.MAP_DELETE_ELEM, attr_addr, ELEM_KEY_END)


def map_lookup_and_delete_elem(attr_addr: int) -> int:
    """BPF_MAP_LOOKUP_AND_DELETE_ELEM on the ``MapElemAttr`` at ``attr_addr``; 0 or -errno."""
    return bpf_raw(Cmd.MAP_LOOKUP_AND_DELETE_ELEM, attr_addr, ELEM_SIZE)


def map_get_next_key(attr_addr: int) -> int:
    """BPF_MAP_GET_NEXT_KEY on the ``MapElemAttr`` at ``attr_addr`` (``key`` 0: the first
    key); 0 or -errno."""
    return bpf_raw(Cmd.MAP_GET_NEXT_KEY, attr_addr, ELEM_SIZE)


def map_delete_key(map_fd: int, key: int, obj: str) -> None:
    """BPF_MAP_DELETE_ELEM of the key at address ``key``; raises on failure."""
    _issue(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=map_fd, key=key), obj)


def map_freeze(map_fd: int, obj: str) -> None:
    """BPF_MAP_FREEZE: no more writes from user space."""
    _issue(Cmd.MAP_FREEZE, MapElemAttr(map_fd=map_fd), obj)


def map_batch(cmd: int, attr: Optional[MapBatchAttr] = None, obj: Optional[str] = None,
              **fields: Any) -> tuple[int, MapBatchAttr]:
    """BPF_MAP_{LOOKUP,LOOKUP_AND_DELETE,UPDATE,DELETE}_BATCH; ``attr.count`` says how many
    elements the kernel handled."""
    attr = _make(MapBatchAttr, attr, fields)
    return _issue(cmd, attr, obj), attr


# programs ----------------------------------------------------------------------------------
def prog_load(attr: Optional[ProgLoadAttr] = None, obj: Optional[str] = None,
              **fields: Any) -> tuple[int, ProgLoadAttr]:
    """BPF_PROG_LOAD: the program's fd (``attr.log_true_size``: the log size it needed)."""
    attr = _make(ProgLoadAttr, attr, fields)
    return _issue(Cmd.PROG_LOAD, attr, obj), attr


def prog_test_run(attr: Optional[TestRunAttr] = None, obj: Optional[str] = None,
                  **fields: Any) -> tuple[int, TestRunAttr]:
    """BPF_PROG_TEST_RUN: ``attr.retval``, ``duration`` and the output sizes."""
    attr = _make(TestRunAttr, attr, fields)
    return _issue(Cmd.PROG_TEST_RUN, attr, obj), attr


def prog_attach(obj: Optional[str] = None, **fields: Any) -> int:
    """BPF_PROG_ATTACH."""
    return _issue(Cmd.PROG_ATTACH, ProgAttachAttr(**fields), obj)


def prog_detach(obj: Optional[str] = None, **fields: Any) -> int:
    """BPF_PROG_DETACH."""
    return _issue(Cmd.PROG_DETACH, ProgAttachAttr(**fields), obj)


def prog_query(attr: Optional[QueryAttr] = None, obj: Optional[str] = None,
               **fields: Any) -> tuple[int, QueryAttr]:
    """BPF_PROG_QUERY: ``attr.prog_cnt``, ``attach_flags``, ``revision``."""
    attr = _make(QueryAttr, attr, fields)
    return _issue(Cmd.PROG_QUERY, attr, obj), attr


def enable_stats(stats_type: int, obj: str) -> int:
    """BPF_ENABLE_STATS: an fd that keeps ``stats_type`` counted while open."""
    return _issue(Cmd.ENABLE_STATS, EnableStatsAttr(type=stats_type), obj)


def raw_tracepoint_open(obj: Optional[str] = None, **fields: Any) -> int:
    """BPF_RAW_TRACEPOINT_OPEN: a link fd."""
    return _issue(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointAttr(**fields), obj)


# BTF ---------------------------------------------------------------------------------------
def btf_load(attr: Optional[BtfLoadAttr] = None, obj: Optional[str] = None,
             **fields: Any) -> tuple[int, BtfLoadAttr]:
    """BPF_BTF_LOAD: the BTF object's fd."""
    attr = _make(BtfLoadAttr, attr, fields)
    return _issue(Cmd.BTF_LOAD, attr, obj), attr


# links -------------------------------------------------------------------------------------
def link_create(obj: Optional[str] = None, **fields: Any) -> int:
    """BPF_LINK_CREATE: a link fd. The attach type's own data is a member of the ``target``
    union: ``target={"tcx": {"relative_fd": 3}}``."""
    return _issue(Cmd.LINK_CREATE, _make(LinkCreateAttr, None, fields), obj)


def link_update(obj: Optional[str] = None, **fields: Any) -> int:
    """BPF_LINK_UPDATE: a new program for the link."""
    return _issue(Cmd.LINK_UPDATE, LinkUpdateAttr(**fields), obj)


def link_detach(link_fd: int, obj: Optional[str] = None) -> int:
    """BPF_LINK_DETACH: the link stays open but attaches nothing."""
    return _issue(Cmd.LINK_DETACH, LinkDetachAttr(link_fd=link_fd), obj)


def iter_create(link_fd: int, obj: Optional[str] = None) -> int:
    """BPF_ITER_CREATE: an fd whose reads run the iterator."""
    return _issue(Cmd.ITER_CREATE, IterCreateAttr(link_fd=link_fd), obj)
