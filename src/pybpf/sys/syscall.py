"""The ``bpf()`` system call: one function issues it, errno becomes a ``BPFError``.

``bpf_raw`` is the hot path (map element operations): it returns the result or
``-errno`` and raises nothing. ``bpf`` raises. Both retry EINTR, retry EAGAIN of
BPF_PROG_LOAD as libbpf does (5 attempts), and report every call to the tracer
(``pybpf.sys.trace``) when one is installed.

Short commands go through ctypes.PyDLL, which keeps the GIL during the call: a
map element operation takes microseconds, and holding the GIL makes the
per-map reusable attr buffers safe across threads. Commands that can take long
(program and BTF loads, batch operations) release the GIL.
"""
from __future__ import annotations

import ctypes
import errno as _errno
import platform
from typing import Callable, Optional

from ..errors import BPFError
from .attrs import Attr
from .uapi import Cmd

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351,
            "riscv64": 280, "loongarch64": 280, "i686": 357}
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "ppc64le": 319,
                        "s390x": 331, "riscv64": 241, "loongarch64": 241, "i686": 336}

try:
    SYS_bpf = _SYS_BPF[platform.machine()]
    SYS_perf_event_open = _SYS_PERF_EVENT_OPEN[platform.machine()]
except KeyError:  # pragma: no cover - depends on the machine
    raise ImportError(f"pybpf: unsupported architecture {platform.machine()}") from None


def _syscall_fn(lib: ctypes.CDLL) -> Callable[..., int]:
    fn = lib.syscall
    fn.restype = ctypes.c_long
    fn.argtypes = (ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_ulong)
    return fn


_short = _syscall_fn(ctypes.PyDLL(None, use_errno=True))  # keeps the GIL
_long = _syscall_fn(ctypes.CDLL(None, use_errno=True))    # releases the GIL
_LONG_CMDS = frozenset({Cmd.PROG_LOAD, Cmd.BTF_LOAD, Cmd.MAP_LOOKUP_BATCH,
                        Cmd.MAP_LOOKUP_AND_DELETE_BATCH, Cmd.MAP_UPDATE_BATCH,
                        Cmd.MAP_DELETE_BATCH, Cmd.PROG_TEST_RUN, Cmd.MAP_CREATE})
_get_errno = ctypes.get_errno

elem_call = ctypes.PyDLL(None, use_errno=True)["syscall"]  # a function object of its own
elem_call.restype = ctypes.c_long
"""The fast path of map element commands: ``elem_call(SYS_bpf, cmd, ctypes.byref(attr), size)``.

No argtypes: converting four arguments through them costs ~0.4 us a call, a third of a
hash map lookup. Python ints go as C ints (sign-extended into the registers, which
``syscall(long, ...)`` reads as longs) and the attr goes by reference. Keeps the GIL.
A result below 0, or any result while a tracer is installed, must go through
``elem_done``, which does what ``bpf_raw`` does after the call.
"""

Tracer = Callable[[int, int, int, int], None]
"""tracer(cmd, attr_address, size, result_or_minus_errno), called after each bpf() returns."""

tracer: Optional[Tracer] = None


def bpf_raw(cmd: int, addr: int, size: int) -> int:
    """``bpf(cmd, addr, size)``: the result, or ``-errno`` on failure."""
    fn = _long if cmd in _LONG_CMDS else _short
    again = 5
    while True:
        ret = fn(SYS_bpf, cmd, addr, size)
        if ret < 0:
            err = _get_errno()
            if err == _errno.EINTR or (err == _errno.EAGAIN and cmd == Cmd.PROG_LOAD and again):
                again -= 1
                continue
            ret = -err
        if tracer is not None:
            tracer(cmd, addr, size, ret)
        return ret


def elem_done(cmd: int, addr: int, size: int, ret: int) -> int:
    """Finish an ``elem_call``: -errno on failure (EINTR retried), and the tracer told."""
    if ret < 0:
        err = _get_errno()
        if err == _errno.EINTR:
            return bpf_raw(cmd, addr, size)
        ret = -err
    if tracer is not None:
        tracer(cmd, addr, size, ret)
    return ret


def bpf(cmd: int, attr: Attr, obj: str = "") -> int:
    """``bpf(cmd, &attr, sizeof(attr))``; raises ``BPFError`` naming ``obj`` on failure."""
    ret = bpf_raw(cmd, ctypes.addressof(attr), ctypes.sizeof(attr))
    if ret < 0:
        raise BPFError(-ret, command_name(cmd), obj)
    return ret


def command_name(cmd: int) -> str:
    """``BPF_MAP_CREATE`` for 0, as the UAPI spells it."""
    try:
        return "BPF_" + Cmd(cmd).name
    except ValueError:
        return f"bpf command {cmd}"


def install_tracer(fn: Optional[Tracer]) -> Optional[Tracer]:
    """Set the tracer (None removes it); returns the previous one."""
    global tracer
    old, tracer = tracer, fn
    return old


if __import__("os").environ.get("PYBPF_TRACE") == "1":  # strace-format trace of every call
    from .trace import enable
    enable()
