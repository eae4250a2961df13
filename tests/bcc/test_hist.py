"""Histogram printing in BCC's text, from real maps: counts written to a kernel array or hash
map and read back through a minimal table (items() of ctypes key and leaf, Key, Leaf).
The expected texts are written out by hand from BCC's documented output format."""
from __future__ import annotations

import ctypes as ct
import os
import re

import pytest

from pybpf.bcc import hist
from pybpf.maps import Map
from tests.bcc.bcc_peer import run_both


class Table:
    """What the printing functions use of a BCC table, over a pybpf Map."""

    def __init__(self, m: Map, key: type, leaf: type) -> None:
        self.map, self.Key, self.Leaf = m, key, leaf

    def items(self):
        for k, v in self.map.items():
            yield self.Key.from_buffer_copy(k), self.Leaf.from_buffer_copy(v)


class SectionKey(ct.Structure):
    _fields_ = [("pid", ct.c_uint32), ("__pad_1", ct.c_uint32), ("slot", ct.c_uint64)]


class NameKey(ct.Structure):
    _fields_ = [("name", ct.c_char * 8), ("slot", ct.c_uint32)]


@pytest.fixture
def array_table():
    """An int-keyed table (BPF_HISTOGRAM with the default key: an array map)."""
    def make(counts: dict[int, int], entries: int = hist.log2_index_max) -> Table:
        m = Map.create("array", 4, 8, entries, name="hist_arr")
        for slot, count in counts.items():
            m[bytes(ct.c_uint32(slot))] = bytes(ct.c_uint64(count))
        made.append(m)
        return Table(m, ct.c_int, ct.c_ulonglong)
    made: list[Map] = []
    try:
        yield make
    finally:
        for m in made:
            m.close()


@pytest.fixture
def hash_table():
    made: list[Map] = []

    def make(key: type, entries: dict) -> Table:
        m = Map.create("hash", ct.sizeof(key), 8, 64, name="hist_hash")
        made.append(m)
        for k, count in entries.items():
            m[bytes(key(*k))] = bytes(ct.c_uint64(count))
        return Table(m, key, ct.c_ulonglong)
    try:
        yield make
    finally:
        for m in made:
            m.close()


def test_log2(array_table, capsys):
    table = array_table({1: 3, 3: 211, 5: 100, 7: 1})
    hist.print_log2_hist(table, "usecs")
    assert capsys.readouterr().out == (
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 3        |                                        |\n"
        "         2 -> 3          : 0        |                                        |\n"
        "         4 -> 7          : 211      |****************************************|\n"
        "         8 -> 15         : 0        |                                        |\n"
        "        16 -> 31         : 100      |******************                      |\n"
        "        32 -> 63         : 0        |                                        |\n"
        "        64 -> 127        : 1        |                                        |\n")


def test_log2_strip_leading_zero_and_default_type(array_table, capsys):
    table = array_table({4: 10, 6: 5})
    hist.print_log2_hist(table, strip_leading_zero=True)
    assert capsys.readouterr().out == (
        "     value               : count     distribution\n"
        "         8 -> 15         : 10       |****************************************|\n"
        "        16 -> 31         : 0        |                                        |\n"
        "        32 -> 63         : 5        |********************                    |\n")


def test_log2_wide_columns_past_slot_32(array_table, capsys):
    table = array_table({2: 4, 34: 8})
    hist.print_log2_hist(table, "nsecs", strip_leading_zero=True)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == ("               nsecs                         : count     "
                        "distribution")
    assert lines[1] == ("                   2 -> 3                    : 4        "
                        "|**********          |")
    assert lines[-1] == ("          8589934592 -> 17179869183          : 8        "
                         "|********************|")
    assert len(lines) == 1 + 33


def test_empty_histogram_prints_nothing(array_table, capsys):
    hist.print_log2_hist(array_table({}), "usecs")
    hist.print_linear_hist(array_table({}, hist.linear_index_max), "usecs")
    assert capsys.readouterr().out == ""


