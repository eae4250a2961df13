"""pybpf's on-disk cache: ``${XDG_CACHE_HOME:-~/.cache}/pybpf`` (best effort: a cache that
cannot be read or written is simply not used).

Plain ``os`` calls: a cached BTF index is read on every load, where importing ``pathlib`` and
``tempfile`` would cost more than the read.
"""
from __future__ import annotations

import os
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from pathlib import Path


def _dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pybpf")


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/pybpf``."""
    from pathlib import Path
    return Path(_dir())


def read(name: str) -> Optional[bytes]:
    """The cached file ``name`` (a path under the cache dir), or None."""
    try:
        with open(os.path.join(_dir(), name), "rb") as f:
            return f.read()
    except OSError:
        return None


def write(name: str, data: bytes) -> None:
    """Store ``data`` as ``name`` atomically (a reader never sees half a file); errors ignored."""
    import tempfile

    path = os.path.join(_dir(), name)
    tmp = None
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
