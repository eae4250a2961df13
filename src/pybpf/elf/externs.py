"""Values of an object's externs: ``__kconfig`` from the kernel config, ``__ksym`` from
kallsyms and the kernel's BTF.

Kernel config comes from ``/proc/config.gz`` or ``/boot/config-$(uname -r)``; besides
``CONFIG_*`` options libbpf's ``LINUX_KERNEL_VERSION``, ``LINUX_HAS_BPF_COOKIE`` and
``LINUX_HAS_SYSCALL_WRAPPER`` are known. A missing value is an error unless the extern is
``__weak`` (it is then zero).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Optional

from ..btf import types as T
from ..btf.spec import Spec
from ..errors import BTFError, ObjectError
from ..sys.host import kernel_version_code
from ..sys.kallsyms import KALLSYMS, read as read_kallsyms
from .maps import VariableSpec
from .spec import ExternSpec

CONFIG_PATHS = ("/proc/config.gz", "/boot/config-{release}")
_TRISTATE = {"n": 0, "y": 1, "m": 2}


def kernel_config(paths: tuple[str, ...] = CONFIG_PATHS) -> dict[str, str]:
    """``CONFIG_*`` -> its raw value (``y``, ``m``, ``"text"``, ``42``); unset options absent."""
    import gzip  # only where a config is read

    release = os.uname().release
    for p in paths:
        path = p.format(release=release)
        try:
            opener = gzip.open if path.endswith(".gz") else open
            with opener(path, "rt", errors="replace") as f:
                text = f.read()
        except OSError:
            continue
        out = {}
        for line in text.splitlines():
            if line.startswith("CONFIG_") and "=" in line:
                k, _, v = line.partition("=")
                out[k] = v.strip()
        return out
    raise ObjectError("the kernel configuration is not readable (tried "
                      f"{', '.join(p.format(release=release) for p in paths)}): "
                      "__kconfig externs need CONFIG_IKCONFIG_PROC or /boot/config-*")


def _special(name: str) -> Optional[str]:
    if name == "LINUX_KERNEL_VERSION":
        return str(kernel_version_code())
    if name == "LINUX_HAS_BPF_COOKIE":  # libbpf's probe: may kprobe programs read a cookie?
        from ..sys.probes import helper  # the syscall layer on use: elf imports anywhere
        from ..sys.uapi import Helper, ProgType
        return "y" if helper(ProgType.KPROBE, Helper.get_attach_cookie) else "n"
    if name == "LINUX_HAS_SYSCALL_WRAPPER":
        return "y" if os.uname().machine in ("x86_64", "aarch64", "s390x") else "n"
    return None


def fill_kconfig(externs: list[ExternSpec], variables: dict[str, VariableSpec],
                 overrides: Optional[dict[str, str]] = None) -> None:
    """Write each ``__kconfig`` extern's value into its slot of the .kconfig map's data;
    ``overrides`` (CONFIG_* or libbpf's LINUX_* -> raw value) win over the running kernel's
    configuration and pybpf's probes."""
    config: Optional[dict[str, str]] = None
    unreadable: Optional[ObjectError] = None
    for ext in externs:
        raw = (overrides or {}).get(ext.name)
        if raw is None:
            raw = _special(ext.name)
        if raw is None and not ext.name.startswith("LINUX_"):
            if unreadable is None:
                try:
                    config = kernel_config() if config is None else config
                    raw = config.get(ext.name)
                except ObjectError as e:
                    unreadable = e
            if raw is None and unreadable is not None and not ext.weak:
                raise ObjectError(f"__kconfig extern {ext.name!r}: {unreadable}") from None
        var = variables[ext.name]
        if raw is None:
            if not ext.weak:
                raise ObjectError(f"__kconfig extern {ext.name!r}: not set in this kernel's "
                                  "configuration (declare it __weak to default to 0)")
            var.value = bytes(ext.size)
            continue
        var.value = _kconfig_value(ext, raw)


def _kconfig_value(ext: ExternSpec, raw: str) -> bytes:
    t = T.skip_qualifiers(ext.type) if ext.type is not None else None
    what = f"__kconfig extern {ext.name!r}"
    if isinstance(t, T.Array):
        if not raw.startswith('"'):
            raise ObjectError(f"{what} is a string but the config value is {raw!r}")
        text = raw[1:-1].encode()[:ext.size - 1]
        return text + bytes(ext.size - len(text))
    if isinstance(t, T.Enum):  # enum libbpf_tristate
        if raw not in _TRISTATE:
            raise ObjectError(f"{what} is a tristate but the config value is {raw!r}")
        value = _TRISTATE[raw]
    elif isinstance(t, T.Int) and t.encoding & T.INT_BOOL:
        if raw not in ("y", "n"):
            raise ObjectError(f"{what} is a bool but the config value is {raw!r}")
        value = raw == "y"
    elif isinstance(t, T.Int) and t.encoding & T.INT_CHAR and raw in _TRISTATE:
        value = ord(raw)
    elif isinstance(t, T.Int):
        if raw in _TRISTATE:
            value = _TRISTATE[raw]
        else:
            try:
                value = int(raw, 0)
            except ValueError:
                raise ObjectError(f"{what} is an integer but the config value is {raw!r}"
                                  ) from None
    else:
        raise ObjectError(f"{what} has a type __kconfig does not support ({t!r})")
    try:
        return int(value).to_bytes(ext.size, sys.byteorder,
                                   signed=isinstance(t, T.Int) and t.signed)
    except OverflowError:
        raise ObjectError(f"{what}: value {raw} does not fit in {ext.size} bytes") from None


def kallsyms(names: set[str], path: str = KALLSYMS) -> dict[str, int]:
    """Addresses of kernel symbols ``names`` (zero addresses: kptr_restrict hides them)."""
    out: dict[str, int] = {}
    try:
        for address, _, name in read_kallsyms(path):
            if name in names and name not in out:
                out[name] = address
    except OSError as e:
        raise ObjectError(f"cannot read {path} for __ksym addresses: {e.strerror}") from None
    if out and not any(out.values()):
        raise ObjectError(f"{path} shows zero addresses: run as root (kernel.kptr_restrict)")
    return out


@dataclass(frozen=True)
class KernelBTFId:
    """A kernel type's BTF id, and the module whose BTF holds it ('' for vmlinux)."""

    type_id: int
    module: str = ""


def kernel_btf_id(name: str, kind: type[T.Type]) -> Optional[KernelBTFId]:
    """The BTF id of kernel ``name`` of ``kind`` (T.Func, T.Var, T.Typedef) in vmlinux or,
    failing that, the first module that has one (``Spec.find_kernel``)."""
    try:
        found = Spec.find_kernel(name, kind)
    except BTFError as e:
        raise ObjectError(f"kernel BTF for {name!r}: {e}") from None
    if found is None:
        return None
    module, t = found
    return KernelBTFId(T.type_id(t), module)


def kernel_type(found: KernelBTFId) -> T.Type:
    """The kernel's type behind ``found``."""
    spec = Spec.module(found.module) if found.module else Spec.vmlinux()
    return spec.type_by_id(found.type_id)
