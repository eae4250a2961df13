"""ebpf_exporter's own SEC() conventions, registered by the exporter while it loads:
``xdp/<interface>`` (attached to that interface) and ``perf_event/type=..,config=..,
frequency=..`` (one perf event per online CPU), through the exporter and through the loader
with ``exporter.sections.registered()``."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec, find_section, load
from pybpf.errors import ObjectError, UsageError
from pybpf.exporter.sections import registered
from pybpf.links.netlink import ifindex
from pybpf.sys.cpus import online_cpus
from tests.exporter.conftest import ExporterProcess, exporter_command, free_port, wait_http
from tests.exporter.test_features import series, wait_for
from tests.links.netfixtures import make_netns, received, veth  # noqa: F401 (fixtures)

BPF = Path(__file__).parent / "bpf"
XDP_CONFIG = """
metrics:
  counters:
    - name: xdp_packets_total
      help: Packets received, by interface index
      labels:
        - {name: ifindex, size: 4, decoders: [{name: uint}]}
"""
CPU_CLOCK_CONFIG = """
metrics:
  counters:
    - name: cpu_clock_samples_total
      help: cpu-clock samples, by CPU
      labels:
        - {name: cpu, size: 4, decoders: [{name: uint}]}
"""


@pytest.fixture(scope="module")
def cpu_clock_object(tmp_path_factory) -> Path:
    import pybpf
    out = tmp_path_factory.mktemp("sections")
    pybpf.compile(BPF / "cpu_clock.bpf.c", out / "cpu_clock.bpf.o")
    (out / "cpu_clock.yaml").write_text(CPU_CLOCK_CONFIG)
    return out / "cpu_clock.bpf.o"


def check_samples(counts: dict, seconds: float) -> None:
    """cpu-clock at 99 Hz per CPU: samples came, and no more than the rate allows."""
    total = sum(counts.values())
    assert total > 0
    assert set(counts) <= set(online_cpus())
    assert total <= 99 * len(online_cpus()) * seconds * 3 + 100


def test_exporter_xdp_and_perf_event(veth, cpu_clock_object, tmp_path):
    import pybpf
    pybpf.compile(BPF / "xdp_iface.bpf.c", tmp_path / "xdp_iface.bpf.o",
                  defines={"XDP_SECTION": f'"xdp/{veth.b}"'})
    (tmp_path / "xdp_iface.yaml").write_text(XDP_CONFIG)
    for name in ("cpu_clock.bpf.o", "cpu_clock.yaml"):
        os.symlink(cpu_clock_object.parent / name, tmp_path / name)
    port = free_port()
    # the exporter runs in veth b's namespace: xdp/<name> names an interface there
    proc = subprocess.Popen(["nsenter", f"--net={veth.ns_b.path}",
                             *exporter_command(tmp_path, "xdp_iface,cpu_clock",
                                               "--config.strict", "--web.listen-address",
                                               f"127.0.0.1:{port}")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    exp = ExporterProcess(proc, f"http://127.0.0.1:{port}")
    try:
        with veth.ns_b.entered():
            wait_http(exp.url + "/", 60, proc)
            started = time.monotonic()
            b_index = ifindex(veth.b)
            tx, rx = veth.udp_pair()
            with tx, rx:
                assert received(tx, rx, 20) == 20
            text = wait_for(exp, lambda t: series(t, "ebpf_exporter_xdp_packets_total")
                            == {f'{{ifindex="{b_index}"}}': 20.0})
            assert series(text, "ebpf_exporter_xdp_packets_total") == {
                f'{{ifindex="{b_index}"}}': 20.0}
            attached = series(text, "ebpf_exporter_ebpf_program_attached")
            assert sorted(attached.values()) == [1.0, 1.0], attached
            samples = {int(k.split('"')[1]): v for k, v in
                       series(text, "ebpf_exporter_cpu_clock_samples_total").items() if v}
            check_samples(samples, time.monotonic() - started + 60)
    finally:
        status, err = exp.stop()
    assert status == 0, err


def test_exporter_xdp_missing_interface(cpu_clock_object, tmp_path):
    import pybpf
    missing = f"nx{os.getpid() % 100000}"
    pybpf.compile(BPF / "xdp_iface.bpf.c", tmp_path / "xdp_iface.bpf.o",
                  defines={"XDP_SECTION": f'"xdp/{missing}"'})
    (tmp_path / "xdp_iface.yaml").write_text(XDP_CONFIG)
    proc = subprocess.run(exporter_command(tmp_path, "xdp_iface", "--config.strict",
                                           "--config.check"),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "xdp_iface" in proc.stderr and f"xdp/{missing}" in proc.stderr
    assert missing in proc.stderr.split("attaching:")[1]


def test_loader_perf_event_section(cpu_clock_object):
    with registered():
        spec = ObjectSpec.from_file(cpu_clock_object)
    assert find_section("perf_event/type=1,config=0,frequency=99") is None  # unregistered
    prog = spec.programs["count_sample"]
    assert prog.attach_target == "type=1,config=0,frequency=99"
    with load(spec) as coll:
        started = time.monotonic()
        group = coll.attach_all()[0]
        assert len(group) == len(online_cpus())
        deadline = time.monotonic() + 5
        m = coll.maps["cpu_clock_samples_total"]
        while not any(m[c] for c in online_cpus()) and time.monotonic() < deadline:
            sum(range(100000))
        check_samples({c: m[c] for c in online_cpus() if m[c]}, time.monotonic() - started)


@pytest.mark.parametrize("section, problem", [
    ("perf_event/type=1,config=0", "needs one of frequency=F"),
    ("perf_event/type=1,config=0,frequency=9,period=1000", "needs one of frequency=F"),
    ("perf_event/type=1,cfg=0,frequency=9", "item 'cfg=0' is no key of"),
    ("perf_event/type=1,config,frequency=9", "item 'config' is not key=value"),
    ("perf_event/type=x,frequency=9", "item 'type=x' has no integer value"),
    ("perf_event/type=1,type=1,frequency=9", "item 'type=1' is repeated"),
])
def test_perf_event_section_errors(section, problem):
    source = (BPF / "cpu_clock.bpf.c").read_text().replace(
        '"perf_event/type=1,config=0,frequency=99"', f'"{section}"')
    import pybpf
    with registered():
        spec = ObjectSpec.from_file(pybpf.compile(source))
    with load(spec) as coll:
        with pytest.raises(UsageError, match=problem) as info:
            coll.attach_all()
        assert section in str(info.value) and not coll.links


def test_sections_only_while_registered(cpu_clock_object):
    with pytest.raises(ObjectError, match="register_section"):
        ObjectSpec.from_file(cpu_clock_object)
    with registered(), registered():  # nested: one registration
        assert find_section("xdp/eth0").target == "eth0"
    assert find_section("xdp/eth0") is None
    assert find_section("xdp/devmap").definition.pattern == "xdp/devmap"
