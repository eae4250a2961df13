"""``pybpf map`` against Debian's bpftool on maps the tests create."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.btf import BTF, int_btf
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.cpus import possible_cpus

from tests import leaks
from tests.cli.tools import Result, assert_error, bpftool, pybpf, same, uniq


@pytest.fixture
def config(pin_dir):
    """The seed's map: hash, u32 key, 12-byte value, named ``config``-like, pinned."""
    with Map.create("hash", 4, 12, 16, name=uniq("config")) as m:
        m[1] = b"x" * 12
        m[2] = b"Hello 2\0\0\0\0\0"
        m.pin(pin_dir / "config")
        yield m


def test_show_by_id_pinned_name(config, pin_dir):
    same("map", "show", "id", config.id)
    same("map", "show", "pinned", pin_dir / "config")
    same("map", "show", "name", config.name)
    same("-f", "map", "show", "id", config.id)  # with the pinned path
    ours = pybpf("-f", "map", "show", "id", config.id).out
    assert f"\tpinned {pin_dir / 'config'}" in ours


def test_show_all_lists_our_map(config):
    ours = pybpf("map", "show")
    assert ours.rc == 0
    assert f"{config.id}: hash  name {config.name}  flags 0x0\n" in ours.out
    ids = [m["id"] for m in pybpf("-j", "map", "list").json()]
    assert config.id in ids


def test_show_frozen_and_btf(pin_dir):
    with BTF.load(int_btf()) as btf, \
            Map.create("array", 4, 4, 2, name=uniq("frz"), btf=btf, btf_key_type_id=1,
                       btf_value_type_id=1) as m:
        m.freeze()
        ours, _ = same("map", "show", "id", m.id)
        assert ours.out.splitlines()[-1] == f"\tbtf_id {btf.info().id}  frozen"


def test_dump_hash_and_json(config):
    ours, theirs = same("map", "dump", "id", config.id)
    assert ours.out.endswith("Found 2 elements\n")
    assert "key: 02 00 00 00  value: 48 65 6c 6c 6f 20 32 00  00 00 00 00\n" in ours.out


def test_dump_big_hash_order_matches():
    """A 3000-element dump read with batch lookups lists elements as bpftool's key walk."""
    with Map.create("hash", 8, 4, 4096, name=uniq("big")) as m:
        m.update_batch([i * 7919 for i in range(3000)], [i for i in range(3000)])
        same("map", "dump", "id", m.id)


@pytest.mark.parametrize("key_size,value_size", [(4, 20), (20, 4), (32, 40), (2, 1)])
def test_dump_layouts(key_size, value_size):
    """Line breaks around keys and values (> 16 bytes, > 24 together) as bpftool's."""
    with Map.create("hash", key_size, value_size, 8, name=uniq("lay")) as m:
        for i in range(3):
            m[bytes([i + 1]) * key_size] = bytes(range(i, i + value_size))
        same("map", "dump", "id", m.id)


@pytest.mark.parametrize("mtype", ["percpu_array", "percpu_hash", "lru_percpu_hash"])
def test_dump_per_cpu(mtype):
    with Map.create(mtype, 4, 20, 4, name=uniq("pcpu")) as m:
        m[1] = [bytes([c + 1]) * 20 for c in range(len(possible_cpus()))]
        same("map", "dump", "id", m.id)
        same("map", "lookup", "id", m.id, "key", 1, 0, 0, 0)


def test_dump_array_and_prog_array():
    """Empty prog array slots are skipped silently, filled ones show the program id."""
    prog = Program.load("socket_filter", assemble([mov64_imm(R0, 0), exit_()]), name="cli_pa")
    with prog, Map.create("array", 4, 8, 3, name=uniq("arr")) as arr, \
            Map.create("prog_array", 4, 4, 4, name=uniq("pa")) as pa:
        same("map", "dump", "id", arr.id)
        pa[2] = prog
        ours, _ = same("map", "dump", "id", pa.id)
        assert ours.out.endswith("Found 1 element\n")
        pa_id = pa.id
    leaks.wait_freed("map", pa_id)  # before the next test lists maps (tests/leaks.py)


