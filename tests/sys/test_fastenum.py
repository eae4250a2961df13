"""The UAPI and opcode enums built by ``sys.fastenum`` are the enums class syntax makes: same
members and aliases, values, names, reprs, flag operations, look-ups and pickling."""
from __future__ import annotations

import enum
import pickle
import subprocess
import sys

import pytest

from pybpf.asm import opcodes
from pybpf.sys import uapi
from pybpf.sys.helper_ids import Helper

ENUMS = [c for c in (getattr(uapi, n) for n in dir(uapi))
         if isinstance(c, type) and issubclass(c, enum.Enum) and c not in (enum.IntEnum,
                                                                           enum.IntFlag)]
OPCODES = [c for c in vars(opcodes).values()
           if isinstance(c, type) and issubclass(c, enum.Enum) and c.__module__ == opcodes.__name__]


def _by_class_syntax(made: type) -> type:
    base = enum.IntFlag if issubclass(made, enum.Flag) else enum.IntEnum
    return base(made.__name__, [(k, int(v)) for k, v in made.__members__.items()])


def test_enums_are_built_on_first_use() -> None:
    """Importing uapi builds none of its enums; the first look-up builds one, once, the same
    object every later look-up (attribute or ``from`` import) gets."""
    code = ("import pybpf.sys.uapi as u, enum\n"
            "before = [n for n, v in vars(u).items() if isinstance(v, type) and issubclass(v, enum.Enum) and v.__module__ == u.__name__]\n"
            "from pybpf.sys.uapi import MapType\n"
            "assert MapType is u.MapType and vars(u)['MapType'] is MapType and MapType.HASH == 1\n"
            "print(before, 'ProgType' in vars(u))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.split() == ["[]", "False"], out.stderr
    with pytest.raises(AttributeError, match="has no attribute 'NoSuchEnum'"):
        uapi.NoSuchEnum  # noqa: B018


def test_every_enum_and_helper_is_built() -> None:
    assert len(ENUMS) > 30 and uapi.MapType in ENUMS and uapi.MapFlag in ENUMS
    assert uapi.Helper is Helper and Helper["map_lookup_elem"] == 1


@pytest.mark.parametrize("made", [*ENUMS, *OPCODES, Helper], ids=lambda c: c.__name__)
def test_same_enum_as_class_syntax(made: type) -> None:
    plain = _by_class_syntax(made)
    assert type(made) is type(plain) and made.__mro__[1:] == plain.__mro__[1:]
    assert [(k, int(v), repr(v)) for k, v in made.__members__.items()] == \
           [(k, int(v), repr(v)) for k, v in plain.__members__.items()]
    assert [m.name for m in made] == [m.name for m in plain]
    for value in (0, 1, 3, 7, 0x1000, 999, -1):
        results = []
        for e in (made, plain):
            try:
                results.append(repr(e(value)))
            except ValueError as err:
                results.append(type(err).__name__)
        assert results[0] == results[1], value
    first = next(iter(made), None)
    if first is not None:
        assert pickle.loads(pickle.dumps(first)) is first
        assert made[first.name] is first and made(int(first)) is first
        if issubclass(made, enum.Flag):
            other = next(iter(plain))
            assert repr(~first) == repr(~other) and repr(first | 0x40000) == repr(other | 0x40000)
    assert made.__doc__ and made.__module__.startswith(("pybpf.sys.", "pybpf.asm."))
