"""/proc/kallsyms parsing, shared by the disassembler, the ELF loader's __ksym and kprobes."""
from pybpf.sys import kallsyms


def test_parse_lines_with_and_without_module():
    lines = ["ffffffff81000000 T _stext", "ffffffffc0a01000 t nf_hook_x\t[nf_tables]",
             "garbage", ""]
    assert list(kallsyms.parse(lines)) == [(0xFFFFFFFF81000000, "T", "_stext"),
                                           (0xFFFFFFFFC0A01000, "t", "nf_hook_x")]


def test_running_kernel_has_the_bpf_syscall():
    names = {name: (address, kind) for address, kind, name in kallsyms.read()}
    address, kind = names["__sys_bpf"]
    assert kind in "tT" and address  # root sees real addresses
