"""The translator's error."""
from __future__ import annotations

from ...errors import CompileError, UnsupportedFeatureError


class DialectError(CompileError):
    """BCC C the front end cannot translate: an unsupported dialect feature (named) or a
    malformed use of one; ``line`` is the user's line (1-based, 0 when unknown)."""

    def __init__(self, message: str, line: int = 0) -> None:
        super().__init__(f"line {line}: {message}" if line else message)
        self.line, self.reason = line, message

    def __reduce__(self) -> tuple[type, tuple[str, int]]:
        return (type(self), (self.reason, self.line))


class FallbackError(DialectError, UnsupportedFeatureError):
    """A kprobe function the syscall-tracepoint fallback cannot run as written: the kernel
    lacks kprobes (what BCC's tools report in one line, as any missing hook)."""
