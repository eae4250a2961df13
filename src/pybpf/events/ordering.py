"""Memory ordering between kernel producers and this process's loads from shared pages.

The ring buffer and perf buffer protocols need acquire loads (of the producer position and of
each record header, before the record's bytes) and a release store of the consumer position.
On x86 and s390x (total store order) every plain load is an acquire and every plain store a
release, so the readers need nothing more. Elsewhere a full fence (libatomic's
``atomic_thread_fence(memory_order_seq_cst)``) is issued between the header loads and the
data loads of a batch, and before the consumer position is stored.
"""
from __future__ import annotations

import functools
import os
from typing import Callable, Optional

from ..errors import UnsupportedFeatureError

_TSO_MACHINES = frozenset({"x86_64", "amd64", "i386", "i686", "s390x"})
_SEQ_CST = 5  # memory_order_seq_cst


@functools.lru_cache(maxsize=None)
def fence() -> Optional[Callable[[], None]]:
    """A full memory fence to call between dependent loads, or None where loads are ordered."""
    machine = os.uname().machine
    if machine in _TSO_MACHINES:
        return None
    import ctypes.util  # only where fences are needed

    name = ctypes.util.find_library("atomic")
    if name is None:
        raise UnsupportedFeatureError(
            f"reading BPF ring and perf buffers on {machine} needs memory fences, which pybpf "
            "takes from libatomic: install it (Debian: apt-get install libatomic1)")
    thread_fence = ctypes.CDLL(name).atomic_thread_fence
    thread_fence.argtypes = (ctypes.c_int,)
    thread_fence.restype = None
    return functools.partial(thread_fence, _SEQ_CST)
