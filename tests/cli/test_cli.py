"""The ``pybpf`` command itself: global options, the strace-format trace, errors, start-up."""
from __future__ import annotations

import json
import subprocess
import sys

from pybpf.maps import Map

from tests.cli.tools import assert_error, bpftool, pybpf, pybpf_cmd, uniq


def test_version_and_help():
    from pybpf import __version__
    assert pybpf("version").out == f"pybpf v{__version__}\n"
    assert pybpf("-V").out == f"pybpf v{__version__}\n"
    assert pybpf("-j", "version").json()["version"] == __version__
    res = pybpf("map", "help")
    assert res.rc == 0 and "pybpf map { show | list }" in res.err
    assert pybpf("-j", "map", "help").out == "null\n"
    usage = pybpf()
    assert usage.rc != 0 and usage.err.startswith("Usage: pybpf")


def test_options_anywhere_and_combined():
    with Map.create("hash", 4, 4, 4, name=uniq("opt")) as m:
        plain = pybpf("-j", "map", "show", "id", m.id).out
        assert pybpf("map", "show", "id", m.id, "--json").out == plain
        pretty = pybpf("-jp", "map", "show", "id", m.id).out
        assert json.loads(pretty) == json.loads(plain) and pretty.startswith("{\n    \"id\": ")
        assert pretty == bpftool("-jp", "map", "show", "id", m.id).out
        assert pybpf("--pretty", "map", "show", "id", m.id).out == pretty
    assert_error(pybpf("--frobnicate", "map", "show"), "unrecognized option '--frobnicate'")


def test_trace_prints_every_bpf_call_on_stderr():
    with Map.create("hash", 4, 4, 4, name=uniq("trc")) as m:
        m[1] = 2
        res = pybpf_cmd("--trace", "map", "lookup", "id", m.id, "key", 1, 0, 0, 0)
    assert res.rc == 0 and res.out == "key: 01 00 00 00  value: 02 00 00 00\n"
    calls = [line for line in res.err.splitlines() if line.startswith("bpf(")]
    assert any(c.startswith("bpf(BPF_MAP_GET_FD_BY_ID, {map_id=") for c in calls)
    assert any(c.startswith("bpf(BPF_MAP_LOOKUP_ELEM, {map_fd=") and c.endswith("= 0")
               for c in calls)
    assert len(calls) == len(res.err.splitlines()), res.err


def test_json_errors_and_exit_codes():
    res = pybpf("-j", "map", "show", "id", 4000000000)
    assert res.rc == 254 and res.err == ""
    assert "get map by id (4000000000)" in res.json()["error"]
    res = pybpf("-j", "blah")
    assert res.rc != 0 and "unknown object" in res.json()["error"]


def test_real_command_never_prints_a_traceback(tmp_path):
    for args in (["map", "show", "id", "x"], ["prog", "load", tmp_path / "x.o", tmp_path / "p"],
                 ["btf", "dump", "file", tmp_path], ["map", "update"], ["net", "show", "dev"]):
        res = pybpf_cmd(*args)
        assert_error(res)


def test_output_to_a_closed_pipe_is_quiet():
    """``pybpf btf dump ... | head -1``: no BrokenPipeError traceback."""
    cmd = (f"{sys.executable} -m pybpf.cli btf dump file /sys/kernel/btf/vmlinux | head -1")
    res = subprocess.run(["sh", "-c", cmd], capture_output=True, text=True)
    assert res.stdout.startswith("[1] ") and res.stderr == ""


def test_startup_imports_stay_light():
    """Showing the version imports no BTF, ELF or event machinery."""
    code = ("import sys; from pybpf.cli import main; main(['version']); "
            "print(sorted(m for m in sys.modules if m.startswith('pybpf')))")
    mods = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True,
                                     text=True).stdout.splitlines()[-1].replace("'", '"'))
    assert not [m for m in mods if m.startswith(("pybpf.btf", "pybpf.elf", "pybpf.events",
                                                 "pybpf.maps", "pybpf.links"))], mods
