"""BTF objects in the kernel: load raw BTF (BPF_BTF_LOAD), open by id, info, raw bytes."""
from __future__ import annotations

import ctypes
import errno as _errno
from typing import TYPE_CHECKING, Any

from .._lazy import exports
from ..errors import BPFError
from ..object import KernelObject
from ..sys import commands, objects
from ..sys.attrs import BtfInfoStruct
from ..sys.fd import FD
from .spec import Spec

if TYPE_CHECKING:
    from ..sys.info import BTFInfo


__getattr__, __dir__ = exports(__name__, {"pybpf.sys.info": "BTFInfo"})  # on first use

_LOG_START = 64 * 1024
_LOG_MAX = 16 * 1024 * 1024


class BTF(KernelObject):
    """A BTF object loaded in the kernel; maps and programs refer to it by fd."""

    kind = "btf"

    @classmethod
    def load(cls, data: bytes, name: str = "btf", log_level: int = 0) -> "BTF":
        """BPF_BTF_LOAD; on failure the error carries the kernel's BTF log."""
        buf = ctypes.create_string_buffer(data, len(data))
        log = None
        logged: dict[str, Any] = {}
        if log_level:
            log = ctypes.create_string_buffer(_LOG_START)
            logged = dict(btf_log_buf=ctypes.addressof(log), btf_log_size=_LOG_START,
                          btf_log_level=log_level)
        ret, attr = commands.btf_load(btf=ctypes.addressof(buf), btf_size=len(data), **logged)
        if ret < 0 and log is None:  # retry with a log, as libbpf does, to explain the failure
            size = _LOG_START
            while True:
                log = ctypes.create_string_buffer(size)
                ret, _ = commands.btf_load(attr, btf_log_buf=ctypes.addressof(log),
                                           btf_log_size=size, btf_log_level=1)
                if ret != -_errno.ENOSPC or size >= _LOG_MAX:
                    break
                size *= 4
        if ret < 0:
            text = log.value.decode(errors="replace").strip() if log is not None else ""
            raise BPFError(-ret, "BPF_BTF_LOAD", name,
                           hint=f"BTF log: {text.splitlines()[-1]}" if text else "")
        return cls(FD(ret), name)

    @classmethod
    def from_id(cls, btf_id: int) -> "BTF":
        fd = cls._fd_from_id(btf_id)
        return cls(fd, f"btf id {btf_id}")

    def info(self) -> BTFInfo:
        """struct bpf_btf_info; kernels before 5.11 have no name (E2BIG if asked: '' then)."""
        name = ctypes.create_string_buffer(64)
        s = BtfInfoStruct(name=ctypes.addressof(name), name_len=64)
        try:
            objects.obj_info(self.fd, s, self.describe())
        except BPFError as e:
            if e.errno != _errno.E2BIG:
                raise
            s = BtfInfoStruct()
            objects.obj_info(self.fd, s, self.describe())
        from ..sys.info import BTFInfo
        return BTFInfo(id=s.id, name=name.value.decode(errors="replace"), size=s.btf_size,
                       kernel_btf=bool(s.kernel_btf))

    def spec(self, base: "Spec | None" = None) -> Spec:
        """The kernel's copy of this BTF, parsed (``base``: vmlinux's, for a module's BTF)."""
        return Spec.parse(self.raw(), base, self.describe())

    def raw(self) -> bytes:
        """The BTF blob as the kernel holds it."""
        size = self.info().size
        buf = ctypes.create_string_buffer(size)
        objects.obj_info(self.fd, BtfInfoStruct(btf=ctypes.addressof(buf), btf_size=size),
                         self.describe())
        return buf.raw


def list_btf() -> list[BTFInfo]:
    """Info on every BTF object in the kernel (vmlinux, modules, programs')."""
    out = []
    for btf_id, fd in objects.open_all("btf"):
        with BTF(fd, f"btf id {btf_id}") as b:
            out.append(b.info())
    return out
