"""BTF-typed tracing: tp_btf, fentry, fexit, fmod_ret, LSM, iterator and freplace programs.

Such a program names its hook when it is loaded: ``expected_attach_type`` plus the BTF id of
the hook (a typedef ``btf_trace_<tp>``, a kernel function, ``bpf_lsm_<hook>``,
``bpf_iter_<target>``) in vmlinux or a module (whose BTF object fd goes along), or for
freplace a global function of a loaded program. ``HOOKS`` and ``lookup_target`` are the one
place hooks are resolved; the ELF loader uses them for SEC("fentry/...") etc. Attaching
then needs no target: BPF_LINK_CREATE, or RAW_TRACEPOINT_OPEN with no name on kernels whose
LINK_CREATE does not know tracing programs (before 5.13), as libbpf falls back.
"""
from __future__ import annotations

import errno as _errno
from dataclasses import dataclass
from typing import Any, Optional, Union

from ..btf import BTF, Spec
from ..btf import types as T
from ..btf.probes import iter_target
from ..errors import BPFError, BTFError, UnsupportedFeatureError, UsageError
from ..programs import Program
from ..sys import commands, objects, probes
from ..sys.fd import FD
from ..sys.uapi import AttachType, ProgFlag, ProgType
from .link import Link


@dataclass(frozen=True)
class Hook:
    """How a kind of BTF-typed program finds its hook: program and attach type, and the BTF
    type named ``prefix + name`` of ``btf_kind``."""

    prog_type: ProgType
    attach_type: AttachType
    prefix: str
    btf_kind: type


HOOKS: dict[str, Hook] = {
    "tp_btf": Hook(ProgType.TRACING, AttachType.TRACE_RAW_TP, "btf_trace_", T.Typedef),
    "fentry": Hook(ProgType.TRACING, AttachType.TRACE_FENTRY, "", T.Func),
    "fexit": Hook(ProgType.TRACING, AttachType.TRACE_FEXIT, "", T.Func),
    "fmod_ret": Hook(ProgType.TRACING, AttachType.MODIFY_RETURN, "", T.Func),
    "lsm": Hook(ProgType.LSM, AttachType.LSM_MAC, "bpf_lsm_", T.Func),
    "lsm_cgroup": Hook(ProgType.LSM, AttachType.LSM_CGROUP, "bpf_lsm_", T.Func),
    "iter": Hook(ProgType.TRACING, AttachType.TRACE_ITER, "bpf_iter_", T.Func),
}

_SUPPORT = {"fentry": probes.fentry, "fexit": probes.fentry, "fmod_ret": probes.fentry,
            "lsm": probes.lsm}


@dataclass(frozen=True)
class BtfTarget:
    """A resolved hook: ``btf_id`` in vmlinux's BTF, or in ``module``'s split BTF."""

    kind: str
    name: str
    btf_id: int
    module: str = ""

    @property
    def hook(self) -> Hook:
        return HOOKS[self.kind]


def lookup_target(kind: str, name: str, module: Optional[str] = None) -> Optional[BtfTarget]:
    """The BTF id of hook ``name`` for programs of ``kind`` (a key of ``HOOKS``): in vmlinux,
    then in each module with BTF (or only in ``module``); None when no BTF has it."""
    try:
        hook = HOOKS[kind]
    except KeyError:
        raise UsageError(f"unknown BTF hook kind {kind!r}; known: {', '.join(HOOKS)}") from None
    found = Spec.find_kernel(hook.prefix + name, hook.btf_kind, module)
    if found is None:
        return None
    place, t = found
    return BtfTarget(kind, name, t.id, place)


def find_target(kind: str, name: str, module: Optional[str] = None) -> BtfTarget:
    """``lookup_target``, with a UsageError saying where it looked when no BTF has the hook."""
    found = lookup_target(kind, name, module)
    if found is not None:
        return found
    hook = HOOKS[kind]
    type_name = hook.prefix + name
    where = f"module {module}" if module else "vmlinux or any module"
    raise UsageError(f"{kind} {name}: no {hook.btf_kind.__name__.lower()} {type_name} in the "
                     f"BTF of {where}" + _alternative(kind))


def _alternative(kind: str) -> str:
    if kind == "tp_btf":
        return " (tracepoint names: ls /sys/kernel/tracing/events/*/)"
    if kind == "lsm":
        return " (LSM hooks are the bpf_lsm_* functions)"
    return ""


