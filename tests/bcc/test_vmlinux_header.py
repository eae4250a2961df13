"""vmlinux.h as the BCC front end compiles against it: kernels whose BTF holds forward-declared
enums (BTF ENUM without values, seen in Debian's 6.12) dump them as ``enum x;``, as bpftool
does, and the header compiles."""
from __future__ import annotations

import subprocess

from pybpf.btf import dump_c
from tests.btf.test_cdump import compile_bpf


def test_forward_declared_enum_dumps_as_bpftool_and_compiles(clang, bpftool, tmp_path):
    spec = compile_bpf(clang, tmp_path, "fwd", "enum later;\n"
                       "struct holder { enum later *p; int x; };\n"
                       "struct holder h;\n")
    empty = [t for t in spec if t.kind.name == "ENUM" and t.name == "later"]
    assert empty and not empty[0].values  # clang's BTF of a forward-declared enum
    ours = dump_c(spec)
    assert "enum later;" in ours and "enum later {" not in ours
    theirs = subprocess.run([bpftool, "btf", "dump", "file", str(tmp_path / "fwd.o"),
                             "format", "c"], capture_output=True, text=True, check=True).stdout
    assert "enum later;" in theirs
    header = tmp_path / "v.h"
    header.write_text(ours)
    subprocess.run([clang, "-target", "bpf", "-fsyntax-only", "-x", "c", str(header)],
                   check=True)
