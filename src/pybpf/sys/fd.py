"""File descriptor ownership: every kernel object fd is closed exactly once."""
from __future__ import annotations

import os
import weakref


class FD:
    """Owns one file descriptor.

    ``close()`` is idempotent; the finalizer closes a forgotten fd; ``dup()`` gives an
    independent owner (``F_DUPFD_CLOEXEC``). Reading ``fd`` after close raises ValueError.
    """

    __slots__ = ("_fd", "_finalizer", "__weakref__")

    def __init__(self, fd: int) -> None:
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self._fd = fd
        self._finalizer = weakref.finalize(self, os.close, fd)

    @property
    def fd(self) -> int:
        if self._fd < 0:
            raise ValueError("use of a closed BPF file descriptor")
        return self._fd

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def fileno(self) -> int:
        return self.fd

    def dup(self) -> "FD":
        import fcntl
        return FD(fcntl.fcntl(self.fd, fcntl.F_DUPFD_CLOEXEC, 0))

    def release(self) -> int:
        """Give up ownership: the caller now closes the returned fd."""
        fd = self.fd
        self._finalizer.detach()
        self._fd = -1
        return fd

    def close(self) -> None:
        if self._fd >= 0:
            self._fd = -1
            self._finalizer()

    def __int__(self) -> int:
        return self.fd

    def __repr__(self) -> str:
        return f"FD({self._fd})" if self._fd >= 0 else "FD(closed)"

    def __enter__(self) -> "FD":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
