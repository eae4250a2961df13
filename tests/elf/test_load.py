"""Loading the tests/bpf/elf_*.c corpus into the running kernel and checking each convention
by its effect: BPF_PROG_TEST_RUN results, map contents, a tracepoint that fires."""
from __future__ import annotations

import gzip
import os
import struct
import sys

import pytest

import pybpf
from pybpf.elf import ObjectSpec, load
from pybpf.errors import ObjectError, UsageError, VerifierError
from pybpf.maps import Map
from pybpf.programs import kernel_version_code
from pybpf.sys.cpus import possible_cpus
from pybpf.btf import types as T
from pybpf.elf.externs import kernel_btf_id
from pybpf.sys.uapi import Helper, MapFlag, MapType, ProgType, XdpAction

ZERO = b"\0\0\0\0"
PACKET = bytes(64)


def u64(b: bytes, off: int = 0) -> int:
    return struct.unpack_from("=Q", b, off)[0]


def spec_of(bpf_objects, name: str) -> ObjectSpec:
    return ObjectSpec.from_file(bpf_objects[name])


def test_map_kinds(bpf_objects):
    from pybpf import features
    from pybpf.errors import UnsupportedFeatureError
    if not features.map_type(MapType.BLOOM_FILTER):  # 5.16
        with pytest.raises(UnsupportedFeatureError, match="bloom_filter"):
            load(spec_of(bpf_objects, "elf_maps"))
        return
    with load(spec_of(bpf_objects, "elf_maps")) as obj:
        info = {name: m.info() for name, m in obj.maps.items()}
        assert (info["by_type"].type, info["by_type"].key_size, info["by_type"].value_size,
                info["by_type"].max_entries, info["by_type"].flags) == \
            (MapType.HASH, 4, 16, 64, MapFlag.NO_PREALLOC)
        assert (info["by_size"].type, info["by_size"].value_size) == (MapType.ARRAY, 8)
        assert info["lru_on_node0"].flags == MapFlag.NUMA_NODE
        assert info["seen"].map_extra == 3 and info["seen"].type == MapType.BLOOM_FILTER
        assert info["perf_events"].max_entries == len(possible_cpus())
        assert info["events"].max_entries == 4096 and info["events"].type == MapType.RINGBUF
        assert info["a_rather_long_map_name"].name == "a_rather_long_m"  # 15 bytes
        assert info["by_type"].btf_id and info["by_type"].btf_value_type_id
        prog = obj.programs["count_packets"]
        for _ in range(3):
            assert prog.test_run(PACKET).retval == XdpAction.PASS
        value = obj.maps["by_type"][0]  # by the BTF types: struct value's members
        assert value.to_dict() == {"packets": 3, "last_len": 64, "pad": 0}
        assert obj.maps["by_type"].raw()[ZERO][:12] == struct.pack("=QI", 3, 64)
        assert u64(obj.maps["by_size"][ZERO]) == 3 * 64  # sizes only: bytes
        assert sum(obj.maps["percpu"][0]) == 3 and obj.maps["percpu"][ZERO] == \
            obj.maps["percpu"][0]  # a u32 key also takes its bytes
        assert obj.maps["lengths"].pop() == 64
        assert obj.maps["seen"].peek((64).to_bytes(4, sys.byteorder)) is not None


