"""The syscall layer: bpf() and perf_event_open(), attr structs, UAPI constants, fds.

It knows nothing of ELF, BTF semantics or pybpf's object model.
"""
from .fd import FD
from .syscall import bpf, bpf_raw, command_name
from .uapi import AttachType, Cmd, Helper, LinkType, MapFlag, MapType, ProgFlag, ProgType, UpdateFlag

__all__ = ["FD", "bpf", "bpf_raw", "command_name", "AttachType", "Cmd", "Helper", "LinkType",
           "MapFlag", "MapType", "ProgFlag", "ProgType", "UpdateFlag"]
