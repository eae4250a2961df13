"""BCC's ``bcc.libbcc``: ctypes bindings of libbcc's C functions (``lib.bpf_prog_attach``,
``lib.bcc_symcache_resolve``...). pybpf has no libbcc, so importing it is an error that says
what to use instead."""
raise ImportError(
    "bcc.libbcc (`lib`, ctypes bindings of libbcc's C functions) is not available in pybpf's "
    "BCC front end, which runs without libbcc: use the BPF class's methods, or pybpf's own API "
    "for what they lack (pybpf.links: attach_cgroup, attach_sockmap...; pybpf.symbols)",
    name="bcc.libbcc")
