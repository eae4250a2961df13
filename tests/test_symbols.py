"""pybpf.symbols against the real /proc/kallsyms, real processes and gcc-built binaries
(PIE, non-PIE, stripped with a separate debug file found by .gnu_debuglink or build id)."""
from __future__ import annotations

import bisect
import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from pybpf import symbols
from pybpf.errors import UsageError
from pybpf.links.uprobe import elf_file
from pybpf.sys import kallsyms

TARGET_C = r"""
#include <stdio.h>
#include <unistd.h>
static __attribute__((noinline)) int pybpf_static_fn(int x) { __asm__ volatile(""); return x * 3; }
__attribute__((noinline)) int pybpf_sym_target(int x) { return pybpf_static_fn(x) + 1; }
int main(void)
{
	char c = 0;
	int r = 0;

	printf("%p %p\n", (void *)pybpf_sym_target, (void *)pybpf_static_fn);
	fflush(stdout);
	while (read(0, &c, 1) == 1) {	/* one call per byte, then a line */
		r += pybpf_sym_target(c);
		printf("%d\n", r);
		fflush(stdout);
	}
	return 0;
}
"""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is missing: .ci/install installs gcc and binutils")
    return path


@pytest.fixture(scope="module")
def binaries(tmp_path_factory) -> dict[str, Path]:
    """The target built as PIE, non-PIE, and stripped (debug file by debuglink and by
    build id under a private debug root)."""
    d = tmp_path_factory.mktemp("symtarget")
    src = d / "target.c"
    src.write_text(TARGET_C)
    cc, objcopy = _tool("gcc"), _tool("objcopy")
    out = {"pie": d / "pie", "nopie": d / "nopie"}
    subprocess.run([cc, "-O2", "-g", "-fPIE", "-pie", "-Wl,--build-id", "-o", str(out["pie"]),
                    str(src)], check=True)
    subprocess.run([cc, "-O2", "-no-pie", "-o", str(out["nopie"]), str(src)], check=True)
    # stripped + .gnu_debuglink to a debug file next to it
    linked = d / "linked"
    shutil.copy(out["pie"], linked)
    subprocess.run([objcopy, "--only-keep-debug", str(linked), str(d / "linked.debug")],
                   check=True)
    subprocess.run([objcopy, "--strip-all", f"--add-gnu-debuglink={d / 'linked.debug'}",
                    str(linked)], check=True, cwd=d)
    out["linked"] = linked
    # stripped, debug file found by build id under a private debug root
    by_id = d / "byid"
    shutil.copy(out["pie"], by_id)
    subprocess.run([objcopy, "--strip-all", str(by_id)], check=True)
    build_id = symbols.file_symbols(str(out["pie"])).build_id.hex()
    root = d / "debugroot"
    (root / ".build-id" / build_id[:2]).mkdir(parents=True)
    subprocess.run([objcopy, "--only-keep-debug", str(out["pie"]),
                    str(root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug")], check=True)
    out["byid"], out["debugroot"] = by_id, root
    return out


class Running:
    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.proc = subprocess.Popen([self.path], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        line = self.proc.stdout.readline().split()
        self.target, self.static = (int(x, 16) for x in line)
        self.pid = self.proc.pid

    def call(self) -> None:
        """Make the process call pybpf_sym_target once (and wait until it did)."""
        self.proc.stdin.write(b"x")
        self.proc.stdin.flush()
        self.proc.stdout.readline()

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@pytest.fixture
def run():
    started: list[Running] = []

    def start(path: Path) -> Running:
        started.append(Running(path))
        return started[-1]
    try:
        yield start
    finally:
        for r in started:
            r.stop()


def _text_symbols(path: str = kallsyms.KALLSYMS) -> list[tuple[int, str]]:
    return [(a, n) for a, t, n in kallsyms.read(path) if a and t not in "bBdDrR"]


def test_kernel_symbols_agree_with_kallsyms(tmp_path):
    snapshot = tmp_path / "kallsyms"  # one snapshot: BPF programs come and go meanwhile
    shutil.copyfile(kallsyms.KALLSYMS, snapshot)
    ks = symbols.KernelSymbols(str(snapshot))
    reference = sorted(_text_symbols(str(snapshot)))
    starts = [a for a, _ in reference]
    assert len(ks) == len(reference)
    names_at: dict[int, set[str]] = {}
    for a, n in reference:
        names_at.setdefault(a, set()).add(n)
    rng = random.Random(1)
    for a, n in rng.sample(reference, 3000):
        for addr in (a, a + rng.randrange(1, 64)):
            name, offset, module = ks.resolve(addr)
            start = starts[bisect.bisect_right(starts, addr) - 1]
            assert name in names_at[start] and offset == addr - start, hex(addr)
            assert module
    # every address between symbols (also in pages without a symbol start) as a full bisect
    lo, hi = starts[0], starts[-1] + 0x10000
    for addr in (rng.randrange(lo, hi) for _ in range(20000)):
        assert ks.index(addr) == bisect.bisect_right(ks.addresses, addr) - 1
    assert ks.resolve(lo - 1) is None


def test_kernel_symbol_modules_and_names():
    ks = symbols.kernel_symbols()
    vfs_read = next(a for a, n in _text_symbols() if n == "vfs_read")
    assert ks.address("vfs_read") == vfs_read
    assert ks.resolve(vfs_read + 4) == ("vfs_read", 4, "kernel")
    assert ks.address("pybpf_no_such_symbol") is None
    with open(kallsyms.KALLSYMS) as f:
        in_module = next((line.split() for line in f if line.rstrip().endswith("]")
                          and line.split()[1] in "tT"), None)
    if in_module is not None:  # modules loaded: their symbols carry their name
        assert ks.resolve(int(in_module[0], 16)) == (in_module[2], 0, in_module[3][1:-1])


def test_kernel_symbols_with_data(tmp_path):
    fake = tmp_path / "kallsyms"
    fake.write_text("ffffffff81000000 T _text\nffffffff82000000 D jiffies\n"
                    "ffffffffc0000000 t mod_fn\t[mymod]\nffffffffc0001000 b mod_bss\t[mymod]\n")
    text = symbols.KernelSymbols(str(fake))
    assert text.address("jiffies") is None and len(text) == 2
    assert text.resolve(0xffffffffc0001008) == ("mod_fn", 0x1008, "mymod")
    both = symbols.KernelSymbols(str(fake), text_only=False)
    assert both.address("jiffies") == 0xffffffff82000000
    assert both.resolve(0xffffffffc0001008) == ("mod_bss", 8, "mymod")


def test_kernel_symbols_hidden_addresses(tmp_path):
    fake = tmp_path / "kallsyms"
    fake.write_text("0000000000000000 T _text\n0000000000000000 t vfs_read\n")
    with pytest.raises(UsageError, match="kptr_restrict"):
        symbols.KernelSymbols(str(fake))


@pytest.mark.parametrize("kind", ["pie", "nopie"])
def test_process_symbols(binaries, run, kind):
    r = run(binaries[kind])
    ps = symbols.ProcessSymbols(r.pid)
    assert ps.resolve(r.target) == ("pybpf_sym_target", 0, r.path)
    assert ps.resolve(r.static + 2) == ("pybpf_static_fn", 2, r.path)
    assert ps.address(r.path, "pybpf_sym_target") == r.target
    assert ps.address(os.path.basename(r.path), "pybpf_sym_target") == r.target
    assert ps.address(r.path, "pybpf_no_such_fn") is None
    # libc's getpid as the process maps it
    libc = next(m.path for m in ps.mappings if "/libc.so" in m.path or "/libc-" in m.path)
    getpid = ps.address(libc, "getpid")
    assert ps.resolve(getpid + 1) == ("getpid", 1, libc)
    # outside every mapping: the address back, no module
    assert ps.resolve(0x1000) == (None, 0x1000, None)


@pytest.mark.parametrize("kind", ["linked", "byid"])
def test_stripped_binary_uses_debug_file(binaries, run, kind):
    assert "pybpf_static_fn" not in elf_file(str(binaries[kind])).functions  # stripped
    r = run(binaries[kind])
    ps = symbols.ProcessSymbols(r.pid, debug_root=str(binaries["debugroot"]))
    assert ps.resolve(r.static + 1) == ("pybpf_static_fn", 1, r.path)
    assert ps.resolve(r.target) == ("pybpf_sym_target", 0, r.path)


def test_debuglink_crc_mismatch_ignored(binaries, tmp_path):
    path = tmp_path / "linked"
    shutil.copy(binaries["linked"], path)
    (tmp_path / "linked.debug").write_bytes(b"not the debug file")
    fs = symbols.file_symbols(str(path), "/nonexistent")
    assert "pybpf_static_fn" not in fs.names


def test_perf_map_symbols(binaries, run):
    r = run(binaries["pie"])
    perf_map = Path(f"/tmp/perf-{r.pid}.map")
    perf_map.write_text("7000 100 jitted_function\n")
    try:
        ps = symbols.ProcessSymbols(r.pid)
        assert ps.resolve(0x7010) == ("jitted_function", 0x10, str(perf_map))
        perf_map.write_text("7000 100 jitted_function\n7100 20 recompiled_fn\n")
        assert ps.resolve(0x7104) == ("recompiled_fn", 4, str(perf_map))  # read again
    finally:
        perf_map.unlink()


def test_build_id_symbols(binaries):
    path = str(binaries["pie"])
    reg = symbols.BuildIdSymbols()
    build_id = reg.add(path)
    fs = symbols.file_symbols(path)
    vaddr = fs.starts[fs.names.index("pybpf_sym_target")]
    file_offset = next(vaddr - v + off for v, size, off in fs.segments if v <= vaddr < v + size)
    assert reg.resolve(build_id, file_offset + 3) == ("pybpf_sym_target", 3, path)
    assert reg.resolve(b"\x01" * 20, 5) == (None, 5, None)


def test_demangle():
    if shutil.which("c++filt") is None:
        assert symbols.demangle("_ZN3foo3barEv") == "_ZN3foo3barEv"
    else:
        assert symbols.demangle("_ZN3foo3barEv") == "foo::bar()"
    assert symbols.demangle("main") == "main"


def test_vdso_symbols():
    """An address in this process's vDSO (its base from getauxval(AT_SYSINFO_EHDR), the
    function's offset from objdump -T of the saved image) names the vDSO function."""
    import ctypes
    libc = ctypes.CDLL("libc.so.6")
    libc.getauxval.restype = ctypes.c_ulong
    base = libc.getauxval(33)  # AT_SYSINFO_EHDR
    image = symbols.vdso_image()
    assert base and image
    dump = subprocess.run([_tool("objdump"), "-T", image], capture_output=True, text=True,
                          check=True).stdout
    offset = next(int(line.split()[0], 16) for line in dump.splitlines()
                  if line.endswith(" __vdso_clock_gettime"))
    name, off, module = symbols.ProcessSymbols(os.getpid()).resolve(base + offset + 2)
    assert name in ("__vdso_clock_gettime", "clock_gettime") and off == 2
    assert module == "[vdso]"


def test_process_cache_is_bounded(monkeypatch, binaries, run):
    """The most recently asked processes are kept, up to PROCESS_CACHE_SIZE."""
    monkeypatch.setattr(symbols, "PROCESS_CACHE_SIZE", 2)
    symbols._processes.clear()
    procs = [run(binaries["pie"]) for _ in range(3)]
    first = symbols.process_symbols(procs[0].pid)
    symbols.process_symbols(procs[1].pid)
    assert symbols.process_symbols(procs[0].pid) is first  # kept, now the most recent
    symbols.process_symbols(procs[2].pid)  # evicts procs[1]
    assert list(symbols._processes) == [procs[0].pid, procs[2].pid]
    assert symbols.process_symbols(procs[1].pid).resolve(procs[1].target)[0] == \
        "pybpf_sym_target"
