#include <linux/sched.h>
#include <net/sock.h>
#include <uapi/linux/ptrace.h>
#include <linux/fs.h>
#include <bcc/proto.h>
#include <stdint.h>
#include <stdbool.h>
#include <stddef.h>
