"""Preprocessor conditionals of a BCC program, resolved before translation.

BCC rewrites the program after preprocessing, so a table or function defined under
``#ifdef LATENCY`` / ``#else`` exists once. Here the program is translated as text: the code
of every ``#if``/``#elif``/``#else`` branch the preprocessor would skip (with the same
runtime headers and cflags) is blanked, keeping the directives and the line breaks.

Which branches are live is asked of the compiler itself: a file made of the program's
directives, with a ``#warning __pybpf_region_<n>`` in each branch, is compiled once; the
warnings name the live branches.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

_CONDITIONAL = re.compile(r"#\s*(if|ifdef|ifndef|elif|else|endif)\b")
_ANGLE_INCLUDE = re.compile(r"#\s*include\s*<")
_WARNING = re.compile(r"warning: __pybpf_region_(\d+)")


def _logical_lines(text: str) -> list[tuple[int, int]]:
    """(first, last) 0-based physical line index of each logical line (backslash
    continuations joined)."""
    out: list[tuple[int, int]] = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        j = i
        while lines[j].endswith("\\") and j + 1 < len(lines):
            j += 1
        out.append((i, j))
        i = j + 1
    return out


def resolve(text: str, live: Callable[[str], set[int]]) -> str:
    """``text`` with the code of dead conditional branches blanked. ``live`` compiles a
    probe text and returns the numbers of the regions whose warnings it printed."""
    lines = text.split("\n")
    if not any(_CONDITIONAL.match(line.lstrip()) for line in lines):
        return text
    probe: list[str] = []
    regions: list[list[int]] = []   # region -> its code lines
    current: list[int] = []         # the code lines of the innermost open branch
    stack: list[list[int]] = []
    for first, last in _logical_lines(text):
        stripped = lines[first].lstrip()
        if not stripped.startswith("#"):
            if stack:
                current.extend(range(first, last + 1))
            continue
        directive = "\n".join(lines[first:last + 1])
        m = _CONDITIONAL.match(stripped)
        kind = m.group(1) if m else ""
        if kind in ("elif", "else", "endif") and stack:
            stack.pop()
        if not _ANGLE_INCLUDE.match(stripped):   # kernel headers: types only (vmlinux.h)
            probe.append(directive)
        if kind in ("if", "ifdef", "ifndef", "elif", "else"):
            current = []
            regions.append(current)
            stack.append(current)
            probe.append(f"#warning __pybpf_region_{len(regions) - 1}")
        elif kind == "endif":
            current = stack[-1] if stack else []
    alive = live("\n".join(probe) + "\n")
    dead = {line for n, code in enumerate(regions) if n not in alive for line in code}
    if not dead:
        return text
    return "\n".join("" if i in dead else line for i, line in enumerate(lines))


def live_regions(probe: str, cflags: Sequence[str]) -> set[int]:
    """The regions of ``probe`` (made by :func:`resolve`) the preprocessor keeps with the
    runtime headers (:mod:`pybpf.bcc.toolchain`) and ``cflags``: the numbers of the
    ``#warning`` lines clang prints. Cached."""
    from ...cache import cache_dir
    from ..toolchain import atomic_write, cache_key, find_compiler, run_compiler

    key = cache_key(find_compiler(), probe, "\0".join(cflags))
    path = cache_dir() / "bcc" / "conditionals" / key
    try:
        return {int(n) for n in path.read_text().split()}
    except OSError:
        pass
    res, _ = run_compiler("", (), cflags, ["-fsyntax-only", "-x", "c", "-"], stdin=probe,
                          fallback=False)
    live = {int(n) for n in _WARNING.findall(res.stderr)}
    if res.returncode == 0:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, " ".join(map(str, sorted(live))).encode())
    return live
