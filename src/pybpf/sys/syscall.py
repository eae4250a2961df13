"""The ``bpf()`` system call: one function issues it, errno becomes a ``BPFError``.

``bpf_raw`` returns the result or ``-errno`` and raises nothing. ``bpf`` raises. Both retry
EINTR, retry EAGAIN of BPF_PROG_LOAD as libbpf does (5 attempts), and report every call to
the tracer (``pybpf.sys.trace``) when one is installed.

Short commands go through ctypes.PyDLL, which keeps the GIL during the call; commands that
can take long (program and BTF loads, batch operations) release it.

``bound_calls`` is the hot path of map element commands: ``bpf()`` with its three operands
fixed, called with no arguments. On x86_64 CPython each is a builtin function whose body is
a few bytes of machine code issuing the ``syscall`` instruction itself: no ctypes or libffi
call, no argument conversion, no errno round trip through libc: ~0.3 us less per call than
``syscall()`` through ctypes, where a hash map lookup in C takes ~0.9 us (``benchmarks/maps.py``).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import mmap as _mmap
import os
from typing import Callable, List, Optional, Sequence, Tuple

from ..errors import BPFError
from .attrs import Attr
from .uapi import Cmd

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "armv7l": 386, "ppc64le": 361, "s390x": 351,
            "riscv64": 280, "loongarch64": 280, "i686": 357}
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "armv7l": 364, "ppc64le": 319,
                        "s390x": 331, "riscv64": 241, "loongarch64": 241, "i686": 336}

_MACHINE = os.uname().machine  # platform.machine(), without importing platform (1 ms)
try:
    SYS_bpf = _SYS_BPF[_MACHINE]
    SYS_perf_event_open = _SYS_PERF_EVENT_OPEN[_MACHINE]
except KeyError:  # pragma: no cover - depends on the machine
    raise ImportError(f"pybpf: unsupported architecture {_MACHINE}") from None


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

_untyped = ctypes.PyDLL(None, use_errno=True)["syscall"]  # a function object of its own
_untyped.restype = ctypes.c_long  # no argtypes: converting through them costs ~0.4 us a call
_mprotect = ctypes.CDLL(None, use_errno=True).mprotect
_mprotect.restype = ctypes.c_int
_mprotect.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
# The system refused executable memory once (do not ask again), or the user turned machine-code
# stubs off with PYBPF_MACHINE_CODE=0 (libc syscall() through ctypes is then used throughout).
_stubs_refused = os.environ.get("PYBPF_MACHINE_CODE") == "0"


class _PyMethodDef(ctypes.Structure):
    """CPython's PyMethodDef (stable ABI): what a builtin function calls."""

    _fields_ = [("ml_name", ctypes.c_char_p), ("ml_meth", ctypes.c_void_p),
                ("ml_flags", ctypes.c_int), ("ml_doc", ctypes.c_char_p)]


_METH_NOARGS = 0x0004
_pythonapi = getattr(ctypes, "pythonapi", None)  # CPython only
if _pythonapi is not None:
    _new_builtin = _pythonapi.PyCFunction_NewEx
    _new_builtin.restype = ctypes.py_object
    _new_builtin.argtypes = (ctypes.c_void_p, ctypes.py_object, ctypes.py_object)
    _PYLONG_FROMLONG: int = ctypes.cast(_pythonapi.PyLong_FromLong, ctypes.c_void_p).value or 0


