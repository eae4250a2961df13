"""The book's shape (hash ``config`` filled from Python, events through a perf or ring buffer)
as a BCC script run by ``python3 -m pybpf.bcc`` on real execve events; on a kernel without
kprobes through the syscall tracepoint fallback."""
from __future__ import annotations

import os
import re
import signal
import subprocess

import pytest

from pybpf import features
from pybpf.btf.sanitize import KernelBTF

from .conftest import EXAMPLES, RUNNER, alive, held_objects, run_as

SCRIPT = str(EXAMPLES / "exec_greeter.py")
COMPILE_S = 600  # a first compile (vmlinux.h, precompiled runtime) is slow in an emulated VM
EVENT = re.compile(r"^(\d+) (\d+) (\S+) (.*)$", re.M)


@pytest.mark.parametrize("ring", [False, True], ids=["perf", "ringbuf"])
def test_events_per_uid_and_clean_ctrl_c(ring, script_runner, caller, tracefs):
    s = script_runner(SCRIPT, *(["--ringbuf"] if ring else []))
    s.wait_line(lambda line: line.startswith("tracing execve"), timeout=COMPILE_S)
    held = held_objects(s.proc.pid)
    assert held["prog"] and held["map"] and held["link"], held
    expected = {0: "Hey root!", 501: "Hi user 501!", 65534: "Hello World"}
    got: dict[int, str] = {}
    for uid in expected:
        run_as(uid, caller)
        lines = s.wait_line(lambda line: bool(EVENT.match(line))
                            and EVENT.match(line)[3] == caller.name[:15]
                            and int(EVENT.match(line)[2]) == uid)
        pid, uid_s, comm, msg = EVENT.match(lines[-1]).groups()
        assert int(pid) > 0
        got[int(uid_s)] = msg
    assert got == expected
    s.proc.send_signal(signal.SIGINT)
    s.proc.wait(timeout=30)
    err = s.proc.stderr.read()
    assert s.proc.returncode == -signal.SIGINT, err  # as the script itself ends on Ctrl-C
    assert err.rstrip().endswith("KeyboardInterrupt")
    if not features.kprobes():
        assert err.count("this kernel has no kprobes") == 1
        assert "tracepoint syscalls/sys_enter_execve" in err
    assert alive(held) == {"prog": set(), "map": set(), "link": set()}


def test_sigterm_ends_cleanly(script_runner, tracefs):
    s = script_runner(SCRIPT)
    s.wait_line(lambda line: line.startswith("tracing execve"), timeout=COMPILE_S)
    held = held_objects(s.proc.pid)
    s.proc.send_signal(signal.SIGTERM)
    s.proc.wait(timeout=30)
    assert s.proc.returncode == -signal.SIGTERM
    assert alive(held) == {"prog": set(), "map": set(), "link": set()}


@pytest.mark.parametrize("ring", [False, True], ids=["perf", "ringbuf"])
def test_trace_shows_the_chapters_sequence(ring, tracefs):
    env = dict(os.environ, PYBPF_TRACE="1")
    res = subprocess.run([*RUNNER, SCRIPT, "--count", "1", "--run", "/bin/true",
                          *(["--ringbuf"] if ring else [])],
                         capture_output=True, text=True, timeout=COMPILE_S, env=env)
    assert res.returncode == 0, res.stderr
    calls = re.findall(r"^bpf\((BPF_\w+), (.*)\) = (-?\d+)", res.stderr, re.M)
    names = [c for c, _, _ in calls]
    creates = {re.search(r'map_name="([^"]*)"', a)[1]: a
               for c, a, _ in calls if c == "BPF_MAP_CREATE"}
    # the chapter's two maps and no other (no map for a string literal's section)
    assert names.count("BPF_MAP_CREATE") == 2 and sorted(creates) == ["config", "output"], \
        list(creates)
    out_type = "BPF_MAP_TYPE_RINGBUF" if ring else "BPF_MAP_TYPE_PERF_EVENT_ARRAY"
    assert f"map_type={out_type}" in creates["output"]
    config = creates["config"]
    assert "map_type=BPF_MAP_TYPE_HASH" in config and "key_size=4," in config
    assert "value_size=13," in config
    assert not re.search(r"btf_key_type_id=0\b", config)
    assert re.search(r"btf_fd=\d+", config) and re.search(r"btf_value_type_id=[1-9]", config)
    load = next(a for c, a, _ in calls if c == "BPF_PROG_LOAD")
    assert re.search(r"func_info_cnt=[1-9]", load) and re.search(r"line_info_cnt=[1-9]", load)
    assert 'prog_name="greet"' in load
    btf, first_create = names.index("BPF_BTF_LOAD"), names.index("BPF_MAP_CREATE")
    if KernelBTF.probe() == KernelBTF():  # no kind to rewrite: the object's BTF, loaded once
        assert names[:first_create] == ["BPF_BTF_LOAD"], names[:first_create]
    prog = names.index("BPF_PROG_LOAD")
    updates = [i for i, n in enumerate(names) if n == "BPF_MAP_UPDATE_ELEM"]
    assert btf < first_create < prog < max(updates)
    assert "BPF_LINK_CREATE" in names[prog:]
    assert names.count("BPF_PROG_LOAD") == 1  # one program, compiled and loaded once
    assert not [c for c, _, ret in calls if int(ret) < 0 and c != "BPF_BTF_LOAD"]
    assert EVENT.search(res.stdout)
