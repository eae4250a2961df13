"""``pybpf._record``: the dataclass subset the load path uses, without importing dataclasses."""
from __future__ import annotations

import copy
import functools
import subprocess
import sys

import pytest

from pybpf._record import field, fields, record, replace


@record
class Spec:
    name: str
    size: int = 4
    items: list[int] = field(default_factory=list)
    blob: bytes = field(default=b"", repr=False, compare=False)


@record(frozen=True)
class Entry:
    index: int
    name: str
    _file: bytes = field(default=b"", repr=False, compare=False)

    @functools.cached_property
    def data(self) -> bytes:
        return self._file[self.index:]


def test_init_defaults_factories_repr_and_eq():
    a, b = Spec("m"), Spec("m", 4, [], b"other")
    assert (a.name, a.size, a.items, a.blob) == ("m", 4, [], b"")
    a.items.append(1)
    assert Spec("m").items == [] and a.items == [1]  # each instance its own list
    assert repr(b) == "Spec(name='m', size=4, items=[])"
    assert b == Spec(name="m") and b != a and Spec("m") != Entry(0, "m")
    assert fields(Spec) == ("name", "size", "items", "blob")
    with pytest.raises(TypeError):
        Spec()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        hash(a)  # mutable records are not hashable, as dataclasses


def test_frozen_hash_cached_property_and_replace():
    e = Entry(1, "x", b"abc")
    with pytest.raises(AttributeError, match="frozen Entry"):
        e.name = "y"  # type: ignore[misc]
    assert e.data == b"bc" and e.data is e.data
    assert hash(e) == hash(Entry(1, "x")) and {e, Entry(1, "x")} == {e}
    r = replace(e, name="z")
    assert (r.index, r.name, r._file) == (1, "z", b"abc") and e.name == "x"
    with pytest.raises(TypeError, match="no field nope"):
        replace(e, nope=1)
    deep = copy.deepcopy(Spec("m", items=[1]))
    assert deep == Spec("m", items=[1])


def test_a_field_without_a_default_after_one_with_is_refused():
    with pytest.raises(TypeError, match="'b' without a default"):
        @record
        class Bad:
            a: int = 0
            b: int


def test_loading_an_object_imports_no_dataclasses(tmp_path):
    """The warm path of a BCC tool parses and loads a BPF object: none of that imports
    ``dataclasses`` (and with it ``inspect``, ``ast``, ``dis``)."""
    code = ("import sys\nfrom pybpf.elf import ObjectSpec, load\nimport pybpf.bcc.bpf\n"
            "print(sorted(m for m in ('dataclasses', 'inspect', 'ast', 'dis') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", out.stderr
