"""Cgroup programs on a cgroup made for each test: the effect seen by a process inside it."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import pytest

from pybpf import features
from pybpf.asm import R0, assemble, exit_, mov64_imm
from pybpf.errors import BPFError, UnsupportedFeatureError, UsageError
from pybpf.links import Link
from pybpf.links.attach import ProgAttachment
from pybpf.sys.hooks import CGROUP_ATTACH_TYPES, PROG_TYPE_OF_ATTACH
from pybpf.links.cgroup import (attach_cgroup, cgroup_attach_type, detach_cgroup, list_cgroup,
                                query_cgroup)
from pybpf.programs import Program, kernel_version_code
from pybpf.sys.uapi import AttachFlag, AttachType, LinkType
from tests.links.netfixtures import cgroup, cgroup2_root, eventually  # noqa: F401 (fixtures)

ATTEMPT = """
import errno, socket
def attempt(fn):
    try:
        fn()
        print("ok")
    except socket.timeout:  # TimeoutError only from Python 3.10
        print("timeout")
    except OSError as e:
        print(errno.errorcode[e.errno])
def udp(family=socket.AF_INET):
    return socket.socket(family, socket.SOCK_DGRAM)
"""

# attach type -> (code run in the cgroup, its result without the program, with a denying one)
DENIALS = {
    "sock_create": ("attempt(udp)", "ok", "EPERM"),
    "bind4": ("attempt(lambda: udp().bind(('127.0.0.1', 0)))", "ok", "EPERM"),
    "bind6": ("attempt(lambda: udp(socket.AF_INET6).bind(('::1', 0)))", "ok", "EPERM"),
    "post_bind4": ("attempt(lambda: udp().bind(('127.0.0.1', 0)))", "ok", "EPERM"),
    "post_bind6": ("attempt(lambda: udp(socket.AF_INET6).bind(('::1', 0)))", "ok", "EPERM"),
    "connect4": ("attempt(lambda: socket.create_connection(('127.0.0.1', 9)))",
                 "ECONNREFUSED", "EPERM"),
    "connect6": ("attempt(lambda: socket.create_connection(('::1', 9)))",
                 "ECONNREFUSED", "EPERM"),
    "sendmsg4": ("attempt(lambda: udp().sendto(b'x', ('127.0.0.1', 9)))", "ok", "EPERM"),
    "sendmsg6": ("attempt(lambda: udp(socket.AF_INET6).sendto(b'x', ('::1', 9)))", "ok", "EPERM"),
    "egress": ("attempt(lambda: udp().sendto(b'x', ('127.0.0.1', 9)))", "ok", "EPERM"),
    "ingress": ("s = udp(); s.bind(('127.0.0.1', 0)); s.settimeout(0.5)\n"
                "s.sendto(b'x', s.getsockname()); attempt(lambda: s.recv(1))", "ok", "timeout"),
    "getsockopt": ("attempt(lambda: udp().getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))",
                   "ok", "EPERM"),
    "setsockopt": ("attempt(lambda: udp().setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192))",
                   "ok", "EPERM"),
    "sysctl": ("attempt(lambda: open('/proc/sys/kernel/ostype').read())", "ok", "EPERM"),
    "device": ("attempt(lambda: open('/dev/null').read())", "ok", "EPERM"),
    "connect_unix": ("attempt(lambda: socket.socket(socket.AF_UNIX).connect('\\0pybpf-none'))",
                     "ECONNREFUSED", "EPERM"),
}


def outside(code: str) -> str:
    """Run python ``code`` in a child left in the test's own cgroup."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=20).stdout.strip()


def load(attach: str, retval: int) -> Program:
    at = cgroup_attach_type(attach)
    return Program.load(PROG_TYPE_OF_ATTACH[at], assemble([mov64_imm(R0, retval), exit_()]),
                        name=f"cg_{attach}"[:15], expected_attach_type=at)


