"""Fixtures for network and cgroup hooks: private network namespaces, veth pairs, cgroups.

Test modules import the fixtures they use from here. Everything has a unique name
(pid + uuid) and is removed also when a test fails: other engineers' tests run at the same
time on this machine.
"""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from pybpf.sys.host import in_netns
from pybpf.sys.fd import FD
from tests.conftest import ensure_mount


def unique(prefix: str) -> str:
    return f"{prefix}{os.getpid() % 100000}{uuid.uuid4().hex[:4]}"


@dataclass
class NetNS:
    """A network namespace made by ``ip netns add``; ``entered()`` switches this thread in."""

    name: str

    @property
    def path(self) -> str:
        return f"/var/run/netns/{self.name}"

    def ip(self, *args: str) -> None:
        subprocess.run(["ip", "-n", self.name, *args], check=True, capture_output=True)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        """Run the block in this namespace (setns of the calling thread), then come back.
        Sockets, links and netlink sockets made inside stay in the namespace."""
        with FD(os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)) as fd, in_netns(fd):
            yield


@pytest.fixture
def make_netns():
    """Factory of fresh network namespaces (lo up), deleted at the end."""
    made: list[NetNS] = []

    def make() -> NetNS:
        ns = NetNS(unique("pybpf-"))
        subprocess.run(["ip", "netns", "add", ns.name], check=True)
        made.append(ns)
        ns.ip("link", "set", "lo", "up")
        return ns

    try:
        yield make
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns.name], capture_output=True)


@pytest.fixture
def netns(make_netns) -> NetNS:
    return make_netns()


@dataclass
class VethPair:
    """veth ``a`` (10.200.0.1, in ``ns_a``) <-> ``b`` (10.200.0.2, in ``ns_b``), both up,
    IPv6 off and static neighbour entries: the only packets on the wire are the test's."""

    ns_a: NetNS
    ns_b: NetNS
    a: str
    b: str
    ip_a: str = "10.200.0.1"
    ip_b: str = "10.200.0.2"
    mac_a: str = "02:00:0a:c8:00:01"
    mac_b: str = "02:00:0a:c8:00:02"

    def udp_pair(self) -> tuple[socket.socket, socket.socket]:
        """(sender in ns_a, receiver in ns_b bound to ip_b), with a short receive timeout."""
        with self.ns_b.entered():
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            rx.bind((self.ip_b, 0))
            rx.settimeout(0.3)
        with self.ns_a.entered():
            tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        return tx, rx


def received(tx: socket.socket, rx: socket.socket, n: int = 5) -> int:
    """Send ``n`` datagrams from ``tx`` to ``rx``'s address; how many arrive."""
    for i in range(n):
        tx.sendto(b"pybpf%d" % i, rx.getsockname())
    got = 0
    with contextlib.suppress(socket.timeout):  # TimeoutError only from Python 3.10
        while got < n:
            rx.recv(64)
            got += 1
    return got


def eventually(check, timeout: float = 5.0) -> bool:
    """Poll ``check()`` until true or ``timeout``: the kernel frees an unpinned link after
    an RCU grace period, not at the unlink."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.fixture
def veth(make_netns) -> VethPair:
    """A veth pair between two private namespaces: traffic never leaves them."""
    ns_a, ns_b = make_netns(), make_netns()
    pair = VethPair(ns_a, ns_b, unique("pa"), unique("pb"))
    for ns in (ns_a, ns_b):
        with ns.entered():
            for conf in ("all", "default"):
                with open(f"/proc/sys/net/ipv6/conf/{conf}/disable_ipv6", "w") as f:
                    f.write("1")
    ns_a.ip("link", "add", pair.a, "address", pair.mac_a, "type", "veth", "peer", "name",
            pair.b, "address", pair.mac_b, "netns", ns_b.name)
    for ns, dev, addr, peer_ip, peer_mac in ((ns_a, pair.a, pair.ip_a, pair.ip_b, pair.mac_b),
                                             (ns_b, pair.b, pair.ip_b, pair.ip_a, pair.mac_a)):
        ns.ip("addr", "add", f"{addr}/24", "dev", dev)
        ns.ip("neigh", "add", peer_ip, "lladdr", peer_mac, "dev", dev, "nud", "permanent")
        ns.ip("link", "set", dev, "up")
    tx, rx = pair.udp_pair()
    with tx, rx:  # the link takes a moment to come up: wait until a datagram gets through
        deadline = time.monotonic() + 5
        while not received(tx, rx, 1):
            assert time.monotonic() < deadline, "the veth pair never passed a datagram"
    return pair  # deleted with the namespaces


@pytest.fixture(scope="session")
def cgroup2_root() -> Path:
    """The cgroup v2 mount (mounted at /sys/fs/cgroup when there is none)."""
    with open("/proc/self/mounts") as f:
        for line in f:
            fields = line.split()
            if fields[2] == "cgroup2":
                return Path(fields[1])
    ensure_mount(Path("/sys/fs/cgroup"), "cgroup2")
    return Path("/sys/fs/cgroup")


@dataclass
class Cgroup:
    """A cgroup v2 directory made for one test."""

    path: Path

    def run(self, code: str, timeout: float = 20) -> str:
        """Run python ``code`` in a child that first moves itself into this cgroup; its
        stdout (stripped)."""
        prologue = f"open({str(self.path / 'cgroup.procs')!r}, 'w').write('0')\n"
        out = subprocess.run([sys.executable, "-c", prologue + code], capture_output=True,
                             text=True, timeout=timeout)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()


@pytest.fixture
def cgroup(cgroup2_root: Path) -> Iterator[Cgroup]:
    """A fresh cgroup v2 directory; its processes are moved out and it is removed after."""
    path = cgroup2_root / unique("pybpf-test-")
    path.mkdir()
    try:
        yield Cgroup(path)
    finally:
        for pid in (path / "cgroup.procs").read_text().split():
            with contextlib.suppress(OSError):
                (cgroup2_root / "cgroup.procs").write_text(pid)
        with contextlib.suppress(OSError):
            path.rmdir()
