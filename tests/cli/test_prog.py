"""``pybpf prog`` against Debian's bpftool on programs the tests load."""
from __future__ import annotations

import pytest

from pybpf.asm import (DW, FP, R0, R1, R2, R3, assemble, call, call_subprog, exit_, jeq_imm,
                       label, ld_map_fd, ld_map_value, mov64_imm, mov64_reg, add64_imm, st)
from pybpf.maps import Map
from pybpf.programs import Program

from tests.cli.tools import assert_error, bpftool, pybpf, same, uniq


@pytest.fixture
def counter_map():
    with Map.create("array", 4, 8, 1, name=uniq("cnt")) as m:
        yield m


@pytest.fixture
def prog(counter_map, pin_dir):
    """An XDP program with a map lookup, a map value load, a helper call and a subprogram."""
    code = assemble([
        st(DW, FP, -8, 0),
        ld_map_fd(R1, counter_map.fd),
        mov64_reg(R2, FP), add64_imm(R2, -8),
        call("map_lookup_elem"),
        jeq_imm(R0, 0, "out"),
        ld_map_value(R3, counter_map.fd, 0),
        call("ktime_get_ns"),
        call_subprog("sub"),
        label("out"),
        mov64_imm(R0, 2),
        exit_(),
        label("sub"),
        mov64_imm(R0, 0),
        exit_(),
    ])
    with Program.load("xdp", code, name=uniq("xp")) as p:
        p.pin(pin_dir / "prog")
        yield p


def test_show(prog, pin_dir, counter_map):
    ours, _ = same("prog", "show", "id", prog.id)
    assert f"  map_ids {counter_map.id}" in ours.out
    same("prog", "show", "pinned", pin_dir / "prog")
    same("prog", "show", "name", prog.name)
    same("prog", "show", "tag", prog.info().tag)
    same("-f", "prog", "show", "id", prog.id)
    assert f"{prog.id}: xdp  name {prog.name}" in pybpf("prog", "list").out


def test_dump_xlated(prog):
    """Helper names from kallsyms, map ids, subprogram calls: line for line as bpftool."""
    ours, _ = same("prog", "dump", "xlated", "id", prog.id)
    assert "map[id:" in ours.out and "call pc+" in ours.out
    same("prog", "dump", "xlated", "id", prog.id, "opcodes")
    wide = pybpf("prog", "dump", "xlated", "id", prog.id, "opcodes").out.split("map[id:")[1]
    assert len(wide.splitlines()[1].split()) == 16, "a 64-bit load's opcode line has 16 bytes"


def test_dump_xlated_to_file(prog, tmp_path):
    assert pybpf("prog", "dump", "xlated", "id", prog.id, "file", tmp_path / "p").rc == 0
    assert bpftool("prog", "dump", "xlated", "id", prog.id, "file", tmp_path / "q").rc == 0
    assert (tmp_path / "p").read_bytes() == (tmp_path / "q").read_bytes() == prog.xlated()


def test_pin(prog, pin_dir):
    assert pybpf("prog", "pin", "id", prog.id, pin_dir / "again").rc == 0
    assert Program.from_pin(pin_dir / "again").info().id == prog.id
    assert_error(pybpf("prog", "pin", "id", prog.id, pin_dir / "again"), "can't pin the object",
                 "EEXIST")


def test_run(prog, tmp_path):
    data = bytes(range(64))
    (tmp_path / "in").write_bytes(data)
    args = ["prog", "run", "id", prog.id, "data_in", tmp_path / "in", "data_out", "-",
            "repeat", 3]
    ours, theirs = pybpf(*args), bpftool(*args)
    assert ours.rc == theirs.rc == 0
    # the hex dump is identical; the run time differs from run to run
    assert ours.out.splitlines()[:-1] == theirs.out.splitlines()[:-1]
    assert ours.out.splitlines()[-1].startswith("Return value: 2, duration (average): ")
    jo, jt = pybpf("-j", *args).json(), bpftool("-j", *args).json()
    assert jo["data_out"] == jt["data_out"] == list(data) and jo["retval"] == jt["retval"] == 2
    assert pybpf("prog", "run", "id", prog.id, "data_in", tmp_path / "in", "data_out",
                 tmp_path / "out").rc == 0
    assert (tmp_path / "out").read_bytes() == data
    missing = pybpf("prog", "run", "id", prog.id, "data_in", tmp_path / "nope")
    assert_error(missing, "failed to open", "No such file or directory")


def test_bad_handles(prog):
    assert_error(pybpf("prog", "show", "tag", "xyz"), "can't parse tag")
    assert_error(pybpf("prog", "show", "name", uniq("none")), "no program with name")
    assert_error(pybpf("prog", "dump", "xlated", "id", 4000000000), "get prog by id")
    assert_error(pybpf("prog", "show", "bogus", 1), "expected 'id', 'tag', 'name' or 'pinned'")


def test_dump_several_programs_by_name():
    name = uniq("twin")
    with Program.load("xdp", assemble([mov64_imm(R0, 2), exit_()]), name=name), \
            Program.load("xdp", assemble([mov64_imm(R0, 1), exit_()]), name=name):
        ours, _ = same("prog", "dump", "xlated", "name", name)
        assert ours.out.count(f"xdp  name {name}  tag ") == 2
