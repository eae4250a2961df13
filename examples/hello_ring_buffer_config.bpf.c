// SPDX-License-Identifier: GPL-2.0
/* "Learning eBPF", chapter 4: hello_ring_buffer_config, hello_buffer_config with a ring buffer. */
#define USE_RINGBUF
#include "hello_buffer_config.bpf.c"
