"""BCC's histogram printing (``table.print_log2_hist``, ``print_linear_hist``,
``print_json_hist``), in BCC's exact text.

A table is anything with ``items()`` giving (ctypes key, ctypes leaf) pairs and a ``Key``
type. An integer key is the slot (log2 or linear); a structure key is (section, slot): its
first field is the section (``bucket_fn`` maps it, ``bucket_sort_fn`` orders the sections,
``section_print_fn`` formats it under ``section_header``), its second the slot (the third
when the second is the ``__pad_1`` padding member). Each section prints as one histogram.

Log2 slot ``i`` counts values in [2^(i-1), 2^i - 1] (slot 1 is "0 -> 1"); rows run from slot
1 to the last non-empty slot, with a bar of ``*`` scaled to the largest count (40 wide, 20
when slots past 32 need wider columns). ``strip_leading_zero`` drops the empty rows before
the first non-empty one.
"""
from __future__ import annotations

import ctypes
import math
import time
from typing import Any, Callable, Optional

stars_max = 40
log2_index_max = 65
linear_index_max = 1025


def _stars(val: int, val_max: int, width: int) -> str:
    """``*`` for ``val`` scaled to ``val_max`` over ``width`` (a full bar ends in ``+``
    when ``val`` exceeds ``val_max``)."""
    count = min(width, max(0, math.floor(width * val / val_max - 1) + 1))
    text = "*" * count
    if val > val_max:
        text = text[:-1] + "+"
    return text


def _extent(vals: list[int]) -> tuple[int, int]:
    """The last non-empty slot (-1 when none) and the largest count."""
    idx_max = max((i for i, v in enumerate(vals) if v > 0), default=-1)
    return idx_max, max([0, *vals])


