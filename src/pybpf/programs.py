"""BPF programs: load from instructions (with the verifier log), run, inspect, pin, open."""
from __future__ import annotations

import ctypes
import errno as _errno
import os
import re
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple, Optional, TypeVar, Union

from . import caps as _caps
from ._lazy import exports
from .errors import BPFError, UnsupportedFeatureError, UsageError, VerifierError
from .object import KernelObject
from .sys import objects, probes
from .sys import commands as _cmd
from .sys.attrs import ProgInfoStruct, ProgLoadAttr
from .sys.fd import FD
from .sys.host import kernel_version_code
from .sys.uapi import INSN_SIZE, LOG_BUF_MAX, OBJ_NAME_LEN, AttachType, ProgType, StatsType

if TYPE_CHECKING:
    from .sys.info import ProgInfo


__getattr__, __dir__ = exports(__name__, {"pybpf.sys.info": "ProgInfo"})  # on first use

ProgTypeLike = Union[ProgType, int, str]
_NAME_OK = re.compile(r"^[A-Za-z0-9_.]*$")
_LOG_START = 64 * 1024
_NO_DATA_TYPES = frozenset({ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE,
                            ProgType.SYSCALL, ProgType.TRACING, ProgType.STRUCT_OPS})
"""Program types whose BPF_PROG_TEST_RUN takes only a context and runs exactly once."""


def prog_type_of(t: ProgTypeLike) -> ProgType:
    """ProgType from an enum, its number, or a name as bpftool spells it (``xdp``, ``kprobe``)."""
    if isinstance(t, str):
        try:
            return ProgType[t.upper().removeprefix("BPF_PROG_TYPE_")]
        except KeyError:
            names = ", ".join(p.name.lower() for p in ProgType if p != ProgType.UNSPEC)
            raise UsageError(f"unknown program type {t!r}; known: {names}") from None
    try:
        return ProgType(t)
    except ValueError:
        raise UsageError(f"unknown program type {t}") from None


def _insn_bytes(insns: Any) -> bytes:
    if isinstance(insns, (bytes, bytearray, memoryview)):
        return bytes(insns)
    if hasattr(insns, "__bytes__"):
        return bytes(insns)
    return b"".join(bytes(i) for i in insns)


class TestRunResult(NamedTuple):
    """What BPF_PROG_TEST_RUN reports: the return value, mean run time, output data/ctx."""

    retval: int
    duration_ns: int
    data_out: bytes
    ctx_out: bytes


setattr(TestRunResult, "__test__", False)  # not a pytest class (NamedTuple bodies hold fields)


P = TypeVar("P", bound="Program")


