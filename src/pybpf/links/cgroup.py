"""Cgroup programs: every cgroup attach type, by BPF link or by PROG_ATTACH, and queries.

A cgroup program runs for the sockets, devices and sysctls of the processes in a cgroup v2
directory and its descendants. A link (the default) detaches when closed unless pinned;
BPF_PROG_ATTACH with ``AttachFlag.ALLOW_MULTI`` (several programs, run in order) or
``ALLOW_OVERRIDE`` (a descendant's program replaces this one) makes a ``ProgAttachment``.
"""
from __future__ import annotations

import contextlib
import errno as _errno
import os
from typing import Iterator, Optional, Union

from ..errors import BPFError, UnsupportedFeatureError, UsageError
from ..object import KernelObject
from ..sys import commands
from ..sys.fd import FD
from ..sys.hooks import CGROUP_ATTACH_TYPES
from ..sys.host import cgroup2_mount, fs_magic
from ..sys.probes import attach_type as _attach_type_support
from ..sys.uapi import AttachFlag, AttachType
from .attach import (AttachTypeLike, HookQuery, ProgAttachment, attach_type_of, link_create,
                     prog_attach, prog_query, short_name)
from .link import Link

CGROUP2_SUPER_MAGIC = 0x63677270
CgroupLike = Union[str, "os.PathLike[str]"]
_PROG_ATTACH_FLAGS = AttachFlag.ALLOW_MULTI | AttachFlag.ALLOW_OVERRIDE


@contextlib.contextmanager
def opened_cgroup(cgroup: CgroupLike) -> Iterator[FD]:
    """An fd of a cgroup v2 directory (absolute, or relative to the cgroup2 mount) for the
    block, closed after; when the kernel refuses it (EBADF: not a cgroup v2 directory), a
    UsageError says so."""
    path = os.fspath(cgroup)
    if not os.path.isabs(path):
        path = os.path.join(cgroup2_mount(), path)
    try:
        fd = FD(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    except FileNotFoundError:
        raise UsageError(f"cgroup {path} does not exist") from None
    except NotADirectoryError:
        raise UsageError(f"cgroup {path} is not a directory") from None
    try:
        with fd:
            yield fd
    except BPFError as e:
        if e.errno == _errno.EBADF and fs_magic(path) != CGROUP2_SUPER_MAGIC:
            raise UsageError(f"{path} is not a cgroup v2 directory (cgroup v1 hierarchies "
                             "take no BPF programs); the cgroup v2 mount is "
                             f"{cgroup2_mount()}") from None
        raise


def cgroup_attach_type(t: AttachTypeLike) -> AttachType:
    """A cgroup attach type from its enum, number, UAPI or bpftool name (``connect4``)."""
    at = attach_type_of(t)
    if at not in CGROUP_ATTACH_TYPES:
        raise UsageError(f"{at.name.lower()} is not a cgroup attach type; cgroup types: "
                         f"{', '.join(sorted(short_name(a) for a in CGROUP_ATTACH_TYPES))}")
    return at


def attach_cgroup(program: KernelObject, cgroup: CgroupLike, attach_type: AttachTypeLike,
                  flags: int = 0, *, link: Optional[bool] = None,
                  replace: Optional[KernelObject] = None) -> Union[Link, ProgAttachment]:
    """Run ``program`` at the cgroup hook ``attach_type`` of ``cgroup`` (a cgroup v2 path).

    With a BPF link (LINK_CREATE, target_fd = the cgroup) unless ``link`` is False or
    ``flags`` holds ALLOW_MULTI/ALLOW_OVERRIDE, which are BPF_PROG_ATTACH modes; then
    BPF_PROG_ATTACH (``replace``: the program to swap out, with ALLOW_MULTI).
    Program types that need it (cgroup_sock_addr, cgroup_sockopt ...) must have been loaded
    with ``expected_attach_type`` equal to ``attach_type``.
    """
    at = cgroup_attach_type(attach_type)
    path = os.fspath(cgroup)
    what = f"cgroup {path} ({short_name(at)})"
    use_link = link if link is not None else not (flags & _PROG_ATTACH_FLAGS)
    if use_link and flags & _PROG_ATTACH_FLAGS:
        raise UsageError(f"{what}: ALLOW_MULTI/ALLOW_OVERRIDE are BPF_PROG_ATTACH flags; "
                         "cgroup links always allow several programs (pass link=False)")
    with opened_cgroup(path) as target:
        if use_link:
            return link_create(program, target.fd, at, what, flags,
                               missing=lambda: _attach_type_support(at))
        try:
            return prog_attach(program, target.dup(), at, what, flags, replace)
        except BPFError as e:
            if e.errno == _errno.EINVAL and not _attach_type_support(at):
                raise UnsupportedFeatureError(f"BPF_PROG_ATTACH on {what}: "
                                              f"{_attach_type_support(at).reason}") from None
            raise


def detach_cgroup(cgroup: CgroupLike, attach_type: AttachTypeLike,
                  program: Optional[KernelObject] = None) -> None:
    """BPF_PROG_DETACH from a cgroup hook (``bpftool cgroup detach``): ``program``, needed
    when several are attached, or the one attached program. Links are detached by closing
    or ``Link.detach()``, not here."""
    at = cgroup_attach_type(attach_type)
    with opened_cgroup(cgroup) as target:
        commands.prog_detach(f"cgroup {os.fspath(cgroup)} ({short_name(at)})",
                             target_fd=target.fd, attach_type=at,
                             attach_bpf_fd=program.fd if program is not None else 0)


def query_cgroup(cgroup: CgroupLike, attach_type: AttachTypeLike,
                 effective: bool = False) -> HookQuery:
    """The programs at one hook of ``cgroup`` (BPF_PROG_QUERY); ``effective``: also those
    inherited from ancestors, as they run."""
    at = cgroup_attach_type(attach_type)
    with opened_cgroup(cgroup) as target:
        return prog_query(target.fd, at, f"cgroup {os.fspath(cgroup)} ({short_name(at)})",
                          effective)


def list_cgroup(cgroup: CgroupLike, effective: bool = False) -> list[HookQuery]:
    """Every hook of ``cgroup`` with programs attached (``bpftool cgroup show``), in attach
    type order; hooks this kernel lacks are skipped."""
    out = []
    with opened_cgroup(cgroup) as target:
        for at in sorted(CGROUP_ATTACH_TYPES):
            try:
                q = prog_query(target.fd, at, f"cgroup {os.fspath(cgroup)} ({short_name(at)})",
                               effective)
            except BPFError as e:
                if e.errno == _errno.EINVAL:  # attach type unknown to this kernel
                    continue
                raise
            if q.programs:
                out.append(q)
    return out
