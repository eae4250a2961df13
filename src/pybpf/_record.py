"""``@record``: a class's annotated fields made its ``__init__``, ``__repr__`` and ``__eq__``,
as ``@dataclass`` does, for the classes every BPF object load builds (ELF sections and
symbols, map and program specs).

``dataclasses`` is not imported for them: it imports ``inspect`` (with ``ast``, ``dis`` and
``tokenize``) and takes about a millisecond per class, which a warm start of a BCC tool
(``python3 -m pybpf.bcc``) paid ten times. Supported: defaults, ``field(default_factory=,
default=, repr=, compare=)``, ``frozen=True`` (hashable by the compared fields), and
``replace()``. Not supported: inheritance between records, ``ClassVar`` fields,
``__post_init__``. Type checkers see ``@dataclass`` (``dataclass_transform``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, overload

_T = TypeVar("_T")
_MISSING: Any = object()


class _Field:
    __slots__ = ("default", "default_factory", "repr", "compare")

    def __init__(self, default: Any, default_factory: Optional[Callable[[], Any]], repr: bool,
                 compare: bool) -> None:
        self.default = default
        self.default_factory = default_factory
        self.repr = repr
        self.compare = compare


def field(*, default: Any = _MISSING, default_factory: Optional[Callable[[], Any]] = None,
          repr: bool = True, compare: bool = True) -> Any:
    """A field's options: ``default_factory`` makes each instance's own default."""
    return _Field(default, default_factory, repr, compare)


def _frozen_setattr(self: Any, name: str, value: Any) -> None:
    raise AttributeError(f"cannot assign to field {name!r} of a frozen "
                         f"{type(self).__name__}")


def _make(cls: type, frozen: bool) -> type:
    fields: dict[str, _Field] = {}
    for name in cls.__dict__.get("__annotations__", {}):
        value = cls.__dict__.get(name, _MISSING)
        f = value if isinstance(value, _Field) else _Field(value, None, True, True)
        if f.default is _MISSING and f.default_factory is None and any(
                g.default is not _MISSING or g.default_factory is not None
                for g in fields.values()):
            raise TypeError(f"{cls.__name__}: field {name!r} without a default follows one "
                            "with a default")
        fields[name] = f
        if isinstance(value, _Field):  # the class keeps plain defaults only, as dataclass
            if f.default is _MISSING:
                delattr(cls, name)
            else:
                setattr(cls, name, f.default)
    env: dict[str, Any] = {"_MISSING": _MISSING, "_set": object.__setattr__}
    params, body = [], []
    for name, f in fields.items():
        if f.default_factory is not None:
            env[f"_f_{name}"] = f.default_factory
            params.append(f"{name}=_MISSING")
            value = f"_f_{name}() if {name} is _MISSING else {name}"
        else:
            if f.default is not _MISSING:
                env[f"_d_{name}"] = f.default
            params.append(name if f.default is _MISSING else f"{name}=_d_{name}")
            value = name
        body.append(f"_set(self, {name!r}, {value})" if frozen else f"self.{name} = {value}")
    exec(f"def __init__(self, {', '.join(params)}):\n    " + "\n    ".join(body or ["pass"]),
         env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    shown = [n for n, f in fields.items() if f.repr]
    compared = tuple(n for n, f in fields.items() if f.compare)

    def __repr__(self: Any) -> str:
        return f"{type(self).__qualname__}(" + ", ".join(
            f"{n}={getattr(self, n)!r}" for n in shown) + ")"

    def key(self: Any) -> tuple[Any, ...]:
        return tuple(getattr(self, n) for n in compared)

    def __eq__(self: Any, other: object) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return key(self) == key(other)

    methods: dict[str, Any] = {
        "__init__": init, "__repr__": __repr__, "__eq__": __eq__,
        "__hash__": (lambda self: hash(key(self))) if frozen else None,
        "__match_args__": tuple(fields), "__record_fields__": tuple(fields)}
    if frozen:
        methods["__setattr__"] = _frozen_setattr
    for name, value in methods.items():
        setattr(cls, name, value)
    return cls


if TYPE_CHECKING:
    from typing_extensions import dataclass_transform
else:
    def dataclass_transform(**kwargs):
        return lambda f: f


@overload
def record(cls: type[_T]) -> type[_T]: ...
@overload
def record(*, frozen: bool = False) -> Callable[[type[_T]], type[_T]]: ...


@dataclass_transform(field_specifiers=(field,))
def record(cls: Optional[type[_T]] = None, *, frozen: bool = False) -> Any:
    """``@record`` or ``@record(frozen=True)`` on a class of annotated fields."""
    if cls is None:
        return lambda c: _make(c, frozen)
    return _make(cls, frozen)


def replace(obj: _T, **changes: Any) -> _T:
    """A copy of record ``obj`` with ``changes`` (made through ``__init__``)."""
    names: tuple[str, ...] = type(obj).__record_fields__  # type: ignore[attr-defined]
    unknown = set(changes) - set(names)
    if unknown:
        raise TypeError(f"{type(obj).__name__} has no field {', '.join(sorted(unknown))}")
    return type(obj)(**{n: changes[n] if n in changes else getattr(obj, n) for n in names})


def fields(cls: type) -> tuple[str, ...]:
    """The field names of record class ``cls``, in order."""
    names: tuple[str, ...] = cls.__record_fields__  # type: ignore[attr-defined]
    return names
