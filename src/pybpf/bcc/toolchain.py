"""The BCC front end's toolchain: the compiler and the runtime every program is compiled with.

The runtime a BCC-dialect program is compiled with: the running kernel's types, helper
declarations generated from :class:`pybpf.sys.uapi.Helper` (:mod:`.helpers`), the kernel's
configuration, and the headers in ``pybpf/bcc/include``. Each program gets its own runtime
header (:func:`program_header`), holding the kernel types it uses rather than the whole
vmlinux.h, so that a new program or an empty cache costs tens of milliseconds, not a vmlinux.h
dump and a precompiled header; :func:`run_compiler` grows it from clang's diagnostics and falls
back to the whole runtime, vmlinux.h precompiled once per kernel and compiler in
``<pybpf cache>/bcc/runtime/<key>/`` (:func:`prepare`). :func:`cache_key` keys what is cached
from a program's text (translation steps, objects): it covers the kernel's BTF, the compiler
and this front end's version.

No system header is on the include path (``-nostdinc``): kernel headers a program includes
resolve to stubs (all kernel types come from the runtime), libbpf-dev's headers are never used.

The compiler is Debian's ``clang`` when on PATH (``-target bpf``), else the ``ziglang``
wheel's (``pip install 'pybpf[cc]'``: ``python -m ziglang clang -target bpf``, its clang driver
itself: ``zig cc`` builds compiler_rt for the target, which fails for BPF on ``-fsyntax-only``).
"""
from __future__ import annotations

import atexit
import functools
import hashlib
import importlib.util
import marshal
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Optional, Sequence

from .. import __version__
from .. import cache
from ..cache import cache_dir
from ..compile import VMLINUX_BTF, target_arch, vmlinux_header
from ..errors import CompileError, ToolchainError
from ..sys.host import kernel_identity
from .helpers import declarations
from .scan import tokenize

if TYPE_CHECKING:
    from ..btf import types as T

INCLUDE_DIR = Path(__file__).parent / "include"
FORMAT = 1   # bump when the runtime or the translation changes shape
WARNINGS = ("-Wno-unused-value", "-Wno-pointer-sign", "-Wno-compare-distinct-pointer-types",
            "-Wno-gnu-variable-sized-type-not-at-end", "-Wno-address-of-packed-member",
            "-Wno-tautological-compare", "-Wno-unknown-warning-option",
            "-Wno-incompatible-pointer-types-discards-qualifiers", "-Wno-unused-command-line-argument",
            "-Werror=implicit-function-declaration", "-Werror=implicit-int")


@dataclass(frozen=True)
class Compiler:
    """A C compiler targeting BPF: ``argv`` up to and including the target flags;
    ``identity`` changes when the compiler does (part of cache keys)."""

    argv: tuple[str, ...]
    identity: str
    pch: bool = True


CC_ENV = "PYBPF_CC"   # "clang", "ziglang", or the path of a clang binary


@functools.lru_cache(maxsize=None)
def find_compiler(choice: Optional[str] = None) -> Compiler:
    """The compiler ``choice`` (default: ``$PYBPF_CC``) names, else clang on PATH, else the
    ziglang wheel's clang; ToolchainError saying what to install if none is there."""
    choice = choice if choice is not None else os.environ.get(CC_ENV, "")
    if choice not in ("", "ziglang"):
        clang = shutil.which(choice)
        if clang is None:
            raise ToolchainError(f"{CC_ENV}={choice}: no such compiler")
    else:
        clang = None if choice == "ziglang" else shutil.which("clang")
    if clang is not None:
        st = os.stat(os.path.realpath(clang))
        return Compiler((clang, "-target", "bpf"),
                        f"{os.path.realpath(clang)}:{st.st_size}:{st.st_mtime_ns}")
    spec = importlib.util.find_spec("ziglang")
    if spec is not None and spec.origin:
        st = os.stat(spec.origin)
        from importlib.metadata import version
        return Compiler((sys.executable, "-m", "ziglang", "clang", "-target", "bpf"),
                        f"ziglang {version('ziglang')}:{st.st_mtime_ns}")
    raise ToolchainError("no C compiler for BPF: install clang (apt-get install clang) or "
                         "the ziglang wheel (pip install 'pybpf[cc]')")


