"""What every ``pybpf`` command shares: options, argument cursor, handles, hex and JSON output.

Handles and byte arguments are parsed as bpftool parses them (``id N``, ``name NAME``,
``tag TAG``, ``pinned PATH``; ``[hex] BYTES`` with C ``strtoul`` rules), and errors read
like bpftool's (``Error: ...`` on stderr, ``{"error": ...}`` with ``--json``).
"""
from __future__ import annotations

import errno as _errno
import os
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence, TextIO

from ..errors import BPFError, PyBPFError


class CLIError(Exception):
    """A command failed: ``message`` is printed after ``Error: ``; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = 255) -> None:
        super().__init__(message)
        self.code = code


def errno_code(err: Optional[int]) -> int:
    """bpftool's exit status for a failed libbpf call: -errno as an unsigned byte (255 when
    the error has no errno)."""
    return (-(err or 0)) & 0xFF or 255


def why(e: BaseException) -> str:
    """The text of an error for ``Error: <context>: <why>``: pybpf's own message, or the
    strerror of a plain OSError."""
    if isinstance(e, OSError) and not isinstance(e, PyBPFError) and e.errno:
        return os.strerror(e.errno)
    return str(e)


@dataclass
class Options:
    """Global options: ``-j``, ``-p``, ``-f``, ``-d``, ``--trace``."""

    json: bool = False
    pretty: bool = False
    bpffs: bool = False
    debug: bool = False
    trace: bool = False
    out: TextIO = field(default_factory=lambda: sys.stdout)


class Args:
    """A cursor over the remaining words, with bpftool's prefix matching."""

    def __init__(self, words: Sequence[str], command: str = "") -> None:
        self.words = list(words)
        self.i = 0
        self.command = command

    def __len__(self) -> int:
        return len(self.words) - self.i

    def peek(self) -> Optional[str]:
        return self.words[self.i] if self.i < len(self.words) else None

    def next(self, what: str = "argument") -> str:
        if self.i >= len(self.words):
            after = f" after '{self.words[self.i - 1]}'" if self.i else ""
            raise CLIError(f"missing {what}{after}")
        self.i += 1
        return self.words[self.i - 1]

    def at(self, keyword: str) -> bool:
        """Is the next word a prefix of ``keyword`` (``k`` for ``key``)? bpftool's ``is_prefix``."""
        word = self.peek()
        return word is not None and keyword.startswith(word)

    def require(self, n: int) -> None:
        if len(self) < n:
            last = self.words[self.i - 1] if self.i else self.command
            raise CLIError(f"'{last}' needs at least {n} arguments, {len(self)} found")

    def done(self) -> None:
        if self.i < len(self.words):
            raise CLIError(f"unknown arg {self.words[self.i]}")


Command = Callable[[Args, Options], int]


def dispatch(args: Args, opts: Options, commands: Sequence[tuple[str, Command]], obj: str) -> int:
    """Run the first command whose name the next word is a prefix of (``map sh`` is ``show``);
    no word runs the first command, as bpftool does."""
    if not len(args):
        return commands[0][1](args, opts)
    word = args.next()
    for name, fn in commands:
        if name.startswith(word):
            args.command = name
            return fn(args, opts)
    names = ", ".join(dict.fromkeys(n for n, _ in commands))
    raise CLIError(f"unknown command '{word}' for {obj}; commands: {names}")


def help_command(usage: str) -> Command:
    """The ``help`` command of an object: its usage text on stderr (``null`` with ``--json``)."""
    def do_help(args: Args, opts: Options) -> int:
        if opts.json:
            json_null(opts)
        else:
            sys.stderr.write(usage)
        return 0
    return do_help


def pin_command(open_fd: Callable[[Args], Any]) -> Command:
    """The ``pin`` command of an object: ``pin HANDLE FILE`` pins the one object named."""
    def do_pin(args: Args, opts: Options) -> int:
        args.require(3)
        with open_fd(args) as fd:
            pin_fd(fd.fd, args.next("path"))
        json_null(opts)
        return 0
    return do_pin


# -- numbers and bytes as C's strtoul reads them --------------------------------------------------
def strtoul(text: str, base: int = 0) -> Optional[int]:
    """``strtoul(text, &end, base)`` when it consumes all of ``text``, else None."""
    s = text.strip()
    neg = s.startswith("-")
    if s[:1] in "+-" and s:
        s = s[1:]
    if base in (0, 16) and s[:2].lower() == "0x" and len(s) > 2:
        s, base = s[2:], 16
    elif base == 0:
        base = 8 if s.startswith("0") and len(s) > 1 else 10
    if not s:
        return 0 if not text.strip() else None
    try:
        value = int(s, base)
    except ValueError:
        return None
    return (-value) % (1 << 64) if neg else value