def test_dump_several_maps_by_name():
    name = uniq("dup")
    with Map.create("hash", 4, 4, 4, name=name) as a, Map.create("array", 4, 4, 2, name=name):
        a[1] = 5
        ours, _ = same("map", "dump", "name", name)
        assert ours.out.count("Found") == 2
        same("map", "show", "name", name)


def test_ambiguous_name_is_an_error_for_element_commands():
    name = uniq("dup")
    with Map.create("hash", 4, 4, 4, name=name), Map.create("array", 4, 4, 2, name=name):
        for cmd in (["lookup", "name", name, "key", 1, 0, 0, 0],
                    ["update", "name", name, "key", 1, 0, 0, 0, "value", 1, 0, 0, 0]):
            ours, theirs = pybpf("map", *cmd), bpftool("map", *cmd)
            assert theirs.rc != 0 and theirs.err == "Error: several maps match this handle\n"
            assert_error(ours, "several maps match this handle")
            assert pybpf("-j", "map", *cmd).json() == bpftool("-j", "map", *cmd).json()


def test_lookup_getnext(config):
    same("map", "lookup", "id", config.id, "key", 2, 0, 0, 0)
    same("map", "getnext", "id", config.id)
    first = config.next_key()
    same("map", "getnext", "id", config.id, "key", "hex", *(f"{b:02x}" for b in first))
    missing = ["map", "lookup", "id", config.id, "key", 9, 0, 0, 0]
    ours, theirs = pybpf(*missing), bpftool(*missing)
    assert (ours.rc, ours.out) == (theirs.rc, theirs.out) == \
        (254, "key:\n09 00 00 00\n\nNot found\n")
    assert pybpf("-j", *missing).out == bpftool("-j", *missing).out == "null\n"
    last = next(k for k in config.keys() if k != config.next_key())
    end = pybpf("map", "getnext", "id", config.id, "key", *last)
    assert_error(end, "can't get next key", "ENOENT")


def test_seed_commands_verbatim(pin_dir):
    """The seed's bpftool commands with pybpf: update by name, dump by name."""
    name = "config"
    if any(m["name"] == name for m in pybpf("-j", "map", "show").json() if "name" in m):
        pytest.skip("another map named 'config' exists on this machine right now")
    with Map.create("hash", 4, 12, 16, name=name) as m:
        upd = pybpf("map", "update", "name", "config", "key", "0x2", "0", "0", "0", "value", "hex",
                    *"48 65 6c 6c 6f 20 32 0 0 0 0 0".split())
        assert (upd.rc, upd.out, upd.err) == (0, "", "")
        assert m[2] == b"Hello 2\0\0\0\0\0"
        ours, _ = same("map", "dump", "name", "config")
        assert ours.out == ("key: 02 00 00 00  value: 48 65 6c 6c 6f 20 32 00  00 00 00 00\n"
                            "Found 1 element\n")


def test_update_flags_and_delete(config):
    key = ["key", 3, 0, 0, 0]
    value = ["value", *range(12)]
    assert pybpf("map", "update", "id", config.id, *key, *value, "noexist").rc == 0
    assert config[3] == bytes(range(12))
    again = pybpf("map", "update", "id", config.id, *key, *value, "noexist")
    assert_error(again, "update failed", "EEXIST")
    assert again.rc == bpftool("map", "update", "id", config.id, *key, *value, "noexist").rc
    assert pybpf("map", "update", "id", config.id, *key, "value", *[0o17] * 12, "exist").rc == 0
    assert config[3] == bytes([15]) * 12
    assert pybpf("-j", "map", "update", "id", config.id, *value, *key, "any").out == "null\n"
    assert pybpf("map", "delete", "id", config.id, *key).rc == 0
    assert 3 not in config
    gone = pybpf("map", "delete", "id", config.id, *key)
    assert_error(gone, "delete failed", "ENOENT")
    assert gone.rc == bpftool("map", "delete", "id", config.id, *key).rc == 254


