"""Differential check with the reference peer: for every corpus object, pybpf loads the
programs Debian's ``bpftool prog loadall`` (libbpf) loads, or fails where it fails, and
creates the same maps (type, key/value size, max entries, flags, kernel name)."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from pybpf.elf import ObjectSpec, Pinning, load
from pybpf.errors import PyBPFError

CORPUS = sorted(p.stem for p in (Path(__file__).parent.parent / "bpf").glob("elf_*.c"))


def bpftool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bpftool", *args], capture_output=True, text=True)


def _map_view(info: dict) -> tuple:
    return (info["type"], info["bytes_key"], info["bytes_value"], info["max_entries"],
            info["flags"], info["name"])


def _peer_load(obj: Path, spec: ObjectSpec, where: Path) -> tuple[bool, dict, dict, str]:
    """bpftool's result: ok, {prog name: type}, {map kernel name: view}, stderr."""
    progs, maps = where / "progs", where / "maps"
    by_name_pins = [Path("/sys/fs/bpf") / m.name for m in spec.maps.values()
                    if m.pinning == Pinning.BY_NAME and not (Path("/sys/fs/bpf") / m.name).exists()]
    pinned = any(m.pinning == Pinning.BY_NAME for m in spec.maps.values())
    try:
        args = ["prog", "loadall", str(obj), str(progs)]
        if not pinned:  # libbpf refuses a second pin path for auto-pinned maps
            args += ["pinmaps", str(maps)]
        res = bpftool(*args)
        if res.returncode != 0:
            return False, {}, {}, res.stderr
        prog_types, map_ids = {}, set()
        for name in os.listdir(progs):
            info = json.loads(bpftool("prog", "show", "pinned", str(progs / name), "-j").stdout)
            prog_types[name] = info["type"]
            map_ids.update(info.get("map_ids", []))
        views = {}
        if pinned:
            for mid in map_ids:
                info = json.loads(bpftool("map", "show", "id", str(mid), "-j").stdout)
                views[info["name"]] = _map_view(info)
        else:
            for name in os.listdir(maps):
                info = json.loads(bpftool("map", "show", "pinned", str(maps / name), "-j").stdout)
                views[info["name"]] = _map_view(info)
        return True, prog_types, views, res.stderr
    finally:
        for pin in by_name_pins:
            if pin.exists():
                pin.unlink()


@pytest.mark.usefixtures("bpftool")  # fails clearly when the peer is missing
@pytest.mark.parametrize("name", CORPUS)
def test_same_as_bpftool(bpf_objects, bpffs, pin_dir, name: str) -> None:
    obj = bpf_objects[name]
    spec = ObjectSpec.from_file(obj)
    peer_dir = bpffs / f"pybpf-peer-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    peer_dir.mkdir()
    try:
        ok, peer_progs, peer_maps, err = _peer_load(obj, spec, peer_dir)
    finally:
        shutil.rmtree(peer_dir, ignore_errors=True)
    try:
        coll = load(spec, pin_root=pin_dir)
    except PyBPFError as e:
        assert not ok, f"pybpf failed where bpftool loaded {sorted(peer_progs)}: {e}"
        return
    with coll:
        assert ok, f"pybpf loaded {sorted(coll.programs)} where bpftool failed:\n{err}"
        ours = {p_name: p.info().type.name.lower() for p_name, p in coll.programs.items()}
        assert ours == peer_progs
        mine = {}
        for m in coll.maps.values():
            i = m.info()
            if peer_maps and i.name not in peer_maps and spec.maps and any(
                    mm.pinning == Pinning.BY_NAME for mm in spec.maps.values()):
                continue  # unreferenced maps are not visible through the peer's programs
            mine[i.name] = (i.type.name.lower(), i.key_size, i.value_size, i.max_entries,
                            i.flags, i.name)
        assert mine == peer_maps
