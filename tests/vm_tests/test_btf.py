"""Kernel BTF objects on every kernel (bpf_btf_info grew a name in 5.11)."""
from pybpf.btf import BTF, Spec, int_btf, types as T


def test_loaded_btf_info_and_raw_round_trip():
    blob = int_btf()
    with BTF.load(blob) as btf:
        info = btf.info()
        assert info.id > 0 and info.size == len(blob) and not info.kernel_btf
        assert btf.raw() == blob
        assert isinstance(btf.spec().find("int"), T.Int)


def test_vmlinux_btf_parses():
    task = Spec.vmlinux().find("task_struct", T.Struct)
    assert task.member("pid").type.name == "pid_t"