@functools.lru_cache(maxsize=None)
def _header_digest() -> str:
    """Digest of the runtime headers and helper declarations (part of the runtime's keys)."""
    h = hashlib.sha256()
    for path in sorted(INCLUDE_DIR.rglob("*.h")):
        h.update(str(path.relative_to(INCLUDE_DIR)).encode() + b"\0" + path.read_bytes())
    h.update((Path(__file__).parent / "helpers.py").read_bytes())
    return h.hexdigest()[:16]


@functools.lru_cache(maxsize=None)
def _include_digest() -> str:
    """Digest of the runtime headers and the translator's code (part of :func:`cache_key`)."""
    h = hashlib.sha256(_header_digest().encode())
    here = Path(__file__).parent
    for path in [here / "scan.py", *sorted((here / "dialect").glob("*.py"))]:
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def cache_key(compiler: Compiler, *parts: str) -> str:
    """The cache key of what is made from ``parts`` (a program's text, its cflags...) with
    ``compiler`` and this runtime on the running kernel."""
    h = hashlib.sha256()
    for part in (*parts, "\0".join(base_flags()), kernel_identity(), compiler.identity,
                 __version__, str(FORMAT), _include_digest()):
        h.update(part.encode() + b"\0\1")
    return h.hexdigest()[:32]


def base_flags() -> list[str]:
    """Flags of every compile (and of the precompiled runtime)."""
    return ["-g", "-O2", f"-D__TARGET_ARCH_{target_arch()}", "-nostdinc", "-I", str(INCLUDE_DIR),
            "-fno-stack-protector", *WARNINGS]


def _linux_version_code() -> int:
    m = re.match(r"(\d+)\.(\d+)(?:\.(\d+))?", os.uname().release)
    if m is None:
        return 0
    a, b, c = (int(x or 0) for x in m.groups())
    return (a << 16) + (b << 8) + min(c, 255)


def runtime_header(compiler: Compiler, reserved: Iterable[str] = (),
                   tags: Iterable[str] = ()) -> Path:
    """The whole runtime header (vmlinux.h + helpers + BCC's macros) for ``reserved``
    identifiers and struct/union ``tags`` the program defines itself, with its precompiled
    form next to it (``.pch``) when the compiler makes one."""
    reserved = sorted(set(reserved))
    vmlinux = _renamed_tags(vmlinux_header(VMLINUX_BTF, reserved), sorted(set(tags)))
    text = _runtime_text(f'#include "{vmlinux}"\n', _runtime_files())
    key = hashlib.sha256("\0".join([text, compiler.identity, *base_flags()]).encode())
    directory = cache_dir() / "bcc" / "runtime" / key.hexdigest()[:16]
    header = directory / "pybpf_bcc.h"
    pch = directory / "pybpf_bcc.h.pch"
    if header.exists() and (pch.exists() or not compiler.pch):
        return header
    directory.mkdir(parents=True, exist_ok=True)
    _write_once(header, text.encode())
    if compiler.pch:
        precompile(compiler, header, pch)
    return header


def _runtime_text(kernel: str, files: Path, helpers: Optional[str] = None) -> str:
    """The runtime header with ``kernel`` (C text: the kernel's types) in it and the
    generated headers of ``files`` (:func:`_runtime_files`); ``helpers``: the helper
    declarations to use instead of all of them."""
    helpers = helpers if helpers is not None else f"#include \"{files / 'helpers.h'}\"\n"
    return (f"#ifndef __PYBPF_BCC_H\n#define __PYBPF_BCC_H\n{kernel}"
            f"#define LINUX_VERSION_CODE {_linux_version_code()}\n"
            f"#include \"{files / 'kconfig.h'}\"\n{helpers}"
            f"#include \"{files / 'derived.h'}\"\n#include <bcc/runtime.h>\n#endif\n")


