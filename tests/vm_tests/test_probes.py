"""In each VM kernel, pybpf.features agrees with the measured table in tests/vm/kernels.py."""
from __future__ import annotations

import pytest

from pybpf import features
from pybpf.sys.uapi import MapType, ProgType
from tests.vm.kernels import FEATURES, guest_kernel

pytestmark = pytest.mark.skipif(guest_kernel() is None, reason="runs only in the VM runner's guest")

PROBES = {
    "kprobe": features.kprobes,
    "fentry": features.fentry,
    "lsm": features.lsm,
    "perf_event_link": features.perf_link,
    "syscall_prog": lambda: features.prog_type(ProgType.SYSCALL),
    "netfilter": lambda: features.prog_type(ProgType.NETFILTER),
    "task_storage": lambda: features.map_type(MapType.TASK_STORAGE),
    "bloom_filter": lambda: features.map_type(MapType.BLOOM_FILTER),
    "user_ringbuf": lambda: features.map_type(MapType.USER_RINGBUF),
}


@pytest.mark.parametrize("feature", sorted(PROBES))
def test_probe_matches_the_table(feature: str) -> None:
    expected = guest_kernel() in FEATURES[feature]
    support = PROBES[feature]()
    assert bool(support) == expected, f"{feature} on {guest_kernel()}: {support.reason or 'ok'}"
    if not support:
        assert support.reason
