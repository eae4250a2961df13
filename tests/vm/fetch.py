"""Host tools and kernel packages: install what is missing, download and unpack Debian kernels.

Kernels are cached in ``${XDG_CACHE_HOME:-~/.cache}/pybpf/kernels/<name>``: the unpacked
``linux-image`` package plus ``kernel.json`` naming the exact package and version. The apt
state used for the download (sources, lists, archives) is private to it and thrown away,
so the system's apt configuration is never touched.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from .kernels import KERNELS, Kernel

HOST_PACKAGES = {"qemu-system-x86": "qemu-system-x86_64", "busybox-static": "busybox", "kmod": "depmod"}
"""Debian packages the runner needs on the host, with a program each one provides."""

KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"


class VMError(Exception):
    """The runner could not do its part (fetch, build, boot); the message says what to do."""

    def __init__(self, message: str, status: int = 125) -> None:
        super().__init__(message)
        self.status = status  # the runner's exit status


@dataclass(frozen=True)
class KernelDir:
    """An unpacked kernel package in the cache."""

    name: str
    package: str
    version: str
    release: str  # ``uname -r`` of the kernel, its directory under lib/modules
    sha256: str   # of the .deb
    root: Path

    @property
    def vmlinuz(self) -> Path:
        return self.root / "boot" / f"vmlinuz-{self.release}"

    @property
    def config(self) -> Path:
        return self.root / "boot" / f"config-{self.release}"

    @property
    def modules(self) -> Path:
        return self.root / "lib" / "modules" / self.release


def cache_root() -> Path:
    """``${XDG_CACHE_HOME:-~/.cache}/pybpf``."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "pybpf"


def run(cmd: Sequence[str], what: str, **kw) -> subprocess.CompletedProcess:
    """Run ``cmd`` without stdin, capturing its output; VMError with its last lines on failure."""
    try:
        return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=True, **kw)
    except FileNotFoundError:
        raise VMError(f"{what}: {cmd[0]} is not installed") from None
    except subprocess.CalledProcessError as e:
        tail = "\n".join((e.stdout + e.stderr).strip().splitlines()[-15:])
        shown = " ".join(a for a in cmd if not a.startswith("-o"))
        raise VMError(f"{what}: `{shown}` exited with {e.returncode}:\n{tail}") from None


def ensure_host_tools() -> None:
    """Install qemu, a static busybox and kmod with apt-get when missing (``apt-get update`` if needed)."""
    missing = [p for p, prog in HOST_PACKAGES.items() if shutil.which(prog) is None]
    busybox = shutil.which("busybox")
    if busybox is not None and not _is_static(busybox):  # the initramfs has no libc
        missing.append("busybox-static")
    if not missing:
        return
    if os.geteuid() != 0:
        raise VMError(f"missing host packages: run `apt-get install {' '.join(missing)}` as root")
    print(f"vm: installing {' '.join(missing)}", file=sys.stderr, flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    try:
        run(install, "installing host tools", env=env)
    except VMError:
        run(["apt-get", "update", "-q"], "apt-get update", env=env)
        run(install, "installing host tools", env=env)


def _is_static(path: str) -> bool:
    """True for a 64-bit ELF executable without a program interpreter (PT_INTERP)."""
    data = Path(path).read_bytes()
    if data[:5] != b"\x7fELF\x02":
        return False
    phoff, = struct.unpack_from("<Q", data, 32)
    phentsize, phnum = struct.unpack_from("<HH", data, 54)
    return all(struct.unpack_from("<I", data, phoff + i * phentsize)[0] != 3 for i in range(phnum))


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created): one fetch or build per kernel at a time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def cached_kernel(name: str) -> KernelDir | None:
    """The kernel in the cache when it is complete, else None."""
    root = cache_root() / "kernels" / name
    try:
        meta = json.loads((root / "kernel.json").read_text())
        k = KernelDir(root=root, **meta)
    except (OSError, ValueError, TypeError):
        return None
    return k if k.vmlinuz.is_file() and (k.modules / "modules.dep").is_file() else None


def ensure_kernel(name: str) -> KernelDir:
    """The cached kernel ``name``, downloaded and unpacked first when missing or incomplete."""
    kernels = cache_root() / "kernels"
    with locked(kernels / f"{name}.lock"):
        k = cached_kernel(name)
        if k is None:
            k = _fetch(KERNELS[name], kernels / name)
        return k


def _fetch(kernel: Kernel, dest: Path) -> KernelDir:
    print(f"vm: fetching the newest Linux {kernel.name} package from Debian {kernel.suite}", file=sys.stderr, flush=True)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{kernel.name}-", dir=dest.parent) as tmp:
        work = Path(tmp)
        apt = _private_apt(work / "apt", kernel)
        run([*apt.get, "update", "-q", "--error-on=any"], f"apt-get update for Debian {kernel.suite}")
        found = run([*apt.cache, "search", "--names-only", kernel.package], "apt-cache search").stdout
        names = [n for n in (line.split(" - ")[0] for line in found.splitlines()) if kernel.matches(n)]
        if not names:
            raise VMError(f"no package matching {kernel.package} in Debian {kernel.suite}")
        package = max(names, key=lambda n: [int(x) for x in re.findall(r"\d+", n)])
        run([*apt.get, "download", "-q", package], f"downloading {package}", cwd=work)
        deb, = work.glob(f"{package}_*.deb")
        version = run(["dpkg-deb", "-f", str(deb), "Version"], "reading the package").stdout.strip()
        root = work / "root"
        run(["dpkg-deb", "-x", str(deb), str(root)], f"unpacking {deb.name}")
        release = package[len("linux-image-"):]
        run(["depmod", "-b", str(root), release], "depmod")
        meta = dict(name=kernel.name, package=package, version=version, release=release,
                    sha256=hashlib.sha256(deb.read_bytes()).hexdigest())
        (root / "kernel.json").write_text(json.dumps(meta, indent=1) + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        root.rename(dest)
    k = cached_kernel(kernel.name)
    if k is None:
        raise VMError(f"{package} {version} unpacked into {dest} lacks boot/vmlinuz-{release} or modules")
    print(f"vm: {kernel.name} is {package} {version}", file=sys.stderr, flush=True)
    return k


@dataclass(frozen=True)
class _Apt:
    get: list[str]
    cache: list[str]


def _private_apt(state: Path, kernel: Kernel) -> _Apt:
    """apt-get and apt-cache command prefixes whose sources, lists and caches live in ``state``."""
    if not os.path.isfile(KEYRING):
        raise VMError(f"{KEYRING} is missing: `apt-get install debian-archive-keyring`")
    for d in ("lists/partial", "cache/archives/partial"):
        (state / d).mkdir(parents=True)
    sources = state / "sources.list"
    sources.write_text("".join(f"deb [signed-by={KEYRING}] {s}\n" for s in kernel.sources))
    opts = [f"-oDir::Etc::SourceList={sources}", "-oDir::Etc::SourceParts=/dev/null",
            f"-oDir::State::Lists={state / 'lists'}", f"-oDir::Cache={state / 'cache'}",
            "-oDir::Etc::Preferences=/dev/null", "-oDir::Etc::PreferencesParts=/dev/null",
            "-oAPT::Sandbox::User=root", "-oAcquire::Languages=none"]
    return _Apt(["apt-get", *opts], ["apt-cache", *opts])


def describe(k: KernelDir) -> str:
    """One line: the package and version behind a cached kernel."""
    return f"{k.package} {k.version} ({k.release}), sha256 {k.sha256[:16]}..."

