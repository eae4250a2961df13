/* pybpf: kernel types come from the BCC runtime (vmlinux.h); this header brings
 * net/sock.h's field aliases and socket casts. */
#include <bcc/sock.h>
