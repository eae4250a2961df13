"""XDP programs (pybpf.asm, no compiler) that emit one event per run, for exact event counts.

``Program.test_run(packet, repeat=N)`` runs them N times. Each run takes a sequence number
from ``stats[0].produced`` (atomic fetch-add) and emits a ``size``-byte record whose first
8 bytes are that number (the rest zero, or ``fill`` bytes). Failures (ring full) are counted
in ``stats[0].failed``, discards in ``stats[0].discarded``: the program's own account, to be
matched exactly by what the reader receives and reports lost.
"""
from __future__ import annotations

import ctypes
import os
from contextlib import contextmanager
from typing import Iterator

from pybpf.asm import (DW, FP, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, W, B, assemble,
                       atomic_add, call, exit_, jeq_imm, jne_imm, label, ld_map_fd, mod64_imm,
                       mov32_imm, mov64_imm, mov64_reg, add64_imm, st, stx, ja)
from pybpf.maps import Map
from pybpf.programs import Program

PACKET = bytes(64)  # XDP test_run needs at least an Ethernet header
XDP_PASS = 2


class Stats(ctypes.Structure):
    _fields_ = [("produced", ctypes.c_uint64), ("failed", ctypes.c_uint64),
                ("discarded", ctypes.c_uint64)]


def _fill(base: int, reg: int, size: int, fill: bytes) -> list:
    """Stores writing bytes 8..size of the record at ``reg + base``: ``fill`` repeated, or 0."""
    pattern = (fill * size)[:size] if fill else bytes(size)
    out = []
    off = 8
    while off < size:
        for width, sz in ((8, DW), (4, W), (1, B)):
            if size - off >= width:
                chunk = int.from_bytes(pattern[off:off + width], "little", signed=True)
                if width == 8 and not -2**31 <= chunk < 2**31:
                    width, sz = 4, W
                    chunk = int.from_bytes(pattern[off:off + 4], "little", signed=True)
                out.append(st(sz, reg, base + off, chunk))
                off += width
                break
    return out


def producer(kind: str, target: Map, stats: Map, size: int, *, discard_every: int = 0,
             fill: bytes = b"") -> bytes:
    """Instructions of an XDP program emitting one ``size``-byte record per run.

    ``kind``: "output" (bpf_ringbuf_output), "reserve" (bpf_ringbuf_reserve + submit, or
    discard every ``discard_every``-th record), "perf" (bpf_perf_event_output, current CPU).
    """
    assert size >= 8
    rec = -(8 + ((size + 7) & ~7))  # the record on the stack, below the stats key
    code = [
        mov64_reg(R6, R1),
        st(W, FP, -4, 0),
        ld_map_fd(R1, stats.fd), mov64_reg(R2, FP), add64_imm(R2, -4),
        call("map_lookup_elem"),
        jeq_imm(R0, 0, "out"),
        mov64_reg(R7, R0),
        mov64_imm(R8, 1),
        atomic_add(DW, R7, R8, 0, fetch=True),  # r8 = sequence number
    ]
    if kind in ("output", "perf"):
        code += [stx(DW, FP, R8, rec), *_fill(rec, FP, size, fill)]
        if kind == "output":
            code += [ld_map_fd(R1, target.fd), mov64_reg(R2, FP), add64_imm(R2, rec),
                     mov64_imm(R3, size), mov64_imm(R4, 0), call("ringbuf_output")]
        else:
            code += [mov64_reg(R1, R6), ld_map_fd(R2, target.fd), mov32_imm(R3, -1),
                     mov64_reg(R4, FP), add64_imm(R4, rec), mov64_imm(R5, size),
                     call("perf_event_output")]
        code += [jeq_imm(R0, 0, "out")]
    elif kind == "reserve":
        code += [ld_map_fd(R1, target.fd), mov64_imm(R2, size), mov64_imm(R3, 0),
                 call("ringbuf_reserve"),
                 jne_imm(R0, 0, "got"),
                 ja("failed"),
                 label("got"),
                 mov64_reg(R9, R0),
                 stx(DW, R9, R8, 0), *_fill(0, R9, size, fill)]
        if discard_every:
            code += [mov64_reg(R1, R8), mod64_imm(R1, discard_every), jne_imm(R1, 0, "submit"),
                     mov64_imm(R1, 1), atomic_add(DW, R7, R1, 16),
                     mov64_reg(R1, R9), mov64_imm(R2, 0), call("ringbuf_discard"), ja("out")]
        code += [label("submit"), mov64_reg(R1, R9), mov64_imm(R2, 0), call("ringbuf_submit"),
                 ja("out")]
    else:
        raise ValueError(kind)
    code += [label("failed"), mov64_imm(R1, 1), atomic_add(DW, R7, R1, 8),
             label("out"), mov64_imm(R0, XDP_PASS), exit_()]
    return assemble(code)


@contextmanager
def emitter(kind: str, target: Map, size: int, **kw) -> Iterator[tuple[Program, Map]]:
    """A loaded producer and its stats map (closed afterwards)."""
    with Map.create("array", 4, ctypes.sizeof(Stats), 1, name="ev_stats", key="I",
                    value=Stats) as stats:
        with Program.load("xdp", producer(kind, target, stats, size, **kw),
                          name=f"ev_{kind}") as prog:
            yield prog, stats


@contextmanager
def one_cpu() -> Iterator[None]:
    """Run on one CPU: test_run emits there, so perf samples all go to one ring (and the
    kernel's LOST record for that ring comes with the next sample)."""
    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(saved)})
    try:
        yield
    finally:
        os.sched_setaffinity(0, saved)


def emit(prog: Program, n: int) -> None:
    """Run the producer ``n`` times."""
    res = prog.test_run(PACKET, repeat=n)
    assert res.retval == XDP_PASS


def stats_of(stats: Map) -> Stats:
    return stats[0]


def seqs(records: list) -> list[int]:
    """Sequence numbers of raw (bytes) records."""
    return [int.from_bytes(r[:8], "little") for r in records]
