"""Socket-level programs: socket filters (SO_ATTACH_BPF) and sockmap/sockhash programs.

A socket filter runs on every packet a socket receives; returning 0 drops it, n keeps the
first n bytes. sk_skb and sk_msg programs attach to a sockmap or sockhash (BPF_PROG_ATTACH
with the map as target) and run for the sockets in it.
"""
from __future__ import annotations

import os
import socket as _socket
from typing import Optional, Union

from ..errors import UsageError
from ..object import KernelObject
from ..sys import probes
from ..sys.fd import FD
from ..sys.uapi import SO_ATTACH_BPF, SO_DETACH_BPF, AttachType, MapType, ProgType
from .attach import (AttachTypeLike, HookAttachment, ProgAttachment, attach_type_of,
                     link_create, prog_attach)
from .link import Link

SocketLike = Union[_socket.socket, int]
_SOCKMAP_TYPES = (AttachType.SK_SKB_STREAM_PARSER, AttachType.SK_SKB_STREAM_VERDICT,
                  AttachType.SK_SKB_VERDICT, AttachType.SK_MSG_VERDICT)


def _setsockopt(sock: SocketLike, option: int, name: str, value: int, of: str = "") -> None:
    """setsockopt(SOL_SOCKET, ``option``) on ``sock`` (a socket, or an fd used through a
    duplicate); an error names the option (``name``), what it sets (``of``) and the socket."""
    s = sock if isinstance(sock, _socket.socket) else _socket.socket(fileno=os.dup(sock))
    try:
        s.setsockopt(_socket.SOL_SOCKET, option, value)
    except OSError as e:
        raise OSError(e.errno, f"setsockopt({name}){of} on socket fd {s.fileno()}: "
                               f"{e.strerror}") from None
    finally:
        if s is not sock:
            s.close()


class SocketFilterAttachment(HookAttachment):
    """A socket filter (SO_ATTACH_BPF): ``close()``/``detach()`` remove the socket's filter
    (SO_DETACH_BPF), which is this program unless another replaced it. Dropping the object
    leaves the filter on the socket, which ends with it; nothing to pin."""

    _NO_PIN = ("a socket filter is held by its socket: there is no BPF link to pin",
               "keep the socket open instead")

    def __init__(self, program: FD, sock: FD, what: str) -> None:
        super().__init__(program, what)
        self._sock = sock

    def _fds(self) -> tuple[Optional[FD], ...]:
        return (self._prog, self._sock, self._netns)

    def _detach(self) -> None:
        _setsockopt(self._sock.fd, SO_DETACH_BPF, "SO_DETACH_BPF", 0, f" of {self.name}")


def attach_socket_filter(program: KernelObject, sock: SocketLike) -> SocketFilterAttachment:
    """Filter what ``sock`` (a socket or its fd) receives with the socket_filter ``program``
    (setsockopt SO_ATTACH_BPF). It replaces any filter there and lasts as long as the socket
    or until detached (the attachment, or ``detach_socket_filter``); the socket holds its
    own reference to the program."""
    have = getattr(program, "type", ProgType.SOCKET_FILTER)
    if int(have) != ProgType.SOCKET_FILTER:
        raise UsageError(f"{program.describe()} is a {ProgType(have).name.lower()} program; "
                         "SO_ATTACH_BPF takes socket_filter programs")
    _setsockopt(sock, SO_ATTACH_BPF, "SO_ATTACH_BPF", program.fd, f" of {program.describe()}")
    fileno = sock.fileno() if isinstance(sock, _socket.socket) else sock
    return SocketFilterAttachment(FD(os.dup(program.fd)), FD(os.dup(fileno)),
                                  f"{program.describe()} on socket fd {fileno}")


def detach_socket_filter(sock: SocketLike) -> None:
    """Remove the filter of ``sock`` (setsockopt SO_DETACH_BPF; ENOENT when there is none)."""
    _setsockopt(sock, SO_DETACH_BPF, "SO_DETACH_BPF", 0)


def attach_sockmap(program: KernelObject, sockmap: KernelObject, attach_type: AttachTypeLike,
                   *, link: bool = False) -> Union[ProgAttachment, Link]:
    """Attach an sk_skb (stream_parser, stream_verdict, sk_skb_verdict) or sk_msg
    (sk_msg_verdict) program to a sockmap/sockhash: BPF_PROG_ATTACH with the map as target,
    or with ``link`` a sockmap BPF link (Linux 6.10); ``close()`` detaches either."""
    at = attach_type_of(attach_type)
    if at not in _SOCKMAP_TYPES:
        raise UsageError(f"{at.name.lower()} is not a sockmap attach type; they are "
                         f"{', '.join(t.name.lower() for t in _SOCKMAP_TYPES)}")
    mtype = getattr(sockmap, "type", None)
    if mtype is not None and int(mtype) not in (MapType.SOCKMAP, MapType.SOCKHASH):
        raise UsageError(f"{sockmap.describe()} is a {MapType(mtype).name.lower()} map; "
                         f"{at.name.lower()} programs attach to sockmap or sockhash maps")
    what = f"{sockmap.describe()} ({at.name.lower()})"
    if link:
        return link_create(program, sockmap.fd, at, what, missing=probes.sockmap_link)
    return prog_attach(program, FD(os.dup(sockmap.fd)), at, what)
