"""``--capabilities.keep``: once everything is loaded and attached, the exporter keeps only the
capabilities named (``all``, the default: no change; ``none``; or ``cap_syslog,cap_bpf``...).

Capabilities belong to threads: the set is changed (``capset(2)``, effective and permitted
sets; inheritable cleared) while the process has one thread, before the HTTP server, the
event loop and the span exporter start theirs, which inherit it.
"""
from __future__ import annotations

import ctypes
import os
import threading
from typing import Optional

from .config import ConfigError

# The kernel's capability numbers (include/uapi/linux/capability.h)
NAMES = ("chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid",
         "setuid", "setpcap", "linux_immutable", "net_bind_service", "net_broadcast",
         "net_admin", "net_raw", "ipc_lock", "ipc_owner", "sys_module", "sys_rawio",
         "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
         "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write",
         "audit_control", "setfcap", "mac_override", "mac_admin", "syslog", "wake_alarm",
         "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore")
_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def parse(value: str) -> Optional[int]:
    """The capability mask to keep; None for ``all``."""
    text = value.strip().lower()
    if text == "all":
        return None
    if text == "none" or not text:
        return 0
    mask = 0
    for word in text.split(","):
        name = word.strip().removeprefix("cap_")
        if name not in NAMES:
            raise ConfigError(f"--capabilities.keep: unknown capability {word.strip()!r} "
                              "(cap_bpf, cap_perfmon, cap_syslog, ...; or all, none)")
        mask |= 1 << NAMES.index(name)
    return mask


def keep_only(mask: int) -> None:
    """Reduce this thread's (the process's only) effective and permitted sets to ``mask``."""
    if threading.active_count() != 1:
        raise RuntimeError("capabilities must be dropped before other threads start")
    libc = ctypes.CDLL(None, use_errno=True)
    header = _Header(_VERSION_3, 0)
    data = (_Data * 2)()
    if libc.capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget: " + os.strerror(ctypes.get_errno()))
    for i in (0, 1):
        keep = (mask >> (32 * i)) & 0xFFFFFFFF
        data[i].permitted &= keep
        data[i].effective &= keep
        data[i].inheritable = 0
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, "capset: " + os.strerror(err))