KCONFIG_FILES = ("/proc/config.gz", "/boot/config-{release}")
_KCONFIG_LINE = re.compile(r"^(CONFIG_\w+)=(.*)$", re.M)


def kconfig_defines() -> str:
    """The running kernel's configuration as ``#define CONFIG_...`` lines (what kernel headers'
    autoconf.h gives BCC programs): ``=y`` is 1, ``=m`` defines ``CONFIG_<X>_MODULE``; empty
    when neither /proc/config.gz nor /boot/config-<release> is readable."""
    import gzip

    for pattern in KCONFIG_FILES:
        path = pattern.format(release=os.uname().release)
        try:
            with (gzip.open(path, "rt") if path.endswith(".gz") else open(path)) as f:
                text = f.read()
            break
        except OSError:
            continue
    else:
        return "/* no kernel configuration readable */\n"
    out = [f"/* from {path} */"]
    for name, value in _KCONFIG_LINE.findall(text):
        if value == "y":
            out.append(f"#define {name} 1")
        elif value == "m":
            out.append(f"#define {name}_MODULE 1")
        elif value and value != "n":
            out.append(f"#define {name} {value}")
    return "\n".join(out) + "\n"


def derived_constants() -> str:
    """``#define``s kernel headers compute from types (sizes that moved between versions),
    computed here from the running kernel's BTF."""
    from ..btf import types as T
    from ..btf.spec import Spec
    from ..errors import PyBPFError

    out = ["/* computed from the kernel's BTF by pybpf.bcc.toolchain */"]
    try:
        dentry = Spec.vmlinux().find("dentry", T.Struct)
    except (PyBPFError, OSError):
        return out[0] + "\n"
    for m in getattr(dentry, "members", ()):
        t = T.skip_qualifiers(m.type)
        if m.name == "d_shortname":   # 6.14+: union { unsigned char string[N]; ... }
            t = next((T.skip_qualifiers(u.type) for u in getattr(t, "members", ())
                      if u.name == "string"), t)
        if m.name in ("d_iname", "d_shortname") and isinstance(t, T.Array):
            out.append(f"#define DNAME_INLINE_LEN {t.nelems}")
    if "TASK_COMM_LEN" not in kernel_names():  # an enumerator since 5.17, a macro before
        task = Spec.vmlinux().find("task_struct", T.Struct)
        comm = next((T.skip_qualifiers(m.type) for m in task.members if m.name == "comm"), None)
        if isinstance(comm, T.Array):
            out.append(f"#define TASK_COMM_LEN {comm.nelems}")
    return "\n".join(out) + "\n"


TAG_SUFFIX = "___kernel"


def _renamed_tags(vmlinux: Path, tags: list[str]) -> Path:
    """``vmlinux`` with the kernel's ``struct``/``union`` ``tags`` renamed ``<tag>___kernel``:
    a program's own definition of a kernel struct (BCC tools define private kernel structs
    such as ``struct mnt_namespace`` themselves) is then the one its code uses."""
    if not tags:
        return vmlinux
    digest = hashlib.sha256(f"{vmlinux}\0{','.join(tags)}".encode()).hexdigest()[:16]
    out = cache_dir() / "bcc" / "vmlinux" / digest / "vmlinux.h"
    if out.exists():
        return out
    pattern = re.compile(r"\b((?:struct|union) (?:%s))\b" % "|".join(map(re.escape, tags)))
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_once(out, pattern.sub(r"\1" + TAG_SUFFIX, vmlinux.read_text()).encode())
    return out


