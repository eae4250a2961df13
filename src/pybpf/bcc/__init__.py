"""BCC's Python API (``from bcc import BPF``) on pybpf: no libbcc, no LLVM libraries, no kernel
headers at run time.

BCC's C dialect is translated to libbpf-style C (``dialect``), compiled with clang and cached
(``build``), loaded by pybpf's ELF loader and attached through ``pybpf.links``::

    from pybpf.bcc import BPF
    b = BPF(text='int kprobe__do_nanosleep(void *ctx) { bpf_trace_printk("hi\\n"); return 0; }')
    b.trace_print()

``python3 -m pybpf.bcc SCRIPT [ARGS...]`` runs an unchanged BCC script: its ``import bcc``
resolves here (``__main__``). Importing this package runs no compiler and reads no BTF.
"""
from __future__ import annotations

from .._lazy import exports

__getattr__, __dir__ = exports(__name__, {  # each imported from its module on first use
    ".bpf": "BPF, BPFAttachType, BPFProgType, _get_num_open_probes",
    ".usdt": "USDT, USDTException",
    ".perf": "PerfType, PerfSWConfig, PerfHWConfig, PerfEventSampleFormat, Perf",
    ".utils": "ArgString, StrcmpRewrite",
    ".introspect": "TRACEFS, SymbolCache",
})

# BPF(debug=...) flags, as BCC names them
DEBUG_LLVM_IR = 0x1
DEBUG_BPF = 0x2
DEBUG_PREPROCESSOR = 0x4
DEBUG_SOURCE = 0x8
DEBUG_BPF_REGISTER_STATE = 0x10
DEBUG_BTF = 0x20

__all__ = ["BPF", "BPFAttachType", "BPFProgType", "USDT", "USDTException", "PerfType",
           "PerfSWConfig", "PerfHWConfig", "PerfEventSampleFormat", "Perf", "ArgString",
           "StrcmpRewrite", "TRACEFS", "SymbolCache", "DEBUG_LLVM_IR", "DEBUG_BPF",
           "DEBUG_PREPROCESSOR", "DEBUG_SOURCE", "DEBUG_BPF_REGISTER_STATE", "DEBUG_BTF"]