def test_global_data(bpf_objects):
    spec = spec_of(bpf_objects, "elf_globals")
    assert set(spec.maps) == {"elf_glob.rodata", "elf_glob.data", "elf_glob.bss",
                              ".data.custom", ".rodata.custom"}
    assert int(spec.variables["verdict"]) == XdpAction.PASS
    assert int(spec.variables["adjust"]) == -2
    assert spec.variables["greeting"].value == b"hello\0\0\0"
    spec.variables["verdict"].value = XdpAction.DROP
    spec.variables["adjust"].value = -10
    with pytest.raises(ObjectError, match="does not fit"):
        spec.variables["verdict"].value = 1 << 40
    with load(spec) as obj:
        prog = obj.programs["globals"]
        assert prog.test_run(PACKET).retval == XdpAction.DROP
        assert prog.test_run(PACKET).retval == XdpAction.DROP
        data, bss = obj.maps["elf_glob.data"][ZERO], obj.maps["elf_glob.bss"][ZERO]
        assert u64(data) == 102
        v = spec.variables
        assert u64(bss, v["bytes"].offset) == 128
        assert struct.unpack_from("=I", bss, v["last_len"].offset)[0] == 54
        assert struct.unpack_from("=I", bss, v["hidden_calls"].offset)[0] == 2
        assert u64(obj.maps[".data.custom"][ZERO]) == 7 + 2 * ord("h")
        rodata = obj.maps["elf_glob.rodata"]
        assert rodata.info().frozen and rodata.flags & MapFlag.RDONLY_PROG
        with pytest.raises(pybpf.errors.BPFError):
            rodata[ZERO] = bytes(8)
        with rodata.mmap(writable=False) as mm:  # read-only mapping of a frozen map
            assert struct.unpack_from("=I", mm, v["verdict"].offset)[0] == XdpAction.DROP
        with obj.maps["elf_glob.bss"].mmap() as mm:  # writable: the program sees the change
            struct.pack_into("=Q", mm, v["bytes"].offset, 1000)
            prog.test_run(PACKET)
            assert u64(mm, v["bytes"].offset) == 1064


def _config() -> dict[str, str]:
    with gzip.open("/proc/config.gz", "rt") as f:
        return dict(line.split("=", 1) for line in f.read().splitlines()
                    if line.startswith("CONFIG_"))


def test_kconfig_without_a_readable_config(bpf_objects):
    spec = spec_of(bpf_objects, "elf_kconfig")
    given = {"CONFIG_BPF_SYSCALL": "y", "CONFIG_BPF_JIT": "m", "CONFIG_HZ": "250"}
    if not os.path.exists("/proc/config.gz") and \
            not os.path.exists(f"/boot/config-{os.uname().release}"):
        with pytest.raises(ObjectError, match="CONFIG_.*kernel configuration is not readable"):
            load(spec)
    with load(spec, kconfig=given) as obj:  # every non-__weak value given: no config read
        obj.programs["read_kconfig"].test_run(PACKET)
        bss, v = obj.maps["elf_kcon.bss"][ZERO], spec.variables
        assert [u64(bss, v[n].offset) for n in ("seen_syscall", "seen_jit", "seen_hz")] == \
            [1, 2, 250]


def test_kconfig(bpf_objects):
    if not os.path.exists("/proc/config.gz"):
        pytest.skip("no /proc/config.gz (CONFIG_IKCONFIG_PROC) to compare with: "
                    "test_kconfig_without_a_readable_config checks the error")
    config = _config()
    spec = spec_of(bpf_objects, "elf_kconfig")
    assert spec.maps["elf_kco.kconfig"].value_size == 33  # libbpf's layout
    with load(spec) as obj:
        obj.programs["read_kconfig"].test_run(PACKET)
        bss, v = obj.maps["elf_kcon.bss"][ZERO], spec.variables
        assert u64(bss, v["seen_version"].offset) == kernel_version_code()
        assert u64(bss, v["seen_syscall"].offset) == (config.get("CONFIG_BPF_SYSCALL") == "y")
        assert u64(bss, v["seen_jit"].offset) == {"y": 1, "m": 2}.get(
            config.get("CONFIG_BPF_JIT", "n"), 0)
        assert u64(bss, v["seen_hz"].offset) == int(config["CONFIG_HZ"])
        assert u64(bss, v["seen_missing"].offset) == 0
        local = config.get("CONFIG_LOCALVERSION", '""').strip('"').encode()[:15]
        off = v["seen_localversion"].offset
        assert bss[off:off + 16].rstrip(b"\0") == local
        assert obj.maps["elf_kco.kconfig"].info().frozen
    with load(spec, kconfig={"CONFIG_HZ": "1234", "CONFIG_BPF_SYSCALL": "y"}) as obj:
        obj.programs["read_kconfig"].test_run(PACKET)
        assert u64(obj.maps["elf_kcon.bss"][ZERO], spec.variables["seen_hz"].offset) == 1234
    with pytest.raises(ObjectError, match="CONFIG_HZ.*integer"):
        load(spec, kconfig={"CONFIG_HZ": '"text"', "CONFIG_BPF_SYSCALL": "y"})


