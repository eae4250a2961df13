"""kprobes and kretprobes (perf kprobe PMU, or tracefs ``kprobe_events`` on old kernels),
syscall probes (``ksyscall``) and kprobe_multi links (one link, many functions, by fprobe).
"""
from __future__ import annotations

import ctypes
import errno as _errno
import fnmatch
import functools
import os
import platform
from typing import Optional, Sequence, Union

from ..errors import BPFError, UnsupportedFeatureError, UsageError
from ..object import KernelObject
from ..sys import commands, probes
from ..sys.fd import FD
from ..sys.kallsyms import KALLSYMS, read as read_kallsyms
from ..sys.host import SYSCALL_PREFIXES, tracefs
from ..sys.uapi import AttachType, KprobeMultiFlag
from .link import Link, PerfEventAttachment
from .probe import LegacyProbeEvent, open_pmu_probe, pmu_type
from .tracing import attach_perf_event


def _require_kprobes(what: str) -> None:
    support = probes.kprobes()
    if not support:
        raise UnsupportedFeatureError(f"{what}: {support.reason}")


def attach_kprobe(program: KernelObject, symbol: str = "", offset: int = 0, *,
                  address: int = 0, retprobe: bool = False, cookie: int = 0,
                  legacy: Optional[bool] = None, force_ioctl: bool = False,
                  maxactive: int = 0) -> Union[Link, PerfEventAttachment]:
    """Run ``program`` (BPF_PROG_TYPE_KPROBE) when kernel function ``symbol`` is entered
    (at ``offset`` bytes into it), or returns with ``retprobe``; or at kernel ``address``.

    Uses the perf kprobe PMU (the probe lives as long as the attachment); ``legacy=True``,
    or a kernel without the PMU, writes a ``kprobe_events`` entry that is removed on close.
    ``maxactive`` (kretprobes): how many calls of the function may be pending at once before
    returns go unseen; the PMU has no such setting, so it takes a ``kprobe_events`` entry.
    """
    if bool(symbol) == bool(address):
        raise UsageError("attach_kprobe: give a kernel function name or an address, not both")
    kind = "kretprobe" if retprobe else "kprobe"
    where = f"{symbol}+{offset:#x}" if symbol else f"{address:#x}"
    what = f"{kind} {where}"
    _require_kprobes(what)
    if maxactive and not retprobe:
        raise UsageError(f"{what}: maxactive applies to kretprobes only")
    if maxactive and legacy is False:
        raise UsageError(f"{what}: maxactive={maxactive} needs a kprobe_events probe "
                         "(legacy=True): the perf kprobe PMU has no such setting")
    if legacy is None:
        legacy = maxactive > 0 or pmu_type("kprobe") is None
    if not legacy:
        try:
            pfd = open_pmu_probe("kprobe", symbol or None, offset if symbol else address,
                                 retprobe, -1, what)
        except BPFError as e:
            raise _explain_missing(e, symbol, what) from None
        return attach_perf_event(program, pfd, what, cookie, force_ioctl)
    return LegacyProbeEvent("kprobe", where, retprobe, what, maxactive).attach(
        program, -1, cookie, force_ioctl)


def _explain_missing(e: BPFError, symbol: str, what: str) -> BPFError:
    if e.errno in (_errno.ENOENT, _errno.EINVAL) and symbol:
        known = symbol in kernel_symbols()
        why = ("it is in /proc/kallsyms but cannot be probed (blacklisted, inlined or notrace)"
               if known else "no such function in /proc/kallsyms")
        return BPFError(e.errno, "perf_event_open", what, f"kprobe on {symbol!r} refused: {why}")
    return e


def attach_kretprobe(program: KernelObject, symbol: str, **kw) -> Union[Link, PerfEventAttachment]:
    """``attach_kprobe(..., retprobe=True)``: run ``program`` when ``symbol`` returns."""
    return attach_kprobe(program, symbol, retprobe=True, **kw)


@functools.lru_cache(maxsize=1)
def kernel_symbols() -> dict[str, int]:
    """Function symbols of the kernel and its modules from /proc/kallsyms: name -> address
    (0 when kptr_restrict hides addresses). The first of duplicate names wins."""
    syms: dict[str, int] = {}
    for address, kind, name in read_kallsyms():
        if kind in "tTwW":
            syms.setdefault(name, address)
    return syms


