"""BCC's ``bcc.containers``: restrict a tool to some containers by maps pinned on bpffs.

Tools take ``--cgroupmap PATH`` (a hash map: u64 cgroup id -> any) and/or ``--mntnsmap PATH``
(a hash map: u64 mount namespace inode -> any), filled by whoever picks the containers
(``bpftool map update pinned PATH ...``). ``filter_by_containers(args)`` returns C text
defining ``container_should_be_filtered()``: non-zero when the current task's cgroup (or
mount namespace) is not in the given map; without either option it always returns 0.

The mount namespace is read through vmlinux.h's ``struct mnt_namespace``;
``MNT_NAMESPACE_DEFINED`` is defined so that a tool's own guarded copy of the struct is
skipped, as with BCC.
"""
from __future__ import annotations

from typing import Any, Optional


def _c_string(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _cgroup_filter(path: Optional[str]) -> str:
    if not path:
        return "static inline int _cgroup_filter(void) { return 0; }\n"
    return (f'BPF_TABLE_PINNED("hash", u64, u64, cgroupset, 1024, {_c_string(path)});\n'
            "static inline int _cgroup_filter(void)\n{\n"
            "\tu64 id = bpf_get_current_cgroup_id();\n"
            "\treturn cgroupset.lookup(&id) == NULL;\n}\n")


def _mntns_filter(path: Optional[str]) -> str:
    if not path:
        return "static inline int _mntns_filter(void) { return 0; }\n"
    return ("#include <linux/nsproxy.h>\n#include <linux/mount.h>\n"
            "#include <linux/ns_common.h>\n"
            "#define MNT_NAMESPACE_DEFINED\n"
            f'BPF_TABLE_PINNED("hash", u64, u32, mount_ns_set, 1024, {_c_string(path)});\n'
            "static inline int _mntns_filter(void)\n{\n"
            "\tstruct task_struct *task = (struct task_struct *)bpf_get_current_task();\n"
            "\tstruct nsproxy *nsproxy;\n\tstruct mnt_namespace *mnt_ns;\n"
            "\tunsigned int inum;\n\tu64 ns_id;\n\n"
            "\tif (bpf_probe_read_kernel(&nsproxy, sizeof(nsproxy), &task->nsproxy) ||\n"
            "\t    bpf_probe_read_kernel(&mnt_ns, sizeof(mnt_ns), &nsproxy->mnt_ns) ||\n"
            "\t    bpf_probe_read_kernel(&inum, sizeof(inum), &mnt_ns->ns.inum))\n"
            "\t\treturn 0;\n"
            "\tns_id = inum;\n"
            "\treturn mount_ns_set.lookup(&ns_id) == NULL;\n}\n")


def filter_by_containers(args: Any) -> str:
    """C text for ``container_should_be_filtered()`` from ``args.cgroupmap`` and
    ``args.mntnsmap`` (pinned map paths, or None)."""
    return (_cgroup_filter(getattr(args, "cgroupmap", None))
            + _mntns_filter(getattr(args, "mntnsmap", None))
            + "static inline int container_should_be_filtered(void)\n{\n"
            "\treturn _cgroup_filter() || _mntns_filter();\n}\n")