def test_linear(array_table, capsys):
    table = array_table({0: 2, 2: 8, 3: 3}, hist.linear_index_max)
    hist.print_linear_hist(table, "msecs")
    assert capsys.readouterr().out == (
        "     msecs         : count     distribution\n"
        "        0          : 2        |**********                              |\n"
        "        1          : 0        |                                        |\n"
        "        2          : 8        |****************************************|\n"
        "        3          : 3        |***************                         |\n")
    hist.print_linear_hist(table, "msecs", strip_leading_zero=True)
    assert capsys.readouterr().out.splitlines()[1] == \
        "        0          : 2        |**********                              |"


def test_linear_index_past_the_limit(hash_table):
    table = hash_table(ct.c_uint32, {(2000,): 1})  # BPF_HASH(h, u32): slots as keys
    with pytest.raises(IndexError, match="print_linear_hist.*2000 exceeds max of 1025"):
        hist.print_linear_hist(table)


def test_sections_with_padding_key(hash_table, capsys):
    table = hash_table(SectionKey, {(7, 0, 1): 1, (7, 0, 2): 4, (9, 0, 3): 2})
    hist.print_log2_hist(table, "usecs", "pid", bucket_sort_fn=sorted)
    assert capsys.readouterr().out == (
        "\n"
        "pid = 7\n"
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 1        |**********                              |\n"
        "         2 -> 3          : 4        |****************************************|\n"
        "\n"
        "pid = 9\n"
        "     usecs               : count     distribution\n"
        "         0 -> 1          : 0        |                                        |\n"
        "         2 -> 3          : 0        |                                        |\n"
        "         4 -> 7          : 2        |****************************************|\n")


def test_sections_print_fn_bucket_fn_and_sort(hash_table, capsys):
    table = hash_table(NameKey, {(b"bash", 1): 5, (b"sshd", 1): 1, (b"sshd", 2): 1})
    hist.print_log2_hist(table, "kbytes", "comm", section_print_fn=lambda b: b.decode(),
                         bucket_fn=lambda b: b.upper(),
                         bucket_sort_fn=lambda bs: sorted(bs, reverse=True))
    out = capsys.readouterr().out
    assert out.startswith("\ncomm = SSHD\n     kbytes              : count     distribution\n")
    assert "\ncomm = BASH\n" in out and out.index("SSHD") < out.index("BASH")
    hist.print_linear_hist(table, "kbytes", "comm")  # the section's repr without a print fn
    assert "\ncomm = b'bash'\n     kbytes        : count     distribution\n" in \
        capsys.readouterr().out


def test_json(array_table, hash_table, capsys):
    hist.print_json_hist(array_table({1: 3, 3: 1}), "usecs")
    out = capsys.readouterr().out
    assert re.fullmatch(
        r"\{'ts': '\d{4}-\d\d-\d\d \d\d:\d\d:\d\d', 'val_type': 'usecs', 'data': \["
        r"\{'interval-start': 0, 'interval-end': 1, 'count': 3\}, "
        r"\{'interval-start': 2, 'interval-end': 3, 'count': 0\}, "
        r"\{'interval-start': 4, 'interval-end': 7, 'count': 1\}\]\}\n", out)
    hist.print_json_hist(hash_table(SectionKey, {(7, 0, 1): 2}), "usecs", "pid",
                         section_print_fn=lambda b: f"pid {b}")
    assert capsys.readouterr().out.rstrip().endswith(
        "'data': [{'interval-start': 0, 'interval-end': 1, 'count': 2}], 'pid': 'pid 7'}")


def test_stars():
    assert hist._stars(1, 211, 40) == ""
    assert hist._stars(6, 211, 40) == "*"
    assert hist._stars(211, 211, 40) == "*" * 40
    assert hist._stars(300, 211, 40) == "*" * 39 + "+"


