"""The VM runner's own parts that need no VM: the kernel table, the cpio writer, the scripts."""
from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vm.__main__ import choose, parse
from tests.vm.boot import VM
from tests.vm.fetch import KernelDir, VMError, _is_static
from tests.vm.initramfs import Cpio
from tests.vm.kernels import FEATURES, KERNELS, kernels_with, pick


def test_feature_table_names_known_kernels() -> None:
    assert all(set(names) <= set(KERNELS) for names in FEATURES.values())


def test_pick_prefers_the_newest_kernel_with_every_feature() -> None:
    assert pick(["kprobe"]) == "6.12"
    assert pick(["kprobe", "lsm"]) == "6.12"
    assert pick([]) == "6.12"
    with pytest.raises(KeyError, match="unknown kernel feature 'nope'"):
        kernels_with("nope")


def test_choose_checks_a_named_kernel_against_the_features() -> None:
    assert choose("5.10", ["kprobe"]) == "5.10"
    assert choose(None, ["kprobe_multi"]) == "6.12"
    with pytest.raises(VMError, match="kernel 6.1 lacks tcx"):
        choose("6.1", ["tcx"])


def test_package_patterns() -> None:
    assert KERNELS["6.12"].matches("linux-image-6.12.117+deb12-amd64")
    assert not KERNELS["6.12"].matches("linux-image-6.12.117+deb12-amd64-unsigned")
    assert KERNELS["6.1"].matches("linux-image-6.1.0-56-amd64")
    assert not KERNELS["6.1"].matches("linux-image-6.12.117+deb12-amd64")
    assert KERNELS["5.10"].matches("linux-image-5.10.0-46-amd64")


def test_command_follows_the_double_dash() -> None:
    args, command = parse(["6.1", "--timeout", "60", "--", "pytest", "-k", "a and b", "--timeout", "9"])
    assert (args.kernel, args.timeout, command) == ("6.1", 60, ["pytest", "-k", "a and b", "--timeout", "9"])


def _read_cpio(data: bytes) -> dict[str, tuple[int, bytes]]:
    """name -> (mode, data) of a newc archive."""
    entries, pos = {}, 0
    while True:
        assert data[pos:pos + 6] == b"070701" and pos % 4 == 0
        fields = [int(data[pos + 6 + 8 * i:pos + 14 + 8 * i], 16) for i in range(13)]
        mode, size, namesize = fields[1], fields[6], fields[11]
        name = data[pos + 110:pos + 110 + namesize - 1].decode()
        pos = (pos + 110 + namesize + 3) & ~3
        if name == "TRAILER!!!":
            return entries
        entries[name] = (mode, data[pos:pos + size])
        pos = (pos + size + 3) & ~3


def test_cpio_round_trip() -> None:
    cpio = Cpio()
    cpio.add("bin", 0o040755)
    cpio.add("bin/x", 0o100755, b"hello")
    cpio.add("dev/console", 0o020600, rdev=(5, 1))
    assert _read_cpio(cpio.finish()) == {"bin": (0o040755, b""), "bin/x": (0o100755, b"hello"),
                                         "dev/console": (0o020600, b"")}


def test_static_binary_check() -> None:
    assert not _is_static(sys.executable)
    busybox = shutil.which("busybox")
    if busybox:
        assert _is_static(busybox)


def test_scripts_are_valid_shell(tmp_path: Path) -> None:
    k = KernelDir("6.1", "linux-image-6.1.0-56-amd64", "6.1.192-2", "6.1.0-56-amd64", "0" * 64, tmp_path)
    vm = VM(k, tmp_path / "initramfs.cpio.gz")
    argv = ["python3", "-c", "print('it\\'s')", "a b", "$HOME"]
    run = vm.run_script(tmp_path, argv)
    command = next(line for line in run.splitlines() if line.startswith("    "))
    assert shlex.split(command)[:len(argv)] == argv
    for script in (vm.boot_script(tmp_path), run):
        subprocess.run(["sh", "-n"], input=script.encode(), check=True)
    assert f"file:{tmp_path}/console.log" in vm.qemu_argv(tmp_path)
