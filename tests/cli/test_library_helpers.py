"""The small library functions the CLI needed (Map.dump_raw/next_key, Program.jited_ksyms/
btf_ext_info, sys.objects pins/fdinfo/fd_kind), tested on their own."""
from __future__ import annotations

import errno
import subprocess

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.btf import BTF, int_btf
from pybpf.errors import BPFError
from pybpf.links import attach_raw_tracepoint
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys import host, objects

from tests import leaks

RET0 = assemble([mov64_imm(R0, 0), exit_()])


def test_dump_raw_batch_and_walk():
    with Map.create("hash", 4, 8, 64) as h:
        for i in range(40):
            h[i] = i.to_bytes(8, "little")
        got = dict(h.dump_raw())
        assert got == {i.to_bytes(4, "little"): i.to_bytes(8, "little") for i in range(40)}
        # batch order is the key walk's order
        assert [k for k, _ in h.dump_raw()] == list(h.keys())
    with Program.load("socket_filter", RET0) as prog, Map.create("prog_array", 4, 4, 3) as pa:
        pa[1] = prog
        assert list(pa.dump_raw()) == [(b"\0\0\0\0", errno.ENOENT),
                                       (b"\1\0\0\0", prog.info().id.to_bytes(4, "little")),
                                       (b"\2\0\0\0", errno.ENOENT)]
        pa_id = pa.id
    leaks.wait_freed("map", pa_id)  # before a later test lists maps (tests/leaks.py)
    with Map.create("queue", 0, 4, 2, name="dq") as q, pytest.raises(BPFError) as e:
        list(q.dump_raw())
    assert e.value.errno == errno.EINVAL


def test_next_key():
    with Map.create("hash", 4, 4, 4, key="I") as m:
        m[7] = 1
        assert m.next_key() == 7
        with pytest.raises(BPFError) as e:
            m.next_key(7)
        assert e.value.errno == errno.ENOENT


def test_fd_kind_fdinfo_and_pins(pin_dir):
    with Map.create("array", 4, 4, 1, name="pinme") as m, \
            Program.load("raw_tracepoint", RET0) as p, BTF.load(int_btf()) as b, \
            attach_raw_tracepoint(p, "sched_switch") as link:
        assert [objects.fd_kind(o.fd) for o in (m, p, link, b)] == ["map", "prog", "link", "btf"]
        assert objects.fdinfo(m.fd)["map_id"] == str(m.id)
        assert int(objects.fdinfo(m.fd)["memlock"]) > 0
        m.pin(pin_dir / "m")
        link.pin(pin_dir / "l")
        assert objects.pins("map")[m.id] == [str(pin_dir / "m")]
        assert objects.pins("link")[link.info().id] == [str(pin_dir / "l")]
        with objects.obj_get(str(pin_dir / "l")) as fd:
            assert objects.fd_kind(fd.fd) == "link"  # a pinned link reopens as "bpf-link"
        with pytest.raises(BPFError, match="refuses names with a '.'"):
            m.pin(pin_dir / "with.dot")


def test_jited_ksyms_and_btf_ext_info():
    with Program.load("socket_filter", RET0) as p:
        assert len(p.jited_ksyms()) == 1
        assert p.btf_ext_info() == ([], [])


def test_bpffs_mounted_twice_on_one_directory_is_walked_once(tmp_path):
    """A bpffs mounted over another on the same directory hides it: its pins are found once."""
    where = tmp_path / "bpffs"
    where.mkdir()
    mounted = 0
    try:
        for _ in range(2):
            subprocess.run(["mount", "-t", "bpf", "bpf", str(where)], check=True)
            mounted += 1
        assert host.mounts("bpf").count(str(where)) == 1
        with Map.create("array", 4, 4, 1, name="twice") as m:
            m.pin(where / "m")
            assert objects.pins("map")[m.id] == [str(where / "m")]
    finally:
        for _ in range(mounted):
            subprocess.run(["umount", str(where)], check=True)
