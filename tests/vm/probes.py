"""Each feature of the kernel table (tests/vm/kernels.py) as the pybpf.features probe that
detects it: the VM stage checks the table against them, and a ``@pytest.mark.kernel(...)``
test is skipped with the probe's reason on a kernel that lacks its feature."""
from __future__ import annotations

from typing import Callable

from pybpf import features
from pybpf.sys.uapi import AttachType, MapType, ProgType

PROBES: dict[str, Callable[[], features.Support]] = {
    "kprobe": features.kprobes,
    "kretprobe": features.kprobes,
    "kprobe_multi": features.kprobe_multi,
    "uprobe_multi": features.uprobe_multi,
    "freplace": features.freplace,
    "fentry": features.fentry,
    "fexit": features.fentry,
    "lsm": features.lsm,
    "perf_event_link": features.perf_link,
    "kernel_core": features.kernel_core,
    "struct_ops_link": features.struct_ops_link,
    "syscall_prog": lambda: features.prog_type(ProgType.SYSCALL),
    "netfilter": lambda: features.prog_type(ProgType.NETFILTER),
    "tcx": lambda: features.attach_type(AttachType.TCX_INGRESS),
    "task_storage": lambda: features.map_type(MapType.TASK_STORAGE),
    "bloom_filter": lambda: features.map_type(MapType.BLOOM_FILTER),
    "user_ringbuf": lambda: features.map_type(MapType.USER_RINGBUF),
    "arena": lambda: features.map_type(MapType.ARENA),
    "iter_bpf_map_elem": lambda: features.iter_target("bpf_map_elem"),
}
