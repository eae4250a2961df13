"""Configs in BCC's C dialect (``NAME.bcc.c`` beside ``NAME.yaml``): compiled by pybpf's BCC
front end at start, auto-attached as BCC attaches, read as ELF objects' maps are, served over
HTTP; start-up failures in one line; nothing left in the kernel after SIGTERM."""
from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pybpf.errors import BPFError
from pybpf.programs import Program

from .conftest import EXAMPLES
from .test_exporter import start_failure

# Written for these tests: getppid() calls and write() sizes (log2 buckets) by command name,
# and the low bits of a kaddrs symbol's address, through BCC's C dialect.
PROGRAM = textwrap.dedent("""\
    struct comm_key {
        char comm[16];
    };
    struct size_key {
        char comm[16];
        u64 slot;
    };
    BPF_HASH(bcc_getppid_calls_total, struct comm_key, u64);
    BPF_HISTOGRAM(bcc_write_bytes, struct size_key);
    BPF_ARRAY(bcc_kaddr_low_bits, u64, 1);

    int tracepoint__syscalls__sys_enter_getppid(void *ctx)
    {
        struct comm_key key = {};
        int zero = 0;
        u64 *low = bcc_kaddr_low_bits.lookup(&zero);

        if (low)
            *low = kaddr_do_nanosleep & 0xfffff;
        bpf_get_current_comm(&key.comm, sizeof(key.comm));
        bcc_getppid_calls_total.increment(key);
        return 0;
    }

    TRACEPOINT_PROBE(syscalls, sys_enter_write)
    {
        struct size_key key = {};

        bpf_get_current_comm(&key.comm, sizeof(key.comm));
        key.slot = bpf_log2l(args->count);
        bcc_write_bytes.increment(key);
        return 0;
    }
    """)

CONFIG = textwrap.dedent("""\
    metrics:
      counters:
        - name: bcc_getppid_calls_total
          help: getppid() calls by command name
          labels:
            - {name: comm, size: 16, decoders: [{name: string}]}
        - name: bcc_kaddr_low_bits
          help: The low 20 bits of do_nanosleep's address, as the program was given it
      histograms:
        - name: bcc_write_bytes
          help: write() sizes by command name
          bucket_type: exp2
          bucket_min: 0
          bucket_max: 20
          labels:
            - {name: comm, size: 16, decoders: [{name: string}]}
            - {name: bucket, size: 8, decoders: [{name: uint}]}
    kaddrs:
      - do_nanosleep
    """)

WRITES = (1, 3, 100, 1000, 1500, 5000)   # bpf_log2l: slots 1, 2, 7, 10, 11, 13 (le 2^slot)
GETPPIDS = 7


def write_config(directory: Path, name: str, program: str, config: str = CONFIG) -> None:
    (directory / f"{name}.bcc.c").write_text(program)
    (directory / f"{name}.yaml").write_text(config)


