"""An strace-format trace of every ``bpf()`` call, printed after the call returns.

``PYBPF_TRACE=1`` in the environment at import traces to stderr; ``enable(stream)``,
``disable()`` and ``with tracing(stream):`` send it elsewhere (a text file or a list,
which gets one string per call). Lines read like ``strace -e trace=bpf`` (default,
abbreviated output of strace 6.x decoding the 6.18 UAPI)::

    bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_HASH, key_size=4, ...}, 96) = 3
    bpf(BPF_MAP_DELETE_ELEM, {map_fd=3, key=0x7f..}, 16) = -1 ENOENT (No such file or directory)

Each command is one row of ``_SPECS``: its fields in strace's order, each with a
formatter kind. Fields a short ``size`` does not cover are left out as strace does.
The tracer runs after the call, so fields the kernel writes (``next_id``, ``prog_cnt``,
``info_len``, batch ``count``, the verifier log) show their values on return, where
strace shows ``old => new`` or the buffer as it was on entry.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import socket
import sys
from enum import IntEnum, IntFlag
from typing import Callable, Iterator, NamedTuple, Optional, TextIO, Union

from . import syscall
from .attrs import ATTR_OF_CMD
from .uapi import (ENOTSUPP, AttachFlag, AttachType, Cmd, MapFlag, MapType, ProgFlag, ProgType, QueryFlag,
                   StatsType, TaskFdType, TestRunFlag, UpdateFlag)

__all__ = ["disable", "enable", "format_call", "tracing"]

MAX_STRLEN = 32
"""strace's default ``-s``: string bytes and array elements shown before ``...``."""

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
_PATH_MAX = 4096
_UNBOUNDED = 1 << 64  # printstr's length for a NUL-terminated string of any length
_AT_FDCWD = -100

Stream = Union["list[str]", TextIO]


# --- this process's memory, read without faulting (strace's umoven/umovestr) ------------------