class Program(KernelObject):
    """A loaded BPF program. ``verifier_log`` holds the log when one was requested;
    ``expected_attach_type`` is the one it was loaded with (a struct_ops program: the index
    of its member; None when unknown: opened by fd, pin or id, since the kernel does not
    report it)."""

    kind = "prog"

    def __init__(self, fd: FD, name: str, prog_type: Union[ProgType, int],
                 verifier_log: str = "",
                 expected_attach_type: Union[AttachType, int, None] = None) -> None:
        super().__init__(fd, name)
        self.type = prog_type
        self.verifier_log = verifier_log
        self.expected_attach_type = expected_attach_type

    @classmethod
    def load(cls: type[P], prog_type: ProgTypeLike, insns: Any, *, license: str = "GPL",
             name: str = "", expected_attach_type: Union[AttachType, int, None] = None,
             attach_btf_id: int = 0, attach_btf_obj_fd: int = 0, attach_prog_fd: int = 0,
             kern_version: Optional[int] = None, flags: int = 0, ifindex: int = 0,
             btf: Any = None, func_info: bytes = b"", func_info_rec_size: int = 8,
             line_info: bytes = b"", line_info_rec_size: int = 16,
             core_relos: bytes = b"", core_relo_rec_size: int = 16,
             fd_array: Optional[list[int]] = None, log_level: int = 0,
             log_size: int = _LOG_START, log_size_max: int = LOG_BUF_MAX) -> P:
        """BPF_PROG_LOAD.

        ``insns`` is bytes of ``struct bpf_insn`` or anything ``bytes()`` turns into them
        (a pybpf.asm program, a list of instructions). With ``log_level`` > 0 the verifier
        log of a successful load is kept in ``verifier_log``. A failed load raises
        VerifierError carrying the whole log (loaded again with a log if none was asked
        for, the buffer grown on ENOSPC as libbpf does, ``truncated`` when it still did not fit).
        ``core_relos`` (``struct bpf_core_relo`` records, Linux 5.17) has the kernel apply
        CO-RE relocations against its own BTF; it needs ``btf`` and ``func_info``.
        """
        ptype = prog_type_of(prog_type)
        code = _insn_bytes(insns)
        if not code or len(code) % INSN_SIZE:
            raise UsageError(f"program {name!r}: instructions must be a non-empty multiple of "
                             f"{INSN_SIZE} bytes, got {len(code)}")
        if not _NAME_OK.match(name):
            raise UsageError(f"program name {name!r}: the kernel takes only letters, digits, "
                             "'_' and '.'")
        if kern_version is None:
            kern_version = kernel_version_code() if ptype == ProgType.KPROBE else 0
        keep: list[Any] = [ctypes.create_string_buffer(code, len(code)),
                ctypes.create_string_buffer(license.encode())]
        attr: dict[str, Any] = dict(
            prog_type=ptype, insn_cnt=len(code) // INSN_SIZE,
            insns=ctypes.addressof(keep[0]), license=ctypes.addressof(keep[1]),
            kern_version=kern_version, prog_flags=flags,
            prog_name=name.encode()[:OBJ_NAME_LEN - 1], prog_ifindex=ifindex,
            expected_attach_type=int(expected_attach_type or 0), attach_btf_id=attach_btf_id,
            attach_prog_fd=attach_btf_obj_fd or attach_prog_fd,
            prog_btf_fd=btf if isinstance(btf, int) else (btf.fileno() if btf else 0))
        for data, rec, ptr, cnt, rsz in ((func_info, func_info_rec_size, "func_info",
                                          "func_info_cnt", "func_info_rec_size"),
                                         (line_info, line_info_rec_size, "line_info",
                                          "line_info_cnt", "line_info_rec_size"),
                                         (core_relos, core_relo_rec_size, "core_relos",
                                          "core_relo_cnt", "core_relo_rec_size")):
            if data:
                keep.append(ctypes.create_string_buffer(bytes(data), len(data)))
                attr[ptr], attr[cnt], attr[rsz] = ctypes.addressof(keep[-1]), len(data) // rec, rec
        if fd_array:
            arr = (ctypes.c_int32 * len(fd_array))(*fd_array)
            keep.append(arr)
            attr["fd_array"], attr["fd_array_cnt"] = ctypes.addressof(arr), len(fd_array)
        what = f"program {name!r}" if name else f"{ptype.name.lower()} program"
        fd, log = _load_with_log(attr, what, log_level, log_size, log_size_max)
        return cls(FD(fd), name, ptype, log, expected_attach_type)

    @classmethod
    def from_fd(cls, fd: Union[int, FD]) -> "Program":
        """Wrap a program fd; an int is duplicated (the caller keeps its own fd)."""
        from .sys.info import ProgInfo
        owned = fd if isinstance(fd, FD) else FD(os.dup(fd))
        try:
            info = ProgInfo.from_fd(owned.fd)
        except BaseException:
            owned.close()
            raise
        return cls(owned, info.name, info.type)

    @classmethod
    def from_pin(cls, path: Union[str, os.PathLike]) -> "Program":
        return cls.from_fd(cls._fd_from_pin(path))

    @classmethod
    def from_id(cls, prog_id: int) -> "Program":
        return cls.from_fd(cls._fd_from_id(prog_id))

    @classmethod
    def from_name(cls, name: str) -> "Program":
        """Open the one program named ``name``; none or several is an error listing ids."""
        return cls.from_id(cls._id_by_name(name, list_programs()))

    def info(self) -> ProgInfo:
        from .sys.info import ProgInfo
        return ProgInfo.from_fd(self.fd, self.describe())

    def xlated(self) -> bytes:
        """The instructions as the verifier rewrote them (``bpftool prog dump xlated``)."""
        n = self.info().xlated_prog_len
        buf = ctypes.create_string_buffer(n)
        objects.obj_info(self.fd, ProgInfoStruct(xlated_prog_len=n,
                                                 xlated_prog_insns=ctypes.addressof(buf)),
                         self.describe())
        return buf.raw

    def jited_ksyms(self) -> list[int]:
        """Kernel addresses of the JITed program and its subprograms (0s when kptr_restrict
        hides them); ``pybpf.asm.disassemble`` names subprogram calls with them."""
        n = ProgInfoStruct()
        objects.obj_info(self.fd, n, self.describe())
        if not n.nr_jited_ksyms:
            return []
        addrs = (ctypes.c_uint64 * n.nr_jited_ksyms)()
        objects.obj_info(self.fd, ProgInfoStruct(nr_jited_ksyms=n.nr_jited_ksyms,
                                                 jited_ksyms=ctypes.addressof(addrs)),
                         self.describe())
        return list(addrs)

    def btf_ext_info(self) -> tuple[list[tuple[int, int]], list[tuple[int, int, int, int]]]:
        """The program's BTF func and line info as the kernel keeps them (offsets in the
        translated program): ``[(insn_off, func type_id)]`` and ``[(insn_off, file_name_off,
        line_off, line_col)]``; string offsets and type ids refer to ``info().btf_id``."""
        n = objects.obj_info(self.fd, ProgInfoStruct(), self.describe())
        if not (n.nr_func_info or n.nr_line_info):
            return [], []
        fsz, lsz = n.func_info_rec_size or 8, n.line_info_rec_size or 16
        funcs = ctypes.create_string_buffer(n.nr_func_info * fsz)
        lines = ctypes.create_string_buffer(n.nr_line_info * lsz)
        objects.obj_info(self.fd, ProgInfoStruct(
            nr_func_info=n.nr_func_info, func_info_rec_size=fsz, func_info=ctypes.addressof(funcs),
            nr_line_info=n.nr_line_info, line_info_rec_size=lsz,
            line_info=ctypes.addressof(lines)), self.describe())
        words = memoryview(funcs.raw).cast("I")
        func_info = [(words[i * fsz // 4], words[i * fsz // 4 + 1]) for i in range(n.nr_func_info)]
        words = memoryview(lines.raw).cast("I")
        line_info = [(words[o], words[o + 1], words[o + 2], words[o + 3])
                     for o in (i * lsz // 4 for i in range(n.nr_line_info))]
        return func_info, line_info

    def test_run(self, data_in: bytes = b"", *, data_out_size: Optional[int] = None,
                 ctx_in: Optional[bytes] = None, ctx_out_size: Optional[int] = None,
                 repeat: int = 1, flags: int = 0, cpu: int = 0,
                 batch_size: int = 0) -> TestRunResult:
        """Run the program once or ``repeat`` times in the kernel (BPF_PROG_TEST_RUN).

        raw_tracepoint, tracing, syscall and struct_ops programs take only ``ctx_in`` and run
        once (the kernel refuses data and repeat for them); ``flags=TestRunFlag.RUN_ON_CPU``
        with ``cpu`` picks the CPU of a raw_tracepoint run.
        """
        if self.type in _NO_DATA_TYPES:
            if data_in or data_out_size:
                raise UsageError(f"{self.describe()}: {ProgType(self.type).name.lower()} "
                                 "programs take no data_in/data_out in test_run, only ctx_in")
            if repeat > 1:
                raise UsageError(f"{self.describe()}: {ProgType(self.type).name.lower()} "
                                 "programs run exactly once in test_run (repeat must be 1)")
            repeat = 0
        keep: list[Any] = []

        def buf(data: bytes, size: int) -> int:
            b = ctypes.create_string_buffer(data, max(size, len(data), 1))
            keep.append(b)
            return ctypes.addressof(b)

        if data_out_size is None:
            data_out_size = len(data_in) + 256 if data_in else 0
        if ctx_out_size is None:
            ctx_out_size = len(ctx_in) if ctx_in and self.type not in (
                ProgType.RAW_TRACEPOINT, ProgType.RAW_TRACEPOINT_WRITABLE) else 0
        fields: dict[str, Any] = dict(prog_fd=self.fd, repeat=repeat, flags=flags, cpu=cpu,
                                      batch_size=batch_size)
        if data_in:
            fields.update(data_in=buf(data_in, len(data_in)), data_size_in=len(data_in))
        if data_out_size:
            fields.update(data_out=buf(b"", data_out_size), data_size_out=data_out_size)
        if ctx_in:
            fields.update(ctx_in=buf(ctx_in, len(ctx_in)), ctx_size_in=len(ctx_in))
        if ctx_out_size:
            fields.update(ctx_out=buf(b"", ctx_out_size), ctx_size_out=ctx_out_size)
        _, attr = _cmd.prog_test_run(obj=self.describe(), **fields)
        out = ctypes.string_at(attr.data_out, attr.data_size_out) if attr.data_out else b""
        ctx = ctypes.string_at(attr.ctx_out, attr.ctx_size_out) if attr.ctx_out else b""
        return TestRunResult(attr.retval, attr.duration, out, ctx)

    def describe(self) -> str:
        return f"program {self.name!r}" if self.name else "program (unnamed)"


def _load_with_log(fields: dict[str, Any], what: str, log_level: int, log_size: int,
                   log_size_max: int) -> tuple[int, str]:
    """Load the attr ``fields``; on failure, again with a log grown (up to ``log_size_max``)
    until it fits."""
    size = 0
    log: Optional[ctypes.Array] = None
    attr: Optional[ProgLoadAttr] = None
    if log_level:
        size = log_size
    while True:
        if size:
            log = ctypes.create_string_buffer(size)
            fields.update(log_level=log_level or 1, log_size=size, log_buf=ctypes.addressof(log))
        ret, attr = _cmd.prog_load(attr, **fields)
        fields = {}  # the next try changes the log fields of the same attr
        if ret >= 0:
            return ret, log.value.decode(errors="replace") if log is not None else ""
        err = -ret
        if err == _errno.EPERM or (err == _errno.EINVAL and log is None and
                                   _type_unsupported(attr.prog_type)):
            _explain_refusal(attr, what, err)
        if log is None:
            size = log_size
            continue
        if err == _errno.ENOSPC and size < log_size_max:
            size = min(max(attr.log_true_size, size * 4), log_size_max)
            continue
        text = log.value.decode(errors="replace")
        raise VerifierError(err, "BPF_PROG_LOAD", what, text,
                            truncated=err == _errno.ENOSPC)


def _type_unsupported(prog_type: int) -> bool:
    try:
        return not probes.prog_type(ProgType(prog_type))
    except ValueError:
        return True


def _explain_refusal(attr: ProgLoadAttr, what: str, err: int) -> None:
    """Raise UnsupportedFeatureError when the probe of this kind of program (its type, attach
    type, iterator target) explains the refusal; EPERM otherwise says which capabilities are
    missing, or that the kernel refused although they are held."""
    from .btf.probes import prog_load  # the BTF layer only to explain a refusal (start-up)
    needs = probes.prog_caps(attr.prog_type)
    if not (err == _errno.EPERM and _caps.missing(needs)):  # privileges held: ask the probe
        try:
            support = prog_load(attr.prog_type, attr.expected_attach_type, attr.attach_btf_id)
        except ValueError:
            raise UsageError(f"BPF_PROG_LOAD on {what}: unknown program type "
                             f"{attr.prog_type}") from None
        if not support:
            raise UnsupportedFeatureError(f"BPF_PROG_LOAD on {what}: {support.reason}")
    if err == _errno.EPERM:
        raise BPFError(err, "BPF_PROG_LOAD", what,
                       detail=f"operation not permitted: {_caps.eperm_reason(needs)}")


def enable_stats() -> FD:
    """Count ``run_cnt``/``run_time_ns`` of every program while the returned fd is open
    (BPF_ENABLE_STATS; the sysctl kernel.bpf_stats_enabled does the same system-wide)."""
    return FD(_cmd.enable_stats(StatsType.RUN_TIME, "run-time stats"))


def list_programs() -> Iterator[ProgInfo]:
    """Info on every program in the kernel (other tenants' too); ones unloaded meanwhile skipped."""
    from .sys.info import ProgInfo
    for obj_id, fd in objects.open_all("prog"):
        with fd:
            yield ProgInfo.from_fd(fd.fd, f"prog id {obj_id}")