def test_ksyms_and_kfuncs(bpf_objects):
    with open("/proc/kallsyms") as f:
        addr = next(int(line.split()[0], 16) for line in f
                    if line.split()[2] == "__start_rodata")
    spec = spec_of(bpf_objects, "elf_ksyms")
    if kernel_btf_id("bpf_task_from_pid", T.Func) is None:  # a kfunc since 6.2
        with pytest.raises(ObjectError, match="kfunc 'bpf_task_from_pid' is not in the kernel"):
            load(spec)
        return
    for pid, found in ((os.getpid(), 1), (0, 0)):
        spec.variables["lookup_pid"].value = pid
        with load(spec) as obj:
            assert obj.programs["use_ksyms"].test_run(PACKET).retval == XdpAction.PASS
            bss, v = obj.maps["elf_ksym.bss"][ZERO], obj.spec.variables
            assert u64(bss, v["start_rodata_addr"].offset) == addr
            assert u64(bss, v["found_pid"].offset) == found  # kfunc bpf_task_from_pid
            assert u64(bss, v["have_missing"].offset) == 0  # __weak kfunc the kernel lacks


def test_typed_ksym(bpf_objects):
    """The kernel resolves typed ksyms through kallsyms: data symbols need KALLSYMS_ALL."""
    with open("/proc/kallsyms") as f:
        listed = any(line.split()[2] == "bpf_prog_active" for line in f)
    spec = spec_of(bpf_objects, "elf_ksyms_typed")
    if kernel_btf_id("bpf_prog_active", T.Var) is None:  # per-CPU variables in BTF: 5.11
        with pytest.raises(ObjectError, match="'bpf_prog_active' is not a variable"):
            load(spec)
        return
    if not listed:
        with pytest.raises(VerifierError, match="bpf_prog_active") as e:
            load(spec)
        assert e.value.errno == 2
        return
    with load(spec) as obj:
        obj.programs["typed_ksym"].test_run(PACKET)
        assert u64(obj.maps["elf_ksym.bss"][ZERO]) >= 1


def test_subprograms(bpf_objects):
    spec = spec_of(bpf_objects, "elf_subprogs")
    with load(spec) as obj:
        a, b = obj.programs["calls_a"], obj.programs["calls_b"]
        assert a.info().nr_func_info == 3  # calls_a, sum_of_squares, square
        assert b.info().nr_func_info == 2
        assert a.test_run(PACKET).retval == XdpAction.PASS
        assert b.test_run(bytes(100)).retval == 0
        bss, v = obj.maps["elf_subp.bss"][ZERO], spec.variables
        assert u64(bss, v["result_a"].offset) == 25
        assert u64(bss, v["result_b"].offset) == (100 - 14) ** 2  # skb->len after the MAC header


def test_callback(bpf_objects):
    from pybpf import features
    support = features.helper(ProgType.XDP, Helper.loop)
    spec = spec_of(bpf_objects, "elf_callbacks")
    if not support:  # bpf_loop and BPF_PSEUDO_FUNC came in 5.17 (libbpf fails there too)
        with pytest.raises(VerifierError):
            load(spec)
        return
    with load(spec) as obj:
        assert obj.programs["sum_loop"].info().nr_func_info == 2
        obj.programs["sum_loop"].test_run(PACKET)
        assert u64(obj.maps["elf_call.bss"][ZERO]) == 0 + 1 + 2 + 3 + 4


