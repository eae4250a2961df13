"""``pybpf feature probe [kernel] [full]``: what the running kernel supports, from
``pybpf.features`` (every answer a real create/load), laid out as bpftool's report."""
from __future__ import annotations

from typing import Any, Optional

from .common import Args, CLIError, Options, dispatch, emit, help_command

USAGE = """Usage: pybpf feature probe [kernel] [full]
       pybpf feature help
"""

_SYSCTLS: list[tuple[str, dict[int, str], str]] = [
    ("unprivileged_bpf_disabled", {
        0: "bpf() syscall for unprivileged users is enabled",
        1: "bpf() syscall restricted to privileged users (without recovery)",
        2: "bpf() syscall restricted to privileged users (admin can change)",
        -1: "Unable to retrieve required privileges for bpf() syscall"},
     "bpf() syscall restriction has unknown value {}"),
    ("bpf_jit_enable", {
        0: "JIT compiler is disabled", 1: "JIT compiler is enabled",
        2: "JIT compiler is enabled with debugging traces in kernel logs",
        -1: "Unable to retrieve JIT-compiler status"},
     "JIT-compiler status has unknown value {}"),
    ("bpf_jit_harden", {
        0: "JIT compiler hardening is disabled",
        1: "JIT compiler hardening is enabled for unprivileged users",
        2: "JIT compiler hardening is enabled for all users",
        -1: "Unable to retrieve JIT hardening status"},
     "JIT hardening status has unknown value {}"),
    ("bpf_jit_kallsyms", {
        0: "JIT compiler kallsyms exports are disabled",
        1: "JIT compiler kallsyms exports are enabled for root",
        -1: "Unable to retrieve JIT kallsyms export status"},
     "JIT kallsyms exports status has unknown value {}"),
]

_CONFIG = ("CONFIG_BPF", "CONFIG_BPF_SYSCALL", "CONFIG_HAVE_EBPF_JIT", "CONFIG_BPF_JIT",
           "CONFIG_BPF_JIT_ALWAYS_ON", "CONFIG_DEBUG_INFO_BTF", "CONFIG_DEBUG_INFO_BTF_MODULES",
           "CONFIG_CGROUPS", "CONFIG_CGROUP_BPF", "CONFIG_CGROUP_NET_CLASSID",
           "CONFIG_SOCK_CGROUP_DATA", "CONFIG_BPF_EVENTS", "CONFIG_KPROBE_EVENTS",
           "CONFIG_UPROBE_EVENTS", "CONFIG_TRACING", "CONFIG_FTRACE_SYSCALLS",
           "CONFIG_FUNCTION_ERROR_INJECTION", "CONFIG_BPF_KPROBE_OVERRIDE", "CONFIG_NET",
           "CONFIG_XDP_SOCKETS", "CONFIG_LWTUNNEL_BPF", "CONFIG_NET_ACT_BPF",
           "CONFIG_NET_CLS_BPF", "CONFIG_NET_CLS_ACT", "CONFIG_NET_SCH_INGRESS", "CONFIG_XFRM",
           "CONFIG_IP_ROUTE_CLASSID", "CONFIG_IPV6_SEG6_BPF", "CONFIG_BPF_LIRC_MODE2",
           "CONFIG_BPF_STREAM_PARSER", "CONFIG_NETFILTER_XT_MATCH_BPF", "CONFIG_BPFILTER",
           "CONFIG_BPFILTER_UMH", "CONFIG_TEST_BPF", "CONFIG_HZ")

_SKIP_HELPERS = ("trace_printk", "trace_vprintk", "probe_write_user")
"""Helpers bpftool probes only with ``full``: they write to the kernel log when probed."""


_MISC = (("kprobes", "kprobe attachment"), ("uprobes", "uprobe attachment"),
         ("fentry", "fentry/fexit programs"), ("lsm", "BPF LSM programs"),
         ("perf_link", "BPF links for perf events"), ("kprobe_multi", "kprobe_multi links"),
         ("uprobe_multi", "uprobe_multi links"), ("xdp_link", "BPF links for XDP"),
         ("netfilter_link", "netfilter links"), ("btf_func", "BTF functions"),
         ("btf_func_global", "BTF global functions"), ("btf_datasec", "BTF variables and sections"),
         ("btf_float", "BTF floats"), ("btf_decl_tag", "BTF declaration tags"),
         ("btf_type_tag", "BTF type tags"), ("btf_enum64", "BTF 64-bit enums"))
"""pybpf's own probes (``pybpf.features``): function name, what the report calls it."""


def _sysctl(name: str) -> int:
    try:
        with open(f"/proc/sys/net/core/{name}" if name.startswith("bpf_jit")
                  else f"/proc/sys/kernel/{name}") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return -1


