"""systemd's protocols the exporter speaks: socket activation and readiness notification.

Socket activation (sd_listen_fds(3)): the service manager passes listening sockets as file
descriptors 3, 4, ... and sets ``LISTEN_FDS`` (their count) and ``LISTEN_PID`` (the process
they are for; a child that inherited the environment must not take them). They are taken
once: the variables are removed and the descriptors made close-on-exec, as sd_listen_fds(1)
and go-systemd's ``activation.Files(true)`` do.

Notification (sd_notify(3)): ``READY=1``, ``STATUS=...``, ``STOPPING=1`` datagrams to the
``NOTIFY_SOCKET`` unix socket (``@name`` is the abstract namespace), for ``Type=notify``.
"""
from __future__ import annotations

import os
import socket
from typing import Optional

from .config import ConfigError

LISTEN_FDS_START = 3
_taken: Optional[list[Optional[socket.socket]]] = None


def listen_fds() -> list[Optional[socket.socket]]:
    """The sockets passed to this process, in descriptor order (None for a descriptor that is
    not a listening stream socket); [] when none were passed to this pid."""
    global _taken
    if _taken is not None:
        return _taken
    pid, count = os.environ.get("LISTEN_PID", ""), os.environ.get("LISTEN_FDS", "")
    for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
        os.environ.pop(name, None)
    _taken = []
    if not pid.isdigit() or int(pid) != os.getpid() or not count.isdigit():
        return _taken
    for fd in range(LISTEN_FDS_START, LISTEN_FDS_START + int(count)):
        try:
            os.set_inheritable(fd, False)
            sock = socket.socket(fileno=fd)
        except OSError:   # not a socket (or closed since)
            _taken.append(None)
            continue
        listening = sock.type == socket.SOCK_STREAM and \
            sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        if not listening:
            sock.detach()  # the descriptor stays as it was passed
        _taken.append(sock if listening else None)
    return _taken


def activated(index: Optional[int] = None) -> list[socket.socket]:
    """Every passed listening socket (``index`` None: ``--web.systemd-socket``), or the one at
    ``index`` (``fd://N``: descriptor 3 + N); ConfigError when there is none."""
    fds = listen_fds()
    flag = "--web.systemd-socket" if index is None else f"--web.listen-address fd://{index}"
    if not fds:
        raise ConfigError(f"{flag}: no sockets passed by systemd socket activation (no "
                          "LISTEN_FDS with a LISTEN_PID naming this process)")
    if index is None:
        socks = [s for s in fds if s is not None]
        if not socks:
            raise ConfigError(f"{flag}: none of the {len(fds)} descriptors passed is a "
                              "listening stream socket")
        return socks
    if index >= len(fds):
        raise ConfigError(f"{flag}: only {len(fds)} descriptor(s) passed (fd://0 to "
                          f"fd://{len(fds) - 1})")
    sock = fds[index]
    if sock is None:
        raise ConfigError(f"{flag}: descriptor {LISTEN_FDS_START + index} is not a listening "
                          "stream socket")
    return [sock]


def notify(state: str) -> None:
    """Send ``state`` (``READY=1``, ``STATUS=...``) to ``$NOTIFY_SOCKET``, if set; a manager
    that does not listen is not an error (sd_notify's rule)."""
    path = os.environ.get("NOTIFY_SOCKET")
    if not path or path[0] not in "/@":
        return
    address = "\0" + path[1:] if path[0] == "@" else path
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            s.sendto(state.encode(), address)
    except OSError:
        pass
