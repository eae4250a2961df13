"""Run in the VM runner's guest: ``python -m tests.vm 6.1 -- python3 -m pytest tests/vm_tests``."""
from __future__ import annotations

import ctypes
import os

import pytest

from pybpf.sys import FD, Cmd, MapType, bpf
from pybpf.sys.attrs import MapCreateAttr, MapElemAttr
from tests.vm.kernels import guest_kernel

pytestmark = pytest.mark.skipif(guest_kernel() is None, reason="runs only in the VM runner's guest")


def test_kernel_is_the_one_asked_for() -> None:
    release = os.uname().release
    assert release == os.environ["PYBPF_VM_RELEASE"]
    assert release.startswith(f"{guest_kernel()}.")


def test_hash_map_round_trip() -> None:
    attr = MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=8, max_entries=4, map_name=b"vm_test")
    fd = FD(bpf(Cmd.MAP_CREATE, attr, "map 'vm_test'"))
    key, value, out = ctypes.c_uint32(7), ctypes.c_uint64(0x1122334455667788), ctypes.c_uint64()
    with fd:
        for cmd, v in ((Cmd.MAP_UPDATE_ELEM, value), (Cmd.MAP_LOOKUP_ELEM, out)):
            bpf(cmd, MapElemAttr(map_fd=fd.fd, key=ctypes.addressof(key), value=ctypes.addressof(v)))
    assert out.value == value.value


def test_kernel_filesystems_are_mounted() -> None:
    with open("/proc/self/mounts") as f:
        mounts = {line.split()[1]: line.split()[2] for line in f}
    assert mounts["/sys/fs/bpf"] == "bpf"
    assert mounts["/sys/kernel/tracing"] == "tracefs"
    assert mounts["/sys/kernel/debug"] == "debugfs"
    assert mounts["/sys/fs/cgroup"] == "cgroup2"


def test_kernel_config_is_in_boot() -> None:
    with open(f"/boot/config-{os.uname().release}") as f:
        assert "CONFIG_BPF_SYSCALL=y\n" in f.read()
