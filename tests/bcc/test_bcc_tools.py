"""BCC's own tools (Debian's ``bpfcc-tools``, a peer: run from /usr/sbin, never copied) run
unchanged through ``python3 -m pybpf.bcc``, checked as BCC's smoke test checks them: a tool with
a duration or count exits 0 by itself with output; a streaming tool is still running after 5 s
and exits 0 on SIGINT. Each tool's output is checked against events a workload of the test
causes (its own copy of Debian's python3, which has USDT probes), and the programs, maps and
links the tool held are gone once it ended. All tools run at once to keep the module short."""
from __future__ import annotations

import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Optional

import pytest

from pybpf import features
from pybpf.bcc.syscall import syscall_name

from .bcc_peer import SYSTEM_PYTHON
from .conftest import Script, alive, held_objects

TOOLS = Path("/usr/sbin")
PYTHON_USDT = Path(os.path.realpath("/usr/bin/python3"))  # Debian's, built with USDT probes
BCC_PEER = Path("/usr/lib/python3/dist-packages/bcc/__init__.py")

WORKLOAD = """
import gc, os, socket, sys, time
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
print(srv.getsockname()[1], flush=True)
while True:
    os.getppid()
    gc.collect()
    socket.getaddrinfo("localhost", None)
    c = socket.create_connection(srv.getsockname())
    a, _ = srv.accept()
    c.sendall(b"x" * 100)
    a.recv(100)
    c.close()
    a.close()
    time.sleep(0.05)
"""


@dataclass
class Workload:
    pid: int
    comm: str
    exe: Path
    port: int
    short: Path  # a copy of /bin/true with a unique name, run by the exec tools' drivers


@dataclass
class Run:
    args: list[str]
    rc: Optional[int] = None
    out: list[str] = field(default_factory=list)
    err: str = ""
    ran_5s: bool = False
    held: dict[str, set[int]] = field(default_factory=dict)
    left: dict[str, set[int]] = field(default_factory=dict)


def _run(args: list[str], streaming: bool, drive: Optional[Callable[[], None]] = None) -> Run:
    """Run ``/usr/sbin/<tool>-bpfcc ARGS`` under the runner, noting the BPF objects it holds
    meanwhile; a streaming tool gets SIGINT once it has run 5 s, printed its header, attached
    and had its events caused by ``drive``."""
    run = Run(args)  # a tool with a duration is driven too, once attached
    script = Script([str(TOOLS / f"{args[0]}-bpfcc"), *args[1:]],
                    env={**os.environ, "PYTHONUNBUFFERED": "1"})
    start = time.monotonic()
    driven: Optional[float] = None
    ended = False
    try:
        while script.proc.poll() is None and time.monotonic() - start < 60:
            try:
                for kind, ids in held_objects(script.proc.pid).items():
                    run.held.setdefault(kind, set()).update(ids)
            except OSError:
                break  # it just exited
            while not script.lines.empty():
                line = script.lines.get()
                ended = line is None
                if not ended:
                    run.out.append(line)
            if driven is None and run.out and run.held.get("link"):
                if drive is not None:
                    time.sleep(0.3)  # its other attachments (one is there)
                    drive()
                driven = time.monotonic()
            if streaming and driven is not None and time.monotonic() > max(start + 5,
                                                                           driven + 1.5):
                run.ran_5s = script.proc.poll() is None
                script.proc.send_signal(signal.SIGINT)
                streaming = False
            time.sleep(0.1)
        run.rc = script.proc.wait(timeout=30)
        while not ended and (line := script.lines.get(timeout=10)) is not None:
            run.out.append(line)
        run.err = script.proc.stderr.read() if script.proc.stderr else ""
    finally:
        script.kill()
    run.left = alive(run.held)
    return run


def _bash_session(marker: str) -> Callable[[], None]:
    """An interactive bash on a pseudo-terminal (so it reads commands with readline)."""
    def drive() -> None:
        master, slave = pty.openpty()
        bash = subprocess.Popen(["/bin/bash", "--norc", "--noprofile", "-i"], stdin=slave,
                                stdout=slave, stderr=slave, start_new_session=True)
        os.close(slave)
        try:
            for _ in range(3):
                os.write(master, f"echo {marker}\n".encode())
                time.sleep(0.2)
                os.read(master, 4096)
            os.write(master, b"exit\n")
            bash.wait(timeout=5)
        finally:
            os.close(master)
            bash.kill()
            bash.wait()
    return drive


