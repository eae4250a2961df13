"""Tracepoint records as C structs, from the tracepoint's ``format`` file in tracefs.

``TRACEPOINT_PROBE(sched, sched_switch)`` gives its function ``args`` of type
``struct tracepoint__sched__sched_switch *``: every field of the record at the offset the
format states (padding fills the gaps), ``__data_loc`` fields as ``int data_loc_<name>``
(offset in the low 16 bits, length in the high 16), as BCC names them.
"""
from __future__ import annotations

import os
import re

from .errors import DialectError

TRACEFS_DIRS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_FIELD = re.compile(r"^\s*field:(?P<decl>[^;]*);\s*offset:(?P<off>\d+);\s*size:(?P<size>\d+);"
                    r"(?:\s*signed:(?P<signed>\d+);)?", re.M)
_NAME = re.compile(r"(\w+)\s*((?:\[[^\]]*\])*)\s*$")
_INTS = {(1, 0): "u8", (1, 1): "s8", (2, 0): "u16", (2, 1): "s16", (4, 0): "u32",
         (4, 1): "s32", (8, 0): "u64", (8, 1): "s64"}


def format_path(category: str, event: str) -> str:
    """The ``format`` file of tracepoint ``category:event``; DialectError if absent."""
    for base in TRACEFS_DIRS:
        path = os.path.join(base, "events", category, event, "format")
        if os.path.exists(path):
            return path
    if not any(os.path.isdir(os.path.join(b, "events")) for b in TRACEFS_DIRS):
        raise DialectError(f"tracepoint {category}:{event}: tracefs is not mounted (mount -t "
                           "tracefs tracefs /sys/kernel/tracing)")
    raise DialectError(f"tracepoint {category}:{event} does not exist in this kernel (no "
                       f"events/{category}/{event} in tracefs)")


def record_struct(category: str, event: str) -> str:
    """``struct tracepoint__<category>__<event> {...};`` on one line."""
    path = format_path(category, event)
    try:
        with open(path) as f:
            text = f.read()
    except OSError as e:
        raise DialectError(f"tracepoint {category}:{event}: cannot read {path}: "
                           f"{e.strerror}") from None
    name = f"tracepoint__{category}__{event}"
    members, asserts, at, pad = [], [], 0, 0
    for m in _FIELD.finditer(text):
        decl, off, size = m.group("decl").strip(), int(m.group("off")), int(m.group("size"))
        signed = int(m.group("signed") or 0)
        if off < at:        # a union member or an overlapping field: not representable
            continue
        if off > at:
            members.append(f"char __pad_{pad}[{off - at}];")
            pad += 1
        field = _member(decl, size, signed)
        if field is None:
            members.append(f"char __pad_{pad}[{size}];")
            pad += 1
        else:
            members.append(field[0] + ";")
            asserts.append(f"_Static_assert(__builtin_offsetof(struct {name}, {field[1]}) == "
                           f"{off}, \"{category}:{event} field {field[1]}\");")
        at = off + size
    return f"struct {name} {{ {' '.join(members)} }} __attribute__((aligned(8))); " \
           + " ".join(asserts)


def _member(decl: str, size: int, signed: int) -> "tuple[str, str] | None":
    """(C member declaration, name) for a format field, typed by size where the declared type
    is not a plain C type BTF knows for sure."""
    if decl.startswith("__data_loc"):
        name = _NAME.search(decl.replace("[]", ""))
        if name is None:
            return None
        return f"int data_loc_{name.group(1)}", f"data_loc_{name.group(1)}"
    m = _NAME.search(decl)
    if m is None:
        return None
    fname, dims = m.group(1), m.group(2)
    ctype = decl[:m.start()].strip()
    if dims:
        return f"{ctype} {fname}{dims}", fname
    if "*" in ctype:
        return f"{ctype} {fname}", fname
    if (size, signed) in _INTS:
        return f"{_INTS[size, signed]} {fname}", fname
    return f"char {fname}[{size}]", fname
