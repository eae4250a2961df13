"""Hand-assembled programs loaded into the running kernel and run with BPF_PROG_TEST_RUN.

Each program reads inputs from the packet, computes, and writes results back into the packet
(XDP's data_out); the same computation in Python must give the same numbers. Programs that use
only instructions bpftool 7.1 knows are also disassembled against bpftool.
"""
from __future__ import annotations

import ctypes
import random
import struct
from typing import Callable

import pytest

from pybpf.asm import (B, DW, H, R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10, W, Assembler, Item,
                       assemble, call, call_subprog, exit_, label, ld_abs, ld_ind,
                       ld_map_fd, ld_map_value, ldx, mov64_imm, mov64_reg, stx)
from pybpf.asm import instructions as I
from pybpf.sys import Cmd, bpf
from pybpf.sys.attrs import MapElemAttr
from pybpf.sys.uapi import ProgType, XdpAction

M64, M32 = (1 << 64) - 1, (1 << 32) - 1
VALUE_REGS = [R0, R1, R2, R3, R4, R5, R8, R9]  # r6: packet data, r7: packet end


def sx(value: int, bits: int) -> int:
    """``value``'s low ``bits`` as a signed integer."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


def packet_program(n_inputs: int, n_outputs: int, body: list[Item]) -> bytes:
    """XDP: check the packet holds inputs and outputs, load the inputs into ``VALUE_REGS``
    (first ``n_inputs``), run ``body`` (which stores into output slot k at r6 + 8 * k), pass."""
    size = 8 * (n_inputs + n_outputs)
    return assemble([
        ldx(W, R6, R1, 0), ldx(W, R7, R1, 4),            # data, data_end
        mov64_reg(R2, R6), I.add64_imm(R2, size),
        I.jgt_reg(R2, R7, "out"),
        *[ldx(DW, reg, R6, 8 * i) for i, reg in enumerate(VALUE_REGS[:n_inputs])],
        *body,
        label("out"), mov64_imm(R0, XdpAction.PASS), exit_(),
    ])


def run_packet(load, run, code: bytes, inputs: list[int], n_outputs: int) -> list[int]:
    data = struct.pack(f"<{len(inputs)}Q", *[v & M64 for v in inputs]) + bytes(8 * n_outputs)
    retval, out = run(load(code), data)
    assert retval == XdpAction.PASS
    return list(struct.unpack_from(f"<{n_outputs}Q", out, 8 * len(inputs)))


# --- ALU: every operation, 64 and 32 bit, immediate and register operand ----------------------

def alu_model(op: str, bits: int, a: int, b: int) -> int:
    """The kernel's result for ``dst = dst <op> b`` (``b`` already sign-extended/truncated)."""
    m = (1 << bits) - 1
    a, b = a & m, b & m
    sa, sb = sx(a, bits), sx(b, bits)
    if op in ("div", "sdiv") and b == 0:
        return 0
    if op in ("mod", "smod") and b == 0:
        return a
    result = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b,
        "div": lambda: a // b, "mod": lambda: a % b,
        "sdiv": lambda: (abs(sa) // abs(sb)) * (-1 if (sa < 0) != (sb < 0) else 1),
        "smod": lambda: (abs(sa) % abs(sb)) * (-1 if sa < 0 else 1),
        "or": lambda: a | b, "and": lambda: a & b, "xor": lambda: a ^ b, "mov": lambda: b,
        "lsh": lambda: a << (b & (bits - 1)), "rsh": lambda: a >> (b & (bits - 1)),
        "arsh": lambda: sa >> (b & (bits - 1)),
    }[op]()
    return result & m


ALU_OPS = ["add", "sub", "mul", "div", "sdiv", "mod", "smod", "or", "and", "lsh", "rsh", "arsh",
           "xor", "mov"]
UNARY = ["neg", "movsx", "le", "be", "bswap"]


