"""pybpf: eBPF for Python, straight on the bpf() system call."""
__version__ = "0.1.0"
