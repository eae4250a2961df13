"""``pybpf prog load|loadall`` with clang-built objects (the seed's ``hello.bpf.o``), BTF-formatted
map dumps, BTF source lines in ``prog dump xlated``, ``prog tracelog`` and ``map event_pipe``."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pybpf.asm import (FP, R0, R1, R2, R3, R4, R5, R6, W, add64_imm, assemble, call, exit_,
                       ld_imm64, ld_map_fd, mov64_imm, mov64_reg, st)
from pybpf.elf import ObjectSpec
from pybpf.maps import Map
from pybpf.programs import Program
from pybpf.sys.uapi import MapFlag

from tests.cli.tools import assert_error, bpftool, pybpf, same, uniq
from tests.conftest import MULTIARCH_INCLUDE

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def hello_obj(clang, tmp_path_factory) -> Path:
    """tests/cli/bpf/hello.bpf.c built as the book builds it."""
    out = tmp_path_factory.mktemp("cliobj") / "hello.bpf.o"
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", MULTIARCH_INCLUDE, "-c",
                    str(HERE / "bpf" / "hello.bpf.c"), "-o", str(out)], check=True)
    return out


def _map_ids(pin: Path) -> dict[str, int]:
    ids = pybpf("-j", "prog", "show", "pinned", pin).json()["map_ids"]
    return {pybpf("-j", "map", "show", "id", i).json()["name"]: i for i in ids}


def test_seed_prog_load(hello_obj, pin_dir, tmp_path):
    """``pybpf prog load hello.bpf.o /sys/fs/bpf/hello`` as the seed runs bpftool; the program
    and its global-data maps outlive the command."""
    pin = pin_dir / "hello"
    res = pybpf("prog", "load", hello_obj, pin)
    assert (res.rc, res.out, res.err) == (0, "", "")
    ours, _ = same("prog", "show", "pinned", pin)
    assert " xdp  name hello  " in ours.out and "btf_id" in ours.out
    assert ours.out.endswith('\tmetadata:\n\t\tapp = "pybpf-cli"\n\t\tlevel = 3\n')
    maps = _map_ids(pin)
    assert set(maps) == {"hello.bss", "hello.rodata"}
    # BTF-formatted dumps of the .bss and .rodata maps, plain and JSON, as bpftool's
    ours, _ = same("map", "dump", "id", maps["hello.bss"])
    assert '".bss": [{\n                    "counter": 0\n' in ours.out
    ours, _ = same("map", "dump", "id", maps["hello.rodata"])
    assert '"hello.____fmt": "Hello World %d"' in ours.out
    same("map", "lookup", "id", maps["hello.bss"], "key", 0, 0, 0, 0)
    # source lines and the function prototype in the disassembly
    ours, _ = same("prog", "dump", "xlated", "pinned", pin)
    assert ours.out.startswith("int hello(struct xdp_md * ctx):\n"
                               "; bpf_printk(\"Hello World %d\", counter);\n")
    same("prog", "dump", "xlated", "pinned", pin, "linum")
    # the program runs: XDP_PASS, and the counter in .bss counts
    (tmp_path / "pkt").write_bytes(bytes(64))
    run = pybpf("prog", "run", "pinned", pin, "data_in", tmp_path / "pkt", "repeat", 3)
    assert run.out.startswith("Return value: 2, ")
    assert pybpf("-j", "map", "lookup", "id", maps["hello.bss"], "key", 0, 0, 0, 0).json()[
        "formatted"] == {"value": {".bss": [{"counter": 3}]}}


def test_loadall_pinmaps_autoattach(hello_obj, pin_dir):
    res = pybpf("prog", "loadall", hello_obj, pin_dir / "progs", "pinmaps", pin_dir / "maps")
    assert res.rc == 0, res.err
    assert sorted(os.listdir(pin_dir / "progs")) == ["a_rather_long_function_name", "hello",
                                                     "on_getppid"]
    # a name the kernel cut to 15 characters is shown (and found) by its BTF function name
    same("prog", "show", "name", "a_rather_long_function_name")
    assert sorted(os.listdir(pin_dir / "maps")) == ["hello_bss", "hello_rodata", "points"]
    points = pin_dir / "maps" / "points"
    assert pybpf("map", "update", "pinned", points, "key", 1, 0, 0, 0, "value", 5, 0, 0, 0,
                 *b"abcd", *b"label\0\0\0").rc == 0
    ours, _ = same("map", "dump", "pinned", points)
    assert '"label": "label"' in ours.out
    res = pybpf("prog", "load", hello_obj, pin_dir / "auto", "autoattach")
    assert res.rc == 0 and res.err == ("Program hello does not support autoattach, falling back "
                                       "to pinning\n")
    assert pybpf("-j", "prog", "show", "pinned", pin_dir / "auto").json()["type"] == "xdp"


def test_autoattach_and_map_reuse(clang, tmp_path, pin_dir):
    """``loadall ... map name points MAP autoattach``: the object uses the existing map, and
    its tracepoint program is attached, the link pinned."""
    src = tmp_path / "tp.bpf.c"
    src.write_text((HERE / "bpf" / "hello.bpf.c").read_text().replace(
        'SEC("xdp")\nint hello', 'SEC("tracepoint/syscalls/sys_enter_getpid")\nint hello'))
    obj = tmp_path / "tp.bpf.o"
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", MULTIARCH_INCLUDE, "-c", str(src),
                    "-o", str(obj)], check=True)
    with Map.create("hash", 4, 16, 16, name=uniq("pts")) as points:
        points[1] = bytes(16)
        res = pybpf("prog", "loadall", obj, pin_dir / "links", "map", "name", "points",
                    "id", points.id, "autoattach")
        assert res.rc == 0, res.err
        assert sorted(os.listdir(pin_dir / "links")) == ["a_rather_long_function_name",
                                                         "hello", "on_getppid"]
        assert pybpf("-j", "link", "show", "pinned", pin_dir / "links" / "on_getppid").json()[
            "type"] == "perf_event"
        before = int.from_bytes(points[1][:4], "little")
        for _ in range(3):
            os.getppid()
        assert int.from_bytes(points[1][:4], "little") >= before + 3


def test_load_reuses_a_global_data_map_by_name_and_idx(hello_obj, pin_dir, tmp_path):
    """``map name hello.bss MAP``: a global-data map (a name with a '.') replaced by an existing
    one, which the program then counts in; ``map idx`` names maps in the object's order."""
    (tmp_path / "pkt").write_bytes(bytes(64))
    order = list(ObjectSpec.from_file(hello_obj).maps)
    assert order[0] == "points"  # libbpf's order: .maps first, then the global data sections
    idx = str(order.index("hello.bss"))
    with Map.create("array", 4, 4, 1, name=uniq("bss"), flags=MapFlag.MMAPABLE) as bss:
        for n, handle in enumerate((["name", "hello.bss"], ["idx", idx]), 1):
            pin = pin_dir / f"hello{n}"
            res = pybpf("prog", "load", hello_obj, pin, "map", *handle, "id", bss.id)
            assert (res.rc, res.err) == (0, "")
            assert bss.id in _map_ids(pin).values() and "hello.bss" not in _map_ids(pin)
            assert pybpf("prog", "run", "pinned", pin, "data_in", tmp_path / "pkt").rc == 0
            assert int.from_bytes(bss[0], sys.byteorder) == n
        assert_error(pybpf("prog", "load", hello_obj, pin_dir / "x", "map", "idx", len(order), "id",
                           bss.id), f"map idx '{len(order)}' is out of range")


