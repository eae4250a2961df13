"""Boot a kernel under qemu and run one command in it, streaming its output.

The guest sees the host's ``/`` read-only over 9p (same paths, so the host's Python and the
editable install work), with tmpfs overlays on /tmp /etc /var /root /boot and on the repository
(writes inside the guest are thrown away; /boot holds the kernel's config-<release>), and the
run's results directory read-write at its host path. It holds the two stage scripts the
runner writes for each run, and what the guest leaves there: ``started`` (touched when the
command starts), ``output`` (the command's stdout and stderr, tailed to our stdout as it
grows), ``rc`` (its exit status) and ``console.log`` (the guest's serial console: kernel
messages).
"""
from __future__ import annotations

import ctypes
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from .fetch import KernelDir, VMError
from .kernels import KERNEL_ARGS

REPO = Path(__file__).resolve().parents[2]
BUSYBOX = shutil.which("busybox") or "/bin/busybox"  # static: from the host, also in the guest
OVERLAYS = ("/tmp", "/etc", "/var", "/root")
PASS_ENV = ("PATH", "LANG", "LC_ALL", "TZ", "VIRTUAL_ENV", "PYTHONPATH", "CI")
PASS_ENV_PREFIXES = ("PYBPF_", "PYTEST_", "PYENV_")
KERNEL_TROUBLE = re.compile(r"\b(BUG|WARNING|Oops|Kernel panic|Call Trace)\b")
TIMEOUT_STATUS = 124


