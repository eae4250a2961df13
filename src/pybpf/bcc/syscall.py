"""BCC's ``bcc.syscall``: system call numbers of this machine and their names.

The table comes from ``ausyscall --dump`` when the audit tools are installed (as BCC reads
it), else from the kernel's UAPI header that lists this architecture's numbers
(``asm/unistd_64.h`` and the like, under /usr/include); the kernel tells the number of a
running call (the ``__syscall_nr`` field of its tracepoints), and tests check the two agree.
``syscalls`` is filled on first use.
"""
from __future__ import annotations

import functools
import os
import platform
import re
import shutil
import subprocess

_HEADERS = {
    "x86_64": ("asm/unistd_64.h",),
    "i686": ("asm/unistd_32.h",),
}
_DEFAULT_HEADERS = ("asm/unistd.h", "asm-generic/unistd.h")
_NR = re.compile(r"^#define\s+__NR(?:3264)?_(\w+)\s+(\w+)", re.M)


def _from_header(text: str) -> dict[int, bytes]:
    values: dict[str, str] = {}
    for name, value in _NR.findall(text):
        values.setdefault(name, value)
    table: dict[int, bytes] = {}
    for name, value in values.items():
        for _ in range(3):  # an alias of another name (__NR_fcntl __NR3264_fcntl)
            if value.isdigit() or not value.startswith("__NR"):
                break
            value = values.get(value.split("_", 3)[-1], "")
        if value.isdigit() and name != "syscalls":
            table.setdefault(int(value), name.encode())
    return table


@functools.lru_cache(maxsize=None)
def syscall_table() -> dict[int, bytes]:
    """{number: name} of this machine's system calls."""
    tool = shutil.which("ausyscall")
    if tool is not None:
        out = subprocess.run([tool, "--dump"], capture_output=True)
        if out.returncode == 0:
            rows = (line.split() for line in out.stdout.splitlines()[1:])
            return {int(r[0]): r[1] for r in rows if len(r) == 2 and r[0].isdigit()}
    machine = platform.machine()
    for header in _HEADERS.get(machine, _DEFAULT_HEADERS):
        for root in (f"/usr/include/{machine}-linux-gnu", "/usr/include"):
            path = os.path.join(root, header)
            if os.path.isfile(path):
                with open(path) as f:
                    table = _from_header(f.read())
                if table:
                    return table
    return {}


def syscall_name(syscall_num: int) -> bytes:
    """The name of system call ``syscall_num`` (``b"[unknown: N]"`` when not known)."""
    return syscall_table().get(syscall_num, b"[unknown: %d]" % syscall_num)


def __getattr__(name: str) -> dict[int, bytes]:
    if name == "syscalls":  # BCC's module-level table, read on first use
        return syscall_table()
    raise AttributeError(name)
