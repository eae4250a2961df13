"""The implicit probe-read rewrite: loads through kernel pointers in tracing programs become
bpf_probe_read_kernel, checked on the translated text and by running the programs on real
syscalls of this process."""
from __future__ import annotations

import os
import struct

import pytest

from pybpf.bcc.build import build
from pybpf.bcc.dialect import DialectError, translate
from pybpf.elf import ObjectSpec, load

KREAD = "__PYBPF_KREAD("

TASK = r"""
#include <linux/sched.h>
struct info_t { u32 tgid; u32 ppid; u32 via_static; u32 via_map; u64 fd_arg; char comm[16]; };
BPF_HASH(info, u32, struct info_t, 4);
BPF_HASH(tasks, u32, struct task_struct *, 4);

static u32 parent_of(struct task_struct *t) {
    return t->real_parent->tgid;
}

RAW_TRACEPOINT_PROBE(sys_enter) {
    u32 me = bpf_get_current_pid_tgid() >> 32;
    if (me != WANT_TGID)
        return 0;
    struct pt_regs *regs = (struct pt_regs *)ctx->args[0];
    if (ctx->args[1] != WANT_NR)
        return 0;
    u64 fd = PT_REGS_PARM1(regs);
    if ((u32)fd != 987654)          /* this test's close(987654), not pybpf's own closes */
        return 0;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct info_t i = {};
    i.tgid = task->tgid;
    i.ppid = task->real_parent->tgid;
    i.via_static = parent_of(task);
    u32 zero = 0;
    tasks.update(&zero, &task);
    struct task_struct **tp = tasks.lookup(&zero);
    if (tp) {
        struct task_struct *again = *tp;
        i.via_map = again->tgid;
    }
    i.fd_arg = fd;
    bpf_probe_read_kernel_str(&i.comm, sizeof(i.comm), task->comm);
    info.update(&zero, &i);
    return sizeof(task->pid) + (&task->pid != 0);
}
"""


@pytest.fixture(scope="module")
def task_translation():
    import platform
    nr = {"x86_64": 3, "aarch64": 57}.get(platform.machine())   # close(2)
    if nr is None:
        pytest.skip(f"close(2)'s number on {platform.machine()} not in this test")
    return translate(TASK, [f"-DWANT_TGID={os.getpid()}", f"-DWANT_NR={nr}"])


def test_rewritten_text(task_translation):
    src = task_translation.source
    assert "i.ppid = __PYBPF_KREAD(__PYBPF_KREAD(task->real_parent)->tgid);" in src
    assert "i.tgid = __PYBPF_KREAD(task->tgid);" in src
    assert "return __PYBPF_KREAD(__PYBPF_KREAD(t->real_parent)->tgid);" in src  # static fn
    assert "i.via_map = __PYBPF_KREAD(again->tgid);" in src                     # map value
    assert "struct task_struct *again = *tp;" in src        # the map value itself: direct
    assert "u64 fd = __PYBPF_KREAD(PT_REGS_PARM1(regs));" in src  # regs: from the context
    # arrays (addresses), & and sizeof read nothing; the context and the stack are direct
    assert "task->comm)" in src and KREAD + "task->comm" not in src
    assert "sizeof(task->pid) + (&task->pid != 0)" in src
    assert "(struct pt_regs *)ctx->args[0];" in src and "i.tgid =" in src
    assert task_translation.user_line(
        src.splitlines().index("    i.ppid = __PYBPF_KREAD(__PYBPF_KREAD(task->real_parent)"
                               "->tgid);") + 1) == TASK.splitlines().index(
        "    i.ppid = task->real_parent->tgid;") + 1


def test_rewritten_reads_run_on_real_syscalls(task_translation):
    with load(ObjectSpec.from_file(build(task_translation,
                                    [f"-DWANT_TGID={os.getpid()}", "-DWANT_NR=" +
                                     ("3" if os.uname().machine == "x86_64" else "57")]))) as coll:
        with coll.programs["raw_tracepoint__sys_enter"].attach():
            try:
                os.close(987654)
            except OSError:
                pass
        i = coll.maps["info"].lookup(struct.pack("<I", 0))
    if isinstance(i, (bytes, bytearray)):    # a map without BTF decoding: struct info_t
        tgid, ppid, via_static, via_map, fd_arg = struct.unpack_from("<IIIIQ", i)
        comm = i[24:40].split(b"\0")[0].decode()
    else:                                    # decoded by the map's BTF
        tgid, ppid, via_static, via_map, fd_arg, comm = (
            i.tgid, i.ppid, i.via_static, i.via_map, i.fd_arg, i.comm)
    assert (tgid, ppid, via_static, via_map) == (os.getpid(), os.getppid(), os.getppid(),
                                                 os.getpid())
    assert fd_arg & 0xFFFFFFFF == 987654
    with open(f"/proc/{os.getpid()}/comm") as f:
        assert comm == f.read().strip()[:15]


