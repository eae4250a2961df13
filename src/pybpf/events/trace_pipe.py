"""bpf_printk / bpf_trace_printk output, read from tracefs ``trace_pipe``.

Lines look like (the default trace options; ``irq-info`` adds the flags column)::

    <task>-<pid>  [<cpu>] <flags> <seconds>.<usec>: bpf_trace_printk: <message>

Reading ``trace_pipe`` consumes what is read, for every reader on the machine.
"""
from __future__ import annotations

import os
import re
import select
import time
from dataclasses import dataclass
from typing import Iterator, Optional

from ..errors import UsageError
from ..sys.host import tracefs

_LINE = re.compile(
    r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s]{4,5})\s+)?(?P<ts>\d+\.\d+):\s+(?P<func>[^:]+):\s?(?P<msg>.*)$")


@dataclass(frozen=True)
class TraceEvent:
    """One trace_pipe line: who (task, pid) on which CPU, when (seconds since boot), what."""

    task: str
    pid: int
    cpu: int
    flags: str
    timestamp: float
    function: str
    message: str

    @classmethod
    def parse(cls, line: str) -> Optional["TraceEvent"]:
        """The event of one line, or None for lines in another format."""
        m = _LINE.match(line.rstrip("\n"))
        if m is None:
            return None
        return cls(task=m["task"], pid=int(m["pid"]), cpu=int(m["cpu"]), flags=m["flags"] or "",
                   timestamp=float(m["ts"]), function=m["func"].strip(), message=m["msg"])


def trace_pipe_path() -> str:
    return os.path.join(tracefs(), "trace_pipe")


class TracePipe:
    """Events from trace_pipe: ``read(timeout)``, iteration, context manager.

    ``function`` filters lines by the trace function (``bpf_trace_printk``, the one
    bpf_printk uses); None keeps every line that parses.
    """

    def __init__(self, path: Optional[str] = None,
                 function: Optional[str] = "bpf_trace_printk") -> None:
        self.path = path or trace_pipe_path()
        self.function = function
        self._fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._buf = b""

    def fileno(self) -> int:
        if self._fd < 0:
            raise UsageError("TracePipe is closed")
        return self._fd

    def _lines(self) -> list[bytes]:
        try:
            chunk = os.read(self.fileno(), 65536)
        except BlockingIOError:
            return []
        data = self._buf + chunk
        lines = data.split(b"\n")
        self._buf = lines.pop()
        return lines

    def lines(self, timeout: Optional[float] = 0.0) -> list[str]:
        """The whole lines waiting now, as text; if none, wait up to ``timeout`` seconds (None:
        forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            lines = self._lines()
            left = None if deadline is None else deadline - time.monotonic()
            if lines or (left is not None and left <= 0):
                return [line.decode(errors="replace") for line in lines]
            # trace_pipe polls readable on new data; the 0.1 s cap also covers a missed wakeup
            select.select([self.fileno()], [], [], 0.1 if left is None else min(left, 0.1))

    def read(self, timeout: Optional[float] = 0.0) -> list[TraceEvent]:
        """The events waiting now; if none, wait up to ``timeout`` seconds (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            out = [ev for ev in map(TraceEvent.parse, self.lines(left)) if ev is not None and
                   (self.function is None or ev.function == self.function)]
            if out or (deadline is not None and time.monotonic() >= deadline):
                return out

    def __iter__(self) -> Iterator[TraceEvent]:
        while True:
            yield from self.read(None)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "TracePipe":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
