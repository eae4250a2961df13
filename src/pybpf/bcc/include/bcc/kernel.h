/* Macros and inline accessors of kernel headers that BCC programs use and BTF cannot carry
 * (they are not types): block-layer request operations, device numbers, min/max (socket
 * field aliases are in bcc/sock.h). Defined after vmlinux.h, so they only affect the
 * program's own text. */
#ifndef __PYBPF_BCC_KERNEL_H
#define __PYBPF_BCC_KERNEL_H

/* block layer requests: the operation in the low bits of cmd_flags / bi_opf */
#define REQ_OP_BITS 8
#define REQ_OP_MASK ((1 << REQ_OP_BITS) - 1)
#define req_op(req) ((req)->cmd_flags & REQ_OP_MASK)
#define bio_op(bio) ((bio)->bi_opf & REQ_OP_MASK)

/* device numbers (include/linux/kdev_t.h) */
#define MINORBITS 20
#define MINORMASK ((1U << MINORBITS) - 1)
#define MAJOR(dev) ((unsigned int)((dev) >> MINORBITS))
#define MINOR(dev) ((unsigned int)((dev) & MINORMASK))
#define MKDEV(ma, mi) (((ma) << MINORBITS) | (mi))

/* IPv6 address views (uapi/linux/in6.h) */
#define s6_addr in6_u.u6_addr8
#define s6_addr16 in6_u.u6_addr16
#define s6_addr32 in6_u.u6_addr32

/* scatterlist chaining (include/linux/scatterlist.h), reading the kernel's list */
#define SG_CHAIN 0x01UL
#define SG_END 0x02UL
#define __PYBPF_SG_LINK(sg) ({ unsigned long ____l = 0; \
	bpf_probe_read_kernel(&____l, sizeof(____l), &(sg)->page_link); ____l; })
#define sg_is_chain(sg) ((__PYBPF_SG_LINK(sg) & SG_CHAIN) != 0)
#define sg_is_last(sg) ((__PYBPF_SG_LINK(sg) & SG_END) != 0)
#define sg_chain_ptr(sg) ((struct scatterlist *)(__PYBPF_SG_LINK(sg) & ~(SG_CHAIN | SG_END)))

#ifndef min
#define min(x, y) ({ __typeof__(x) ____x = (x); __typeof__(y) ____y = (y); \
	____x < ____y ? ____x : ____y; })
#define max(x, y) ({ __typeof__(x) ____x = (x); __typeof__(y) ____y = (y); \
	____x > ____y ? ____x : ____y; })
#endif
#define min_t(type, x, y) ({ type ____x = (x); type ____y = (y); ____x < ____y ? ____x : ____y; })
#define max_t(type, x, y) ({ type ____x = (x); type ____y = (y); ____x > ____y ? ____x : ____y; })

static __always_inline u64 div_u64(u64 dividend, u32 divisor)
{
	return dividend / divisor;
}

#endif /* __PYBPF_BCC_KERNEL_H */