def test_kprobe_parameters_and_syscall_arguments_verify():
    """kprobe programs with pointer parameters (argument registers) and syscall__ functions
    (the user's registers behind the syscall wrapper) pass the verifier."""
    text = r"""
int kprobe__vfs_read(struct pt_regs *ctx, struct file *file, char *buf, size_t count) {
    struct dentry *d = file->f_path.dentry;
    u32 len = d->d_name.len;
    return len + file->f_inode->i_ino + count;
}
int syscall__openat(struct pt_regs *ctx, int dfd, const char __user *filename, int flags) {
    char name[32];
    bpf_probe_read_user_str(name, sizeof(name), filename);
    return dfd + flags + name[0];
}
"""
    tr = translate(text)
    assert "u32 len = __PYBPF_KREAD(d->d_name.len);" in tr.source
    assert "__PYBPF_KREAD(__PYBPF_KREAD(file->f_inode)->i_ino)" in tr.source
    assert "__PYBPF_KREAD(PT_REGS_PARM2(__PYBPF_SYSCALL_REGS(ctx)))" in tr.source
    assert tr.functions["syscall__openat"].is_syscall
    with load(ObjectSpec.from_file(build(tr))) as coll:
        assert set(coll.programs) == {"kprobe__vfs_read", "syscall__openat"}


def test_read_in_a_macro_body_is_an_error():
    text = "#define PID_OF(t) t->pid\nint kprobe__f(struct pt_regs *ctx) {\n" \
           "  struct task_struct *t = (void *)bpf_get_current_task();\n" \
           "  return PID_OF(t);\n}\n"
    with pytest.raises(DialectError, match=r"line 4: .*macro"):
        translate(text)


def test_networking_programs_not_rewritten():
    text = "int f(struct xdp_md *ctx) {\n  struct ethhdr *eth = (void *)(long)ctx->data;\n" \
           "  if ((void *)(eth + 1) > (void *)(long)ctx->data_end) return 0;\n" \
           "  return eth->h_proto;\n}\n"
    assert KREAD not in translate(text).source


MNT_NS = r"""
#include <linux/sched.h>
#include <linux/nsproxy.h>
/* as BCC tools do: a private kernel struct defined by the program itself */
struct mnt_namespace {
#if LINUX_VERSION_CODE < KERNEL_VERSION(5, 11, 0)
    atomic_t count;
#endif
    struct ns_common ns;
};
BPF_ARRAY(found, u64, 1);
RAW_TRACEPOINT_PROBE(sys_enter) {
    if ((bpf_get_current_pid_tgid() >> 32) != WANT_TGID)
        return 0;
    struct task_struct *task = (struct task_struct *)bpf_get_current_task();
    struct mnt_namespace *mnt = (struct mnt_namespace *)task->nsproxy->mnt_ns;
    u64 inum = mnt->ns.inum;
    int zero = 0;
    found.update(&zero, &inum);
    return 0;
}
"""


def test_program_redefining_a_kernel_struct():
    """A program's own definition of a struct vmlinux.h has (BCC tools define struct
    mnt_namespace) compiles, and its code reads through the program's layout."""
    flags = [f"-DWANT_TGID={os.getpid()}"]
    tr = translate(MNT_NS, flags)
    assert "__PYBPF_KREAD(mnt->ns.inum)" in tr.source
    with load(ObjectSpec.from_file(build(tr, flags))) as coll:
        with coll.programs["raw_tracepoint__sys_enter"].attach():
            os.getppid()
        got = coll.maps["found"].lookup(struct.pack("<I", 0))
    inum = struct.unpack("<Q", got)[0] if isinstance(got, (bytes, bytearray)) else got
    assert inum == os.stat("/proc/self/ns/mnt").st_ino


USDT = r"""
/* what a USDT context's get_text() provides for probe function "on_probe" */
static __always_inline int _bpf_readarg_on_probe_1(struct pt_regs *ctx, void *dest,
                                                   size_t len) {
    if (len != sizeof(u64)) return -1;
    *(u64 *)dest = ctx->di;
    return 0;
}
BPF_HASH(args, u32, u64, 4);
int on_probe(struct pt_regs *ctx) {
    u64 v = 0;
    char buf[16];
    bpf_usdt_readarg(1, ctx, &v);
    bpf_usdt_readarg_p(1, ctx, &buf, sizeof(buf));
    u32 k = 0;
    args.update(&k, &v);
    return buf[0];
}
"""


def test_usdt_argument_reads():
    import platform
    if platform.machine() != "x86_64":
        pytest.skip("the hand-written reader reads x86_64's pt_regs")
    tr = translate(USDT, kind_of={"on_probe": "uprobe"})
    assert "_bpf_readarg_on_probe_1(ctx, &v, sizeof(*(&v)))" in tr.source
    assert "bpf_probe_read_user(&buf, sizeof(buf), (void *)____addr)" in tr.source
    with load(ObjectSpec.from_file(build(tr))) as coll:
        assert "on_probe" in coll.programs
    with pytest.raises(DialectError, match=r"line 2: bpf_usdt_readarg\(\) must be called in "
                                           r"the probe's own function, not in helper\(\)"):
        translate("static int helper(struct pt_regs *ctx) {\n u64 v; "
                  "bpf_usdt_readarg(1, ctx, &v); return v; }\n")


