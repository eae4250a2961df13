"""bcc.usdt on real binaries with SDT notes (the links tests' probe_target and a program
built here firing one probe at two sites): enumeration as BCC reports it, argument C types,
and the generated _bpf_readarg_* functions compiled with clang, loaded and run at the sites
(semaphores set by the kernel while attached)."""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import types

import pytest

import pybpf
from pybpf import features
from pybpf.elf import ObjectSpec, load
from pybpf.links.uprobe import attach_uprobe
from pybpf.symbols import ProcessSymbols
from pybpf.sys.uapi import ProgType
from pybpf.bcc.usdt import USDT, USDTException
from tests.bcc.bcc_peer import run_both
from tests.links.conftest import probe_target, probe_target_O0  # noqa: F401 (fixtures)

TWICE_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/sdt.h>
int main(int argc, char **argv)
{
	char c;
	long v = atol(argv[1]);

	if (read(0, &c, 1) != 1)
		return 2;
	STAP_PROBE1(pybpf, twice, v);
	printf("%ld\n", v);
	v = v * 7 + argc;
	STAP_PROBE1(pybpf, twice, v);
	printf("%ld\n", v);
	return 0;
}
"""

READER = r"""
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
%(text)s
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, s64);
	__type(value, s64);
} seen SEC(".maps");

SEC("uprobe")
int %(fn)s(struct pt_regs *ctx)
{
	%(decls)s
	s64 key, one = 1;

	%(reads)s
	return 0;
}
char LICENSE[] SEC("license") = "GPL";
"""


def _program(u: USDT, probe: str, fn: str) -> ObjectSpec:
    """A libbpf-style program calling the generated readers: seen[arg_i * 1000 + i] = 1 for
    each argument (the BCC front end turns bpf_usdt_readarg into these calls)."""
    text = u.get_text()
    header = "#include <uapi/linux/ptrace.h>\n"
    assert text.startswith(header)  # BCC's; the front end maps it to vmlinux.h
    count = next(p for p in u.enumerate_probes() if p.short_name() == probe).num_arguments
    decls = " ".join(f"{u.get_probe_arg_ctype(probe, i)} a{i} = 0;" for i in range(count))
    reads = "\n\t".join(
        f"if (_bpf_readarg_{fn}_{i + 1}(ctx, &a{i}, sizeof(a{i})) == 0) "
        f"{{ key = (s64)a{i} * 1000 + {i}; bpf_map_update_elem(&seen, &key, &one, 0); }}"
        for i in range(count))
    source = READER % {"text": text[len(header):], "fn": fn, "decls": decls, "reads": reads}
    return ObjectSpec.from_file(pybpf.compile(source))


def _key(k) -> int:
    """A key of ``seen`` (s64): decoded through the map's BTF, or raw bytes."""
    return k if isinstance(k, int) else int.from_bytes(k, "little", signed=True)


@pytest.fixture(scope="module")
def twice(tmp_path_factory):
    cc = shutil.which("gcc") or pytest.fail("gcc is missing: .ci/install installs it")
    d = tmp_path_factory.mktemp("usdt_twice")
    (d / "twice.c").write_text(TWICE_C)
    subprocess.run([cc, "-O2", "-o", str(d / "twice"), str(d / "twice.c")], check=True)
    return d / "twice"


def test_enumerate_probes(probe_target):  # noqa: F811
    u = USDT(path=str(probe_target))
    probes = {p.short_name(): p for p in u.enumerate_probes()}
    assert {"pybpf:hit", "pybpf:plain"} <= set(probes)
    hit = probes["pybpf:hit"]
    assert hit.provider == b"pybpf" and hit.name == b"hit"
    assert hit.bin_path == str(probe_target).encode()
    assert hit.num_arguments == 3 and hit.num_locations == 1 and hit.semaphore
    assert str(hit) == f"pybpf:hit [sema 0x{hit.semaphore:x}]"
    assert probes["pybpf:plain"].semaphore == 0
    loc = hit.get_location(0)
    assert str(loc) == f"{probe_target} 0x{loc.address:x}"
    assert str(loc.get_argument(2)) == "4 signed   bytes @ -7"
    assert str(loc.get_argument(1)).startswith("8 signed   bytes @ ")
    with pytest.raises(USDTException, match="has 1 locations, not 2"):
        hit.get_location(1)


