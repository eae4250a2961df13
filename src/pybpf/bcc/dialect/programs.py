"""Program kinds of a BCC program's functions: ELF section, auto-attach target, and how the
function's extra parameters are read (argument registers, syscall arguments, tracepoint
records).

BCC loads every non-static function as a program. Its kind comes from how the Python side
loads it (``kind_of``), else from its name's prefix (``kprobe__vfs_read``), else from the type
of its context parameter.
"""
from __future__ import annotations

import platform
from dataclasses import dataclass
from typing import Optional

from .errors import DialectError, FallbackError


@dataclass
class Function:
    """A program of the translated text. ``params``: (C type, name), context first, as the user
    wrote them; ``auto_attach``: (kind, target) from a name prefix or ``*_PROBE`` macro;
    ``is_syscall``: its arguments are a syscall's; ``section``: its ELF section."""

    name: str
    params: list[tuple[str, str]]
    auto_attach: Optional[tuple[str, str]]
    is_syscall: bool
    section: str = ""
    line: int = 0


# name prefix -> (auto-attach kind, section prefix)
PREFIXES = (
    ("kprobe__", "kprobe", "kprobe/"),
    ("kretprobe__", "kretprobe", "kretprobe/"),
    ("tracepoint__", "tracepoint", "tracepoint/"),
    ("raw_tracepoint__", "raw_tracepoint", "raw_tracepoint/"),
    ("kfunc__", "kfunc", "fentry/"),
    ("kretfunc__", "kretfunc", "fexit/"),
    ("kmod_ret__", "kmod_ret", "fmod_ret/"),
    ("lsm__", "lsm", "lsm/"),
)
# kind_of kinds (BCC's program types, lower case) -> section
SECTIONS = {
    "kprobe": "kprobe", "kretprobe": "kretprobe", "uprobe": "uprobe", "uretprobe": "uretprobe",
    "tracepoint": "tracepoint", "raw_tracepoint": "raw_tracepoint", "socket_filter": "socket",
    "xdp": "xdp", "sched_cls": "tc", "sched_act": "action", "perf_event": "perf_event",
    "cgroup_skb": "cgroup/skb", "cgroup_sock": "cgroup/sock", "sock_ops": "sockops",
    "sk_skb": "sk_skb", "sk_msg": "sk_msg", "lwt_in": "lwt_in", "lwt_out": "lwt_out",
    "lwt_xmit": "lwt_xmit", "lwt_seg6local": "lwt_seg6local", "flow_dissector":
    "flow_dissector", "cgroup_sysctl": "cgroup/sysctl", "cgroup_device": "cgroup/dev",
    "cgroup_sock_addr": "cgroup/connect4", "sk_reuseport": "sk_reuseport",
    "kfunc": "fentry", "kretfunc": "fexit", "lsm": "lsm", "tracing": "fentry",
    "usdt": "usdt",
}
# context parameter type -> section, for functions without a prefix or kind_of
CONTEXTS = {
    "struct __sk_buff": "socket", "struct xdp_md": "xdp", "struct bpf_perf_event_data":
    "perf_event", "struct bpf_raw_tracepoint_args": "raw_tracepoint", "struct bpf_sock_ops":
    "sockops", "struct sk_msg_md": "sk_msg", "struct bpf_sock": "cgroup/sock",
    "struct bpf_sock_addr": "cgroup/connect4", "struct bpf_sysctl": "cgroup/sysctl",
}
SYSCALL_PREFIX = "syscall__"
# kernels whose syscall entry points are wrappers taking the user's struct pt_regs
_SYSCALL_WRAPPER_ARCHES = {"x86_64": "__x64_sys_", "aarch64": "__arm64_sys_",
                           "s390x": "__s390x_sys_", "riscv64": "__riscv_sys_"}
MAX_REG_ARGS = 6


def syscall_wrapper_prefix() -> Optional[str]:
    """The prefix of this machine's syscall wrapper functions (``__x64_sys_``), if any."""
    return _SYSCALL_WRAPPER_ARCHES.get(platform.machine())