LEVELS = r"""
#include <net/inet_sock.h>
struct holder { struct sock *sk; };
static struct sock **same(struct sock **skp) { return skp; }
static unsigned char *transport(struct sk_buff *skb) {
    return skb->head + skb->transport_header;
}
int levels(struct pt_regs *ctx, struct sock *sk, struct sk_buff *skb) {
    struct sock *p1;
    struct sock **p2 = &p1;
    struct sock ***p3 = &p2;
    *p2 = sk;
    u32 a = ((struct sock *)(**p3))->sk_daddr;
    struct holder h = {};
    struct holder *hp = &h;
    hp->sk = sk;
    u16 b = h.sk->sk_dport;
    u32 c = (*same(&sk))->sk_rcv_saddr;
    struct tcphdr *th = (struct tcphdr *)transport(skb);
    return a + b + c + th->dest;
}
"""


def test_pointer_levels_fields_and_returns():
    """Kernel pointers kept behind pointers to locals (any depth), in fields of local structs
    and returned by static functions are followed; sock field aliases expand as in the
    kernel's net/sock.h; the program passes the verifier."""
    src = translate(LEVELS).source
    assert "u32 a = __PYBPF_KREAD(((struct sock *)(**p3))->sk_daddr);" in src
    assert "u16 b = __PYBPF_KREAD(h.sk->sk_dport);" in src
    assert "u32 c = __PYBPF_KREAD((*same(&sk))->sk_rcv_saddr);" in src
    assert "return __PYBPF_KREAD(skb->head) + __PYBPF_KREAD(skb->transport_header);" in src
    assert "+ __PYBPF_KREAD(th->dest);" in src
    assert "*p2 = sk;" in src and "hp->sk = sk;" in src        # stores to the stack: direct
    with load(ObjectSpec.from_file(build(translate(LEVELS)))) as coll:
        assert "levels" in coll.programs


CURSOR = r"""
#include <bcc/proto.h>
int rewrite_ip(struct __sk_buff *skb) {
    u8 *cursor = 0;
    struct ethernet_t *ethernet = cursor_advance(cursor, sizeof(*ethernet));
    if (ethernet->type != ETH_P_IP)
        return -1;
    struct ip_t *ip = cursor_advance(cursor, sizeof(*ip));
    u32 old_src = ip->src, new_src = ip->dst;
    ip->src = new_src;
    incr_cksum_l3(&ip->hchecksum, old_src, new_src);
    if (ip->nextp == IPPROTO_TCP) {
        struct tcp_t *tcp = cursor_advance(cursor, sizeof(*tcp));
        tcp->flag_fin = 1;
        return tcp->dst_port * 10 + tcp->flag_syn;
    }
    return ip->ver * 100 + ip->hlen;
}
"""


def test_packet_cursor_fields():
    """bcc/proto.h's header structs through a packet cursor: reads (bytes, words, bit fields)
    become bpf_dext_pkt, writes bpf_dins_pkt, incr_cksum_l3 updates the checksum; a tc program
    run with BPF_PROG_TEST_RUN."""
    tr = translate(CURSOR, kind_of={"rewrite_ip": "sched_cls"})
    assert "if (bpf_dext_pkt(skb, (u64)(ethernet) + 12, 0, 16) != ETH_P_IP)" in tr.source
    assert "bpf_dins_pkt(skb, (u64)(ip) + 12, 0, 32, (new_src));" in tr.source
    assert "__pybpf_incr_cksum_l3(skb, &ip->hchecksum, old_src, new_src);" in tr.source

    def checksum(header: bytes) -> int:
        total = sum(struct.unpack(f">{len(header) // 2}H", header))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return total
    eth = b"\x02" * 6 + b"\x04" * 6 + b"\x08\x00"
    ip = bytes([0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2])
    ip = ip[:10] + struct.pack(">H", 0xFFFF - checksum(ip)) + ip[12:]
    tcp = struct.pack(">HHIIBBHHH", 1234, 443, 1, 0, 0x50, 0x02, 1024, 0, 0)   # SYN
    packet = eth + ip + tcp + b"\0" * 10
    with load(ObjectSpec.from_file(build(tr))) as coll:
        res = coll.programs["rewrite_ip"].test_run(packet, data_out_size=len(packet) + 64)
    assert res.retval == 443 * 10 + 1
    out = res.data_out
    assert out[26:30] == bytes([10, 0, 0, 2]) and out[30:34] == bytes([10, 0, 0, 2])
    assert out[14 + 20 + 13] == 0x03                      # FIN set next to SYN
    assert out[:24] == packet[:24] and out[34:47] == packet[34:47]
    assert out[24:26] != packet[24:26] and checksum(out[14:34]) == 0xFFFF   # still valid