def require(attach: str, cgroup) -> None:
    """Skip when the kernel lacks the hook, after checking that attaching says so clearly."""
    support = features.attach_type(cgroup_attach_type(attach))
    if not support:
        at = cgroup_attach_type(attach)
        assert "not supported by this kernel" in support.reason
        ptype = PROG_TYPE_OF_ATTACH[at]
        known = next(a for a in CGROUP_ATTACH_TYPES  # loadable: an attach type the kernel has
                     if PROG_TYPE_OF_ATTACH[a] == ptype and features.attach_type(a))
        with Program.load(ptype, assemble([mov64_imm(R0, 1), exit_()]),
                          expected_attach_type=known) as p:
            with pytest.raises(UnsupportedFeatureError, match=f"{at.name.lower()} is not "
                                                              "supported by this kernel"):
                attach_cgroup(p, cgroup.path, at)
        pytest.skip(support.reason)


@pytest.mark.parametrize("attach", sorted(DENIALS))
def test_denying_program_takes_effect_and_goes_with_the_link(cgroup, attach):
    require(attach, cgroup)
    code, allowed, denied = DENIALS[attach]
    assert cgroup.run(ATTEMPT + code) == allowed
    with load(attach, 0) as prog:
        with attach_cgroup(prog, cgroup.path, attach) as link:
            assert isinstance(link, Link)
            assert cgroup.run(ATTEMPT + code) == denied
            assert cgroup.run(ATTEMPT + code) == denied
            assert outside(ATTEMPT + code) == allowed  # only the cgroup's processes
    assert cgroup.run(ATTEMPT + code) == allowed


_PASSIVE = sorted(short for short in ("recvmsg4", "recvmsg6", "getpeername4", "getpeername6",
                                      "getsockname4", "getsockname6", "sock_release", "sock_ops",
                                      "recvmsg_unix", "getpeername_unix", "getsockname_unix",
                                      "sendmsg_unix"))


@pytest.mark.parametrize("attach", _PASSIVE)
def test_every_other_cgroup_hook_attaches_and_is_listed(cgroup, attach):
    require(attach, cgroup)
    at = cgroup_attach_type(attach)
    with load(attach, 1) as prog, attach_cgroup(prog, cgroup.path, attach) as link:
        info = link.info()
        assert info.type == LinkType.CGROUP and info.prog_id == prog.id
        assert info.details["cgroup_id"] == os.stat(cgroup.path).st_ino
        assert info.details["attach_type"] == at
        q = query_cgroup(cgroup.path, attach)
        assert q.prog_ids == (prog.id,) and q.programs[0].name == prog.name
        assert [h.attach_type for h in list_cgroup(cgroup.path)] == [at]
    assert query_cgroup(cgroup.path, attach).programs == ()
    assert list_cgroup(cgroup.path) == []


def test_every_cgroup_attach_type_is_covered():
    tested = set(DENIALS) | set(_PASSIVE) | {"lsm_cgroup"}  # LSM: fentry-like, BTF target
    assert {cgroup_attach_type(t) for t in tested} == set(CGROUP_ATTACH_TYPES)


def test_prog_attach_multi_query_order_and_detach(cgroup):
    code, allowed, denied = DENIALS["connect4"]
    with load("connect4", 1) as allow, load("connect4", 0) as deny:
        first = attach_cgroup(allow, cgroup.path, "connect4", AttachFlag.ALLOW_MULTI)
        assert isinstance(first, ProgAttachment)
        with first, attach_cgroup(deny, cgroup.path, AttachType.CGROUP_INET4_CONNECT,
                                  AttachFlag.ALLOW_MULTI) as second:
            q = query_cgroup(cgroup.path, "connect4")
            assert q.prog_ids == (allow.id, deny.id)
            assert q.attach_flags == AttachFlag.ALLOW_MULTI
            # per-program flags: reported since Linux 6.0 (prog_attach_flags), 0 before
            per_prog = AttachFlag.ALLOW_MULTI if kernel_version_code() >= 0x060000 else 0
            assert [p.attach_flags for p in q.programs] == [per_prog, per_prog]
            assert query_cgroup(cgroup.path, "connect4", effective=True).prog_ids[-2:] == \
                (allow.id, deny.id)
            assert cgroup.run(ATTEMPT + code) == denied
            second.detach()
            assert second.closed
            assert query_cgroup(cgroup.path, "connect4").prog_ids == (allow.id,)
            assert cgroup.run(ATTEMPT + code) == allowed
            with pytest.raises(BPFError, match="no BPF link to pin"):
                first.pin("/sys/fs/bpf/never")
        assert query_cgroup(cgroup.path, "connect4").programs == ()


