"""Why the kernel said EPERM: this process's effective capabilities and the kernel lockdown.

The kernel lets a process use ``bpf()`` with CAP_BPF (tracing programs also need CAP_PERFMON,
networking ones CAP_NET_ADMIN) or with CAP_SYS_ADMIN, which stands for all three. An EPERM
while they are held comes from elsewhere: kernel lockdown, an LSM (SELinux, AppArmor, a BPF
LSM program) or another kernel policy. ``eperm_reason`` tells the two apart, so errors never
blame privileges that are held. Reads ``/proc/self/status`` and securityfs; imports nothing of
pybpf (the error hierarchy uses it).
"""
from __future__ import annotations

from typing import Iterable, Optional

CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 12, 21, 38, 39
NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN",
         CAP_PERFMON: "CAP_PERFMON", CAP_BPF: "CAP_BPF"}
_BY_NAME = {name: cap for cap, name in NAMES.items()}

LOCKDOWN = "/sys/kernel/security/lockdown"


def effective(status: str = "/proc/self/status") -> int:
    """The effective capability set (``CapEff``) of this process (or of ``status``'s)."""
    with open(status) as f:
        return next(int(line.split()[1], 16) for line in f if line.startswith("CapEff:"))


def held(caps: int, *names: str) -> list[str]:
    """Those of ``names`` (``"CAP_BPF"``...) in the capability set ``caps``."""
    return [n for n in names if caps >> _BY_NAME[n] & 1]


def missing(needs: Iterable[str] = (), caps: Optional[int] = None) -> list[str]:
    """The capabilities lacking for a bpf() use that ``needs`` CAP_PERFMON or CAP_NET_ADMIN on
    top of CAP_BPF: empty when CAP_SYS_ADMIN, or CAP_BPF and all of ``needs``, are held."""
    caps = effective() if caps is None else caps
    if caps >> CAP_SYS_ADMIN & 1:
        return []
    return [n for n in ("CAP_BPF", *needs) if not caps >> _BY_NAME[n] & 1]


def lockdown() -> Optional[str]:
    """The kernel lockdown mode (``none``, ``integrity``, ``confidentiality``), or None when
    securityfs does not say (not mounted, or no lockdown LSM)."""
    try:
        with open(LOCKDOWN) as f:
            text = f.read()
    except OSError:
        return None
    start, end = text.find("["), text.find("]")
    return text[start + 1:end] if 0 <= start < end else None


def eperm_reason(needs: Iterable[str] = (), caps: Optional[int] = None) -> str:
    """Why an EPERM happened, for an object that ``needs`` these capabilities beyond CAP_BPF:
    the capabilities this process lacks, or, when it holds them, that the kernel refused."""
    caps = effective() if caps is None else caps
    needs = tuple(needs)
    lacking = missing(needs, caps)
    if lacking:
        have = held(caps, "CAP_BPF", "CAP_PERFMON", "CAP_NET_ADMIN")
        holds = f" (it holds {', '.join(have)})" if have else ""
        return (f"this process lacks {' and '.join(lacking)}{holds}; run as root "
                "or grant CAP_BPF (+CAP_PERFMON for tracing, CAP_NET_ADMIN for networking) or "
                "CAP_SYS_ADMIN")
    have = held(caps, "CAP_BPF", "CAP_SYS_ADMIN", *needs)
    mode = lockdown()
    state = f"; kernel lockdown is in {mode} mode" if mode and mode != "none" else ""
    return (f"refused by this kernel although {', '.join(have)} are held (lockdown, an LSM or a "
            f"kernel policy{state})")
