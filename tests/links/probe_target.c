/* User-space target of the uprobe and USDT tests (built with cc by the tests' fixture).
 *
 * probe_target N [wait]: with "wait", first blocks until a byte arrives on stdin (so a test can
 * attach to this very pid). Then N times: calls pybpf_uprobe_target(i), getpid() (libc), and
 * fires USDT pybpf:hit(i, sum, -7) if its semaphore is set, and pybpf:plain(i) (no semaphore).
 * Prints how many times the semaphore was seen set.
 */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/sdt.h>

__extension__ unsigned short pybpf_hit_semaphore __attribute__((unused, section(".probes")));

void plain_probe(int i);

__attribute__((noinline)) long pybpf_uprobe_target(int i)
{
	__asm__ volatile("" ::: "memory");
	return 2L * i;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1;
	long sum = 0;
	int enabled = 0;
	char c;

	if (argc > 2 && read(0, &c, 1) != 1)
		return 2;
	for (int i = 0; i < n; i++) {
		sum += pybpf_uprobe_target(i);
		sum += getpid() != 0;
		if (pybpf_hit_semaphore) {
			enabled++;
			STAP_PROBE3(pybpf, hit, i, sum, -7);
		}
		plain_probe(i);
	}
	printf("%d\n", enabled);
	return 0;
}
