"""The host around the bpf() calls: mounted file systems (one reader of the mount table),
tracefs, the cgroup v2 mount, file system magic numbers, network namespaces of the calling
thread, and the running kernel's version code."""
from __future__ import annotations

import contextlib
import ctypes
import os
import re
from typing import Iterator, Optional

from ..errors import UnsupportedFeatureError, UsageError
from .fd import FD
from .uapi import BPFFS_MAGIC

TRACEFS_PATHS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_CLONE_NEWNET = 0x40000000
VMLINUX_BTF = "/sys/kernel/btf/vmlinux"
SYSCALL_PREFIXES = {"x86_64": "__x64_", "aarch64": "__arm64_", "s390x": "__s390x_",
                    "riscv64": "__riscv_", "ppc64le": "", "loongarch64": ""}
"""The arch prefix of syscall entry functions (``__x64_sys_execve``) when the kernel wraps
syscalls with pt_regs (x86-64 since 4.17; ``sys_execve`` otherwise)."""
_libc = ctypes.CDLL(None, use_errno=True)


class _Statfs(ctypes.Structure):
    _fields_ = [("f_type", ctypes.c_long), ("rest", ctypes.c_byte * 112)]


_libc.statfs.argtypes = (ctypes.c_char_p, ctypes.POINTER(_Statfs))


def mounts(fstype: str) -> list[str]:
    """Mount points of file systems of ``fstype`` (``bpf``, ``cgroup2``), in mount table order,
    each once (a file system mounted again on the same directory hides the first: only the
    top one is seen there)."""
    with open("/proc/self/mounts") as f:
        return list(dict.fromkeys(fields[1] for fields in map(str.split, f)
                                  if len(fields) > 2 and fields[2] == fstype))


def fs_magic(path: str) -> int:
    """statfs(path).f_type; raises OSError."""
    buf = _Statfs()
    if _libc.statfs(os.fsencode(path), ctypes.byref(buf)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), path)
    return buf.f_type & 0xFFFFFFFF


def is_bpffs(path: str) -> bool:
    """True when ``path`` lies on a bpffs mount."""
    try:
        return fs_magic(path) == BPFFS_MAGIC
    except OSError:
        return False


def tracefs() -> str:
    """The tracefs mount point; an error says how to mount it."""
    for path in TRACEFS_PATHS:
        if os.path.exists(os.path.join(path, "events")):
            return path
    raise UsageError("tracefs is not mounted: mount -t tracefs tracefs /sys/kernel/tracing")


def cgroup2_mount() -> str:
    """The first cgroup v2 mount point; UnsupportedFeatureError says how to mount one."""
    found = mounts("cgroup2")
    if not found:
        raise UnsupportedFeatureError("no cgroup v2 file system is mounted (cgroup programs "
                                      "attach to cgroup v2 directories): mount -t cgroup2 none "
                                      "/sys/fs/cgroup")
    return found[0]


def current_netns() -> FD:
    """An fd of the calling thread's network namespace (to come back to it for a detach)."""
    return FD(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC))


def _setns(fd: int) -> None:
    if _libc.setns(fd, _CLONE_NEWNET) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns to a network namespace: {os.strerror(err)}")


@contextlib.contextmanager
def in_netns(netns: Optional[FD]) -> Iterator[None]:
    """The calling thread in ``netns`` for the block (no switch when it is there already)."""
    if netns is None:
        yield
        return
    with current_netns() as home:
        if os.stat(f"/proc/self/fd/{home.fd}").st_ino == os.fstat(netns.fd).st_ino:
            yield
            return
        _setns(netns.fd)
        try:
            yield
        finally:
            _setns(home.fd)


def kernel_version_code(release: Optional[str] = None) -> int:
    """LINUX_VERSION_CODE of a release string (``6.18.44-...`` -> 0x06122c; the patch level
    capped at 255, as the kernel does: ``4.19.300`` -> 0x0413ff); the running kernel's by default."""
    nums = [int(n) for n in re.findall(r"\d+", release or os.uname().release)[:3]] + [0, 0]
    return (nums[0] << 16) | (nums[1] << 8) | min(nums[2], 255)


def kernel_identity() -> str:
    """The running kernel, told apart cheaply (release, build string, size of its BTF): the key
    of what pybpf caches per kernel."""
    u = os.uname()
    try:
        size = os.stat(VMLINUX_BTF).st_size
    except OSError:
        size = -1
    return f"{u.release}\0{u.version}\0{size}"
