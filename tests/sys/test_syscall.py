"""bpf() bound to its operands (``syscall.bound_calls``): machine code and libc, on the real kernel."""
from __future__ import annotations

import ctypes
import errno
import os
import platform
import sys
import types

import pytest

from pybpf.sys import Cmd, bpf, syscall
from pybpf.sys.attrs import MapCreateAttr, MapElemAttr
from pybpf.sys.fd import FD
from pybpf.sys.uapi import MapType, UpdateFlag

# where pybpf has a stub encoder; elsewhere bound calls go through libc syscall()
MACHINE_CODE = platform.machine() == "x86_64" and sys.implementation.name == "cpython" \
    and ctypes.sizeof(ctypes.c_void_p) == 8


@pytest.fixture
def hash_fd():
    attr = MapCreateAttr(map_type=MapType.HASH, key_size=4, value_size=8, max_entries=4,
                         map_name=b"t_bound")
    with FD(bpf(Cmd.MAP_CREATE, attr)) as fd:
        yield fd.fd


def bind(attr: MapElemAttr, machine_code: bool):
    addr = ctypes.addressof(attr)
    return syscall.bound_calls([(Cmd.MAP_LOOKUP_ELEM, addr, 32), (Cmd.MAP_UPDATE_ELEM, addr, 32),
                                (Cmd.MAP_DELETE_ELEM, addr, 16)], machine_code=machine_code)


@pytest.mark.parametrize("machine_code", [True, False], ids=["machine-code", "libc"])
def test_bound_calls_give_the_result_or_minus_errno(hash_fd, machine_code):
    key, value = ctypes.c_uint32(7), ctypes.c_uint64(0)
    attr = MapElemAttr(map_fd=hash_fd, key=ctypes.addressof(key), value=ctypes.addressof(value))
    lookup, update, delete = bind(attr, machine_code)
    assert lookup() == -errno.ENOENT
    value.value = 0x1122334455667788
    assert update() == 0
    value.value = 0
    assert lookup() == 0 and value.value == 0x1122334455667788  # the kernel wrote the value
    key.value = 8  # the operands are addresses: each call reads the memory as it is then
    assert lookup() == -errno.ENOENT
    attr.flags = UpdateFlag.EXIST
    assert update() == -errno.ENOENT
    attr.flags = 0
    key.value = 7
    assert delete() == 0 and delete() == -errno.ENOENT
    attr.map_fd = 0xFFFFFFFF
    assert lookup() == -errno.EBADF


def test_machine_code_where_pybpf_has_an_encoder():
    (fn,) = syscall.bound_calls([(Cmd.MAP_LOOKUP_ELEM, 0, 32)])
    if MACHINE_CODE:
        assert isinstance(fn, types.BuiltinFunctionType) and fn.__name__ == "bpf_map_lookup_elem"
    else:
        assert isinstance(fn, types.FunctionType)  # libc syscall() through ctypes
    assert fn() == -errno.EFAULT  # attr at address 0


def _stub_pages() -> int:
    """Bytes of anonymous read+execute mappings in this process."""
    total = 0
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split()
            if fields[1] == "r-xp" and len(fields) == 5:  # no path: anonymous
                start, end = (int(x, 16) for x in fields[0].split("-"))
                total += end - start
    return total


@pytest.mark.skipif(not MACHINE_CODE, reason="no machine-code stubs on this CPU or Python")
def test_stub_pages_live_as_long_as_their_functions():
    before = _stub_pages()
    held = [syscall.bound_calls([(Cmd.MAP_LOOKUP_ELEM, 0, 32)]) for _ in range(64)]
    assert _stub_pages() >= before + 64 * 4096
    assert all(fns[0]() == -errno.EFAULT for fns in held)
    del held
    assert _stub_pages() <= before


def test_elem_done_tells_the_tracer():
    seen = []
    old = syscall.install_tracer(lambda *call: seen.append(call))
    try:
        assert syscall.elem_done(Cmd.MAP_LOOKUP_ELEM, 0x1000, 32, -errno.ENOENT) == -errno.ENOENT
        assert syscall.elem_done(Cmd.MAP_UPDATE_ELEM, 0x1000, 32, 0) == 0
    finally:
        syscall.install_tracer(old)
    assert seen == [(Cmd.MAP_LOOKUP_ELEM, 0x1000, 32, -errno.ENOENT), (Cmd.MAP_UPDATE_ELEM, 0x1000, 32, 0)]


def test_machine_code_can_be_turned_off():
    """PYBPF_MACHINE_CODE=0: element calls go through libc syscall() (plain ctypes) only."""
    import subprocess
    code = ("import pybpf.sys.syscall as s\n"
            "from pybpf.maps import Map\n"
            "with Map.create('hash', 4, 4, 4, key='I', value='I') as m:\n"
            "    m[1] = 2\n"
            "    assert m[1] == 2\n"
            "fns = s.bound_calls([(0, 0, 0)])\n"
            "print(s._stubs_refused, type(fns[0]).__name__)\n")
    env = dict(os.environ, PYBPF_MACHINE_CODE="0")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out == ["True", "function"]
