"""The base of every pybpf object that owns a kernel fd (maps, programs, links, BTF)."""
from __future__ import annotations

import errno as _errno
import os
from typing import Any, ClassVar, Iterable, TypeVar

from .errors import BPFError

from .sys import objects
from .sys.fd import FD

T = TypeVar("T", bound="KernelObject")


class KernelObject:
    """Owns the fd of one kernel object.

    The fd keeps the object alive; ``close()`` drops this reference (idempotent; also done by
    the context manager and, for a forgotten object, the finalizer). A pin on bpffs is a
    reference of its own that outlives the process.
    """

    kind: ClassVar[str] = ""  # "map", "prog", "link", "btf": the bpf() object kind

    def __init__(self, fd: FD, name: str = "") -> None:
        self._fd = fd
        self.name = name

    @property
    def fd(self) -> int:
        """The file descriptor (ValueError once closed)."""
        return self._fd.fd

    def fileno(self) -> int:
        return self._fd.fd

    @property
    def closed(self) -> bool:
        return self._fd.closed

    def close(self) -> None:
        self._fd.close()

    def __enter__(self: T) -> T:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def info(self) -> Any:
        """The kernel's view of the object (BPF_OBJ_GET_INFO_BY_FD), as a dataclass."""
        raise NotImplementedError

    @property
    def id(self) -> int:
        """The object's kernel-wide id (stable while the object lives)."""
        return self.info().id

    def describe(self) -> str:
        """How errors name this object: ``map 'config'`` or ``prog id 12``."""
        return f"{self.kind} {self.name!r}" if self.name else f"{self.kind} (unnamed)"

    # -- pinning -----------------------------------------------------------------------------
    def pin(self, path: str | os.PathLike) -> None:
        """Pin at ``path`` on bpffs (BPF_OBJ_PIN): a reference that outlives this process."""
        objects.obj_pin(self.fd, os.fspath(path), self.describe())

    @staticmethod
    def unpin(path: str | os.PathLike) -> None:
        """Remove a pin (the object lives on while other references exist)."""
        os.unlink(path)

    @classmethod
    def _fd_from_pin(cls, path: str | os.PathLike, flags: int = 0) -> FD:
        return objects.obj_get(os.fspath(path), flags)

    @classmethod
    def _fd_from_id(cls, obj_id: int, flags: int = 0) -> FD:
        return objects.fd_by_id(cls.kind, obj_id, flags)

    @classmethod
    def _id_by_name(cls, name: str, infos: Iterable[Any]) -> int:
        """The id of the one object named ``name``; none or several is an error listing ids."""
        matches = [i.id for i in infos if i.name == name]
        if len(matches) != 1:
            noun = {"prog": "program"}.get(cls.kind, cls.kind)
            found = ", ".join(map(str, matches)) or "none"
            raise BPFError(_errno.EEXIST if matches else _errno.ENOENT,
                           f"BPF_{cls.kind.upper()}_GET_FD_BY_ID", f"{noun} named {name!r}",
                           f"{len(matches)} {noun}s have this name (ids: {found})",
                           "open it by id instead" if matches else "")
        return matches[0]

    @classmethod
    def ids(cls) -> list[int]:
        """Ids of all objects of this kind in the kernel, whoever owns them."""
        return list(objects.next_ids(cls.kind))

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fd={self._fd.fd}"
        return f"<{type(self).__name__} {self.name!r} {state}>"
