"""The suite leaves nothing behind: maps, programs, links and bpffs pins are taken stock of
before and after the whole run, and what the run added and left is a failure.

Other tenants may create objects meanwhile (the machine is never assumed empty): an object
still held by another process (an fd in its /proc/PID/fdinfo, or a program or link it holds
using it), or pinned under another live test process's pin directory, is theirs, not a leak.
The kernel frees some objects after an RCU grace period or from a work queue (a prog_array's
slots are cleared by deferred work once its last user reference goes), so the check waits a
few seconds for the count to settle before it judges.

A kernel race leaks prog_array maps (seen on 6.18, reproduced by a loop): when the last user
reference goes, ``prog_array_map_clear`` takes a map reference and queues the clearing work;
if, before that work runs, someone opens the map by id (``bpftool map show``, any look-up by
name, which opens every map) and closes it, the user count drops to zero a second time and a
second reference is taken, but the work, already queued, is not queued again: that reference
is never dropped and the empty map stays in the kernel, held by nothing. Tests that close a
prog_array therefore wait for it to be freed (``wait_freed``) before the next test lists maps.
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field

from pybpf.errors import BPFError
from pybpf.maps import MapInfo
from pybpf.programs import Program, ProgInfo
from pybpf.sys import host, objects

KINDS = ("map", "prog", "link")
_ID_KEYS = {"map_id": "map", "prog_id": "prog", "link_id": "link"}
_TEST_PIN_DIR = re.compile(r"/pybpf-test-(\d+)-")


@dataclass
class Stock:
    """Object ids by kind, and pin paths, at one moment."""

    ids: dict[str, set[int]] = field(default_factory=dict)
    pins: set[str] = field(default_factory=set)

    @classmethod
    def take(cls) -> Stock:
        pins: set[str] = set()
        for mount in host.mounts("bpf"):
            for root, _dirs, files in os.walk(mount):
                pins.update(os.path.join(root, f) for f in files)
        return cls({k: set(objects.next_ids(k)) for k in KINDS}, pins)

    def counts(self) -> str:
        return ", ".join(f"{len(self.ids[k])} {k}s" for k in KINDS) + f", {len(self.pins)} pins"


def wait_freed(kind: str, obj_id: int, timeout: float = 5.0) -> None:
    """Wait until the kernel has freed object ``obj_id`` (its id gone), or fail."""
    deadline = time.monotonic() + timeout
    while obj_id in set(objects.next_ids(kind)):
        assert time.monotonic() < deadline, f"{kind} id {obj_id} was not freed in {timeout} s"
        time.sleep(0.01)


def _held_by_others() -> dict[str, set[int]]:
    """Ids of the BPF objects other processes hold fds of (from their fdinfo)."""
    held: dict[str, set[int]] = {k: set() for k in KINDS}
    me = str(os.getpid())
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fdinfo")
        except OSError:
            continue
        for fd in fds:
            try:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    text = f.read()
            except OSError:
                continue
            for key, kind in _ID_KEYS.items():
                m = re.search(rf"^{key}:\s*(\d+)", text, re.M)
                if m:
                    held[kind].add(int(m.group(1)))
    return held


def _alive_pid(path: str) -> bool:
    m = _TEST_PIN_DIR.search(path)
    return bool(m) and int(m.group(1)) != os.getpid() and os.path.exists(f"/proc/{m.group(1)}")


def _maps_of(prog_ids: set[int]) -> set[int]:
    maps: set[int] = set()
    for prog_id in prog_ids:
        try:
            with Program.from_id(prog_id) as prog:
                maps.update(prog.info().map_ids)
        except BPFError:
            continue  # unloaded meanwhile
    return maps


def left_behind(before: Stock) -> tuple[dict[str, set[int]], set[str]]:
    """What appeared since ``before`` and is still there, not held by another process."""
    now = Stock.take()
    others = _held_by_others()
    theirs_pinned = {p for p in now.pins - before.pins if _alive_pid(p)}
    for kind in KINDS:
        pinned = objects.pins(kind)
        others[kind] |= {i for i, paths in pinned.items() if set(paths) <= theirs_pinned}
    others["map"] |= _maps_of(others["prog"])
    new = {k: now.ids[k] - before.ids[k] - others[k] for k in KINDS}
    return {k: v for k, v in new.items() if v}, now.pins - before.pins - theirs_pinned


def check(before: Stock, settle: float = 5.0) -> str:
    """"" when the run left nothing; else a report naming what it left (ids, names, pins)."""
    deadline = time.monotonic() + settle
    while True:
        objs, pins = left_behind(before)
        if not (objs or pins) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    if not (objs or pins):
        return ""
    lines = [f"the test run left objects in the kernel (before: {before.counts()}; "
             f"after: {Stock.take().counts()}):"]
    for kind, ids in objs.items():
        for obj_id in sorted(ids):
            lines.append(f"  {kind} id {obj_id}: {_describe(kind, obj_id)}")
    lines += [f"  pin {p}" for p in sorted(pins)]
    return "\n".join(lines)


def _describe(kind: str, obj_id: int) -> str:
    try:
        with objects.fd_by_id(kind, obj_id) as fd:
            if kind == "map":
                info = MapInfo.from_fd(fd.fd)
                return f"{_type_name(info.type)} map {info.name!r}"
            if kind == "prog":
                pinfo = ProgInfo.from_fd(fd.fd)
                return f"{_type_name(pinfo.type)} program {pinfo.name!r}"
            return " ".join(f"{k}={v}" for k, v in objects.fdinfo(fd.fd).items()
                            if k in ("link_type", "prog_id"))
    except (BPFError, OSError):
        return "(gone)"


def _type_name(t: object) -> str:
    return getattr(t, "name", str(t)).lower()
