/* The USDT probe without a semaphore of probe_target.c (sdt.h decides per translation unit). */
#include <sys/sdt.h>

void plain_probe(int i);

__attribute__((noinline)) void plain_probe(int i)
{
	STAP_PROBE1(pybpf, plain, i);
}
