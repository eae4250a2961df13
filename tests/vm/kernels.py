"""The kernels the VM runner boots and what each of them offers, as data.

``FEATURES`` is the measured table (Debian's packaged kernels under qemu):
feature -> the kernels that have it, in order of preference (newest first).
Tests that need a feature the host lacks are marked ``@pytest.mark.kernel("kprobe")``;
``python -m tests.vm --feature kprobe -- ...`` boots the first kernel that has it.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Iterable, Optional

_DEBIAN = "http://deb.debian.org/debian"
_SECURITY = "http://deb.debian.org/debian-security"


def _sources(suite: str) -> tuple[str, ...]:
    """The apt sources of a Debian suite with its updates and security fixes (main only)."""
    return (f"{_DEBIAN} {suite} main", f"{_DEBIAN} {suite}-updates main",
            f"{_SECURITY} {suite}-security main")


@dataclass(frozen=True)
class Kernel:
    """A kernel series taken from Debian: the newest package matching ``package`` in ``suite``."""

    name: str
    suite: str
    package: str  # linux-image package names: a regex both for apt-cache search (POSIX) and Python

    @property
    def sources(self) -> tuple[str, ...]:
        return _sources(self.suite)

    def matches(self, package: str) -> bool:
        return re.fullmatch(self.package, package) is not None


KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel("6.12", "bookworm", r"linux-image-6\.12\.[0-9]+\+deb12-amd64"),
    Kernel("6.1", "bookworm", r"linux-image-6\.1\.0-[0-9]+-amd64"),
    Kernel("5.10", "bullseye", r"linux-image-5\.10\.0-[0-9]+-amd64"),
)}

FEATURES: dict[str, tuple[str, ...]] = {
    "kprobe": ("6.12", "6.1", "5.10"),
    "kretprobe": ("6.12", "6.1", "5.10"),
    "kprobe_multi": ("6.12",),
    "uprobe_multi": ("6.12",),  # Linux 6.6+
    "perf_event_link": ("6.12", "6.1"),  # kprobe/tracepoint attached by BPF_LINK_CREATE
    "fentry": ("6.12", "6.1", "5.10"),
    "fexit": ("6.12", "6.1", "5.10"),
    "freplace": ("6.12", "6.1", "5.10"),
    "lsm": ("6.12", "6.1", "5.10"),
    "kernel_core": ("6.12", "6.1"),  # CO-RE relocated by BPF_PROG_LOAD: Linux 5.17+
    "struct_ops_link": ("6.12",),  # Linux 6.4+
    "tcx": ("6.12",),
    "netfilter": ("6.12",),
    "syscall_prog": ("6.12", "6.1"),
    "task_storage": ("6.12", "6.1"),
    "bloom_filter": ("6.12", "6.1"),
    "user_ringbuf": ("6.12", "6.1"),
    "arena": ("6.12",),  # Linux 6.9+
    "iter_bpf_map_elem": ("6.12", "6.1", "5.10"),
}

NOTES: dict[tuple[str, str], str] = {
    ("kprobe", "5.10"): "BPF_LINK_CREATE on the perf event: EINVAL; attach with PERF_EVENT_IOC_SET_BPF",
    ("kretprobe", "5.10"): "BPF_LINK_CREATE on the perf event: EINVAL; attach with PERF_EVENT_IOC_SET_BPF",
    ("fentry", "5.10"): "attach through BPF_RAW_TRACEPOINT_OPEN only",
    ("fexit", "5.10"): "attach through BPF_RAW_TRACEPOINT_OPEN only",
    ("lsm", "5.10"): "needs lsm=...,bpf on the kernel command line (the runner always adds it)",
}

KERNEL_ARGS = "lsm=lockdown,yama,apparmor,bpf no_timer_check"
"""Added to every kernel's command line: 5.10 enables BPF LSM only when asked; under a loaded
host's emulation the IO-APIC timer check can fail and panic 5.10 at boot (no_timer_check)."""


def kernels_with(feature: str) -> tuple[str, ...]:
    """The kernels that have ``feature``, preferred first; KeyError names the known ones."""
    try:
        return FEATURES[feature]
    except KeyError:
        raise KeyError(f"unknown kernel feature {feature!r}; known: {', '.join(sorted(FEATURES))}") from None


def pick(features: Iterable[str]) -> str:
    """The first kernel that has every one of ``features``."""
    features = list(features)
    for name in KERNELS:
        if all(name in kernels_with(f) for f in features):
            return name
    raise LookupError(f"no kernel has all of: {', '.join(features)}")


def guest_kernel() -> Optional[str]:
    """The kernel name when running inside the VM runner's guest (``PYBPF_VM``), else None."""
    return os.environ.get("PYBPF_VM") or None
