"""Less common config features against the running kernel: perf_event_array counters, per-CPU
maps with a ``cpu`` label, ``kaddrs`` and ``cgroup_id_map``."""
from __future__ import annotations

import os
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from pybpf.sys.cpus import possible_cpus


BPF = Path(__file__).parent / "bpf" / "features.bpf.c"

CONFIG = """
metrics:
  counters:
    - name: exec_events_total
      help: Execs by command, from perf events
      perf_event_array: true
      flush_interval: 1h
      labels:
        - {name: comm, size: 16, decoders: [{name: string}]}
    - name: percpu_execs_total
      help: Execs per CPU
      labels:
        - {name: cpu, size: 2, decoders: [{name: uint}]}
    - name: hrtimer_wakeups_total
      help: hrtimer_wakeup expiries
    - name: cgroup_execs_total
      help: Execs in the cgroups of the id map
      labels:
        - {name: cgroup, size: 8, decoders: [{name: uint}, {name: cgroup}]}
kaddrs:
  - hrtimer_wakeup
cgroup_id_map:
  name: cgroup_ids
  type: hash
  regexps:
    - '%(pattern)s'
"""


def series(text: str, name: str) -> dict[str, float]:
    return {m.group(1): float(m.group(2)) for m in
            re.finditer(rf"^{name}(\{{.*\}})? (\S+)$", text, re.M)}


def wait_for(exp, check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while True:
        text = exp.get()[2].decode()
        if check(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.3)


@pytest.fixture
def cgroup(cgroup2_root):
    path = cgroup2_root / f"pybpf-exporter-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        yield path
    finally:
        if path.exists():
            path.rmdir()


def test_features(run_exporter, named_command, tmp_path, cgroup):
    import pybpf
    pybpf.compile(BPF, tmp_path / "features.bpf.o")
    (tmp_path / "features.yaml").write_text(CONFIG % {"pattern": re.escape(cgroup.name) + "$"})
    exp = run_exporter(tmp_path, "features")
    true_cmd = named_command("true")
    for _ in range(3):
        subprocess.run([true_cmd], check=True)
    subprocess.run(["sleep", "0.01"], check=True)

    text = wait_for(exp, lambda t: series(t, "ebpf_exporter_exec_events_total")
                    .get(f'{{comm="{true_cmd.name}"}}') == 3)
    assert series(text, "ebpf_exporter_exec_events_total")[f'{{comm="{true_cmd.name}"}}'] == 3
    lost = series(text, "ebpf_exporter_perf_event_array_lost_events_total")
    assert lost == {'{config="features",counter="exec_events_total"}': 0}
    per_cpu = series(text, "ebpf_exporter_percpu_execs_total")
    assert set(per_cpu) == {f'{{cpu="{c}"}}' for c in range(len(per_cpu))}
    assert len(per_cpu) == len(possible_cpus())      # one value per possible CPU
    assert sum(per_cpu.values()) >= 3
    assert series(text, "ebpf_exporter_hrtimer_wakeups_total")[None] >= 1   # sleep's timer

    # a cgroup made after start-up is found by the id map's next walk
    cgroup.mkdir()
    in_cgroup = ["sh", "-c", f'echo $$ > {cgroup}/cgroup.procs && exec "$0"', str(true_cmd)]
    label = f'{{cgroup="{cgroup}"}}'

    deadline = time.monotonic() + 15
    while True:
        subprocess.run(in_cgroup, check=True)
        found = series(exp.get()[2].decode(), "ebpf_exporter_cgroup_execs_total")
        if label in found or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    before = found[label]
    subprocess.run([true_cmd], check=True)              # not in the cgroup: not counted
    subprocess.run(in_cgroup, check=True)
    text = exp.get()[2].decode()
    assert series(text, "ebpf_exporter_cgroup_execs_total") == {label: before + 1}