def test_update_per_cpu_copies_value_to_every_cpu():
    with Map.create("percpu_array", 4, 4, 2, name=uniq("pcu")) as m:
        assert pybpf("map", "update", "id", m.id, "key", 1, 0, 0, 0, "value", 7, 0, 0, 0).rc == 0
        assert m[1] == [b"\x07\0\0\0"] * len(possible_cpus())


def test_map_in_map_and_prog_array_values(pin_dir):
    prog = Program.load("socket_filter", assemble([mov64_imm(R0, 0), exit_()]), name="cli_pv")
    with prog, Map.create("array", 4, 4, 1, name=uniq("inner")) as inner, \
            Map.create("array_of_maps", 4, 4, 2, name=uniq("outer"), inner_map=inner) as outer, \
            Map.create("prog_array", 4, 4, 2, name=uniq("pa")) as pa:
        inner.pin(pin_dir / "inner")
        assert pybpf("map", "update", "id", outer.id, "key", 1, 0, 0, 0, "value", "pinned",
                     pin_dir / "inner").rc == 0
        assert outer[1] == inner.id
        same("map", "lookup", "id", outer.id, "key", 1, 0, 0, 0)
        res = pybpf("map", "update", "id", pa.id, "key", 0, 0, 0, 0, "value", "id", prog.id)
        assert res.rc == 0 and "Warning: updating program array via MAP_ID" in res.err
        assert pa[0] == prog.id
        same("map", "dump", "id", pa.id)
        pa_id = pa.id
    leaks.wait_freed("map", pa_id)  # before the next test lists maps (tests/leaks.py)


def test_queue_and_stack_commands():
    with Map.create("queue", 0, 4, 4, name=uniq("q")) as q, \
            Map.create("stack", 0, 4, 4, name=uniq("s")) as s:
        for m in (q, s):
            for v in (1, 2):
                verb = "enqueue" if m is q else "push"
                assert pybpf("map", verb, "id", m.id, "value", v, 0, 0, 0).rc == 0
        same("map", "peek", "id", q.id)
        assert pybpf("map", "peek", "id", s.id).out == "value: 02 00 00 00\n"
        assert pybpf("map", "dequeue", "id", q.id).out == "value: 01 00 00 00\n"
        assert pybpf("-j", "map", "pop", "id", s.id).json() == {
            "key": [], "value": ["0x02", "0x00", "0x00", "0x00"]}
        pybpf("map", "pop", "id", s.id)
        assert_error(pybpf("map", "pop", "id", s.id), "empty map")
        dump = pybpf("map", "dump", "id", q.id)
        assert_error(dump, "queue maps cannot be walked by key", "map peek")
        with Map.create("ringbuf", 0, 0, 4096, name=uniq("rb")) as rb:
            assert_error(pybpf("map", "dump", "id", rb.id), "ringbuf maps cannot be walked")


def test_pin_freeze_create(pin_dir, config):
    assert pybpf("map", "pin", "id", config.id, pin_dir / "again").rc == 0
    same("map", "show", "pinned", pin_dir / "again")
    assert pybpf("map", "freeze", "pinned", pin_dir / "again").rc == 0
    assert config.info().frozen
    frozen = pybpf("map", "update", "id", config.id, "key", 1, 0, 0, 0, "value", *[0] * 12)
    assert_error(frozen, "update failed", "EPERM")
    name = uniq("made")
    res = pybpf("map", "create", pin_dir / "made", "type", "lru_hash", "key", 8, "value", 16,
                "entries", 32, "name", name, "flags", "0x0")
    assert (res.rc, res.out, res.err) == (0, "", "")
    with Map.from_pin(pin_dir / "made") as made:
        info = made.info()
        assert (info.name, info.key_size, info.value_size, info.max_entries) == (name, 8, 16, 32)
        same("map", "show", "id", made.id)
    with Map.create("array", 4, 4, 1, name=uniq("in")) as inner:
        res = pybpf("map", "create", pin_dir / "outer", "type", "hash_of_maps", "key", 4,
                    "value", 4, "entries", 2, "name", uniq("hom"), "inner_map", "id", inner.id)
        assert res.rc == 0, res.err
        assert Map.from_pin(pin_dir / "outer").type.name == "HASH_OF_MAPS"


