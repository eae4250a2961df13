"""Tables a BCC program does not own alone: pinned on bpffs (``BPF_TABLE_PINNED``) or shared
between the ``BPF`` objects of one process (``BPF_TABLE_SHARED``/``BPF_TABLE_PUBLIC``, found
by ``BPF_TABLE("extern", ...)``).

As BCC: a pinned table uses the map pinned at its path, or makes the map and pins it there
(parent directories made on bpffs); a shared table is found by name, in this process, by the
``BPF`` objects built after it, while its own object lives. The loader checks that a map
found so matches the declaration (type, key and value sizes, entries, flags). What each
table is comes from the compiled object (the translator's strings in ``.pybpf.tables``).
"""
from __future__ import annotations

import os
import weakref
from typing import TYPE_CHECKING

from ..errors import UsageError
from ..sys.host import is_bpffs

if TYPE_CHECKING:
    from ..elf import Collection, ObjectSpec
    from ..maps import Map

SHARING_SECTION = ".pybpf.tables"   # where the translator says what each such table is
SHARING_PREFIX = "__pybpf_table__"   # ... as a string named <prefix><table>

# table name -> (the BPF object sharing it, its map); one namespace per process, as BCC's
# Python API has (its maps namespace is always the default one)
_shared: dict[str, tuple["weakref.ref[object]", "Map"]] = {}


def kinds(spec: "ObjectSpec") -> dict[str, str]:
    """Table name -> ``pin:<path>``, ``extern`` or ``shared``, for the tables of ``spec``
    that are not simply made."""
    elf = spec.elf
    sec = elf.section(SHARING_SECTION)
    if sec is None:
        return {}
    found = {}
    for sym in elf.symbols:
        if sym.shndx == sec.index and sym.name.startswith(SHARING_PREFIX):
            raw = sec.data[sym.value:sym.value + sym.size]
            found[sym.name[len(SHARING_PREFIX):]] = raw.split(b"\0", 1)[0].decode()
    return found


def prepare(spec: "ObjectSpec") -> dict[str, "Map"]:
    """Set the pin paths of ``spec``'s pinned tables and return the maps its extern tables
    are (for ``pybpf.elf.load(maps=...)``); UsageError naming an extern table no live
    ``BPF`` object shares."""
    given: dict[str, "Map"] = {}
    for name, how in kinds(spec).items():
        ms = spec.maps[name]
        if how.startswith("pin:"):
            path = how[len("pin:"):]
            _parent_dirs(name, path)
            ms.pin_path = path
        elif how == "extern":
            entry = _shared.get(name)
            if entry is None or entry[0]() is None:
                raise UsageError(
                    f"BPF: table {name!r} is declared BPF_TABLE(\"extern\", ...) but no BPF "
                    f"object of this process shares a table of that name (BPF_TABLE_SHARED or "
                    f"BPF_TABLE_PUBLIC, in a BPF object built before this one and not cleaned "
                    f"up); shared now: {', '.join(sorted(live())) or '(none)'}")
            m = entry[1]
            info = m.info()   # the declaration gives the types; the shared map the rest
            ms.type, ms.max_entries, ms.flags = info.type, info.max_entries, info.flags
            given[name] = m
    return given


def _parent_dirs(table: str, path: str) -> None:
    """Make the missing directories of pin ``path`` when the nearest existing one is on
    bpffs (as BCC); elsewhere pinning fails and says why."""
    missing = []
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(parent):
        missing.append(parent)
        parent = os.path.dirname(parent)
    if missing and is_bpffs(parent):
        try:
            os.makedirs(missing[0], exist_ok=True)
        except OSError as e:
            raise UsageError(f"BPF_TABLE_PINNED {table!r}: cannot make {missing[0]} for the pin "
                             f"{path}: {e.strerror}") from None


def publish(owner: object, collection: "Collection") -> None:
    """Share the shared tables of ``owner``'s ``collection`` under their names (a later one
    of a name wins)."""
    for name, how in kinds(collection.spec).items():
        if how == "shared":
            _shared[name] = (weakref.ref(owner), collection.maps[name])


def withdraw(owner: object) -> None:
    """Stop sharing ``owner``'s tables (it is being cleaned up)."""
    for name, (ref, _) in list(_shared.items()):
        if ref() is owner or ref() is None:
            del _shared[name]


def live() -> list[str]:
    """The names of the tables shared now."""
    return [name for name, (ref, _) in _shared.items() if ref() is not None]