def _kernel_config() -> Optional[dict[str, str]]:
    """The running kernel's build options, from /boot/config-RELEASE or /proc/config.gz
    (None when neither is readable), string values unquoted as bpftool prints them."""
    from ..elf.externs import kernel_config
    from ..errors import ObjectError
    try:
        config = kernel_config(("/boot/config-{release}", "/proc/config.gz"))
    except ObjectError:
        return None
    return {name: value.strip('"') for name, value in config.items()}


def _probe_all(full: bool) -> dict[str, Any]:
    """Every probe's answer: ``{section: [(json key, ok, plain line)]}`` plus helpers."""
    from .. import features
    from ..sys.uapi import Helper, MapType, ProgType
    progs = [(t, features.prog_type(t)) for t in ProgType if t != ProgType.UNSPEC]
    maps = [(t, features.map_type(t)) for t in MapType if t != MapType.UNSPEC]
    helpers: dict[str, list[str]] = {}
    for t, ok in progs:
        if not ok or t in (ProgType.TRACING, ProgType.EXT, ProgType.STRUCT_OPS, ProgType.LSM):
            continue  # no attach target to probe helpers against
        helpers[t.name.lower()] = [f"bpf_{h.name}" for h in Helper if h.value
                                   and (full or h.name not in _SKIP_HELPERS)
                                   and features.helper(t, h)]
    misc = [(name, getattr(features, name), what) for name, what in _MISC
            if hasattr(features, name)]
    return {"progs": progs, "maps": maps, "helpers": helpers,
            "misc": [(name, probe(), what) for name, probe, what in misc]}


def do_probe(args: Args, opts: Options) -> int:
    full = False
    while len(args):
        word = args.next()
        if "kernel".startswith(word):
            continue
        if "full".startswith(word):
            full = True
        elif "dev".startswith(word) or "macros".startswith(word) or \
                "unprivileged".startswith(word):
            raise CLIError(f"'feature probe {word}' is not supported by pybpf; it probes the "
                           "running kernel as root: 'feature probe [kernel] [full]'")
        else:
            raise CLIError(f"expected no more arguments, 'kernel' or 'full', got: '{word}'?")
    config = _kernel_config()
    sysctls = {name: _sysctl(name) for name, _, _ in _SYSCTLS}
    jit_limit = _sysctl("bpf_jit_limit")
    found = _probe_all(full)
    if opts.json:
        system: dict[str, Any] = dict(sysctls, bpf_jit_limit=jit_limit)
        if config is not None:
            system.update({name: config.get(name) for name in _CONFIG})
        emit({"system_config": system,
              "syscall_config": {"have_bpf_syscall": True},
              "program_types": {f"have_{t.name.lower()}_prog_type": bool(ok)
                                for t, ok in found["progs"]},
              "map_types": {f"have_{t.name.lower()}_map_type": bool(ok)
                            for t, ok in found["maps"]},
              "helpers": {f"{t}_available_helpers": hs for t, hs in found["helpers"].items()},
              "misc": {f"have_{name}": bool(ok) for name, ok, _ in found["misc"]}}, opts)
        return 0
    lines = ["Scanning system configuration..."]
    for name, texts, unknown in _SYSCTLS:
        value = sysctls[name]
        lines.append(texts.get(value, unknown.format(value)))
    limit = "global memory limit for JIT compiler for unprivileged users"
    lines.append(f"Unable to retrieve {limit}" if jit_limit < 0
                 else f"{limit[0].upper()}{limit[1:]} is {jit_limit} bytes")
    if config is None:
        lines.append("skipping kernel config, can't open file: /proc/config.gz")
    else:
        for name in _CONFIG:
            lines.append(f"{name} is set to {config[name]}" if name in config
                         else f"{name} is not set")
    lines += ["", "Scanning system call availability...", "bpf() syscall is available", "",
              "Scanning eBPF program types..."]
    lines += [f"eBPF program_type {t.name.lower()} is {'' if ok else 'NOT '}available"
              for t, ok in found["progs"]]
    lines += ["", "Scanning eBPF map types..."]
    lines += [f"eBPF map_type {t.name.lower()} is {'' if ok else 'NOT '}available"
              for t, ok in found["maps"]]
    lines += ["", "Scanning eBPF helper functions..."]
    for t, hs in found["helpers"].items():
        lines.append(f"eBPF helpers supported for program type {t}:")
        lines += [f"\t- {h}" for h in hs]
    lines += ["", "Scanning miscellaneous eBPF features..."]
    for name, ok, what in found["misc"]:
        lines.append(f"{what} is available" if ok else
                     f"{what} is NOT available: {ok.reason}")
    opts.out.write("\n".join(lines) + "\n\n")
    return 0


COMMANDS = [("probe", do_probe), ("help", help_command(USAGE))]


def main(args: Args, opts: Options) -> int:
    return dispatch(args, opts, COMMANDS, "feature")
