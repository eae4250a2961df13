"""BCC's ``bcc.tcp``: TCP state and header-flag names for tools' output (``tcpstates``,
``tcpretrans``, ``tcpdrop``).

State names come from the running kernel: the ``__print_symbolic`` table of the
``sock/inet_sock_set_state`` tracepoint's format (``TCP_ESTABLISHED`` ... printed without
the ``TCP_`` prefix, as BCC prints them). The header flags are the TCP wire format's bits.
"""
from __future__ import annotations

import functools
import os
import re

TCPHDR_FIN = 0x01
TCPHDR_SYN = 0x02
TCPHDR_RST = 0x04
TCPHDR_PSH = 0x08
TCPHDR_ACK = 0x10
TCPHDR_URG = 0x20
TCPHDR_ECE = 0x40
TCPHDR_CWR = 0x80
_FLAGS = (("FIN", TCPHDR_FIN), ("SYN", TCPHDR_SYN), ("RST", TCPHDR_RST), ("PSH", TCPHDR_PSH),
          ("ACK", TCPHDR_ACK), ("URG", TCPHDR_URG), ("ECE", TCPHDR_ECE), ("CWR", TCPHDR_CWR))
_SYMBOL = re.compile(r'\{\s*(\d+)\s*,\s*"TCP_(\w+)"\s*\}')


@functools.lru_cache(maxsize=None)
def tcp_states() -> dict[int, str]:
    """{state number: name} as this kernel's inet_sock_set_state tracepoint prints them;
    {} where tracefs or the tracepoint is missing."""
    from ..links.tracing import tracefs
    from ..errors import UsageError
    try:
        path = os.path.join(tracefs(), "events", "sock", "inet_sock_set_state", "format")
        with open(path) as f:
            fmt = f.read()
    except (OSError, UsageError):
        return {}
    table = fmt[fmt.find("__print_symbolic(REC->newstate"):]
    table = table[:table.find(")")]
    return {int(n): name for n, name in _SYMBOL.findall(table)}


def state2str(state: int) -> str:
    """``ESTABLISHED``, ``LISTEN``, ... (the number itself when the kernel names none)."""
    return tcp_states().get(state, str(state))


def flags2str(flags: int) -> str:
    """TCP header flags as ``SYN|ACK``."""
    return "|".join(name for name, bit in _FLAGS if flags & bit)
