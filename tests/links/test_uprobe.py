"""uprobes on a real process: symbols of an executable and of libc (found through
ld.so.cache), return probes, pid filters, cookies, the legacy uprobe_events path and
uprobe_multi links; ELF and ld.so.cache parsing checked against readelf and ldconfig."""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess

import pytest

from pybpf import features
from pybpf.errors import BPFError, UnsupportedFeatureError, UsageError
from pybpf.links import Link, PerfEventAttachment
from pybpf.links.uprobe import (attach_uprobe, attach_uprobe_multi, attach_uretprobe, elf_file,
                                ld_so_cache, parse_ld_so_cache, resolve_binary)
from pybpf.programs import Program
from pybpf.sys.uapi import AttachType, LinkType
from tests.links.progs import PERF_LINK_INFO, count_per_cookie, count_per_tgid


def spawn(target, n: int) -> int:
    """Run the probe target (n rounds) to its end; its pid."""
    p = subprocess.Popen([str(target), str(n)], stdout=subprocess.PIPE)
    p.communicate()
    assert p.returncode == 0
    return p.pid


def test_ld_so_cache_agrees_with_ldconfig():
    listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    expected: dict[str, str] = {}
    for m in re.finditer(r"^\s*(\S+) \(libc6,x86-64[^)]*\) => (\S+)$", listing, re.M):
        expected.setdefault(m[1], m[2])
    cache = ld_so_cache()
    assert expected and {k: cache.get(k) for k in expected} == expected
    assert resolve_binary("libc.so.6") == expected["libc.so.6"]


def test_ld_so_cache_rejects_other_formats():
    with pytest.raises(UsageError, match="not the glibc-ld.so.cache1.1 format"):
        parse_ld_so_cache(b"ld.so-1.7.0" + bytes(64))
    header = struct.pack("<20sIIB3xI12x", b"glibc-ld.so.cache1.1", 1000, 0, 0, 0)
    with pytest.raises(UsageError, match="1000 entries do not fit"):
        parse_ld_so_cache(header)


def test_symbol_offsets_agree_with_readelf(probe_target):
    libc = resolve_binary("libc.so.6")
    for path, name in ((str(probe_target), "pybpf_uprobe_target"), (libc, "getpid")):
        out = subprocess.run(["readelf", "-sW", "-lW", path], capture_output=True, text=True,
                             check=True).stdout
        value = next(int(m[1], 16) for m in re.finditer(
            r"^\s*\d+: ([0-9a-f]+)\s+\d+\s+FUNC\s+\S+\s+\S+\s+\d+\s+(\S+)$", out, re.M)
            if m[2].split("@")[0] == name)
        seg = next((int(m[1], 16), int(m[2], 16), int(m[3], 16)) for m in re.finditer(
            r"^\s*LOAD\s+(0x[0-9a-f]+) (0x[0-9a-f]+) \S+ \S+ (0x[0-9a-f]+) .*E", out, re.M))
        assert elf_file(path).symbol(name).offset == value - seg[1] + seg[0]


def test_bad_targets_are_clear_errors(probe_target, tmp_path):
    with pytest.raises(UsageError, match="no function symbol 'no_such_fn'"):
        elf_file(str(probe_target)).symbol("no_such_fn")
    with pytest.raises(UsageError, match="not in /etc/ld.so.cache"):
        resolve_binary("libpybpf-nonexistent.so.9")
    with pytest.raises(UsageError, match="no such file"):
        resolve_binary("/nonexistent/prog")
    junk = tmp_path / "junk"
    junk.write_bytes(b"not an elf file")
    with pytest.raises(UsageError, match="not a valid ELF file"):
        elf_file(str(junk))


@pytest.mark.parametrize("legacy", [False, True], ids=["pmu", "uprobe_events"])
def test_uprobe_counts_calls_in_executable(counts, probe_target, legacy, tracefs):
    with Program.load("kprobe", count_per_tgid(counts.fd), name="up_count") as prog:
        with attach_uprobe(prog, str(probe_target), "pybpf_uprobe_target", legacy=legacy) as link:
            pid = spawn(probe_target, 7)
            assert counts.get(pid) == 7
            if not legacy:
                info = link.info()
                assert info.type == LinkType.PERF_EVENT and info.prog_id == prog.info().id
                if PERF_LINK_INFO:
                    assert info.details["file_name"] == str(probe_target)
                    assert info.details["offset"] == elf_file(str(probe_target)).symbol(
                        "pybpf_uprobe_target").offset
        if legacy:  # the event is gone from tracefs with the link
            with open(tracefs / "uprobe_events") as f:
                assert link._after_close is None and f"uprobe_{os.getpid()}_" not in f.read()
        pid = spawn(probe_target, 3)
        assert pid not in counts


def test_uretprobe_and_shared_library(counts, probe_target):
    """getpid in libc, named as ld.so resolves it; and the return of the target function."""
    with Program.load("kprobe", count_per_tgid(counts.fd), name="up_libc") as prog:
        with attach_uprobe(prog, "libc.so.6", "getpid"):
            pid = spawn(probe_target, 5)
            assert counts.get(pid, 0) >= 5
        with attach_uretprobe(prog, str(probe_target), "pybpf_uprobe_target"):
            pid = spawn(probe_target, 4)
            assert counts.get(pid) == 4


