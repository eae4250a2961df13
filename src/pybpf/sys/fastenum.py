"""How the generated constants (``uapi``, ``helper_ids``) define their enums quickly.

``@enum_of(IntEnum) class X(IntEnumBase): ...`` makes the same enum as ``class X(IntEnum)``
(members, aliases, flag operations, pickling), through the standard library's own builder
for its modules' enums (CPython 3.11+): half the import time of class syntax, which matters
for the ~40 UAPI enums every pybpf program imports. Older Pythons build it with the
functional API. Type checkers see ordinary ``IntEnum``/``IntFlag`` classes.
"""
from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import TYPE_CHECKING, Callable, TypeVar

_C = TypeVar("_C")

if TYPE_CHECKING:
    IntEnumBase = IntEnum
    IntFlagBase = IntFlag

    def enum_of(base: type) -> Callable[[_C], _C]: ...
else:
    IntEnumBase = IntFlagBase = object
    try:
        from enum import _simple_enum as enum_of
    except ImportError:
        def enum_of(base):
            def build(cls):
                made = base(cls.__name__, [(k, v) for k, v in vars(cls).items()
                                           if not k.startswith("_")], module=cls.__module__)
                made.__doc__ = cls.__doc__
                return made
            return build
