"""``python3 -m pybpf.bcc SCRIPT``: the script runs as if it ran itself, ``bcc`` is pybpf's."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

RUNNER = [sys.executable, "-m", "pybpf.bcc"]


def run(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*RUNNER, str(script), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def test_script_sees_itself_as_main(tmp_path: Path) -> None:
    sub = tmp_path / "tools"
    sub.mkdir()
    (sub / "helper_mod.py").write_text("VALUE = 42\n")
    script = sub / "tool.py"
    script.write_text(
        "import os, sys\n"
        "import bcc, bcc.table\n"
        "from bcc import BPF, DEBUG_BPF\n"
        "import helper_mod\n"          # found next to the script: sys.path[0]
        "print(__name__, __file__, sys.argv, sys.path[0], os.getcwd(), sep='|')\n"
        "print(bcc.__name__, bcc.table.__name__, BPF.__module__, DEBUG_BPF, helper_mod.VALUE,\n"
        "      sys.modules['__main__'].__file__ == __file__, sep='|')\n")
    out = run(Path("tools/tool.py"), "-x", "1", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    first, second = out.stdout.splitlines()
    assert first.split("|") == ["__main__", str(script), str(["tools/tool.py", "-x", "1"]),
                                str(sub), str(tmp_path)]
    assert second.split("|") == ["pybpf.bcc", "pybpf.bcc.table", "pybpf.bcc.bpf", "2", "42",
                                 "True"]


def test_alias_is_this_process_only(tmp_path: Path) -> None:
    """A child Python started by the script resolves ``bcc`` as it would without pybpf."""
    plain = subprocess.run([sys.executable, "-c",
                            "import importlib.util; print(importlib.util.find_spec('bcc'))"],
                           capture_output=True, text=True, check=True).stdout
    script = tmp_path / "child.py"
    script.write_text(
        "import subprocess, sys\n"
        "import bcc\n"
        "print(subprocess.run([sys.executable, '-c', 'import importlib.util; "
        "print(importlib.util.find_spec(\"bcc\"))'], capture_output=True, text=True).stdout,"
        " end='')\n")
    out = run(script, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout == plain
    assert "pybpf" not in plain


def test_exit_status_and_traceback_are_the_scripts(tmp_path: Path) -> None:
    script = tmp_path / "fails.py"
    script.write_text("import sys\n"
                      "def boom():\n"
                      "    raise ValueError('boom')\n"
                      "if sys.argv[1] == 'exit':\n"
                      "    sys.exit(7)\n"
                      "if sys.argv[1] == 'missing':\n"
                      "    import bcc.no_such_module\n"
                      "boom()\n")
    assert run(script, "exit", cwd=tmp_path).returncode == 7
    out = run(script, "raise", cwd=tmp_path)
    assert out.returncode == 1
    assert out.stderr.startswith("Traceback (most recent call last):\n"
                                 f'  File "{script}", line 8, in <module>')
    assert "pybpf" not in out.stderr and "runpy" not in out.stderr
    assert out.stderr.rstrip().endswith("ValueError: boom")
    out = run(script, "missing", cwd=tmp_path)
    assert out.returncode == 1
    assert "No module named 'bcc.no_such_module'" in out.stderr


def test_missing_script(tmp_path: Path) -> None:
    out = run(tmp_path / "nope.py", cwd=tmp_path)
    assert out.returncode == 2
    assert "can't open file" in out.stderr and "nope.py" in out.stderr
    out = subprocess.run(RUNNER, capture_output=True, text=True)
    assert out.returncode == 2 and "usage:" in out.stderr


def test_ctrl_c_ends_as_python_does(tmp_path: Path) -> None:
    script = tmp_path / "loop.py"
    script.write_text("import time\nprint('ready', flush=True)\nwhile True:\n    time.sleep(1)\n")
    p = subprocess.Popen([*RUNNER, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline() == "ready\n"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        p.kill()
    assert p.returncode == -signal.SIGINT
    assert err.rstrip().endswith("KeyboardInterrupt")
    assert "pybpf" not in err


def test_trace_print_with_format(tmp_path: Path, script_runner, tracefs) -> None:
    """A BCC script printing bpf_trace_printk lines with ``trace_print(fmt=...)`` forever: the
    test's process triggers it and reads the formatted line."""
    marker = uuid.uuid4().hex[:10]
    script = tmp_path / "printer.py"
    script.write_text(
        "import sys\n"
        "from bcc import BPF\n"
        "text = r'''\n"
        "TRACEPOINT_PROBE(syscalls, sys_enter_getppid) {\n"
        "    if ((bpf_get_current_pid_tgid() >> 32) != PID) return 0;\n"
        "    bpf_trace_printk(\"MARKER %d\\n\", 7);\n"
        "    return 0;\n"
        "}\n"
        "'''.replace('PID', sys.argv[1]).replace('MARKER', sys.argv[2])\n"
        "b = BPF(text=text)\n"
        "print('ready', flush=True)\n"
        "b.trace_print(fmt='{1} {5}')\n")
    s = script_runner(str(script), str(os.getpid()), marker)
    s.wait_line(lambda line: line == "ready")
    expected = f"{os.getpid()} b'{marker} 7'"
    for _ in range(20):  # trace_pipe is shared: another reader may take a line
        os.getppid()
        try:
            s.wait_line(lambda line: line == expected, timeout=3)
            break
        except AssertionError:
            continue
    else:
        raise AssertionError(f"no {expected!r} line")
    s.proc.send_signal(signal.SIGINT)
    s.proc.wait(timeout=30)
    assert s.proc.returncode == -signal.SIGINT


def test_installed_bcc_is_shadowed_in_the_runner_only(tmp_path: Path) -> None:
    """With another ``bcc`` package importable (Debian's python3-bpfcc, here a stand-in on
    PYTHONPATH), the runner's script gets pybpf's and a plain interpreter still gets it."""
    site = tmp_path / "site"
    (site / "bcc").mkdir(parents=True)
    (site / "bcc" / "__init__.py").write_text("WHO = 'installed bcc'\n")
    script = tmp_path / "which.py"
    script.write_text("import bcc\nprint(getattr(bcc, 'WHO', bcc.__name__))\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(site), *filter(None, [os.environ.get("PYTHONPATH")])]))
    ours = subprocess.run([*RUNNER, str(script)], capture_output=True, text=True, env=env)
    plain = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                           env=env)
    assert ours.stdout == "pybpf.bcc\n", ours.stderr
    assert plain.stdout == "installed bcc\n", plain.stderr
