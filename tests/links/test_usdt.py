"""USDT: notes read as readelf reads them, argument specs, attachment with semaphores (the
traced program sees its probe enabled), and argument values fetched in the BPF program."""
from __future__ import annotations

import os
import re
import subprocess

import pytest

from pybpf.asm import R6
from pybpf.errors import UsageError
from pybpf.links.usdt import (PT_REGS_X86_64, UsdtArg, attach_usdt, fetch_arg, find_usdt,
                              parse_arg, usdt_notes)
from pybpf.maps import Map
from pybpf.programs import Program, kernel_version_code
from tests.links.progs import PERF_LINK_INFO, count_per_tgid, record_usdt_args

PYTHON_WITH_USDT = "/usr/bin/python3"  # Debian's python3 is built with --with-dtrace


def readelf_notes(path) -> list[tuple]:
    out = subprocess.run(["readelf", "-n", str(path)], capture_output=True, text=True,
                         check=True).stdout
    return [(m[1], m[2], int(m[3], 16), int(m[4], 16), int(m[5], 16), m[6].strip())
            for m in re.finditer(r"Provider: (\S+)\n\s+Name: (\S+)\n\s+Location: (0x[0-9a-f]+), "
                                 r"Base: (0x[0-9a-f]+), Semaphore: (0x[0-9a-f]+)\n"
                                 r"\s+Arguments: ?(.*)", out)]


def test_notes_agree_with_readelf(probe_target):
    paths = [probe_target]
    if os.path.exists(PYTHON_WITH_USDT) and readelf_notes(PYTHON_WITH_USDT):
        paths.append(os.path.realpath(PYTHON_WITH_USDT))
    for path in paths:
        notes = usdt_notes(str(path))
        assert [(n.provider, n.name, n.address, n.base, n.semaphore, n.args_text)
                for n in notes] == readelf_notes(path)
        for n in notes:
            assert all(isinstance(a, UsdtArg) for a in n.args)  # every spec parses
    hit, plain = usdt_notes(str(probe_target))
    assert hit.semaphore_offset and not plain.semaphore_offset
    with open(probe_target, "rb") as f:  # the semaphore's file offset holds its initial 0
        f.seek(hit.semaphore_offset)
        assert f.read(2) == b"\0\0"


@pytest.mark.parametrize("text, expected", [
    ("-4@%eax", (4, True, "reg", "rax", 0)),
    ("8@%r12", (8, False, "reg", "r12", 0)),
    ("1@%sil", (1, False, "reg", "rsi", 0)),
    ("-2@%r9w", (2, True, "reg", "r9", 0)),
    ("8@-16(%rbp)", (8, False, "deref", "rbp", -16)),
    ("-4@112(%rsp)", (4, True, "deref", "rsp", 112)),
    ("8@(%rdi)", (8, False, "deref", "rdi", 0)),
    ("-4@$-7", (4, True, "const", None, -7)),
    ("8@$0x10", (8, False, "const", None, 16)),
])
def test_parse_arg(text, expected):
    arg = parse_arg(text)
    assert (arg.size, arg.signed, arg.kind, arg.register, arg.value) == expected
    if arg.register:
        assert arg.pt_regs_offset == PT_REGS_X86_64[arg.register]


@pytest.mark.parametrize("text, why", [
    ("%eax", "not a form"), ("3@%eax", "size 3"), ("8@%xmm0", "unknown register %xmm0"),
    ("8@foo(%rip)", "not a form"),
])
def test_bad_arg_specs_are_clear_errors(text, why):
    with pytest.raises(UsageError, match=re.escape(why)):
        parse_arg(text)


def test_fetch_arg_checks_registers():
    with pytest.raises(UsageError, match="callee-saved"):
        fetch_arg(parse_arg("8@%rax"), 1, R6)


def test_missing_probe_lists_the_probes(probe_target):
    with pytest.raises(UsageError, match=r"no USDT probe pybpf:nope .*it has: pybpf:hit, pybpf:plain"):
        find_usdt(str(probe_target), "pybpf", "nope")


def spawn(target, n: int) -> tuple[int, int]:
    p = subprocess.Popen([str(target), str(n)], stdout=subprocess.PIPE, text=True)
    out, _ = p.communicate()
    assert p.returncode == 0
    return p.pid, int(out)


def test_semaphore_enables_the_probe_while_attached(counts, probe_target):
    assert spawn(probe_target, 3)[1] == 0  # nobody attached: semaphore 0, probe skipped
    with Program.load("kprobe", count_per_tgid(counts.fd), name="usdt_count") as prog:
        with attach_usdt(prog, str(probe_target), "pybpf", "hit") as group:
            assert len(group) == 1
            site = find_usdt(str(probe_target), "pybpf", "hit")[0]
            details = group[0].info().details
            if PERF_LINK_INFO:
                assert details["offset"] == site.offset
            if kernel_version_code() >= 0x060f00:  # 6.15 reports the reference counter too
                assert details["ref_ctr_offset"] == site.semaphore_offset
            pid, enabled = spawn(probe_target, 4)
            assert enabled == 4 and counts.get(pid) == 4
        assert group.closed
        pid, enabled = spawn(probe_target, 2)
        assert enabled == 0 and pid not in counts


@pytest.mark.parametrize("build", ["probe_target", "probe_target_O0"])
def test_arguments_fetched_in_bpf(build, request):
    """Registers (-O2), stack slots (-O0) and constants, sign-extended as their specs say."""
    target = request.getfixturevalue(build)
    hit, plain = find_usdt(str(target), "pybpf", "hit")[0], find_usdt(str(target), "pybpf", "plain")[0]
    kinds = {a.kind for a in hit.args + plain.args}
    assert kinds == ({"reg", "const"} if build == "probe_target" else {"deref", "const"})
    with Map.create("hash", 8, 16, 64, name="usdt_hit", key="q", value="qq") as hits, \
            Map.create("hash", 8, 16, 64, name="usdt_plain", key="q", value="qq") as plains:
        with Program.load("kprobe", record_usdt_args(hits.fd, hit.args), name="usdt_hit") as p1, \
                Program.load("kprobe", record_usdt_args(plains.fd, plain.args), name="usdt_pl") as p2:
            with attach_usdt(p1, str(target), "pybpf", "hit"), \
                    attach_usdt(p2, str(target), "pybpf", "plain"):
                spawn(target, 5)
        # hit(i, sum, -7) where sum = (i+1)^2 after round i; plain(i)
        assert dict(hits.items()) == {i: ((i + 1) ** 2, -7) for i in range(5)}
        assert dict(plains.items()) == {i: (0, 0) for i in range(5)}


def test_python_usdt_with_deref_argument():
    """Debian's python3 fires python:gc__start(generation) when its semaphore is set."""
    if not (os.path.exists(PYTHON_WITH_USDT) and readelf_notes(PYTHON_WITH_USDT)):
        pytest.skip(f"{PYTHON_WITH_USDT} has no USDT notes (built without --with-dtrace)")
    site = find_usdt(PYTHON_WITH_USDT, "python", "gc__start")[0]
    with Map.create("hash", 8, 16, 64, name="gc_gens", key="q", value="qq") as records:
        with Program.load("kprobe", record_usdt_args(records.fd, site.args), name="py_gc") as prog:
            with attach_usdt(prog, PYTHON_WITH_USDT, "python", "gc__start"):
                subprocess.run([PYTHON_WITH_USDT, "-S", "-c",
                                "import gc; gc.collect(2); gc.collect(1); gc.collect(0)"],
                               check=True)
        assert {0, 1, 2} <= set(records.keys())
