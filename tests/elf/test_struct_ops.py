"""struct_ops maps: tests/bpf/struct_ops.c is a TCP congestion control made of BPF programs;
registered, the kernel lists it and a socket on loopback runs its programs. Each test names
its congestion controls uniquely and unregisters them, also when it fails."""
from __future__ import annotations

import os
import re
import socket
import struct
import subprocess
import uuid

import pytest

from pybpf import features
from pybpf.btf import types as T
from pybpf.elf import ObjectSpec, load
from pybpf.elf.struct_ops import StructOpsSpec, resolve
from pybpf.errors import BPFError, ObjectError, UnsupportedFeatureError
from pybpf.links.link import Link
from pybpf.links.struct_ops import StructOpsRegistration
from pybpf.sys.uapi import LinkType, MapFlag, MapType

AVAILABLE = "/proc/sys/net/ipv4/tcp_available_congestion_control"


def available() -> list[str]:
    with open(AVAILABLE) as f:
        return f.read().split()


def ca_name(spec: ObjectSpec, name: str) -> str:
    return spec.struct_ops[name].data[:16].rstrip(b"\0").decode()


@pytest.fixture
def spec(bpf_objects) -> ObjectSpec:
    spec = ObjectSpec.from_file(bpf_objects["struct_ops"])
    tag = uuid.uuid4().hex[:6]
    for name, so in spec.struct_ops.items():  # "pyb_reg_1a2b3c": at most 15 characters
        so.set("name", f"pyb_{name[6:]}_{tag}".encode())
    return spec


@pytest.fixture
def usable(spec) -> ObjectSpec:
    """``spec``, without its .struct_ops.link map where the kernel has no struct_ops links."""
    if not features.struct_ops_link():  # Linux 6.1, 5.10: the .struct_ops map alone
        spec.maps["pybpf_link"].autocreate = False
    return spec


def counters(coll) -> dict[str, int]:
    bss, v = coll.maps["struct_o.bss"][b"\0" * 4], coll.spec.variables
    return {n: struct.unpack_from("=Q", bss, v[n].offset)[0] for n in ("inits", "avoids")}


def use(name: str) -> None:
    """A TCP connection on loopback with congestion control ``name``, sending a little."""
    with socket.socket() as srv, socket.socket() as cli:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        cli.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, name.encode())
        cli.connect(srv.getsockname())
        conn, _ = srv.accept()
        with conn:
            assert cli.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16
                                  ).rstrip(b"\0").decode() == name
            for _ in range(20):
                cli.sendall(b"x" * 4096)
                assert conn.recv(65536)


def test_spec_maps_programs_and_members(spec):
    assert {n: (m.type, m.key_size, m.max_entries, m.flags & MapFlag.LINK)
            for n, m in spec.maps.items() if m.type == MapType.STRUCT_OPS} == {
        "pybpf_reg": (MapType.STRUCT_OPS, 4, 1, 0),
        "pybpf_link": (MapType.STRUCT_OPS, 4, 1, MapFlag.LINK)}
    wanted = {"init": "ca_init", "ssthresh": "ca_ssthresh", "cong_avoid": "ca_cong_avoid",
              "undo_cwnd": "ca_undo_cwnd"}
    assert spec.struct_ops["pybpf_reg"].programs == spec.struct_ops["pybpf_link"].programs \
        == wanted
    assert not spec.struct_ops["pybpf_reg"].link and spec.struct_ops["pybpf_link"].link
    assert not spec.programs["ca_unused"].autoload  # no map uses it, as libbpf
    with pytest.raises(ObjectError, match="no data member 'init'"):
        spec.struct_ops["pybpf_reg"].set("init", 1)  # a function pointer: set by programs


def test_registered_without_link(usable):
    name = ca_name(usable, "pybpf_reg")
    with load(usable) as coll:
        assert "ca_unused" not in coll.programs
        with coll.attach_struct_ops("pybpf_reg") as reg:
            assert isinstance(reg, StructOpsRegistration)
            assert name in available()
            before = counters(coll)
            use(name)
            after = counters(coll)
            assert after["inits"] > before["inits"] and after["avoids"] > before["avoids"]
            with pytest.raises(BPFError, match="nothing to pin"):
                reg.pin("/sys/fs/bpf/x")
        assert name not in available()


