"""Fields of BCC's packet header structs (``bcc/proto.h``): where each lies in the packet.

The header's structs list each protocol header's fields in network order; a field's place
is its bit offset from the header's start and its width. Reads and writes through a packet
cursor become ``bpf_dext_pkt``/``bpf_dins_pkt`` calls on those positions
(:mod:`.probe_read`)."""
from __future__ import annotations

import functools
import os
import re

PROTO_H = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "include",
                       "bcc", "proto.h")
_STRUCT = re.compile(r"struct (\w+) \{(.*?)\} BPF_PACKET_HEADER;", re.S)
_FIELD = re.compile(r"([\w ]+?)\s+(\w+)\s*(?:\[(\d+)\])?\s*(?::\s*(\d+))?;")
_BITS = {"unsigned char": 8, "unsigned short": 16, "unsigned int": 32,
         "unsigned long long": 64}


@functools.lru_cache(maxsize=None)
def layouts() -> dict[str, dict[str, tuple[int, int]]]:
    """struct name -> field -> (bit offset in the header, width in bits)."""
    out: dict[str, dict[str, tuple[int, int]]] = {}
    with open(PROTO_H) as f:
        text = f.read()
    for name, body in _STRUCT.findall(text):
        at, fields = 0, {}
        for ctype, field, count, bits in _FIELD.findall(body):
            width = int(bits) if bits else _BITS[ctype.strip()] * int(count or 1)
            fields[field] = (at, width)
            at += width
        out[name] = fields
    return out


def position(struct: str, field: str) -> tuple[int, int, int]:
    """(byte offset, bit offset in that byte, width) of ``struct.field``."""
    bit, width = layouts()[struct][field]
    return bit // 8, bit % 8, width
