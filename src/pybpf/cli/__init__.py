"""The ``pybpf`` command: bpftool's grammar (``pybpf [OPTIONS] OBJECT COMMAND ARGS``) on pybpf.

One module per object kind (``prog``, ``map``, ``link``, ``btf``, ``feature``, ``net``,
``cgroup``, ``struct_ops``), imported only when its object is named, so start-up stays
light. Errors are one line, ``Error: ...`` on stderr (``{"error": ...}`` on stdout with
``--json``), and a non-zero exit status, never a traceback.
"""
from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:
    from .common import Options

USAGE = """Usage: pybpf [OPTIONS] OBJECT { COMMAND | help }
       pybpf version

       pybpf exporter --config.dir DIR --config.names NAMES ...   (pybpf exporter --help)

       OBJECT := { prog | map | link | cgroup | net | feature | btf | struct_ops }
       OPTIONS := { {-j|--json} [{-p|--pretty}] | {-d|--debug} | {-f|--bpffs} | --trace |
                    {-V|--version} }
"""

OBJECTS = ("prog", "map", "link", "cgroup", "net", "feature", "btf", "struct_ops", "version",
           "help")
_LONG = {"--json": "j", "--pretty": "p", "--bpffs": "f", "--debug": "d", "--version": "V",
         "--help": "h", "--trace": "trace"}
_SHORT = set("jpfdVh")


def _parse_options(argv: list[str]) -> tuple[Options, list[str], set[str]]:
    """Options may come anywhere (as with GNU getopt); ``--`` ends them. Returns the options,
    the other words, and the option letters seen."""
    from .common import CLIError, Options
    opts = Options()
    words: list[str] = []
    flags: set[str] = set()
    rest = iter(argv)
    for word in rest:
        if word == "--":
            words.extend(rest)
            break
        if word in _LONG:
            flags.add(_LONG[word])
        elif word.startswith("-") and len(word) > 1 and not word[1].isdigit() \
                and not word.startswith("--") and set(word[1:]) <= _SHORT:
            flags.update(word[1:])
        elif word.startswith("-") and len(word) > 1 and not word[1].isdigit():
            raise CLIError(f"unrecognized option '{word}'")
        else:
            words.append(word)
    opts.json = "j" in flags or "p" in flags
    opts.pretty = "p" in flags
    opts.bpffs = "f" in flags
    opts.debug = "d" in flags
    opts.trace = "trace" in flags
    return opts, words, flags


def _version(opts: Options) -> int:
    from .. import __version__
    from .common import emit
    if opts.json:
        emit({"version": __version__, "features": {"pure_python": True}}, opts)
    else:
        opts.out.write(f"pybpf v{__version__}\n")
    return 0


def _run(argv: list[str]) -> int:
    if argv[:1] == ["exporter"]:  # ebpf_exporter's own flags, parsed by its package
        from ..exporter.cli import main as exporter
        return exporter(argv[1:])
    from .common import Args, CLIError
    opts, words, flags = _parse_options(argv)
    if "V" in flags:
        return _version(opts)
    if "h" in flags or not words or "help".startswith(words[0]):
        sys.stderr.write(USAGE)
        return 0 if words or "h" in flags else 255
    obj = next((o for o in OBJECTS if o.startswith(words[0])), None)
    if obj is None:
        raise CLIError(f"unknown object '{words[0]}'; objects: {', '.join(OBJECTS[:-2])}")
    if obj == "version":
        return _version(opts)
    import importlib
    module = importlib.import_module(f".{obj}", __name__)
    if not opts.trace:
        return module.main(Args(words[1:], obj), opts)
    from ..sys import trace
    with trace.tracing(sys.stderr):
        return module.main(Args(words[1:], obj), opts)


def _message(e: Exception, debug: bool) -> tuple[str, int]:
    """The one-line error text and exit status for any failure."""
    from ..errors import BPFError, VerifierError
    from .common import CLIError, errno_code
    if isinstance(e, CLIError):
        return str(e), e.code
    if isinstance(e, VerifierError):
        if e.log and debug:
            sys.stderr.write(e.log.rstrip("\n") + "\n")
        return e.strerror or "", errno_code(e.errno)
    if isinstance(e, BPFError):
        return str(e), errno_code(e.errno)
    if isinstance(e, OSError):
        return f"{e.filename}: {e.strerror}" if e.filename else (e.strerror or str(e)), 255
    return str(e) or type(e).__name__, 255


def main(argv: Optional[list[str]] = None) -> int:
    """Run ``pybpf`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    args = sys.argv[1:] if argv is None else list(argv)
    short = [set(a[1:]) for a in args if a.startswith("-") and not a.startswith("--")]
    json_mode = any(a in ("--json", "--pretty") for a in args) or \
        any(f <= _SHORT and f & {"j", "p"} for f in short)
    try:
        return _run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `pybpf ... | head`: stop quietly, without a flush error at exit
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # every failure becomes one line, never a traceback
        debug = "--debug" in args or any(f <= _SHORT and "d" in f for f in short)
        message, code = _message(e, debug)
        message = " ".join(message.split("\n"))
        if json_mode:
            import json
            sys.stdout.write(json.dumps({"error": message}, separators=(",", ":")) + "\n")
        else:
            sys.stderr.write(f"Error: {message}\n")
        return code


if __name__ == "__main__":
    sys.exit(main())
