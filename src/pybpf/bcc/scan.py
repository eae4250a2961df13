"""A C token scanner for source-to-source rewriting: tokens keep their offsets in the text,
comments and whitespace are skipped, a preprocessor directive (with its continuation lines)
is one token."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+|\n)
  | (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<str>"(?:\\.|[^"\\\n])*")
  | (?P<chr>'(?:\\.|[^'\\\n])*')
  | (?P<id>[A-Za-z_]\w*)
  | (?P<num>\.?\d(?:[eEpP][+-]|[\w.])*)
  | (?P<punct>->|\+\+|--|<<=|>>=|<<|>>|<=|>=|==|!=|&&|\|\||[-+*/%&|^]=|\#\#|\.\.\.|.)
""", re.S | re.X)
_DIRECTIVE = re.compile(r"#(?:\\\n|[^\n])*")
_OPEN = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Token:
    kind: str   # id, num, str, chr, punct, pp (a preprocessor directive)
    text: str
    start: int
    end: int


def tokenize(text: str) -> list[Token]:
    """The tokens of ``text``; directives are ``pp`` tokens."""
    out: list[Token] = []
    pos, line_start = 0, True
    while pos < len(text):
        if line_start and text[pos] == "#":
            m = _DIRECTIVE.match(text, pos)
            assert m is not None
            out.append(Token("pp", m.group(), pos, m.end()))
            pos = m.end()
            continue
        m = _TOKEN.match(text, pos)
        assert m is not None  # the last alternative matches any character
        kind = m.lastgroup or "punct"
        if kind == "ws":
            line_start = line_start or m.group() == "\n"
        elif kind != "comment":
            out.append(Token(kind, m.group(), pos, m.end()))
            line_start = False
        pos = m.end()
    return out


def closing(tokens: list[Token], i: int) -> int:
    """Index of the bracket closing the one at ``tokens[i]``; ValueError if unbalanced."""
    stack = [_OPEN[tokens[i].text]]
    for j in range(i + 1, len(tokens)):
        t = tokens[j].text
        if tokens[j].kind != "punct":
            continue
        if t in _OPEN:
            stack.append(_OPEN[t])
        elif t in (")", "]", "}"):
            if stack.pop() != t:
                raise ValueError(f"unbalanced {t!r}")
            if not stack:
                return j
    raise ValueError(f"unclosed {tokens[i].text!r}")


def split_args(tokens: list[Token], open_i: int, close_i: int) -> list[tuple[int, int]]:
    """Comma-separated arguments between brackets ``open_i`` and ``close_i``, as token index
    ranges [first, last+1); an empty argument list is []."""
    args: list[tuple[int, int]] = []
    depth, start = 0, open_i + 1
    for j in range(open_i + 1, close_i):
        t = tokens[j]
        if t.kind != "punct":
            continue
        if t.text in _OPEN:
            depth += 1
        elif t.text in (")", "]", "}"):
            depth -= 1
        elif t.text == "," and depth == 0:
            args.append((start, j))
            start = j + 1
    if start < close_i or args:
        args.append((start, close_i))
    return args


def span(text: str, tokens: list[Token], rng: tuple[int, int]) -> str:
    """The source text of token range ``rng`` (empty for an empty range)."""
    first, last = rng
    if first >= last:
        return ""
    return text[tokens[first].start:tokens[last - 1].end]


def line_of(text: str, offset: int) -> int:
    """1-based line of ``offset``."""
    return text.count("\n", 0, offset) + 1


def find_prev(tokens: list[Token], i: int, texts: set[str]) -> Optional[int]:
    """Index of the nearest token before ``i`` whose text is in ``texts``."""
    for j in range(i - 1, -1, -1):
        if tokens[j].text in texts:
            return j
    return None
