"""USDT: notes read as readelf reads them, argument specs, attachment with semaphores (the
traced program sees its probe enabled), and argument values fetched in the BPF program, inline
or through libbpf's spec maps (``<bpf/usdt.bpf.h>``), by BPF cookie or by address."""
from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import uuid
from pathlib import Path

import pytest

from pybpf import features
from pybpf.asm import R6
from pybpf.btf import types as T
from pybpf.btf.spec import Spec
from pybpf.elf import ObjectSpec, load
from pybpf.elf.loader import object_btf
from pybpf.errors import UsageError
from pybpf.links.usdt import (IP_MAP, MAX_SPEC_ARGS, PT_REGS_X86_64, SPEC_SIZE, SPECS_MAP,
                              UsdtArg, UsdtLinks, UsdtSpecMaps, attach_usdt, encode_spec,
                              fetch_arg, find_usdt, parse_arg, parse_args, usdt_notes)
from pybpf.maps import Map
from pybpf.programs import Program, kernel_version_code
from pybpf.sys.uapi import Helper, ProgType
from tests.cli.tools import pybpf
from tests.conftest import MULTIARCH_INCLUDE
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
            if PERF_LINK_INFO:  # a BPF perf link, whose info says where the uprobe is
                details = group[0].info().details
                assert details["offset"] == site.offset
                if kernel_version_code() >= 0x060f00:  # 6.15 reports the reference counter
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


# -- libbpf's convention: <bpf/usdt.bpf.h> and its spec maps ----------------------------------
LIBBPF_USDT_SRC = Path(__file__).parent.parent / "bpf" / "elf_usdt.c"
ENOENT = 2


def bpf_cookies() -> features.Support:
    """The probe libbpf (and pybpf's loader, for LINUX_HAS_BPF_COOKIE) decides by."""
    return features.helper(ProgType.KPROBE, Helper.get_attach_cookie)


def build_libbpf_usdt(clang, target: Path, out: Path) -> Path:
    """tests/bpf/elf_usdt.c with on_hit's section naming ``target``."""
    subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                    f'-DUSDT_TARGET="{target}"', "-I", MULTIARCH_INCLUDE, "-c",
                    str(LIBBPF_USDT_SRC), "-o", str(out)], check=True)
    return out


def records(coll, name: str) -> dict:
    """A record map as {key: (arg0, arg1, arg2, arg_cnt, cookie, err)} (s64 each)."""
    with Map.from_fd(coll.maps[name].fd, key="q", value="6q") as m:
        return dict(m.items())


