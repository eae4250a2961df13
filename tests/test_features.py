"""Feature probes tell the truth: each answer is checked against a real create/load/attach."""
from __future__ import annotations

import os

import pytest

from pybpf import features
from pybpf.errors import UnsupportedFeatureError
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import Helper, MapType, ProgType

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")


@pytest.mark.parametrize("t", [MapType.HASH, MapType.RINGBUF, MapType.BLOOM_FILTER,
                               MapType.ARENA, MapType.TASK_STORAGE])
def test_map_type_probe_matches_creation(t):
    assert features.map_type(t), features.map_type(t).reason


def test_map_type_unknown_to_the_kernel_is_unsupported_with_reason():
    s = features.map_type(200)  # a type number no kernel has (yet)
    assert not s and "map type 200 is not supported by this kernel" in s.reason
    with pytest.raises(UnsupportedFeatureError, match="not supported by this kernel"):
        Map.create(200, 4, 4, 1)


def test_prog_type_probe_agrees_with_load():
    for t in (ProgType.SOCKET_FILTER, ProgType.XDP, ProgType.KPROBE, ProgType.TRACEPOINT,
              ProgType.LIRC_MODE2):
        support = features.prog_type(t)
        try:
            Program.load(t, RET0).close()
            loaded = True
        except Exception:
            loaded = False
        assert bool(support) == loaded, (t, support)


def test_helper_probe():
    assert features.helper(ProgType.KPROBE, Helper.probe_read_kernel)
    s = features.helper(ProgType.SOCKET_FILTER, Helper.override_return)
    assert not s and "override_return" in s.reason


def test_kprobe_probe_matches_the_pmu():
    pmu = os.path.exists("/sys/bus/event_source/devices/kprobe/type")
    s = features.kprobes()
    assert bool(s) == (pmu or any(os.path.exists(p + "/kprobe_events") for p in
                                  ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")))
    if not s:
        assert "CONFIG_KPROBES" in s.reason and "sys_enter_execve" in s.reason
        with pytest.raises(UnsupportedFeatureError, match="use a tracepoint"):
            s.require()


def test_fentry_and_lsm_probes_agree_with_a_load():
    for probe, ptype, attach in ((features.fentry, ProgType.TRACING, 24),
                                 (features.lsm, ProgType.LSM, 27)):
        s = probe()
        if s:
            continue  # allowed here: the VM runner exercises the attach on such kernels
        with pytest.raises(UnsupportedFeatureError) as ei:
            Program.load(ptype, RET0, expected_attach_type=attach)
        assert s.reason in str(ei.value)


def test_privileged_reflects_capabilities():
    assert features.privileged() == (os.geteuid() == 0)
