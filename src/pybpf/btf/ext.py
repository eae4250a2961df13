"""``.BTF.ext``: per-section function info, line info and CO-RE relocation records.

The section (``struct btf_ext_header`` + three info blocks) refers to the object's ``.BTF``
strings by offset; ``parse_ext`` resolves them through ``strings`` (``Spec.string``).

Offsets: in the ELF every record's ``insn_off`` is a byte offset into its section; here
``insn_off`` is an **instruction index** (bytes / 8) from the start of the ELF section the
record belongs to, the unit the kernel's ``bpf_func_info``/``bpf_line_info`` and the
loader's relocation work in. Pure: bytes in, records out.
"""
from __future__ import annotations

import struct
from typing import Callable, Iterable, NamedTuple

from ..errors import BTFError
from ..sys.uapi import INSN_SIZE, CoreReloKind
from .spec import BTF_MAGIC

_HDR = "HBBIIIII"  # magic, version, flags, hdr_len, func_info off/len, line_info off/len
_HDR_CORE = "II"  # core_relo off/len (hdr_len >= 32)
FUNC_INFO_SIZE = 8  # struct bpf_func_info: insn_off, type_id
LINE_INFO_SIZE = 16  # struct bpf_line_info: insn_off, file_name_off, line_off, line_col
CORE_RELO_SIZE = 16  # struct bpf_core_relo: insn_off, type_id, access_str_off, kind


class FuncInfo(NamedTuple):
    """A function starts at instruction ``insn_off``; ``type_id`` is its BTF FUNC."""

    insn_off: int
    type_id: int


class LineInfo(NamedTuple):
    """Instruction ``insn_off`` comes from ``file_name``:``line``:``col`` (``line_text``).

    ``file_name_off``/``line_off`` are the string offsets in the object's BTF, which the
    kernel's ``bpf_line_info`` carries.
    """

    insn_off: int
    file_name: str
    line: int
    col: int
    line_text: str
    file_name_off: int = 0
    line_off: int = 0


class CoreRelo(NamedTuple):
    """CO-RE relocation of instruction ``insn_off``: ``kind`` of ``access_str`` on ``type_id``
    (a local BTF type id; ``access_str`` like ``"0:1:2"``, member/array indices, at
    ``access_str_off`` of the object's BTF strings, which the kernel's ``bpf_core_relo``
    carries)."""

    insn_off: int
    type_id: int
    access_str: str
    kind: CoreReloKind
    access_str_off: int = 0


class BTFExt(NamedTuple):
    """Records by ELF section name."""

    func_info: dict[str, list[FuncInfo]]
    line_info: dict[str, list[LineInfo]]
    core_relos: dict[str, list[CoreRelo]]