def syscall_function(name: str) -> str:
    """The kernel function behind syscall ``name`` (``execve`` -> ``__x64_sys_execve``), as
    libbpf's ksyscall resolves it: the arch-prefixed wrapper if the kernel has it."""
    syms = kernel_symbols()
    prefix = SYSCALL_PREFIXES.get(platform.machine(), "")
    for candidate in (f"{prefix}sys_{name}", f"sys_{name}"):
        if candidate in syms:
            return candidate
    raise UsageError(f"no syscall {name!r}: neither {prefix}sys_{name} nor sys_{name} is in "
                     f"{KALLSYMS}")


def attach_ksyscall(program: KernelObject, name: str, *, retprobe: bool = False,
                    cookie: int = 0) -> Union[Link, PerfEventAttachment]:
    """Run ``program`` (a kprobe program) on entry to (or return from) syscall ``name``.

    The program sees the syscall wrapper's ``struct pt_regs *``; on x86-64 the user's
    arguments are behind its first argument (libbpf's BPF_KSYSCALL macro reads them so).
    """
    what = f"k{'ret' if retprobe else ''}syscall {name}"
    _require_kprobes(what)
    return attach_kprobe(program, syscall_function(name), retprobe=retprobe, cookie=cookie)


def traceable_functions() -> list[str]:
    """Kernel functions that ftrace (and so kprobe_multi) can attach to: tracefs
    ``available_filter_functions`` without module suffixes, or kallsyms' functions when that
    file cannot be read."""
    path = os.path.join(tracefs(), "available_filter_functions")
    try:
        with open(path) as f:
            names = [line.split()[0] for line in f if line.strip()]
    except OSError:
        return list(kernel_symbols())
    return list(dict.fromkeys(n for n in names if n != "__ftrace_invalid_address__"))


def attach_kprobe_multi(program: KernelObject, pattern: str = "", *,
                        symbols: Sequence[str] = (), addresses: Sequence[int] = (),
                        cookies: Sequence[int] = (), retprobe: bool = False) -> Link:
    """One link running ``program`` on many kernel functions (BPF_TRACE_KPROBE_MULTI).

    The functions are a glob ``pattern`` over the traceable functions, or ``symbols``, or
    ``addresses``; ``cookies`` (one per function) are what ``bpf_get_attach_cookie`` returns.
    The program must be loaded with ``expected_attach_type=AttachType.TRACE_KPROBE_MULTI``.
    """
    if sum(map(bool, (pattern, symbols, addresses))) != 1:
        raise UsageError("attach_kprobe_multi: give exactly one of pattern, symbols, addresses")
    what = f"kprobe_multi {pattern or ','.join(symbols[:3]) or f'{len(addresses)} addresses'}"
    support = probes.kprobe_multi()
    if not support:
        raise UnsupportedFeatureError(f"{what}: {support.reason}")
    if pattern:
        symbols = [s for s in traceable_functions() if fnmatch.fnmatchcase(s, pattern)]
        if not symbols:
            raise UsageError(f"{what}: no traceable kernel function matches {pattern!r}")
    count = len(symbols) or len(addresses)
    if cookies and len(cookies) != count:
        raise UsageError(f"{what}: {len(cookies)} cookies for {count} functions")
    names = [ctypes.create_string_buffer(s.encode()) for s in symbols]
    syms = (ctypes.c_uint64 * count)(*(ctypes.addressof(n) for n in names)) if symbols else None
    addrs = (ctypes.c_uint64 * count)(*addresses) if addresses else None
    cooks = (ctypes.c_uint64 * count)(*cookies) if cookies else None
    ret = commands.link_create(
        prog_fd=program.fd, attach_type=AttachType.TRACE_KPROBE_MULTI, target={"kprobe_multi": {
            "flags": KprobeMultiFlag.RETURN if retprobe else 0, "cnt": count,
            "syms": ctypes.addressof(syms) if syms is not None else 0,
            "addrs": ctypes.addressof(addrs) if addrs is not None else 0,
            "cookies": ctypes.addressof(cooks) if cooks is not None else 0}})
    if ret < 0:
        err = -ret
        detail = ""
        if err in (_errno.ESRCH, _errno.ENOENT):
            detail = "a function is not in the kernel or cannot be traced (see available_filter_functions)"
        elif err == _errno.EINVAL:
            detail = ("the kernel refused the attachment: is the program a kprobe program loaded "
                      "with expected_attach_type=TRACE_KPROBE_MULTI?")
        raise BPFError(err, "BPF_LINK_CREATE", f"{program.describe()} on {what}", detail)
    return Link(FD(ret), what)