def random_alu(rng: random.Random, steps: int) -> tuple[list[int], list[Item], Callable]:
    """Inputs, a program body of ``steps`` random ALU instructions, and its Python model."""
    specials = [0, 1, M64, 1 << 63, (1 << 63) - 1, M32, 1 << 31, 0xFF, 0x8000, 7]
    inputs = [rng.choice(specials) if rng.random() < 0.3 else rng.getrandbits(64)
              for _ in VALUE_REGS]
    body: list[Item] = []
    steps_model = []
    for k in range(steps):
        dst, src = rng.choice(VALUE_REGS), rng.choice(VALUE_REGS)
        bits = rng.choice((64, 32))
        if rng.random() < 0.2:
            kind = rng.choice(UNARY)
            width = {"neg": None, "movsx": rng.choice((8, 16, 32) if bits == 64 else (8, 16)),
                     "le": rng.choice((16, 32, 64)), "be": rng.choice((16, 32, 64)),
                     "bswap": rng.choice((16, 32, 64))}[kind]
            if kind == "neg":
                insn = (I.neg64 if bits == 64 else I.neg32)(dst)
            elif kind == "movsx":
                insn = (I.movsx64_reg if bits == 64 else I.movsx32_reg)(dst, src, width)
            else:
                insn = getattr(I, kind)(dst, width)
            steps_model.append((kind, bits, width, dst, src, None))
        else:
            op = rng.choice(ALU_OPS)
            use_imm = rng.random() < 0.5
            if use_imm:
                if op in ("lsh", "rsh", "arsh"):
                    imm = rng.randrange(bits)
                else:
                    imm = rng.choice([rng.randrange(-2**31, 2**31), rng.randrange(-9, 10) or 3,
                                      -1, 2**31 - 1, -2**31])
                insn = getattr(I, f"{op}{bits}_imm")(dst, imm)
            else:
                imm = None
                insn = getattr(I, f"{op}{bits}_reg")(dst, src)
            steps_model.append((op, bits, None, dst, src, imm))
        body += [insn, stx(DW, R6, dst, 8 * (len(VALUE_REGS) + k))]

    def model() -> list[int]:
        regs = dict(zip(VALUE_REGS, inputs))
        out = []
        for op, bits, width, dst, src, imm in steps_model:
            a = regs[dst]
            if op == "neg":
                r = -a & ((1 << bits) - 1)
            elif op == "movsx":
                r = sx(regs[src], width) & ((1 << bits) - 1)
            elif op == "le":
                r = a & ((1 << width) - 1)
            elif op in ("be", "bswap"):
                r = int.from_bytes((a & ((1 << width) - 1)).to_bytes(width // 8, "little"), "big")
            else:
                b = (imm & M64 if bits == 64 else imm & M32) if imm is not None else regs[src]
                r = alu_model(op, bits, a, b)
            regs[dst] = r
            out.append(r)
        return out

    return inputs, body, model


@pytest.mark.parametrize("seed", range(4))
def test_alu_matches_python(load, run, seed: int) -> None:
    rng = random.Random(seed)
    steps = 300
    inputs, body, model = random_alu(rng, steps)
    code = packet_program(len(VALUE_REGS), steps, body)
    got = run_packet(load, run, code, inputs, steps)
    want = model()
    for k, (g, w) in enumerate(zip(got, want)):
        assert g == w, f"step {k}: {body[2 * k]} gave {g:#x}, expected {w:#x}"


# --- jumps: every condition, 64 and 32 bit, immediate and register operand --------------------

JMP_MODEL = {
    "jeq": lambda a, b, s, t: a == b, "jne": lambda a, b, s, t: a != b,
    "jgt": lambda a, b, s, t: a > b, "jge": lambda a, b, s, t: a >= b,
    "jlt": lambda a, b, s, t: a < b, "jle": lambda a, b, s, t: a <= b,
    "jsgt": lambda a, b, s, t: s > t, "jsge": lambda a, b, s, t: s >= t,
    "jslt": lambda a, b, s, t: s < t, "jsle": lambda a, b, s, t: s <= t,
    "jset": lambda a, b, s, t: bool(a & b),
}
PAIRS = [(5, 5), (1, 2), (2, 1), (M64, 1), (1, M64), ((1 << 32) | 5, 5), (0x80000000, 1),
         (-5 & M64, -3 & M64), (0, 0x10), (0x7FFFFFFF, 0x80000000), (1 << 63, 0)]


def test_jumps_match_python(load, run, check_xlated) -> None:
    body: list[Item] = []
    want = []
    for n, (a, b) in enumerate(PAIRS):
        for op, decide in JMP_MODEL.items():
            for bits in (64, 32):
                suffix = "" if bits == 64 else "32"
                imm = sx(b, 32)
                for form in ("imm", "reg"):
                    here = f"{n}{op}{bits}{form}"
                    m = (1 << bits) - 1
                    rhs = (imm & m) if form == "imm" else (b & m)
                    want.append(int(decide(a & m, rhs, sx(a, bits), sx(rhs, bits))))
                    jump = getattr(I, f"{op}{suffix}_{form}")
                    body += [
                        ldx(DW, R1, R6, 16 * n), ldx(DW, R2, R6, 16 * n + 8),
                        mov64_imm(R3, 0),
                        jump(R1, imm if form == "imm" else R2, f"t{here}"),
                        I.ja(f"n{here}"),
                        label(f"t{here}"), mov64_imm(R3, 1),
                        label(f"n{here}"), stx(B, R6, R3, 16 * len(PAIRS) + len(want) - 1),
                    ]
    code = packet_program(0, 2 * len(PAIRS) + (len(want) + 7) // 8, body)  # one byte per result
    fd = load(code)
    data = b"".join(struct.pack("<QQ", a & M64, b & M64) for a, b in PAIRS)
    retval, out = run(fd, data + bytes(len(want) + 7 & ~7))
    assert retval == XdpAction.PASS
    assert list(out[len(data):len(data) + len(want)]) == want
    check_xlated(fd)  # the verifier drops dead code: fewer instructions


def test_loops_backward_and_long_jumps(load, run) -> None:
    """sum(1..n) with a backward conditional jump, a gotol (ja32) and may_goto."""
    code = packet_program(1, 2, [
        mov64_imm(R1, 0), mov64_imm(R2, 0),
        label("loop"),
        I.jge_reg(R2, R0, "done"),
        I.add64_imm(R2, 1), I.add64_reg(R1, R2),
        I.may_goto("done"),
        I.ja32("loop"),
        label("done"),
        stx(DW, R6, R1, 8), stx(DW, R6, R2, 16),
    ])
    assert run_packet(load, run, code, [100], 2) == [5050, 100]


# --- memory, atomics, maps and calls ----------------------------------------------------------

def map_value(fd: int, size: int) -> bytes:
    key, value = ctypes.c_uint32(0), ctypes.create_string_buffer(size)
    bpf(Cmd.MAP_LOOKUP_ELEM, MapElemAttr(map_fd=fd, key=ctypes.addressof(key),
                                         value=ctypes.addressof(value)))
    return value.raw


def test_memory_and_atomics(load, run, array_map) -> None:
    """Stores and loads of every size, sign-extending loads, and every atomic on a map value
    reached both through bpf_map_lookup_elem and a direct map value load."""
    fd = array_map(64)
    a, b = 0x1122334455667788, 0x80F0FF017F0A0B0C
    body: list[Item] = [
        mov64_reg(R8, R0), mov64_reg(R9, R1),                 # r8 = a, r9 = b
        I.st(W, R10, -4, 0), mov64_reg(R2, R10), I.add64_imm(R2, -4),
        ld_map_fd(R1, fd), call("map_lookup_elem"),
        I.jeq_imm(R0, 0, "out"),
        mov64_reg(R7, R0),                                    # r7 = &value[0]; r7 was data_end
        stx(DW, R7, R8, 0), stx(W, R7, R9, 8), stx(H, R7, R9, 12), stx(B, R7, R9, 14),
        I.st(B, R7, 15, -1), I.st(H, R7, 16, 0x7FFF), I.st(W, R7, 20, -2), I.st(DW, R7, 24, -3),
        ldx(B, R1, R7, 0), stx(DW, R6, R1, 16),
        ldx(H, R1, R7, 12), stx(DW, R6, R1, 24),
        I.ldx_sx(B, R1, R7, 14), stx(DW, R6, R1, 32),
        I.ldx_sx(H, R1, R7, 8), stx(DW, R6, R1, 40),
        I.ldx_sx(W, R1, R7, 20), stx(DW, R6, R1, 48),
        ld_map_value(R7, fd, 32),                             # r7 = &value[32]
        stx(DW, R7, R8, 0), stx(DW, R7, R8, 8), stx(DW, R7, R8, 16),
        I.atomic_add(DW, R7, R9, 0),
        mov64_reg(R1, R9), I.atomic_add(DW, R7, R1, 0, fetch=True), stx(DW, R6, R1, 56),
        mov64_imm(R1, 0xF0), I.atomic_or(W, R7, R1, 8, fetch=True), stx(DW, R6, R1, 64),
        mov64_imm(R1, 0x0F), I.atomic_and(W, R7, R1, 12),
        mov64_imm(R1, -1), I.atomic_xor(DW, R7, R1, 16, fetch=True), stx(DW, R6, R1, 72),
        mov64_imm(R1, 77), I.atomic_xchg(DW, R7, R1, 24), stx(DW, R6, R1, 80),
        mov64_imm(R0, 77), mov64_imm(R1, 99), I.atomic_cmpxchg(DW, R7, R1, 24),
        stx(DW, R6, R0, 88),
        mov64_imm(R0, 5), mov64_imm(R1, 55), I.atomic_cmpxchg(W, R7, R1, 8),   # no match
        stx(DW, R6, R0, 96),
        I.load_acquire(DW, R1, R7, 0), stx(DW, R6, R1, 104),
        mov64_imm(R1, -9), I.store_release(H, R7, R1, 28),
    ]
    code = packet_program(2, 12, body)
    got = run_packet(load, run, code, [a, b], 12)
    value = bytearray(64)
    struct.pack_into("<QIHBbh2xiq", value, 0, a, b & M32, b & 0xFFFF, b & 0xFF, -1, 0x7FFF, -2, -3)
    want = [a & 0xFF, b & 0xFFFF, sx(b & 0xFF, 8) & M64, sx(b, 16) & M64, -2 & M64]
    q0 = (a + b) & M64
    want.append(q0)                                      # fetch_add returns the old value
    q0 = (q0 + b) & M64
    w8 = a & M32
    want.append(w8)                                      # fetch_or
    w8 |= 0xF0
    w12 = (a >> 32) & 0x0F
    q16 = a
    want.append(q16)                                     # fetch_xor
    q16 ^= M64
    want += [0, 77, w8]                                  # xchg old; cmpxchg old (match); no match
    want.append(q0)                                      # load_acquire
    assert got == want
    struct.pack_into("<QIIQQ", value, 32, q0, w8, w12, q16, 99)
    struct.pack_into("<h", value, 60, -9)
    assert map_value(fd, 64) == bytes(value)


def test_calls(load, run, check_xlated) -> None:
    """A helper by name and a bpf-to-bpf call by label (callbacks, ``ld_func``, need BTF
    func_info, which is pybpf.programs' business)."""
    a = Assembler()
    a.emit(
        ldx(W, R6, R1, 0), ldx(W, R7, R1, 4), mov64_reg(R2, R6), I.add64_imm(R2, 24),
        I.jgt_reg(R2, R7, "out"),
        call("ktime_get_ns"), stx(DW, R6, R0, 0),
        ldx(DW, R1, R6, 8), call_subprog("twice_plus_one"), stx(DW, R6, R0, 8),
        mov64_imm(R1, 7), call_subprog("twice_plus_one"), stx(DW, R6, R0, 16),
        label("out"), mov64_imm(R0, XdpAction.PASS), exit_(),
    )
    a.label("twice_plus_one").emit(mov64_reg(R0, R1), I.lsh64_imm(R0, 1), I.add64_imm(R0, 1),
                                   exit_())
    fd = load(a.assemble())
    retval, out = run(fd, struct.pack("<QQQ", 0, 20, 0))
    now, twice, again = struct.unpack_from("<QQQ", out)
    assert retval == XdpAction.PASS and now > 0 and twice == 41 and again == 15
    assert check_xlated(fd) >= a.insn_count


def test_legacy_packet_loads(load, run) -> None:
    """LD_ABS and LD_IND read big-endian bytes at skb->data (past the Ethernet header for a
    socket filter) plus an offset; the context must be in r6."""
    code = assemble([
        mov64_reg(R6, R1),
        ld_abs(H, 12), mov64_reg(R7, R0), I.lsh64_imm(R7, 8),
        mov64_imm(R1, 2), ld_ind(B, R1, 12), I.or64_reg(R7, R0),
        mov64_reg(R0, R7), exit_(),
    ])
    fd = load(code, ProgType.SOCKET_FILTER)
    packet = bytes(14) + bytes(12) + b"\x08\x00\x45" + bytes(35)
    retval, _ = run(fd, packet)
    assert retval == (0x0800 << 8 | 0x45)
