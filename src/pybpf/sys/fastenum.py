"""How the generated constants (``uapi``, ``helper_ids``) define their enums quickly.

``@enum_of(IntEnum) class X(IntEnumBase): ...`` makes the same enum as ``class X(IntEnum)``
(members, aliases, flag operations, pickling), through the standard library's own builder
for its modules' enums (CPython 3.11+): half the import time of class syntax. Older Pythons
build it with the functional API. Type checkers see ordinary ``IntEnum``/``IntFlag`` classes.

``@lazy_enum_of(IntEnum)`` defers even that to the enum's first use: the module ends with
``__getattr__, __dir__ = built_on_use(globals())``, which takes the deferred classes out of
its namespace and builds each when first looked up (``uapi.MapType``, ``from .uapi import
MapType``). A program uses a dozen of the ~40 UAPI enums every pybpf program imports.
"""
from __future__ import annotations

from _thread import allocate_lock
from enum import IntEnum, IntFlag
from importlib import import_module
from typing import TYPE_CHECKING, Any, Callable, Mapping, TypeVar, Union

_C = TypeVar("_C")
_E = TypeVar("_E", bound=IntEnum)

if TYPE_CHECKING:
    IntEnumBase = IntEnum
    IntFlagBase = IntFlag

    def enum_of(base: type) -> Callable[[_C], _C]: ...
    def lazy_enum_of(base: type) -> Callable[[_C], _C]: ...
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

    def lazy_enum_of(base):
        return lambda cls: _Deferred(base, cls)


class _Deferred:
    """A class body waiting to become an enum of ``base``."""

    __slots__ = ("base", "cls")

    def __init__(self, base: type, cls: type) -> None:
        self.base = base
        self.cls = cls


_building = allocate_lock()


def built_on_use(namespace: dict[str, Any], elsewhere: Mapping[str, str] = {}
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """A module's ``__getattr__`` and ``__dir__``: its ``@lazy_enum_of`` classes built on
    first access (once, also with threads); ``elsewhere``: names imported on first access
    from the (relative) module given."""
    deferred = {k: v for k, v in namespace.items() if isinstance(v, _Deferred)}
    for name in deferred:
        del namespace[name]
    module = namespace["__name__"]

    def __getattr__(name: str) -> Any:
        d = deferred.get(name)
        if d is not None:
            with _building:
                if name not in namespace:
                    namespace[name] = enum_of(d.base)(d.cls)
            return namespace[name]
        if name in elsewhere:
            value = getattr(import_module(elsewhere[name], namespace["__package__"]), name)
            namespace[name] = value
            return value
        raise AttributeError(f"module {module!r} has no attribute {name!r}")

    def __dir__() -> list[str]:
        return sorted({*namespace, *deferred, *elsewhere})

    return __getattr__, __dir__


def member_or_int(enum: type[_E], value: int) -> Union[_E, int]:
    """``enum(value)``, or ``value`` itself where the enum has no such member (a kernel or an
    object newer than this pybpf: a map, program, link or attach type it does not know)."""
    try:
        return enum(value)
    except ValueError:
        return value
