"""Compile BPF C with clang, against a ``vmlinux.h`` pybpf dumps from the running kernel.

    obj = pybpf.compile("prog.bpf.c")                      # -> prog.bpf.o next to it
    obj = pybpf.compile(source_text, "/tmp/prog.o", defines={"MAX": 16})

clang runs as ``clang -g -O2 -target bpf -D__TARGET_ARCH_<arch>`` (``arch`` from
``platform.machine()``, as bpf_tracing.h expects) with, on the include path: the caller's
``includes``; the directory of a cached ``vmlinux.h`` (``vmlinux=True``: dumped from
``/sys/kernel/btf/vmlinux`` by :mod:`pybpf.btf.cdump`, kept in
``${XDG_CACHE_HOME:-~/.cache}/pybpf/vmlinux/<kernel release>-<hash>/vmlinux.h``, the hash
of the BTF's content, or for the running kernel of its release, build and BTF size; dumped
again when they change); and the multiarch directory that ``linux/bpf.h`` needs
(``/usr/include/<machine>-linux-gnu``). ``bpf/bpf_helpers.h`` and its family come from
libbpf-dev (``/usr/include/bpf``): build-time headers only, pybpf never loads libbpf.
Like bpftool >= 7.4's, the vmlinux.h ends with ``extern ... __weak __ksym;`` prototypes of the
kernel's kfuncs; a program declaring kfuncs itself defines ``BPF_NO_KFUNC_PROTOTYPES``.

vmlinux.h declares every kernel identifier: ``typedef struct config_s config;`` clashes with a
map called ``config``. ``reserved=("config",)`` dumps a vmlinux.h in which the kernel's
typedefs and enumerators of those names are called ``config___2`` instead (the suffix bpftool
gives clashing names), so the program may use the name itself.

The module itself is callable: ``pybpf.compile(...)`` is :func:`compile`.
"""
from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import types
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Union

from . import __version__
from . import cache
from .cache import cache_dir
from .errors import BTFError, CompileError, ToolchainError, UsageError
from .sys.host import VMLINUX_BTF

PathLike = Union[str, "os.PathLike[str]"]

BPF_HEADERS = Path("/usr/include/bpf")   # Debian's libbpf-dev: bpf_helpers.h, bpf_tracing.h, ...

# platform.machine() -> the __TARGET_ARCH_* bpf_tracing.h knows (the kernel's arch names)
ARCHES = {"x86_64": "x86", "i386": "x86", "i686": "x86", "aarch64": "arm64", "arm64": "arm64",
          "armv7l": "arm", "armv6l": "arm", "s390x": "s390", "ppc64le": "powerpc",
          "ppc64": "powerpc", "riscv64": "riscv", "loongarch64": "loongarch", "mips64": "mips",
          "mips": "mips", "sparc64": "sparc"}

HEADER_FORMAT = 3  # part of the cache key: bump when the dumped vmlinux.h changes shape
_MISSING_HEADER = re.compile(r"fatal error: '(bpf/[^']+)' file not found")


def target_arch(machine: Optional[str] = None) -> str:
    """The ``__TARGET_ARCH_<arch>`` name for ``machine`` (default: this one's)."""
    machine = machine or platform.machine()
    try:
        return ARCHES[machine]
    except KeyError:
        raise ToolchainError(f"unknown machine {machine!r}: pass "
                             f"cflags=['-D__TARGET_ARCH_<arch>'] and vmlinux=False") from None


def vmlinux_header(btf: PathLike = VMLINUX_BTF, reserved: Iterable[str] = ()) -> Path:
    """A ``vmlinux.h`` with every type of the kernel BTF ``btf`` (default: the running
    kernel's), cached by kernel release and BTF content (the running kernel's: by its release,
    build and BTF size, without reading it); ``reserved`` as for :func:`compile`."""
    running = str(btf) == VMLINUX_BTF
    data = None
    try:
        if running:
            u = os.uname()
            key = hashlib.sha256(f"{u.release}\0{u.version}\0{os.stat(btf).st_size}".encode())
        else:
            data = Path(btf).read_bytes()
            key = hashlib.sha256(data)
    except OSError as e:
        hint = (": this kernel was built without CONFIG_DEBUG_INFO_BTF; pass vmlinux=False "
                "or the path of a BTF file" if running else "")
        raise BTFError(f"cannot read BTF from {btf}: {e.strerror}{hint}") from None
    reserved = sorted(set(reserved))
    key.update(f"\0{__version__}\0{HEADER_FORMAT}\0{','.join(reserved)}".encode())
    release = os.uname().release if running else Path(btf).name
    name = f"vmlinux/{release}-{key.hexdigest()[:16]}/vmlinux.h"
    header = cache_dir() / name
    if header.exists():
        return header
    if data is None:
        data = Path(btf).read_bytes()
    from .btf.cdump import dump_c
    from .btf.spec import Spec

    text = dump_c(Spec.parse(data, name=str(btf)), reserved=reserved, kfuncs=True)
    cache.write(name, text.encode())  # atomic: a concurrent reader sees all or nothing
    if not header.exists():
        raise ToolchainError(f"cannot write vmlinux.h to pybpf's cache {cache_dir()}: set "
                             f"XDG_CACHE_HOME to a writable directory")
    return header


