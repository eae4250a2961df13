"""The CLI's parsing and output helpers, without the kernel: C strtoul rules for bytes and
numbers, bpftool's hex layouts, its JSON writer's pretty layout."""
from __future__ import annotations

import json

import pytest

from pybpf.cli.common import (Args, CLIError, hex_json, hex_plain, jsonw, parse_bytes,
                              strtoul)


@pytest.mark.parametrize("text,base,value", [
    ("10", 0, 10), ("0x10", 0, 16), ("010", 0, 8), ("0", 0, 0), ("ff", 16, 255),
    ("0xff", 16, 255), ("-1", 0, (1 << 64) - 1), (" 7", 0, 7), ("08", 0, None),
    ("0xzz", 0, None), ("1.5", 0, None), ("0g", 16, None)])
def test_strtoul(text, base, value):
    assert strtoul(text, base) == value


def test_parse_bytes():
    assert parse_bytes(Args(["0x2", "0", "0", "0"]), "key", 4) == b"\x02\0\0\0"
    assert parse_bytes(Args(["hex", "48", "65"]), "value", 2) == b"He"
    assert parse_bytes(Args(["h", "ff", "0x10"]), "value", 2) == b"\xff\x10"  # a prefix of hex
    assert parse_bytes(Args(["256", "-1"]), "v", 2) == b"\x00\xff"  # truncated as a C cast
    rest = Args(["1", "2", "value", "3"])
    assert parse_bytes(rest, "key", 2) == b"\1\2" and rest.peek() == "value"
    with pytest.raises(CLIError, match="key expected 4 bytes got 3"):
        parse_bytes(Args(["1", "2", "3"]), "key", 4)
    with pytest.raises(CLIError, match="error parsing byte: 0x"):
        parse_bytes(Args(["0x"]), "key", 1)


def test_hex_layouts():
    assert hex_plain(bytes(range(4))) == "00 01 02 03"
    assert hex_plain(bytes(range(12))) == "00 01 02 03 04 05 06 07  08 09 0a 0b"
    assert hex_plain(bytes(range(20))) == ("00 01 02 03 04 05 06 07  08 09 0a 0b 0c 0d 0e 0f\n"
                                           "10 11 12 13")
    assert hex_plain(bytes.fromhex("614b434cd8324ecc"), "") == "614b434cd8324ecc"
    assert json.loads(hex_json(b"\x01\xab")) == ["0x01", "0xab"] and hex_json(b"") == "[]"


def test_json_writer_layout():
    assert jsonw({"a": [1, 2]}, False) == '{"a":[1,2]}'
    assert jsonw([{"key": 1, "value": {"x": []}}], True) == (
        '[{\n        "key": 1,\n        "value": {\n            "x": []\n        }\n    }\n]')
    assert jsonw({"k": ["0x01"]}, True) == '{\n    "k": ["0x01"\n    ]\n}'
    assert jsonw({"v": lambda depth: f"<{depth}>"}, True) == '{\n    "v": <1>\n}'


def test_args_prefixes():
    args = Args(["k", "1"])
    assert args.at("key") and not args.at("value")
    args.next()
    with pytest.raises(CLIError, match="unknown arg 1"):
        args.done()