def test_global_functions(bpf_objects):
    with load(spec_of(bpf_objects, "elf_global_funcs")) as obj:
        xdp, tc = obj.programs["by_length"], obj.programs["doubled"]
        assert xdp.test_run(bytes(32)).retval == XdpAction.DROP
        assert xdp.test_run(bytes(100)).retval == XdpAction.PASS
        assert tc.test_run(bytes(80)).retval == 160
        assert tc.type == ProgType.SCHED_CLS
        assert u64(obj.maps["elf_glob.bss"][ZERO]) == 2
        assert xdp.info().nr_func_info == 2 and xdp.info().btf_id


def test_pinning_reuses_compatible_and_refuses_incompatible(bpf_objects, pin_dir):
    spec = spec_of(bpf_objects, "elf_pinning")
    with load(spec, pin_root=pin_dir) as obj:
        obj.programs["bump"].test_run(PACKET)
        first_id = obj.maps["shared_counter"].info().id
        assert (pin_dir / "shared_counter").exists()
        assert not (pin_dir / "private_counter").exists()
    with load(spec, pin_root=pin_dir) as obj:
        assert obj.maps["shared_counter"].info().id == first_id
        obj.programs["bump"].test_run(PACKET)
        assert obj.maps["shared_counter"][0] == 2  # reused pins convert by the object's
        assert obj.maps["private_counter"][0] == 1  # types too
    os.unlink(pin_dir / "shared_counter")
    with Map.create("array", 4, 4, 1) as wrong:
        wrong.pin(pin_dir / "shared_counter")
    with pytest.raises(ObjectError, match="value_size 4 \\(wanted 8\\)"):
        load(spec, pin_root=pin_dir)


def test_given_maps_are_used_instead_of_created(bpf_objects, pin_dir):
    spec = spec_of(bpf_objects, "elf_pinning")
    with Map.create("array", 4, 8, 1, name="given_priv") as priv, \
            Map.create("array", 4, 8, 1, name="given_shared") as shared:
        shared[ZERO] = (41).to_bytes(8, sys.byteorder)
        before = len(os.listdir("/proc/self/fd"))
        with load(spec, pin_root=pin_dir, maps={"private_counter": priv,
                                               "shared_counter": shared}) as obj:
            assert obj.maps["private_counter"].id == priv.id
            assert obj.maps["shared_counter"].id == shared.id
            assert obj.maps["private_counter"].fd != priv.fd  # the collection's own fd
            obj.programs["bump"].test_run(PACKET)
        assert len(os.listdir("/proc/self/fd")) == before
        assert not priv.closed and u64(priv[ZERO]) == 1  # the program wrote the given map
        assert u64(shared[ZERO]) == 42  # used as it is: not refilled from the object
        assert not (pin_dir / "shared_counter").exists()  # nor pinned by name


@pytest.mark.parametrize("create, differs", [
    (("hash", 4, 8, 1), "type hash \\(wanted array\\)"),
    (("array", 4, 4, 1), "value_size 4 \\(wanted 8\\)"),
    (("array", 4, 8, 2), "max_entries 2 \\(wanted 1\\)"),
    (("array", 4, 8, 1, MapFlag.RDONLY_PROG), "flags 128 \\(wanted 0\\)"),
])
def test_given_map_must_match_the_definition(bpf_objects, pin_dir, create, differs):
    spec = spec_of(bpf_objects, "elf_pinning")
    kind, key, value, entries, *flags = create
    with Map.create(kind, key, value, entries, flags=sum(flags)) as wrong:
        before = len(os.listdir("/proc/self/fd"))
        with pytest.raises(ObjectError, match=f"map 'private_counter': the given map \\(id "
                                              f"{wrong.id}\\) is incompatible.*{differs}"):
            load(spec, pin_root=pin_dir, maps={"private_counter": wrong})
        assert len(os.listdir("/proc/self/fd")) == before
        assert not wrong.closed
        assert not (pin_dir / "shared_counter").exists()  # pinned, then unpinned on failure