def test_command_prefixes(config):
    assert pybpf("m", "sh", "id", config.id).out == pybpf("map", "show", "id", config.id).out
    assert pybpf("map", "l", "id", config.id, "k", 2, 0, 0, 0).out == \
        bpftool("map", "l", "id", config.id, "k", 2, 0, 0, 0).out


@pytest.mark.parametrize("args,message", [
    (["mop", "show"], "unknown object 'mop'"),
    (["map", "frobnicate"], "unknown command 'frobnicate'"),
    (["map", "show", "handle", "1"], "expected 'id', 'name' or 'pinned', got: 'handle'"),
    (["map", "show", "id", "12x"], "can't parse 12x as ID"),
    (["map", "show", "id", "4000000000"], "get map by id (4000000000)"),
    (["map", "show", "pinned", "/sys/fs/bpf/no-such-pin-here"], "bpf obj get"),
    (["map", "show", "name", "0123456789abcdefX"], "can't parse name"),
])
def test_bad_input(args, message):
    assert_error(pybpf(*args), message)
    assert bpftool(*args).rc != 0


def test_bad_keys_and_values(config):
    base = ["map", "lookup", "id", config.id]
    for extra, message in ((["key", 2, 0, 0], "key expected 4 bytes got 3"),
                           (["key", 2, 0, 0, 0, 0], "expected key or value, got: 0"),
                           (["key", "0xzz", 0, 0, 0], "error parsing byte: 0xzz"),
                           (["key", "hex", "0g", 0, 0, 0], "error parsing byte: 0g"),
                           ([], "did not find key")):
        ours, theirs = pybpf(*base, *extra), bpftool(*base, *extra)
        assert_error(ours, message)
        assert theirs.err.strip() == f"Error: {message}"
        assert pybpf("-j", *base, *extra).json() == {"error": message}
    short = pybpf("map", "update", "id", config.id, "key", 1, 0, 0, 0, "value", 1, 2, 3)
    assert_error(short, "value expected 12 bytes got 3")


def test_wrong_object_kind(pin_dir):
    prog = Program.load("socket_filter", assemble([mov64_imm(R0, 0), exit_()]), name="cli_wk")
    with prog:
        prog.pin(pin_dir / "prog")
        assert_error(pybpf("map", "show", "pinned", pin_dir / "prog"),
                     "incorrect object type: prog")


def test_no_permission(config, pin_dir):
    """Without CAP_BPF/CAP_SYS_ADMIN: bpftool's one-line error (EPERM explained), no traceback."""
    drop = ["setpriv", "--bounding-set", "-sys_admin,-bpf,-perfmon,-net_admin", "--"]
    for args in (["map", "show", "id", config.id],
                 ["map", "lookup", "id", config.id, "key", 1, 0, 0, 0]):
        r = subprocess.run([*drop, sys.executable, "-m", "pybpf.cli", *map(str, args)],
                           capture_output=True, text=True)
        assert_error(Result(r.returncode, r.stdout, r.stderr), "EPERM")
        assert "CAP_BPF" in r.stderr
    r = subprocess.run([*drop, sys.executable, "-m", "pybpf.cli", "-j", "map", "show"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "EPERM" in json.loads(r.stdout)["error"]


def test_missing_file_for_create_dir(pin_dir):
    res = pybpf("map", "create", pin_dir / "nodir" / "m", "type", "hash", "key", 4, "value", 4,
                "entries", 4, "name", uniq("nd"))
    assert_error(res, "can't pin the object", "does not exist")
    res = pybpf("map", "create", pin_dir / "m", "type", "hashy", "key", 4, "value", 4,
                "entries", 4, "name", uniq("nd"))
    assert_error(res, "unrecognized map type: hashy")
