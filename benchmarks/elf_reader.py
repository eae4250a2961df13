"""pybpf's ELF reader against pyelftools on host binaries, measured in the same run.

    python3 benchmarks/elf_reader.py [--runs N] [--check]

What a uprobe or USDT attach reads of a host binary, in a fresh process each run (the cost a
tool pays once), alternating the two readers, median of ``--runs``:

import    importing the reader (``pybpf.elf.reader`` / ``elftools.elf.elffile``)
symbol    open libc (ld.so.cache's ``libc.so.6``), build its function table from ``.symtab``
          and ``.dynsym`` (as ``links.uprobe`` does) and give ``getpid``'s file offset
notes     open a binary with SystemTap notes (Debian's ``/usr/bin/python3``, else the
          given ``--usdt-binary``) and decode every ``.note.stapsdt`` note (address, base,
          semaphore, provider, name, arguments) with the sites' file offsets

Both sides must give the same answers (checked). Goal: pybpf at least as fast as pyelftools
in each row (ratio = pyelftools / pybpf >= 1). Exits 0 (a benchmark, not a test) unless
``--check`` is given and a goal is missed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from typing import Dict, List

from common import exit_status

PYBPF = r"""
import json, struct, sys, time
t0 = time.perf_counter()
from pybpf.elf.reader import SHN_UNDEF, STT_FUNC, ElfFile
t1 = time.perf_counter()
elf = ElfFile.open(sys.argv[1])
funcs = {}
for name in (".symtab", ".dynsym"):
    sec = elf.section(name)
    if sec is not None:
        for s in elf.read_symbols(sec):
            if s.type == STT_FUNC and s.shndx != SHN_UNDEF and s.value and s.name:
                funcs.setdefault(s.name.split("@")[0], s.value)
offset = elf.file_offset(funcs["getpid"])
t2 = time.perf_counter()
elf = ElfFile.open(sys.argv[2])
notes = []
for n in elf.notes(elf.section(".note.stapsdt")):
    pc, base, sema = elf.unpack("QQQ", n.desc)
    provider, name, args = n.desc[24:].split(b"\0")[:3]
    notes.append([pc, base, sema, provider.decode(), name.decode(), args.decode(),
                  elf.file_offset(pc)])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "symbol": t2 - t1, "notes": t3 - t2,
                  "answer": [offset, notes]}))
"""

PYELFTOOLS = r"""
import json, struct, sys, time
t0 = time.perf_counter()
from elftools.elf.elffile import ELFFile
t1 = time.perf_counter()

def file_offset(elf, address):
    for seg in elf.iter_segments():
        start = seg["p_vaddr"]
        if seg["p_type"] == "PT_LOAD" and start <= address < start + seg["p_memsz"]:
            return address - seg["p_vaddr"] + seg["p_offset"]

with open(sys.argv[1], "rb") as f:
    elf = ELFFile(f)
    funcs = {}
    for name in (".symtab", ".dynsym"):
        sec = elf.get_section_by_name(name)
        if sec is not None:
            for s in sec.iter_symbols():
                if (s["st_info"]["type"] == "STT_FUNC" and s["st_shndx"] != "SHN_UNDEF"
                        and s["st_value"] and s.name):
                    funcs.setdefault(s.name.split("@")[0], s["st_value"])
    offset = file_offset(elf, funcs["getpid"])
t2 = time.perf_counter()
with open(sys.argv[2], "rb") as f:
    elf = ELFFile(f)
    notes = []
    for n in elf.get_section_by_name(".note.stapsdt").iter_notes():
        d = n["n_desc"]
        if isinstance(d, dict):  # pyelftools decodes stapsdt notes itself
            pc, base, sema = d["pc"], d["base"], d["sem"]
            provider, name, args = d["provider"], d["probe"], d["arguments"]
        else:
            raw = d.encode("latin-1") if isinstance(d, str) else d
            pc, base, sema = struct.unpack_from("<QQQ", raw)
            provider, name, args = (x.decode() for x in raw[24:].split(b"\0")[:3])
        notes.append([pc, base, sema, provider, name, args, file_offset(elf, pc)])
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "symbol": t2 - t1, "notes": t3 - t2,
                  "answer": [offset, notes]}))
"""

ROWS = ("import", "symbol", "notes")


def run(code: str, libc: str, usdt: str, what: str) -> Dict:
    res = subprocess.run([sys.executable, "-c", code, libc, usdt], capture_output=True,
                         text=True)
    if res.returncode != 0:
        sys.exit(f"benchmarks/elf_reader.py: the {what} side failed: {res.stderr.strip()}")
    return json.loads(res.stdout)


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--usdt-binary", default="/usr/bin/python3")
    ap.add_argument("--check", action="store_true")
    args = ap.parse_args(argv)
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src"))
    from pybpf.links.uprobe import resolve_binary  # noqa: PLC0415
    libc, usdt = resolve_binary("libc.so.6"), os.path.realpath(args.usdt_binary)
    ours: Dict[str, List[float]] = {r: [] for r in ROWS}
    theirs: Dict[str, List[float]] = {r: [] for r in ROWS}
    for _ in range(args.runs):
        a = run(PYBPF, libc, usdt, "pybpf")
        b = run(PYELFTOOLS, libc, usdt, "pyelftools")
        if a["answer"] != b["answer"]:
            sys.exit(f"benchmarks/elf_reader.py: the readers disagree:\n{a['answer']}\n"
                     f"{b['answer']}")
        for r in ROWS:
            ours[r].append(a[r])
            theirs[r].append(b[r])
    print(f"libc: {libc}; notes: {usdt} ({len(a['answer'][1])} stapsdt notes); "
          f"median of {args.runs} fresh processes")
    print(f"{'':8} {'pybpf ms':>9} {'pyelftools ms':>14} {'ratio':>6}")
    missed = []
    for r in ROWS:
        mine, peer = statistics.median(ours[r]) * 1e3, statistics.median(theirs[r]) * 1e3
        ok = peer / mine >= 1
        print(f"{r:8} {mine:9.2f} {peer:14.2f} {peer / mine:5.1f}x {'PASS' if ok else 'MISS'}")
        if not ok:
            missed.append(r)
    return exit_status(missed, args.check)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
