"""The chapter's reference rules: fds and pins keep objects alive; the last one frees them."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from pybpf.errors import BPFError
from pybpf.links import list_links
from pybpf.maps import Map, list_maps
from pybpf.programs import Program, list_programs
from pybpf.btf import list_btf

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")


def _gone(kind_ids, obj_id: int, timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if obj_id not in kind_ids():
            return True
        time.sleep(0.01)
    return False


def test_fd_keeps_map_alive_and_close_frees_it():
    m = Map.create("hash", 4, 4, 4, name="ref_fd")
    map_id = m.info().id
    with Map.from_id(map_id) as again:  # a second reference
        assert again.info().name == "ref_fd"
    assert map_id in Map.ids()
    m.close()
    assert _gone(Map.ids, map_id)
    with pytest.raises(BPFError, match="no map with this id"):
        Map.from_id(map_id)


def test_pin_outlives_the_process(pin_dir):
    script = f"""
import json
from pybpf.maps import Map
from pybpf.programs import Program
m = Map.create("hash", 4, 4, 4, name="ref_pin", key="I", value="I")
m[1] = 42
p = Program.load("socket_filter", {RET0!r}, name="ref_pin")
m.pin({str(pin_dir / 'map')!r})
p.pin({str(pin_dir / 'prog')!r})
print(json.dumps({{"map": m.info().id, "prog": p.info().id}}))
"""
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True,
                         text=True).stdout
    ids = json.loads(out)
    # the process exited: the pins alone hold the objects
    with Map.from_pin(pin_dir / "map", key="I", value="I") as m:
        assert m[1] == 42 and m.info().id == ids["map"]
    with Map.from_id(ids["map"], key="I", value="I") as m:
        assert m[1] == 42
    with Program.from_pin(pin_dir / "prog") as p:
        assert p.info().id == ids["prog"]
    # removing the pin drops the last reference: the ids disappear
    Map.unpin(pin_dir / "map")
    Program.unpin(pin_dir / "prog")
    assert _gone(Map.ids, ids["map"])
    assert _gone(Program.ids, ids["prog"])


def test_pin_plus_fd_then_unpin_keeps_until_close(pin_dir):
    m = Map.create("array", 4, 4, 1, name="ref_both")
    map_id = m.info().id
    m.pin(pin_dir / "m")
    Map.unpin(pin_dir / "m")
    assert map_id in Map.ids()  # our fd still holds it
    m.close()
    assert _gone(Map.ids, map_id)


def test_enumerate_all_objects():
    with Map.create("hash", 4, 4, 4, name="enum_map") as m, \
            Program.load("socket_filter", RET0, name="enum_prog") as p:
        maps = {i.id: i for i in list_maps()}
        progs = {i.id: i for i in list_programs()}
        assert maps[m.info().id].name == "enum_map"
        assert progs[p.info().id].name == "enum_prog"
    btfs = list_btf()
    assert any(b.name == "vmlinux" and b.kernel_btf for b in btfs)
    links = list(list_links())  # may be empty or hold other tenants' links
    assert all(link.id > 0 for link in links)
