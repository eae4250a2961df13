"""The syscall layer: bpf() and perf_event_open(), attr structs, UAPI constants, fds.

It knows nothing of ELF, BTF semantics or pybpf's object model. Its names are imported on
first use: the pure layers (``asm``, ``btf``, ``elf``) use ``uapi`` and ``attrs`` only, so
they import and parse on a CPU pybpf has no syscall numbers for.
"""
import os

from .._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    ".fd": "FD",
    ".syscall": "bpf, bpf_raw, command_name",
    ".uapi": "AttachType, Cmd, Helper, LinkType, MapFlag, MapType, ProgFlag, ProgType, UpdateFlag",
})

if os.environ.get("PYBPF_TRACE") == "1":  # strace-format trace of every call, from the first
    from . import trace
    trace.enable()

__all__ = ["FD", "bpf", "bpf_raw", "command_name", "AttachType", "Cmd", "Helper", "LinkType",
           "MapFlag", "MapType", "ProgFlag", "ProgType", "UpdateFlag"]
