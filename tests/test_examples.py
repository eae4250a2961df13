"""The chapter's programs (examples/hello_*_config.py) on real execve events, end to end."""
from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from pybpf.maps import list_maps

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = ["hello_buffer_config.py", "hello_ring_buffer_config.py"]


def event_lines(out: str) -> list[tuple[int, int, str, str]]:
    """``pid uid command message`` lines."""
    return [(int(m[1]), int(m[2]), m[3], m[4])
            for m in re.finditer(r"^(\d+) (\d+) (\S+) (.*)$", out, re.M)]


@pytest.mark.parametrize("script", SCRIPTS)
def test_demo_prints_its_own_commands_with_per_uid_messages(script, bpffs, tracefs):
    res = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "hooked execve with a tracepoint syscalls/sys_enter_execve" in res.stderr
    assert "kprobes are not available" in res.stderr  # says why it did not use a kprobe
    events = event_lines(res.stdout)
    by_uid = {uid: msg for _, uid, _, msg in events}
    assert by_uid[0] == "Hey root!"
    assert by_uid[501] == "Hi user 501!"
    assert by_uid[2] == "Hello World"


@pytest.mark.parametrize("script", SCRIPTS)
def test_chapter_syscall_sequence_is_traced(script, bpffs, tracefs):
    env = dict(os.environ, PYBPF_TRACE="1")
    res = subprocess.run([sys.executable, str(EXAMPLES / script)], capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    calls = re.findall(r"^bpf\((BPF_\w+), (.*)\) = \d+$", res.stderr, re.M)
    names = [c for c, _ in calls]
    creates = [re.search(r'map_name="([^"]*)"', a)[1] for c, a in calls if c == "BPF_MAP_CREATE"]
    assert "output" in creates and "config" in creates
    order = [names.index("BPF_BTF_LOAD"), names.index("BPF_MAP_CREATE"),
             names.index("BPF_PROG_LOAD"), names.index("BPF_MAP_UPDATE_ELEM", names.index("BPF_PROG_LOAD")),
             names.index("BPF_LINK_CREATE")]
    assert order == sorted(order), names
    load = next(a for c, a in calls if c == "BPF_PROG_LOAD")
    assert 'license="Dual BSD/GPL"' in load and 'prog_name="hello_tp"' in load


def _config_map_ids() -> set[int]:
    return {info.id for info in list_maps() if info.name == "config"}


def _map_ids_held_by(pid: int) -> set[int]:
    ids = set()
    for fd in os.listdir(f"/proc/{pid}/fdinfo"):
        with open(f"/proc/{pid}/fdinfo/{fd}") as f:
            m = re.search(r"^map_id:\s*(\d+)", f.read(), re.M)
        if m:
            ids.add(int(m.group(1)))
    return ids


def test_bpftool_update_changes_what_uid_2_gets(bpffs, tracefs):
    """The seed's bpftool command, while the example runs, gives uid 2 the message "Hello 2"."""
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "hello_buffer_config.py"),
                             "--forever"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        assert "hooked execve" in proc.stderr.readline()
        # the chapter's handle, `name config`; by id when another tenant has a map so named
        ours = _config_map_ids() & _map_ids_held_by(proc.pid)
        assert len(ours) == 1, ours
        handle = ["name", "config"] if _config_map_ids() == ours else ["id", str(ours.pop())]
        update = subprocess.run(["bpftool", "map", "update", *handle, "key", "0x2", "0",
                                 "0", "0", "value", "hex", "48", "65", "6c", "6c", "6f", "20",
                                 "32", "0", "0", "0", "0", "0"], capture_output=True, text=True,
                                timeout=30)
        assert update.returncode == 0, f"bpftool map update: {update.stderr.strip()}"
        child = subprocess.run(["setpriv", "--reuid=2", "--regid=2", "--clear-groups",
                                "/bin/true"], timeout=30)
        assert child.returncode == 0
        lines: queue.Queue = queue.Queue()  # a thread reads: select() can't see buffered lines
        threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout],
                         daemon=True).start()
        deadline = time.monotonic() + 30
        seen = []
        while time.monotonic() < deadline:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if re.match(r"^\d+ 2 \S+ Hello 2$", line):
                break
        else:
            pytest.fail(f"no 'Hello 2' event for uid 2; got {seen[-5:]}")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
