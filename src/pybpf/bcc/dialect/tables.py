"""BCC's map macros (``BPF_HASH(name, key, leaf, size)``, ``BPF_TABLE("hash", ...)`` ...) as
BTF-defined maps in ``SEC(".maps")``, keeping the table's name as the map's name."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Optional

from ..sharing import SHARING_PREFIX, SHARING_SECTION
from .errors import DialectError


@dataclass
class Table:
    """A table the program declares. ``map_type`` is a :class:`pybpf.sys.uapi.MapType` member
    name, ``bcc_class`` the name of BCC's Python table class for it. ``pinned``: the bpffs
    path of ``BPF_TABLE_PINNED`` (the map pinned there is used, else made and pinned);
    ``extern``: ``BPF_TABLE("extern", ...)``, the map is the table of that name another
    ``BPF`` object of the process shares; ``shared``: ``BPF_TABLE_SHARED``/``_PUBLIC``, the
    table such declarations find."""

    name: str
    map_type: str
    key_type: str
    leaf_type: str
    max_entries: int
    flags: int
    pinned: Optional[str]
    extern: bool
    bcc_class: str
    shared: bool = False


# BPF_TABLE type string -> (MapType name, BCC class, has key, has value)
KINDS: dict[str, tuple[str, str]] = {
    "hash": ("HASH", "HashTable"),
    "array": ("ARRAY", "Array"),
    "percpu_hash": ("PERCPU_HASH", "PerCpuHash"),
    "percpu_array": ("PERCPU_ARRAY", "PerCpuArray"),
    "lru_hash": ("LRU_HASH", "LruHash"),
    "lru_percpu_hash": ("LRU_PERCPU_HASH", "LruPerCpuHash"),
    "prog": ("PROG_ARRAY", "ProgArray"),
    "perf_output": ("PERF_EVENT_ARRAY", "PerfEventArray"),
    "perf_array": ("PERF_EVENT_ARRAY", "PerfEventArray"),
    "ringbuf": ("RINGBUF", "RingBuf"),
    "stacktrace": ("STACK_TRACE", "StackTrace"),
    "lpm_trie": ("LPM_TRIE", "LpmTrie"),
    "queue": ("QUEUE", "QueueStack"),
    "stack": ("STACK", "QueueStack"),
    "devmap": ("DEVMAP", "DevMap"),
    "devmap_hash": ("DEVMAP_HASH", "DevMap"),
    "cpumap": ("CPUMAP", "CpuMap"),
    "xskmap": ("XSKMAP", "XskMap"),
    "cgroup_array": ("CGROUP_ARRAY", "CgroupArray"),
    "sockmap": ("SOCKMAP", "SockMap"),
    "sockhash": ("SOCKHASH", "SockHash"),
    "sk_storage": ("SK_STORAGE", "SkStorage"),
    "inode_storage": ("INODE_STORAGE", "InodeStorage"),
    "task_storage": ("TASK_STORAGE", "TaskStorage"),
    "cgroup_storage": ("CGROUP_STORAGE", "CgroupStorage"),
    "percpu_cgroup_storage": ("PERCPU_CGROUP_STORAGE", "PerCpuCgroupStorage"),
    "array_of_maps": ("ARRAY_OF_MAPS", "MapInMapArray"),
    "hash_of_maps": ("HASH_OF_MAPS", "MapInMapHash"),
}
_NO_KEY = {"QUEUE", "STACK", "RINGBUF"}
_NO_VALUE = {"RINGBUF"}
# fd arrays: sizes only (the kernel takes no BTF for their keys and values)
_SIZES_ONLY = {"PERF_EVENT_ARRAY", "PROG_ARRAY", "CGROUP_ARRAY", "DEVMAP", "DEVMAP_HASH",
               "CPUMAP", "XSKMAP", "SOCKMAP", "SOCKHASH"}
_INT_KEYS = {"int", "unsigned int", "u32", "__u32", "s32", "__s32", "uint32_t", "int32_t",
             "unsigned"}
_NO_PREALLOC = 1        # BPF_F_NO_PREALLOC
DEFAULT_SIZE = 10240


def _table_macro(kind: str, key: str, leaf: str, name: str, size: str, flags: str = "0",
                 pinned: Optional[str] = None, shared: bool = False
                 ) -> tuple[str, str, str, str, str, str, Optional[str], bool]:
    return kind, key, leaf, name, size, flags, pinned, shared


def _unquote(arg: str, what: str) -> str:
    if len(arg) < 2 or arg[0] != '"' or arg[-1] != '"':
        raise DialectError(f"{what} must be a string literal, not {arg}")
    return arg[1:-1]


# macro name -> builder of (kind, key, leaf, name, size, flags, pinned) from its arguments
def _defaults(kind: str, key: str, leaf: str, size: str, flags: str = "0",
              key_first: bool = True) -> Callable[..., tuple]:
    def build(name: str, *rest: str) -> tuple:
        args = list(rest)
        if key_first:
            k = args.pop(0) if args else key
        else:
            k = key
        v = args.pop(0) if args else leaf
        n = args.pop(0) if args else size
        f = args.pop(0) if args else flags
        if args:
            raise TypeError("too many arguments")
        return _table_macro(kind, k, v, name, n, f)
    return build


def _sized(kind: str, key: str, leaf: str) -> Callable[..., tuple]:
    def build(name: str, size: str = str(DEFAULT_SIZE)) -> tuple:
        return _table_macro(kind, key, leaf, name, size)
    return build


def _leaf_sized(kind: str, key: str) -> Callable[..., tuple]:
    def build(name: str, leaf: str, size: str) -> tuple:
        return _table_macro(kind, key, leaf, name, size)
    return build


def _bpf_table(kind: str, key: str, leaf: str, name: str, size: str) -> tuple:
    return _table_macro(_unquote(kind, "BPF_TABLE's type"), key, leaf, name, size)


def _bpf_f_table(kind: str, key: str, leaf: str, name: str, size: str, flags: str) -> tuple:
    return _table_macro(_unquote(kind, "BPF_F_TABLE's type"), key, leaf, name, size, flags)


def _bpf_table_pinned(kind: str, key: str, leaf: str, name: str, size: str, path: str,
                      flags: str = "0") -> tuple:
    return _table_macro(_unquote(kind, "BPF_TABLE_PINNED's type"), key, leaf, name, size,
                        flags, _unquote(path, "BPF_TABLE_PINNED's path"))


def _bpf_table_shared(kind: str, key: str, leaf: str, name: str, size: str,
                      flags: str = "0") -> tuple:
    return _table_macro(_unquote(kind, "the shared table's type"), key, leaf, name, size, flags,
                        shared=True)


def _queuestack(kind: str, name: str, leaf: str, size: str, flags: str = "0",
                pinned: Optional[str] = None, shared: bool = False) -> tuple:
    kind = _unquote(kind, "BPF_QUEUESTACK's type")
    if kind not in ("queue", "stack"):
        raise DialectError(f"BPF_QUEUESTACK: type \"{kind}\" is neither \"queue\" nor \"stack\"")
    return _table_macro(kind, "", leaf, name, size, flags,
                        _unquote(pinned, "the pinned path") if pinned else None, shared)


def _histogram(name: str, key: str = "int", size: str = "64") -> tuple:
    return _table_macro("histogram", key, "u64", name, size)


def _perf_output(name: str) -> tuple:
    return _table_macro("perf_output", "int", "u32", name, "0")


def _ringbuf(name: str, pages: str) -> tuple:
    return _table_macro("ringbuf", "", "", name, f"(({pages}) * PAGE_SIZE)")


MACROS: dict[str, Callable[..., tuple]] = {
    "BPF_HASH": _defaults("hash", "u64", "u64", str(DEFAULT_SIZE)),
    "BPF_PERCPU_HASH": _defaults("percpu_hash", "u64", "u64", str(DEFAULT_SIZE)),
    "BPF_LRU_HASH": _defaults("lru_hash", "u64", "u64", str(DEFAULT_SIZE)),
    "BPF_LRU_PERCPU_HASH": _defaults("lru_percpu_hash", "u64", "u64", str(DEFAULT_SIZE)),
    "BPF_ARRAY": _defaults("array", "int", "u64", str(DEFAULT_SIZE), key_first=False),
    "BPF_PERCPU_ARRAY": _defaults("percpu_array", "int", "u64", str(DEFAULT_SIZE),
                                  key_first=False),
    "BPF_LPM_TRIE": _defaults("lpm_trie", "u64", "u64", str(DEFAULT_SIZE), str(_NO_PREALLOC)),
    "BPF_HISTOGRAM": _histogram,
    "BPF_PERF_OUTPUT": _perf_output,
    "BPF_PERF_ARRAY": _sized("perf_array", "int", "u32"),
    "BPF_RINGBUF_OUTPUT": _ringbuf,
    "BPF_PROG_ARRAY": _sized("prog", "int", "u32"),
    "BPF_STACK_TRACE": _sized("stacktrace", "int", "struct bpf_stacktrace"),
    "BPF_STACK_TRACE_BUILDID": lambda name, size: _table_macro(
        "stacktrace", "int", "struct bpf_stacktrace_buildid", name, size, "BPF_F_STACK_BUILD_ID"),
    "BPF_QUEUE": _leaf_sized("queue", ""),
    "BPF_STACK": _leaf_sized("stack", ""),
    "BPF_DEVMAP": _sized("devmap", "int", "int"),
    "BPF_CPUMAP": _sized("cpumap", "u32", "u32"),
    "BPF_XSKMAP": _sized("xskmap", "int", "int"),
    "BPF_CGROUP_ARRAY": _sized("cgroup_array", "int", "u32"),
    "BPF_SOCKMAP": _sized("sockmap", "int", "int"),
    "BPF_SOCKHASH": _defaults("sockhash", "u32", "int", str(DEFAULT_SIZE)),
    "BPF_SK_STORAGE": lambda name, leaf: _table_macro("sk_storage", "int", leaf, name, "0",
                                                      str(_NO_PREALLOC)),
    "BPF_INODE_STORAGE": lambda name, leaf: _table_macro("inode_storage", "int", leaf, name,
                                                         "0", str(_NO_PREALLOC)),
    "BPF_TASK_STORAGE": lambda name, leaf: _table_macro("task_storage", "int", leaf, name,
                                                        "0", str(_NO_PREALLOC)),
    "BPF_TABLE": _bpf_table,
    "BPF_F_TABLE": _bpf_f_table,
    "BPF_TABLE_PINNED": _bpf_table_pinned,
    "BPF_TABLE_PUBLIC": lambda kind, key, leaf, name, size: _bpf_table_shared(
        kind, key, leaf, name, size),
    "BPF_TABLE_SHARED": _bpf_table_shared,
    "BPF_QUEUESTACK": _queuestack,
    "BPF_QUEUESTACK_PINNED": lambda kind, name, leaf, size, flags, pinned: _queuestack(
        kind, name, leaf, size, flags, pinned),
    "BPF_QUEUESTACK_PUBLIC": lambda kind, name, leaf, size, flags: _queuestack(
        kind, name, leaf, size, flags, shared=True),
    "BPF_QUEUESTACK_SHARED": lambda kind, name, leaf, size, flags: _queuestack(
        kind, name, leaf, size, flags, shared=True),
}
def _array_of_maps(name: str, inner: str, size: str) -> tuple:
    return _table_macro(f"array_of_maps${_unquote(inner, 'the inner table')}", "int", "int",
                        name, size)


def _hash_of_maps(name: str, *rest: str) -> tuple:
    key, inner, size = ("int", rest[0], str(DEFAULT_SIZE)) if len(rest) == 1 else \
        (rest[0], rest[1], str(DEFAULT_SIZE)) if len(rest) == 2 else rest
    return _table_macro(f"hash_of_maps${_unquote(inner, 'the inner table')}", key, "int", name,
                        size)


MACROS["BPF_ARRAY_OF_MAPS"] = _array_of_maps
MACROS["BPF_HASH_OF_MAPS"] = _hash_of_maps
# cgroup storage: one value per (cgroup, attach type) of the program, found by the helper
MACROS["BPF_CGROUP_STORAGE"] = lambda name, leaf: _table_macro(
    "cgroup_storage", "struct bpf_cgroup_storage_key", leaf, name, "0")
MACROS["BPF_PERCPU_CGROUP_STORAGE"] = lambda name, leaf: _table_macro(
    "percpu_cgroup_storage", "struct bpf_cgroup_storage_key", leaf, name, "0")


def _int(expr: str) -> int:
    """The value of a simple integer expression (literals, PAGE_SIZE, BPF_F_* map flags, with
    arithmetic and |), else 0 (the value is then known only to the compiler)."""
    names = {"PAGE_SIZE": 4096}
    if "BPF_F_" in expr:
        from ...sys.uapi import MapFlag
        names.update((f"BPF_F_{f.name}", int(f)) for f in MapFlag)
    if not re.fullmatch(r"[\w\s()*+|<>-]*", expr):
        return 0
    try:
        return int(eval(re.sub(r"(?<=\d)[uUlL]+\b", "", expr), {"__builtins__": {}}, names))
    except Exception:
        return 0


def define(macro: str, args: list[str], known: "dict[str, Table]" = {}) -> tuple[Table, str]:
    """The :class:`Table` and the C definition (one line) for ``macro(args...)``; ``known``:
    the tables defined before (the inner tables of maps of maps)."""
    try:
        kind, key, leaf, name, size, flags, pinned, shared = MACROS[macro](*args)
    except TypeError:
        raise DialectError(f"{macro} does not take {len(args)} argument"
                           f"{'s' if len(args) != 1 else ''}: {macro}({', '.join(args)})") \
            from None
    extern = kind == "extern"
    if extern:   # compiled as a hash of these types; the map is the shared table
        if pinned or shared:
            raise DialectError(f"{macro}: an \"extern\" table ({name}) cannot also be "
                               "pinned or shared: the table it refers to is")
        kind = "hash"
    inner = ""
    if "$" in kind:   # "array_of_maps$<inner table>": its maps are made like that table
        kind, inner = kind.split("$", 1)
        if inner not in known:
            raise DialectError(f"{macro}: the inner table {inner!r} of {name!r} must be "
                               "defined before it")
    if kind == "histogram":
        map_type, bcc_class = ("ARRAY", "Array") if key.strip() in _INT_KEYS else \
            ("HASH", "HashTable")
    elif kind in KINDS:
        map_type, bcc_class = KINDS[kind]
    else:
        raise DialectError(f"{macro}: unknown table type \"{kind}\" for table {name!r}")
    if not name.isidentifier():
        raise DialectError(f"{macro}: table name {name!r} is not a C identifier")
    members = [f"__uint(type, BPF_MAP_TYPE_{map_type});"]
    if inner:
        members += [f"__type(key, {key});", f"__uint(key_size, sizeof({key}));"]
    elif map_type in _SIZES_ONLY:
        members += [f"__uint(key_size, sizeof({key}));", f"__uint(value_size, sizeof({leaf}));"]
    else:
        # the sizes too: an incomplete key or leaf type is a compile error on this line
        if map_type not in _NO_KEY:
            members += [f"__type(key, {key});", f"__uint(key_size, sizeof({key}));"]
        if map_type not in _NO_VALUE:
            members += [f"__type(value, {leaf});", f"__uint(value_size, sizeof({leaf}));"]
    if size != "0":
        members.append(f"__uint(max_entries, {size});")
    if flags.strip() not in ("0", ""):
        members.append(f"__uint(map_flags, {flags});")
    if inner:   # the inner maps' definition: a flexible array member, last
        members.append(f"__array(values, __typeof__({inner}));")
    table = Table(name, map_type, key, leaf, _int(size), _int(flags), pinned, extern,
                  bcc_class, shared)
    return table, f"struct {{ {' '.join(members)} }} {name} SEC(\".maps\")" + _sharing(table)


def _sharing(t: Table) -> str:
    """How ``t``'s map is found rather than made, kept in the object (so that a cached object
    says it too): a string in section :data:`SHARING_SECTION` named ``<prefix><table>``,
    ``pin:<path>``, ``extern`` or ``shared``."""
    how = f"pin:{t.pinned}" if t.pinned else "extern" if t.extern else \
        "shared" if t.shared else ""
    if not how:
        return ""
    return (f"; static const char {SHARING_PREFIX}{t.name}[] __attribute__((section("
            f"\"{SHARING_SECTION}\"), used)) = \"{how}\"")
