#!/usr/bin/env python3
"""Generate ``src/pybpf/sys/uapi.py`` and ``helper_ids.py`` from a kernel's BTF.

The enums of the bpf() UAPI (commands, map/program/attach/link types, helper
ids, flags that the kernel declares as anonymous enums) are read from
``bpftool btf dump file /sys/kernel/btf/vmlinux format c`` (or a header given
with ``--header``), so the module matches the kernel it was generated on.
Flags that the UAPI only has as ``#define`` are listed in ``DEFINES`` below,
transcribed from ``include/uapi/linux/bpf.h`` and ``perf_event.h``.

The helper ids (``Helper``, 200+ members) are a module of their own, which ``uapi`` imports
on first use of ``uapi.Helper``: building that enum is a third of the constants' import time,
and most programs never need it.

Usage: python3 tools/gen_uapi.py [--header vmlinux.h] [--out src/pybpf/sys]
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess

# (python class, C enum name or an enumerator of an anonymous enum, prefix to strip, base class)
ENUMS = [
    ("Cmd", "enum bpf_cmd", "BPF_", "IntEnum"),
    ("MapType", "enum bpf_map_type", "BPF_MAP_TYPE_", "IntEnum"),
    ("ProgType", "enum bpf_prog_type", "BPF_PROG_TYPE_", "IntEnum"),
    ("AttachType", "enum bpf_attach_type", "BPF_", "IntEnum"),
    ("LinkType", "enum bpf_link_type", "BPF_LINK_TYPE_", "IntEnum"),
    ("StatsType", "enum bpf_stats_type", "BPF_STATS_", "IntEnum"),
    ("TaskFdType", "enum bpf_task_fd_type", "BPF_FD_TYPE_", "IntEnum"),
    ("PerfEventType", "enum bpf_perf_event_type", "BPF_PERF_EVENT_", "IntEnum"),
    ("CgroupIterOrder", "enum bpf_cgroup_iter_order", "BPF_CGROUP_ITER_", "IntEnum"),
    ("XdpAction", "enum xdp_action", "XDP_", "IntEnum"),
    ("UpdateFlag", "BPF_NOEXIST", "BPF_", "IntFlag"),
    ("MapFlag", "BPF_F_NO_PREALLOC", "BPF_F_", "IntFlag"),
    ("BtfKind", "BTF_KIND_INT", "BTF_KIND_", "IntEnum"),
    ("CoreReloKind", "enum bpf_core_relo_kind", "BPF_CORE_", "IntEnum"),
    ("PerfTypeId", "enum perf_type_id", "PERF_TYPE_", "IntEnum"),
    ("PerfSwId", "enum perf_sw_ids", "PERF_COUNT_SW_", "IntEnum"),
    ("PerfHwId", "enum perf_hw_id", "PERF_COUNT_HW_", "IntEnum"),
    ("PerfSampleFormat", "enum perf_event_sample_format", "PERF_SAMPLE_", "IntFlag"),
    ("PerfEventRecordType", "enum perf_event_type", "PERF_RECORD_", "IntEnum"),
    ("PerfOutputFlag", "BPF_F_CURRENT_CPU", "BPF_F_", "IntFlag"),
    ("RingbufFlag", "BPF_RB_NO_WAKEUP", "BPF_RB_", "IntFlag"),
    ("RingbufHeader", "BPF_RINGBUF_BUSY_BIT", "BPF_RINGBUF_", "IntEnum"),
    ("SkAction", "enum sk_action", "SK_", "IntEnum"),
    ("NfProto", "NFPROTO_IPV4", "NFPROTO_", "IntEnum"),
    ("NfInetHook", "enum nf_inet_hooks", "NF_INET_", "IntEnum"),
]

# Flags the UAPI has only as #define (not in BTF): (class, base, [(name, value)]).
DEFINES = [
    ("ProgFlag", "IntFlag", [  # BPF_PROG_LOAD prog_flags
        ("STRICT_ALIGNMENT", 1 << 0), ("ANY_ALIGNMENT", 1 << 1), ("TEST_RND_HI32", 1 << 2),
        ("TEST_STATE_FREQ", 1 << 3), ("SLEEPABLE", 1 << 4), ("XDP_HAS_FRAGS", 1 << 5),
        ("XDP_DEV_BOUND_ONLY", 1 << 6), ("TEST_REG_INVARIANTS", 1 << 7), ("TOKEN_FD", 1 << 16),
    ]),
    ("AttachFlag", "IntFlag", [  # BPF_PROG_ATTACH attach_flags, BPF_LINK_CREATE flags (mprog)
        ("ALLOW_OVERRIDE", 1 << 0), ("ALLOW_MULTI", 1 << 1), ("REPLACE", 1 << 2),
        ("BEFORE", 1 << 3), ("AFTER", 1 << 4), ("ID", 1 << 5), ("LINK", 1 << 13),
    ]),
    ("QueryFlag", "IntFlag", [("EFFECTIVE", 1 << 0)]),
    ("TestRunFlag", "IntFlag", [("RUN_ON_CPU", 1 << 0), ("XDP_LIVE_FRAMES", 1 << 1),
                               ("SKB_CHECKSUM_COMPLETE", 1 << 2)]),
    ("PseudoSrc", "IntEnum", [  # src_reg of ld_imm64 and call instructions
        ("MAP_FD", 1), ("MAP_VALUE", 2), ("BTF_ID", 3), ("FUNC", 4), ("MAP_IDX", 5),
        ("MAP_IDX_VALUE", 6),
    ]),
    ("PseudoCall", "IntEnum", [("CALL", 1), ("KFUNC_CALL", 2)]),
    ("XdpFlag", "IntFlag", [("UPDATE_IF_NOEXIST", 1 << 0), ("SKB_MODE", 1 << 1),
                            ("DRV_MODE", 1 << 2), ("HW_MODE", 1 << 3), ("REPLACE", 1 << 4)]),
    ("PerfFlag", "IntFlag", [("FD_NO_GROUP", 1 << 0), ("FD_OUTPUT", 1 << 1),
                             ("PID_CGROUP", 1 << 2), ("FD_CLOEXEC", 1 << 3)]),
    ("NfVerdict", "IntEnum", [("DROP", 0), ("ACCEPT", 1)]),  # linux/netfilter.h
    ("NetfilterFlag", "IntFlag", [("IP_DEFRAG", 1 << 0)]),  # BPF_F_NETFILTER_*
    ("TcAction", "IntEnum", [  # TC_ACT_* (linux/pkt_cls.h)
        ("OK", 0), ("RECLASSIFY", 1), ("SHOT", 2), ("PIPE", 3), ("STOLEN", 4), ("QUEUE", 5),
        ("REPEAT", 6), ("REDIRECT", 7),
    ]),
    ("TcHandle", "IntEnum", [  # TC_H_* (linux/pkt_sched.h): the clsact qdisc and its parents
        ("CLSACT", 0xFFFFFFF1), ("MIN_INGRESS", 0xFFF2), ("MIN_EGRESS", 0xFFF3),
    ]),
    ("PerfIoc", "IntEnum", [  # _IO('$', n) / _IOW('$', n, __u32)
        ("ENABLE", 0x2400), ("DISABLE", 0x2401), ("REFRESH", 0x2402), ("RESET", 0x2403),
        ("SET_OUTPUT", 0x2405), ("SET_BPF", 0x40042408),
    ]),
    ("KprobeMultiFlag", "IntFlag", [("RETURN", 1 << 0)]),  # BPF_F_KPROBE_MULTI_RETURN
    ("UprobeMultiFlag", "IntFlag", [("RETURN", 1 << 0)]),  # BPF_F_UPROBE_MULTI_RETURN
]

SCALARS = [
    ("OBJ_NAME_LEN", 16, "bytes of map_name/prog_name, NUL included"),
    ("TAG_SIZE", 8, "bytes of a program tag"),
    ("INSN_SIZE", 8, "bytes of one struct bpf_insn"),
    ("LOG_BUF_MAX", (1 << 32) - 1 >> 8, "largest verifier log the kernel accepts (UINT_MAX >> 8)"),
    ("BPFFS_MAGIC", 0xCAFE4A11, "statfs f_type of a bpffs mount"),
    ("PERF_EVENT_ATTR_SIZE_VER8", 136, "sizeof(struct perf_event_attr), version 8"),
    ("SO_ATTACH_BPF", 50, "setsockopt(SOL_SOCKET) option attaching a socket filter program"),
    ("ENOTSUPP", 524, "kernel-internal errno 'not supported' that bpf() can return"),
    ("SO_DETACH_BPF", 27, "setsockopt(SOL_SOCKET) option detaching it (SO_DETACH_FILTER)"),
]

ENUM_RE = re.compile(r"^enum( \w+)? \{\n(.*?)^\};", re.S | re.M)
ITEM_RE = re.compile(r"^\t(\w+) = (-?\d+)(?:ULL)?,$", re.M)


def enums(src: str) -> list[tuple[str | None, list[tuple[str, int]]]]:
    return [(m.group(1).strip() if m.group(1) else None,
             [(n, int(v)) for n, v in ITEM_RE.findall(m.group(2))])
            for m in ENUM_RE.finditer(src)]


def find(all_enums, key: str) -> list[tuple[str, int]]:
    for name, items in all_enums:
        if key.startswith("enum ") and name == key[5:]:
            return items
        if not key.startswith("enum ") and any(n == key for n, _ in items):
            return items
    raise SystemExit(f"gen_uapi: {key} not found in the BTF dump")


def pyname(cname: str, prefix: str) -> str:
    name = cname[len(prefix):] if cname.startswith(prefix) else cname
    return "_" + name if name[0].isdigit() else name


# enums built on first use; ``Helper`` (enum bpf_func_id) imported from helper_ids on first use
LAZY_ACCESS = [
    "",
    "",
    "if not TYPE_CHECKING:",
    '    __getattr__, __dir__ = built_on_use(globals(), {"Helper": ".helper_ids"})',
]


def render(src: str) -> tuple[str, str]:
    """The text of ``uapi.py`` and of ``helper_ids.py``."""
    all_enums = enums(src)
    out = [
        '"""Kernel UAPI constants for bpf() (generated by tools/gen_uapi.py: do not edit).',
        "",
        "Enums come from the running kernel's BTF (enum bpf_cmd, bpf_map_type, ...);",
        "flags that the UAPI only #defines are transcribed in the generator. ``Helper`` lives in",
        "``helper_ids`` and is imported on first use.",
        '"""',
        "from enum import IntEnum, IntFlag",
        "from typing import TYPE_CHECKING",
        "",
        "from .fastenum import IntEnumBase, IntFlagBase, built_on_use, lazy_enum_of",
        "",
        "if TYPE_CHECKING:",
        "    from .helper_ids import Helper",
        "",
    ]
    for cls, key, prefix, base in ENUMS:
        out += ["", f"@lazy_enum_of({base})", f"class {cls}({base}Base):",
                f'    """{key} ({prefix}*)."""', ""]
        seen = set()
        # a deprecated alias must not become the canonical name of its value
        items = sorted(find(all_enums, key), key=lambda item: item[0].endswith("_DEPRECATED"))
        for cname, value in items:
            if cname.startswith("__") or not cname.startswith(prefix.rstrip("_")):
                continue
            name = pyname(cname, prefix)
            if name in seen or (base == "IntFlag" and value == 0 and cls != "UpdateFlag"):
                continue
            seen.add(name)
            out.append(f"    {name} = {value}")
    helpers = find(all_enums, "enum bpf_func_id")
    ids = ['"""The kernel\'s helper ids (generated by tools/gen_uapi.py: do not edit); imported',
           'on first use of ``pybpf.sys.uapi.Helper``."""', "from enum import IntEnum", "",
           "from .fastenum import IntEnumBase, enum_of", "", "",
           "@enum_of(IntEnum)", "class Helper(IntEnumBase):",
           '    """enum bpf_func_id: helper ids; bpf_<name> is helper <name>."""', ""]
    ids += [f"    {pyname(n, 'BPF_FUNC_')} = {v}" for n, v in helpers if not n.startswith("__")]
    for cls, base, items in DEFINES:
        out += ["", "", f"@lazy_enum_of({base})", f"class {cls}({base}Base):",
                f'    """{cls} (UAPI #defines)."""', ""]
        out += [f"    {n} = {v:#x}" if base == "IntFlag" or v > 255 else f"    {n} = {v}" for n, v in items]
    out += ["", ""]
    out += [f"{n} = {v:#x}  # {doc}" if v > 4096 else f"{n} = {v}  # {doc}" for n, v, doc in SCALARS]
    out += LAZY_ACCESS
    return "\n".join(out) + "\n", "\n".join(ids) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--header", help="a C dump of the BTF (default: bpftool on /sys/kernel/btf/vmlinux)")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "src", "pybpf", "sys"),
                    help="the directory to write uapi.py and helper_ids.py to (default: the package's)")
    args = ap.parse_args()
    if args.header:
        src = open(args.header).read()
    else:
        src = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"],
                             check=True, capture_output=True, text=True).stdout
    uapi, ids = render(src)
    for name, text in (("uapi.py", uapi), ("helper_ids.py", ids)):
        with open(os.path.join(args.out, name), "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