def test_given_map_of_an_unknown_name(bpf_objects, pin_dir):
    with Map.create("array", 4, 8, 1) as m, \
            pytest.raises(UsageError, match="no map named 'nope'.*private_counter"):
        load(spec_of(bpf_objects, "elf_pinning"), pin_root=pin_dir, maps={"nope": m})


def test_map_in_map_slots(bpf_objects):
    with load(spec_of(bpf_objects, "elf_map_in_map")) as obj:
        outer = obj.maps["outer"]
        ids = {m: obj.maps[m].info().id for m in ("first", "second")}
        assert outer[ZERO] == ids["first"]
        assert outer[(2).to_bytes(4, sys.byteorder)] == ids["second"]
        assert (1).to_bytes(4, sys.byteorder) not in outer
        assert obj.programs["write_inner"].test_run(PACKET).retval == XdpAction.PASS
        assert obj.maps["first"][0] == 10
        assert obj.maps["second"][0] == 12
        assert obj.maps["by_hash"].info().type == MapType.HASH_OF_MAPS


def test_prog_array_slots_and_autoload(bpf_objects):
    spec = spec_of(bpf_objects, "elf_prog_array")
    assert spec.maps["jump_table"].contents == {1: "tail_pass", 3: "tail_drop"}
    with load(spec) as obj:
        assert obj.programs["entry"].test_run(PACKET).retval == XdpAction.PASS
        assert u64(obj.maps["elf_prog.bss"][ZERO]) == 1 | 2
    spec.variables["slot"].value = 3
    with load(spec) as obj:
        assert obj.programs["entry"].test_run(PACKET).retval == XdpAction.DROP
    spec.programs["tail_drop"].autoload = False
    with load(spec) as obj:
        assert set(obj.programs) == {"entry", "tail_pass"}
        assert obj.programs["entry"].test_run(PACKET).retval == XdpAction.ABORTED


@pytest.mark.usefixtures("tracefs")
def test_core_relocations_and_attach(bpf_objects):
    spec = spec_of(bpf_objects, "elf_core")
    assert [r.access_str for r in spec.programs["core_read"].function.core_relos][:3] == \
        ["0:0", "0:1", "0:2"]
    spec.programs["core_unsatisfiable"].autoload = False
    with load(spec) as obj:
        with obj.programs["core_read"].attach():
            os.getppid()
        tgids = dict(obj.maps["tgid_of"].items())  # u32 -> u32: ints
        assert tgids.get(os.getpid()) == os.getpid()  # single-threaded: pid == tgid
        bss, v = obj.maps["elf_core.bss"][ZERO], spec.variables
        assert struct.unpack_from("=I", bss, v["parent_tgid"].offset)[0] == os.getppid()
        assert struct.unpack_from("=I", bss, v["has_future_field"].offset)[0] == 0
    spec.programs["core_unsatisfiable"].autoload = True
    spec.programs["core_read"].autoload = False
    with pytest.raises(ObjectError, match="pybpf_no_such_field.*cannot be satisfied") as e:
        load(spec)
    assert isinstance(e.value.__cause__, VerifierError)


@pytest.mark.usefixtures("tracefs")
def test_attach_all_raw_tracepoint_and_unsupported(bpf_objects):
    with pybpf.elf.load(bpf_objects["elf_attach"]) as obj:
        links = obj.attach_all()
        assert len(links) == 3
        os.getppid()
        bss, v = obj.maps["elf_atta.bss"][ZERO], obj.spec.variables
        assert u64(bss, v["tp_hits"].offset) >= 1
        assert u64(bss, v["raw_hits"].offset) >= 1
        assert u64(bss, v["btf_hits"].offset) >= 1
        with pytest.raises(UsageError, match="xdp.*attach"):
            obj.programs["not_auto"].attach()


def test_fds_closed_with_the_collection(bpf_objects):
    before = len(os.listdir("/proc/self/fd"))
    obj = pybpf.load(bpf_objects["elf_subprogs"])
    assert len(os.listdir("/proc/self/fd")) > before
    progs, maps = list(obj.programs.values()), list(obj.maps.values())
    obj.close()
    assert all(p.closed for p in progs) and all(m.closed for m in maps)
    assert obj.btf is not None and obj.btf.closed
    assert len(os.listdir("/proc/self/fd")) == before


