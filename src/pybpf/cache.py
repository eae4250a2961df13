"""pybpf's on-disk cache: ``${XDG_CACHE_HOME:-~/.cache}/pybpf`` (best effort: a cache that
cannot be read or written is simply not used)."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Optional


def cache_dir() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/pybpf``."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pybpf"


def read(name: str) -> Optional[bytes]:
    """The cached file ``name`` (a path under the cache dir), or None."""
    try:
        return (cache_dir() / name).read_bytes()
    except OSError:
        return None


def write(name: str, data: bytes) -> None:
    """Store ``data`` as ``name`` atomically (a reader never sees half a file); errors ignored."""
    path = cache_dir() / name
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except OSError:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
