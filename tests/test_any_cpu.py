"""The pure layers (``pybpf.elf``, ``pybpf.btf``, ``pybpf.asm``) import and parse on a CPU
pybpf has no syscall numbers for: the syscall layer is imported on first use only."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VMLINUX = Path("/sys/kernel/btf/vmlinux")

# Run in a fresh interpreter whose machine name is one pybpf does not know (the kernel is
# not asked anything: parsing needs no syscall).
_FAKE_MACHINE = """
import os, platform, sys, json
_real = os.uname()
os.uname = lambda: os.uname_result((_real.sysname, _real.nodename, _real.release,
                                   _real.version, "pdp11"))
platform.machine = lambda: "pdp11"
import pybpf, pybpf.asm, pybpf.btf, pybpf.elf
from pybpf.asm import assemble, disassemble, exit_, mov64_imm, R0
from pybpf.btf import types as T
from pybpf.btf.spec import Spec
from pybpf.elf import ObjectSpec
spec = ObjectSpec.from_file(sys.argv[1])
vmlinux = Spec.from_file(sys.argv[2])
code = assemble([mov64_imm(R0, 7), exit_()])
try:
    import pybpf.sys.syscall
except ImportError as e:
    refused = str(e)
else:
    refused = ""
print(json.dumps({
    "programs": sorted(spec.programs),
    "maps": sorted(spec.maps),
    "types": len(vmlinux),
    "task_struct": [m.name for m in vmlinux.find("task_struct", T.Struct).members][:2],
    "disasm": disassemble(code),
    "refused": refused,
    "syscall_loaded_before": "pybpf.sys.syscall" in sys.modules and not refused,
}))
"""


def test_parses_object_and_vmlinux_btf_on_an_unknown_cpu(bpf_objects) -> None:
    obj = bpf_objects["elf_maps"]
    out = subprocess.run([sys.executable, "-c", _FAKE_MACHINE, str(obj), str(VMLINUX)],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.splitlines()[-1])
    # the same object parsed here, on the real machine, gives the same names
    from pybpf.elf import ObjectSpec
    spec = ObjectSpec.from_file(obj)
    assert got["programs"] == sorted(spec.programs) and got["programs"]
    assert got["maps"] == sorted(spec.maps) and got["maps"]
    from pybpf.btf import types as T
    from pybpf.btf.spec import Spec
    vmlinux = Spec.from_file(VMLINUX)
    assert got["types"] == len(vmlinux) > 10000
    want = [m.name for m in vmlinux.find("task_struct", T.Struct).members][:2]
    assert got["task_struct"] == want and len(want) == 2
    from pybpf.asm import R0, assemble, disassemble, exit_, mov64_imm
    assert got["disasm"] == disassemble(assemble([mov64_imm(R0, 7), exit_()]))
    assert got["disasm"][1].endswith("(95) exit")
    # the machine really was unknown to the syscall layer, which was never imported by parsing
    assert got["refused"] == "pybpf: unsupported architecture pdp11"
    assert not got["syscall_loaded_before"]
