"""Helpers for the CLI tests: run pybpf (in this process or as the real command) and bpftool,
and compare their JSON and plain outputs."""
from __future__ import annotations

import contextlib
import io
import json
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import Any

from pybpf.cli import main


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def pybpf(*args: str) -> Result:
    """``pybpf ARGS`` in this process (objects the test holds stay visible)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main([str(a) for a in args])
    return Result(rc, out.getvalue(), err.getvalue())


def pybpf_cmd(*args: str, **kw: Any) -> Result:
    """``pybpf ARGS`` as a separate process (the real entry point)."""
    r = subprocess.run([sys.executable, "-m", "pybpf.cli", *map(str, args)],
                       capture_output=True, text=True, **kw)
    return Result(r.returncode, r.stdout, r.stderr)


def bpftool(*args: str) -> Result:
    r = subprocess.run(["bpftool", *map(str, args)], capture_output=True, text=True)
    return Result(r.returncode, r.stdout, r.stderr)


def assert_json_superset(ours: Any, theirs: Any, path: str = "") -> None:
    """Every field bpftool prints is in pybpf's output with the same value (pybpf may add
    fields); ``loaded_at`` may differ by a second (both compute it from two clocks)."""
    if isinstance(theirs, dict):
        assert isinstance(ours, dict), f"{path}: {ours!r} is not an object"
        for key, value in theirs.items():
            assert key in ours, f"{path}.{key} missing from pybpf's output {ours!r}"
            if key == "loaded_at":
                assert abs(ours[key] - value) <= 1, f"{path}.loaded_at {ours[key]} != {value}"
                continue
            assert_json_superset(ours[key], value, f"{path}.{key}")
    elif isinstance(theirs, list):
        assert isinstance(ours, list) and len(ours) == len(theirs), \
            f"{path}: {ours!r} != {theirs!r}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_json_superset(a, b, f"{path}[{i}]")
    else:
        assert ours == theirs, f"{path}: pybpf {ours!r} != bpftool {theirs!r}"


_LOADED = re.compile(r"loaded_at (\S+)")


def assert_same_lines(ours: str, theirs: str) -> None:
    """Plain outputs equal line by line (a load time may differ by a second)."""
    a, b = ours.splitlines(), theirs.splitlines()
    assert len(a) == len(b), f"pybpf:\n{ours}\nbpftool:\n{theirs}"
    for x, y in zip(a, b):
        if x != y and _LOADED.search(x) and _LOADED.search(y):
            from datetime import datetime
            tx = datetime.strptime(_LOADED.search(x).group(1), "%Y-%m-%dT%H:%M:%S%z")
            ty = datetime.strptime(_LOADED.search(y).group(1), "%Y-%m-%dT%H:%M:%S%z")
            assert abs((tx - ty).total_seconds()) <= 1
            assert _LOADED.sub("", x) == _LOADED.sub("", y)
            continue
        assert x == y, f"pybpf:\n{ours}\nbpftool:\n{theirs}"


def same(*args: str) -> tuple[Result, Result]:
    """Run both tools with ``args``, plain and ``-j``; assert they agree; return the plain pair."""
    ours, theirs = pybpf(*args), bpftool(*args)
    assert theirs.rc == 0, f"bpftool {' '.join(map(str, args))} failed: {theirs.err}"
    assert ours.rc == 0, f"pybpf failed: {ours.err}"
    assert_same_lines(ours.out, theirs.out)
    jo, jt = pybpf("-j", *args), bpftool("-j", *args)
    assert_json_superset(jo.json(), jt.json())
    return ours, theirs


def assert_error(res: Result, *fragments: str) -> None:
    """A one-line ``Error: ...`` on stderr, non-zero exit, no traceback."""
    assert res.rc != 0
    lines = res.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.err
    assert "Traceback" not in res.err
    for f in fragments:
        assert f in lines[0], f"{f!r} not in {lines[0]!r}"


def uniq(prefix: str) -> str:
    """A map/program name unique to this test run (the kernel keeps 15 characters)."""
    import os
    import uuid
    return f"{prefix}{os.getpid() % 1000}{uuid.uuid4().hex[:4]}"[:15]
