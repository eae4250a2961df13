"""One error hierarchy for pybpf.

Every error says what failed (the command), on which object, and why (the errno's
meaning for that command), and where it can, what to do about it.
"""
from __future__ import annotations

import errno as _errno
import os

from . import caps

_ENOTSUPP = 524  # sys.uapi.ENOTSUPP (not imported: pybpf.sys imports this module)

# Why an errno happens, per command (UAPI name without BPF_) where the kernel gives it a specific
# meaning. EPERM in general is explained by caps.eperm_reason: missing capabilities, or a policy.
_EXPLAIN: dict[tuple[str | None, int], str] = {
    (None, _errno.EACCES): "permission denied",
    (None, _errno.ENOENT): "no such object",
    (None, _errno.EEXIST): "already exists",
    (None, _errno.E2BIG): "too big: a size or count exceeds the kernel's limit, or this kernel "
                          "does not know a non-zero attribute field (it is older than pybpf's UAPI)",
    (None, _errno.EINVAL): "invalid argument: the kernel rejected an attribute or flag",
    (None, _errno.ENOSPC): "no space left",
    (None, _errno.EBADF): "bad file descriptor: the object's fd is closed or not a BPF object",
    (None, _errno.ENOMEM): "out of memory (kernel allocation or memlock limit)",
    (None, _errno.EOPNOTSUPP): "operation not supported by this object or kernel",
    (None, _ENOTSUPP): "not supported by this kernel",
    (None, _errno.EFAULT): "bad address passed to the kernel",
    (None, _errno.EBUSY): "busy: the object or hook is in use",
    (None, _errno.ENODEV): "no such device",
    ("MAP_LOOKUP_ELEM", _errno.ENOENT): "no element with this key",
    ("MAP_DELETE_ELEM", _errno.ENOENT): "no element with this key",
    ("MAP_LOOKUP_AND_DELETE_ELEM", _errno.ENOENT): "no element with this key (or the queue/stack is empty)",
    ("MAP_UPDATE_ELEM", _errno.EEXIST): "an element with this key exists and the update asked for NOEXIST",
    ("MAP_UPDATE_ELEM", _errno.ENOENT): "no element with this key and the update asked for EXIST",
    ("MAP_UPDATE_ELEM", _errno.E2BIG): "the map is full (max_entries reached) or the index is out of range",
    ("MAP_UPDATE_ELEM", _errno.EPERM): "the map is frozen or read-only from user space",
    ("MAP_GET_NEXT_KEY", _errno.ENOENT): "no more keys",
    ("MAP_CREATE", _errno.EINVAL): "invalid map attributes: type, key/value size, max_entries or "
                                     "flags not accepted for this map type",
    ("MAP_CREATE", _errno.E2BIG): "key, value or max_entries exceeds the limit of this map type",
    ("MAP_FREEZE", _errno.EBUSY): "the map is mmap-ed writable or already frozen",
    ("PROG_LOAD", _errno.EACCES): "the verifier rejected the program (see the log)",
    ("PROG_LOAD", _errno.EINVAL): "the kernel rejected the program: invalid instructions, type, "
                                    "attach type or attribute (see the log)",
    ("PROG_LOAD", _errno.ENOSPC): "the verifier log did not fit in the buffer",
    ("PROG_LOAD", _errno.E2BIG): "the program is too large (instruction or complexity limit)",
    ("OBJ_PIN", _errno.EEXIST): "the pin path exists already",
    ("OBJ_PIN", _errno.EPERM): "the pin path is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)",
    ("OBJ_PIN", _errno.ENOENT): "the pin path's directory does not exist",
    ("OBJ_GET", _errno.ENOENT): "nothing is pinned at this path",
    ("OBJ_GET", _errno.EPERM): "the path is not on a bpffs mount, or access is not permitted",
    ("OBJ_GET", _errno.EACCES): "the pinned object's permissions forbid access",
    ("PROG_GET_FD_BY_ID", _errno.ENOENT): "no program with this id (it was unloaded)",
    ("MAP_GET_FD_BY_ID", _errno.ENOENT): "no map with this id (it was freed)",
    ("LINK_GET_FD_BY_ID", _errno.ENOENT): "no link with this id",
    ("BTF_GET_FD_BY_ID", _errno.ENOENT): "no BTF object with this id",
    ("PROG_TEST_RUN", _ENOTSUPP):
        "this program type cannot be run with BPF_PROG_TEST_RUN",
    ("PROG_TEST_RUN", _errno.ENOSPC): "data_out is too small for the program's output",
    ("LINK_CREATE", _errno.EINVAL): "the kernel refused this attachment (attach type, target or flags)",
    ("LINK_CREATE", _errno.EBUSY): "the hook is taken: another program is attached there",
    ("PROG_ATTACH", _errno.EPERM): "not permitted: the hook holds a program attached in another "
                                   "mode (without ALLOW_MULTI/ALLOW_OVERRIDE, or with other "
                                   "flags)",
    ("PROG_ATTACH", _errno.EEXIST): "this program is attached to this hook already",
    ("PROG_ATTACH", _errno.EINVAL): "the kernel refused this attachment (attach type, target, "
                                    "flags, or the program's expected_attach_type)",
    ("PROG_DETACH", _errno.ENOENT): "no such program is attached to this hook",
    ("PROG_QUERY", _errno.EINVAL): "this kernel does not know the attach type, or the target is "
                                   "not of the kind the attach type needs",
    ("RAW_TRACEPOINT_OPEN", _errno.ENOENT): "no such raw tracepoint",
}


