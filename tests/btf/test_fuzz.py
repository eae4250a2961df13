"""Malformed BTF: parse, walk, size, decode, format and re-encode give BTFError or work;
never another exception, a hang or unbounded memory."""
from __future__ import annotations

import struct

from hypothesis import HealthCheck, given, settings, strategies as st

from pybpf.btf import Spec, types as T, values as V
from pybpf.btf.encode import encode_spec
from pybpf.btf.sanitize import KernelBTF, sanitize
from pybpf.errors import BTFError

FUZZ = settings(max_examples=200, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STRINGS = b"\0int\0a\0b\0char\0.data\0s\0"


def blob(words: list[int], strings: bytes = STRINGS, order: str = "<") -> bytes:
    types = struct.pack(f"{order}{len(words)}I", *words)
    return struct.pack(order + "HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types),
                       len(strings)) + types + strings


def exercise(data: bytes) -> None:
    """Everything a user does with BTF; only BTFError may come out."""
    try:
        spec = Spec.parse(data)
        n = len(spec)
    except BTFError:
        return
    for tid in range(n):
        try:
            t = spec.type_by_id(tid)
            repr(t)
            for ref in ("type", "target", "index_type", "proto", "return_type"):
                getattr(t, ref, None)
            for part in getattr(t, "members", []) + getattr(t, "params", []) + \
                    getattr(t, "vars", []):
                repr(part), part.type
            T.skip_qualifiers(t)
            size = T.sizeof(t)
            T.alignof(t)
        except BTFError:
            continue
        if size > 4096:
            continue
        for fill in (b"\0", b"\xff"):
            raw = fill * size
            try:
                value = V.decode(t, raw)
                V.encode(t, value)
            except BTFError:
                pass
            try:
                V.format_json(t, raw)
                V.format_plain(t, raw)
            except BTFError:
                pass
    try:
        again = encode_spec(spec)
        assert len(Spec.parse(again)) == n
        sanitize(spec, KernelBTF(*[False] * 7))
    except BTFError:
        pass


kinds = st.integers(1, 19)
small = st.integers(0, 12)
word = st.one_of(small, st.integers(0, 2 ** 32 - 1))


@st.composite
def type_records(draw) -> list[int]:  # noqa: ANN001
    """Plausible btf_type records: real kinds, small names/ids/counts, garbage sometimes."""
    words: list[int] = []
    for _ in range(draw(st.integers(1, 12))):
        kind, vlen, kflag = draw(kinds), draw(st.integers(0, 4)), draw(st.booleans())
        words += [draw(st.sampled_from([0, 1, 5, 7, 9, 12, 15, 21, 999])),
                  kflag << 31 | kind << 24 | vlen, draw(word)]
        extra = {1: 1, 3: 3, 14: 1, 17: 1}.get(kind, 0) + vlen * {4: 3, 5: 3, 6: 2, 13: 2,
                                                                   15: 3, 19: 3}.get(kind, 0)
        words += [draw(word) for _ in range(extra)]
    return words


@FUZZ
@given(type_records(), st.sampled_from(["<", ">"]))
def test_fuzz_structured_types(words: list[int], order: str) -> None:
    exercise(blob(words, order=order))


@FUZZ
@given(st.binary(max_size=300))
def test_fuzz_random_bytes(data: bytes) -> None:
    exercise(data)
    exercise(b"\x9f\xeb\x01\x00" + data)


@FUZZ
@given(st.lists(word, max_size=40), st.binary(max_size=40))
def test_fuzz_random_words_and_strings(words: list[int], strings: bytes) -> None:
    exercise(blob(words, strings))


@FUZZ
@given(st.data())
def test_fuzz_mutated_clang_btf(kinds_spec: Spec, data: st.DataObject) -> None:
    raw = bytearray(kinds_spec.raw)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        raw[pos] = data.draw(st.integers(0, 255))
    exercise(bytes(raw[:data.draw(st.integers(0, len(raw)))]))
    exercise(bytes(raw))


def _loop(kind: int, extra: list[int], vlen: int = 0, size_or_type: int = 1) -> bytes:
    return blob([1, kind << 24 | vlen, size_or_type, *extra])


def test_type_loops_are_btf_errors() -> None:
    typedef_self = _loop(8, [])                      # typedef a -> a
    ptr_pair = blob([0, 2 << 24, 2, 0, 2 << 24, 1])  # pointers to each other: fine
    struct_self = _loop(4, [3, 1, 0], vlen=1, size_or_type=4)   # struct a { struct a s; }
    array_self = _loop(3, [1, 1, 2], size_or_type=0)             # a[2] of a
    const_volatile = blob([0, 10 << 24, 2, 0, 9 << 24, 1])      # const -> volatile -> const
    for data in (typedef_self, struct_self, array_self, const_volatile):
        spec = Spec.parse(data)
        t = spec.type_by_id(1)
        ops = [T.alignof, lambda t: V.codec(t), lambda t: V.format_json(t, bytes(64))]
        if data is not struct_self:  # a struct's size is what it declares, loop or not
            ops.append(T.sizeof)
        for op in ops:
            try:
                op(t)
            except BTFError:
                continue
            raise AssertionError(f"{op} on a looping {t!r} did not fail")
        exercise(data)
    spec = Spec.parse(ptr_pair)
    assert spec.type_by_id(1).target.target is spec.type_by_id(1)
    exercise(ptr_pair)


def test_shared_members_do_not_explode() -> None:
    """struct s0 { struct s1 a, b; } ... 30 levels: 2^30 paths, each type visited once."""
    words, levels = [0, 1 << 24, 1, 32], 30
    for lvl in range(levels):  # id lvl+2 holds two members of id lvl+1
        words += [0, 4 << 24 | 2, 1, 3, lvl + 1, 0, 5, lvl + 1, 0]
    spec = Spec.parse(blob(words))
    top = spec.type_by_id(levels + 1)
    assert T.alignof(top) == 1
    assert isinstance(V.codec(top), V.Codec)


def test_zero_width_ints() -> None:
    for encoding in (0, 1):  # int a: 0 bits, unsigned and signed
        data = blob([1, 1 << 24, 4, encoding << 24])
        t = Spec.parse(data).type_by_id(1)
        try:
            V.decode(t, bytes(4))
        except BTFError:
            pass
        else:
            raise AssertionError("a 0-bit int was decoded")
        assert V.format_json(t, bytes(4)) == "0x0"  # as bpftool prints it
        exercise(data)


def test_huge_counts_are_bounded() -> None:
    empty = [1, 4 << 24, 0]                                      # struct a {} (size 0)
    big_array = blob(empty + [0, 3 << 24, 0, 1, 1, 0xFFFFFFFF])  # a[4294967295]
    spec = Spec.parse(big_array)
    for op in (lambda t: V.decode(t, b""), lambda t: V.format_json(t, b"")):
        try:
            op(spec.type_by_id(2))
        except BTFError:
            continue
        raise AssertionError("a 4-billion element array was decoded")
    exercise(big_array)
