"""Package exports imported on first use (PEP 562 module ``__getattr__``).

A package's ``__init__`` says which module defines each public name; importing the package
imports none of them, so a program pays at start-up only for the modules it uses (attaching
a tracepoint does not import netlink or the assembler).
"""
from __future__ import annotations

import sys
from importlib import import_module
from typing import Any, Callable


def exports(package: str, where: dict[str, str], star: str = ""
            ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package``.

    ``where`` maps a module (relative: ``".link"``) to the names it exports, written as an
    import line lists them (``"Link, load as load_btf"``). ``star``: a module whose
    ``__all__`` is exported too (``from .instructions import *``); then ``__all__`` is
    computed on first use. Any other attribute is a submodule, imported on access.
    """
    names: dict[str, tuple[str, str]] = {}
    for module, listed in where.items():
        for item in listed.split(","):
            attr, _, alias = item.strip().partition(" as ")
            names[alias or attr] = (module, attr)
    clash = sorted(names.keys() & {m.lstrip(".") for m in where})
    if clash:  # importing that module would rebind the package's attribute to the module
        raise ValueError(f"{package}: {', '.join(clash)} also name modules: import them eagerly")

    def __getattr__(name: str) -> Any:
        if name in names:
            module, attr = names[name]
            value = getattr(import_module(module, package), attr)
        elif star and name == "__all__":
            value = [*names, *import_module(star, package).__all__]
        elif name.startswith("__"):
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        else:
            try:
                value = import_module(f".{name}", package)
            except ModuleNotFoundError as e:
                if e.name != f"{package}.{name}":
                    raise
                found = import_module(star, package) if star else None
                if found is None or name not in found.__all__:
                    raise AttributeError(f"module {package!r} has no attribute {name!r}"
                                         ) from None
                value = getattr(found, name)
        setattr(sys.modules[package], name, value)  # later lookups skip this function
        return value

    def __dir__() -> list[str]:
        return sorted({*vars(sys.modules[package]), *names,
                       *(import_module(star, package).__all__ if star else ())})

    return __getattr__, __dir__