def log2_lines(vals: list[int], val_type: str, strip_leading_zero: Any = None) -> list[str]:
    """The lines of one log2 histogram of slot counts ``vals``."""
    idx_max, val_max = _extent(vals)
    if idx_max <= 32:
        header, body, stars = ("     %-19s : count     distribution",
                               "%10d -> %-10d : %-8d |%-*s|", stars_max)
    else:
        header, body, stars = ("               %-29s : count     distribution",
                               "%20d -> %-20d : %-8d |%-*s|", stars_max // 2)
    lines = [header % val_type] if idx_max > 0 else []
    for i in range(1, idx_max + 1):
        low, high = (1 << i) >> 1, (1 << i) - 1
        if low == high:
            low -= 1
        val = vals[i]
        if strip_leading_zero and not val:
            continue
        strip_leading_zero = False
        lines.append(body % (low, high, val, stars, _stars(val, val_max, stars)))
    return lines


def linear_lines(vals: list[int], val_type: str, strip_leading_zero: Any = None) -> list[str]:
    """The lines of one linear histogram of slot counts ``vals``."""
    idx_max, val_max = _extent(vals)
    lines = ["     %-13s : count     distribution" % val_type] if idx_max >= 0 else []
    for i in range(idx_max + 1):
        val = vals[i]
        if strip_leading_zero and not val:
            continue
        strip_leading_zero = False
        lines.append("        %-10d : %-8d |%-*s|" % (i, val, stars_max,
                                                     _stars(val, val_max, stars_max)))
    return lines


def json_hist(vals: list[int], val_type: str, section_bucket: Optional[tuple[str, Any]] = None
              ) -> dict[str, Any]:
    """One log2 histogram as BCC's JSON-like dict: ``ts``, ``val_type``, ``data`` (a list of
    ``interval-start``, ``interval-end``, ``count``) and the section, if any."""
    max_nonzero = max((i for i, v in enumerate(vals) if v != 0), default=0)
    data = []
    index, prev = 1, 0
    for i in range(1, max_nonzero + 1):
        index *= 2
        data.append({"interval-start": prev, "interval-end": index - 1, "count": int(vals[i])})
        prev = index
    hist: dict[str, Any] = {"ts": time.strftime("%Y-%m-%d %H:%M:%S"), "val_type": val_type,
                            "data": data}
    if section_bucket:
        hist[section_bucket[0]] = section_bucket[1]
    return hist


def _is_struct_key(table: Any) -> bool:
    return isinstance(table.Key(), ctypes.Structure)


def _sections(table: Any, bucket_fn: Optional[Callable[[Any], Any]],
              bucket_sort_fn: Optional[Callable[[list], list]], index_max: int
              ) -> list[tuple[Any, list[int]]]:
    """(section, slot counts) of a table keyed by (section, slot) structures."""
    fields = [f[0] for f in table.Key._fields_]
    section_field = fields[0]
    slot_field = fields[2] if fields[1] == "__pad_1" and len(fields) == 3 else fields[1]
    sections: dict[Any, list[int]] = {}
    for k, v in table.items():
        bucket = getattr(k, section_field)
        if bucket_fn:
            bucket = bucket_fn(bucket)
        vals = sections.setdefault(bucket, [0] * index_max)
        vals[getattr(k, slot_field)] = v.value
    order = list(sections)
    if bucket_sort_fn:
        order = bucket_sort_fn(order)
    return [(b, sections[b]) for b in order]


def _slots(table: Any, index_max: int, what: str) -> list[int]:
    vals = [0] * index_max
    for k, v in table.items():
        try:
            vals[k.value] = v.value
        except IndexError:
            raise IndexError(f"Index in {what}() of {k.value} exceeds max of {index_max}.") \
                from None
    return vals


def _print_sections(table: Any, lines_of: Callable[..., list[str]], index_max: int,
                    what: str, val_type: str, section_header: str,
                    section_print_fn: Optional[Callable[[Any], str]],
                    bucket_fn: Optional[Callable[[Any], Any]], strip_leading_zero: Any,
                    bucket_sort_fn: Optional[Callable[[list], list]]) -> None:
    out = []
    if _is_struct_key(table):
        for bucket, vals in _sections(table, bucket_fn, bucket_sort_fn, index_max):
            shown = section_print_fn(bucket) if section_print_fn else repr(bucket)
            out.append(f"\n{section_header} = {shown}")
            out.extend(lines_of(vals, val_type, strip_leading_zero))
    else:
        out = lines_of(_slots(table, index_max, what), val_type, strip_leading_zero)
    if out:
        print("\n".join(out))


def print_log2_hist(table: Any, val_type: str = "value", section_header: str = "Bucket ptr",
                    section_print_fn: Optional[Callable[[Any], str]] = None,
                    bucket_fn: Optional[Callable[[Any], Any]] = None,
                    strip_leading_zero: Any = None,
                    bucket_sort_fn: Optional[Callable[[list], list]] = None) -> None:
    """Print ``table`` (log2 slots) as BCC does; a structure key prints one histogram per
    section, each after a ``\\n<section_header> = <section>`` line."""
    _print_sections(table, log2_lines, log2_index_max, "print_log2_hist", val_type,
                    section_header, section_print_fn, bucket_fn, strip_leading_zero,
                    bucket_sort_fn)


def print_linear_hist(table: Any, val_type: str = "value", section_header: str = "Bucket ptr",
                      section_print_fn: Optional[Callable[[Any], str]] = None,
                      bucket_fn: Optional[Callable[[Any], Any]] = None,
                      strip_leading_zero: Any = None,
                      bucket_sort_fn: Optional[Callable[[list], list]] = None) -> None:
    """Print ``table`` (linear slots 0..1024) as BCC does, sections as ``print_log2_hist``."""
    _print_sections(table, linear_lines, linear_index_max, "print_linear_hist", val_type,
                    section_header, section_print_fn, bucket_fn, strip_leading_zero,
                    bucket_sort_fn)


def print_json_hist(table: Any, val_type: str = "value", section_header: str = "Bucket ptr",
                    section_print_fn: Optional[Callable[[Any], str]] = None,
                    bucket_fn: Optional[Callable[[Any], Any]] = None,
                    bucket_sort_fn: Optional[Callable[[list], list]] = None) -> None:
    """Print ``table`` (log2 slots) as BCC's JSON histogram dicts, one per section."""
    if _is_struct_key(table):
        for bucket, vals in _sections(table, bucket_fn, bucket_sort_fn, log2_index_max):
            shown = section_print_fn(bucket) if section_print_fn else bucket
            print(json_hist(vals, val_type, (section_header, shown)))
    else:
        print(json_hist(_slots(table, log2_index_max, "print_json_hist"), val_type))