def _x86_64_stub(cmd: int, addr: int, size: int) -> bytes:
    """``PyObject *stub(PyObject *, PyObject *)``: ``PyLong_FromLong(bpf(cmd, addr, size))``.

    The raw system call gives the result or -errno; no register the caller keeps is touched.
    """
    return (b"\xf3\x0f\x1e\xfa"                                      # endbr64
            + b"\xbf" + cmd.to_bytes(4, "little")                    # mov edi, cmd
            + b"\x48\xbe" + addr.to_bytes(8, "little")               # movabs rsi, addr
            + b"\xba" + size.to_bytes(4, "little")                   # mov edx, size
            + b"\xb8" + SYS_bpf.to_bytes(4, "little")                # mov eax, SYS_bpf
            + b"\x0f\x05"                                            # syscall
            + b"\x48\x89\xc7"                                        # mov rdi, rax
            + b"\x48\xb8" + _PYLONG_FROMLONG.to_bytes(8, "little")   # movabs rax, PyLong_FromLong
            + b"\xff\xe0")                                           # jmp rax (a tail call)


_STUB_CODE = {"x86_64": _x86_64_stub}.get(_MACHINE) \
    if _pythonapi is not None and ctypes.sizeof(ctypes.c_void_p) == 8 else None


class _Code:
    """One page of stubs and their method definitions: the ``self`` of their builtins."""

    __slots__ = ("page", "defs")

    def __init__(self, page: _mmap.mmap, defs: List[_PyMethodDef]) -> None:
        self.page, self.defs = page, defs


def _machine_code(calls: Sequence[Tuple[int, int, int]]) -> Optional[List[Callable[[], int]]]:
    """Builtin functions running stubs on a page of their own, which is written, then made
    read-only and executable.

    None where pybpf has no encoder (other CPUs, other Pythons) or the system refuses
    executable memory (SELinux ``execmem``, systemd's MemoryDenyWriteExecute=, PaX).
    """
    global _stubs_refused
    if _STUB_CODE is None or _stubs_refused:
        return None
    code = [_STUB_CODE(cmd, addr, size) for cmd, addr, size in calls]
    blob = b"".join(code)
    if len(blob) > _mmap.PAGESIZE:
        raise ValueError(f"{len(calls)} bound calls do not fit in one page")
    page = _mmap.mmap(-1, _mmap.PAGESIZE, flags=_mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS,
                      prot=_mmap.PROT_READ | _mmap.PROT_WRITE)
    page.write(blob)
    base = ctypes.addressof(ctypes.c_char.from_buffer(page))  # the export ends right here
    if _mprotect(base, _mmap.PAGESIZE, _mmap.PROT_READ | _mmap.PROT_EXEC) != 0:
        _stubs_refused = True
        page.close()
        return None
    defs, offset = [], 0
    for (cmd, _, _), c in zip(calls, code):
        defs.append(_PyMethodDef(command_name(cmd).lower().encode(), base + offset,
                                 _METH_NOARGS, None))
        offset += len(c)
    owner = _Code(page, defs)  # each builtin holds it: the code lives as long as they do
    return [_new_builtin(ctypes.addressof(d), owner, None) for d in defs]


def _libc_call(cmd: int, addr: int, size: int) -> Callable[[], int]:
    ptr = ctypes.c_void_p(addr)

    def call() -> int:
        ret = _untyped(SYS_bpf, cmd, ptr, size)
        return ret if ret >= 0 else -_get_errno()
    return call


def bound_calls(calls: Sequence[Tuple[int, int, int]],
                machine_code: bool = True) -> List[Callable[[], int]]:
    """``bpf(cmd, addr, size)`` for each ``(cmd, addr, size)``, as functions of no arguments.

    Each returns the result or ``-errno``: no retries, no tracer. A caller passes a result
    below 0, and every result while a tracer is installed, to ``elem_done``. The memory at
    ``addr`` must outlive the functions. Machine code where pybpf has an encoder for the CPU
    and the system allows it (``machine_code=False`` never tries), else libc ``syscall()``.
    """
    fns = _machine_code(calls) if machine_code else None
    return fns if fns is not None else [_libc_call(*c) for c in calls]


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
    """Finish a ``bound_calls`` call: EINTR retried (by ``bpf_raw``), the tracer told."""
    if ret == -_errno.EINTR:
        return bpf_raw(cmd, addr, size)
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
