"""bcc.exec: the command runs only after cmd_ready(), and cmd_exited() sees it end."""
from __future__ import annotations

import signal
import time

from pybpf.bcc import exec as bcc_exec


def _wait_exited(timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not bcc_exec.cmd_exited():
        assert time.monotonic() < deadline, "the command did not end"
        time.sleep(0.01)


def test_held_back_until_ready(tmp_path):
    out = tmp_path / "ran"
    old = signal.getsignal(signal.SIGCHLD)
    try:
        pid = bcc_exec.run_cmd(["sh", "-c", f"echo $$ > {out}"])
        time.sleep(0.2)
        assert not out.exists() and not bcc_exec.cmd_exited()  # waiting for cmd_ready
        bcc_exec.cmd_ready()
        _wait_exited()
        assert int(out.read_text()) == pid  # exec'd in the forked child itself
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_exec_failure_ends_the_child(capfd):
    old = signal.getsignal(signal.SIGCHLD)
    try:
        bcc_exec.run_cmd(["/nonexistent/pybpf-command"])
        bcc_exec.cmd_ready()
        _wait_exited()
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert "failed to exec command: /nonexistent/pybpf-command: No such file or directory" \
        in capfd.readouterr().err
