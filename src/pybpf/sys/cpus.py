"""CPU sets from sysfs: per-CPU map values span every *possible* CPU."""
from __future__ import annotations

import functools


def parse_cpulist(text: str) -> list[int]:
    """``0-3,5`` -> [0, 1, 2, 3, 5] (the kernel's cpulist format)."""
    cpus: list[int] = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


@functools.lru_cache(maxsize=None)
def possible_cpus() -> tuple[int, ...]:
    """CPUs that can ever be online; per-CPU maps hold one value for each."""
    with open("/sys/devices/system/cpu/possible") as f:
        return tuple(parse_cpulist(f.read()))


def online_cpus() -> list[int]:
    """CPUs online now (perf buffers open one ring per online CPU)."""
    with open("/sys/devices/system/cpu/online") as f:
        return parse_cpulist(f.read())
