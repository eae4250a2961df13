"""The ``pybpf`` command (bpftool grammar); for now it prints the version."""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from .. import __version__
    args = sys.argv[1:] if argv is None else argv
    if args in ([], ["version"], ["-V"], ["--version"]):
        print(f"pybpf v{__version__}")
        return 0
    print(f"Error: the pybpf command line is not built yet (got: {' '.join(args)})", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
