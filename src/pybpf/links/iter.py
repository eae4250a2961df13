"""BPF iterators: a tracing program run once per kernel object (task, map, map element,
cgroup, ...), whose ``bpf_seq_printf``/``bpf_seq_write`` output is read from a file.

Load the program with ``btf_tracing.load("iter", "task", insns)`` (hook ``bpf_iter_task``),
link it with ``attach_iter`` (BPF_LINK_CREATE, BPF_TRACE_ITER; map/cgroup/task parameters in
``union bpf_iter_link_info``), then each ``open()`` (BPF_ITER_CREATE) starts a fresh walk.
A pinned iterator link is read by ``cat`` on its pin.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno as _errno
import io
import os
from typing import Optional, Union

from ..errors import BPFError, UsageError
from ..object import KernelObject
from ..sys import commands
from ..sys.attrs import IterLinkInfo
from ..sys.fd import FD
from ..sys.uapi import AttachType, CgroupIterOrder
from .cgroup import opened_cgroup
from .link import Link


class IterLink(Link):
    """A BPF iterator link: ``open()`` starts a walk, ``read()`` returns all of it."""

    def open(self) -> io.BufferedReader:
        """A new iterator (BPF_ITER_CREATE) as a binary file; each read runs the program on
        the next objects until it returns b''."""
        fd = commands.iter_create(self.fd, self.describe())
        try:
            return io.open(fd, "rb")
        except BaseException:
            os.close(fd)
            raise

    def read(self) -> bytes:
        """The whole output of one walk."""
        with self.open() as f:
            return f.read()


def attach_iter(program: KernelObject, *, map: Optional[KernelObject] = None,
                cgroup: Union[int, str, os.PathLike, None] = None,
                order: CgroupIterOrder = CgroupIterOrder.ORDER_UNSPEC,
                tid: int = 0, pid: int = 0, pid_fd: int = 0) -> IterLink:
    """Link iterator ``program`` (loaded for ``bpf_iter_<target>``).

    ``map`` for map-element iterators (bpf_map_elem, sockmap ...); ``cgroup`` (an fd or a
    cgroup2 directory, as ``attach_cgroup`` takes it) with ``order`` for the cgroup
    iterator; ``tid``/``pid``/``pid_fd`` limit task iterators to one thread or process.
    """
    info = IterLinkInfo()
    if map is not None:
        info.map.map_fd = map.fd
    if cgroup is None and order:
        raise UsageError("attach_iter: order is for cgroup iterators (give cgroup=)")
    if tid or pid or pid_fd:
        if map is not None or cgroup is not None:
            raise UsageError("attach_iter: a task filter excludes map= and cgroup=")
        info.task.tid, info.task.pid, info.task.pid_fd = tid, pid, pid_fd
    what = f"{program.describe()} (iterator)"
    with contextlib.ExitStack() as opened:
        if cgroup is not None:  # a path as attach_cgroup takes it (relative: to the cgroup2 mount)
            info.cgroup.cgroup_fd = cgroup if isinstance(cgroup, int) else \
                opened.enter_context(opened_cgroup(cgroup)).fd
            info.cgroup.order = order
        given = bytes(info) != bytes(ctypes.sizeof(info))
        ret = commands.link_create(prog_fd=program.fd, attach_type=AttachType.TRACE_ITER, target={
            "iter": {"iter_info": ctypes.addressof(info) if given else 0,
                     "iter_info_len": ctypes.sizeof(info) if given else 0}})
        if ret < 0:
            raise BPFError(-ret, "BPF_LINK_CREATE", what, _why(-ret, map is not None))
    return IterLink(FD(ret), what)


def _why(err: int, with_map: bool) -> str:
    if err == _errno.EINVAL:
        return ("the kernel refused the iterator: is the program loaded for a bpf_iter_* target "
                "with expected_attach_type=TRACE_ITER" +
                (", and does this target take a map?" if with_map else "?"))
    if err == _errno.EBADF:
        return ("this iterator target needs map= (bpf_map_elem, sockmap ...) or cgroup=, or "
                "the map/cgroup given is not open")
    if err == _errno.E2BIG:
        return ("this kernel's iterators take no such parameter (task filters tid/pid/pid_fd "
                "and cgroup iterators need Linux 6.1)")
    if err == _errno.EACCES:
        return "the program reads more of the map's keys/values than the map holds"
    return ""