def test_load_errors(hello_obj, pin_dir, tmp_path):
    assert_error(pybpf("prog", "load", tmp_path / "none.o", pin_dir / "x"),
                 "failed to open object file")
    (tmp_path / "junk.o").write_bytes(b"\x7fELF" + bytes(60))
    assert_error(pybpf("prog", "load", tmp_path / "junk.o", pin_dir / "x"),
                 "failed to open object file")
    assert_error(pybpf("prog", "load", hello_obj, pin_dir / "x", "map", "name", "nope", "id", 1),
                 "get map by id")
    with Map.create("array", 4, 4, 1, name=uniq("w")) as wrong:
        res = pybpf("prog", "load", hello_obj, pin_dir / "x", "map", "name", "points", "id",
                    wrong.id)
        assert_error(res, "failed to load object file", "incompatible")
    assert_error(pybpf("prog", "load", hello_obj, "/tmp/not-bpffs/x"), "can't pin the object")
    assert not os.path.exists(pin_dir / "x")


def test_verifier_error_and_debug_log(clang, tmp_path, pin_dir):
    src = tmp_path / "bad.bpf.c"
    src.write_text('#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\n'
                   'SEC("xdp") int bad(struct xdp_md *ctx) { return *(int *)(long)ctx->data; }\n'
                   'char LICENSE[] SEC("license") = "GPL";\n')
    obj = tmp_path / "bad.bpf.o"
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-I", MULTIARCH_INCLUDE, "-c", str(src),
                    "-o", str(obj)], check=True)
    res = pybpf("prog", "load", obj, pin_dir / "bad")
    assert_error(res, "failed to load object file", "outside of the packet")
    debug = pybpf("-d", "prog", "load", obj, pin_dir / "bad")
    assert debug.rc != 0 and "outside of the packet" in debug.err
    assert debug.err.count("\n") > 3  # the whole verifier log


