"""A Python label decoder for pybpf exporter (``decoders: [{name: uint}, {name:
user_names:user}]``): a user id, as the previous decoder wrote it, to the user's name."""
from __future__ import annotations

import pwd
from typing import Any


def user(data: bytes, conf: Any) -> str:
    uid = int(data)
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry: keep the number
        return f"uid:{uid}"
