"""The exporter against the running kernel: scrapes, health metrics, a failing map read,
/maps, what is served, start-up errors, and shutdown leaving nothing behind."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap

import pytest

from pybpf.errors import BPFError
from pybpf.exporter.config import read
from pybpf.exporter.decoders import Decoders
from pybpf.exporter.exporter import Exporter
from pybpf.programs import Program

from .conftest import exporter_command


def scrape(exporter: Exporter) -> str:
    from prometheus_client import CollectorRegistry, generate_latest
    registry = CollectorRegistry(auto_describe=False)
    registry.register(exporter)
    return generate_latest(registry).decode()


def value(text: str, series: str) -> float:
    m = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    assert m, f"{series} not in the exposition"
    return float(m.group(1))


def test_failing_map_read_is_reported_and_others_served(example_dir, named_command):
    decoders = Decoders()
    configs = read(str(example_dir), ["syscalls"], decoders.why_unknown)
    with Exporter(configs, decoders) as exporter:
        exporter.load()
        true_cmd = named_command("true")
        subprocess.run([true_cmd], check=True)
        text = scrape(exporter)
        assert value(text, f'ebpf_exporter_execs_total{{comm="{true_cmd.name}"}}') == 1
        assert value(text, 'ebpf_exporter_map_read_errors_total{config="syscalls",'
                           'map="syscalls_total"}') == 0
        # the map's fd number now holds /dev/null: the kernel refuses the next batch read
        null = os.open("/dev/null", os.O_RDONLY)
        os.dup2(null, exporter.loaded[0].collection.maps["syscalls_total"].fd)
        os.close(null)
        text = scrape(exporter)
        assert value(text, 'ebpf_exporter_map_read_errors_total{config="syscalls",'
                           'map="syscalls_total"}') == 1
        assert "ebpf_exporter_syscalls_total{" not in text
        assert value(text, f'ebpf_exporter_execs_total{{comm="{true_cmd.name}"}}') == 1
        assert value(text, 'ebpf_exporter_map_entries{config="syscalls",map="execs_total"}') >= 1
        assert value(text, "ebpf_exporter_scrape_duration_seconds") > 0


def test_debug_maps_page_and_nothing_else_served(example_dir, run_exporter, named_command):
    exp = run_exporter(example_dir, "syscalls,timers", "--debug", "--bpf.enable-stats",
                       "--web.telemetry-path", "/m")
    subprocess.run([named_command("sleep"), "0.01"], check=True)
    status, _, body = exp.get("/maps")
    text = body.decode()
    assert status == 200
    assert "## Config: syscalls" in text and "### Map: execs_total" in text
    assert re.search(r"^[0-9a-f]{16} \(labels: \['hrtimer_wakeup'\]\) -> \d+$", text, re.M), text
    assert exp.get("/m")[0] == 200
    assert exp.get("/metrics")[0] == 404
    assert exp.get("/etc/passwd")[0] == 404
    _, _, body = exp.get("/m")
    text = body.decode()
    ids = re.findall(r'ebpf_exporter_ebpf_program_info\{config="(\w+)",id="(\d+)",'
                     r'program="(\w+)",tag="([0-9a-f]{16})"\} 1.0', text)
    assert sorted((c, p) for c, _, p, _ in ids) == [("syscalls", "count_exec"),
                                                    ("syscalls", "count_syscall"),
                                                    ("timers", "hrtimer_expire")]
    for _, pid, _, _ in ids:
        assert value(text, f'ebpf_exporter_ebpf_program_attached{{id="{pid}"}}') == 1
    syscall_id = next(pid for _, pid, p, _ in ids if p == "count_syscall")
    assert value(text, f'ebpf_exporter_ebpf_program_run_count_total{{id="{syscall_id}"}}') > 0
    run_time = f'ebpf_exporter_ebpf_program_run_time_seconds_total{{id="{syscall_id}"}}'
    assert value(text, run_time) > 0
    status, stderr = exp.stop()
    assert status == 0, stderr
    for _, pid, _, _ in ids:  # SIGTERM detached and unloaded everything
        with pytest.raises(BPFError):
            Program.from_id(int(pid))


def test_without_debug_no_maps_page(example_dir, run_exporter):
    exp = run_exporter(example_dir, "timers")
    assert exp.get("/maps")[0] == 404
    assert exp.get("/")[0] == 200


def start_failure(config_dir, names: str, *extra: str) -> str:
    r = subprocess.run(exporter_command(config_dir, names, "--web.listen-address",
                                        "127.0.0.1:0", *extra),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_start_up_errors_are_one_line(example_dir, tmp_path):
    shutil.copy(example_dir / "timers.bpf.o", tmp_path / "bad.bpf.o")
    (tmp_path / "bad.yaml").write_text(textwrap.dedent("""
        metrics:
          counters:
            - name: hrtimer_expiries_total
              help: H
              labels:
                - {name: function, size: 4, decoders: [{name: uint}]}
        """))
    assert start_failure(tmp_path, "bad") == (
        f"Error: config 'bad': {tmp_path}/bad.bpf.o: map 'hrtimer_expiries_total': key size 8 "
        "does not match the labels' sizes and paddings (4 bytes)")
    (tmp_path / "nomap.yaml").write_text("metrics: {counters: [{name: nope_total, help: N}]}")
    shutil.copy(example_dir / "timers.bpf.o", tmp_path / "nomap.bpf.o")
    assert start_failure(tmp_path, "nomap") == (
        f"Error: config 'nomap': {tmp_path}/nomap.bpf.o: metrics.counters 'nope_total': the "
        "object has no map of that name (maps: hrtimer_expiries_total)")
    assert start_failure(tmp_path, "missing").startswith(
        f"Error: config 'missing': cannot read {tmp_path}/missing.yaml: No such file")


def test_verifier_refusal_names_config_and_program(tmp_path):
    (tmp_path / "refused.bpf.c").write_text(textwrap.dedent("""
        #include "vmlinux.h"
        #include <bpf/bpf_helpers.h>
        struct { __uint(type, BPF_MAP_TYPE_HASH); __uint(max_entries, 4);
                 __type(key, u32); __type(value, u64); } counts_total SEC(".maps");
        SEC("tracepoint/sched/sched_process_exec")
        int reads_null(void *ctx)
        {
            u32 k = 0;
            u64 *v = bpf_map_lookup_elem(&counts_total, &k);
            return *v;          /* no NULL check: the verifier refuses */
        }
        char LICENSE[] SEC("license") = "GPL";
        """))
    (tmp_path / "refused.yaml").write_text(
        "metrics: {counters: [{name: counts_total, help: C, labels: "
        "[{name: k, size: 4, decoders: [{name: uint}]}]}]}")
    line = start_failure(tmp_path, "refused")          # NAME.bpf.c compiled at start
    assert line.startswith("Error: config 'refused': ")
    assert "'reads_null'" in line and "loading" in line


def test_sigint_stops_cleanly(example_dir, run_exporter):
    exp = run_exporter(example_dir, "syscalls", "--log.no-timestamps")
    exp.proc.send_signal(signal.SIGINT)
    assert exp.proc.wait(20) == 0
    assert exp.proc.stderr.read().splitlines()[-1] == \
        "stopping: detaching programs and closing maps"


def test_other_commands_do_not_import_the_exporter_dependencies():
    code = ("import sys; from pybpf.cli import main; main(['version']); "
            "import pybpf.exporter; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('prometheus_client', 'yaml', 'opentelemetry', 'bcrypt')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines()[-1] == "[]"


def test_btf_path(example_dir):
    """CO-RE relocated against the BTF file given (here the kernel's own, read as a file)."""
    ok = subprocess.run(exporter_command(example_dir, "exit-spans", "--config.check",
                                         "--btf.path", "/sys/kernel/btf/vmlinux"),
                        capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "configs exit-spans: loaded and attached" in ok.stderr
    assert start_failure(example_dir, "exit-spans", "--btf.path", "/nonexistent/btf") == \
        "Error: --btf.path: could not find BTF file '/nonexistent/btf'"


def test_python_decoder_beside_the_configs(run_exporter, named_command, tmp_path):
    """exec-users: the user_names:user decoder (a Python module in the config directory)
    names the user an exec ran as."""
    import pwd
    import pybpf
    from .conftest import EXAMPLES
    pybpf.compile(EXAMPLES / "exec-users.bpf.c", tmp_path / "exec-users.bpf.o")
    for name in ("exec-users.yaml", "user_names.py"):
        shutil.copy(EXAMPLES / name, tmp_path)
    exp = run_exporter(tmp_path, "exec-users")
    nobody = pwd.getpwnam("nobody")
    true_cmd = named_command("true")
    os.chmod(true_cmd.parent, 0o755)
    series = 'ebpf_exporter_execs_by_user_total{user="nobody"}'

    def nobody_execs() -> float:
        text = exp.get()[2].decode()
        return value(text, series) if series in text else 0
    before = nobody_execs()
    for _ in range(2):
        subprocess.run(["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                        "--clear-groups", str(true_cmd)], check=True)
    assert nobody_execs() == before + 2
    text = exp.get()[2].decode()
    assert 'ebpf_exporter_execs_by_user_total{user="root"}' in text


def thread_caps(pid: int) -> set[tuple[str, str]]:
    """(CapEff, CapPrm) of every thread of ``pid``."""
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/status") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        out.add((fields["CapEff"].strip(), fields["CapPrm"].strip()))
    return out


@pytest.mark.parametrize("keep, mask", [("none", 0), ("cap_bpf,CAP_PERFMON", 3 << 38)])
def test_capabilities_dropped_after_attaching(example_dir, run_exporter, named_command,
                                              keep, mask):
    exp = run_exporter(example_dir, "timers,syscalls", "--capabilities.keep", keep)
    assert thread_caps(exp.proc.pid) == {(f"{mask:016x}", f"{mask:016x}")}
    subprocess.run([named_command("sleep"), "0.01"], check=True)
    text = exp.get()[2].decode()          # maps read through the fds opened before
    assert 'ebpf_exporter_hrtimer_expiries_total{function="hrtimer_wakeup"}' in text  # ksym
    assert value(text, 'ebpf_exporter_syscalls_total{syscall="clock_nanosleep"}') >= 1
    status, stderr = exp.stop()
    assert status == 0, stderr


def test_unknown_capability(example_dir):
    assert start_failure(example_dir, "timers", "--capabilities.keep", "cap_nope") == (
        "Error: --capabilities.keep: unknown capability 'cap_nope' (cap_bpf, cap_perfmon, "
        "cap_syslog, ...; or all, none)")


def test_undecodable_map_counted_and_others_served(example_dir, tmp_path, named_command):
    """A histogram whose bucket label is no number (a ksym here): a decoder error each
    scrape, the metric left out, the others served."""
    shutil.copy(example_dir / "timers.bpf.o", tmp_path / "wrong.bpf.o")
    (tmp_path / "wrong.yaml").write_text(textwrap.dedent("""
        metrics:
          histograms:
            - name: hrtimer_expiries_total
              help: Not a histogram
              bucket_type: exp2
              bucket_max: 3
              labels:
                - {name: bucket, size: 8, decoders: [{name: ksym}]}
        """))
    shutil.copy(example_dir / "syscalls.bpf.o", tmp_path)
    shutil.copy(example_dir / "syscalls.yaml", tmp_path)
    decoders = Decoders()
    with Exporter(read(str(tmp_path), ["wrong", "syscalls"], decoders.why_unknown),
                  decoders) as exporter:
        exporter.load()
        subprocess.run([named_command("sleep"), "0.01"], check=True)
        for scrapes in (1, 2):
            text = scrape(exporter)
            assert value(text, 'ebpf_exporter_decoder_errors_total{config="wrong"}') == scrapes
        assert "ebpf_exporter_hrtimer_expiries_total" not in text.replace(
            'map="hrtimer_expiries_total"', "")
        assert value(text, 'ebpf_exporter_syscalls_total{syscall="clock_nanosleep"}') >= 1
        assert value(text, 'ebpf_exporter_decoder_errors_total{config="syscalls"}') == 0


def test_imports_follow_use(example_dir, run_exporter, monkeypatch):
    """Spans configured without an OTLP endpoint are not read and the OpenTelemetry SDK
    (~10 MiB) is not imported; prometheus-client is (the exporter's own import times)."""
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    exp = run_exporter(example_dir, "timers,exit-spans", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert exp.get()[0] == 200
    code, err = exp.stop()
    assert code == 0
    assert "tracing.spans configured but no OTLP endpoint" in err
    imported = {line.rsplit("|", 1)[-1].strip() for line in err.splitlines()
                if line.startswith("import time:")}
    assert "prometheus_client" in imported and "pybpf.exporter.exporter" in imported
    assert not [m for m in imported if m.startswith("opentelemetry")]
