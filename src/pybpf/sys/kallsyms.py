"""/proc/kallsyms: the kernel's symbols (``address type name [module]`` lines). Addresses read
as 0 when kptr_restrict hides them from the reader."""
from __future__ import annotations

from typing import Iterable, Iterator

KALLSYMS = "/proc/kallsyms"


def parse(lines: Iterable[str]) -> Iterator[tuple[int, str, str]]:
    """(address, type letter, name) of each symbol line; others are skipped."""
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            yield int(parts[0], 16), parts[1], parts[2]


def read(path: str = KALLSYMS) -> Iterator[tuple[int, str, str]]:
    """(address, type letter, name) of every symbol in ``path`` (OSError if unreadable)."""
    with open(path) as f:
        yield from parse(f)