def _read(addr: int, size: int) -> bytes:
    """Up to ``size`` bytes at ``addr``; fewer (maybe none) where the mapping ends."""
    if addr <= 0 or size <= 0:
        return b""
    fd = os.open("/proc/self/mem", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.pread(fd, size, addr)
    except (OSError, OverflowError):
        return b""
    finally:
        os.close(fd)


# --- value formatting, as strace's print helpers do it ------------------------------------------

_ESCAPES = {ord('"'): '\\"', ord("\\"): "\\\\", ord("\f"): "\\f", ord("\n"): "\\n",
            ord("\r"): "\\r", ord("\t"): "\\t", ord("\v"): "\\v"}


def _quote(data: bytes, size: int, zero_terminated: bool, force_hex: bool = False) -> tuple[str, bool]:
    """strace's ``string_quote`` of ``data[:size]``: (text, whether no NUL ended it)."""
    out = ['"']
    for i in range(size):
        c = data[i]
        if zero_terminated and c == 0:
            return "".join(out) + '"', False
        if force_hex:
            out.append(f"\\x{c:02x}")
        elif c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif 0x20 <= c < 0x7F:
            out.append(chr(c))
        elif i + 1 < size and 0x30 <= data[i + 1] <= 0x37:  # an octal digit follows
            out.append(f"\\{c:03o}")
        else:
            out.append(f"\\{c:o}")
    out.append('"')
    return "".join(out), not (zero_terminated and len(data) > size and data[size] == 0)


def _cstring(data: bytes, size: int) -> str:
    """``print_quoted_cstring``: at most ``size - 1`` chars, ``...`` if no NUL ends them."""
    text, unterminated = _quote(data.ljust(size, b"\0"), size - 1, True)
    return text + "..." if unterminated else text


def _addr(addr: int) -> str:
    return hex(addr) if addr else "NULL"


def _printstr(addr: int, length: int, zero_terminated: bool = True, force_hex: bool = False) -> str:
    """``printstr_ex``: the string at ``addr`` (``length`` bytes at most), cut at ``MAX_STRLEN``."""
    if not addr:
        return "NULL"
    size = min(MAX_STRLEN + 1, length)
    data = _read(addr, size)
    if len(data) < size and not (zero_terminated and b"\0" in data):
        return _addr(addr)
    if size > MAX_STRLEN:
        size = MAX_STRLEN
    else:
        data = data[:size] + b"\xff"
    text, unterminated = _quote(data, size, zero_terminated, force_hex)
    return text + "..." if unterminated and length and (zero_terminated or length > MAX_STRLEN) else text


def _printpath(addr: int) -> str:
    if not addr:
        return "NULL"
    data = _read(addr, _PATH_MAX)
    if b"\0" not in data and len(data) < _PATH_MAX:
        return _addr(addr)
    return _cstring(data, _PATH_MAX)


def _array(addr: int, count: int, elem_size: int, elem: Callable[[bytes], str]) -> str:
    """``print_array``: ``[a, b, ...]``, NULL, or the address if unreadable."""
    if not addr:
        return "NULL"
    if not count:
        return "[]"
    items = []
    for i in range(min(count, MAX_STRLEN + 1)):
        data = _read(addr + i * elem_size, elem_size)
        if len(data) < elem_size:
            if not i:
                return _addr(addr)
            items.append("...")
            break
        items.append("..." if i == MAX_STRLEN else elem(data))
    return "[" + ", ".join(items) + "]"


class _Xlat(NamedTuple):
    """An strace xlat table: names by value and the ``/* ... */`` comment for unknown ones."""

    names: dict
    unknown: str

    def value(self, v: int) -> str:
        """``printxval``."""
        name = self.names.get(v)
        return name if name is not None else f"{v:#x} /* {self.unknown} */"

    def flags(self, v: int) -> str:
        """``printflags``: known bits by name joined with ``|``, the rest in hex."""
        if v in self.names:
            return self.names[v]
        parts = []
        for bit, name in self.names.items():
            if bit and v & bit == bit:
                parts.append(name)
                v &= ~bit
        if not parts:
            return f"{v:#x} /* {self.unknown} */" if v else "0"
        return "|".join(parts + ([f"{v:#x}"] if v else []))


def _xlat(enum: type[Union[IntEnum, IntFlag]], prefix: str, unknown: str, only: Optional[set] = None) -> _Xlat:
    """An xlat from a UAPI enum: first non-deprecated name per value, ``prefix`` added."""
    names: dict = {}
    for name, member in enum.__members__.items():
        if not name.endswith("_DEPRECATED") and (only is None or name in only):
            names.setdefault(int(member), prefix + name)
    return _Xlat(dict(sorted(names.items())), unknown)


_COMMANDS = _xlat(Cmd, "BPF_", "BPF_???")
_MAP_TYPES = _xlat(MapType, "BPF_MAP_TYPE_", "BPF_MAP_TYPE_???")
_PROG_TYPES = _xlat(ProgType, "BPF_PROG_TYPE_", "BPF_PROG_TYPE_???")
_ATTACH_TYPES = _xlat(AttachType, "BPF_", "BPF_???")
_MAP_FLAGS = _xlat(MapFlag, "BPF_F_", "BPF_F_???")
_FILE_FLAGS = _xlat(MapFlag, "BPF_F_", "BPF_F_???", {"RDONLY", "WRONLY", "PATH_FD", "VTYPE_BTF_OBJ_FD",
                                                     "TOKEN_FD", "SEGV_ON_FAULT", "NO_USER_CONV"})
_FILE_MODE_FLAGS = _xlat(MapFlag, "BPF_F_", "BPF_F_???", {"RDONLY", "WRONLY"})
_PROG_FLAGS = _xlat(ProgFlag, "BPF_F_", "BPF_F_???")
_ATTACH_FLAGS = _xlat(AttachFlag, "BPF_F_", "BPF_F_???")
_UPDATE_FLAGS = _xlat(UpdateFlag, "BPF_", "BPF_???")
_LOOKUP_FLAGS = _xlat(UpdateFlag, "BPF_", "BPF_???", {"ANY", "F_LOCK"})
_QUERY_FLAGS = _xlat(QueryFlag, "BPF_F_QUERY_", "BPF_F_QUERY_???")
_TEST_RUN_FLAGS = _xlat(TestRunFlag, "BPF_F_TEST_", "BPF_F_TEST_???")
_STATS_TYPES = _xlat(StatsType, "BPF_STATS_", "BPF_STATS_???")
_FD_TYPES = _xlat(TaskFdType, "BPF_FD_TYPE_", "BPF_FD_TYPE_???")
_KPROBE_MULTI_FLAGS = _Xlat({1: "BPF_F_KPROBE_MULTI_RETURN"}, "BPF_F_KPROBE_MULTI_???")
_UPROBE_MULTI_FLAGS = _Xlat({1: "BPF_F_UPROBE_MULTI_RETURN"}, "BPF_F_UPROBE_MULTI_???")
_NETFILTER_FLAGS = _Xlat({1: "BPF_F_NETFILTER_IP_DEFRAG"}, "BPF_F_NETFILTER_???")
_IFINDEX_ATTACH_TYPES = {AttachType.TCX_INGRESS, AttachType.TCX_EGRESS, AttachType.NETKIT_PRIMARY,
                         AttachType.NETKIT_PEER, AttachType.XDP}


def _s32(v: int) -> int:
    return v - (1 << 32) if v >= 1 << 31 else v


def _fd(v: int) -> str:
    return str(_s32(v))


def _dirfd(v: int) -> str:
    return "AT_FDCWD" if _s32(v) == _AT_FDCWD else _fd(v)


def _hex(v: int) -> str:
    return f"{v:#x}" if v else "0"


def _u64(v: int) -> str:
    return "UINT64_MAX" if v == (1 << 64) - 1 else str(v)


def _ifindex(v: int) -> str:
    try:
        return f'if_nametoindex("{socket.if_indextoname(v)}")' if v else "0"
    except OSError:
        return str(v)


def _kernel_version(v: int) -> str:
    return f"KERNEL_VERSION({v >> 16}, {(v >> 8) & 0xFF}, {v & 0xFF})"


def _numa_node(v: int) -> str:
    return f"{v} /* NUMA_NO_NODE */" if v == 0xFFFFFFFF else str(v)


# --- per-command field tables ---------------------------------------------------------------------

class _Ctx:
    """The attr being printed: the struct a field lives in, the whole attr, the ``size`` given."""

    def __init__(self, root: ctypes.Structure, size: int, obj: Optional[ctypes.Structure] = None):
        self.root, self.size, self.obj = root, size, root if obj is None else obj

    def get(self, name: str) -> int:
        """A field of the current struct, else of the whole attr (for attach_type, flags)."""
        try:
            return getattr(self.obj, name)
        except AttributeError:
            return getattr(self.root, name)

    def cstring(self, name: str) -> str:
        """A char array field, as much of it as ``size`` covers."""
        field = getattr(type(self.obj), name)
        size = min(field.size, self.size - field.offset)
        return _cstring(ctypes.string_at(ctypes.addressof(self.obj) + field.offset, size), size)

    def arg(self, arg: str) -> int:
        """A kind's argument: a number, or the value of the field it names."""
        return int(arg) if arg.isdigit() else self.get(arg)


Kind = Callable[[_Ctx, str, str], Optional[str]]
"""kind(ctx, field_name, arg) -> "name=value", or None to leave the field out."""


def _value(fmt: Callable[[int], str]) -> Kind:
    return lambda ctx, name, arg: f"{name}={fmt(ctx.get(name))}"


def _xval(xlat: _Xlat) -> Kind:
    return _value(xlat.value)


def _flags(xlat: _Xlat) -> Kind:
    return _value(xlat.flags)


def _target(ctx: _Ctx, name: str, arg: str) -> str:
    """target_fd, or target_ifindex for attach types that take a device."""
    value = ctx.get(name)
    if ctx.get("attach_type") in _IFINDEX_ATTACH_TYPES:
        return f"target_ifindex={_ifindex(value)}"
    return f"target_fd={_fd(value)}"


def _relative(ctx: _Ctx, name: str, arg: str) -> str:
    """relative_fd, or relative_id when the flags field ``arg`` has BPF_F_ID."""
    value = ctx.get(name)
    if ctx.get(arg) & AttachFlag.ID:
        return f"relative_id={value}"
    return f"relative_fd={_fd(value)}"


def _u32_elem(data: bytes) -> str:
    return str(int.from_bytes(data, sys.byteorder))


def _x64_elem(data: bytes) -> str:
    return _hex(int.from_bytes(data, sys.byteorder))


def _array_kind(elem_size: int, elem: Callable[[bytes], str]) -> Kind:
    return lambda ctx, name, arg: f"{name}={_array(ctx.get(name), ctx.arg(arg), elem_size, elem)}"


_KINDS: dict[str, Kind] = {
    "u": _value(str),
    "d": _value(lambda v: str(_s32(v))),
    "x": _value(_hex),
    "u64": _value(_u64),
    "fd": _value(_fd),
    "dirfd": _value(_dirfd),
    "ptr": _value(_addr),
    "ifindex": _value(_ifindex),
    "kver": _value(_kernel_version),
    "map_type": _xval(_MAP_TYPES),
    "prog_type": _xval(_PROG_TYPES),
    "attach_type": _xval(_ATTACH_TYPES),
    "update_flags": _xval(_UPDATE_FLAGS),
    "stats_type": _xval(_STATS_TYPES),
    "fd_type": _xval(_FD_TYPES),
    "map_flags": _flags(_MAP_FLAGS),
    "prog_flags": _flags(_PROG_FLAGS),
    "attach_flags": _flags(_ATTACH_FLAGS),
    "file_flags": _flags(_FILE_FLAGS),
    "file_mode_flags": _flags(_FILE_MODE_FLAGS),
    "lookup_flags": _flags(_LOOKUP_FLAGS),
    "query_flags": _flags(_QUERY_FLAGS),
    "test_run_flags": _flags(_TEST_RUN_FLAGS),
    "kprobe_multi_flags": _flags(_KPROBE_MULTI_FLAGS),
    "uprobe_multi_flags": _flags(_UPROBE_MULTI_FLAGS),
    "netfilter_flags": _flags(_NETFILTER_FLAGS),
    "target": _target,
    "relative": _relative,
    "cstr": lambda ctx, name, arg: f"{name}={ctx.cstring(name)}",
    "str": lambda ctx, name, arg: f"{name}={_printstr(ctx.get(name), _UNBOUNDED)}",
    "strz": lambda ctx, name, arg: f"{name}={_printstr(ctx.get(name), ctx.arg(arg))}",
    "strn": lambda ctx, name, arg: f"{name}={_printstr(ctx.get(name), ctx.arg(arg), False)}",
    "hexstr": lambda ctx, name, arg: f"{name}={_printstr(ctx.get(name), ctx.arg(arg), False, True)}",
    "path": lambda ctx, name, arg: f"{name}={_printpath(ctx.get(name))}",
    "numa": lambda ctx, name, arg: (f"{name}={_numa_node(ctx.get(name))}"
                                    if ctx.get("map_flags") & MapFlag.NUMA_NODE else None),
    "if_replace": lambda ctx, name, arg: (f"{name}={_fd(ctx.get(name))}"
                                          if ctx.get("flags") & AttachFlag.REPLACE else None),
    "if_nonzero": lambda ctx, name, arg: f"{name}={ctx.get(name)}" if ctx.get(name) else None,
    "u32s": _array_kind(4, _u32_elem),
    "x64s": _array_kind(8, _x64_elem),
    "attach_flags_arr": _array_kind(4, lambda d: _ATTACH_FLAGS.flags(int.from_bytes(d, sys.byteorder))),
    "strs": _array_kind(8, lambda d: _printstr(int.from_bytes(d, sys.byteorder), _UNBOUNDED)),
    "iter_info": _array_kind(4, lambda d: f"{{map={{map_fd={_fd(int.from_bytes(d, sys.byteorder))}}}}}"),
}


class _Field(NamedTuple):
    name: str
    kind: Kind
    arg: str
    gate: Optional[str]  # print only if ``size`` covers this field ("start") or all of it ("end")
    gate_field: str      # the field whose offset the gate checks


_TOKEN = re.compile(r"(?P<gate>[|$]?)(?:@(?P<at>\w+)\s+)?"
                    r"(?P<name>\w+)(?::(?P<kind>\w+)(?:\((?P<arg>\w+)\))?)?")


def _fields(spec: str) -> tuple[_Field, ...]:
    """Parse ``"a b:fd |c:strz(b) $d:x |@e f"``: name[:kind[(arg)]] tokens in strace's order.

    ``|`` starts a group strace prints only when ``size`` reaches the field (``|@e f``: reaches
    field ``e``), ``$`` only when ``size`` covers the field's end; the kind defaults to ``u``.
    """
    out = []
    for m in _TOKEN.finditer(spec):
        gate = {"|": "start", "$": "end"}.get(m["gate"])
        out.append(_Field(m["name"], _KINDS[m["kind"] or "u"], m["arg"] or "", gate, m["at"] or m["name"]))
    return tuple(out)


class _Spec(NamedTuple):
    wrap: str                        # strace's name for the nested struct (``test``), or ""
    fields: tuple[_Field, ...]


def _spec(fields: str, wrap: str = "") -> _Spec:
    return _Spec(wrap, _fields(fields))


_LOOKUP_ELEM = _spec("map_fd:fd key:ptr value:ptr |flags:lookup_flags")
_GET_NEXT_ID = _spec("start_id next_id")
_LOOKUP_BATCH = _spec("in_batch:ptr out_batch:ptr keys:ptr values:ptr count map_fd:fd "
                      "elem_flags:lookup_flags flags:x", "batch")
_PROG_ATTACH = _spec("target_fd:target attach_bpf_fd:fd attach_type:attach_type attach_flags:attach_flags "
                     "|replace_bpf_fd:fd |relative_fd:relative(attach_flags) expected_revision")
_OBJ = _spec("pathname:path bpf_fd:fd |file_flags:file_flags |path_fd:dirfd")

_SPECS: dict[int, _Spec] = {
    Cmd.MAP_CREATE: _spec(
        "map_type:map_type key_size value_size max_entries |map_flags:map_flags |inner_map_fd:fd "
        "|numa_node:numa |map_name:cstr |map_ifindex:ifindex |btf_fd:fd btf_key_type_id btf_value_type_id "
        "|btf_vmlinux_value_type_id |map_extra:u64 |value_type_btf_obj_fd:fd |map_token_fd:fd "
        "|excl_prog_hash:ptr excl_prog_hash_size"),
    Cmd.MAP_LOOKUP_ELEM: _LOOKUP_ELEM,
    Cmd.MAP_LOOKUP_AND_DELETE_ELEM: _LOOKUP_ELEM,
    Cmd.MAP_UPDATE_ELEM: _spec("map_fd:fd key:ptr value:ptr flags:update_flags"),
    Cmd.MAP_DELETE_ELEM: _spec("map_fd:fd key:ptr"),
    Cmd.MAP_GET_NEXT_KEY: _spec("map_fd:fd key:ptr next_key:ptr"),
    Cmd.MAP_FREEZE: _spec("map_fd:fd"),
    Cmd.PROG_LOAD: _spec(
        "prog_type:prog_type insn_cnt insns:ptr license:str |log_level log_size log_buf:strz(log_size) "
        "|kern_version:kver |prog_flags:prog_flags |prog_name:cstr |prog_ifindex:ifindex "
        "|expected_attach_type:attach_type |prog_btf_fd:fd func_info_rec_size func_info:ptr func_info_cnt "
        "line_info_rec_size line_info:ptr line_info_cnt |attach_btf_id |attach_prog_fd:fd "
        "|@core_relos core_relo_cnt fd_array:ptr core_relos:ptr core_relo_rec_size |log_true_size "
        "|prog_token_fd:fd |fd_array_cnt |signature:hexstr(signature_size) signature_size keyring_id:d"),
    Cmd.OBJ_PIN: _OBJ,
    Cmd.OBJ_GET: _OBJ,
    Cmd.PROG_ATTACH: _PROG_ATTACH,
    Cmd.PROG_DETACH: _PROG_ATTACH,
    Cmd.PROG_TEST_RUN: _spec(
        "prog_fd:fd retval data_size_in data_size_out data_in:ptr data_out:ptr repeat duration "
        "|ctx_size_in ctx_size_out ctx_in:ptr ctx_out:ptr |flags:test_run_flags cpu |batch_size", "test"),
    Cmd.PROG_GET_NEXT_ID: _GET_NEXT_ID,
    Cmd.MAP_GET_NEXT_ID: _GET_NEXT_ID,
    Cmd.BTF_GET_NEXT_ID: _GET_NEXT_ID,
    Cmd.LINK_GET_NEXT_ID: _GET_NEXT_ID,
    Cmd.PROG_GET_FD_BY_ID: _spec("prog_id"),
    Cmd.MAP_GET_FD_BY_ID: _spec("map_id |open_flags:file_mode_flags"),
    Cmd.BTF_GET_FD_BY_ID: _spec("btf_id |open_flags:file_mode_flags fd_by_id_token_fd:fd"),
    Cmd.LINK_GET_FD_BY_ID: _spec("link_id"),
    Cmd.OBJ_GET_INFO_BY_FD: _spec("bpf_fd:fd info_len info:ptr", "info"),
    Cmd.PROG_QUERY: _spec(
        "target_fd:target attach_type:attach_type query_flags:query_flags attach_flags:attach_flags "
        "prog_ids:u32s(prog_cnt) prog_cnt |prog_attach_flags:attach_flags_arr(prog_cnt) "
        "|link_ids:u32s(prog_cnt) link_attach_flags:attach_flags_arr(prog_cnt) revision:x", "query"),
    Cmd.RAW_TRACEPOINT_OPEN: _spec("name:strz(128) prog_fd:fd $cookie:x", "raw_tracepoint"),
    Cmd.BTF_LOAD: _spec("btf:strn(btf_size) btf_log_buf:ptr btf_size btf_log_size btf_log_level "
                        "|btf_log_true_size |btf_flags:file_flags btf_token_fd:fd"),
    Cmd.TASK_FD_QUERY: _spec("pid fd:fd flags buf_len buf:strz(buf_len) prog_id fd_type:fd_type "
                             "probe_offset:x probe_addr:x", "task_fd_query"),
    Cmd.MAP_LOOKUP_BATCH: _LOOKUP_BATCH,
    Cmd.MAP_LOOKUP_AND_DELETE_BATCH: _LOOKUP_BATCH,
    Cmd.MAP_UPDATE_BATCH: _spec("keys:ptr values:ptr count map_fd:fd elem_flags:lookup_flags flags:x",
                                "batch"),
    Cmd.MAP_DELETE_BATCH: _spec("keys:ptr count map_fd:fd elem_flags:lookup_flags flags:x", "batch"),
    Cmd.LINK_CREATE: _spec("prog_fd:fd target_fd:target attach_type:attach_type flags:attach_flags",
                           "link_create"),
    Cmd.LINK_UPDATE: _spec("link_fd:fd new_prog_fd:fd flags:attach_flags old_prog_fd:if_replace",
                           "link_update"),
    Cmd.ENABLE_STATS: _spec("type:stats_type", "enable_stats"),
    Cmd.ITER_CREATE: _spec("link_fd:fd flags:x", "iter_create"),
    Cmd.LINK_DETACH: _spec("link_fd:fd", "link_detach"),
    Cmd.PROG_BIND_MAP: _spec("prog_fd:fd map_fd:fd flags:x", "prog_bind_map"),
    Cmd.TOKEN_CREATE: _spec("flags:x bpffs_fd:fd", "token_create"),
}

_A = AttachType
_CGROUP_ATTACH_TYPES = {
    _A.CGROUP_INET_INGRESS, _A.CGROUP_INET_EGRESS, _A.CGROUP_INET_SOCK_CREATE, _A.CGROUP_SOCK_OPS,
    _A.CGROUP_DEVICE, _A.CGROUP_INET4_BIND, _A.CGROUP_INET6_BIND, _A.CGROUP_INET4_CONNECT,
    _A.CGROUP_INET6_CONNECT, _A.CGROUP_UNIX_CONNECT, _A.CGROUP_INET4_POST_BIND, _A.CGROUP_INET6_POST_BIND,
    _A.CGROUP_UDP4_SENDMSG, _A.CGROUP_UDP6_SENDMSG, _A.CGROUP_UNIX_SENDMSG, _A.CGROUP_SYSCTL,
    _A.CGROUP_UDP4_RECVMSG, _A.CGROUP_UDP6_RECVMSG, _A.CGROUP_UNIX_RECVMSG, _A.CGROUP_GETSOCKOPT,
    _A.CGROUP_SETSOCKOPT, _A.CGROUP_INET4_GETPEERNAME, _A.CGROUP_INET6_GETPEERNAME,
    _A.CGROUP_UNIX_GETPEERNAME, _A.CGROUP_INET4_GETSOCKNAME, _A.CGROUP_INET6_GETSOCKNAME,
    _A.CGROUP_UNIX_GETSOCKNAME, _A.CGROUP_INET_SOCK_RELEASE,
}
_RELATIVE = _spec("relative_fd:relative(flags) expected_revision:x")

# LINK_CREATE's per-attach-type union: (union member, strace's name for it or "" if its fields
# print at the top level, fields). strace guesses the member from the attach type alone.
_LINK_TARGETS: dict[int, tuple[str, str, _Spec]] = {
    **{t: ("cgroup", "cgroup", _RELATIVE) for t in _CGROUP_ATTACH_TYPES},
    _A.TRACE_ITER: ("iter", "", _spec("iter_info:iter_info(iter_info_len) iter_info_len")),
    _A.PERF_EVENT: ("perf_event", "perf_event", _spec("bpf_cookie:x")),
    **{t: ("tracing", "tracing", _spec("target_btf_id cookie:x"))
       for t in (_A.TRACE_FENTRY, _A.TRACE_FEXIT, _A.MODIFY_RETURN, _A.LSM_MAC)},
    _A.NETFILTER: ("netfilter", "netfilter", _spec("pf hooknum priority:d flags:netfilter_flags")),
    _A.TCX_INGRESS: ("tcx", "tcx", _RELATIVE),
    _A.TCX_EGRESS: ("tcx", "tcx", _RELATIVE),
    _A.NETKIT_PRIMARY: ("netkit", "netkit", _RELATIVE),
    _A.NETKIT_PEER: ("netkit", "netkit", _RELATIVE),
    _A.TRACE_KPROBE_MULTI: ("kprobe_multi", "kprobe_multi", _spec(
        "flags:kprobe_multi_flags cnt syms:strs(cnt) addrs:x64s(cnt) cookies:x64s(cnt)")),
    _A.TRACE_UPROBE_MULTI: ("uprobe_multi", "uprobe_multi", _spec(
        "path:path offsets:x64s(cnt) ref_ctr_offsets:x64s(cnt) cookies:x64s(cnt) cnt "
        "flags:uprobe_multi_flags pid")),
}
_CGROUP_PLAIN = ("", "", _spec("target_btf_id:if_nonzero"))  # cgroup links not placed BEFORE/AFTER
_NO_TARGET = ("", "", _spec(""))


def _field(cls: type, name: str):
    return getattr(cls, getattr(cls, "_aliases_", {}).get(name, name))


def _end(cls: type, name: str) -> int:
    field = _field(cls, name)
    return field.offset + field.size


def _print_fields(ctx: _Ctx, fields: tuple[_Field, ...]) -> list[str]:
    cls, out = type(ctx.obj), []
    for f in fields:
        if f.gate == "start" and ctx.size <= _field(cls, f.gate_field).offset:
            break
        if f.gate == "end" and ctx.size < _end(cls, f.gate_field):
            break
        text = f.kind(ctx, f.name, f.arg)
        if text is not None:
            out.append(text)
    return out


def _link_target(ctx: _Ctx) -> tuple[list[str], int]:
    """LINK_CREATE's union, decoded by attach type: its fields and where strace's attr ends."""
    attr = ctx.root
    base = type(attr).target.offset
    member, wrap, spec = _LINK_TARGETS.get(attr.attach_type, _NO_TARGET)
    if attr.attach_type in _CGROUP_ATTACH_TYPES and not attr.flags & (AttachFlag.BEFORE | AttachFlag.AFTER):
        member, wrap, spec = _CGROUP_PLAIN
    if not spec.fields or ctx.size <= base:
        return [], base
    obj = getattr(attr.target, member) if member else attr.target
    fields = _print_fields(_Ctx(attr, ctx.size, obj), spec.fields)
    end = base + max(_end(type(obj), f.name) for f in spec.fields)
    return ([f"{wrap}={{{', '.join(fields)}}}"] if wrap else fields), end


def _format_attr(cmd: int, addr: int, size: int) -> str:
    """The attr argument as strace prints it, or its address where strace would."""
    spec, cls = _SPECS.get(cmd), ATTR_OF_CMD.get(cmd)
    data = _read(addr, size) if 0 < size <= _PAGE_SIZE else b""
    if spec is None or cls is None or not data or len(data) < size:
        return _addr(addr)
    attr = cls.from_buffer_copy(data[:ctypes.sizeof(cls)].ljust(ctypes.sizeof(cls), b"\0"))
    ctx = _Ctx(attr, size)
    fields = _print_fields(ctx, spec.fields)
    attr_size = max(_end(cls, f.name) for f in spec.fields)
    if cmd == Cmd.LINK_CREATE:
        more, attr_size = _link_target(ctx)
        fields += more
    if spec.wrap:
        fields = [f"{spec.wrap}={{{', '.join(fields)}}}"]
    if any(data[attr_size:size]):
        fields.append("...")
    return "{" + ", ".join(fields) + "}"


# Where Python's errno names differ from strace's (aliases), or the kernel's own ENOTSUPP.
_ERRNO_NAMES = {**errno.errorcode, errno.EOPNOTSUPP: "EOPNOTSUPP", errno.EDEADLK: "EDEADLK",
                ENOTSUPP: "ENOTSUPP"}


def _format_result(result: int) -> str:
    if result >= 0:
        return str(result)
    err = -result
    return f"-1 {_ERRNO_NAMES.get(err, str(err))} ({os.strerror(err)})"


def format_call(cmd: int, addr: int, size: int, result: int) -> str:
    """One strace line for ``bpf(cmd, addr, size)`` that returned ``result`` (or ``-errno``)."""
    attr = _format_attr(cmd, addr, size)
    return f"bpf({_COMMANDS.value(cmd)}, {attr}, {size}) = {_format_result(result)}"


# --- switching it on and off ------------------------------------------------------------------------

def _writer(stream: Optional[Stream]) -> syscall.Tracer:
    """A tracer appending lines to a list, or writing them to a file (``sys.stderr`` of the moment)."""
    if isinstance(stream, list):
        def trace(cmd: int, addr: int, size: int, result: int) -> None:
            stream.append(format_call(cmd, addr, size, result))
    else:
        def trace(cmd: int, addr: int, size: int, result: int) -> None:
            out = sys.stderr if stream is None else stream
            out.write(format_call(cmd, addr, size, result) + "\n")
            out.flush()
    return trace


def enable(stream: Optional[Stream] = None) -> None:
    """Trace every bpf() call to ``stream`` (a text file, or a list of lines; stderr by default)."""
    syscall.install_tracer(_writer(stream))


def disable() -> None:
    """Stop tracing."""
    syscall.install_tracer(None)


@contextlib.contextmanager
def tracing(stream: Stream) -> Iterator[Stream]:
    """Trace to ``stream`` inside the block, then restore whatever tracer was there before."""
    previous = syscall.install_tracer(_writer(stream))
    try:
        yield stream
    finally:
        syscall.install_tracer(previous)
