/* libbpf peer of benchmarks/startup.py: open and load hello_ring_buffer_config.bpf.o, attach
 * its tracepoint program, set up the ring buffer, run /bin/true, and print "first event" when
 * that execve's record arrives. Usage: startup-peer OBJ */
#include <bpf/libbpf.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static int got;

static int on_event(void *ctx, void *data, size_t size)
{
	got = 1;
	return 1; /* stop consuming */
}

int main(int argc, char **argv)
{
	struct bpf_object *obj;
	struct bpf_program *prog;
	struct bpf_link *link;
	struct ring_buffer *rb;
	pid_t child;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OBJ\n", argv[0]);
		return 2;
	}
	obj = bpf_object__open_file(argv[1], NULL);
	if (!obj)
		return 1;
	bpf_program__set_autoload(bpf_object__find_program_by_name(obj, "hello_kprobe"), false);
	if (bpf_object__load(obj))
		return 1;
	prog = bpf_object__find_program_by_name(obj, "hello_tp");
	link = bpf_program__attach(prog);
	if (!link)
		return 1;
	rb = ring_buffer__new(bpf_object__find_map_fd_by_name(obj, "output"), on_event, NULL, NULL);
	if (!rb)
		return 1;
	child = fork();
	if (child == 0) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	while (!got)
		if (ring_buffer__poll(rb, 1000) < 0)
			return 1;
	printf("first event\n");
	fflush(stdout);
	waitpid(child, NULL, 0);
	ring_buffer__free(rb);
	bpf_link__destroy(link);
	bpf_object__close(obj);
	return 0;
}
