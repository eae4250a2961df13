"""BTF as C (pybpf.btf.cdump): the running kernel's vmlinux.h against bpftool's, and round trips
dump -> clang -> parse -> same layout, on vmlinux and on small objects covering each construct."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from elftools.elf.elffile import ELFFile

from pybpf.btf import Spec, types as T
from pybpf.btf.cdump import CDumper, dump_c
from pybpf.btf.encode import encode
from pybpf.errors import BTFError
from pybpf.sys.uapi import BtfKind
from tests.conftest import MULTIARCH_INCLUDE

VMLINUX = "/sys/kernel/btf/vmlinux"
VA_LIST = {"va_list", "__builtin_va_list", "__gnuc_va_list"}  # target-defined: x86 vs bpf


def object_btf(path: Path) -> Spec:
    with open(path, "rb") as f:
        return Spec.parse(ELFFile(f).get_section_by_name(".BTF").data(), name=str(path))


def compile_bpf(clang: str, directory: Path, name: str, source: str) -> Spec:
    """Compile ``source`` (which may include ``directory``'s headers) and parse its BTF."""
    src, obj = directory / f"{name}.c", directory / f"{name}.o"
    src.write_text(source)
    res = subprocess.run([clang, "-g", "-O2", "-target", "bpf", "-D__TARGET_ARCH_x86",
                          "-I", str(directory), "-I", MULTIARCH_INCLUDE,
                          "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
    assert res.returncode == 0, f"clang failed on the dumped C:\n{res.stderr[:4000]}"
    return object_btf(obj)


def instances(dumper: CDumper, types: list[T.Type]) -> str:
    """C globals of every named struct/union/typedef given, so clang emits them in full."""
    lines = []
    for i, t in enumerate(types):
        if isinstance(t, T.Composite):
            kw = "struct" if t.kind == BtfKind.STRUCT else "union"
            lines.append(f"{kw} {dumper.c_name(t)} __v{i};")
        elif isinstance(t, T.Typedef) and isinstance(T.skip_qualifiers(t), (T.Composite, T.Int)):
            lines.append(f"{dumper.c_name(t)} __v{i};")
    return "\n".join(lines) + "\n"


def shallow(t: T.Type, cname) -> object:
    """A member's type as far as layout goes: named records by C name, anonymous ones in full."""
    for _ in range(T.MAX_RESOLVE_DEPTH):
        if isinstance(t, T.Typedef) and t.name in VA_LIST:
            return "va_list"
        if not isinstance(t, (T.Typedef, T.Qualifier)):
            break
        t = t.type
    if isinstance(t, T.Composite):
        return (t.kind, cname(t)) if t.name else layout(t, cname)
    if isinstance(t, T.Array):
        return ("array", t.nelems, shallow(t.type, cname))
    if isinstance(t, T.Pointer):
        return "pointer"
    if isinstance(t, T.Enum):
        return ("enum", t.size)  # clang 14 emits 8-byte enums as ENUM, never ENUM64
    if isinstance(t, (T.Int, T.Float)):
        return (t.kind, t.size)
    return t.kind


def layout(t: T.Composite, cname) -> tuple:
    return (t.kind, t.size, tuple((m.name, m.offset, m.bitfield_size, shallow(m.type, cname))
                                  for m in t.members))


def compare_layouts(original: list[T.Type], dumper: CDumper, compiled: Spec) -> list[str]:
    """Names of the records whose layout in ``compiled`` differs from ``original``'s."""
    by_name = {t.name: t for t in compiled if isinstance(t, T.Composite) and t.name}
    bad = []
    for t in original:
        if isinstance(t, T.Composite) and t.name:
            name = dumper.c_name(t)
            assert name in by_name, f"{name} missing from the compiled BTF"
            if layout(by_name[name], lambda x: x.name) != layout(t, dumper.c_name):
                bad.append(name)
    return bad


def definitions(text: str) -> list[str]:
    """The top-level type definitions (struct/union/enum/typedef blocks) of a C dump."""
    body = "\n".join(line for line in text.split("\n") if not line.startswith("#"))
    return [b.strip("\n") for b in body.split(";\n\n")
            if b.strip("\n").startswith(("struct", "union", "enum", "typedef"))]


_TAG_DEF = re.compile(r"^(struct|union|enum) (\w+) \{", re.M)


def typedef_name(block: str) -> str:
    """The name a ``typedef ...`` definition declares."""
    if "{" in block:  # typedef struct {...} name
        block = "typedef " + block.rsplit("}", 1)[1]
    m = (re.search(r"\(\*[^()]*?(\w+)\)", block)          # (*name), (* const name)
         or re.match(r"typedef [^(\[]*?(\w+)\s*[(\[]", block)  # name(...) or name[N]
         or re.search(r"(\w+)$", block))
    assert m, f"no name in {block[:200]!r}"
    return m.group(1)


def defined_names(text: str) -> set[str]:
    """``struct foo``, ``enum bar``, ``typedef baz`` for every definition in a C dump."""
    names = {f"{kw} {name}" for kw, name in _TAG_DEF.findall(text)}
    names.update("typedef " + typedef_name(b.strip()) for b in definitions(text)
                 if b.strip().startswith("typedef"))
    return names


@pytest.fixture(scope="module")
def vmlinux() -> Spec:
    return Spec.from_file(VMLINUX)


@pytest.fixture(scope="module")
def vmlinux_dump(vmlinux: Spec) -> tuple[CDumper, str]:
    dumper = CDumper(vmlinux)
    body = "".join(dumper.dump_type(i) for i in range(1, len(vmlinux)))
    return dumper, body


@pytest.fixture(scope="module")
def vmlinux_c(vmlinux: Spec) -> str:
    return dump_c(vmlinux)


@pytest.fixture(scope="module")
def vmlinux_c_kfuncs(vmlinux: Spec) -> str:
    return dump_c(vmlinux, kfuncs=True)


def bpftool_c(bpftool: str, btf_file: Path | str) -> str:
    return subprocess.run([bpftool, "btf", "dump", "file", str(btf_file), "format", "c"],
                          check=True, capture_output=True, text=True).stdout


def normalized(defs: list[str]) -> list[str]:
    """Definitions without the enum size attributes libbpf 1.1 (bpftool 7.1) does not emit."""
    return [re.sub(r" __attribute__\(\(mode\((byte|word)\)\)\)", "", d) for d in defs]


# --- vmlinux ---------------------------------------------------------------------------------

def test_vmlinux_same_definitions_as_bpftool(bpftool, vmlinux, vmlinux_c, vmlinux_dump):
    ours = vmlinux_c
    theirs = bpftool_c(bpftool, VMLINUX)
    assert ours.startswith("#ifndef __VMLINUX_H__\n#define __VMLINUX_H__\n")
    assert "#pragma clang attribute push (__attribute__((preserve_access_index)), " \
           "apply_to = record)" in ours
    assert ours.endswith("#pragma clang attribute pop\n#endif\n\n#endif /* __VMLINUX_H__ */\n")
    names = defined_names(ours)
    assert names == defined_names(theirs)
    assert {"struct task_struct", "struct sk_buff", "typedef u32", "enum bpf_map_type",
            "typedef __kernel_size_t", "struct list_head"} <= names
    # every named struct, union, enum and typedef of the kernel is defined (by its C name)
    dumper = vmlinux_dump[0]
    keyword = {BtfKind.STRUCT: "struct", BtfKind.UNION: "union", BtfKind.ENUM: "enum",
               BtfKind.ENUM64: "enum", BtfKind.TYPEDEF: "typedef"}
    kernel = {f"{keyword[t.kind]} {dumper.c_name(t)}" for t in vmlinux
              if t.kind in keyword and t.name and t.name != "__builtin_va_list"}
    assert names == kernel
    # the same definitions in the same order, byte for byte, but for the enum size attributes
    # pybpf adds (as current libbpf does) where bpftool 7.1 lets a 1-byte enum become 4 bytes
    ours_defs, their_defs = definitions(ours), definitions(theirs)
    assert len(ours_defs) == len(their_defs) > 10000
    assert normalized(ours_defs) == normalized(their_defs)
    differing = [d for d, e in zip(ours_defs, their_defs) if d != e]
    assert all("mode(byte)" in d for d in differing)
    # the incremental dumper agrees with the one-shot function
    assert vmlinux_dump[1] in ours


def test_vmlinux_round_trip(clang, tmp_path, vmlinux, vmlinux_dump):
    dumper, body = vmlinux_dump
    (tmp_path / "vmlinux.h").write_text(body)
    records = [t for t in vmlinux if isinstance(t, T.Composite) and t.name]
    compiled = compile_bpf(clang, tmp_path, "all", '#include "vmlinux.h"\n'
                           + instances(dumper, records))
    bad = compare_layouts(records, dumper, compiled)
    # structs embedding va_list: the kernel's (x86) is 24 bytes, the BPF target's a pointer
    va = [n for n in bad if "va_list" in repr(layout(vmlinux.find(n.split("___")[0],
                                                                  T.Struct), dumper.c_name))]
    assert sorted(bad) == sorted(va) and len(va) < 5, bad


def test_vmlinux_core_program(clang, tmp_path, vmlinux, vmlinux_c_kfuncs):
    """A real CO-RE program compiled against the dump: its BTF has the kernel's layouts."""
    (tmp_path / "vmlinux.h").write_text(vmlinux_c_kfuncs)
    compiled = compile_bpf(clang, tmp_path, "core", r'''
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>
SEC("tp_btf/sched_process_exec")
int on_exec(u64 *ctx) {
	struct task_struct *t = (void *)bpf_get_current_task();
	return BPF_CORE_READ(t, real_parent, tgid);
}
SEC("tp_btf/sched_process_exec")
int BPF_PROG(acquire, struct task_struct *p) {
	struct task_struct *t = bpf_task_acquire(p);   /* kfuncs declared by the dump */
	int pid = t ? t->pid : 0;
	if (t)
		bpf_task_release(t);
	return pid;
}
SEC("tc")
int on_skb(struct __sk_buff *ctx) {
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	return BPF_CORE_READ(skb, len) + bpf_core_field_offset(skb->mark);
}
char LICENSE[] SEC("license") = "GPL";
''')
    for name in ("task_struct", "sk_buff"):
        ours, ref = compiled.find(name, T.Struct), vmlinux.find(name, T.Struct)
        assert ours.size == ref.size
        assert [(m.name, m.offset, m.bitfield_size) for m in ours.members] == \
               [(m.name, m.offset, m.bitfield_size) for m in ref.members]
    assert compiled.find("task_struct", T.Struct).member("tgid").offset == \
        vmlinux.find("task_struct", T.Struct).member("tgid").offset
    externs = {f.name for f in compiled if isinstance(f, T.Func)
               and f.linkage == T.LINKAGE_EXTERN}
    assert {"bpf_task_acquire", "bpf_task_release", "bpf_cast_to_kern_ctx"} <= externs


def test_kfunc_prototypes(vmlinux, vmlinux_c, vmlinux_c_kfuncs):
    text = vmlinux_c_kfuncs
    assert "#ifndef __ksym\n#define __ksym __attribute__((section(\".ksyms\")))\n#endif" in text
    block = text[text.index("/* BPF kfuncs */\n#ifndef BPF_NO_KFUNC_PROTOTYPES\n"):]
    externs = [line for line in block.split("\n") if line.startswith("extern ")]
    tagged = {t.type.name for t in vmlinux if isinstance(t, T.DeclTag) and t.name == "bpf_kfunc"
              and t.component_idx == -1 and isinstance(t.type, T.Func)}
    bare = [re.sub(r"__attribute__\(\(\w+(\(\d+\))?\)\)", "", e) for e in externs]
    names = [re.search(r"(\w+)\(", e).group(1) for e in bare]
    assert len(externs) == len(tagged) > 100 and set(names) == tagged
    assert names == sorted(names)
    assert "extern struct task_struct *bpf_task_acquire(struct task_struct *p) __weak __ksym;" \
        in externs
    assert "extern __bpf_fastcall void *bpf_cast_to_kern_ctx(void *obj) __weak __ksym;" in externs
    assert "__weak __ksym;" not in vmlinux_c  # bpftool 7.1 declares no kfuncs


# --- constructs ------------------------------------------------------------------------------

EXPECTED = [  # how the dumper spells each construct of tests/bpf/cdump_constructs.c
    "struct bits {\n\tunsigned int a: 3;\n\tint b: 5;\n\tint: 24;\n\tunsigned char c: 1;\n"
    "\tlong: 31;\n\tunsigned long long d: 40;\n\tu32 e: 7;\n\tshort f;\n}",
    "struct packed_s {\n\tchar c;\n\tint i;\n\tlong long l;\n} __attribute__((packed))",
    "struct packed_tail {\n\tint a;\n\tshort b;\n} __attribute__((packed))",
    "\tunion {\n\t\tstruct {\n\t\t\tint x;\n\t\t\tint y;\n\t\t};\n",
    "\t\tenum {\n\t\t\tRED = 0,\n\t\t\tGREEN = 5,\n\t\t\tBLUE = 6,\n\t\t} colour;",
    "typedef int handler_t(int, char *)",
    "typedef void (* (*getter_t)(int))(long)",
    "\tint (*cb)(int, char *);\n\tvoid (*noargs)(void);\n\tint (*log)(const char *, ...);\n"
    "\tint (*ops[4])(void *);\n\thandler_t *h;",
    "\tstruct funcs * (*self)(struct funcs *);\n\tpoint_t (*mk)(int, int);",
    "typedef struct {\n\tint x;\n\tint y;\n} point_t",
    "enum byte_enum {\n\tBY_A = 1,\n\tBY_B = 200,\n} __attribute__((mode(byte)))",
    "struct node;\n\nstruct other {\n\tstruct node *head;\n};\n\nstruct opaque;\n\nstruct node {",
    "\tint m[2][3];\n\tchar *names[4];\n\tint (*pa)[5];\n\tconst char * const *pp;",
    "\tchar data[0];",
    "\tvolatile const int * const cvp;\n\tchar * restrict rp;\n\tvolatile u64 v;\n"
    "\tconst point_t cp;\n\tint __attribute__((btf_type_tag(\"user\"))) *up;",
    "struct empty {};",
]


def test_constructs_spelling_and_bpftool(bpf_objects, bpftool):
    obj = bpf_objects["cdump_constructs"]
    ours = dump_c(object_btf(obj))
    for snippet in EXPECTED:
        assert snippet in ours
    assert normalized(definitions(ours)) == normalized(definitions(bpftool_c(bpftool, obj)))


def test_every_test_object_like_bpftool(bpf_objects, bpftool):
    """Each object the test suite compiles (tests/bpf/*.c) dumps to bpftool's text exactly."""
    mode = re.compile(r" __attribute__\(\(mode\((byte|word)\)\)\)")
    for name, obj in bpf_objects.items():
        ours, theirs = dump_c(object_btf(obj)), bpftool_c(bpftool, obj)
        assert mode.sub("", ours) == mode.sub("", theirs), name


def test_constructs_round_trip(bpf_objects, clang, tmp_path):
    spec = object_btf(bpf_objects["cdump_constructs"])
    dumper = CDumper(spec)
    header = "".join(dumper.dump_type(i) for i in range(1, len(spec)))
    (tmp_path / "constructs.h").write_text(header)
    types = list(spec)
    compiled = compile_bpf(clang, tmp_path, "again", '#include "constructs.h"\n'
                           + instances(dumper, types))
    assert compare_layouts(types, dumper, compiled) == []
    assert {t.name for t in types if isinstance(t, T.Composite) and t.name} == {
        "bits", "ubits", "packed_s", "packed_tail", "with_packed", "aligned_s", "aligned_member",
        "gaps", "nested_anon", "funcs", "enums", "node", "other", "arrays", "quals", "empty"}
    # a fixed point: the recompiled BTF dumps to the same definitions
    assert set(definitions(dump_c(compiled))) == set(definitions(header))


def _handmade() -> list[T.Type]:
    """What clang 14 cannot produce: ENUM64, signed enums, clashing names, attribute tags."""
    u32 = T.Int("unsigned int", 4)
    s64 = T.Int("long long", 8, T.INT_SIGNED)
    dup1 = T.Struct("dup", 4, [T.Member("a", u32, 0)])
    dup2 = T.Struct("dup", 16, [T.Member("b", s64, 0), T.Member("c", u32, 64)])
    td1, td2 = T.Typedef("dup_t", dup1), T.Typedef("dup_t", dup2)
    return [
        T.Enum64("e64", 8, [T.EnumValue("E64_BIG", 0x123456789), T.EnumValue("E64_ONE", 1)]),
        T.Enum64("e64s", 8, [T.EnumValue("E64S_NEG", -(1 << 40)), T.EnumValue("E64S_POS", 2)],
                 signed=True),
        T.Enum64("e64w", 8, [T.EnumValue("E64W_SMALL", 7)]),
        T.Enum("es", 4, [T.EnumValue("ES_NEG", -5), T.EnumValue("ES_POS", 5)], signed=True),
        T.Enum("", 4, [T.EnumValue("CONST_A", 1), T.EnumValue("dup_t", 2)]),
        td1, td2,
        T.Struct("holder", 24, [T.Member("x", td1, 0), T.Member("y", td2, 64)]),
        T.Struct("tagged", 8, [T.Member("p", T.Pointer(T.TypeTag("percpu", u32)), 0)]),
        T.Struct("fwds", 16, [T.Member("u", T.Pointer(T.Fwd("some_union", union=True)), 0),
                              T.Member("s", T.Pointer(T.Fwd("some_struct")), 64)]),
        T.Typedef("__builtin_va_list", T.Pointer(T.Int("char", 1, T.INT_CHAR))),
    ]


def test_handmade_btf(clang, tmp_path):
    spec = Spec.parse(encode(_handmade()))
    text = dump_c(spec)
    for snippet in [
        "enum e64 {\n\tE64_BIG = 4886718345ULL,\n\tE64_ONE = 1ULL,\n};",
        "enum e64s {\n\tE64S_NEG = -1099511627776LL,\n\tE64S_POS = 2LL,\n};",
        "enum e64w {\n\tE64W_SMALL = 7ULL,\n} __attribute__((mode(word)));",
        "enum es {\n\tES_NEG = -5,\n\tES_POS = 5,\n};",
        "enum {\n\tCONST_A = 1,\n\tdup_t = 2,\n};",
        "struct dup {\n\tunsigned int a;\n};\n\ntypedef struct dup dup_t___2;",
        "struct dup___2 {\n\tlong long b;\n\tunsigned int c;\n};\n\n"
        "typedef struct dup___2 dup_t___3;",
        "struct holder {\n\tdup_t___2 x;\n\tdup_t___3 y;\n};",
        "\tunsigned int __attribute__((btf_type_tag(\"percpu\"))) *p;",
        "union some_union;\n\nstruct some_struct;\n\nstruct fwds {\n\tunion some_union *u;\n"
        "\tstruct some_struct *s;\n};",
    ]:
        assert snippet in text
    assert "__builtin_va_list;" not in text  # a compiler built-in: never redefined
    (tmp_path / "handmade.h").write_text(text)
    compiled = compile_bpf(clang, tmp_path, "handmade", r'''
#include "handmade.h"
_Static_assert(E64_BIG == 0x123456789ULL && sizeof(enum e64) == 8, "enum64");
_Static_assert(E64S_NEG == -(1LL << 40) && sizeof(enum e64s) == 8, "signed enum64");
_Static_assert(sizeof(enum e64w) == 8, "mode(word)");
_Static_assert(ES_NEG == -5 && sizeof(enum es) == 4, "signed enum");
struct holder h;
struct tagged t;
struct fwds f;
''')
    assert layout(compiled.find("holder", T.Struct), lambda x: x.name) == \
        (BtfKind.STRUCT, 24, (("x", 0, 0, (BtfKind.STRUCT, "dup")),
                              ("y", 64, 0, (BtfKind.STRUCT, "dup___2"))))


def test_attribute_type_tag():
    u32 = T.Int("unsigned int", 4)
    spec = Spec.parse(encode([T.Typedef("gp", T.Pointer(T.TypeTag("address_space(1)", u32,
                                                                  attribute=True)))]))
    assert "typedef unsigned int __attribute__((address_space(1))) *gp;" in dump_c(spec)


# --- subsets, declarations, names, errors ----------------------------------------------------

def test_single_type_with_dependencies(clang, tmp_path, vmlinux):
    text = dump_c(vmlinux, [vmlinux.find("list_head", T.Struct)])
    assert definitions(text) == ["struct list_head {\n\tstruct list_head *next;\n"
                                 "\tstruct list_head *prev;\n}"]
    task = vmlinux.find("task_struct", T.Struct)
    text = dump_c(vmlinux, [task.id])
    assert "struct task_struct {" in text and "\nstruct mm_struct;\n" in text
    assert "struct mm_struct {" not in text  # only reached through pointers: declared, not defined
    (tmp_path / "task.h").write_text(text)
    compiled = compile_bpf(clang, tmp_path, "task", '#include "task.h"\nstruct task_struct t;\n')
    assert compiled.find("task_struct", T.Struct).size == task.size


def test_dumper_emits_each_type_once(vmlinux):
    d = CDumper(vmlinux)
    first = d.dump_type(vmlinux.find("list_head", T.Struct))
    assert first and d.dump_type(vmlinux.find("list_head", T.Struct)) == ""
    hlist = d.dump_type(vmlinux.find("hlist_node", T.Struct))
    assert "hlist_node {" in hlist and "list_head {" not in hlist
    assert d.dump_type(vmlinux.find("bpf_map_lookup_elem", T.Func)) == ""  # funcs define nothing


def test_decl(vmlinux):
    d = CDumper(vmlinux)
    task = vmlinux.find("task_struct", T.Struct)
    assert d.decl(task.member("real_parent").type, "p") == "struct task_struct *p"
    assert d.decl(task.member("comm").type, "comm") == "char comm[16]"
    assert d.decl(vmlinux.find("kfree", T.Func).proto, "kfree") == \
        "void kfree(const void *object)"
    assert d.decl(vmlinux.find("do_sys_openat2", T.Func).proto) == \
        "int(int dfd, const char *filename, struct open_how *how)"
    assert d.c_name(vmlinux.find("u32", T.Typedef)) == "u32"


def test_reserved_names(vmlinux):
    config = vmlinux.find("config", T.Typedef)
    assert "typedef struct config_s config;" in dump_c(vmlinux, [config])
    text = dump_c(vmlinux, [config], reserved=("config",))
    assert "typedef struct config_s config___2;" in text
    assert not re.search(r"\bconfig;", text)


def test_errors(vmlinux):
    with pytest.raises(BTFError, match="does not belong to a parsed spec"):
        CDumper(vmlinux).dump_type(T.Struct("free", 0, []))
    loop = T.Struct("loop", 8, [])
    loop.members.append(T.Member("self", loop, 0))
    with pytest.raises(BTFError, match="contains itself"):
        dump_c(Spec.parse(encode([loop])))
    with pytest.raises(BTFError, match="no type id"):
        CDumper(vmlinux).dump_type(len(vmlinux) + 5)
    other = Spec.parse(encode([T.Int("int", 4, T.INT_SIGNED)]), name="other")
    with pytest.raises(BTFError, match="belongs to other"):
        CDumper(vmlinux).dump_type(other.type_by_id(1))
    deep: T.Type = T.Int("int", 4, T.INT_SIGNED)
    for i in range(5000):
        deep = T.Typedef(f"t{i}", deep)
    with pytest.raises(BTFError, match="nest too deeply"):
        dump_c(Spec.parse(encode([deep])))


def test_names_index_of_handmade_btf():
    """names_index against the decoded types: every tag, typedef and (UTF-8) name, each
    enumerator of ENUM and ENUM64, a FUNC only when tagged bpf_kfunc; nothing else."""
    from pybpf.btf.cdump import names_index

    u32 = T.Int("unsigned int", 4)
    proto = T.FuncProto(u32, [T.FuncParam("x", u32)])
    kfunc, plain = T.Func("my_kfunc", proto, T.LINKAGE_GLOBAL), T.Func("plain", proto)
    types: list[T.Type] = [
        T.Struct("café", 4, [T.Member("a", u32, 0)]), T.Typedef("u32_t", u32),
        T.Enum("e", 4, [T.EnumValue("E_A", 1), T.EnumValue("Ünï", 2)]),
        T.Enum64("", 8, [T.EnumValue("E64_A", 1 << 40)]), T.Fwd("later", union=True),
        T.Struct("u32_t", 4, [T.Member("b", u32, 0)]), kfunc, plain,
        T.DeclTag("bpf_kfunc", kfunc), T.DeclTag("other", plain),
        T.DeclTag("bpf_kfunc", plain, component_idx=0)]
    spec = Spec.parse(encode(types))
    want: dict[str, list[int]] = {}
    for tid in range(1, len(spec)):
        t = spec.type_by_id(tid)
        if isinstance(t, (T.Composite, T.Fwd, T.Typedef, T.Enum)) and t.name:
            want.setdefault(t.name, []).append(tid)
        if isinstance(t, T.Enum):
            for v in t.values:
                want.setdefault(v.name, []).append(tid)
    want["my_kfunc"] = [T.type_id(spec.find("my_kfunc", T.Func))]
    assert names_index(spec) == want
    assert "Ünï" in want and "café" in want and len(want["u32_t"]) == 2
