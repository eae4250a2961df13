"""``python -m pybpf.exporter ...``: the same as ``pybpf exporter ...``."""
import sys

from ..cli import main

sys.exit(main(["exporter", *sys.argv[1:]]))