def test_arg_ctypes(probe_target):  # noqa: F811
    u = USDT(path=str(probe_target))
    assert [u.get_probe_arg_ctype("pybpf:hit", i) for i in range(3)] == \
        ["int32_t", "int64_t", "int32_t"]
    assert u.get_probe_arg_ctype(b"hit", 1) == "int64_t"  # the name alone
    with pytest.raises(USDTException, match="3 arguments, not 4"):
        u.get_probe_arg_ctype("pybpf:hit", 3)


def test_unknown_probe_and_no_target(probe_target, capsys):  # noqa: F811
    u = USDT(path=str(probe_target))
    with pytest.raises(USDTException, match=r"Failed to enable USDT probe 'pybpf:nope': .* has "
                                            r"no such probe \(it has: pybpf:hit, pybpf:plain\)"):
        u.enable_probe("pybpf:nope", "fn")
    with pytest.raises(SystemExit) as ei:
        u.enable_probe_or_bail("nope", "fn")
    assert ei.value.code == 1 and "Failed to enable USDT probe 'nope'" in capsys.readouterr().err
    with pytest.raises(USDTException, match="give the process"):
        USDT()
    assert u.get_text() == ""


def test_probes_of_a_process(probe_target):  # noqa: F811
    proc = subprocess.Popen([str(probe_target), "1", "wait"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        # Popen returns once the child started exec; its new mappings may still be coming
        deadline = time.monotonic() + 10
        while str(probe_target) not in {m.path for m in ProcessSymbols(proc.pid).mappings}:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        names = {(p.bin_path, p.short_name()) for p in USDT(pid=proc.pid).enumerate_probes()}
        assert (str(probe_target).encode(), "pybpf:hit") in names
        only = USDT(pid=proc.pid, path=str(probe_target))
        assert {p.bin_path for p in only.enumerate_probes()} == {str(probe_target).encode()}
    finally:
        proc.kill()
        proc.wait()


def test_generated_readers_run_at_the_site(probe_target):  # noqa: F811
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    u = USDT(path=str(probe_target))
    u.enable_probe("pybpf:hit", "on_hit")
    text = u.get_text()
    assert "static __always_inline int _bpf_readarg_on_hit_3(struct pt_regs *ctx, void *dest," \
        " size_t len) {\n  if (len != sizeof(int32_t)) return -1;\n  *((int32_t *)dest) = -7;" \
        "\n  return 0;\n}\n" in text
    spec = _program(u, "pybpf:hit", "on_hit")
    with load(spec) as coll:
        bpf = types.SimpleNamespace(KPROBE=ProgType.KPROBE, load_func=lambda name, t: types.
                                    SimpleNamespace(program=coll.programs[name]))
        attachments = u.attach(bpf)
        try:
            out = subprocess.run([str(probe_target), "3"], capture_output=True, text=True,
                                 check=True).stdout
        finally:
            for a in attachments:
                a.close()
        seen = {k for k, _ in coll.maps["seen"].items()}
    assert out.strip() == "3"  # the semaphore was set while attached
    keys = {_key(k) for k in seen}
    # i = 0, 1, 2 (arg 0), -7 (arg 2), and the running sums (arg 1) 1, 4, 9
    assert {0, 1000, 2000} <= keys and -7000 + 2 in keys
    assert {1001, 4001, 9001} <= keys


def test_one_probe_two_sites(twice):
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    u = USDT(path=str(twice))
    probe = next(p for p in u.enumerate_probes() if p.short_name() == "pybpf:twice")
    assert probe.num_locations == 2
    u.enable_probe("pybpf:twice", "on_twice")
    assert "switch (PT_REGS_IP(ctx) % 0x1000ULL) {" in u.get_text()
    spec = _program(u, "pybpf:twice", "on_twice")
    with load(spec) as coll:
        prog = coll.programs["on_twice"]
        links = [attach_uprobe(prog, s.path, offset=s.offset, pid=s.pid) for s in u.sites()]
        try:
            out = subprocess.run([str(twice), "5"], input=b"x", capture_output=True,
                                 check=True).stdout.split()
        finally:
            for link in links:
                link.close()
        keys = {_key(k) for k, _ in coll.maps["seen"].items()}
    assert [int(v) for v in out] == [5, 37]
    assert keys == {5000, 37000}


ENUMERATE = r"""
import sys
from bcc import USDT
u = USDT(path=sys.argv[1])
for probe in sorted(u.enumerate_probes(), key=lambda p: p.short_name()):
    print(probe, probe.bin_path, probe.short_name(), probe.num_locations, probe.num_arguments)
    for i in range(probe.num_arguments):
        print("  ctype", i, u.get_probe_arg_ctype(probe.short_name(), i))
    for i in range(probe.num_locations):
        loc = probe.get_location(i)
        print(" ", loc, [str(loc.get_argument(j)) for j in range(loc.num_arguments)])
"""


@pytest.mark.parametrize("which", ["probe_target", "python3"])
def test_enumeration_as_bcc(tmp_path, probe_target, probe_target_O0, which):  # noqa: F811
    """BCC's USDT API and pybpf's print the same probes, locations, arguments and C types
    (the links tests' target built -O2 and -O0, and Debian's python3, built with dtrace)."""
    paths = [str(probe_target), str(probe_target_O0)] if which == "probe_target" \
        else ["/usr/bin/python3"]
    for path in paths:
        bcc, ours = run_both(tmp_path, ENUMERATE, path)
        assert bcc and ours == bcc


GET_TEXT = r"""
import sys
from bcc import USDT
u = USDT(path=sys.argv[1])
u.enable_probe(sys.argv[2], "fn")
print(u.get_text())
"""


def test_get_text_as_bcc(tmp_path, twice, probe_target_O0):  # noqa: F811
    """BCC and pybpf generate the same reader text: two sites told apart by page offset,
    and stack-slot (-O0) arguments. (BCC refuses probes with a semaphore without a pid;
    pybpf sets semaphores through the uprobe's reference counter instead.)"""
    for path, probe in ((twice, "pybpf:twice"), (probe_target_O0, "pybpf:plain")):
        bcc, ours = run_both(tmp_path, GET_TEXT, str(path), probe)
        assert "_bpf_readarg_fn_1" in bcc and ours == bcc


def test_bpf_usdt_contexts(probe_target):  # noqa: F811
    """A BCC-style program reads a probe's arguments with bpf_usdt_readarg through
    BPF(usdt_contexts=[u]); the probe's semaphore is set while the program is attached."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    from pybpf.bcc import BPF
    u = USDT(path=str(probe_target))
    u.enable_probe("pybpf:hit", "on_hit")
    text = """
BPF_HASH(seen, s64, u64);
int on_hit(struct pt_regs *ctx) {
    int i = 0, c = 0;
    long sum = 0;
    bpf_usdt_readarg(1, ctx, &i);
    bpf_usdt_readarg(2, ctx, &sum);
    bpf_usdt_readarg(3, ctx, &c);
    s64 key = i * 1000 + sum;
    seen.increment(key);
    key = c;
    seen.increment(key);
    return 0;
}
"""
    with BPF(text=text, usdt_contexts=[u]) as b:
        out = subprocess.run([str(probe_target), "3"], capture_output=True, text=True,
                             check=True).stdout
        seen = {k.value: v.value for k, v in b["seen"].items()}
    assert out.strip() == "3"
    assert seen == {1: 1, 1004: 1, 2009: 1, -7: 3}  # (i, running sum) and the constant


def test_path_through_str_of_bytes(probe_target):  # noqa: F811
    """BCC's tools pass str(find_library(...)), i.e. "b'/path'": the path inside is used."""
    u = USDT(path=str(str(probe_target).encode()))
    assert "pybpf:hit" in {p.short_name() for p in u.enumerate_probes()}


def test_one_probe_enabled_in_two_processes(twice):
    """Two contexts (two processes of one binary) enabling one probe for one function, as
    BCC's tools do for several pids: one set of readers is generated, each process's sites are
    attached for it alone."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    from pybpf.bcc import BPF
    text = """
BPF_HASH(seen, u64, u64);
int on_twice(struct pt_regs *ctx) {
    long v = 0;
    bpf_usdt_readarg(1, ctx, &v);
    u64 key = (bpf_get_current_pid_tgid() >> 32) * 1000 + v;
    seen.increment(key);
    return 0;
}
"""
    procs = [subprocess.Popen([str(twice), str(n)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE) for n in (5, 6, 7)]
    try:
        contexts = [USDT(pid=p.pid) for p in procs[:2]]
        for u in contexts:
            u.enable_probe("pybpf:twice", "on_twice")
        with BPF(text=text, usdt_contexts=contexts) as b:
            assert b.text.count("int _bpf_readarg_on_twice_1(") == 1
            for p in procs:
                p.communicate(b"x", timeout=10)
            seen = {k.value for k in b["seen"].keys()}
    finally:
        for p in procs:
            p.kill()
            p.wait()
    p5, p6 = procs[0].pid, procs[1].pid
    assert seen == {p5 * 1000 + 5, p5 * 1000 + 37, p6 * 1000 + 6, p6 * 1000 + 44}


LIB_C = r"""
#include <sys/sdt.h>
void lib_fire(long v) { STAP_PROBE1(pybpf, both, v); }
"""

MAIN_C = r"""
#include <stdio.h>
#include <unistd.h>
#include <sys/sdt.h>
void lib_fire(long v);
int main(void)
{
	char c;
	long v = 8;

	if (read(0, &c, 1) != 1)
		return 2;
	lib_fire(7);
	STAP_PROBE1(pybpf, both, v);
	printf("done\n");
	return 0;
}
"""


def test_probe_in_a_program_and_its_library(tmp_path):
    """USDT(pid=) merges a probe's sites over the binaries the process maps (BCC's test_usdt3):
    one probe, a site in the program and one in its shared library, both read."""
    if not features.uprobes():
        pytest.skip(features.uprobes().reason)
    from pybpf.bcc import BPF
    cc = shutil.which("gcc") or pytest.fail("gcc is missing: .ci/install installs it")
    (tmp_path / "lib.c").write_text(LIB_C)
    (tmp_path / "main.c").write_text(MAIN_C)
    subprocess.run([cc, "-O2", "-shared", "-fpic", "-o", str(tmp_path / "libboth.so"),
                    str(tmp_path / "lib.c")], check=True)
    subprocess.run([cc, "-O2", "-o", str(tmp_path / "both"), str(tmp_path / "main.c"),
                    f"-L{tmp_path}", "-lboth", f"-Wl,-rpath,{tmp_path}"], check=True)
    proc = subprocess.Popen([str(tmp_path / "both")], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while not any("libboth" in m.path for m in ProcessSymbols(proc.pid).mappings):
            assert time.monotonic() < deadline, "the library was never mapped"
            time.sleep(0.02)
        u = USDT(pid=proc.pid)
        probe = next(p for p in u.enumerate_probes() if p.short_name() == "pybpf:both")
        assert probe.num_locations == 2
        assert {os.path.basename(probe.get_location(i).bin_path) for i in range(2)} == \
            {b"both", b"libboth.so"}
        u.enable_probe("pybpf:both", "on_both")
        text = """
BPF_HASH(seen, u64, u64);
int on_both(struct pt_regs *ctx) {
    long v = 0;
    if (bpf_usdt_readarg(1, ctx, &v) == 0)
        seen.increment(v);
    return 0;
}
"""
        with BPF(text=text, usdt_contexts=[u]) as b:
            assert proc.communicate(b"x", timeout=10)[0] == b"done\n"
            seen = {k.value: v.value for k, v in b["seen"].items()}
    finally:
        proc.kill()
        proc.wait()
    assert seen == {7: 1, 8: 1}