def test_spec_layout_is_usdt_bpf_h(bpf_objects):
    """encode_spec writes struct __bpf_usdt_spec as the object's BTF lays it out."""
    btf = ObjectSpec.from_file(bpf_objects["elf_usdt"]).btf
    spec, arg = btf.find("__bpf_usdt_spec", T.Struct), btf.find("__bpf_usdt_arg_spec", T.Struct)
    assert spec.size == SPEC_SIZE
    assert arg.size * MAX_SPEC_ARGS == spec.member("usdt_cookie").offset // 8
    encoded = encode_spec(parse_args("-4@%eax 8@-16(%rbp) -4@$-7"), cookie=0x1122)
    field = {m.name: m.offset // 8 for m in arg.members}

    def at(i: int, name: str, fmt: str):
        return struct.unpack_from("=" + fmt, encoded, i * arg.size + field[name])[0]

    assert [at(i, "arg_type", "I") for i in range(3)] == [1, 2, 0]  # REG, REG_DEREF, CONST
    assert at(0, "reg_off", "h") == PT_REGS_X86_64["rax"] and at(0, "arg_signed", "?")
    assert at(0, "arg_bitshift", "B") == 32 and at(1, "arg_bitshift", "B") == 0
    assert at(1, "reg_off", "h") == PT_REGS_X86_64["rbp"] and at(1, "val_off", "q") == -16
    assert at(2, "val_off", "q") == -7
    assert struct.unpack_from("=Q", encoded, spec.member("usdt_cookie").offset // 8)[0] == 0x1122
    assert struct.unpack_from("=h", encoded, spec.member("arg_cnt").offset // 8)[0] == 3
    with pytest.raises(UsageError, match="at most 12"):
        encode_spec(parse_args(" ".join(["8@%rax"] * 13)))


def test_hidden_global_subprograms_are_loaded_static(bpf_objects):
    """usdt.bpf.h's __weak __hidden helpers are global in clang's BTF; the kernel would verify
    them alone, where bpf_usdt_arg()'s pointer argument may be NULL (the verifier's
    "R3 invalid mem access 'mem_or_null'"). As libbpf, the loader makes them static."""
    spec = ObjectSpec.from_file(bpf_objects["elf_usdt"])
    loaded = Spec.parse(object_btf(spec))
    helpers = ("bpf_usdt_arg", "bpf_usdt_arg_cnt", "bpf_usdt_cookie")
    for name in helpers:
        assert spec.btf.find(name, T.Func).linkage == T.LINKAGE_GLOBAL
        assert loaded.find(name, T.Func).linkage == T.LINKAGE_STATIC
    for name in ("on_hit", "on_plain"):  # programs keep their linkage
        assert loaded.find(name, T.Func).linkage == T.LINKAGE_GLOBAL


@pytest.mark.parametrize("build", ["probe_target", "probe_target_O0"])
def test_libbpf_usdt_auto_attach_and_cookie(build, request, clang, tmp_path):
    """SEC("usdt/PATH:pybpf:hit") auto-attaches; on_plain is attached in code with a cookie;
    bpf_usdt_arg() reads registers (-O2) or stack slots (-O0) and constants."""
    target = request.getfixturevalue(build)
    obj = build_libbpf_usdt(clang, target, tmp_path / "usdt.o")
    with load(ObjectSpec.from_file(obj)) as coll:
        cookies = bpf_cookies()
        if not cookies:  # spec ids by address: a PIE target's are known in one process only
            with pytest.raises(UsageError, match="position-independent.*give pid="):
                coll.attach_all()
            pytest.skip(f"{cookies.reason} (BPF cookies); test_libbpf_usdt_by_address_without_"
                        "cookies covers this kernel's way")
        assert [type(link) for link in coll.attach_all()] == [UsdtLinks]  # on_hit only
        with attach_usdt(coll.programs["on_plain"], str(target), "pybpf", "plain",
                         cookie=0xC0FFEE) as plain:
            assert isinstance(plain, UsdtLinks)
            spawn(target, 5)
        # hit(i, sum, -7) where sum = (i+1)^2 after round i; plain(i); a 4th/2nd arg: -ENOENT
        assert records(coll, "hit_records") == {
            i: (i, (i + 1) ** 2, -7, 3, 0, -ENOENT) for i in range(5)}
        assert records(coll, "plain_records") == {
            i: (i, 0, 0, 1, 0xC0FFEE, -ENOENT) for i in range(5)}


def test_libbpf_usdt_by_address_without_cookies(bpf_objects, probe_target):
    """Loaded as on a kernel without BPF cookies (LINUX_HAS_BPF_COOKIE false): the spec ids
    are found by the probe's address in __bpf_usdt_ip_to_spec_id, entries removed on close."""
    with load(ObjectSpec.from_file(bpf_objects["elf_usdt"]), 
            kconfig={"LINUX_HAS_BPF_COOKIE": "n"}) as coll:
        prog = coll.programs["on_plain"]
        maps = UsdtSpecMaps(coll.maps[SPECS_MAP], coll.maps[IP_MAP], by_cookie=False)
        with pytest.raises(UsageError, match="position-independent.*give pid="):
            attach_usdt(prog, str(probe_target), "pybpf", "plain", spec_maps=maps)
        with pytest.raises(UsageError, match=f"process {os.getpid()} maps no .*probe_target"):
            attach_usdt(prog, str(probe_target), "pybpf", "plain", pid=os.getpid(),
                        spec_maps=maps)
        with Map.from_fd(coll.maps[IP_MAP].fd, key="q", value="I") as ips:
            assert len(list(ips.keys())) == 0  # the failed attaches left nothing
            waiting = subprocess.Popen([str(probe_target), "3", "wait"], stdin=subprocess.PIPE,
                                       stdout=subprocess.PIPE)
            try:
                with attach_usdt(prog, str(probe_target), "pybpf", "plain", pid=waiting.pid,
                                 cookie=7, spec_maps=maps):
                    site = find_usdt(str(probe_target), "pybpf", "plain")[0]
                    (ip, spec_id), = ips.items()
                    assert ip & 0xfff == site.address & 0xfff and ip != site.address
                    waiting.communicate(b"x")
                    assert waiting.returncode == 0
                assert len(list(ips.keys())) == 0
            finally:
                waiting.kill()
                waiting.wait()
        assert records(coll, "plain_records") == {i: (i, 0, 0, 1, 7, -ENOENT) for i in range(3)}


def test_libbpf_usdt_spec_ids_are_freed_and_reused(bpf_objects, probe_target):
    """Each attachment writes its spec (with its cookie) under its own spec id, its uprobe's
    BPF cookie; closing it frees the id for the next attachment, as libbpf's allocator."""
    def spec_cookie(specs: Map, spec_id: int) -> int:
        return struct.unpack_from("=Q", specs[spec_id], MAX_SPEC_ARGS * 16)[0]

    cookies = bpf_cookies()
    if not cookies:
        pytest.skip(f"{cookies.reason} (BPF cookies carry the spec ids)")
    with load(ObjectSpec.from_file(bpf_objects["elf_usdt"])) as coll, \
            Map.from_fd(coll.maps[SPECS_MAP].fd, key="i", value=f"{SPEC_SIZE}s") as specs:
        prog = coll.programs["on_plain"]
        first = attach_usdt(prog, str(probe_target), "pybpf", "plain", cookie=1)
        with attach_usdt(prog, str(probe_target), "pybpf", "plain", cookie=2) as second:
            with first:
                assert [spec_cookie(specs, i) for i in (0, 1)] == [1, 2]
                for spec_id, group in enumerate((first, second)):
                    details = group[0].info().details
                    assert details.get("cookie", spec_id) == spec_id  # where the kernel says
            with attach_usdt(prog, str(probe_target), "pybpf", "plain", cookie=3):
                assert [spec_cookie(specs, i) for i in (0, 1)] == [3, 2]


def test_libbpf_usdt_loadall_same_as_bpftool(bpf_objects, bpffs, pin_dir, bpftool):
    """``pybpf prog loadall`` and ``bpftool prog loadall`` of a usdt.bpf.h object: the same
    programs (names, types)."""
    obj = bpf_objects["elf_usdt"]
    peer = bpffs / f"pybpf-peer-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        subprocess.run([bpftool, "prog", "loadall", str(obj), str(peer)], check=True)
        theirs = {name: json.loads(subprocess.run(
            [bpftool, "-j", "prog", "show", "pinned", str(peer / name)], capture_output=True,
            check=True).stdout)["type"] for name in os.listdir(peer)}
    finally:
        shutil.rmtree(peer, ignore_errors=True)
    res = pybpf("prog", "loadall", obj, pin_dir / "progs")
    assert res.rc == 0, res.err
    ours = {name: pybpf("-j", "prog", "show", "pinned", pin_dir / "progs" / name).json()["type"]
            for name in os.listdir(pin_dir / "progs")}
    assert ours == theirs == {"on_hit": "kprobe", "on_plain": "kprobe"}