@pytest.fixture(scope="module")
def workload(tmp_path_factory) -> Iterator[Workload]:
    if not (TOOLS / "runqlat-bpfcc").exists():
        pytest.skip("BCC's tools are not installed (Debian package bpfcc-tools)")
    if not PYTHON_USDT.exists():
        pytest.skip(f"{PYTHON_USDT} (Debian's python3, with USDT probes) is not installed")
    d = tmp_path_factory.mktemp("tools")
    d.chmod(0o755)
    exe = d / f"pyw{uuid.uuid4().hex[:9]}"
    shutil.copy(PYTHON_USDT, exe)
    short = d / f"pbx{uuid.uuid4().hex[:9]}"
    shutil.copy("/bin/true", short)
    proc = subprocess.Popen([str(exe), "-c", WORKLOAD], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        yield Workload(proc.pid, exe.name, exe, port, short)
    finally:
        proc.kill()
        proc.wait()


def _disk_write(directory: Path) -> None:
    """Data written to the disk and waited for: its completion interrupts (a hard IRQ)."""
    with open(directory / "io", "wb") as f:
        f.write(os.urandom(1 << 16))
        f.flush()
        os.fsync(f.fileno())


def _repeat(action: Callable[[], object]) -> Callable[[], None]:
    def drive() -> None:
        for _ in range(3):
            action()
            time.sleep(0.1)
    return drive


@pytest.fixture(scope="module")
def runs(workload: Workload) -> dict[str, Run]:
    """Every tool of the host list, run concurrently while the workload runs."""
    pid, usdt = str(workload.pid), f"u:{workload.exe}:gc__start"
    marker = f"pybpf{uuid.uuid4().hex[:8]}"
    jobs: dict[str, tuple] = {
        "runqlat": (["runqlat", "1", "1"], False),
        "biolatency": (["biolatency", "-Q", "1", "1"], False),
        "profile": (["profile", "-F", "49", "2"], False),
        "syscount": (["syscount", "-p", pid, "-T", "50", "-d", "2"], False),
        "tcplife": (["tcplife", "-p", pid], True),
        "bashreadline": (["bashreadline"], True, _bash_session(marker)),
        "gethostlatency": (["gethostlatency", "-p", pid], True),
        "funccount-t": (["funccount", "-p", pid, "-d", "2", "t:syscalls:sys_enter_getppid"], False),
        "funccount-c": (["funccount", "-p", pid, "-d", "2", "c:getppid"], False),
        "funccount-u": (["funccount", "-p", pid, "-d", "2", usdt], False),
        "stackcount-t": (["stackcount", "-p", pid, "-D", "2", "t:syscalls:sys_enter_getppid"],
                         False),
        "stackcount-c": (["stackcount", "-p", pid, "-U", "-D", "2", "c:getppid"], False),
        "stackcount-u": (["stackcount", "-p", pid, "-D", "2", usdt], False),
        "trace-t": (["trace", "-p", pid, "-M", "3",
                     't:syscalls:sys_enter_getppid "nr=%d", args->__syscall_nr'], False),
        "trace-c": (["trace", "-p", pid, "-M", "3", 'r:c:getppid "ppid=%d", retval'], False),
        "trace-u": (["trace", "-p", pid, "-M", "3", f'{usdt} "gen=%d", arg1'], False),
        "argdist-t": (["argdist", "-p", pid, "-i", "1", "-n", "1", "-C",
                       "t:syscalls:sys_enter_getppid():int:args->__syscall_nr"], False),
        "argdist-c": (["argdist", "-p", pid, "-i", "1", "-n", "1", "-C",
                       "r:c:getppid():int:$retval"], False),
        "argdist-u": (["argdist", "-p", pid, "-i", "1", "-n", "1", "-H",
                       f"{usdt}():int:arg1"], False),
        # more tools this kernel can run: syscall tracepoints for kprobes on syscalls,
        # tracepoints, perf events
        "execsnoop": (["execsnoop"], True, _repeat(lambda: subprocess.run([workload.short]))),
        "exitsnoop": (["exitsnoop"], True, _repeat(lambda: subprocess.run([workload.short]))),
        "killsnoop": (["killsnoop", "-T", pid], True, _repeat(lambda: os.kill(workload.pid, 0))),
        "syncsnoop": (["syncsnoop"], True, _repeat(os.sync)),
        "opensnoop": (["opensnoop", "-p", pid], True),
        "statsnoop": (["statsnoop"], True, _repeat(lambda: os.statvfs(workload.short))),
        "tcpstates": (["tcpstates", "-L", str(workload.port)], True),
        "softirqs": (["softirqs", "1", "1"], False),
        "hardirqs": (["hardirqs", "1", "1"], False,
                     _repeat(lambda: _disk_write(workload.short.parent))),
        "runqlen": (["runqlen", "1", "1"], False),
        "wakeuptime": (["wakeuptime", "-p", pid, "1"], False),
        "tcpconnect": (["tcpconnect"], False),  # kprobes only
    }
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(_run, *job) for name, job in jobs.items()}
        done = {name: f.result() for name, f in futures.items()}
    done["bashreadline"].args.append(marker)  # what the session typed
    return done


