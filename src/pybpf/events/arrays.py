"""numpy structured dtypes for fixed-size records (numpy is optional: ``pip install pybpf[numpy]``).

``dtype_of(spec)`` takes a BTF type (or the StructValue class ``pybpf.btf.values`` made of
one), a ctypes Structure or a numpy dtype. BTF types follow the codec's rules
(``values.numpy_dtype``): ``char`` arrays become ``S<n>`` (bytes, NUL-padded), other arrays
sub-arrays, pointers ``u8``; numpy has no bitfields, so a struct with one is refused, naming
the member.
"""
from __future__ import annotations

import ctypes
from typing import Any

from ..btf import types as T
from ..btf import values
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
    if isinstance(spec, type) and issubclass(spec, values.StructValue):
        return values.numpy_dtype(spec._type, np)  # its layout has padding fields
    if isinstance(spec, type) and issubclass(spec, (ctypes.Structure, ctypes.Union)):
        return _ctypes_dtype(spec)
    if isinstance(spec, T.Type):
        return values.numpy_dtype(spec, np)
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