def compile(source: PathLike, output: Optional[PathLike] = None, *,
            includes: Iterable[PathLike] = (), defines: Mapping[str, object] = {},
            vmlinux: Union[bool, PathLike] = True, cflags: Iterable[str] = (),
            reserved: Iterable[str] = ()) -> Path:
    """Compile BPF C to an object file and return its path.

    ``source`` is a path, or C source text (a ``str`` with a newline). ``output`` defaults to
    the source's path with ``.o`` (source text: ``<cache>/objects/<hash>.o``). ``defines``
    become ``-DNAME=VALUE`` (``-DNAME`` for ``None``); ``vmlinux`` is True (the running
    kernel's vmlinux.h on the include path), False, or a BTF file to dump vmlinux.h from;
    ``reserved`` names the identifiers the program defines that vmlinux.h must not.
    Raises :class:`ToolchainError` if clang (or a libbpf-dev header) is missing and
    :class:`CompileError`, carrying clang's diagnostics, if compilation fails.
    """
    text = source if isinstance(source, str) and "\n" in source else None
    if text is None and not Path(source).is_file():
        raise UsageError(f"cannot compile {source}: no such file (source text must contain a "
                         f"newline)")
    clang = shutil.which("clang")
    if clang is None:
        raise ToolchainError("clang is not installed (not found on PATH); pybpf.compile needs "
                             "it to build BPF C: apt-get install clang")
    flags = ["-g", "-O2", "-target", "bpf", f"-D__TARGET_ARCH_{target_arch()}"]
    for directory in includes:
        flags += ["-I", str(directory)]
    if vmlinux is not False:
        btf = VMLINUX_BTF if vmlinux is True else vmlinux
        flags += ["-I", str(vmlinux_header(btf, reserved).parent)]
    multiarch = Path(f"/usr/include/{platform.machine()}-linux-gnu")
    if multiarch.is_dir():
        flags += ["-I", str(multiarch)]
    for name, value in defines.items():
        flags.append(f"-D{name}" if value is None else f"-D{name}={value}")
    flags += list(cflags)

    if text is not None:
        digest = hashlib.sha256("\0".join([text, *flags]).encode()).hexdigest()[:16]
        out = Path(output) if output is not None else cache_dir() / "objects" / f"{digest}.o"
        with tempfile.TemporaryDirectory(prefix="pybpf-compile-") as tmp:
            src = Path(tmp) / "program.c"
            src.write_text(text)
            return _run(clang, flags, src, out, "the given source")
    src = Path(source)
    out = Path(output) if output is not None else src.with_suffix(".o")
    return _run(clang, flags, src, out, str(src))


def _run(clang: str, flags: list[str], src: Path, out: Path, what: str) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    cmd = (clang, *flags, "-c", str(src), "-o", str(out))
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode == 0:
        return out
    missing = _MISSING_HEADER.search(res.stderr)
    if missing and not (BPF_HEADERS.parent / missing.group(1)).exists():
        raise ToolchainError(f"{missing.group(1)} is not installed: the bpf_helpers.h family "
                             f"comes from libbpf-dev (apt-get install libbpf-dev)\n"
                             f"{res.stderr.rstrip()}")
    raise CompileError(f"clang failed to compile {what} (exit status {res.returncode})",
                       res.stderr, cmd)


class _CallableModule(types.ModuleType):
    """Lets ``pybpf.compile(...)`` call :func:`compile` while ``pybpf.compile.vmlinux_header``
    and ``from pybpf.compile import ...`` keep working on the module."""

    def __call__(self, *args: Any, **kwargs: Any) -> Path:
        return compile(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
