/* pybpf: the C types a BPF program needs (uint32_t, size_t, bool...) come from the
 * running kernel's vmlinux.h, which every BCC program includes first. */
