"""The strace-format trace of bpf() calls, on the real kernel and against real strace."""
from __future__ import annotations

import ctypes
import io
import os
import re
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pybpf.sys import Cmd, bpf, bpf_raw, syscall
from pybpf.sys.attrs import (ATTR_OF_CMD, BtfLoadAttr, GetIdAttr, LinkCreateAttr, MapCreateAttr, MapElemAttr,
                             ProgLoadAttr)
from pybpf.sys.trace import disable, enable, format_call, tracing
from pybpf.sys.uapi import AttachType, MapType, ProgFlag, ProgType

RET0 = bytes.fromhex("b700000000000000" "9500000000000000")  # r0 = 0; exit

# A BTF blob with one type, ``int``: header, 16 bytes of types, "\0int\0".
BTF = (struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, 16, 16, 5)
       + struct.pack("<IIII", 1, 0x01000000, 4, 0x01000020) + b"\0int\0")


def call(cmd: int, attr: ctypes.Structure, size: int = 0) -> int:
    """bpf() without raising: the result or -errno."""
    return bpf_raw(cmd, ctypes.addressof(attr), size or ctypes.sizeof(attr))


def split_top(text: str) -> list[str]:
    """Split ``a, b={c, d}, e="x, y"`` at its top-level commas."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c in "{[(":
            depth += 1
        elif c in "}])":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    parts.append(text[start:].strip())
    return parts


def fields(struct_text: str, prefix: str = "") -> list[tuple[str, str]]:
    """``{a=1, test={b=2}}`` -> [("a", "1"), ("test.b", "2")]."""
    out = []
    for part in split_top(struct_text[1:-1]):
        name, _, value = part.partition("=")
        if value.startswith("{") and re.fullmatch(r"\w+", name):
            out += fields(value, f"{prefix}{name}.")
        else:
            out.append((prefix + name, value))
    return out


LINE = re.compile(r"bpf\((?P<cmd>[^,]+), (?P<attr>.*), (?P<size>\d+)\) += (?P<ret>.*)")


def parse(line: str) -> tuple[str, list[tuple[str, str]], int, str]:
    m = LINE.fullmatch(line.strip())
    assert m, line
    return m["cmd"], fields(m["attr"]), int(m["size"]), m["ret"]


@pytest.fixture
def lines():
    with tracing([]) as out:
        yield out


@pytest.fixture
def config_map():
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=12,
                                           max_entries=10240, map_name=b"config"))
    yield fd
    os.close(fd)


# --- the example ----------------------------------------------------------------------------

def test_map_create_and_update_print_strace_lines(lines):
    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=12,
                                           max_entries=10240, map_name=b"config"))
    try:
        key, value = ctypes.c_uint32(7), (ctypes.c_uint8 * 12)()
        bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(key),
                                             value=ctypes.addressof(value)))
    finally:
        os.close(fd)
    assert lines == [
        "bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_HASH, key_size=4, value_size=12, "
        'max_entries=10240, map_flags=0, inner_map_fd=0, map_name="config", map_ifindex=0, btf_fd=0, '
        "btf_key_type_id=0, btf_value_type_id=0, btf_vmlinux_value_type_id=0, map_extra=0, "
        "value_type_btf_obj_fd=0, map_token_fd=0, excl_prog_hash=NULL, excl_prog_hash_size=0}, "
        f"96) = {fd}",
        f"bpf(BPF_MAP_UPDATE_ELEM, {{map_fd={fd}, key={ctypes.addressof(key):#x}, "
        f"value={ctypes.addressof(value):#x}, flags=BPF_ANY}}, 32) = 0",
    ]


# --- errors --------------------------------------------------------------------------------------------

def test_errors_print_errno_name_and_message(config_map, lines):
    call(Cmd.MAP_CREATE, MapCreateAttr(map_type=9999, key_size=4, value_size=4, max_entries=1))
    key, value = ctypes.c_uint32(12345), (ctypes.c_uint8 * 12)()
    call(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=config_map, key=ctypes.addressof(key),
                                          value=ctypes.addressof(value)))
    assert lines[0].startswith("bpf(BPF_MAP_CREATE, {map_type=0x270f /* BPF_MAP_TYPE_??? */, key_size=4,")
    assert lines[0].endswith(", 96) = -1 EINVAL (Invalid argument)")
    assert lines[1].endswith("flags=BPF_ANY}, 32) = -1 ENOENT (No such file or directory)")


def test_unknown_command_and_unreadable_attr_print_addresses(lines):
    call(0x40, GetIdAttr())
    bpf_raw(Cmd.MAP_FREEZE, 0x10, 4)
    assert re.fullmatch(r"bpf\(0x40 /\* BPF_\?\?\? \*/, 0x[0-9a-f]+, 16\) = -1 EINVAL \(Invalid argument\)",
                        lines[0])
    assert lines[1] == "bpf(BPF_MAP_FREEZE, 0x10, 4) = -1 EFAULT (Bad address)"


# --- strace's value formatting ------------------------------------------------------------------------

def test_btf_load_prints_btf_bytes_with_octal_escapes(lines):
    blob = ctypes.create_string_buffer(BTF, len(BTF))
    fd = call(Cmd.BTF_LOAD, BtfLoadAttr(btf=ctypes.addressof(blob), btf_size=len(BTF)))
    if fd >= 0:
        os.close(fd)
    assert lines[0].startswith(
        r'bpf(BPF_BTF_LOAD, {btf="\237\353\1\0\30\0\0\0\0\0\0\0\20\0\0\0\20\0\0\0\5\0\0\0'
        r'\1\0\0\0\0\0\0\1"..., '
        "btf_log_buf=NULL, btf_size=45, btf_log_size=0, btf_log_level=0, btf_log_true_size=0, btf_flags=0, "
        "btf_token_fd=0}, 40) = ")


def test_prog_load_strings_flags_and_kernel_version(lines):
    insns = ctypes.create_string_buffer(RET0, len(RET0))
    lic = ctypes.create_string_buffer(b"GPL and a licence longer than 32 bytes")
    call(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=ProgType.SOCKET_FILTER, insn_cnt=2,
                                     insns=ctypes.addressof(insns), license=ctypes.addressof(lic),
                                     kern_version=0x061200, prog_flags=ProgFlag.SLEEPABLE | 0x100,
                                     prog_name=b"tab\there"))
    _, got, size, ret = parse(lines[0])
    got = dict(got)
    assert got["insns"] == hex(ctypes.addressof(insns))
    assert got["license"] == '"GPL and a licence longer than 32"...'
    assert got["log_buf"] == "NULL"
    assert got["kern_version"] == "KERNEL_VERSION(6, 18, 0)"
    assert got["prog_flags"] == "BPF_F_SLEEPABLE|0x100"
    assert got["prog_name"] == r'"tab\there"'
    assert (size, ret) == (168, "-1 EINVAL (Invalid argument)")


def test_short_size_stops_where_strace_stops(lines):
    attr = MapCreateAttr(map_type=MapType.ARRAY, key_size=4, value_size=4, max_entries=1, map_name=b"short")
    fd = call(Cmd.MAP_CREATE, attr, 48)
    if fd >= 0:
        os.close(fd)
    assert lines[0] == ("bpf(BPF_MAP_CREATE, {map_type=BPF_MAP_TYPE_ARRAY, key_size=4, value_size=4, "
                        'max_entries=1, map_flags=0, inner_map_fd=0, map_name="short", map_ifindex=0}, '
                        f"48) = {fd}")


def test_nonzero_bytes_past_straces_struct_print_as_ellipsis(lines):
    attr = GetIdAttr(start_id=1, open_flags=8)  # PROG_GET_FD_BY_ID: strace knows prog_id only
    call(Cmd.PROG_GET_FD_BY_ID, attr)
    assert lines[0].startswith("bpf(BPF_PROG_GET_FD_BY_ID, {prog_id=1, ...}, 16) = ")


def test_link_create_nests_the_attach_type_union(lines):
    tracing_attr = LinkCreateAttr(prog_fd=0xFFFFFFFF, attach_type=AttachType.TRACE_FENTRY)
    tracing_attr.target.tracing.target_btf_id, tracing_attr.target.tracing.cookie = 5, 42
    call(Cmd.LINK_CREATE, tracing_attr)
    tcx = LinkCreateAttr(prog_fd=0xFFFFFFFF, target_fd=1, attach_type=AttachType.TCX_INGRESS)
    call(Cmd.LINK_CREATE, tcx)
    cgroup = LinkCreateAttr(prog_fd=0xFFFFFFFF, attach_type=AttachType.CGROUP_INET_INGRESS)
    call(Cmd.LINK_CREATE, cgroup)
    assert lines[0].startswith(
        "bpf(BPF_LINK_CREATE, {link_create={prog_fd=-1, target_fd=0, attach_type=BPF_TRACE_FENTRY, "
        "flags=0, tracing={target_btf_id=5, cookie=0x2a}}}, 64) = -1 ")
    assert lines[1].startswith(
        'bpf(BPF_LINK_CREATE, {link_create={prog_fd=-1, target_ifindex=if_nametoindex("lo"), '
        "attach_type=BPF_TCX_INGRESS, flags=0, tcx={relative_fd=0, expected_revision=0}}}, 64) = -1 ")
    assert lines[2].startswith(
        "bpf(BPF_LINK_CREATE, {link_create={prog_fd=-1, target_fd=0, "
        "attach_type=BPF_CGROUP_INET_INGRESS, flags=0}}, 64) = -1 ")


# --- switching it on and off ---------------------------------------------------------------------------

def test_enable_disable_and_tracing_restore_the_previous_tracer(config_map):
    file = io.StringIO()
    enable(file)
    try:
        call(Cmd.MAP_FREEZE, MapElemAttr(map_fd=config_map))
        inner: list[str] = []
        before = syscall.tracer
        with tracing(inner):
            call(Cmd.MAP_FREEZE, MapElemAttr(map_fd=config_map))
        assert syscall.tracer is before
    finally:
        disable()
    assert syscall.tracer is None
    call(Cmd.MAP_FREEZE, MapElemAttr(map_fd=config_map))
    line = f"bpf(BPF_MAP_FREEZE, {{map_fd={config_map}}}, 32) = "
    assert file.getvalue() == line + "0\n"
    assert len(inner) == 1 and inner[0].startswith(line + "-1 E")  # frozen already


@pytest.mark.parametrize("fill", [0x00, 0x01, 0xFF])
@pytest.mark.parametrize("cmd", sorted(ATTR_OF_CMD))
def test_every_command_decodes_any_bytes(cmd: int, fill: int):
    """The tracer runs after a call that may have made an fd: it must never raise."""
    attr = (ctypes.c_uint8 * 256)(*[fill] * 256)
    for size in (4, 16, 256):
        cmd_name, _, got_size, ret = parse(format_call(cmd, ctypes.addressof(attr), size, 3))
        assert (cmd_name, got_size, ret) == (f"BPF_{Cmd(cmd).name}", size, "3")


def test_format_call_is_usable_without_a_tracer():
    attr = GetIdAttr(start_id=3)
    assert format_call(Cmd.LINK_GET_FD_BY_ID, ctypes.addressof(attr), 16, -2) == (
        "bpf(BPF_LINK_GET_FD_BY_ID, {link_id=3}, 16) = -1 ENOENT (No such file or directory)")


# --- against real strace --------------------------------------------------------------------------------

CHILD = textwrap.dedent('''
    import ctypes, sys
    from pybpf.sys import Cmd, bpf, bpf_raw
    from pybpf.sys.attrs import *

    keep = []
    def addr(obj):
        keep.append(obj)
        return ctypes.addressof(obj)
    def buf(data):
        return addr(ctypes.create_string_buffer(data, len(data)))

    fd = bpf(Cmd.MAP_CREATE, MapCreateAttr(map_type=1, key_size=4, value_size=12, max_entries=10240,
                                           map_name=b"config"))
    key, value, nxt = ctypes.c_uint32(1), (ctypes.c_uint8 * 12)(*range(12)), ctypes.c_uint32()
    bpf(Cmd.MAP_UPDATE_ELEM, MapElemAttr(map_fd=fd, key=addr(key), value=addr(value), flags=1))
    bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=addr(key), value=addr(value)))
    bpf(Cmd.MAP_GET_NEXT_KEY, MapElemAttr(map_fd=fd, key=0, value=addr(nxt)))
    bpf(Cmd.MAP_DELETE_ELEM, MapElemAttr(map_fd=fd, key=addr(key)))
    missing = MapElemAttr(map_fd=fd, key=addr(key), value=addr(value))
    bpf_raw(Cmd.MAP_LOOKUP_ELEM, ctypes.addressof(missing), ctypes.sizeof(missing))
    path = buf(sys.argv[1].encode() + b"\\0")
    bpf(Cmd.OBJ_PIN, ObjAttr(pathname=path, bpf_fd=fd))
    bpf(Cmd.OBJ_GET, ObjAttr(pathname=path))
    prog = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=1, insn_cnt=2, insns=buf(bytes.fromhex(sys.argv[2])),
                                           license=buf(b"GPL\\0"), kern_version=0x061200,
                                           prog_name=b"ret0"))
    data, out = ctypes.create_string_buffer(64), ctypes.create_string_buffer(64)
    bpf(Cmd.PROG_TEST_RUN, TestRunAttr(prog_fd=prog, data_in=addr(data), data_size_in=64,
                                       data_out=addr(out), data_size_out=64, repeat=1))
    info = MapInfoStruct()
    bpf(Cmd.OBJ_GET_INFO_BY_FD, InfoAttr(bpf_fd=fd, info_len=ctypes.sizeof(info), info=addr(info)))
    bpf(Cmd.MAP_GET_NEXT_ID, GetIdAttr(start_id=0))
    btf = bytes.fromhex(sys.argv[3])
    bpf(Cmd.BTF_LOAD, BtfLoadAttr(btf=buf(btf), btf_size=len(btf)))
    raw_tp = bpf(Cmd.PROG_LOAD, ProgLoadAttr(prog_type=17, insn_cnt=2,
                                             insns=buf(bytes.fromhex(sys.argv[2])), license=buf(b"GPL\\0")))
    bpf(Cmd.RAW_TRACEPOINT_OPEN, RawTracepointAttr(name=buf(b"sys_enter\\0"), prog_fd=raw_tp))
    bad = MapCreateAttr(map_type=9999, key_size=4, value_size=4, max_entries=1)
    bpf_raw(Cmd.MAP_CREATE, ctypes.addressof(bad), ctypes.sizeof(bad))
''')

# Where strace 6.1 (Debian 12) and our 6.18 decoding legitimately differ, per command:
STRACE_ONLY = {  # fields old strace printed that current strace no longer does
    "BPF_MAP_GET_NEXT_ID": {"open_flags"},
}
KERNEL_WRITTEN = {  # strace decodes these on entry, the tracer after the call
    "BPF_PROG_TEST_RUN": {"test.retval", "test.data_size_out", "test.duration", "test.ctx_size_out"},
}


def test_lines_match_real_strace(tmp_path: Path, pin_dir: Path):
    """Every call of a small program traced by strace and by us: same command, size, result, and
    the fields strace knows in the same order with the same values.

    strace 6.1 predates parts of the 6.18 UAPI, so it prints a prefix of our fields: MAP_CREATE stops
    at map_extra, OBJ_PIN/OBJ_GET at file_flags, BTF_LOAD at btf_log_level, RAW_TRACEPOINT_OPEN
    lacks cookie, and PROG_LOAD ends with fd_array alone (its attr predates core_relo_*, so it never
    prints core_relo_cnt, core_relos, log_true_size, prog_token_fd, fd_array_cnt, signature...). It
    also prints open_flags for *_GET_NEXT_ID (current strace does not), and ``next_id=0 => 67`` where
    we print the value on return.
    """
    strace = shutil.which("strace")
    if strace is None:
        pytest.skip("strace is not installed (apt-get install strace)")
    out = tmp_path / "strace.txt"
    proc = subprocess.run(
        [strace, "-qq", "-e", "signal=none", "-f", "-e", "trace=bpf", "-o", str(out),
         sys.executable, "-c", CHILD, str(pin_dir / "config"), RET0.hex(), BTF.hex()],
        env={**os.environ, "PYBPF_TRACE": "1"}, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    ours = [line for line in proc.stderr.splitlines() if line.startswith("bpf(")]
    theirs = [re.sub(r"^\d+ +", "", line) for line in out.read_text().splitlines()]
    theirs = [line for line in theirs if line.startswith("bpf(")]
    assert len(ours) == len(theirs) == 16, (ours, theirs)
    for our_line, their_line in zip(ours, theirs):
        cmd, our_fields, size, ret = parse(our_line)
        their_cmd, their_fields, their_size, their_ret = parse(their_line)
        assert (their_cmd, their_size, their_ret) == (cmd, size, ret), (our_line, their_line)
        our_names = [name for name, _ in our_fields]
        our_values = dict(our_fields)
        positions = []
        for name, value in their_fields:
            if name in STRACE_ONLY.get(cmd, ()):
                continue
            assert name in our_values, (name, our_line, their_line)
            positions.append(our_names.index(name))
            if name not in KERNEL_WRITTEN.get(cmd, ()):
                assert our_values[name] == value.split(" => ")[-1], (name, our_line, their_line)
        assert positions == sorted(positions), (our_line, their_line)
