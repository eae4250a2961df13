"""Helpers for the BCC front end's tests: running scripts through ``python3 -m pybpf.bcc``,
the kernel objects a running process holds, and a caller with a distinctive ``comm``."""
from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Iterator, Optional

import pytest

RUNNER = [sys.executable, "-m", "pybpf.bcc"]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "bcc"


class Script:
    """A script running under the runner, its stdout read line by line by a thread."""

    def __init__(self, args: list[str], env: Optional[dict] = None) -> None:
        self.proc = subprocess.Popen([*RUNNER, *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, env=env)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_line(self, pred, timeout: float = 60.0) -> list[str]:
        """Lines read until one satisfies ``pred`` (AssertionError after ``timeout``)."""
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
            if pred(line):
                return seen
        raise AssertionError(f"no expected line; got {seen!r}; stderr: {self.stderr_now()}")

    def stderr_now(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def script_runner() -> Iterator:
    started: list[Script] = []

    def start(*args: str, env: Optional[dict] = None) -> Script:
        s = Script(list(args), env)
        started.append(s)
        return s
    try:
        yield start
    finally:
        for s in started:
            s.kill()


def held_objects(pid: int) -> dict[str, set[int]]:
    """The ids of the BPF programs, maps and links process ``pid`` holds fds of."""
    held: dict[str, set[int]] = {"prog": set(), "map": set(), "link": set()}
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                info = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        for kind in held:
            if f"{kind}_id" in info:
                held[kind].add(int(info[f"{kind}_id"]))
    return held


def alive(held: dict[str, set[int]], timeout: float = 5.0) -> dict[str, set[int]]:
    """Which of ``held``'s objects still exist after up to ``timeout`` s (frees are deferred)."""
    from pybpf.sys import objects
    deadline = time.monotonic() + timeout
    while True:
        left = {kind: ids & set(objects.next_ids(kind)) for kind, ids in held.items()}
        if not any(left.values()) or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@pytest.fixture
def caller() -> Iterator[Path]:
    """A copy of /bin/sh with a unique name, runnable by any uid: its execve calls carry a
    ``comm`` no other process has."""
    d = Path(tempfile.mkdtemp(prefix="pybpf-bcc-"))
    try:
        d.chmod(0o755)
        exe = d / f"bcc{uuid.uuid4().hex[:9]}"
        shutil.copy("/bin/sh", exe)
        exe.chmod(0o755)
        yield exe
    finally:
        shutil.rmtree(d, ignore_errors=True)


def run_as(uid: int, exe: Path) -> None:
    """Run ``exe -c /bin/true`` as ``uid``: ``exe`` calls execve once."""
    cmd = [str(exe), "-c", "/bin/true; exit 0"]
    if uid:
        cmd = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", *cmd]
    subprocess.run(cmd, check=True, timeout=30)
