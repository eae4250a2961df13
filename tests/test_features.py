"""Feature probes tell the truth: each answer is checked against a real create/load/attach."""
from __future__ import annotations

import functools
import os

import pytest

from pybpf import features
from pybpf.errors import UnsupportedFeatureError
from pybpf.links import btf_tracing
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, Helper, MapFlag, MapType, ProgType

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")


# Map types with sizes each accepts (the probe uses its own table; these are the test's).
MAP_ARGS = {
    MapType.HASH: (4, 4, 1, 0), MapType.ARRAY: (4, 4, 1, 0), MapType.LRU_HASH: (4, 4, 1, 0),
    MapType.PERCPU_HASH: (4, 4, 1, 0), MapType.PERCPU_ARRAY: (4, 4, 1, 0),
    MapType.LPM_TRIE: (8, 4, 1, MapFlag.NO_PREALLOC), MapType.RINGBUF: (0, 0, 4096, 0),
    MapType.USER_RINGBUF: (0, 0, 4096, 0), MapType.BLOOM_FILTER: (0, 4, 8, 0),
    MapType.QUEUE: (0, 4, 4, 0), MapType.STACK: (0, 4, 4, 0), MapType.DEVMAP: (4, 4, 1, 0),
    MapType.CPUMAP: (4, 4, 1, 0), MapType.XSKMAP: (4, 4, 1, 0), MapType.SOCKMAP: (4, 4, 1, 0),
    MapType.STACK_TRACE: (4, 64, 1, 0), MapType.ARENA: (0, 0, 2, MapFlag.MMAPABLE),
}


@pytest.mark.parametrize("t", sorted(MAP_ARGS), ids=lambda t: t.name.lower())
def test_map_type_probe_matches_creation(t):
    """Both ways: the probe says yes -> the map is made; no -> making it fails with the
    probe's reason, whichever this kernel allows."""
    support = features.map_type(t)
    key, value, entries, flags = MAP_ARGS[t]
    if support:
        Map.create(t, key, value, entries, flags=flags, name="t_probe").close()
    else:
        assert support.reason
        with pytest.raises(UnsupportedFeatureError) as ei:
            Map.create(t, key, value, entries, flags=flags, name="t_probe")
        assert support.reason in str(ei.value)


def test_map_type_unknown_to_the_kernel_is_unsupported_with_reason():
    s = features.map_type(200)  # a type number no kernel has (yet)
    assert not s and "map type 200 is not supported by this kernel" in s.reason
    with pytest.raises(UnsupportedFeatureError, match="not supported by this kernel"):
        Map.create(200, 4, 4, 1)


@pytest.mark.parametrize("t", [ProgType.SOCKET_FILTER, ProgType.XDP, ProgType.KPROBE,
                               ProgType.TRACEPOINT, ProgType.RAW_TRACEPOINT, ProgType.PERF_EVENT,
                               ProgType.SCHED_CLS, ProgType.CGROUP_SKB, ProgType.LIRC_MODE2,
                               ProgType.SK_MSG, ProgType.LWT_IN], ids=lambda t: t.name.lower())
def test_prog_type_probe_agrees_with_load(t):
    support = features.prog_type(t)
    if support:
        Program.load(t, RET0).close()
    else:
        with pytest.raises(UnsupportedFeatureError) as ei:
            Program.load(t, RET0)
        assert support.reason in str(ei.value)


ITER_TARGETS = ["task", "task_file", "task_vma", "bpf_map", "bpf_map_elem", "bpf_prog",
                "bpf_link", "tcp", "udp", "unix", "ksym", "cgroup", "bpf_sk_storage_map",
                "sockmap", "netlink", "ipv6_route"]


@pytest.mark.parametrize("target", ITER_TARGETS)
def test_iter_target_probe_agrees_with_load(target):
    """Each iterator target on its own (a kernel may refuse bpf_map_elem and allow task)."""
    support = features.iter_target(target)
    found = btf_tracing.lookup_target("iter", target)
    if found is None:
        assert not support and f"no bpf_iter_{target}" in support.reason
        return
    load = functools.partial(Program.load, ProgType.TRACING, RET0,
                             expected_attach_type=AttachType.TRACE_ITER,
                             attach_btf_id=found.btf_id, name="t_iter")
    if support:
        load().close()
    else:
        with pytest.raises(UnsupportedFeatureError) as ei:
            load()
        assert support.reason in str(ei.value) and f"iterator target {target}" in str(ei.value)


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
