"""Compile translated BCC programs, with a cache.

A program is compiled against its runtime header (:func:`.toolchain.run_compiler`: the
kernel types it uses, BCC's macros, helper declarations); objects are kept in
``<pybpf cache>/bcc/objects/<key>.o``, the key covering the final C text, cflags, the
kernel's BTF, the compiler and this front end's version: a second build of the same program
compiles nothing. Diagnostics of a failed compile point at the
user's lines (``Translation.line_map``).
"""
from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from ..cache import cache_dir
from ..errors import CompileError
from .toolchain import PROGRAM_NAME, cache_key, find_compiler, run_compiler, take_ahead

if TYPE_CHECKING:
    from .dialect import Translation

def build(translation: "Translation", cflags: Sequence[str] = (), *,
          name: str = "<text>") -> str:
    """Compile ``translation`` and return the path of the (cached) object file.

    ``name`` names the program in errors (BCC: the src_file, or ``<text>``). A C error raises
    :class:`CompileError` whose diagnostics point at the user's lines."""
    compiler = find_compiler()
    key = cache_key(compiler, translation.source, "\0".join(cflags))
    out = cache_dir() / "bcc" / "objects" / f"{key}.o"
    if out.exists():
        return str(out)
    ahead = take_ahead(translation.source, cflags)
    if ahead is not None:
        os.replace(ahead, out)
        return str(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="pybpf-bcc-") as tmp:
        src = Path(tmp) / PROGRAM_NAME
        src.write_text(translation.source)
        # written next to its place in the cache, then renamed: readers see all or nothing
        obj = out.with_name(f".tmp-{os.getpid()}-{os.path.basename(tmp)}.o")
        res, cmd = run_compiler(translation.source,
                                set(translation.tables) | set(translation.functions), cflags,
                                ["-c", str(src), "-o", str(obj)])
        if res.returncode != 0:
            obj.unlink(missing_ok=True)
            raise CompileError(f"Failed to compile BPF module {name}",
                               map_diagnostics(res.stderr, translation, str(src), name), cmd)
        os.replace(obj, out)
    return str(out)


def map_diagnostics(stderr: str, translation: "Translation", path: str, name: str) -> str:
    """clang's diagnostics with ``path:LINE:COL`` turned into ``name:USER_LINE:COL`` (a line
    the front end generated is shown as ``name:<generated>``)."""
    def user(m: "re.Match[str]") -> str:
        line = translation.user_line(int(m.group(1)))
        return f"{name}:{line if line else '<generated>'}:"
    return re.sub(re.escape(path) + r":(\d+):", user, stderr)
