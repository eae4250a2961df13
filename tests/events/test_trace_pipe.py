"""bpf_printk output through trace_pipe: line parsing, and a real program's messages."""
from __future__ import annotations

import os
import time
import uuid

import pytest

from pybpf.asm import DW, FP, R0, R1, R2, R3, add64_imm, assemble, call, exit_, ld_imm64, \
    mov64_imm, mov64_reg, stx
from pybpf.events import TraceEvent, TracePipe
from pybpf.programs import Program


@pytest.mark.parametrize("line, expect", [
    ("          python3-28880   [001] b..11   793.757130: bpf_trace_printk: hello 42",
     ("python3", 28880, 1, "b..11", 793.75713, "bpf_trace_printk", "hello 42")),
    ("  Web Content-dash-4567    [000] d.h2. 12.000001: bpf_trace_printk: a: b: c",
     ("Web Content-dash", 4567, 0, "d.h2.", 12.000001, "bpf_trace_printk", "a: b: c")),
    ("           <...>-12 (    -------) [003] ....  5.5: bpf_trace_printk: ",
     ("<...>", 12, 3, "....", 5.5, "bpf_trace_printk", "")),
    ("kworker/u8:1-99 [002] 100.25: some_func: text",
     ("kworker/u8:1", 99, 2, "", 100.25, "some_func", "text")),
])
def test_parse_lines(line, expect):
    ev = TraceEvent.parse(line)
    assert ev is not None
    assert (ev.task, ev.pid, ev.cpu, ev.flags, ev.timestamp, ev.function, ev.message) == expect


def test_other_lines_are_not_events():
    assert TraceEvent.parse("# tracer: nop") is None
    assert TraceEvent.parse("") is None


def printk_program(text: str, arg: int) -> bytes:
    """An XDP program calling bpf_trace_printk("<text> %d\\n", arg)."""
    fmt = f"{text} %d\n".encode() + b"\0"
    padded = fmt + bytes(-len(fmt) % 8)
    base = -len(padded)
    code = []
    for i in range(0, len(padded), 8):
        code += [ld_imm64(R1, int.from_bytes(padded[i:i + 8], "little")),
                 stx(DW, FP, R1, base + i)]
    code += [mov64_reg(R1, FP), add64_imm(R1, base), mov64_imm(R2, len(fmt)),
             mov64_imm(R3, arg), call("trace_printk"), mov64_imm(R0, 2), exit_()]
    return assemble(code)


@pytest.mark.usefixtures("tracefs")
def test_bpf_printk_messages_arrive():
    tag = f"pybpf-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with TracePipe() as tp, Program.load("xdp", printk_program(tag, 77)) as prog:
        prog.test_run(bytes(64), repeat=3)
        mine: list[TraceEvent] = []
        deadline = time.monotonic() + 5
        while len(mine) < 3 and time.monotonic() < deadline:
            mine += [e for e in tp.read(0.5) if e.message.startswith(tag)]
        assert [e.message for e in mine] == [f"{tag} 77"] * 3
        assert all(e.pid == os.getpid() and e.function == "bpf_trace_printk" for e in mine)
        t0 = time.monotonic()
        assert [e for e in tp.read(0.2) if e.message.startswith(tag)] == []
        assert time.monotonic() - t0 >= 0.19


@pytest.mark.usefixtures("tracefs")
def test_raw_lines_are_whole_trace_pipe_lines():
    """``lines()`` (what ``pybpf prog tracelog`` prints): the text of whole lines, unparsed."""
    tag = f"pybpf-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    with TracePipe(function=None) as tp, Program.load("xdp", printk_program(tag, 5)) as prog:
        prog.test_run(bytes(64))
        got: list[str] = []
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            got = [line for line in tp.lines(0.5) if tag in line]
        assert len(got) == 1 and "\n" not in got[0]
        assert got[0].endswith(f"bpf_trace_printk: {tag} 5")
        assert TraceEvent.parse(got[0]).pid == os.getpid()


def test_closed_pipe_is_a_clear_error(tracefs):
    tp = TracePipe()
    tp.close()
    tp.close()
    with pytest.raises(ValueError, match="closed"):
        tp.read(0)