@pytest.mark.kernel("struct_ops_link")
def test_registered_through_a_link(spec, kernel_value_type):
    name = ca_name(spec, "pybpf_link")
    with load(spec) as coll:
        info = coll.maps["pybpf_link"].info()
        assert (info.btf_vmlinux_value_type_id, info.value_size) == kernel_value_type
        with coll.attach_struct_ops("pybpf_link") as link:
            assert isinstance(link, Link) and link.info().type == LinkType.STRUCT_OPS
            assert name in available()
            before = counters(coll)["inits"]
            use(name)
            assert counters(coll)["inits"] > before
        assert name not in available()


@pytest.mark.kernel("struct_ops_link")
def test_attach_all_registers_both_and_close_unregisters(spec):
    names = [ca_name(spec, n) for n in ("pybpf_reg", "pybpf_link")]
    coll = load(spec)
    try:
        attached = coll.attach_all()
        assert len(attached) == 2 and all(n in available() for n in names)
    finally:
        coll.close()
    assert not any(n in available() for n in names)


def test_link_maps_on_a_kernel_without_them(spec):
    """Before Linux 6.4 a .struct_ops.link map is refused with the probe's reason."""
    support = features.struct_ops_link()
    if support:
        assert support.reason == ""
        return
    assert "6.4" in support.reason
    with pytest.raises(UnsupportedFeatureError, match="struct_ops.link.*6.4"):
        load(spec)


@pytest.fixture(scope="module")
def kernel_value_type() -> tuple[int, int]:
    """bpf_struct_ops_tcp_congestion_ops's id and size, as bpftool prints vmlinux BTF."""
    out = subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux",
                          "format", "raw"], check=True, capture_output=True, text=True).stdout
    m = re.search(r"^\[(\d+)\] STRUCT 'bpf_struct_ops_tcp_congestion_ops' size=(\d+)", out,
                  re.M)
    return int(m.group(1)), int(m.group(2))


def test_member_the_kernel_lacks_is_an_error_when_set(usable):
    usable.struct_ops["pybpf_reg"].set("pybpf_extra", 7)
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(ObjectError, match="'pybpf_extra' is set but the kernel's struct "
                                          "tcp_congestion_ops has no such member"):
        load(usable)
    assert len(os.listdir("/proc/self/fd")) == before


def test_program_with_autoload_off_is_an_error(usable):
    usable.programs["ca_init"].autoload = False
    with pytest.raises(ObjectError, match="needs program 'ca_init', whose autoload is off"):
        load(usable)


def test_kernel_struct_must_exist_and_be_struct_ops():
    fn = T.Pointer(T.FuncProto(T.VOID, []))
    for name, why in (("pybpf_no_such_ops", "has no struct pybpf_no_such_ops"),
                      ("list_head", "not a struct_ops type of this kernel")):
        so = StructOpsSpec("x", T.Struct(name, 8, [T.Member("next", fn, 0)]), bytearray(8),
                           False)
        with pytest.raises(ObjectError, match=why):
            resolve(so, "test")


def test_program_loads_for_one_member(usable):
    """A program attaches to one member of one kernel struct: set to two is an error."""
    usable.struct_ops["pybpf_reg"].programs["ssthresh"] = "ca_init"
    with pytest.raises(ObjectError, match="'ca_init' is set to two members"):
        load(usable)
    if usable.maps["pybpf_link"].autocreate:  # kernels with struct_ops links: across two maps
        usable.struct_ops["pybpf_reg"].programs["ssthresh"] = "ca_ssthresh"
        usable.struct_ops["pybpf_link"].programs.update(init="ca_ssthresh", ssthresh="ca_init")
        with pytest.raises(ObjectError, match="different kernel structs or positions"):
            load(usable)


def test_struct_ops_maps_not_created_load_no_programs(spec):
    for name in spec.struct_ops:
        spec.maps[name].autocreate = False
    with load(spec) as coll:
        assert coll.struct_ops == {} and not [m for m in coll.maps if m.startswith("pybpf_")]
        assert set(coll.programs) == set()  # each is a struct_ops program of those maps