def test_pid_filter(counts, probe_target):
    with Program.load("kprobe", count_per_tgid(counts.fd), name="up_pid") as prog:
        waiting = subprocess.Popen([str(probe_target), "6", "wait"], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE)
        try:
            with attach_uprobe(prog, str(probe_target), "pybpf_uprobe_target", pid=waiting.pid):
                other = spawn(probe_target, 2)
                waiting.communicate(b"x")
                assert waiting.returncode == 0
                assert counts.get(waiting.pid) == 6 and other not in counts
        finally:
            waiting.kill()
            waiting.wait()


def test_cookies_and_ioctl_fallback(cookie_counts, probe_target):
    with Program.load("kprobe", count_per_cookie(cookie_counts.fd), name="up_cookie") as prog:
        with attach_uprobe(prog, str(probe_target), "pybpf_uprobe_target", cookie=0xabc), \
                attach_uretprobe(prog, str(probe_target), "pybpf_uprobe_target", cookie=0xdef):
            spawn(probe_target, 3)
        assert dict(cookie_counts.items()) == {0xabc: 3, 0xdef: 3}
        with attach_uprobe(prog, str(probe_target), "pybpf_uprobe_target",
                           force_ioctl=True) as att:
            assert isinstance(att, PerfEventAttachment)
            spawn(probe_target, 2)
        assert cookie_counts[0] == 2  # no cookie without a BPF link


def test_pinned_uprobe_link_outlives_its_process(counts, probe_target, pin_dir):
    """A child attaches, pins and exits; the probe keeps counting until the pin goes."""
    script = (
        "import sys\n"
        "from pybpf.links.uprobe import attach_uprobe\n"
        "from pybpf.maps import Map\n"
        "from pybpf.programs import Program\n"
        "from tests.links.progs import count_per_tgid\n"
        "m = Map.from_id(int(sys.argv[1]))\n"
        "p = Program.load('kprobe', count_per_tgid(m.fd), name='up_pinned')\n"
        "link = attach_uprobe(p, sys.argv[2], 'pybpf_uprobe_target')\n"
        "link.pin(sys.argv[3])\n"
        "print(link.id)\n")
    out = subprocess.run([shutil.which("python3") or "python3", "-c", script, str(counts.id),
                          str(probe_target), str(pin_dir / "uprobe")], capture_output=True,
                         text=True, check=True, cwd=os.path.dirname(os.path.dirname(
                             os.path.dirname(__file__)))).stdout
    link_id = int(out)
    pid = spawn(probe_target, 3)
    assert counts.get(pid) == 3
    with Link.from_id(link_id) as by_id, Link.from_pin(pin_dir / "uprobe") as by_pin:
        assert by_id.info() == by_pin.info()
        Link.unpin(pin_dir / "uprobe")
    pid = spawn(probe_target, 3)
    assert pid not in counts
    with pytest.raises(BPFError, match="no link with this id"):
        Link.from_id(link_id)


def load_multi(counter: bytes, name: str) -> Program:
    return Program.load("kprobe", counter, name=name,
                        expected_attach_type=AttachType.TRACE_UPROBE_MULTI)


def test_uprobe_multi(cookie_counts, probe_target):
    support = features.uprobe_multi()
    if not support:
        with load_multi(count_per_cookie(cookie_counts.fd), "um_none") as prog:
            with pytest.raises(UnsupportedFeatureError, match="uprobe_multi links are not"):
                attach_uprobe_multi(prog, str(probe_target), "pybpf_*")
        pytest.skip(support.reason)
    with load_multi(count_per_cookie(cookie_counts.fd), "um_count") as prog:
        with attach_uprobe_multi(prog, str(probe_target), symbols=["pybpf_uprobe_target", "main"],
                                 cookies=[1, 2]) as link:
            info = link.info()
            assert info.type == LinkType.UPROBE_MULTI
            assert (info.details["path"], info.details["count"]) == (str(probe_target), 2)
            spawn(probe_target, 5)
        with attach_uprobe_multi(prog, str(probe_target), "pybpf_uprobe_*", retprobe=True):
            spawn(probe_target, 2)
        assert dict(cookie_counts.items()) == {1: 5, 2: 1, 0: 2}
        with pytest.raises(UsageError, match=r"no function in .* matches 'nothing_\*'"):
            attach_uprobe_multi(prog, str(probe_target), "nothing_*")
        with pytest.raises(UsageError, match="1 cookies for 2 places"):
            attach_uprobe_multi(prog, str(probe_target), symbols=["main", "pybpf_uprobe_target"],
                                cookies=[1])
    with Program.load("kprobe", count_per_cookie(cookie_counts.fd), name="um_wrong") as prog:
        with pytest.raises(BPFError, match="expected_attach_type=TRACE_UPROBE_MULTI"):
            attach_uprobe_multi(prog, str(probe_target), symbols=["main"])