def test_histogram_of_real_events(capsys):
    """A BCC program counts the sizes of this process's read()s of one file into log2
    slots; the printed histogram has them in the right rows."""
    from pybpf.bcc import BPF
    fd = os.open("/dev/zero", os.O_RDONLY)
    text = """
BPF_HISTOGRAM(dist);
TRACEPOINT_PROBE(syscalls, sys_enter_read) {
    if (bpf_get_current_pid_tgid() >> 32 != %d || args->fd != %d)
        return 0;
    dist.increment(bpf_log2l(args->count));
    return 0;
}
""" % (os.getpid(), fd)
    try:
        with BPF(text=text) as b:
            for size in (1000, 1000, 1000, 100, 100):
                os.read(fd, size)
            b["dist"].print_log2_hist("bytes")
    finally:
        os.close(fd)
    assert capsys.readouterr().out == (
        "     bytes               : count     distribution\n"
        "         0 -> 1          : 0        |                                        |\n"
        "         2 -> 3          : 0        |                                        |\n"
        "         4 -> 7          : 0        |                                        |\n"
        "         8 -> 15         : 0        |                                        |\n"
        "        16 -> 31         : 0        |                                        |\n"
        "        32 -> 63         : 0        |                                        |\n"
        "        64 -> 127        : 2        |**************************              |\n"
        "       128 -> 255        : 0        |                                        |\n"
        "       256 -> 511        : 0        |                                        |\n"
        "       512 -> 1023       : 3        |****************************************|\n")


PRINT_ALL = r"""
import ctypes as ct, re
from bcc.table import TableBase

class Pair(ct.Structure):
    _fields_ = [("cpu", ct.c_uint32), ("__pad_1", ct.c_uint32), ("slot", ct.c_uint64)]

class Table:
    decode_c_struct = getattr(TableBase, "decode_c_struct", None)  # BCC's method uses it

    def __init__(self, key, pairs):
        self.Key, self.Leaf, self.pairs = key, ct.c_ulonglong, pairs
    def items(self):
        return [(k, ct.c_ulonglong(v)) for k, v in self.pairs]

ints = Table(ct.c_int, [(ct.c_int(s), s * 37 % 11 + 1) for s in range(1, 20)] +
             [(ct.c_int(3), 0), (ct.c_int(40), 2)])
narrow = Table(ct.c_int, [(ct.c_int(s), (s * 13) % 7) for s in (0, 2, 3, 4, 9)])
linear = Table(ct.c_int, [(ct.c_int(s), (s * 5) % 9) for s in range(2, 30, 3)])
pairs = Table(Pair, [(Pair(c, 0, s), c * 3 + s) for c in (2, 0, 1) for s in range(1, 7)])
for t in (ints, narrow):
    TableBase.print_log2_hist(t, "usecs")
    TableBase.print_log2_hist(t, strip_leading_zero=True)
TableBase.print_linear_hist(linear, "msecs")
TableBase.print_linear_hist(linear, "msecs", strip_leading_zero=True)
TableBase.print_log2_hist(pairs, "nsecs", "cpu", bucket_sort_fn=sorted)
TableBase.print_log2_hist(pairs, "nsecs", "CPU", section_print_fn=lambda c: "cpu %d" % c,
                          bucket_fn=lambda c: c + 100, bucket_sort_fn=sorted)
TableBase.print_linear_hist(pairs, "n", "cpu", bucket_sort_fn=lambda b: sorted(b)[::-1])
import io, sys
out, sys.stdout = sys.stdout, io.StringIO()
TableBase.print_json_hist(ints, "usecs")
TableBase.print_json_hist(pairs, "usecs", "cpu", bucket_sort_fn=sorted)
text, sys.stdout = sys.stdout.getvalue(), out
print(re.sub(r"'ts': '[^']*'", "'ts': TS", text))
"""


def test_output_as_bcc(tmp_path):
    """BCC's own printing functions and pybpf's print the same text for the same tables:
    log2 (narrow and wide), linear, stripped, sectioned with every hook, and JSON."""
    bcc, ours = run_both(tmp_path, PRINT_ALL)
    assert bcc.count("distribution") == 15
    assert ours == bcc
