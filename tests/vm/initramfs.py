"""The initramfs: a static busybox, the kernel's virtio/9p/overlay modules and a tiny /init.

/init only loads the modules and mounts the run's results directory (9p tag ``results``) on
/results, then sources ``/results/boot.sh``, which the runner writes for each run: so the
image depends on nothing but the kernel and busybox, and is built once per kernel.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import lzma
import os
import shutil
from pathlib import Path

from .fetch import KernelDir, run

MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
"""Loaded by /init with their dependencies: the 9p shares over virtio-pci, and overlayfs."""

INIT = """#!/bin/busybox sh
# pybpf VM stage 1: load modules, mount the results share, source the run's boot.sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
while read -r m; do insmod "/modules/$m" || echo "pybpf-vm: insmod $m failed"; done < /modules/order
if mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 results /results; then
    . /results/boot.sh
fi
echo "pybpf-vm: no /results/boot.sh to run"
poweroff -f
"""


def ensure_initramfs(k: KernelDir) -> Path:
    """The kernel's initramfs, built when missing or when /init or busybox changed."""
    busybox = Path(shutil.which("busybox") or "/bin/busybox").read_bytes()
    key = hashlib.sha256(INIT.encode() + busybox + " ".join(MODULES).encode()).hexdigest()[:16]
    path = k.root / f"initramfs-{key}.cpio.gz"
    try:
        gzip.decompress(path.read_bytes())
        return path
    except (OSError, EOFError):  # missing or truncated (gzip.BadGzipFile is an OSError)
        pass
    for old in k.root.glob("initramfs-*.cpio.gz"):
        old.unlink()
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_bytes(build(k, busybox))
    tmp.rename(path)
    return path


def module_files(k: KernelDir) -> list[Path]:
    """The .ko files of ``MODULES`` and their dependencies, in load order (builtins left out)."""
    files: list[Path] = []
    for name in MODULES:
        out = run(["modprobe", "-d", str(k.root), "-S", k.release, "--show-depends", name],
                  f"resolving module {name} of {k.release}").stdout
        for line in out.splitlines():
            words = line.split()
            if words[:1] == ["insmod"] and Path(words[1]) not in files:
                files.append(Path(words[1]))
    return files


def _module_bytes(path: Path) -> tuple[str, bytes]:
    """A module's file name and contents, xz-decompressed (busybox insmod takes plain ELF)."""
    if path.suffix == ".xz":
        return path.stem, lzma.decompress(path.read_bytes())
    return path.name, path.read_bytes()


def build(k: KernelDir, busybox: bytes) -> bytes:
    """The gzipped newc cpio archive."""
    cpio = Cpio()
    for d in ("bin", "dev", "proc", "sys", "results", "modules"):
        cpio.add(d, 0o040755)
    cpio.add("dev/console", 0o020600, rdev=(5, 1))
    cpio.add("bin/busybox", 0o100755, busybox)
    cpio.add("init", 0o100755, INIT.encode())
    order = []
    for path in module_files(k):
        name, data = _module_bytes(path)
        cpio.add(f"modules/{name}", 0o100644, data)
        order.append(name)
    cpio.add("modules/order", 0o100644, "".join(f"{n}\n" for n in order).encode())
    return gzip.compress(cpio.finish(), compresslevel=6, mtime=0)


class Cpio:
    """A writer of the "newc" cpio format that the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._ino = 0

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self._ino += 1
        fields = (self._ino, mode, 0, 0, 1, 0, len(data), 0, 0, rdev[0], rdev[1], len(name) + 1, 0)
        self._out.write(b"070701" + b"".join(b"%08x" % f for f in fields))
        self._write_padded(name.encode() + b"\0")
        self._write_padded(data)

    def _write_padded(self, data: bytes) -> None:
        self._out.write(data + b"\0" * (-(self._out.tell() + len(data)) % 4))

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return self._out.getvalue()
