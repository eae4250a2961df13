"""``python -m pybpf.cli``: the ``pybpf`` command."""
import sys

from . import main

sys.exit(main())
