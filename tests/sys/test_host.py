"""sys.host: the mount table read once, for every file system type pybpf looks for."""
from __future__ import annotations

import os

from pybpf.sys import host
from pybpf.sys.uapi import BPFFS_MAGIC


def _mountinfo(fstype: str) -> set[str]:
    """Mount points of ``fstype`` from /proc/self/mountinfo (another table, another format)."""
    out = set()
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            if right.split()[0] == fstype:
                out.add(left.split()[4])
    return out


def test_mounts_agree_with_mountinfo(bpffs, tracefs) -> None:
    for fstype in ("bpf", "tracefs", "cgroup2", "proc"):
        found = host.mounts(fstype)
        assert len(found) == len(set(found))
        assert set(found) == _mountinfo(fstype)
    assert str(bpffs) in host.mounts("bpf")
    assert all(host.is_bpffs(m) for m in host.mounts("bpf"))
    assert host.fs_magic(str(bpffs)) == BPFFS_MAGIC and not host.is_bpffs("/proc")


def test_tracefs_and_cgroup2(tracefs) -> None:
    assert os.path.isdir(os.path.join(host.tracefs(), "events"))
    assert host.cgroup2_mount() == host.mounts("cgroup2")[0]


def test_kernel_version_code() -> None:
    assert host.kernel_version_code("6.18.44-fc-v1252") == 0x06122C
    assert host.kernel_version_code("4.19.300") == 0x0413FF
    assert host.kernel_version_code("5.10.0") == 0x050A00
    major, minor = (int(n) for n in os.uname().release.split(".")[:2])
    assert host.kernel_version_code() >> 8 == major << 8 | minor
