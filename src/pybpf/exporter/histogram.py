"""Kernel histogram maps to Prometheus histograms, as ebpf_exporter turns them.

The key's last label is the bucket number. ``exp2``: bucket ``b`` counts values up to
``2**b``; ``exp2zero``: bucket 0 counts zeros, ``b`` values up to ``2**(b-1)``; ``linear``:
up to ``b``; ``fixed``: ``bucket_keys`` are the upper bounds themselves. Every bound is
multiplied by ``bucket_multiplier``. Buckets from ``bucket_min`` to ``bucket_max`` (or the
fixed keys) are always all exported, missing ones back-filled, with cumulative counts; the
bucket after the last (``bucket_max + 1``) holds the optional sum of observed values.
"""
from __future__ import annotations

from .config import Histogram


def bucket_bound(h: Histogram, bucket: float) -> float:
    """The upper bound of bucket number ``bucket`` (the ``le`` label's value)."""
    if h.bucket_type == "exp2":
        return 2.0 ** bucket * h.bucket_multiplier
    if h.bucket_type == "exp2zero":
        return 0.0 if bucket == 0 else 2.0 ** (bucket - 1) * h.bucket_multiplier
    return bucket * h.bucket_multiplier


def bucket_keys(h: Histogram) -> list[float]:
    """The bucket numbers exported, in order."""
    if h.bucket_type == "fixed":
        return list(h.bucket_keys)
    return [float(b) for b in range(h.bucket_min, h.bucket_max + 1)]


def transform(h: Histogram, counts: dict[float, float]) -> tuple[list[tuple[float, float]],
                                                                  float, float]:
    """Per-bucket counts to ``([(le, cumulative count)], count, sum)``."""
    keys = bucket_keys(h)
    out, total = [], 0.0
    for key in keys:
        total += counts.get(key, 0.0)
        out.append((bucket_bound(h, key), total))
    return out, total, counts.get(keys[-1] + 1, 0.0) * h.bucket_multiplier


def parse_bucket(text: str) -> int:
    """A bucket label as Go's ``strconv.ParseUint(s, 0, 64)`` reads it (0x, 0o, 0b prefixes;
    a leading 0 means octal)."""
    t = text.replace("_", "")
    if len(t) > 1 and t[0] == "0" and t[1] not in "xXoObB":
        return int(t[1:], 8)
    value = int(t, 0)
    if value < 0:
        raise ValueError(f"negative bucket {text!r}")
    return value