def ok(run: Run, streaming: bool = False) -> str:
    """The tool's output, after the smoke test's checks and the kernel-objects check."""
    assert run.rc == 0, (run.args, run.rc, run.out, run.err)
    if streaming:
        assert run.ran_5s, (run.args, run.out, run.err)
    assert run.out, (run.args, run.err)
    assert any(run.held.values()), (run.args, "held no BPF object while running")
    assert not any(run.left.values()), (run.args, "left in the kernel", run.left)
    return "\n".join(run.out)


def test_runqlat(runs: dict[str, Run]) -> None:
    out = ok(runs["runqlat"])
    assert re.search(r"usecs\s+: count\s+distribution", out)
    counts = [int(m) for m in re.findall(r"^\s*\d+ -> \d+\s+: (\d+)\s+\|", out, re.M)]
    assert counts and sum(counts) > 0


@pytest.mark.parametrize("tool,probe,header", [
    ("biolatency", "kprobe blk_account_io_start", "Tracing block device I/O"),  # -Q
    ("tcpconnect", "kprobe tcp_v4_connect", "PID    COMM         IP SADDR"),
])
def test_kprobe_tools(runs: dict[str, Run], tool: str, probe: str, header: str) -> None:
    """Tools that need kprobes run where the kernel has them; elsewhere they end with one
    line, the probe's reason, and exit 1."""
    run = runs[tool]
    support = features.kprobes()
    if support:
        assert header in ok(run, streaming=tool == "tcpconnect")
        return
    assert run.rc == 1 and not run.out
    lines = run.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.err, run.err
    assert lines[0].startswith(f"{tool}-bpfcc: {probe}")
    assert support.reason in lines[0]


def test_profile(runs: dict[str, Run]) -> None:
    out = ok(runs["profile"])
    assert out.startswith("Sampling at 49 Hertz of all threads by user + kernel stack for 2 secs")
    stacks = re.findall(r"^    -\s+(\S+) \((\d+)\)\n\s+(\d+)$", out, re.M)
    assert stacks and all(int(count) > 0 for _, _, count in stacks)
    with open("/proc/kallsyms") as f:
        kernel = {line.split()[2] for line in f}
    frames = {line.strip() for line in out.splitlines() if line.startswith("    ")}
    assert frames & kernel, "no kernel frame symbolized"


def test_syscount(runs: dict[str, Run]) -> None:
    out = ok(runs["syscount"])
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out, re.M))
    assert int(counts["getppid"]) >= 10, out


def test_tcplife(runs: dict[str, Run], workload: Workload) -> None:
    out = ok(runs["tcplife"], streaming=True)
    rows = [line.split() for line in out.splitlines()[1:]]
    ours = [r for r in rows if r[0] == str(workload.pid) and str(workload.port) in (r[3], r[5])]
    assert ours and {r[2] for r in ours} == {"127.0.0.1"}, out
    assert any(int(r[6]) + int(r[7]) == 0 for r in ours)  # 100 bytes round to 0 KB