@dataclass
class Kind:
    """How one function is compiled: ``args`` is how its extra parameters are read: "regs"
    (argument registers), "syscall_regs" (the user's registers behind a syscall wrapper),
    "sys_enter"/"sys_exit" (a syscall tracepoint record, the kprobe fallback), or ""."""

    section: str
    auto_attach: Optional[tuple[str, str]]
    args: str
    is_syscall: bool


def kind(name: str, ctx_type: str, kind_of: Optional[str], line: int) -> Kind:
    """The :class:`Kind` of function ``name`` whose context parameter has type ``ctx_type``."""
    auto: Optional[tuple[str, str]] = None
    section = ""
    for prefix, attach, sec in PREFIXES:
        if name.startswith(prefix) and len(name) > len(prefix):
            target = name[len(prefix):]
            if attach == "tracepoint":
                cat, sep, ev = target.partition("__")
                if not sep or not ev:
                    raise DialectError(f"function {name}: a tracepoint__ function is named "
                                       "tracepoint__<category>__<event>", line)
                target = f"{cat}:{ev}"
                sec += f"{cat}/{ev}"
            else:
                sec += target
            auto, section = (attach, target), sec
            break
    wrapper = syscall_wrapper_prefix()
    is_syscall = name.startswith(SYSCALL_PREFIX) or bool(
        auto and auto[0] in ("kprobe", "kretprobe") and wrapper
        and auto[1].startswith(wrapper))
    if kind_of:
        k, _, target = kind_of.partition(":")
        if k in ("syscall_tracepoint", "syscall_exit_tracepoint"):
            if not target:
                raise DialectError(f"kind {kind_of!r} of function {name} names no syscall")
            where = "enter" if k == "syscall_tracepoint" else "exit"
            return Kind(f"tracepoint/syscalls/sys_{where}_{target}", auto,
                        f"sys_{where}", True)
        if k not in SECTIONS:
            raise DialectError(f"function {name}: unknown program kind {k!r} (known: "
                               f"{', '.join(sorted(SECTIONS))})")
        section = SECTIONS[k] + (f"/{target.replace(':', '/')}" if target else "")
    elif not section:
        base = ctx_type.replace("const", "").replace("*", "").split()
        section = CONTEXTS.get(" ".join(base), "kprobe")
    regs = section.split("/")[0] in ("kprobe", "kretprobe", "uprobe", "uretprobe")
    args = ("syscall_regs" if is_syscall and wrapper else "regs") if regs else ""
    return Kind(section, auto, args, is_syscall)


def param_reads(kind: Kind, fname: str, ctx: str, params: list[tuple[str, str]],
                line: int) -> str:
    """C declarations (one line) giving the extra parameters their values from the context."""
    decls = []
    extra = params[1:]
    if extra and not kind.args:
        raise DialectError(f"function {fname} takes {len(params)} parameters but a "
                           f"{kind.section.split('/')[0]} program takes only its context", line)
    if len(extra) > MAX_REG_ARGS:
        raise DialectError(f"function {fname}: at most {MAX_REG_ARGS} parameters after the "
                           "context can be read from argument registers", line)
    for i, (ctype, pname) in enumerate(extra, 1):
        if kind.args == "regs":
            value = f"PT_REGS_PARM{i}({ctx})"
        elif kind.args == "syscall_regs":
            reg = "__PT_REGS_SYSCALL_PARM4" if i == 4 else f"PT_REGS_PARM{i}"
            value = f"__PYBPF_KREAD({reg}(__PYBPF_SYSCALL_REGS({ctx})))"
        elif kind.args == "sys_enter":
            value = f"((struct trace_event_raw_sys_enter *){ctx})->args[{i - 1}]"
        else:
            raise FallbackError(f"function {fname}: a syscall return probe reads no arguments "
                               f"(parameter {pname!r}): this kernel has no kprobes, so it "
                               "runs on the syscall's exit tracepoint, which records only the "
                               "return value", line)
        decls.append(f"{ctype} {pname} = ({ctype})({value});")
    return " ".join(decls)
