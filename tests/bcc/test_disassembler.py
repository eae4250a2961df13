"""bcc.disassembler: BCC's notation for instructions (hand-encoded here, checked against the
text BCC's own disassembler gives for them), ``BPF.disassemble_func`` with a map's fd in its
64-bit load, and ``BPF.decode_table``'s C layout of a packed struct with bitfields."""
from __future__ import annotations

import re
import struct

import pytest

from pybpf.bcc import BPF
from pybpf.bcc.disassembler import disassemble_prog, disassemble_str


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, dst | src << 4, off, imm)


@pytest.mark.parametrize("raw, text", [
    (insn(0x07, dst=3, imm=-8), "r3 += -8"),                  # ALU64 ADD K
    (insn(0x04, dst=1, imm=5), "r1 += 5"),                    # ALU (32-bit): still r1
    (insn(0x4f, dst=2, src=7), "r2 |= r7"),
    (insn(0x54, dst=4, imm=-1), "r4 &= 0xffffffff"),          # AND/OR/XOR K: hex
    (insn(0xa7, dst=4, imm=0x10), "r4 ^= 0x10"),
    (insn(0xc7, dst=5, imm=3), "r5 s>>= 3"),
    (insn(0xbf, dst=6, src=1), "r6 = r1"),
    (insn(0xb4, dst=0, imm=-2), "r0 = -2"),
    (insn(0x84, dst=9), "r9 = ~ (u32)r9"),                    # NEG
    (insn(0x87, dst=9), "r9 = ~ (u64)r9"),
    (insn(0xdc, dst=1, src=0, imm=16), "r1 endian r0"),
    (insn(0x05, off=-3), "goto -3 <-2>"),
    (insn(0x1d, dst=1, src=2, off=4), "if r1 == r2 goto pc+4 <5>"),
    (insn(0x65, dst=3, off=-1, imm=-7), "if r3 s> -7 goto pc-1 <0>"),
    (insn(0xdd, dst=1, src=2, off=1), "if r1 s<= r2 goto pc+1 <2>"),
    (insn(0x45, dst=0, imm=4, off=2), "if r0 & 4 goto pc+2 <3>"),
    (insn(0x20, imm=12), "r0 = *(u32*)skb[12]"),              # LD ABS
    (insn(0x50, src=6, imm=-2), "r0 = *(u8*)skb[r6 -2]"),     # LD IND
    (insn(0x79, dst=1, src=10, off=-16), "r1 = *(u64*)(r10 -16)"),
    (insn(0x6a, dst=10, off=-4, imm=9), "*(u16*)(r10 -4) = 9"),
    (insn(0x73, dst=2, src=3, off=7), "*(u8*)(r2 +7) = r3"),
    (insn(0x85, imm=1), "call bpf_map_lookup_elem#1"),
    (insn(0x85, src=1, imm=-12), "call -12"),                 # a subprogram
    (insn(0x85, imm=0x7FFF), "call <unknown helper #32767>"),
    (insn(0x95), "exit"),
])
def test_bcc_notation(raw: bytes, text: str) -> None:
    assert disassemble_str(raw) == [f"   0: ({raw[0]:02x}) {text}"]


def test_64_bit_loads_and_forms_bcc_lacks() -> None:
    code = (insn(0x18, dst=1, src=1, imm=5) + insn(0) +           # map fd 5
            insn(0x18, dst=2, imm=0x89ABCDEF - (1 << 32)) + insn(0, imm=0x1234) +
            insn(0xdb, dst=0, src=6) +                            # atomic add: bpftool's text
            insn(0x16, dst=1, off=2, imm=3))                      # JMP32: likewise
    assert disassemble_str(code) == [
        "   0: (18) r1 = <map at fd #5>",
        "   1:      (64-bit upper word)",
        "   2: (18) r2 = 0x123489abcdef",
        "   3:      (64-bit upper word)",
        "   4: (db) lock *(u64 *)(r0 +0) += r6",
        "   5: (16) if w1 == 0x3 goto pc+2",
    ]
    assert disassemble_prog("f", insn(0x95)).splitlines() == [
        "Disassemble of BPF program f:", "   0: (95) exit"]


PROGRAM = b"""
struct key_t { int a; short b; struct { int c:4; int d:8; } e; } __attribute__((__packed__));
BPF_HASH(packed, struct key_t);
BPF_ARRAY(counts, u64, 4);
int one(void *ctx) { return 1; }
int count(void *ctx)
{
    int k = 2;
    u64 *v = counts.lookup(&k);
    if (v)
        *v += 1;
    return 0;
}
"""


def test_disassemble_func_and_decode_table() -> None:
    with BPF(text=PROGRAM) as b:
        assert b.disassemble_func(b"one") == \
            "Disassemble of BPF program b'one':\n   0: (b7) r0 = 1\n   1: (95) exit"
        lines = b.disassemble_func("count").splitlines()
        loads = [re.search(r"\) r1 = <map at fd #(\d+)>$", line) for line in lines]
        fds = [int(m[1]) for m in loads if m]
        assert len(fds) == 1, lines
        with open(f"/proc/self/fdinfo/{fds[0]}") as f:  # that fd is the counts map
            assert f"map_id:\t{b['counts'].map_id}\n" in f.read()
        assert "call bpf_map_lookup_elem#1" in "\n".join(lines)
        table = b["packed"]
        head = (f"Layout of BPF map b'packed' (type HASH, FD {table.map_fd}, "
                f"ID {table.map_id}):")
        assert b.decode_table(b"packed").splitlines() == [
            head, "  struct {", "    int a;", "    short b;", "    struct {", "      int c:4;",
            "      int d:8;", "    } e;", "  } key;", "  unsigned long long value;"]
        assert b.decode_table(b"packed", sizeinfo=True).splitlines()[1:9] == [
            "  struct {", "    [0 +4] int a;", "    [4 +2] short b;", "    [6 +4] struct {",
            "      [6,0 +4 bit] int c:4;", "      [6,4 +8 bit] int d:8;", "    } e;", "  } key;"]
        assert b.decode_table("counts").splitlines()[1:] == [
            "  int key;", "  unsigned long long value;"]