def module_btf(module: str) -> BTF:
    """The kernel's BTF object of ``module`` (programs attaching into a module pass its fd)."""
    for btf_id, fd in objects.open_all("btf"):
        btf = BTF(fd, f"btf id {btf_id}")
        info = btf.info()
        if info.kernel_btf and info.name == module:
            return btf
        btf.close()
    raise UsageError(f"no BTF object for kernel module {module!r} (is it loaded?)")


def load(kind: str, target: str, insns: Any, *, module: Optional[str] = None,
         sleepable: bool = False, **load_kw: Any) -> Program:
    """Load a ``kind`` program (tp_btf, fentry, fexit, fmod_ret, lsm, iter) for hook
    ``target``; ``load_kw`` go to ``Program.load`` (name, license, btf, log_level ...).

    A kernel that refuses the kind raises UnsupportedFeatureError saying why and what to use.
    """
    support = _SUPPORT.get(kind, lambda: probes.Support(True))()
    if support:
        t = find_target(kind, target, module)
        if kind == "iter" and not t.module:  # each iterator target is allowed on its own
            support = iter_target(target)
    if not support:
        raise UnsupportedFeatureError(f"{kind} program for {target}: {support.reason}")
    btf = module_btf(t.module) if t.module else None
    try:
        return Program.load(t.hook.prog_type, insns, expected_attach_type=t.hook.attach_type,
                            attach_btf_id=t.btf_id, attach_btf_obj_fd=btf.fd if btf else 0,
                            flags=load_kw.pop("flags", 0) | (ProgFlag.SLEEPABLE if sleepable else 0),
                            **load_kw)
    finally:
        if btf is not None:
            btf.close()


def load_freplace(target: Program, function: str, insns: Any, **load_kw: Any) -> Program:
    """Load a freplace (BPF_PROG_TYPE_EXT) program replacing global function ``function`` of
    loaded program ``target`` (which must have BTF); ``load_kw`` must carry the program's own
    ``btf`` and ``func_info`` with a prototype matching the function's."""
    support = probes.freplace()
    if not support:
        raise UnsupportedFeatureError(f"freplace of {function} in {target.describe()}: "
                                      f"{support.reason}")
    return Program.load(ProgType.EXT, insns, attach_prog_fd=target.fd,
                        attach_btf_id=function_btf_id(target, function), **load_kw)


def function_btf_id(program: Program, function: str) -> int:
    """The BTF id of function ``function`` in ``program``'s BTF."""
    btf_id = program.info().btf_id
    if not btf_id:
        raise UsageError(f"{program.describe()} has no BTF: freplace needs a target loaded "
                         "with BTF and func_info")
    with BTF.from_id(btf_id) as btf:
        spec = btf.spec()
    try:
        return spec.find(function, T.Func).id
    except BTFError:
        raise UsageError(f"{program.describe()} has no function {function!r} in its BTF") from None


def attach(program: Program, attach_type: Union[AttachType, int, None] = None, *,
           cookie: int = 0, target: Optional[Program] = None, target_btf_id: int = 0) -> Link:
    """Attach a loaded tp_btf/fentry/fexit/fmod_ret/LSM/freplace program to the hook it was
    loaded for (BPF_LINK_CREATE; RAW_TRACEPOINT_OPEN on kernels before 5.13).

    ``attach_type`` defaults to the program's ``expected_attach_type``; a freplace program
    may be attached to another ``target`` program's function ``target_btf_id``.
    """
    if attach_type is None:
        attach_type = program.expected_attach_type
    if attach_type is None and program.type == ProgType.EXT:
        attach_type = AttachType(0)
    if attach_type is None:
        raise UsageError(f"{program.describe()}: say its attach type (the kernel does not report "
                         "the one it was loaded with)")
    what = f"{program.describe()} ({_kind_name(program, attach_type)})"
    ret = commands.link_create(prog_fd=program.fd, target_fd=target.fd if target else 0,
                               attach_type=attach_type, target={
                                   "tracing": {"target_btf_id": target_btf_id, "cookie": cookie}})
    if ret == -_errno.EINVAL and not (cookie or target or target_btf_id):
        fallback = commands.raw_tracepoint_open(name=0, prog_fd=program.fd)  # the pre-5.13 way
        if fallback >= 0:
            return Link(FD(fallback), what)
    if ret < 0:
        raise BPFError(-ret, "BPF_LINK_CREATE", what)
    return Link(FD(ret), what)


def _kind_name(program: Program, attach_type: Union[AttachType, int]) -> str:
    if program.type == ProgType.EXT:
        return "freplace"
    return next((k for k, h in HOOKS.items() if h.attach_type == attach_type),
                f"attach type {attach_type}")
