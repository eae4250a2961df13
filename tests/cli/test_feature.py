"""``pybpf feature probe``: the report is pybpf.features' answers."""
from __future__ import annotations

from pybpf import features
from pybpf.sys.uapi import Helper, MapType, ProgType

from tests.cli.tools import assert_error, pybpf


def test_probe_json_is_the_library_answers():
    report = pybpf("-j", "feature", "probe", "kernel").json()
    assert set(report) == {"system_config", "syscall_config", "program_types", "map_types",
                           "helpers", "misc"}
    for t in (ProgType.XDP, ProgType.SOCKET_FILTER, ProgType.TRACING, ProgType.LSM):
        assert report["program_types"][f"have_{t.name.lower()}_prog_type"] == \
            bool(features.prog_type(t))
    for t in (MapType.HASH, MapType.RINGBUF, MapType.ARENA):
        assert report["map_types"][f"have_{t.name.lower()}_map_type"] == bool(features.map_type(t))
    xdp = report["helpers"]["xdp_available_helpers"]
    assert "bpf_map_lookup_elem" in xdp and "bpf_xdp_adjust_head" in xdp
    assert ("bpf_xdp_adjust_head" in report["helpers"]["socket_filter_available_helpers"]) == \
        bool(features.helper(ProgType.SOCKET_FILTER, Helper.xdp_adjust_head))
    assert "bpf_trace_printk" not in xdp  # only with 'full', as bpftool
    assert report["misc"]["have_kprobes"] == bool(features.kprobes())
    with open("/proc/sys/net/core/bpf_jit_enable") as f:
        assert report["system_config"]["bpf_jit_enable"] == int(f.read())


def test_probe_plain_report():
    out = pybpf("feature", "probe").out
    for heading in ("Scanning system configuration...", "Scanning eBPF program types...",
                    "Scanning eBPF map types...", "Scanning eBPF helper functions...",
                    "Scanning miscellaneous eBPF features..."):
        assert heading + "\n" in out
    assert "eBPF program_type xdp is available\n" in out
    if not features.kprobes():
        assert "kprobe attachment is NOT available: " + features.kprobes().reason in out
    full = pybpf("feature", "probe", "full").out
    assert "\t- bpf_trace_printk\n" in full


def test_probe_bad_arguments():
    assert_error(pybpf("feature", "probe", "dev", "eth0"), "not supported by pybpf")
    assert_error(pybpf("feature", "probe", "sideways"), "got: 'sideways'")