def test_failed_load_closes_everything(bpf_objects):
    before = len(os.listdir("/proc/self/fd"))
    spec = spec_of(bpf_objects, "elf_core")
    with pytest.raises(ObjectError):
        load(spec)  # core_unsatisfiable fails after maps and core_read were loaded
    assert len(os.listdir("/proc/self/fd")) == before


def test_program_names_are_cut_like_libbpf(bpf_objects):
    with load(spec_of(bpf_objects, "elf_attach")) as obj:
        p = obj.programs["count_raw_sys_enter_calls"]
        assert p.info().name == "count_raw_sys_e"


def test_big_endian_object_parses_but_does_not_load(clang, tmp_path):
    src = os.path.join(os.path.dirname(__file__), "..", "bpf", "elf_globals.c")
    obj = tmp_path / "globals_be.o"
    from tests.conftest import MULTIARCH_INCLUDE
    import subprocess
    subprocess.run([clang, "-g", "-O2", "-target", "bpfeb", "-I", MULTIARCH_INCLUDE, "-c", src,
                    "-o", str(obj)], check=True)
    spec = ObjectSpec.from_file(obj)
    assert spec.byte_order == "big"
    assert int(spec.variables["adjust"]) == -2
    assert spec.variables["packets"].value == (100).to_bytes(8, "big")
    assert [r.kind.value for r in spec.programs["globals"].function.refs][:1] == ["map_value"]
    with pytest.raises(ObjectError, match="big-endian object cannot be loaded"):
        load(spec)


def _unlink_and_count(bpf_objects, tmp_path) -> tuple[int, int]:
    with pybpf.load(bpf_objects["elf_fentry"]) as obj:
        obj.attach_all()
        victim = tmp_path / "victim"
        victim.write_text("x")
        os.unlink(victim)
        bss, v = obj.maps["elf_fent.bss"][ZERO], obj.spec.variables
        return u64(bss, v["entries"].offset), u64(bss, v["exits"].offset)


def test_fentry_by_section_or_the_reason_it_is_refused(bpf_objects, tmp_path):
    from pybpf import features
    from pybpf.errors import UnsupportedFeatureError
    support = features.fentry()
    if not support:
        with pytest.raises(UnsupportedFeatureError, match="fentry/fexit.*tp_btf"):
            pybpf.load(bpf_objects["elf_fentry"])
        return
    entries, exits = _unlink_and_count(bpf_objects, tmp_path)
    assert entries >= 1 and exits >= 1


@pytest.mark.kernel("fentry")
def test_fentry_attaches_in_vm(bpf_objects, tmp_path):
    entries, exits = _unlink_and_count(bpf_objects, tmp_path)
    assert entries >= 1 and exits >= 1


def test_map_not_created_poisons_its_uses(bpf_objects):
    """autocreate off, as libbpf: the map is not made; code using it fails the load only
    when the verifier reaches it, and the error names the map."""
    spec = spec_of(bpf_objects, "elf_autocreate")
    spec.maps["counts"].autocreate = False
    with load(spec) as obj:  # use_counts is 0: the poisoned code is dead
        assert "counts" not in obj.maps
        assert obj.programs["count_if_asked"].test_run(PACKET).retval == XdpAction.PASS
        for map_id in obj.programs["count_if_asked"].info().map_ids:  # .rodata only
            with Map.from_id(map_id) as m:
                assert m.name != "counts"
    spec.variables["use_counts"].value = 1
    with pytest.raises(ObjectError, match="use of map 'counts', which was not created") as e:
        load(spec)
    assert isinstance(e.value.__cause__, VerifierError)
    spec.maps["counts"].autocreate = True
    with load(spec) as obj:
        obj.programs["count_if_asked"].test_run(PACKET)
        assert obj.maps["counts"][0] == 1
