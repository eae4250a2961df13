"""``post_attach_mark``: the exporter's process has the native function ebpf_exporter's binary
has, so ``SEC("uprobe//proc/self/exe:post_attach_mark")`` runs once, in the exporter, after
every config is attached (an object written by pybpf, loaded with ctypes, found through
``pybpf.links.uprobe.process_symbol``)."""
from __future__ import annotations

import ctypes
import platform
import subprocess
from pathlib import Path

import pytest

from pybpf import features
from pybpf.exporter import marker
from pybpf.exporter.config import ConfigError
from pybpf.links.uprobe import Binary, process_symbol

from .test_features import series

BPF = Path(__file__).parent / "bpf" / "post_attach.bpf.c"
CONFIG = """
metrics:
  counters:
    - name: start_marks_total
      help: Post-attach marks by the process that ran them
      labels:
        - {name: pid, size: 4, decoders: [{name: uint}]}
    - name: execs_seen_total
      help: Execs
"""


def test_shared_object_is_a_loadable_library(tmp_path):
    names = ["first_fn", "second_fn", "third"]
    data = marker.shared_object(names, platform.machine())
    path = tmp_path / "marks.so"
    path.write_bytes(data)
    funcs = Binary(str(path)).functions               # pybpf's ELF reader: .dynsym
    assert sorted(funcs) == sorted(names)
    ret = marker.MACHINES[platform.machine()][1]
    assert len({f.offset for f in funcs.values()}) == 3
    for f in funcs.values():
        assert data[f.offset:f.offset + f.size] == ret
    out = subprocess.run(["readelf", "-W", "--dyn-syms", "-l", str(path)], check=True,
                         capture_output=True, text=True).stdout
    assert "GNU_STACK" in out and "DYNAMIC" in out and "FUNC    GLOBAL DEFAULT" in out
    lib = ctypes.CDLL(str(path))                      # the dynamic linker: hash chain, dlsym
    for name in names:
        assert getattr(lib, name)() is not None       # returns (its rax: whatever it held)


def test_unknown_machine_refused():
    with pytest.raises(ConfigError, match="no return instruction known for machine 'mips'"):
        marker.shared_object([marker.NAME], "mips")


def test_process_symbol_finds_the_loaded_marker():
    marker.load()
    path, offset = process_symbol(marker.NAME)
    assert path == marker.path_for(marker.shared_object([marker.NAME], platform.machine()))
    assert offset == Binary(path).symbol(marker.NAME).offset
    assert process_symbol("pybpf_no_such_function") is None


@pytest.mark.skipif(not features.uprobes(), reason=features.uprobes().reason)
def test_uprobe_runs_once_in_the_exporter(run_exporter, tmp_path):
    import pybpf
    pybpf.compile(BPF, tmp_path / "post-attach.bpf.o")
    (tmp_path / "post-attach.yaml").write_text(CONFIG)
    exp = run_exporter(tmp_path, "post-attach", "--config.strict")
    text = exp.get()[2].decode()
    assert series(text, "ebpf_exporter_start_marks_total") == {f'{{pid="{exp.proc.pid}"}}': 1}
    attached = series(text, "ebpf_exporter_ebpf_program_attached")
    assert len(attached) == 2 and set(attached.values()) == {1}
    # this process calling its own post_attach_mark: not the exporter's probe (pid-scoped)
    marker.load()()
    subprocess.run(["true"], check=True)
    text = exp.get()[2].decode()
    assert series(text, "ebpf_exporter_start_marks_total") == {f'{{pid="{exp.proc.pid}"}}': 1}
    assert series(text, "ebpf_exporter_execs_seen_total")[None] >= 1