def parse_ext(data: bytes, strings: Callable[[int], str], name: str = ".BTF.ext") -> BTFExt:
    """Parse a ``.BTF.ext`` section; ``strings`` maps a ``.BTF`` string offset to its text."""
    if len(data) < struct.calcsize("<" + _HDR):
        raise BTFError(f"{name}: {len(data)} bytes is too short for a .BTF.ext header")
    for e in ("<", ">"):
        if struct.unpack_from(e + "H", data)[0] == BTF_MAGIC:
            break
    else:
        raise BTFError(f"{name}: bad magic {bytes(data[:2]).hex()} (not .BTF.ext)")
    _, version, _, hdr_len, fi_off, fi_len, li_off, li_len = struct.unpack_from(e + _HDR, data)
    if version != 1:
        raise BTFError(f"{name}: unsupported .BTF.ext version {version}")
    if hdr_len < 24 or hdr_len > len(data):
        raise BTFError(f"{name}: bad header length {hdr_len}")
    co_off = co_len = 0
    if hdr_len >= 32:
        co_off, co_len = struct.unpack_from(e + _HDR_CORE, data, 24)
    body = memoryview(data)[hdr_len:]

    def block(off: int, length: int, what: str, min_rec: int) -> Iterable[tuple[str, list]]:
        if not length:
            return
        if off + length > len(body):
            raise BTFError(f"{name}: {what} block ({length} bytes at {off}) runs past the end")
        blk = body[off:off + length]
        if len(blk) < 4:
            raise BTFError(f"{name}: {what} block too short for its record size")
        rec_size = struct.unpack_from(e + "I", blk)[0]
        if rec_size < min_rec or rec_size % 4:
            raise BTFError(f"{name}: {what} record size {rec_size} is invalid "
                           f"(at least {min_rec}, a multiple of 4)")
        pos = 4
        while pos < len(blk):
            if pos + 8 > len(blk):
                raise BTFError(f"{name}: truncated {what} section header at {pos}")
            sec_off, count = struct.unpack_from(e + "II", blk, pos)
            pos += 8
            if count == 0 or pos + count * rec_size > len(blk):
                raise BTFError(f"{name}: {what} of {_str(strings, sec_off, name)!r}: "
                               f"{count} records of {rec_size} bytes do not fit the block")
            recs = [struct.unpack_from(e + "IIII"[:min_rec // 4], blk, pos + i * rec_size)
                    for i in range(count)]
            pos += count * rec_size
            yield _str(strings, sec_off, name), recs

    def insn(off: int, what: str) -> int:
        if off % INSN_SIZE:
            raise BTFError(f"{name}: {what} at byte {off} is not on an instruction boundary")
        return off // INSN_SIZE

    out = BTFExt({}, {}, {})
    for sec, recs in block(fi_off, fi_len, "func_info", FUNC_INFO_SIZE):
        out.func_info.setdefault(sec, []).extend(
            FuncInfo(insn(o, "func_info"), t) for o, t in recs)
    for sec, recs in block(li_off, li_len, "line_info", LINE_INFO_SIZE):
        out.line_info.setdefault(sec, []).extend(
            LineInfo(insn(o, "line_info"), _str(strings, f, name), lc >> 10, lc & 0x3FF,
                     _str(strings, ln, name), f, ln) for o, f, ln, lc in recs)
    for sec, recs in block(co_off, co_len, "core_relo", CORE_RELO_SIZE):
        for o, t, acc, kind in recs:
            try:
                k = CoreReloKind(kind)
            except ValueError:
                raise BTFError(f"{name}: CO-RE relocation in {sec!r} has unknown kind {kind}"
                               ) from None
            out.core_relos.setdefault(sec, []).append(
                CoreRelo(insn(o, "CO-RE relocation"), t, _str(strings, acc, name), k, acc))
    return out


def _str(strings: Callable[[int], str], off: int, name: str) -> str:
    try:
        return strings(off)
    except BTFError:
        raise
    except Exception as e:
        raise BTFError(f"{name}: string offset {off}: {e}") from None


def encode_func_info(records: Iterable[FuncInfo]) -> bytes:
    """``struct bpf_func_info`` array (host byte order) for BPF_PROG_LOAD."""
    return b"".join(struct.pack("=II", r.insn_off, r.type_id) for r in records)


def encode_line_info(records: Iterable[LineInfo]) -> bytes:
    """``struct bpf_line_info`` array (host byte order) for BPF_PROG_LOAD."""
    return b"".join(struct.pack("=IIII", r.insn_off, r.file_name_off, r.line_off,
                                r.line << 10 | (r.col & 0x3FF)) for r in records)


def encode_core_relos(records: Iterable[CoreRelo]) -> bytes:
    """``struct bpf_core_relo`` array (host byte order) for BPF_PROG_LOAD, whose
    ``insn_off`` is in bytes (the kernel relocates; Linux 5.17)."""
    return b"".join(struct.pack("=IIII", r.insn_off * INSN_SIZE, r.type_id, r.access_str_off,
                                r.kind) for r in records)
