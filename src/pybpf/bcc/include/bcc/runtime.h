/* pybpf's runtime for BCC-dialect programs, included (precompiled) after vmlinux.h.
 * Everything a BCC program expects besides kernel types: map definition macros, register
 * access, byte order, the printk wrapper, small helpers and constants that BTF lacks.
 * Helper declarations come from helpers.h, generated from pybpf.sys.uapi.Helper. */
#ifndef __PYBPF_BCC_RUNTIME_H
#define __PYBPF_BCC_RUNTIME_H

#ifndef SEC
#define SEC(name) __attribute__((section(name), used))
#endif
#define __uint(name, val) int (*name)[val]
#define __type(name, val) __typeof__(val) *name
#define __array(name, val) __typeof__(val) *name[]

#define __user
#define __kernel
#define __force
#define __iomem
#define __rcu
#define __percpu
#define __bitwise
#define __must_check
#ifndef __always_inline
#define __always_inline inline __attribute__((always_inline))
#endif
#ifndef __noinline
#define __noinline __attribute__((noinline))
#endif
#ifndef __weak
#define __weak __attribute__((weak))
#endif
#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif
#ifndef offsetof
#define offsetof(type, member) __builtin_offsetof(type, member)
#endif
#ifndef container_of
#define container_of(ptr, type, member) \
	((type *)((char *)(ptr) - __builtin_offsetof(type, member)))
#endif
#ifndef NULL
#define NULL ((void *)0)
#endif
#ifndef READ_ONCE
#define READ_ONCE(x) (*(volatile __typeof__(x) *)&(x))
#define WRITE_ONCE(x, v) (*(volatile __typeof__(x) *)&(x) = (v))
#endif
/* the C library's memory functions, as compiler builtins (inlined for constant sizes) */
#define memset __builtin_memset
#define memcpy __builtin_memcpy
#define memmove __builtin_memmove
#define memcmp __builtin_memcmp
#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif

#define BPF_MAX_STACK_DEPTH 127
/* the value of a BPF_STACK_TRACE map: one frame per slot, zero-terminated */
struct bpf_stacktrace {
	u64 ip[BPF_MAX_STACK_DEPTH];
};
/* the value of a BPF_STACK_TRACE_BUILDID map: (build id, offset) frames */
struct bpf_stacktrace_buildid {
	struct bpf_stack_build_id trace[BPF_MAX_STACK_DEPTH];
};

/* perf_read()'s index of the running CPU's counter */
#define CUR_CPU_IDENTIFIER BPF_F_CURRENT_CPU

/* registers of struct pt_regs (kprobe context) by role */
#if defined(__TARGET_ARCH_x86)
#define PT_REGS_PARM1(x) ((x)->di)
#define PT_REGS_PARM2(x) ((x)->si)
#define PT_REGS_PARM3(x) ((x)->dx)
#define PT_REGS_PARM4(x) ((x)->cx)
#define PT_REGS_PARM5(x) ((x)->r8)
#define PT_REGS_PARM6(x) ((x)->r9)
#define __PT_REGS_SYSCALL_PARM4(x) ((x)->r10)
#define PT_REGS_RET(x) ((x)->sp)
#define PT_REGS_FP(x) ((x)->bp)
#define PT_REGS_RC(x) ((x)->ax)
#define PT_REGS_SP(x) ((x)->sp)
#define PT_REGS_IP(x) ((x)->ip)
#elif defined(__TARGET_ARCH_arm64)
#define PT_REGS_PARM1(x) ((x)->regs[0])
#define PT_REGS_PARM2(x) ((x)->regs[1])
#define PT_REGS_PARM3(x) ((x)->regs[2])
#define PT_REGS_PARM4(x) ((x)->regs[3])
#define PT_REGS_PARM5(x) ((x)->regs[4])
#define PT_REGS_PARM6(x) ((x)->regs[5])
#define __PT_REGS_SYSCALL_PARM4(x) ((x)->regs[3])
#define PT_REGS_RET(x) ((x)->regs[30])
#define PT_REGS_FP(x) ((x)->regs[29])
#define PT_REGS_RC(x) ((x)->regs[0])
#define PT_REGS_SP(x) ((x)->sp)
#define PT_REGS_IP(x) ((x)->pc)
#elif defined(__TARGET_ARCH_s390)
#define PT_REGS_PARM1(x) ((x)->gprs[2])
#define PT_REGS_PARM2(x) ((x)->gprs[3])
#define PT_REGS_PARM3(x) ((x)->gprs[4])
#define PT_REGS_PARM4(x) ((x)->gprs[5])
#define PT_REGS_PARM5(x) ((x)->gprs[6])
#define __PT_REGS_SYSCALL_PARM4(x) ((x)->gprs[5])
#define PT_REGS_RET(x) ((x)->gprs[14])
#define PT_REGS_FP(x) ((x)->gprs[11])
#define PT_REGS_RC(x) ((x)->gprs[2])
#define PT_REGS_SP(x) ((x)->gprs[15])
#define PT_REGS_IP(x) ((x)->psw.addr)
#elif defined(__TARGET_ARCH_riscv)
#define PT_REGS_PARM1(x) ((x)->a0)
#define PT_REGS_PARM2(x) ((x)->a1)
#define PT_REGS_PARM3(x) ((x)->a2)
#define PT_REGS_PARM4(x) ((x)->a3)
#define PT_REGS_PARM5(x) ((x)->a4)
#define PT_REGS_PARM6(x) ((x)->a5)
#define __PT_REGS_SYSCALL_PARM4(x) ((x)->a3)
#define PT_REGS_RET(x) ((x)->ra)
#define PT_REGS_FP(x) ((x)->s0)
#define PT_REGS_RC(x) ((x)->a0)
#define PT_REGS_SP(x) ((x)->sp)
#define PT_REGS_IP(x) ((x)->epc)
#endif
/* syscall arguments of a kprobe on a syscall wrapper (__x64_sys_*): the wrapper's first
 * argument is the user's pt_regs, read from kernel memory */