def _write_once(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data`` unless it exists: files a precompiled header was built
    from must never change (clang refuses the header when their time stamps do), also when
    processes race to create them (the content is the same)."""
    if path.exists():
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: readers see the old content or the new, whole."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def precompile(compiler: Compiler, header: Path, pch: Path) -> None:
    """Compile the runtime ``header`` into ``pch`` (replaced when done)."""
    fd, tmp = tempfile.mkstemp(dir=pch.parent, prefix=".tmp-", suffix=".pch")
    os.close(fd)
    cmd = (*compiler.argv, *base_flags(), "-x", "c-header", str(header), "-o", tmp)
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        os.unlink(tmp)
        raise CompileError(f"the BCC runtime header failed to compile (exit status "
                           f"{res.returncode}): a pybpf bug or an unusual kernel BTF",
                           res.stderr, cmd)
    os.replace(tmp, pch)


def defined_tags(source: str) -> set[str]:
    """``struct <tag>``/``union <tag>`` the program defines (``struct tag {``)."""
    toks = tokenize(source)
    return {f"{toks[i].text} {toks[i + 1].text}" for i in range(len(toks) - 2)
            if toks[i].text in ("struct", "union") and toks[i + 1].kind == "id"
            and toks[i + 2].text == "{"}


def declared_names(source: str) -> set[str]:
    """Identifiers the program declares at file scope (variables, maps, functions)."""
    names, depth = set(), 0
    toks = tokenize(source)
    for i, t in enumerate(toks):
        if t.text in ("{", "(", "["):
            depth += 1
        elif t.text in ("}", ")", "]"):
            depth -= 1
        elif depth == 0 and t.kind == "id" and i + 1 < len(toks) \
                and toks[i + 1].text in ("=", ";", "[", "(", ",", "SEC", "__attribute__") \
                and not (i > 0 and toks[i - 1].text in ("struct", "union", "enum")):
            names.add(t.text)
    return names


def prepare(source: str, names: Iterable[str], cflags: Sequence[str]) -> tuple[Compiler, list[str]]:
    """The compiler and its flags (the whole runtime included) for ``source`` whose file-scope
    identifiers include ``names`` (those clashing with vmlinux.h's are renamed there)."""
    from ..btf import types as T
    from ..btf.spec import Spec

    compiler = find_compiler()
    spec, index = Spec.vmlinux(), kernel_names()
    reserved = {n for n in declared_names(source) | set(names) for i in index.get(n, ())
                if not isinstance(spec.type_by_id(i), (T.Composite, T.Fwd))}
    tags = {tag for tag in (t.split()[1] for t in defined_tags(source))
            if any(isinstance(spec.type_by_id(i), T.Composite) for i in index.get(tag, ()))}
    header = runtime_header(compiler, reserved, tags)
    include = ["-include-pch", str(header) + ".pch"] if compiler.pch else \
        ["-include", str(header)]
    return compiler, [*base_flags(), *include, *cflags]


# -- the program's runtime: only the kernel types it names ------------------------------------
#
# Dumping all of vmlinux.h takes seconds in Python and precompiling it most of a second: a
# program needs a few dozen of its ~150,000 types. Its runtime header holds the kernel types
# the program (or a runtime macro it uses) names, with what they embed by value; structs only
# pointed to are declared, not defined, unless the program accesses a member of that name
# (``task->mm->arg_start`` defines ``struct mm_struct``). Types clang still misses (a member
# reached through a macro of the program's) are added from its diagnostics and the compile is
# retried; if that does not help, the program is compiled against the whole runtime
# (:func:`prepare`), so a program that builds with it builds here, and its errors are its own.

_TAG = re.compile(r"\b(struct|union|enum)\s+(\w+)")
_MEMBER = re.compile(r"(?:->|\.)\s*([A-Za-z_]\w*)")
_IDENT = re.compile(r"\b[A-Za-z_]\w*")
_DEFINE = re.compile(r"^[ \t]*#[ \t]*define[ \t]+(\w+)((?:\\\n|[^\n])*)", re.M)
# clang's diagnostics naming what a header may lack
_MISSING = re.compile(r"(?:incomplete (?:definition of )?type|unknown type name|undeclared "
                      r"identifier|implicit declaration of function) '(?:(?:struct|union|enum) )?"
                      r"(\w+)")
_NOT_FOUND = re.compile(r"fatal error: '[^']*' file not found")
RETRIES = 3
# names clang found missing, by program (file-scope names, cflags): the program's later
# compiles in this process (the syntax tree, then the object) start from them
_GROWN: dict[tuple[frozenset[str], tuple[str, ...]], set[str]] = {}


@dataclass(frozen=True)
class Names:
    """Identifiers of C text: ``tags`` (``(kind, tag)`` after struct/union/enum), ``members``
    (after ``.``/``->``), ``idents`` (every identifier)."""

    tags: frozenset[tuple[str, str]]
    members: frozenset[str]
    idents: frozenset[str]

    @staticmethod
    def of(text: str) -> "Names":
        return Names(frozenset(_TAG.findall(text)), frozenset(_MEMBER.findall(text)),
                     frozenset(_IDENT.findall(text)))


@dataclass(frozen=True)
class _Runtime:
    """What the runtime headers name: ``base`` outside macros (always needed), ``macros``
    each macro's body (needed where a program uses the macro), ``helpers`` each helper's
    declaration and what it names."""

    base: Names
    macros: dict[str, Names]
    helpers: dict[str, tuple[str, Names]]


_HELPER = re.compile(r"^static .*?\(\* const (\w+)\)", re.M)


@functools.lru_cache(maxsize=None)
def _runtime_names() -> _Runtime:
    outside, macros = [], {}
    for path in sorted(INCLUDE_DIR.rglob("*.h")):
        text = path.read_text()
        for m in _DEFINE.finditer(text):
            macros[m.group(1)] = Names.of(m.group(2))
        outside.append(_DEFINE.sub("", text))
    helpers = {}
    for line in (_runtime_files() / "helpers.h").read_text().splitlines():
        helper = _HELPER.match(line)
        if helper:
            helpers[helper.group(1)] = (line, Names.of(line))
    return _Runtime(Names.of("\n".join(outside)), macros, helpers)


@dataclass
class _Used:
    """What a program names, itself or through the runtime macros and helpers it uses:
    ``tags``, ``members``, ``idents`` as :class:`Names`; ``helpers`` it calls; ``declared``
    struct/union tags its helpers take pointers to."""

    tags: set[tuple[str, str]]
    members: set[str]
    idents: set[str]
    helpers: list[str]
    declared: set[tuple[str, str]]


def _used_names(source: str, more: Iterable[str]) -> _Used:
    """What ``source`` uses (:class:`_Used`); ``more``: names clang found missing."""
    rt = _runtime_names()
    own = Names.of(source)
    tags, members, idents = set(own.tags | rt.base.tags), set(own.members), \
        set(own.idents | rt.base.idents | set(more))
    todo = [n for n in own.idents if n in rt.macros]
    seen = set(todo)
    while todo:
        body = rt.macros[todo.pop()]
        tags |= body.tags
        members |= body.members
        idents |= body.idents
        for n in body.idents:
            if n in rt.macros and n not in seen:
                seen.add(n)
                todo.append(n)
    helpers = sorted(idents & rt.helpers.keys())
    declared: set[tuple[str, str]] = set()
    for name in helpers:
        declared |= rt.helpers[name][1].tags
        idents |= rt.helpers[name][1].idents
    return _Used(tags, members, idents, helpers, declared)


@functools.lru_cache(maxsize=None)
def kernel_names() -> dict[str, list[int]]:
    """:func:`pybpf.btf.cdump.names_index` of the running kernel (cached per kernel)."""
    from ..btf.cdump import names_index
    from ..btf.spec import Spec

    key = hashlib.sha256(f"{kernel_identity()}\0{__version__}\0{FORMAT}".encode())
    name = f"bcc/names/{key.hexdigest()[:16]}"
    data = cache.read(name)
    if data is not None:
        try:
            index: dict[str, list[int]] = marshal.loads(data)
            return index
        except (EOFError, ValueError, TypeError):
            pass
    index = names_index(Spec.vmlinux())
    cache.write(name, marshal.dumps(index))
    return index


def _kernel_types(source: str, own: set[str], more: Iterable[str],
                  used: _Used) -> tuple[list[int], set[str]]:
    """Ids of the kernel types the program's header defines (see above), and the kernel
    struct/union tags the program defines itself; ``own``: its file-scope identifiers,
    ``more``: names clang found missing, ``used``: what it names."""
    from ..btf import types as T
    from ..btf.spec import Spec

    spec, index = Spec.vmlinux(), kernel_names()
    tags, members, idents = used.tags, used.members, used.idents
    defined = {t.split()[1] for t in defined_tags(source)}
    want: set[int] = set()
    tagged = {tag for _, tag in tags} | set(more)
    for name in tagged - defined:   # struct, union and enum tags
        want.update(i for i in index.get(name, ()) if spec.type_by_id(i).name == name and
                    isinstance(spec.type_by_id(i), (T.Composite, T.Fwd, T.Enum)))
    for name in (idents - own) | set(more):   # typedefs, enumerators, kfuncs
        want.update(i for i in index.get(name, ()) if not isinstance(
            spec.type_by_id(i), (T.Composite, T.Fwd)))
    # complete what the program reaches through pointer members it names
    done: set[int] = set()
    todo = list(want)
    while todo:
        tid = todo.pop()
        if tid in done:
            continue
        done.add(tid)
        t = spec.type_by_id(tid)
        refs: list[tuple[str, T.Type]] = []
        if isinstance(t, T.Composite):
            refs = [(m.name, m.type) for m in t.members]
        elif isinstance(t, (T.Typedef, T.Array)):
            refs = [("", t.type)]
        for member, ref in refs:
            ref = _strip(ref)
            while isinstance(ref, T.Array):
                ref = _strip(ref.type)
            if isinstance(ref, T.Pointer) and member and member in members:
                target = _strip(ref.target)
                if isinstance(target, T.Composite) and target.name not in defined:
                    want.add(T.type_id(target))
                    todo.append(T.type_id(target))
            elif isinstance(ref, T.Composite):
                todo.append(T.type_id(ref))
    clashing = {t for t in defined if t in index}
    return sorted(want), clashing


def _strip(t: "T.Type") -> "T.Type":
    """``t`` without qualifiers and typedefs."""
    from ..btf import types as T

    while isinstance(t, (T.Qualifier, T.Typedef)):
        t = t.type
    return t


def _runtime_files() -> Path:
    """The directory of the runtime's generated headers (helpers, kernel configuration,
    constants derived from BTF), per kernel and front end."""
    from ..sys.uapi import Helper

    directory = cache_dir() / "bcc" / "runtime-files" / _runtime_key()
    if (directory / "derived.h").exists():
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    _write_once(directory / "helpers.h",
                declarations({h.name: int(h) for h in Helper}).encode())
    _write_once(directory / "kconfig.h", kconfig_defines().encode())
    _write_once(directory / "derived.h", derived_constants().encode())
    return directory


@functools.lru_cache(maxsize=None)
def _runtime_key() -> str:
    return hashlib.sha256("\0".join([kernel_identity(), _header_digest(), __version__,
                                      str(FORMAT)]).encode()).hexdigest()[:16]


def program_header(source: str, names: Iterable[str], more: Iterable[str] = ()) -> Path:
    """The runtime header of ``source`` (file-scope identifiers ``names``): the kernel types
    it uses, helper declarations, the kernel's configuration and BCC's macros; ``more``:
    kernel type names to add (clang found them missing)."""
    own = declared_names(source) | set(names)
    used = _used_names(source, more)
    ids, clashing = _kernel_types(source, own, more, used)
    index = kernel_names()
    text = _header_text(tuple(ids), tuple(sorted(n for n in own if n in index)),
                        tuple(sorted(clashing)), tuple(used.helpers),
                        tuple(sorted(used.declared)), str(_runtime_files()))
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    header = cache_dir() / "bcc" / "headers" / f"{digest}.h"
    if not header.exists():
        header.parent.mkdir(parents=True, exist_ok=True)
        _write_once(header, text.encode())
    return header


@functools.lru_cache(maxsize=16)
def _header_text(ids: tuple[int, ...], reserved: tuple[str, ...], clashing: tuple[str, ...],
                 helpers: tuple[str, ...], declared: tuple[tuple[str, str], ...],
                 files: str) -> str:
    """The header defining kernel types ``ids`` (see :func:`program_header`), declaring
    ``helpers`` (and the struct/union tags they take, ``declared``), including the generated
    headers in ``files``."""
    from ..btf.cdump import dump_c
    from ..btf.spec import Spec

    kernel = dump_c(Spec.vmlinux(), ids, reserved=reserved, kfuncs=True, subset=True)
    if clashing:   # the program's own definition of a kernel struct is the one it uses
        pattern = re.compile(r"\b((?:struct|union) (?:%s))\b" % "|".join(clashing))
        kernel = pattern.sub(r"\1" + TAG_SUFFIX, kernel)
    forward = "".join(f"{kind} {tag};\n" for kind, tag in declared)
    rt = _runtime_names()
    return _runtime_text(kernel + forward, Path(files),
                         "".join(rt.helpers[h][0] + "\n" for h in helpers))


def run_compiler(source: str, names: Iterable[str], cflags: Sequence[str],
                 args: Sequence[str], stdin: Optional[str] = None, *,
                 fallback: bool = True) -> tuple[subprocess.CompletedProcess, tuple[str, ...]]:
    """Run the compiler with ``args`` (``-c FILE -o OBJ``, ``-fsyntax-only ... -``; ``stdin``
    its input) on ``source`` (file-scope identifiers ``names``) with its runtime header
    (:func:`program_header`), growing it from clang's diagnostics; where that fails and
    ``fallback``, with the whole runtime (:func:`run_with_whole_runtime`), unless an error
    shows it would fail too (a missing include, an undeclared name the kernel lacks). The
    last result, and its command."""
    compiler = find_compiler()
    names = set(names)
    more = _GROWN.setdefault((frozenset(names), tuple(cflags)), set())
    for _ in range(RETRIES + 1):
        header = program_header(source, names, more)
        cmd = (*compiler.argv, *base_flags(), "-include", str(header), *cflags, *args)
        res = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
        if res.returncode == 0:
            return res, cmd
        index, helpers = kernel_names(), _runtime_names().helpers
        missing = {n for n in _MISSING.findall(res.stderr) if n in index or n in helpers}
        if not missing - more:
            break
        more |= missing
    if not fallback or _NOT_FOUND.search(res.stderr) or any(
            n not in index and n not in helpers for n in _MISSING.findall(res.stderr)):
        return res, cmd   # an error the whole runtime has too: no need to build it
    return run_with_whole_runtime(source, names, cflags, args, stdin)


# -- compiling ahead ---------------------------------------------------------------------------
#
# A tracing program's text is analysed on clang's syntax tree before it is compiled; most
# programs come out of the analysis unchanged, so their object is compiled meanwhile, on
# another CPU, from the text as it is, and the build takes it if the text stayed the same.

PROGRAM_NAME = "bpf_program.c"


@dataclass
class _Ahead:
    proc: subprocess.Popen
    tmp: "tempfile.TemporaryDirectory[str]"
    obj: Path


_AHEAD: dict[tuple[str, tuple[str, ...]], _Ahead] = {}


def compile_ahead(source: str, names: Iterable[str], cflags: Sequence[str]) -> None:
    """Start compiling ``source`` (as :func:`run_compiler` would first try) in the background,
    for :func:`take_ahead`; :func:`drop_ahead` if the text changes."""
    compiler = find_compiler()
    names = set(names)
    header = program_header(source, names, _GROWN.get((frozenset(names), tuple(cflags)), ()))
    objects = cache_dir() / "bcc" / "objects"
    objects.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="pybpf-bcc-")
    src = Path(tmp.name) / PROGRAM_NAME
    src.write_text(source)
    obj = objects / f".tmp-{os.getpid()}-{os.path.basename(tmp.name)}.o"
    cmd = (*compiler.argv, *base_flags(), "-include", str(header), *cflags, "-c", str(src),
           "-o", str(obj))
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _drop_at_exit()
    drop_ahead(source, cflags)
    _AHEAD[(source, tuple(cflags))] = _Ahead(proc, tmp, obj)


def take_ahead(source: str, cflags: Sequence[str]) -> Optional[Path]:
    """The object :func:`compile_ahead` made of ``source`` (the caller moves it away), or
    None (none started, or it failed: the caller compiles, with diagnostics)."""
    ahead = _AHEAD.pop((source, tuple(cflags)), None)
    if ahead is None:
        return None
    ok = ahead.proc.wait() == 0
    ahead.tmp.cleanup()
    if ok:
        return ahead.obj
    ahead.obj.unlink(missing_ok=True)
    return None


def drop_ahead(source: str, cflags: Sequence[str]) -> None:
    """Stop and forget the compile ahead of ``source``, if any."""
    ahead = _AHEAD.pop((source, tuple(cflags)), None)
    if ahead is not None:
        ahead.proc.kill()
        ahead.proc.wait()
        ahead.tmp.cleanup()
        ahead.obj.unlink(missing_ok=True)


@functools.lru_cache(maxsize=None)
def _drop_at_exit() -> None:
    """Drop the compiles ahead nobody took, at exit (registered once)."""
    atexit.register(_drop_all)


def _drop_all() -> None:
    for source, cflags in list(_AHEAD):
        drop_ahead(source, cflags)


def run_with_whole_runtime(source: str, names: Iterable[str], cflags: Sequence[str], args: Sequence[str],
               stdin: Optional[str]) -> tuple[subprocess.CompletedProcess, tuple[str, ...]]:
    """:func:`run_compiler` with the whole runtime (:func:`prepare`), precompiled: a header
    it was built from that changed is precompiled again; cflags changing language options
    parse the header instead."""
    compiler, flags = prepare(source, names, cflags)
    cmd = (*compiler.argv, *flags, *args)
    res = subprocess.run(cmd, input=stdin, capture_output=True, text=True)
    if res.returncode == 0 or not compiler.pch or not ("precompiled header" in res.stderr
                                                       or "PCH file" in res.stderr):
        return res, cmd
    at = flags.index("-include-pch")
    pch = Path(flags[at + 1])
    with tempfile.TemporaryDirectory(prefix="pybpf-bcc-") as tmp:
        if "has been modified since" in res.stderr:
            precompile(compiler, pch.with_suffix(""), pch)
        else:   # the header itself, through a wrapper (no .pch next to it for clang to pick)
            wrapper = Path(tmp) / "runtime.h"
            wrapper.write_text(f'#include "{pch.with_suffix("")}"\n')
            flags = [*flags[:at], "-include", str(wrapper), *flags[at + 2:]]
        cmd = (*compiler.argv, *flags, *args)
        return subprocess.run(cmd, input=stdin, capture_output=True, text=True), cmd
