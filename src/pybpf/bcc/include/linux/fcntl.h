/* pybpf: kernel types and constants come from the BCC runtime (vmlinux.h + bcc/runtime.h),
 * which every program includes first. */
