"""bcc.containers: the generated filter compiled by the BCC front end and run on real
syscalls; the filter keeps exactly the tasks whose cgroup / mount namespace is in the map."""
from __future__ import annotations

import ctypes as ct
import os
import types
import uuid

import pytest

from pybpf.bcc import BPF
from pybpf.bcc.containers import filter_by_containers

COUNT = """
BPF_HASH(hits, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {
    if (bpf_get_current_pid_tgid() >> 32 != %d || container_should_be_filtered())
        return 0;
    u32 k = 0;
    hits.increment(k);
    return 0;
}
"""


@pytest.fixture
def pin_path(bpffs):
    path = bpffs / f"pybpf-containers-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield str(path)
    finally:
        if path.exists():
            path.unlink()


def _hits(b: BPF) -> int:
    return sum(v.value for _, v in b["hits"].items())


def _run(text: str, table: str, key: int, leaf: type) -> tuple[int, int]:
    """Hits of 3 getppid calls with the map empty, then with ``key`` in it."""
    with BPF(text=text + COUNT % os.getpid()) as b:
        for _ in range(3):
            os.getppid()
        before = _hits(b)
        b[table][ct.c_uint64(key)] = leaf(1)
        for _ in range(3):
            os.getppid()
        return before, _hits(b)


def test_no_maps_filters_nothing():
    text = filter_by_containers(types.SimpleNamespace(cgroupmap=None, mntnsmap=None))
    assert "BPF_TABLE_PINNED" not in text
    with BPF(text=text + COUNT % os.getpid()) as b:
        for _ in range(3):
            os.getppid()
        assert _hits(b) == 3


def test_cgroup_map(pin_path):
    text = filter_by_containers(types.SimpleNamespace(cgroupmap=pin_path, mntnsmap=None))
    assert f'"{pin_path}"' in text
    with open("/proc/self/cgroup") as f:
        cgroup = next(line.split(":", 2)[2].strip() for line in f if line.startswith("0::"))
    cgroup_id = os.stat(f"/sys/fs/cgroup{cgroup}").st_ino  # cgroup2: the id is the inode
    assert _run(text, "cgroupset", cgroup_id, ct.c_uint64) == (0, 3)


def test_mount_namespace_map(pin_path):
    text = filter_by_containers(types.SimpleNamespace(cgroupmap=None, mntnsmap=pin_path))
    assert "#define MNT_NAMESPACE_DEFINED" in text
    ns = os.stat("/proc/self/ns/mnt").st_ino
    assert _run(text, "mount_ns_set", ns, ct.c_uint32) == (0, 3)