def test_bashreadline(runs: dict[str, Run]) -> None:
    run = runs["bashreadline"]
    out = ok(run, streaming=True)
    marker = run.args[-1]
    assert out.splitlines()[0].split() == ["TIME", "PID", "COMMAND"]
    assert len(re.findall(rf"\d+\s+echo {marker}$", out, re.M)) == 3, out


def test_gethostlatency(runs: dict[str, Run], workload: Workload) -> None:
    out = ok(runs["gethostlatency"], streaming=True)
    rows = [line.split() for line in out.splitlines()[1:]]
    ours = [r for r in rows if r[1] == str(workload.pid) and r[-1] == "localhost"]
    assert ours and all(float(r[-2]) >= 0 for r in ours), out


@pytest.mark.parametrize("spec,name", [("t", "syscalls:sys_enter_getppid"),
                                       ("c", "getppid"), ("u", "gc__start")])
def test_funccount(runs: dict[str, Run], spec: str, name: str) -> None:
    out = ok(runs[f"funccount-{spec}"])
    count = re.search(rf"^{re.escape(name)}\s+(\d+)$", out, re.M)
    assert count and int(count.group(1)) >= 10, out  # 20 calls/s for 2 s


def test_stackcount_tracepoint(runs: dict[str, Run]) -> None:
    out = ok(runs["stackcount-t"])  # kernel frames, then the user's (getppid's in libc)
    assert re.search(r"^  do_syscall_64\n(  .*\n)*  getppid\n(  .*\n)*    \d+$", out, re.M), out


def test_stackcount_uprobe(runs: dict[str, Run]) -> None:
    out = ok(runs["stackcount-c"])
    count = re.search(r"^  getppid\n(  .*\n)*    (\d+)$", out, re.M)
    assert count and int(count.group(2)) >= 10, out


def test_stackcount_usdt_fails_as_in_bcc(runs: dict[str, Run]) -> None:
    """stackcount 0.26's USDT path is broken on Python 3 in BCC itself: Debian's BCC fails
    calling ``.encode()`` on the bytes ``find_library`` returns (our ``USDT`` takes bytes), and
    then the tool matches its str pattern against ``USDTProbe.name``, bytes in both APIs. The
    tool prints the error in one line and exits 0, with both."""
    run = runs["stackcount-u"]
    if not BCC_PEER.exists():
        pytest.skip("Debian's python3-bpfcc (the peer) is not installed")
    plain = subprocess.run([SYSTEM_PYTHON, str(TOOLS / "stackcount-bpfcc"), *run.args[1:]],
                           capture_output=True, text=True, timeout=60)
    assert (plain.returncode, plain.stdout) == (0, "'bytes' object has no attribute 'encode'\n")
    assert (run.rc, run.out) == (0, ["cannot use a string pattern on a bytes-like object"])


def _trace_values(run: Run, key: str) -> list[int]:
    out = ok(run)
    assert out.splitlines()[0].split() == ["PID", "TID", "COMM", "FUNC", "-"]
    return [int(v) for v in re.findall(rf" {key}=(\d+)$", out, re.M)]


def test_trace(runs: dict[str, Run]) -> None:
    nrs = _trace_values(runs["trace-t"], "nr")
    assert len(nrs) == 3 and {syscall_name(n) for n in nrs} == {b"getppid"}
    assert _trace_values(runs["trace-c"], "ppid") == [os.getpid()] * 3
    assert _trace_values(runs["trace-u"], "gen") == [2] * 3  # gc.collect(): generation 2


