"""What the running kernel supports, each answer from a real tiny create/load, cached.

Every probe returns a ``Support``: truthy when the feature works, with ``reason`` saying
why not (and what to use instead) when it does not. Errors elsewhere in pybpf use these
reasons to explain a refusal.

This module is the front users ask: the probes live below the objects that use them to
explain errors, in ``pybpf.sys.probes`` (the syscall layer only) and ``pybpf.btf.probes``
(the probes that need BTF). Nothing in pybpf below the front ends imports this module.
"""
from __future__ import annotations

from ._lazy import exports

__getattr__, __dir__ = exports(__name__, {  # a probe's module imported when first asked
    "..btf.probes": "btf_datasec, btf_decl_tag, btf_enum64, btf_float, btf_func, "
                   "btf_func_global, btf_type_tag, iter_target, kernel_core, map_type, prog_load",
    "..sys.probes": "Support, attach_type, fentry, freplace, helper, kprobe_multi, kprobes, lsm, "
                   "map_batch, netfilter_link, perf_link, privileged, prog_caps, prog_type, "
                   "sockmap_link, struct_ops_link, tp_btf, uprobe_multi, uprobes, xdp_link",
})

__all__ = ["Support", "privileged", "map_type", "prog_type", "helper", "kprobes", "uprobes",
           "kprobe_multi", "uprobe_multi", "prog_caps", "iter_target", "tp_btf", "prog_load",
           "fentry", "freplace", "lsm", "perf_link", "map_batch", "attach_type", "xdp_link",
           "netfilter_link", "btf_func", "btf_func_global", "btf_datasec", "btf_float",
           "btf_decl_tag", "btf_type_tag", "btf_enum64", "kernel_core", "struct_ops_link",
           "sockmap_link"]