@dataclass
class VM:
    """How to boot: the kernel, its initramfs and qemu's resources."""

    kernel: KernelDir
    initramfs: Path
    mem: str = "2G"
    cpus: int = 2
    accel: str = "tcg"  # this machine's /dev/kvm runs only PVM guests: stock kernels need TCG
    append: str = ""
    timings: dict[str, float] = field(default_factory=dict)

    def run(self, argv: Sequence[str], timeout: float, results: Optional[Path] = None) -> int:
        """Run ``argv`` in the guest (cwd: the repository); its exit status.

        The results directory is a fresh temporary one unless given; a temporary one is
        removed after a run that exited 0, and kept (and named on stderr) otherwise.
        A guest that dies before starting the command (a boot panic under emulation, seen
        rarely: int3 in sched_clock_cpu) is booted once more; one that started it is not.
        """
        keep = results is not None
        rdir = Path(results or tempfile.mkdtemp(prefix="pybpf-vm-")).resolve()
        rdir.mkdir(parents=True, exist_ok=True)
        status = None
        try:
            (rdir / "boot.sh").write_text(self.boot_script(rdir))
            (rdir / "run.sh").write_text(self.run_script(rdir, argv))
            for attempt in (1, 2):
                for name in ("started", "output", "rc", "console.log"):
                    (rdir / name).unlink(missing_ok=True)
                try:
                    status = self._boot(rdir, timeout)
                    return status
                except VMError as e:
                    if attempt == 2 or e.status == TIMEOUT_STATUS or (rdir / "started").exists():
                        raise
                    print(f"vm: {self.kernel.name}: the guest died before the command started; "
                          f"booting once more ({e})", file=sys.stderr, flush=True)
            raise AssertionError("unreachable")
        finally:
            _report_kernel_trouble(rdir / "console.log")
            if keep or status != 0:
                print(f"vm: results and console log in {rdir}", file=sys.stderr, flush=True)
            else:
                shutil.rmtree(rdir, ignore_errors=True)

    def _boot(self, rdir: Path, timeout: float) -> int:
        k = self.kernel
        t0 = time.time()
        qemu = subprocess.Popen(self.qemu_argv(rdir), stdin=subprocess.DEVNULL, stdout=sys.stderr,
                                preexec_fn=_die_with_parent)
        started = rdir / "started"
        output = None
        up = False
        try:
            while True:
                done = qemu.poll() is not None
                if not up and started.exists():
                    up = True
                    self.timings["boot"] = started.stat().st_mtime - t0
                    print(f"vm: {k.name} ({k.release}) up in {self.timings['boot']:.1f} s",
                          file=sys.stderr, flush=True)
                if output is None and (rdir / "output").exists():
                    output = open(rdir / "output", "rb")
                if output is not None:
                    _copy(output)
                if done:
                    break
                if time.time() - t0 > timeout:
                    raise VMError(f"timed out after {timeout:.0f} s{_console_tail(rdir)}", TIMEOUT_STATUS)
                time.sleep(0.1)
        finally:
            if output is not None:
                output.close()
            if qemu.poll() is None:
                qemu.kill()
                qemu.wait()
        self.timings["total"] = time.time() - t0
        try:
            status = int((rdir / "rc").read_text())
        except (OSError, ValueError):
            raise VMError(f"the guest did not run the command (qemu exited with {qemu.returncode})"
                          f"{_console_tail(rdir)}") from None
        self.timings["command"] = (rdir / "rc").stat().st_mtime - started.stat().st_mtime
        t = self.timings
        print(f"vm: {k.name} ({k.release}) exit {status}: boot {t['boot']:.1f} s, command {t['command']:.1f} s,"
              f" total {t['total']:.1f} s", file=sys.stderr, flush=True)
        return status

    def qemu_argv(self, rdir: Path) -> list[str]:
        def share(tag: str, path: str, readonly: bool) -> list[str]:
            ro = ",readonly=on" if readonly else ""
            return ["-fsdev", f"local,id={tag},path={_qarg(path)},security_model=none,multidevs=remap{ro}",
                    "-device", f"virtio-9p-pci,fsdev={tag},mount_tag={tag}"]

        k = self.kernel
        cmdline = f"console=ttyS0 quiet panic=-1 tsc=reliable {KERNEL_ARGS} {self.append}".strip()
        return ["qemu-system-x86_64", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
                "-accel", self.accel, "-cpu", "max", "-machine", "q35", "-m", self.mem, "-smp", str(self.cpus),
                "-kernel", str(k.vmlinuz), "-initrd", str(self.initramfs), "-append", cmdline,
                "-serial", f"file:{rdir / 'console.log'}",
                *share("hostroot", "/", True), *share("results", str(rdir), False)]

    def boot_script(self, rdir: Path) -> str:
        """Stage 1, sourced by the initramfs' /init: mount the new root and switch to it."""
        boot = ["/boot"] if os.path.isdir("/boot") else []  # for the kernel's config
        dirs = sorted({*OVERLAYS, *boot, str(REPO), _modules_overlay()}, key=lambda d: d.count("/"))
        for d in dirs:
            if re.search(r"[\s,:\\]", d):
                raise VMError(f"cannot overlay {d!r} in the guest: move it to a path without spaces, ',' or ':'")
        q = shlex.quote
        lines = [
            "# pybpf VM stage 1 (written per run): the host's / read-only, tmpfs overlays, switch_root",
            'fail() { echo "pybpf-vm: $*"; poweroff -f; }',
            "mkdir -p /newroot /rw",
            "# cache=loose: host files are taken as unchanging during a run (Python starts several times faster)",
            "mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot /newroot"
            " || fail 'cannot mount the host root over 9p'",
            "mount -t tmpfs tmpfs /rw",
        ]
        for i, d in enumerate(dirs):
            opts = f"lowerdir=/newroot{d},upperdir=/rw/{i}/u,workdir=/rw/{i}/w"
            lines += [f"mkdir -p /rw/{i}/u /rw/{i}/w",
                      f"mount -t overlay overlay -o {opts} {q('/newroot' + d)} || fail {q('cannot overlay ' + d)}"]
        lines += [
            "mount -t tmpfs tmpfs /newroot/run",
            f"mount --move /results {q(f'/newroot{rdir}')} || fail 'cannot move the results share'",
            "for d in proc sys dev; do mount --move /$d /newroot/$d; done",
            f"exec switch_root /newroot /bin/sh {q(str(rdir / 'run.sh'))}",
        ]
        return "\n".join(lines) + "\n"

    def run_script(self, rdir: Path, argv: Sequence[str]) -> str:
        """Stage 2, on the host's root: kernel filesystems, the command, its status, power off."""
        k = self.kernel
        q = shlex.quote
        env = {n: v for n, v in os.environ.items() if n in PASS_ENV or n.startswith(PASS_ENV_PREFIXES)}
        env.setdefault("LANG", "C.UTF-8")
        env.update(HOME="/root", USER="root", LOGNAME="root", PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
                   PYBPF_VM=k.name, PYBPF_VM_RELEASE=k.release, PYBPF_VM_RESULTS=str(rdir))
        modules = f"/lib/modules/{k.release}"
        lines = [
            "# pybpf VM stage 2 (written per run): kernel filesystems, then the command",
            "mount -t bpf bpf /sys/fs/bpf",
            "mount -t tracefs tracefs /sys/kernel/tracing",
            "mount -t debugfs debugfs /sys/kernel/debug",
            "mount -t cgroup2 cgroup2 /sys/fs/cgroup",
            "mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs tmpfs /dev/shm",
            f"mkdir -p {q(modules)} && mount --bind {q(str(k.modules))} {q(modules)}",
            "# the kernel's configuration where tools look for it (BCC's front end: CONFIG_* macros)",
            f"[ -d /boot ] && ln -sf {q(str(k.config))} /boot/",
            "ip link set lo up 2>/dev/null; hostname pybpf-vm",
            "ulimit -l unlimited  # kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK",
            f": > {q(str(rdir / 'started'))}",
            f"cd {q(str(REPO))}",
            f"env -i {' '.join(q(f'{n}={v}') for n, v in sorted(env.items()))} \\",
            f"    {shlex.join(argv)} > {q(str(rdir / 'output'))} 2>&1 < /dev/null",
            f"echo $? > {q(str(rdir / 'rc'))}",
            f"exec {q(BUSYBOX)} poweroff -f  # syncs, then powers off at once",
        ]
        return "\n".join(lines) + "\n"


def _modules_overlay() -> str:
    """A directory to overlay so that /lib/modules/<release> can be created in the guest."""
    modules = os.path.realpath("/lib/modules")
    return modules if os.path.isdir(modules) else os.path.dirname(modules)


def _qarg(value: str) -> str:
    """A value in a qemu option list (commas doubled)."""
    return value.replace(",", ",,")


def _copy(f) -> None:
    data = f.read()
    if data:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()


def _console_tail(rdir: Path, lines: int = 25) -> str:
    try:
        text = (rdir / "console.log").read_text(errors="replace").replace("\r", "").strip()
    except OSError:
        return "; no console log"
    tail = "\n".join(text.splitlines()[-lines:]) if text else "(empty)"
    return f"; the guest console said:\n{tail}"


def _report_kernel_trouble(console: Path) -> None:
    """Say so when the guest kernel logged a warning, a BUG or an oops."""
    try:
        bad = [line for line in console.read_text(errors="replace").splitlines() if KERNEL_TROUBLE.search(line)]
    except OSError:
        return
    if bad:
        print(f"vm: the guest kernel logged trouble, e.g.: {bad[0].strip()}", file=sys.stderr, flush=True)


def _die_with_parent() -> None:
    """In qemu's child process: be killed when the runner dies (PR_SET_PDEATHSIG)."""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
