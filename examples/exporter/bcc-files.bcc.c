// BCC's C dialect, compiled at start by pybpf's BCC front end (no .bpf.o needed): failed
// openat() calls by command name and errno, and a log2 histogram of the bytes read() returns.
// TRACEPOINT_PROBE functions attach themselves, as in BCC.

struct open_failure {
	char comm[16];
	u32 err;
};

BPF_HASH(bcc_open_failures_total, struct open_failure, u64, 4096);
BPF_HISTOGRAM(bcc_read_bytes);   /* slot k: reads of 2^(k-1) to 2^k - 1 bytes */

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
	struct open_failure key = {};

	if (args->ret >= 0)
		return 0;
	key.err = -args->ret;
	bpf_get_current_comm(&key.comm, sizeof(key.comm));
	bcc_open_failures_total.increment(key);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_read)
{
	if (args->ret > 0)
		bcc_read_bytes.increment(bpf_log2l(args->ret));
	return 0;
}
