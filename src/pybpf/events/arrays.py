"""numpy structured dtypes for fixed-size records (numpy is optional: ``pip install pybpf[numpy]``).

``dtype_of(spec)`` takes a BTF struct/union, a ctypes Structure (also the classes
:func:`~pybpf.events.decode.ctypes_from_btf` makes) or a numpy dtype. ``char`` arrays become
``S<n>`` (bytes, NUL-padded), other arrays sub-arrays, pointers ``u8``; numpy has no bitfields,
so a struct with one is refused, naming the member.
"""
from __future__ import annotations

import ctypes
from typing import Any

from ..errors import UnsupportedFeatureError, UsageError


def numpy() -> Any:
    """The numpy module, imported on first use; a clear error when it is not installed."""
    try:
        import numpy as np
    except ImportError:
        raise UnsupportedFeatureError(
            "record arrays need numpy, which is not installed: pip install 'pybpf[numpy]'"
        ) from None
    return np


def dtype_of(spec: Any) -> Any:
    """The numpy dtype of a record type (BTF struct, ctypes Structure, or a dtype)."""
    np = numpy()
    if isinstance(spec, np.dtype):
        return spec
    btf = getattr(spec, "_btf", None)  # a class made from BTF: its layout has padding fields
    if btf is not None:
        return _btf_dtype(btf)
    if isinstance(spec, type) and issubclass(spec, (ctypes.Structure, ctypes.Union)):
        return _ctypes_dtype(spec)
    from ..btf import types as T
    if isinstance(spec, T.Type):
        return _btf_dtype(spec)
    raise UsageError(f"no numpy dtype for {spec!r}: give a BTF struct, a ctypes Structure "
                     "subclass or a numpy dtype")


def _ctypes_dtype(t: Any) -> Any:
    """numpy's own conversion, except that ``c_char`` arrays become ``S<n>`` as in BTF."""
    np = numpy()
    if isinstance(t, type) and issubclass(t, ctypes.Array):
        if t._type_ is ctypes.c_char:
            return np.dtype(f"S{t._length_}")
        return np.dtype((_ctypes_dtype(t._type_), (t._length_,)))
    if isinstance(t, type) and issubclass(t, (ctypes.Structure, ctypes.Union)):
        names, formats, offsets = [], [], []
        for f in t._fields_:
            if len(f) > 2:
                raise UsageError(f"{t.__name__}: field {f[0]!r} is a bitfield, which numpy "
                                 "cannot represent; decode records as objects instead")
            names.append(f[0])
            formats.append(_ctypes_dtype(f[1]))
            offsets.append(getattr(t, f[0]).offset)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": ctypes.sizeof(t)})
    try:
        return np.dtype(t)
    except (TypeError, ValueError, NotImplementedError) as e:
        raise UsageError(f"no numpy dtype for {t!r}: {e}") from None


def _btf_dtype(t: Any) -> Any:
    from ..btf import types as T
    from .decode import _is_char
    np = numpy()
    t = T.skip_qualifiers(t)
    if isinstance(t, T.Int):
        if t.encoding & T.INT_BOOL and t.size == 1:
            return np.dtype("?")
        if _is_char(t):
            return np.dtype("S1")
        if t.size not in (1, 2, 4, 8):
            return np.dtype((np.void, t.size))
        return np.dtype(f"<{'i' if t.signed else 'u'}{t.size}")
    if isinstance(t, T.Enum):
        return np.dtype(f"<{'i' if t.signed else 'u'}{t.size}")
    if isinstance(t, T.Float):
        return np.dtype(f"<f{t.size}") if t.size in (4, 8) else np.dtype((np.void, t.size))
    if isinstance(t, T.Pointer):
        return np.dtype(f"<u{T.sizeof(t)}")
    if isinstance(t, T.Array):
        if _is_char(t.type):
            return np.dtype(f"S{t.nelems}")
        return np.dtype((_btf_dtype(t.type), (t.nelems,)))
    if isinstance(t, T.Composite):
        names, formats, offsets = [], [], []
        for i, m in enumerate(t.members):
            if m.bitfield_size or m.offset % 8:
                raise UsageError(f"{t.kind.name.lower()} {t.name or '(anon)'}: member "
                                 f"{m.name!r} is a bitfield, which numpy cannot represent; "
                                 "decode records as objects (decode=the struct) instead")
            sub = _btf_dtype(m.type)
            mt = T.skip_qualifiers(m.type)
            if not m.name and isinstance(mt, T.Composite):  # anonymous: flatten as C does
                for n in sub.names:
                    f, o = sub.fields[n][:2]
                    names.append(n), formats.append(f), offsets.append(m.offset // 8 + o)
                continue
            names.append(m.name or f"_anon{i}")
            formats.append(sub)
            offsets.append(m.offset // 8)
        return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                         "itemsize": t.size})
    raise UsageError(f"{t!r} has no fixed layout for a numpy dtype")
