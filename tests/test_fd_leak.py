"""No file descriptor leaks: thousands of succeeding and failing operations leave none."""
from __future__ import annotations

import gc
import os

import pytest

from pybpf.btf import BTF, int_btf
from pybpf.errors import PyBPFError
from pybpf.links import attach_raw_tracepoint
from pybpf.maps import Map
from pybpf.programs import Program

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _round(tmp: str, pin_dir) -> None:
    with Map.create("hash", 4, 4, 16, name="leak") as m:
        m[1] = 2
        assert m[1] == (2).to_bytes(4, "little")
        for op in (lambda: m[7], lambda: m.delete(7), lambda: m.update(1, 3, flags=1),
                   lambda: m.update(b"x", 1), lambda: m.pin(f"{tmp}/x"),
                   lambda: m.pin(pin_dir / "missing-dir" / "x")):
            with pytest.raises((PyBPFError, KeyError)):
                op()
        m.info()
        list(m.items())
        m.lookup_batch()
        with Map.from_id(m.info().id):
            pass
    for bad in (lambda: Map.create("hash", 0, 4, 1), lambda: Map.create(999, 4, 4, 1),
                lambda: Map.from_pin(pin_dir / "nothing"),
                lambda: Program.load("xdp", RET0[8:]),
                lambda: BTF.load(b"\x9f\xeb\x01\x00" + bytes(40))):
        with pytest.raises(PyBPFError):
            bad()
    with Program.load("raw_tracepoint", RET0) as p:
        p.test_run(ctx_in=bytes(8))
        p.info()
        with attach_raw_tracepoint(p, "sched_process_exec") as link:
            link.info()
    with BTF.load(int_btf()) as b:
        b.info()


def test_no_fd_leak_across_thousands_of_operations(tmp_path, pin_dir):
    _round(str(tmp_path), pin_dir)  # warm caches (feature probes) first
    gc.collect()  # objects earlier tests dropped close now, not in the middle of the count
    before = open_fds()
    for _ in range(150):  # ~20 operations each: 3000 in all
        _round(str(tmp_path), pin_dir)
    gc.collect()
    assert open_fds() == before


def test_forgotten_objects_are_closed_by_the_finalizer():
    before = open_fds()
    for _ in range(200):
        Map.create("array", 4, 4, 1)  # never closed explicitly
    gc.collect()
    assert open_fds() == before
