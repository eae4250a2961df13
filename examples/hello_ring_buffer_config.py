#!/usr/bin/env python3
"""hello_ring_buffer_config: hello_buffer_config with a BPF ring buffer instead of a perf
buffer (same options)."""
import sys

from hello_buffer_config import main

if __name__ == "__main__":
    sys.exit(main(ring=True))
