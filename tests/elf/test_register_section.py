"""Sections registered by the application (``register_section``, libbpf's
``libbpf_register_prog_handler``): matched before the table, loaded with their program type,
auto-attached by their own function with the name's extras, gone once unregistered."""
from __future__ import annotations

import socket

import pytest

import pybpf
from pybpf.elf import ObjectSpec, find_section, load, register_section, unregister_section
from pybpf.elf.attach import auto_attach_kind
from pybpf.errors import ObjectError, UsageError
from pybpf.links.socket import attach_socket_filter
from pybpf.sys.uapi import AttachType, ProgType

SOURCE = """
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("test_drop/receiver")
int drop_all(struct __sk_buff *skb)
{
	return 0;  /* a socket filter keeping 0 bytes: the datagram is dropped */
}

char LICENSE[] SEC("license") = "GPL";
"""


@pytest.fixture(scope="module")
def obj():
    return pybpf.compile(SOURCE, vmlinux=False)


@pytest.fixture
def udp_pair():
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(0.3)
        yield tx, rx
    finally:
        tx.close()
        rx.close()


def arrives(tx: socket.socket, rx: socket.socket) -> bool:
    tx.sendto(b"x", rx.getsockname())
    try:
        rx.recv(8)
        return True
    except socket.timeout:
        return False


def test_registered_section_loads_and_auto_attaches(obj, udp_pair):
    tx, rx = udp_pair
    calls = []

    def attach(prog, extras):
        calls.append((prog.name, extras))
        return attach_socket_filter(prog, {"receiver": rx}[extras])

    d = register_section("test_drop/", ProgType.SOCKET_FILTER, None, attach)
    try:
        spec = ObjectSpec.from_file(obj)
    finally:
        unregister_section(d)
    prog = spec.programs["drop_all"]
    assert (prog.type, prog.attach_target) == (ProgType.SOCKET_FILTER, "receiver")
    with load(spec) as coll:
        assert arrives(tx, rx)
        coll.attach_all()
        assert calls == [("drop_all", "receiver")]
        assert not arrives(tx, rx)
    assert find_section("test_drop/receiver") is None


def test_registered_without_function_is_attached_in_code(obj, udp_pair):
    tx, rx = udp_pair
    d = register_section("test_drop/", ProgType.SOCKET_FILTER)
    try:
        spec = ObjectSpec.from_file(obj)
    finally:
        unregister_section(d)
    with load(spec) as coll:
        prog = coll.programs["drop_all"]
        assert auto_attach_kind(prog) is None and coll.attach_all() == []
        with pytest.raises(UsageError, match="does not say where to attach"):
            prog.attach()
        with attach_socket_filter(prog, rx):
            assert not arrives(tx, rx)


def test_registration_rules(obj):
    with pytest.raises(ObjectError, match="register_section"):
        ObjectSpec.from_file(obj)
    d = register_section("xdp/", ProgType.XDP, AttachType.XDP)
    try:  # registered sections come before the table, as in libbpf
        assert find_section("xdp/devmap").definition is d
        with pytest.raises(UsageError, match="registered already"):
            register_section("xdp/", ProgType.XDP)
    finally:
        unregister_section(d)
    assert find_section("xdp/devmap").attach_type == AttachType.XDP_DEVMAP
    with pytest.raises(UsageError, match="is not registered"):
        unregister_section(d)
    with pytest.raises(UsageError, match="names no section prefix"):
        register_section("+", ProgType.XDP)