def test_tracelog(hello_obj, pin_dir, tracefs, tmp_path):
    """``prog tracelog`` prints trace_pipe: the hello program's bpf_printk lines."""
    pin = pin_dir / "hello"
    assert pybpf("prog", "load", hello_obj, pin).rc == 0
    proc = subprocess.Popen([sys.executable, "-m", "pybpf.cli", "prog", "tracelog"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.5)
        (tmp_path / "pkt").write_bytes(bytes(64))
        marker_runs = pybpf("prog", "run", "pinned", pin, "data_in", tmp_path / "pkt", "repeat", 2)
        assert marker_runs.rc == 0
        deadline = time.monotonic() + 10
        line = ""
        while "Hello World" not in line and time.monotonic() < deadline:
            line = proc.stdout.readline()
        assert "Hello World" in line and "bpf_trace_printk" in line
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and "Traceback" not in err


def test_event_pipe(pin_dir):
    """``map event_pipe`` prints each perf sample: CPU, slot, the bytes."""
    with Map.create("perf_event_array", name=uniq("ev")) as events:
        events.pin(pin_dir / "events")
        code = assemble([
            mov64_reg(R6, R1),
            st(W, FP, -8, 0x44332211), st(W, FP, -4, 0x88776655),
            mov64_reg(R1, R6), ld_map_fd(R2, events.fd), ld_imm64(R3, 0xFFFFFFFF),
            mov64_reg(R4, FP), add64_imm(R4, -8), mov64_imm(R5, 8),
            call("perf_event_output"),
            mov64_imm(R0, 2), exit_()])
        with Program.load("xdp", code, name=uniq("evp")) as prog:
            proc = subprocess.Popen([sys.executable, "-m", "pybpf.cli", "map", "event_pipe",
                                     "pinned", pin_dir / "events"],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                deadline = time.monotonic() + 10
                while not select.select([proc.stdout], [], [], 0.1)[0]:
                    assert time.monotonic() < deadline and proc.poll() is None
                    prog.test_run(bytes(64))  # lost until the reader has its rings
                head = proc.stdout.readline()
                data = proc.stdout.readline()
            finally:
                proc.send_signal(signal.SIGINT)
                out, err = proc.communicate(timeout=10)
            assert head.startswith("== @") and " CPU: " in head and head.endswith("=====\n")
            # the raw sample as the kernel pads it (u32 size + data, 8-byte aligned), as bpftool
            assert data == "11 22 33 44 55 66 77 88  00 00 00 00\n"
            assert proc.returncode == 0 and "Traceback" not in err
    with Map.create("hash", 4, 4, 1) as other:
        assert_error(pybpf("map", "event_pipe", "id", other.id), "BPF_MAP_TYPE_PERF_EVENT_ARRAY")


def test_btf_dump_of_an_object_file(hello_obj):
    for fmt in ("raw", "c"):
        ours, theirs = pybpf("btf", "dump", "file", hello_obj, "format", fmt), \
            bpftool("btf", "dump", "file", hello_obj, "format", fmt)
        assert ours.rc == theirs.rc == 0 and ours.out == theirs.out
    assert pybpf("-j", "btf", "dump", "file", hello_obj).json() == \
        bpftool("-j", "btf", "dump", "file", hello_obj).json()
