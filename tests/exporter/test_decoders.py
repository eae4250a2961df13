"""Label decoders on real data: the running kernel's symbols, syscall numbers, devices,
interfaces and cgroups."""
from __future__ import annotations

import ctypes
import errno
import os
import socket
import sys
import uuid

import pytest


from pybpf.exporter.config import DecoderConfig, Label
from pybpf.exporter.decoders import (DecodeError, Decoders, PCI_IDS_PATHS, PciIds, SkipLabelSet,
                                     syscall_names)


def label(size: int, *names: str, **conf) -> Label:
    return Label("l", size, 0, [DecoderConfig(n, **conf) for n in names])


def one(decoders: Decoders, data: bytes, *names: str, **conf) -> str:
    return decoders.decode(data, [label(len(data), *names, **conf)])[0]


@pytest.fixture(scope="module")
def d() -> Decoders:
    return Decoders()


def u(value: int, size: int) -> bytes:
    return value.to_bytes(size, sys.byteorder)


def test_uint_sizes(d):
    assert [one(d, u(200, n), "uint") for n in (1, 2, 4, 8)] == ["200"] * 4
    with pytest.raises(DecodeError, match="unknown value length 3"):
        one(d, b"abc", "uint")


def test_hex_string_dname_inet(d):
    assert one(d, b"\x01\xab", "hex") == "01ab"
    assert one(d, b"sda\0junk", "string") == "sda"
    assert one(d, b"\x03www\x07example\x03com", "dname") == "www.example.com"
    assert one(d, socket.inet_pton(socket.AF_INET, "10.1.2.3"), "inet_ip") == "10.1.2.3"
    assert one(d, socket.inet_pton(socket.AF_INET6, "2001:db8::1"), "inet_ip") == "2001:db8::1"
    assert one(d, socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.1"), "inet_ip") == "10.0.0.1"


def test_syscall_numbers_are_this_architecture(d):
    """The number the kernel runs getppid under is the one the decoder names getppid."""
    names = syscall_names()
    nr = {v: k for k, v in names.items()}["getppid"]
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    assert libc.syscall(ctypes.c_long(nr)) == os.getppid()
    assert one(d, u(nr, 4), "uint", "syscall") == "getppid"
    assert one(d, u(99999, 4), "uint", "syscall") == "unknown_syscall:99999"


def test_errno(d):
    assert one(d, u(errno.ENOENT, 4), "uint", "errno") == "ENOENT"
    assert one(d, u(4000, 4), "uint", "errno") == "unknown:4000"


def kallsyms_entry(name: str) -> int:
    with open("/proc/kallsyms") as f:
        for line in f:
            addr, _, sym = line.split()[:3]
            if sym == name:
                return int(addr, 16)
    pytest.fail(f"{name} not in /proc/kallsyms")


def test_ksym_and_kstack_name_kernel_addresses(d):
    addr = kallsyms_entry("hrtimer_wakeup")
    if addr == 0:
        pytest.skip("kptr_restrict hides kernel addresses from this process")
    assert one(d, u(addr, 8), "ksym") == "hrtimer_wakeup"
    assert one(d, u(addr + 3, 8), "ksym") == f"unknown_addr:0x{addr + 3:x}"   # exact only
    other = kallsyms_entry("schedule")
    stack = u(addr + 5, 8) + u(other + 1, 8) + u(0, 8) + u(addr, 8)
    assert one(d, stack, "kstack") == "hrtimer_wakeup\nschedule"          # up to the first 0
    # names decoded one at a time: not the whole table's (~10 MiB of str)
    assert "names" not in vars(d.kernel.symbols)


def test_majorminor_names_a_partition(d):
    with open("/proc/partitions") as f:
        rows = [line.split() for line in f if line.split()[:1] and line.split()[0].isdigit()]
    if not rows:
        pytest.skip("no block devices in /proc/partitions")
    major, minor, _, name = rows[0]
    dev = (int(minor) & 0xff) | (int(major) << 8) | ((int(minor) & ~0xff) << 12)  # new_encode_dev
    assert one(d, u(dev, 4), "majorminor") == name
    assert one(d, u((4000 << 8) | 7, 4), "majorminor") == "unknown:4000:7"


def test_ifname(d):
    assert one(d, u(socket.if_nametoindex("lo"), 4), "ifname") == "lo"
    assert one(d, u(999999, 4), "ifname") == "unknown:999999"


def test_cgroup_ids_are_paths(cgroup2_root):
    root = str(cgroup2_root)
    path = os.path.join(root, f"pybpf-exporter-test-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    os.mkdir(path)
    try:
        d = Decoders()
        assert d.cgroups.root == root
        d.cgroups.walk()
        cid = os.stat(path).st_ino   # cgroup v2: the id is the directory's inode number
        assert one(d, u(cid, 8), "uint", "cgroup") == path      # found by walking again
        assert one(d, u(1 << 60, 8), "uint", "cgroup") == f"unknown_cgroup_id:{1 << 60}"
    finally:
        os.rmdir(path)


def test_static_map_and_regexp(d):
    table = {"1": "read", "2": "write"}
    assert one(d, u(2, 4), "uint", "static_map", static_map=table) == "write"
    assert one(d, u(3, 4), "uint", "static_map", static_map=table) == "unknown:3"
    assert one(d, u(3, 4), "uint", "static_map", static_map=table, allow_unknown=True) == "3"
    assert one(d, b"nvme0n1\0", "string", "regexp", regexps=["^sd", "^(nvme\\d+)"]) == "nvme0"
    with pytest.raises(SkipLabelSet):
        one(d, b"loop0\0\0\0", "string", "regexp", regexps=["^sd"])
    with pytest.raises(SkipLabelSet):  # two groups never select (ebpf_exporter's rule)
        one(d, b"sda1\0\0\0\0", "string", "regexp", regexps=["^(sd)([a-z])"])


def test_keys_split_by_size_and_padding_and_skipped_keys_cached(d):
    labels = [Label("a", 4, 4, [DecoderConfig("uint")]),
              Label("b", 8, 0, [DecoderConfig("string"), DecoderConfig("regexp",
                                                                       regexps=["^keep"])])]
    key = u(7, 4) + b"\xff" * 4 + b"keep\0\0\0\0"
    assert d.decode_cached("m", key, labels) == ("7", "keep")
    assert d.decode_cached("m", u(7, 4) + b"\0" * 4 + b"drop\0\0\0\0", labels) is None
    with pytest.raises(DecodeError, match="the key has 4 bytes but the labels describe 16"):
        d.decode(u(1, 4), labels)


def test_pci_ids(d):
    path = next((p for p in PCI_IDS_PATHS if os.path.exists(p)), None)
    if path is None:
        pytest.fail("no pci.ids database: `apt-get install pci.ids` (.ci/install installs it)")
    db = PciIds(path)
    assert db.vendors["8086"].startswith("Intel")
    assert one(d, b"32902", "pci_vendor") == db.vendors["8086"]
    assert one(d, str(0x80861000).encode(), "pci_device") == db.products["80861000"]
    assert one(d, b"2", "pci_class") == db.classes["02"]
    assert one(d, str(0x0200).encode(), "pci_subclass") == db.subclasses["0200"]


CALLS: list[bytes] = []


def counting_regexp(data: bytes, conf: DecoderConfig) -> bytes:
    """A Python decoder (module:function) that records what it is asked to decode."""
    CALLS.append(bytes(data))
    return data


@pytest.mark.parametrize("size, decoded_again", [(None, []), (0, [b"b", b"a", b"b", b"a"]),
                                                 (1, [b"a", b"b", b"a"]), (2, [])])
def test_skip_cache_size(size, decoded_again):
    """--config.skip-cache-size: None keeps skipped keys with the labels; 0 remembers none
    (ebpf_exporter's default: decoded again); N keeps the last N skipped keys."""
    d = Decoders(skip_cache_size=size)
    name = f"{__name__}:counting_regexp"
    assert d.why_unknown(name) is None
    labels = [Label("x", 1, 0, [DecoderConfig(name), DecoderConfig("regexp", regexps=["^k"])])]
    assert [d.decode_cached("m", key, labels) for key in (b"a", b"b", b"k")] == \
        [None, None, ("k",)]                         # a and b skipped by the regexp
    CALLS.clear()
    assert [d.decode_cached("m", key, labels) for key in (b"b", b"a", b"b", b"a", b"k")] == \
        [None, None, None, None, ("k",)]
    assert CALLS == decoded_again                     # k: from the label cache
    assert len(d.skipped) == (min(size, 2) if size else 0)
