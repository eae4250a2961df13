"""Programs on the real kernel: load, verifier log, test_run, info, xlated, pin, open."""
from __future__ import annotations

import errno
import os

import pytest

from pybpf.errors import BPFError, UnsupportedFeatureError, UsageError, VerifierError
from pybpf.programs import Program, ProgInfo, enable_stats, kernel_version_code, list_programs
from pybpf.sys import uapi
from pybpf.sys.uapi import ProgType

RET = bytes.fromhex("9500000000000000")


def ret_imm(value: int) -> bytes:
    """r0 = value; exit"""
    return bytes([0xB7, 0, 0, 0]) + value.to_bytes(4, "little", signed=True) + RET


def test_load_run_and_info():
    with Program.load("socket_filter", ret_imm(7), name="seven") as p:
        r = p.test_run(b"\0" * 64, repeat=5)
        assert r.retval == 7
        info = p.info()
        assert isinstance(info, ProgInfo)
        assert (info.name, info.type) == ("seven", ProgType.SOCKET_FILTER)
        assert info.id > 0 and len(info.tag) == 16 and info.gpl_compatible
        assert info.xlated_prog_len == 16 and info.verified_insns >= 2
        assert p.xlated() == ret_imm(7)
        assert abs(info.loaded_at - __import__("time").time()) < 60


def test_xdp_data_out_and_repeat():
    # r0 = XDP_TX (3): the packet comes back unchanged
    with Program.load("xdp", ret_imm(3), name="tx") as p:
        pkt = bytes(range(64))
        r = p.test_run(pkt, repeat=100)
        assert r.retval == 3 and r.data_out == pkt
        assert r.duration_ns >= 0


def test_raw_tracepoint_rules():
    # r0 = *(u64 *)(r1 + 0); exit -> returns the first context argument
    code = bytes.fromhex("7910000000000000") + RET
    with Program.load("raw_tracepoint", code, name="rawtp") as p:
        r = p.test_run(ctx_in=(41).to_bytes(8, "little"), flags=uapi.TestRunFlag.RUN_ON_CPU, cpu=0)
        assert r.retval == 41
        with pytest.raises(UsageError, match="take no data_in"):
            p.test_run(b"data")
        with pytest.raises(UsageError, match="exactly once"):
            p.test_run(ctx_in=bytes(8), repeat=10)


def test_verifier_rejection_carries_log():
    with pytest.raises(VerifierError) as ei:
        Program.load("xdp", RET, name="bad")  # exit without setting r0
    e = ei.value
    assert e.errno == errno.EACCES and e.command == "BPF_PROG_LOAD"
    assert "R0 !read_ok" in e.log and "R0 !read_ok" in str(e)
    assert "program 'bad'" in str(e) and not e.truncated


def test_log_of_successful_load_and_growth():
    p = Program.load("socket_filter", ret_imm(0), log_level=2, log_size=32)
    with p:
        assert "processed 2 insns" in p.verifier_log  # grown from 32 bytes until it fit


def test_truncated_log_is_marked():
    # 2000 jumps-to-next keep the verifier talking; a tiny max log cannot hold it
    code = bytes.fromhex("b700000000000000") + bytes.fromhex("0500000000000000") * 2000 + RET
    with pytest.raises(VerifierError) as ei:
        Program.load("socket_filter", code, log_level=2, log_size=1024, log_size_max=4096)
    assert ei.value.truncated and ei.value.errno == errno.ENOSPC
    assert "(log truncated)" in str(ei.value)


def test_bad_input():
    with pytest.raises(UsageError, match="multiple of 8"):
        Program.load("xdp", b"\x95\0\0")
    with pytest.raises(UsageError, match="unknown program type 'nope'"):
        Program.load("nope", ret_imm(0))
    with pytest.raises(UsageError, match="letters, digits"):
        Program.load("xdp", ret_imm(0), name="bad name!")


def test_refused_program_type_explains_why():
    # fentry needs an attach target; this kernel refuses tracing loads by policy (EPERM)
    from pybpf import features
    support = features.fentry()
    if support:
        pytest.skip("this kernel loads fentry programs: the refusal path is tested on the host")
    with pytest.raises(UnsupportedFeatureError, match="tp_btf or raw_tracepoint"):
        Program.load("tracing", ret_imm(0), expected_attach_type=24)


def test_name_truncated_to_kernel_limit():
    with Program.load("socket_filter", ret_imm(0), name="a_very_long_program_name") as p:
        assert p.info().name == "a_very_long_pro"


def test_open_by_id_pin_and_name(pin_dir):
    with Program.load("socket_filter", ret_imm(3), name="openme_pybpf") as p:
        pid = p.info().id
        with Program.from_id(pid) as q:
            assert q.info().id == pid and q.test_run(bytes(20)).retval == 3
        p.pin(pin_dir / "prog")
        with Program.from_pin(pin_dir / "prog") as q:
            assert q.info().id == pid
        with Program.from_name("openme_pybpf") as q:
            assert q.info().id == pid
        assert any(i.id == pid for i in list_programs())
        with Program.load("socket_filter", ret_imm(0), name="openme_pybpf"):
            with pytest.raises(BPFError, match="2 programs have this name"):
                Program.from_name("openme_pybpf")


def test_kernel_version_code():
    assert kernel_version_code("6.18.44-fc") == (6 << 16) | (18 << 8) | 44
    assert kernel_version_code("5.10.300") == (5 << 16) | (10 << 8) | 255
    r = os.uname().release
    assert kernel_version_code() == kernel_version_code(r)


def test_run_stats_while_enabled():
    with Program.load("socket_filter", ret_imm(1), name="stats") as p:
        with enable_stats():
            p.test_run(bytes(20), repeat=25)
            info = p.info()
            assert info.run_cnt >= 25 and info.run_time_ns > 0
