"""BCC's ``bcc.exec``: a tool that traces a command it starts (``syscount --exec CMD``) forks
it held back, loads its program filtered on the child's pid, then lets it run.

``run_cmd(argv)`` forks a child that waits until ``cmd_ready()`` before exec'ing ``argv``
and returns its pid; ``cmd_exited()`` is 1 once the child has ended (a SIGCHLD handler reaps
it), else 0.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Any, Optional, Sequence

_pipe: Optional[tuple[int, int]] = None  # (read, write): the child execs once a byte arrives
_exited = 0


def _reap(signum: int, frame: Any) -> None:
    global _exited
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
    _exited = 1


def run_cmd(args: Sequence[str]) -> int:
    """Fork ``args`` held back until ``cmd_ready()``; returns the child's pid."""
    global _pipe, _exited
    _pipe = os.pipe()
    _exited = 0
    pid = os.fork()
    if pid == 0:  # the child: wait for the tracer, then become the command
        try:
            os.close(_pipe[1])
            if os.read(_pipe[0], 1):
                os.execvp(args[0], list(args))
        except OSError as e:
            print(f"failed to exec command: {' '.join(args)}: {e.strerror}", file=sys.stderr)
        os._exit(1)
    os.close(_pipe[0])
    signal.signal(signal.SIGCHLD, _reap)
    return pid


def cmd_ready() -> None:
    """Let the command started by ``run_cmd`` run."""
    global _pipe
    if _pipe is None:
        return
    try:
        os.write(_pipe[1], b"x")
    finally:
        os.close(_pipe[1])
        _pipe = None


def cmd_exited() -> int:
    """1 once the command has ended, else 0."""
    return _exited