#define __PYBPF_SYSCALL_REGS(ctx) ((struct pt_regs *)PT_REGS_PARM1(ctx))
/* a load from kernel memory (the probe-read rewrite's): a zeroed stack copy, then the read */
#define __PYBPF_KREAD(expr) ({ \
	char ____b[sizeof(expr)] __attribute__((aligned(8))); \
	__builtin_memset(____b, 0, sizeof(____b)); \
	bpf_probe_read_kernel(____b, sizeof(____b), (const void *)&(expr)); \
	*(__typeof__(expr) *)____b; })

/* byte order (BPF is little endian on these targets: bpfel) */
#define bpf_htons(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define bpf_ntohs(x) ((__u16)__builtin_bswap16((__u16)(x)))
#define bpf_htonl(x) ((__u32)__builtin_bswap32((__u32)(x)))
#define bpf_ntohl(x) ((__u32)__builtin_bswap32((__u32)(x)))
#define bpf_htonll(x) ((__u64)__builtin_bswap64((__u64)(x)))
#define bpf_ntohll(x) ((__u64)__builtin_bswap64((__u64)(x)))
#define bpf_be64_to_cpu(x) bpf_ntohll(x)
#define bpf_cpu_to_be64(x) bpf_htonll(x)
#ifndef htons
#define htons(x) bpf_htons(x)
#define ntohs(x) bpf_ntohs(x)
#define htonl(x) bpf_htonl(x)
#define ntohl(x) bpf_ntohl(x)
#endif

/* bpf_trace_printk with a literal format, any number of arguments up to three */
#define bpf_trace_printk(fmt, ...) ({ char ____fmt[] = fmt; \
	bpf_trace_printk(____fmt, sizeof(____fmt), ##__VA_ARGS__); })

#define lock_xadd(ptr, val) ((void)__sync_fetch_and_add(ptr, val))

/* packet loads of socket filters (classic BPF's ld_abs/ld_ind), big endian */
unsigned long long load_byte(void *skb, unsigned long long off) asm("llvm.bpf.load.byte");
unsigned long long load_half(void *skb, unsigned long long off) asm("llvm.bpf.load.half");
unsigned long long load_word(void *skb, unsigned long long off) asm("llvm.bpf.load.word");

/* floor(log2(v)) for v > 0, 0 for 0 */
static __always_inline unsigned int bpf_log2(unsigned int v)
{
	unsigned int r = (v > 0xFFFF) << 4; v >>= r;
	unsigned int s = (v > 0xFF) << 3; v >>= s; r |= s;
	s = (v > 0xF) << 2; v >>= s; r |= s;
	s = (v > 0x3) << 1; v >>= s; r |= s;
	r |= (v >> 1);
	return r;
}

/* BCC's log2 histogram slot: floor(log2(v)) + 1, 0 for 0 */
static __always_inline unsigned int bpf_log2l(unsigned long v)
{
	unsigned int hi = v >> 32;
	if (hi)
		return bpf_log2(hi) + 32 + 1;
	return bpf_log2(v) + (v != 0);
}

/* __data_loc fields of tracepoint records: offset in the low 16 bits, length in the high */
#define TP_DATA_LOC_READ_CONST(dst, field, length) do { \
	unsigned short __off = args->data_loc_##field & 0xFFFF; \
	bpf_probe_read((void *)dst, length, (char *)args + __off); \
} while (0)
#define TP_DATA_LOC_READ(dst, field) do { \
	unsigned short __off = args->data_loc_##field & 0xFFFF; \
	unsigned short __len = (args->data_loc_##field >> 16) & 0xFFFF; \
	bpf_probe_read((void *)dst, __len, (char *)args + __off); \
} while (0)
#define TP_DATA_LOC_READ_STR(dst, field, length) do { \
	unsigned short __off = args->data_loc_##field & 0xFFFF; \
	bpf_probe_read_str((void *)dst, length, (char *)args + __off); \
} while (0)

#define __PYBPF_STRINGIFY2(x) #x
#define __PYBPF_STRINGIFY(x) __PYBPF_STRINGIFY2(x)

#define KERNEL_VERSION(a, b, c) (((a) << 16) + ((b) << 8) + ((c) > 255 ? 255 : (c)))

#include <bcc/constants.h>
#include <bcc/kernel.h>

#endif /* __PYBPF_BCC_RUNTIME_H */