def parse_u32(args: Args, what: str) -> int:
    word = args.next(what)
    value = strtoul(word)
    if value is None:
        raise CLIError(f"can't parse {word} as {what}")
    return value & 0xFFFFFFFF


def parse_bytes(args: Args, name: str, n: int) -> bytes:
    """``[hex] BYTES``: exactly ``n`` bytes, each decimal, octal or ``0x`` hex (all hex after
    the word ``hex``)."""
    base = 0
    if args.at("hex"):
        args.next()
        base = 16
    out = bytearray()
    while len(out) < n and len(args):
        word = args.next()
        value = strtoul(word, base)
        if value is None:
            raise CLIError(f"error parsing byte: {word}")
        out.append(value & 0xFF)
    if len(out) != n:
        raise CLIError(f"{name} expected {n} bytes got {len(out)}")
    return bytes(out)


# -- output ---------------------------------------------------------------------------------------
def hex_plain(data: bytes, sep: str = " ") -> str:
    """bpftool's ``fprint_hex``: ``sep`` between bytes, two spaces after 8, a newline after 16."""
    if len(data) <= 8:
        return data.hex(sep) if sep else data.hex()
    rows = []
    for row in range(0, len(data), 16):
        chunk = data[row:row + 16]
        halves = [chunk[:8], chunk[8:]] if len(chunk) > 8 else [chunk]
        rows.append("  ".join(h.hex(sep) if sep else h.hex() for h in halves))
    return "\n".join(rows)


def hex_json(data: bytes) -> str:
    """bpftool's ``print_hex_data_json``: ``["0x01","0x00"]``, as JSON text."""
    if not data:
        return "[]"
    return '["0x' + data.hex(",").replace(",", '","0x') + '"]'


def hex_list(data: bytes) -> list[str]:
    return [f"0x{b:02x}" for b in data]


def jsonw(value: Any, pretty: bool) -> str:
    """``value`` as bpftool's json_writer prints it: compact, or with ``pretty`` its own layout
    (4-space indents, ``[{`` and ``},{`` joined, array scalars on the opening line)."""
    if not pretty:
        import json
        return json.dumps(value, separators=(",", ":"))
    out: list[str] = []
    _jsonw(value, out, 0)
    return "".join(out)


def _jsonw(value: Any, out: list[str], depth: int) -> None:
    import json
    if isinstance(value, dict):
        out.append("{")
        for i, (k, v) in enumerate(value.items()):
            out.append(("," if i else "") + "\n" + "    " * (depth + 1) + json.dumps(k) + ": ")
            _jsonw(v, out, depth + 1)
        out.append(("\n" + "    " * depth if value else "") + "}")
    elif isinstance(value, list):
        out.append("[")
        for i, v in enumerate(value):
            if i:
                out.append(",")
            _jsonw(v, out, depth + 1)
        out.append(("\n" + "    " * depth if value else "") + "]")
    elif callable(value):  # text rendered by the caller for this nesting depth
        out.append(value(depth))
    else:
        out.append(json.dumps(value))


def dumps(value: Any, opts: Options) -> str:
    return jsonw(value, opts.pretty)


def emit(value: Any, opts: Options) -> None:
    """Print one JSON document (compact, or indented with ``-p``)."""
    opts.out.write(dumps(value, opts) + "\n")


def emit_objects(objects: Iterator[Any], opts: Options, single: bool = False) -> None:
    """A JSON array of objects (or the one object when ``single``, as bpftool prints
    ``show id N``)."""
    items = list(objects)
    emit(items[0] if single and len(items) == 1 else items, opts)


def json_null(opts: Options) -> None:
    """What a successful command without output prints in JSON mode."""
    if opts.json:
        opts.out.write("null\n")


# -- names bpftool uses ---------------------------------------------------------------------------
def type_name(value: Any) -> str:
    """``hash``, ``xdp``, ``raw_tracepoint``: the lowercase UAPI name, as libbpf spells it."""
    return value.name.lower() if hasattr(value, "name") else str(value)


def type_plain(value: Any) -> str:
    return type_name(value) if hasattr(value, "name") else f"type {int(value)}"


def type_json(value: Any) -> Any:
    return type_name(value) if hasattr(value, "name") else int(value)


def known(enum: Any, value: int) -> Any:
    """``enum(value)``, or the plain int when pybpf has no name for it (a newer kernel's)."""
    try:
        return enum(value)
    except ValueError:
        return value


def dev_plain(ifindex: int, ns_dev: int, ns_ino: int) -> str:
    """``  offloaded_to NAME`` for an offloaded object ("" when not offloaded)."""
    if not ifindex:
        return ""
    name = _ifname_in_netns(ifindex, ns_dev, ns_ino)
    return f"  offloaded_to {name}" if name else \
        f"  offloaded_to ifindex {ifindex} ns_dev {ns_dev} ns_ino {ns_ino}"