def run_known_calls(comm: str) -> None:
    """A process named ``comm`` calling getppid() GETPPIDS times and writing WRITES bytes."""
    code = textwrap.dedent(f"""
        import os
        with open("/proc/self/comm", "w") as f:
            f.write({comm!r})
        fd = os.open("/dev/null", os.O_WRONLY)
        for _ in range({GETPPIDS}):
            os.getppid()
        for n in {WRITES!r}:
            os.write(fd, b"x" * n)
        """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def kernel_address(symbol: str) -> int:
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, _, name = line.split()[:3]
            if name == symbol:
                return int(addr, 16)
    raise AssertionError(f"{symbol} not in /proc/kallsyms")


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_bcc_config_served_and_scraped(tmp_path, run_exporter):
    write_config(tmp_path, "bccsys", PROGRAM)
    exp = run_exporter(tmp_path, "bccsys", "--log.no-timestamps")
    comm = f"pbc{uuid.uuid4().hex[:8]}"
    run_known_calls(comm)
    status, _, body = exp.get("/metrics")
    assert status == 200
    got = samples(body.decode())
    c = (("comm", comm),)
    assert got[("ebpf_exporter_bcc_getppid_calls_total", c)] == GETPPIDS
    assert got[("ebpf_exporter_bcc_kaddr_low_bits_total", ())] == \
        kernel_address("do_nanosleep") & 0xfffff
    buckets = {float(dict(labels)["le"]): v for (name, labels), v in got.items()
               if name == "ebpf_exporter_bcc_write_bytes_bucket" and ("comm", comm) in labels}
    expected_cumulative = {float(2 ** slot): sum(1 for n in WRITES if n < 2 ** slot)
                           for slot in range(21)}
    expected_cumulative[float("inf")] = len(WRITES)
    assert buckets == expected_cumulative
    assert got[("ebpf_exporter_bcc_write_bytes_count", c)] == len(WRITES)
    # every program BPF() attached is shown attached, and goes away with SIGTERM
    ids = [int(dict(labels)["id"]) for (name, labels), _ in got.items()
           if name == "ebpf_exporter_ebpf_program_info" and ("config", "bccsys") in labels]
    assert len(ids) == 2
    for i in ids:
        assert got[("ebpf_exporter_ebpf_program_attached", (("id", str(i)),))] == 1
    rc, err = exp.stop()
    assert rc == 0, err
    assert err.splitlines()[-1] == "stopping: detaching programs and closing maps"
    for i in ids:
        try:
            Program.from_id(i).close()
        except BPFError:
            continue
        raise AssertionError(f"program {i} still loaded after SIGTERM")


def test_bcc_c_error_is_one_line_with_the_users_line(tmp_path):
    broken = PROGRAM.replace("bpf_get_current_comm(&key.comm, sizeof(key.comm));\n"
                             "    bcc_getppid_calls_total",
                             "bpf_get_current_comm(&key.comm, sizeof(key.comm));\n"
                             "    no_such_variable++;\n    bcc_getppid_calls_total", 1)
    assert broken != PROGRAM
    line_no = broken.splitlines().index("    no_such_variable++;") + 1
    write_config(tmp_path, "broken", broken)
    line = start_failure(tmp_path, "broken")
    assert line.startswith(f"Error: config 'broken': {tmp_path}/broken.bcc.c: ")
    assert f"{tmp_path}/broken.bcc.c:{line_no}:" in line
    assert "no_such_variable" in line and "error:" in line


def test_bcc_verifier_refusal_is_one_line(tmp_path):
    write_config(tmp_path, "refused", textwrap.dedent("""\
        BPF_HASH(bcc_refused_total, u32, u64);

        TRACEPOINT_PROBE(syscalls, sys_enter_getppid)
        {
            u32 k = 0;
            u64 *v = bcc_refused_total.lookup(&k);

            return *v;      /* no NULL check: the verifier refuses */
        }
        """), "metrics: {counters: [{name: bcc_refused_total, help: R, labels: "
              "[{name: k, size: 4, decoders: [{name: uint}]}]}]}")
    line = start_failure(tmp_path, "refused")
    assert line.startswith(f"Error: config 'refused': {tmp_path}/refused.bcc.c: ")
    assert "tracepoint__syscalls__sys_enter_getppid" in line
    assert "invalid mem access" in line   # the verifier's words, from its log


def test_bcc_and_elf_program_for_one_config_is_an_error(tmp_path):
    write_config(tmp_path, "both", PROGRAM)
    (tmp_path / "both.bpf.c").write_text("// an ELF program too\n")
    assert start_failure(tmp_path, "both") == (
        f"Error: config 'both': {tmp_path}/both.bcc.c: {tmp_path}/both.bpf.c exists too: a "
        "config is one program, remove one of them")


def test_bcc_example_runs(run_exporter, tmp_path):
    """examples/exporter's BCC config: failed opens of a named process counted by errno, and
    the read() histogram holding the named process's reads."""
    exp = run_exporter(EXAMPLES, "bcc-files", "--log.no-timestamps")
    comm = f"pbc{uuid.uuid4().hex[:8]}"
    data = tmp_path / "data"
    data.write_bytes(b"y" * 3000)
    code = textwrap.dedent(f"""
        import os
        with open("/proc/self/comm", "w") as f:
            f.write({comm!r})
        for _ in range(3):
            try:
                os.open({str(tmp_path / "missing")!r}, os.O_RDONLY)
            except FileNotFoundError:
                pass
        fd = os.open({str(data)!r}, os.O_RDONLY)
        assert len(os.read(fd, 4096)) == 3000
        """)
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    status, _, body = exp.get("/metrics")
    assert status == 200
    got = samples(body.decode())
    assert got[("ebpf_exporter_bcc_open_failures_total",
                (("comm", comm), ("error", "ENOENT")))] == 3
    buckets = sorted((float(dict(labels)["le"]), v) for (name, labels), v in got.items()
                     if name == "ebpf_exporter_bcc_read_bytes_bucket")
    assert [le for le, _ in buckets] == [float(2 ** k) for k in range(25)] + [float("inf")]
    counts = [v for _, v in buckets]
    assert counts == sorted(counts)           # cumulative
    assert counts[12] - counts[11] >= 1       # 3000 bytes: le 4096 and not le 2048


def test_bcc_kprobe_prefix_auto_attached(tmp_path, run_exporter):
    """``kprobe__<function>`` attaches at BPF() as in BCC: served where the kernel has
    kprobes, else start-up stops with one line giving the kprobes probe's reason."""
    from pybpf import features
    write_config(tmp_path, "kprobed", textwrap.dedent("""\
        BPF_ARRAY(bcc_hrtimer_starts_total, u64, 1);

        int kprobe__hrtimer_start_range_ns(struct pt_regs *ctx)
        {
            bcc_hrtimer_starts_total.increment(0);
            return 0;
        }
        """), "metrics: {counters: [{name: bcc_hrtimer_starts_total, help: H}]}")
    support = features.kprobes()
    if not support:
        line = start_failure(tmp_path, "kprobed")
        assert line.startswith(f"Error: config 'kprobed': {tmp_path}/kprobed.bcc.c: ")
        assert "hrtimer_start_range_ns" in line and support.reason in line
        return
    exp = run_exporter(tmp_path, "kprobed", "--log.no-timestamps")
    subprocess.run(["sleep", "0.01"], check=True)
    got = samples(exp.get("/metrics")[2].decode())
    assert got[("ebpf_exporter_bcc_hrtimer_starts_total", ())] >= 1
    ids = [dict(labels)["id"] for (name, labels), _ in got.items()
           if name == "ebpf_exporter_ebpf_program_info" and ("config", "kprobed") in labels]
    assert [got[("ebpf_exporter_ebpf_program_attached", (("id", i),))] for i in ids] == [1]
