"""bcc.utils: bytes output, arguments, CPU lists, disassembly of a loaded program, STRCMP."""
from __future__ import annotations

import io
import os
import subprocess
import sys

import pytest

from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.bcc import utils
from pybpf.programs import Program


def test_printb_to_a_text_stream_and_a_binary_one(tmp_path):
    path = tmp_path / "out"
    with open(path, "w") as f:
        utils.printb(b"caf\xc3\xa9 \xff", file=f)
        utils.printb(b"no newline", file=f, nl=0)
    assert path.read_bytes() == b"caf\xc3\xa9 \xff\nno newline"
    raw = io.BytesIO()
    utils.printb(b"x", file=raw)
    assert raw.getvalue() == b"x\n"
    out = subprocess.run([sys.executable, "-c", "from pybpf.bcc.utils import printb; "
                          "printb(b'\\xfe raw')"], capture_output=True, check=True)
    assert out.stdout == b"\xfe raw\n"


def test_argstring():
    arg = utils.ArgString("bash\udcff")  # undecodable byte from argv (surrogateescape)
    assert bytes(arg) == b"bash\xff" and str(arg) == "bash\udcff"


def test_assert_is_bytes():
    assert utils._assert_is_bytes(b"x") == b"x"
    assert utils._assert_is_bytes(None) is None
    with pytest.warns(DeprecationWarning, match="not a bytes object"):
        assert utils._assert_is_bytes("vfs_read") == b"vfs_read"


def test_cpu_lists():
    online = utils.get_online_cpus()
    assert len(online) == os.sysconf("SC_NPROCESSORS_ONLN")
    assert set(os.sched_getaffinity(0)) <= set(online) <= set(utils.get_possible_cpus())


def test_disassemble_a_loaded_program():
    with Program.load("socket_filter", assemble([mov64_imm(R0, 7), exit_()]), name="dis") as p:
        text = utils.disassemble(p.xlated())
    assert text == "   0: (b7) r0 = 7\n   1: (95) exit"


def test_strcmp_rewrite():
    out = utils.StrcmpRewrite.rewrite_expr('STRCMP("bash",arg1) && STRCMP("sh",arg2)', False,
                                           False, ["arg2"], "", 3)
    assert out["expr"] == 'streq_3("bash",arg1) && streq_4("sh",arg2)'
    assert out["probeid"] == 5
    fns = out["streq_functions"]
    assert 'static inline bool streq_3(char const *ignored, uintptr_t str)' in fns
    assert 'char want[] = "bash";' in fns
    assert "bpf_probe_read_kernel(&got" in fns.split("streq_4")[0]
    assert "bpf_probe_read_user(&got" in fns.split("streq_4")[1]


def test_detect_language():
    assert utils.detect_language(["python", "c"], os.getpid()) == "python"
    assert utils.detect_language(["java"], os.getpid()) is None
    cat = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        cat.stdin.write(b"x\n")
        cat.stdin.flush()
        cat.stdout.readline()  # cat runs: libc is mapped
        assert utils.detect_language(["c", "python"], cat.pid) == "c"
    finally:
        cat.kill()
        cat.wait()
    assert utils.detect_language(["c"], 1 << 22) is None  # no such process


def test_strcmp_rewrite_runs(tmp_path):
    """The generated streq function, compiled by the BCC front end, matches the file names
    real openat() calls pass (user-space strings) that start with the literal, as BCC's does
    (the literal's characters are compared, not the terminator)."""
    from pybpf.bcc import BPF
    target = str(tmp_path / "pybpf-strcmp-target")
    out = utils.StrcmpRewrite.rewrite_expr(f'STRCMP("{target}",args->filename)', False, True,
                                           [], "", 0)
    text = out["streq_functions"] + """
BPF_HASH(hits, u32, u64);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u32 key = 0;
    if (bpf_get_current_pid_tgid() >> 32 != %d || !(%s))
        return 0;
    hits.increment(key);
    return 0;
}
""" % (os.getpid(), out["expr"].replace("args->filename", "(uintptr_t)args->filename"))
    with BPF(text=text) as b:
        for name in (target, target + "-other", target[:-1]):
            try:
                os.close(os.open(name, os.O_RDONLY | os.O_CREAT))
            finally:
                if os.path.exists(name):
                    os.unlink(name)
        assert [v.value for _, v in b["hits"].items()] == [2]  # not the shorter name