def explain(command: str | None, err: int) -> str:
    """The meaning of ``err`` for ``command`` (``BPF_MAP_CREATE``), as specific as pybpf knows it."""
    cmd = command.removeprefix("BPF_") if command else None
    known = _EXPLAIN.get((cmd, err)) or _EXPLAIN.get((None, err))
    if err == _errno.EPERM:
        held = caps.effective()
        if known is None or caps.missing(caps=held):
            why = caps.eperm_reason(caps=held)
            return f"{known}, or {why}" if known else f"operation not permitted: {why}"
    return known or os.strerror(err).lower()


class PyBPFError(Exception):
    """Base of all pybpf errors."""


class BPFError(PyBPFError, OSError):
    """A ``bpf()`` (or related) system call failed.

    ``errno`` is the kernel's answer, ``command`` the bpf command name (``BPF_MAP_CREATE``),
    ``obj`` the object it was about (``map 'config'``), ``hint`` what to do.
    """

    def __init__(self, err: int, command: str, obj: str = "", detail: str = "",
                 hint: str = "") -> None:
        self.command = command
        self.obj = obj
        self.hint = hint
        why = detail or explain(command, err)
        name = _errno.errorcode.get(err, str(err))
        where = f"{command} on {obj}" if obj else command
        text = f"{where}: {why} ({name})"
        if hint:
            text += f"; {hint}"
        super().__init__(err, text)

    def __str__(self) -> str:
        return self.strerror or ""

    def __reduce__(self):
        return (type(self), (self.errno, self.command, self.obj, "", self.hint))


class VerifierError(BPFError):
    """BPF_PROG_LOAD failed; ``log`` holds the verifier's log (``truncated`` if it did not fit)."""

    def __init__(self, err: int, command: str, obj: str = "", log: str = "",
                 truncated: bool = False) -> None:
        self.log = log
        self.truncated = truncated
        super().__init__(err, command, obj)

    def __str__(self) -> str:
        text = self.strerror or ""
        if self.log:
            tail = self.log.rstrip("\n")
            mark = "\n(log truncated)" if self.truncated else ""
            text += f"\nverifier log:\n{tail}{mark}"
        return text

    def __reduce__(self):
        return (type(self), (self.errno, self.command, self.obj, self.log, self.truncated))


class UnsupportedFeatureError(PyBPFError):
    """The running kernel lacks a feature; the message says which and what to use instead."""


class UsageError(PyBPFError, ValueError):
    """Bad input from the caller (wrong key size, bad name, ...), caught before the kernel."""


class BTFError(PyBPFError, ValueError):
    """Malformed or unusable BTF (raw blob, ELF .BTF/.BTF.ext, or a type lookup that fails)."""


class ObjectError(PyBPFError, ValueError):
    """A BPF object file (ELF) is malformed, or asks for something pybpf cannot honour."""


class ToolchainError(PyBPFError):
    """A build tool or header pybpf.compile needs (clang, libbpf-dev's bpf/*.h) is missing;
    the message says what to install."""


class CompileError(PyBPFError):
    """clang failed on a BPF C program: ``stderr`` holds its diagnostics, ``command`` the
    command line."""

    def __init__(self, message: str, stderr: str = "", command: tuple[str, ...] = ()) -> None:
        super().__init__(f"{message}\n{stderr.rstrip()}" if stderr else message)
        self.message, self.stderr, self.command = message, stderr, command

    def __reduce__(self):
        return (type(self), (self.message, self.stderr, self.command))


class MapKeyError(BPFError, KeyError):
    """A map has no element for the key (ENOENT from a lookup/delete), or a queue is empty."""