def dev_json(ifindex: int, ns_dev: int, ns_ino: int) -> dict:
    if not ifindex:
        return {}
    dev: dict = {"ifindex": ifindex, "ns_dev": ns_dev, "ns_inode": ns_ino}
    name = _ifname_in_netns(ifindex, ns_dev, ns_ino)
    if name:
        dev["ifname"] = name
    return {"dev": dev}


def _ifname_in_netns(ifindex: int, ns_dev: int, ns_ino: int) -> Optional[str]:
    st = os.stat("/proc/self/ns/net")
    if st.st_dev != ns_dev or st.st_ino != ns_ino:
        return None
    from ..links.netlink import ifname
    return ifname(ifindex)


# -- handles --------------------------------------------------------------------------------------
_NOUN = {"map": "map", "prog": "program", "link": "link", "btf": "BTF object"}


def parse_id(args: Args) -> int:
    return parse_u32(args, "ID")


def open_pinned(path: str, kind: str) -> Any:
    """The FD pinned at ``path``; an object of another kind is bpftool's "incorrect object type"."""
    from ..sys import objects
    try:
        fd = objects.obj_get(path)
    except BPFError as e:
        raise CLIError(f"bpf obj get ({path}): {why(e)}", errno_code(e.errno)) from None
    found = objects.fd_kind(fd.fd)
    if found != kind:
        fd.close()
        raise CLIError(f"incorrect object type: {found or 'unknown'}")
    return fd


def open_by_id(kind: str, obj_id: int) -> Any:
    from ..sys import objects
    try:
        return objects.fd_by_id(kind, obj_id)
    except BPFError as e:
        raise CLIError(f"get {kind} by id ({obj_id}): {why(e)}", errno_code(e.errno)) from None


def open_all(kind: str) -> Iterator[Any]:
    """An FD for every object of ``kind`` in the kernel (ones gone meanwhile skipped)."""
    from ..sys import objects
    for _, fd in objects.open_all(kind):
        yield fd


def parse_handles(args: Args, kind: str, match: Optional[Callable[[Any, str, str], bool]] = None,
                  keywords: Sequence[str] = ("id", "name", "pinned")) -> list[Any]:
    """FDs the handle names: ``id N`` and ``pinned PATH`` one, ``name``/``tag`` all matches
    (none is an error). ``match(fd, keyword, value)`` says whether an object matches."""
    word = args.peek()
    if word is None:
        raise CLIError(f"expected {_expected(keywords)}, got nothing")
    if "id" in keywords and args.at("id"):
        args.next()
        return [open_by_id(kind, parse_id(args))]
    if "pinned" in keywords and args.at("pinned"):
        args.next()
        return [open_pinned(args.next("path"), kind)]
    for keyword in ("tag", "name"):
        if keyword in keywords and args.at(keyword) and match is not None:
            args.next()
            value = args.next(keyword)
            check = _check_tag if keyword == "tag" else _check_name
            value = check(value, kind)
            fds = []
            for fd in open_all(kind):
                if match(fd, keyword, value):
                    fds.append(fd)
                else:
                    fd.close()
            if not fds:
                raise CLIError(f"no {_NOUN[kind]} with {keyword} {value}",
                               errno_code(_errno.ENOENT))
            return fds
    raise CLIError(f"expected {_expected(keywords)}, got: '{word}'?")


def _expected(keywords: Sequence[str]) -> str:
    quoted = [f"'{k}'" for k in keywords]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


def _check_name(value: str, kind: str) -> str:
    limit = 15 if kind == "map" else 127
    if len(value.encode()) > limit:
        raise CLIError("can't parse name")
    return value


def _check_tag(value: str, kind: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = b""
    if len(raw) != 8:
        raise CLIError("can't parse tag")
    return raw.hex()


def one_handle(fds: list[Any], kind: str) -> Any:
    """The single FD of a handle; several matches is bpftool's error for element commands."""
    if len(fds) > 1:
        for fd in fds:
            fd.close()
        noun = {"map": "maps", "prog": "programs"}.get(kind, kind + "s")
        raise CLIError(f"several {noun} match this handle")
    return fds[0]


def pinned_table(kind: str, opts: Options) -> dict[int, list[str]]:
    """Pinned paths by id when ``-f`` asks for them."""
    if not opts.bpffs:
        return {}
    from ..sys import objects
    return objects.pins(kind)


def pin_fd(fd: int, path: str) -> None:
    """Pin an fd at ``path``, with bpftool's error text."""
    from ..sys import objects
    try:
        objects.obj_pin(fd, path, "object")
    except BPFError as e:
        raise CLIError(f"can't pin the object ({path}): {why(e)}", errno_code(e.errno)) from None
