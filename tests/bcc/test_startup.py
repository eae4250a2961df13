"""A warm start: a script whose program was translated and compiled before imports neither the
translator nor the toolchain, runs no compiler, and behaves as the first run did; the
execsnoop-like tool the start-up benchmark runs reports what it should."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from .conftest import EXAMPLES, run_as

RUNNER = [sys.executable, "-m", "pybpf.bcc"]
# the translator and toolchain (cold paths), and what no tracing program needs
COLD_ONLY = ("pybpf.bcc.dialect", "pybpf.bcc.toolchain", "pybpf.bcc.build", "pybpf.bcc.scan",
             "pybpf.bcc.helpers", "pybpf.compile", "pybpf.elf.struct_ops", "pybpf.sys.helper_ids",
             "pybpf.sys.info", "pybpf.links.info", "pybpf.symbols")

SCRIPT = '''
import os, sys
from bcc import BPF

b = BPF(text=r"""
/* MARK */
BPF_HASH(calls, u32, u64);
int on_getppid(void *ctx) {
    u32 pid = bpf_get_current_pid_tgid() >> 32;
    calls.increment(pid);
    return 0;
}
""")
b.attach_kprobe(event=b.get_syscall_fnname("getppid"), fn_name="on_getppid")
for _ in range(3):
    os.getppid()
counts = {k.value: v.value for k, v in b["calls"].items()}
print("calls", counts.get(os.getpid()))
print("tables", list(b), "functions", sorted(b._functions))
cold = sorted(m for m in sys.modules if m.startswith(COLD_ONLY))
print("cold modules", ",".join(cold) or "-")
'''


def _run(script: Path) -> list[str]:
    out = subprocess.run([*RUNNER, str(script)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout.splitlines()


def test_warm_run_imports_no_translator_and_behaves_the_same(tmp_path: Path) -> None:
    script = tmp_path / "warm.py"
    script.write_text(f"COLD_ONLY = {COLD_ONLY!r}\n" +
                      SCRIPT.replace("MARK", f"pybpf test {uuid.uuid4()}"))  # a new program
    first = _run(script)
    assert first[-1].startswith("cold modules pybpf.bcc.build"), first  # translated, compiled
    second = _run(script)
    assert second[-1] == "cold modules -", second
    assert second[:-1] == first[:-1]
    assert first[0] == "calls 3" and first[1] == "tables ['calls'] functions ['on_getppid']"


def test_exec_snoop_tool_reports_an_exec(script_runner, caller: Path) -> None:
    tool = script_runner(str(EXAMPLES / "exec_snoop.py"), "-n", caller.name, "--count", "1")
    tool.wait_line(lambda line: line.startswith("PCOMM"))
    run_as(0, caller)
    line = tool.wait_line(lambda line: line.startswith(caller.name))[-1]
    comm, pid, ppid, ret, file = line.split()
    assert (comm, int(ppid), ret, file) == (caller.name, os.getpid(), "0", str(caller))
    assert int(pid) != os.getpid()
    assert tool.proc.wait(timeout=30) == 0
