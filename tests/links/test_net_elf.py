"""C programs (tests/bpf/net_hooks.c) loaded by pybpf.elf, attached with pybpf.links: only the
datagrams or connections to the port set in the object's .rodata are dropped."""
from __future__ import annotations

import socket
import struct

import pytest

from pybpf.elf import ObjectSpec, load
from pybpf.links import attach_cgroup, attach_tc, attach_xdp
from tests.links.netfixtures import (cgroup, cgroup2_root, make_netns, received,  # noqa: F401
                                     veth)


def spec_for(bpf_objects, port: int) -> ObjectSpec:
    spec = ObjectSpec.from_file(bpf_objects["net_hooks"])
    spec.variables["port"].value = port
    return spec


def counter(obj, spec: ObjectSpec, name: str) -> int:
    var = spec.variables[name]
    return struct.unpack_from("=Q", obj.maps[var.map.name][0], var.offset)[0]


@pytest.mark.parametrize("hook", ["xdp", "tc"])
def test_c_program_drops_one_port_only(bpf_objects, veth, hook):
    tx, rx = veth.udp_pair()
    _, other = veth.udp_pair()
    with tx, rx, other:
        spec = spec_for(bpf_objects, rx.getsockname()[1])
        with load(spec) as obj:
            prog = obj.programs[f"{hook}_drop_port"]
            with veth.ns_b.entered():
                att = attach_xdp(prog, veth.b) if hook == "xdp" else attach_tc(prog, veth.b)
            with att:
                assert received(tx, rx, 3) == 0
                assert received(tx, other, 3) == 3
                assert counter(obj, spec, f"{hook}_drops") == 3
            assert received(tx, rx, 3) == 3


def test_c_cgroup_program_refuses_one_port(bpf_objects, cgroup):
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    code = ("import errno, socket\n"
            "for p in ({port}, {free}):\n"
            "    try:\n"
            "        socket.create_connection(('127.0.0.1', p)).close(); print('ok')\n"
            "    except OSError as e:\n"
            "        print(errno.errorcode[e.errno])\n")
    with listener:
        spec = spec_for(bpf_objects, port)
        with load(spec) as obj:
            prog = obj.programs["refuse_port"]
            code = code.format(port=port, free=9)
            assert cgroup.run(code).split() == ["ok", "ECONNREFUSED"]
            with attach_cgroup(prog, cgroup.path, "connect4"):
                assert cgroup.run(code).split() == ["EPERM", "ECONNREFUSED"]
                assert counter(obj, spec, "refused") == 1
            assert cgroup.run(code).split() == ["ok", "ECONNREFUSED"]
