"""``python3 -m pybpf.bcc SCRIPT [ARGS...]``: run a BCC script unchanged on pybpf.

In this process only, ``import bcc`` and ``import bcc.<sub>`` (``table``, ``utils``,
``syscall``, ``usdt``, ``containers``, ...) resolve to ``pybpf.bcc`` and its modules; an
installed BCC is not touched. The script runs as ``__main__`` with ``sys.argv``, ``__file__``,
``sys.path[0]`` and the working directory as if it ran itself, and its exit status is the
process's: an uncaught exception prints the script's traceback (no runner frames) and exits 1
(a kernel lacking a hook, ``UnsupportedFeatureError``, prints one line: the probe's reason),
Ctrl-C ends it as Python ends on SIGINT. SIGTERM detaches and closes what the script's ``BPF``
objects hold before the process dies of it.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import os
import signal
import sys
import types
from typing import Any, Optional, Sequence

ALIAS = "bcc"
TARGET = "pybpf.bcc"


class _Alias(importlib.abc.Loader):
    """Loads ``bcc[.x]`` as the already importable ``pybpf.bcc[.x]`` module object itself."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # executed when imported under its own name


class BccFinder(importlib.abc.MetaPathFinder):
    """Maps ``bcc`` and ``bcc.<sub>`` to ``pybpf.bcc`` and ``pybpf.bcc.<sub>``."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None
                  ) -> Optional[importlib.machinery.ModuleSpec]:
        if fullname != ALIAS and not fullname.startswith(ALIAS + "."):
            return None
        real = TARGET + fullname[len(ALIAS):]
        if importlib.util.find_spec(real) is None:
            return None  # ModuleNotFoundError names bcc.<sub>
        return importlib.machinery.ModuleSpec(fullname, _Alias(real),
                                              is_package=fullname == ALIAS)


def install() -> None:
    """Put the ``bcc`` alias first on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, BccFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, BccFinder())


def _cleanup_bpf_objects() -> None:
    bpf = sys.modules.get(f"{TARGET}.bpf")
    if bpf is not None:
        bpf.cleanup_all()


def _on_sigterm(signum: int, frame: Any) -> None:
    """Close what the script's BPF objects hold, then die of SIGTERM as the script would."""
    _cleanup_bpf_objects()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def run(script: str, args: Sequence[str]) -> None:
    """Run ``script`` as ``__main__`` with ``sys.argv = [script, *args]``."""
    path = os.path.abspath(script)
    try:
        with open(path, "rb") as f:
            source = f.read()
    except OSError as e:
        sys.stderr.write(f"{sys.executable}: can't open file {script!r}: [Errno {e.errno}] "
                         f"{e.strerror}\n")
        raise SystemExit(2) from None
    code = compile(source, path, "exec", dont_inherit=True)
    main = types.ModuleType("__main__")
    main.__dict__.update(__file__=path, __builtins__=__builtins__, __cached__=None,
                         __loader__=importlib.machinery.SourceFileLoader("__main__", path))
    sys.modules["__main__"] = main
    sys.argv = [script, *args]
    sys.path[0] = os.path.dirname(os.path.realpath(path))
    install()

    def excepthook(etype: type, value: BaseException, tb: Any) -> None:
        """Python's report of an uncaught exception, from the script's frames on; a hook the
        kernel lacks is one line, the probe's reason (BCC's tools print no traceback for it)."""
        from ..errors import UnsupportedFeatureError
        if isinstance(value, UnsupportedFeatureError):
            sys.stderr.write(f"{os.path.basename(script)}: {value}\n")
            return
        first = tb
        while tb is not None and tb.tb_frame.f_code.co_filename != path:
            tb = tb.tb_next
        tb = tb or first
        sys.__excepthook__(etype, value.with_traceback(tb), tb)

    sys.excepthook = excepthook
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)
    exec(code, main.__dict__)


def main(argv: Sequence[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: python3 -m pybpf.bcc SCRIPT [ARGS...]\n"
                         "Runs a BCC Python script unchanged: `import bcc` is pybpf's BCC "
                         "front end in that process.\n")
        raise SystemExit(0 if argv else 2)
    run(argv[0], argv[1:])


if __name__ == "__main__":
    main(sys.argv[1:])
