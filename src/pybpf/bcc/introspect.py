"""BCC's introspection class methods (symbols, probe targets, kernel features) for ``BPF``.

``class BPF(IntrospectionMixin)`` inherits these as static/class methods, as BCC's ``BPF`` has them.
"""
from __future__ import annotations

import time

from .. import features


class IntrospectionMixin:
    """BCC's ``BPF`` static methods that ask the running kernel, not a loaded program."""

    @staticmethod
    def monotonic_time() -> int:
        """CLOCK_MONOTONIC in nanoseconds (the clock of ``bpf_ktime_get_ns``)."""
        return time.monotonic_ns()

    @staticmethod
    def support_kfunc() -> bool:
        """Can fentry/fexit (kfunc) programs load on this kernel (a real load probe)?"""
        return bool(features.fentry())

    @staticmethod
    def support_lsm() -> bool:
        """Can BPF LSM programs load on this kernel (a real load probe)?"""
        return bool(features.lsm())