def test_prog_attach_replace_and_detach_by_path(cgroup):
    code, allowed, denied = DENIALS["sendmsg4"]
    with load("sendmsg4", 1) as allow, load("sendmsg4", 0) as deny:
        att = attach_cgroup(allow, cgroup.path, "sendmsg4", AttachFlag.ALLOW_MULTI)
        try:
            attach_cgroup(deny, cgroup.path, "sendmsg4", AttachFlag.ALLOW_MULTI, replace=allow)
            assert query_cgroup(cgroup.path, "sendmsg4").prog_ids == (deny.id,)
            assert cgroup.run(ATTEMPT + code) == denied
            detach_cgroup(cgroup.path, "sendmsg4", deny)
            assert query_cgroup(cgroup.path, "sendmsg4").programs == ()
        finally:
            att.close()  # its program was replaced: nothing left to detach, no error
        assert att.closed


def test_pinned_link_outlives_close(cgroup, pin_dir):
    code, allowed, denied = DENIALS["connect4"]
    with load("connect4", 0) as prog:
        link = attach_cgroup(prog, cgroup.path, "connect4")
        link.pin(pin_dir / "deny")
        link.close()
        assert cgroup.run(ATTEMPT + code) == denied
        with Link.from_pin(pin_dir / "deny") as again:
            assert again.info().prog_id == prog.id
            Link.unpin(pin_dir / "deny")
    assert eventually(lambda: cgroup.run(ATTEMPT + code) == allowed)


def test_cgroup_link_update(cgroup):
    code, allowed, denied = DENIALS["connect4"]
    with load("connect4", 1) as allow, load("connect4", 0) as deny:
        with attach_cgroup(allow, cgroup.path, "connect4") as link:
            assert cgroup.run(ATTEMPT + code) == allowed
            link.update(deny)
            assert cgroup.run(ATTEMPT + code) == denied


def test_errors_name_what_is_wrong(cgroup, tmp_path):
    with load("connect4", 0) as prog:
        with pytest.raises(UsageError, match=f"cgroup {cgroup.path}/nope does not exist"):
            attach_cgroup(prog, cgroup.path / "nope", "connect4")
        with pytest.raises(UsageError, match="is not a cgroup v2 directory"):
            attach_cgroup(prog, tmp_path, "connect4")
        with pytest.raises(UsageError, match="cg_connect4.* is a cgroup_sock_addr program; "
                                             ".*cgroup_inet_egress.* takes cgroup_skb"):
            attach_cgroup(prog, cgroup.path, "egress")
        with pytest.raises(UsageError, match="xdp is not a cgroup attach type"):
            attach_cgroup(prog, cgroup.path, "xdp")
        with pytest.raises(UsageError, match="unknown attach type 'connect5'"):
            attach_cgroup(prog, cgroup.path, "connect5")
        with pytest.raises(UsageError, match="BPF_PROG_ATTACH flags"):
            attach_cgroup(prog, cgroup.path, "connect4", AttachFlag.ALLOW_MULTI, link=True)
    with load("connect4", 1) as first, load("connect4", 0) as second:
        with attach_cgroup(first, cgroup.path, "connect4", link=False):  # exclusive
            with pytest.raises(BPFError, match="BPF_PROG_ATTACH .*attached in another mode"):
                attach_cgroup(second, cgroup.path, "connect4", AttachFlag.ALLOW_MULTI)
        with pytest.raises(BPFError, match="BPF_PROG_DETACH .*no such program is attached"):
            detach_cgroup(cgroup.path, "connect4", first)
    with load("sendmsg4", 0) as wrong_expected:  # loaded for sendmsg4, attached to connect4
        with pytest.raises(BPFError) as e:
            attach_cgroup(wrong_expected, cgroup.path, "connect4")
        assert e.value.errno == errno.EINVAL and "BPF_LINK_CREATE" in str(e.value)
