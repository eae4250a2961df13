"""BCC's ``bcc.utils``: bytes printing, command-line arguments as bytes, CPU lists, program
disassembly, and the ``STRCMP`` rewrite used by ``trace``/``argdist`` style tools."""
from __future__ import annotations

import os
import re
import sys
import warnings
from typing import IO, Any, Optional, Union, overload

from ..sys.cpus import online_cpus, possible_cpus

FILESYSTEMENCODING = sys.getfilesystemencoding()


def get_online_cpus() -> list[int]:
    """CPUs online now (``/sys/devices/system/cpu/online``)."""
    return online_cpus()


def get_possible_cpus() -> list[int]:
    """CPUs that may ever be online (per-CPU values have one slot each)."""
    return list(possible_cpus())


LANGUAGES = ("java", "node", "perl", "php", "python", "ruby")


def detect_language(candidates: Any, pid: int) -> Optional[str]:
    """The runtime of process ``pid`` if it is one of ``candidates``: a language name in its
    executable's path, else a ``/lib<language>`` library it maps, else ``c`` when it maps
    libc (as BCC guesses it); None otherwise."""
    found: Optional[str] = None
    try:
        exe = os.path.realpath(f"/proc/{pid}/exe")
        found = next((lang for lang in LANGUAGES if lang in exe), None)
        if found is None:
            with open(f"/proc/{pid}/maps") as f:
                paths = [line.split(None, 5)[5].strip() for line in f
                         if len(line.split(None, 5)) == 6]
            found = next((lang for lang in LANGUAGES for p in paths if f"/lib{lang}" in p), None)
            if found is None and any(re.search(r"libc[-.]", p) for p in paths):
                found = "c"
    except OSError:
        return None
    return found if found in candidates else None


def printb(s: bytes, file: IO[Any] = sys.stdout, nl: int = 1) -> None:
    """Write bytes ``s`` (and a newline unless ``nl`` is 0) to ``file`` and flush."""
    out = file.buffer if hasattr(file, "buffer") else file
    out.write(s)
    if nl:
        out.write(b"\n")
    file.flush()


class ArgString:
    """A command-line argument that compares as bytes with kernel data: ``bytes(a)``
    encodes it as the file system does (``os.fsencode``: argv's undecodable bytes come back
    as they were), ``str(a)`` gives it back."""

    def __init__(self, arg: str) -> None:
        self.s = arg

    def __bytes__(self) -> bytes:
        return os.fsencode(self.s)

    def __str__(self) -> str:
        return self.s


_strict_bytes = False


@overload
def _assert_is_bytes(arg: None) -> None: ...
@overload
def _assert_is_bytes(arg: Union[str, bytes]) -> bytes: ...


def _assert_is_bytes(arg: Union[str, bytes, None]) -> Optional[bytes]:
    """``arg`` as bytes: a str is encoded with a DeprecationWarning (BCC's API takes bytes),
    None stays None."""
    if arg is None or type(arg) is bytes:
        return arg
    if _strict_bytes:
        raise TypeError(f"not a bytes object: {arg!r}")
    warnings.warn(f"not a bytes object: {arg!r}", DeprecationWarning, 2)
    return bytes(ArgString(str(arg)))


def _as_str(value: Union[str, bytes]) -> str:
    """A name given as str or bytes (BCC's API takes either), as str."""
    return value.decode() if isinstance(value, bytes) else value


def _as_path(value: Union[str, bytes]) -> str:
    """A path as str; also one that went through ``str(bytes)`` (``"b'/usr/bin/x'"``), as
    BCC's tools do with the bytes ``find_library`` returns (BCC itself then fails)."""
    text = _as_str(value)
    if len(text) > 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        import ast
        return os.fsdecode(ast.literal_eval(text))
    return text


def disassemble(code: bytes) -> str:
    """BPF instructions as ``bpftool prog dump xlated`` prints them (pybpf.asm), one per
    line; ``code`` is the raw instructions (e.g. a loaded program's ``xlated`` bytes)."""
    from ..asm import disassemble as _disassemble
    return "\n".join(_disassemble(code))


class StrcmpRewrite:
    """``STRCMP("literal", expr)`` in a tool's filter, turned into a call of a generated
    ``streq_N`` function comparing the string that ``expr`` points to with the literal."""

    @staticmethod
    def _generate_streq_function(string: str, probe_read_func: str, streq_functions: str,
                                 probeid: int) -> tuple[str, str]:
        fname = f"streq_{probeid}"
        streq_functions += (
            f"\nstatic inline bool {fname}(char const *ignored, uintptr_t str)\n{{\n"
            f"\tchar want[] = {string};\n"
            "\tchar got[sizeof(want)];\n\n"
            f"\t{probe_read_func}(&got, sizeof(got), (void *)str);\n"
            "\tfor (int i = 0; i < sizeof(want) - 1; i++)\n"
            "\t\tif (got[i] != want[i])\n"
            "\t\t\treturn false;\n"
            "\treturn true;\n}\n")
        return fname, streq_functions

    @staticmethod
    def rewrite_expr(expr: str, bin_cmp: bool, is_user: bool, probe_user_list: Any,
                     streq_functions: str, probeid: int) -> dict[str, Any]:
        """Rewrite every STRCMP of ``expr``; user-space strings (``is_user`` or an argument
        named in ``probe_user_list``) are read with ``bpf_probe_read_user``."""
        pattern = r'STRCMP\("([^"]+)",(.+?)\)' if bin_cmp else r'STRCMP\(("[^"]+"),(.+?)\)'
        for match in re.finditer(pattern, expr):
            read = "bpf_probe_read_user" if is_user or match.group(2).strip() in \
                probe_user_list else "bpf_probe_read_kernel"
            fname, streq_functions = StrcmpRewrite._generate_streq_function(
                match.group(1), read, streq_functions, probeid)
            probeid += 1
            expr = expr.replace("STRCMP", fname, 1)
        return {"expr": expr, "streq_functions": streq_functions, "probeid": probeid}