def test_argdist(runs: dict[str, Run]) -> None:
    counts = re.findall(r"^\t(\d+)\s+args->__syscall_nr = (\d+)$", ok(runs["argdist-t"]), re.M)
    assert len(counts) == 1 and syscall_name(int(counts[0][1])) == b"getppid"
    assert int(counts[0][0]) >= 5
    counts = re.findall(r"^\t(\d+)\s+\$retval = (\d+)$", ok(runs["argdist-c"]), re.M)
    assert len(counts) == 1 and int(counts[0][1]) == os.getpid() and int(counts[0][0]) >= 5
    out = ok(runs["argdist-u"])
    assert re.search(r"^\s+arg1\s+: count\s+distribution$", out, re.M)
    buckets = dict(re.findall(r"^\s+(\d+) -> \d+\s+: (\d+)\s", out, re.M))
    assert int(buckets["2"]) >= 5 and int(buckets["0"]) == 0, out


def test_execsnoop_and_exitsnoop(runs: dict[str, Run], workload: Workload) -> None:
    name = workload.short.name
    out = ok(runs["execsnoop"], streaming=True)
    assert out.splitlines()[0].split() == ["PCOMM", "PID", "PPID", "RET", "ARGS"]
    assert len(re.findall(rf"^{name}\s+\d+\s+{os.getpid()}\s+0 {workload.short}$", out,
                          re.M)) >= 3, out
    out = ok(runs["exitsnoop"], streaming=True)
    assert len(re.findall(rf"^{name}\s+\d+\s+{os.getpid()}\s+\d+\s+[\d.]+\s+0$", out,
                          re.M)) >= 3, out


def test_killsnoop_and_syncsnoop(runs: dict[str, Run], workload: Workload) -> None:
    out = ok(runs["killsnoop"], streaming=True)
    rows = [line.split() for line in out.splitlines()[1:]]  # TIME PID COMM SIG TPID RESULT
    assert [(r[1], r[3], r[4], r[5]) for r in rows] == \
        [(str(os.getpid()), "0", str(workload.pid), "0")] * 3, out
    out = ok(runs["syncsnoop"], streaming=True)
    assert len(re.findall(r"^[\d.]+\s+sync\(\)$", out, re.M)) >= 3, out


def test_statsnoop(runs: dict[str, Run], workload: Workload) -> None:
    """Without kprobes its __x64_sys_stat probe, a function no syscall table calls, is said
    never to fire; statfs and the others run on their syscall tracepoints."""
    out = ok(runs["statsnoop"], streaming=True)
    # the tool reads NAME_MAX bytes at the path's address: that fails (an empty path) when
    # they cross into an unmapped page, with BCC too
    assert re.search(rf"^{os.getpid()}\s+\S+\s+0\s+0 {workload.short}$", out, re.M), out
    if not features.kprobes():
        assert "kprobe __x64_sys_stat would never fire" in runs["statsnoop"].err


def test_opensnoop_and_tcpstates(runs: dict[str, Run], workload: Workload) -> None:
    out = ok(runs["opensnoop"], streaming=True)
    assert re.search(rf"^{workload.pid}\s+{workload.comm}\s+\d+\s+0 /etc/hosts$", out,
                     re.M), out
    out = ok(runs["tcpstates"], streaming=True)
    rows = [line.split() for line in out.splitlines()[1:]]
    ours = {(r[7], r[9]) for r in rows if r[4] == str(workload.port)}
    assert {("SYN_RECV", "ESTABLISHED"), ("ESTABLISHED", "CLOSE_WAIT")} <= ours, out


@pytest.mark.parametrize("tool,header", [("softirqs", "SOFTIRQ"), ("hardirqs", "HARDIRQ")])
def test_irq_time(runs: dict[str, Run], tool: str, header: str) -> None:
    out = ok(runs[tool])
    rows = re.findall(rf"^{header}\s+TOTAL_usecs\n((?:\S+\s+\d+\n?)+)", out, re.M)
    assert rows and rows[0].strip(), out


def test_runqlen_and_wakeuptime(runs: dict[str, Run], workload: Workload) -> None:
    out = ok(runs["runqlen"])
    assert re.search(r"runqlen\s+: count\s+distribution", out)
    assert sum(int(c) for c in re.findall(r"^\s+\d+\s+: (\d+)\s+\|", out, re.M)) > 0
    out = ok(runs["wakeuptime"])  # the workload sleeps 50 ms a turn: woken by a timer
    assert re.search(rf"^    target:\s+{workload.comm}$", out, re.M), out
