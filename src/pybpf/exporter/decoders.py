"""Label decoders: a map key's bytes become label strings, as ebpf_exporter decodes them.

Each label takes ``size`` bytes of the key (then skips ``padding``) and runs them through its
chain of decoders, each turning bytes into bytes: ``uint`` (1, 2, 4 or 8 bytes, host order,
to decimal), ``hex``, ``string`` (up to the first NUL), ``ksym`` (a kernel address to its
symbol), ``kstack`` (kernel addresses, up to the first 0, one symbol per line), ``syscall``
(number to name), ``errno`` (number to ``ENOENT``...), ``majorminor`` (a ``new_encode_dev``
number to the block device's name from /proc/partitions), ``inet_ip`` (4 or 16 bytes to an
address), ``ifname`` (an interface index to its name), ``cgroup`` (an id to its path under
/sys/fs/cgroup), ``dname`` (a DNS wire-format name), ``static_map`` (a lookup table,
``allow_unknown``), ``regexp`` (keep matching values, the group's text for a pattern with
one group; others drop the whole key), ``pci_vendor``/``pci_device``/``pci_class``/``pci_subclass``
(the pci.ids database). A decoder named ``module:function`` is a Python callable
``function(data: bytes, conf: DecoderConfig) -> bytes | str`` that may raise
:class:`SkipLabelSet`.
"""
from __future__ import annotations

import errno as _errno
import importlib
import ipaddress
import os
import platform
import re
import socket
import sys
import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Optional, Union

from .config import DecoderConfig, Label

Decode = Callable[[bytes, DecoderConfig], bytes]


class SkipLabelSet(Exception):
    """Raised by a decoder (``regexp``) to drop the key: its series is not exported."""


class DecodeError(ValueError):
    """A key's bytes do not fit the labels or a decoder cannot read its input."""


def _int_text(data: bytes) -> int:
    try:
        return int(data.decode())
    except ValueError:
        raise DecodeError(f"expected a decimal number (chain a uint decoder first), "
                          f"got {data!r}") from None


def decode_uint(data: bytes, conf: DecoderConfig) -> bytes:
    if len(data) not in (1, 2, 4, 8):
        raise DecodeError(f"unknown value length {len(data)} for {data.hex()}")
    return str(int.from_bytes(data, sys.byteorder)).encode()


def decode_hex(data: bytes, conf: DecoderConfig) -> bytes:
    return data.hex().encode()


def decode_string(data: bytes, conf: DecoderConfig) -> bytes:
    end = data.find(b"\0")
    return data if end < 0 else data[:end]


def decode_dname(data: bytes, conf: DecoderConfig) -> bytes:
    """DNS wire format (length-prefixed labels) to dotted text; malformed input is kept."""
    if not data:
        return b"."
    out, off = bytearray(), 0
    while off < len(data):
        n = data[off]
        if off + 1 + n > len(data):
            return data
        out += b"." + data[off + 1:off + 1 + n]
        off += 1 + n
    return bytes(out[1:])


def decode_inet_ip(data: bytes, conf: DecoderConfig) -> bytes:
    """4 or 16 bytes to an address; IPv4-mapped IPv6 shown as IPv4 (as Go's net.IP)."""
    if len(data) == 4:
        return str(ipaddress.IPv4Address(data)).encode()
    if len(data) == 16:
        v6 = ipaddress.IPv6Address(data)
        return str(v6.ipv4_mapped or v6).encode()
    return b"<nil>" if not data else b"?" + data.hex().encode()


def decode_errno(data: bytes, conf: DecoderConfig) -> bytes:
    n = _int_text(data)
    return _errno.errorcode.get(n, f"unknown:{n}").encode()


def decode_static_map(data: bytes, conf: DecoderConfig) -> bytes:
    if conf.static_map is None:
        return b"empty mapping"
    key = data.decode(errors="replace")
    if key in conf.static_map:
        return conf.static_map[key].encode()
    return data if conf.allow_unknown else b"unknown:" + data


class _Regexps:
    def __init__(self) -> None:
        self.compiled: dict[str, re.Pattern] = {}

    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        text = data.decode(errors="replace")
        for expr in conf.regexps or ():
            rx = self.compiled.get(expr)
            if rx is None:
                rx = self.compiled[expr] = re.compile(expr)
            m = rx.search(text)
            # as ebpf_exporter: the one group's text, or the whole match without groups; a
            # pattern with several groups never selects
            if m and rx.groups == 1:
                return (m.group(1) or "").encode()
            if m and rx.groups == 0:
                return m.group(0).encode()
        raise SkipLabelSet(text)


# -- syscall numbers -------------------------------------------------------------------------
_UNISTD = {"x86_64": "asm/unistd_64.h", "i686": "asm/unistd_32.h", "i386": "asm/unistd_32.h",
           "aarch64": "asm-generic/unistd.h", "riscv64": "asm-generic/unistd.h",
           "loongarch64": "asm-generic/unistd.h", "s390x": "asm/unistd_64.h",
           "ppc64le": "asm/unistd_64.h", "armv7l": "asm/unistd-eabi.h"}


def syscall_names(machine: Optional[str] = None) -> dict[int, str]:
    """This architecture's syscall numbers and names, from the kernel's UAPI header
    (``__NR_<name>`` in linux-libc-dev's ``asm/unistd*.h``); empty if it is not installed."""
    machine = machine or platform.machine()
    header = _UNISTD.get(machine, "asm/unistd.h")
    for base in (f"/usr/include/{machine}-linux-gnu", "/usr/include",
                 f"/usr/include/{machine}-linux-gnu/asm"):
        path = os.path.join(base, header)
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        return {int(n): name for name, n in
                re.findall(r"^#define __NR_(\w+)\s+(\d+)\s*$", text, re.M)}
    return {}


class _Syscalls:
    def __init__(self) -> None:
        self.names: Optional[dict[int, str]] = None

    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        if self.names is None:
            self.names = syscall_names()
        n = _int_text(data)
        return self.names.get(n, f"unknown_syscall:{n}").encode()


# -- kernel symbols --------------------------------------------------------------------------
class KernelAddresses:
    """Kernel addresses to names with :class:`pybpf.symbols.KernelSymbols` (all symbols, data
    too, as ebpf_exporter's decoders see /proc/kallsyms), read again for an unknown address
    (a module loaded since) at most every ``REREAD`` seconds. A name is decoded when asked
    (the label cache keeps it), not the whole table's ~10 MiB of str at the first look-up."""

    REREAD = 10.0

    def __init__(self) -> None:
        self.symbols: Optional[Any] = None
        self.read_at = 0.0
        self.lock = threading.Lock()

    def _read(self) -> None:
        from ..errors import UsageError
        from ..symbols import KernelSymbols
        try:
            self.symbols = KernelSymbols(text_only=False)
        except (OSError, UsageError):  # addresses hidden (kptr_restrict, CAP_SYSLOG dropped):
            pass                       # keep what was read before
        self.read_at = time.monotonic()

    def load(self) -> None:
        """Read the symbols now (before capabilities are dropped)."""
        with self.lock:
            if self.read_at == 0.0:
                self._read()

    def name(self, addr: int, exact: bool = True) -> str:
        """The symbol at ``addr`` (``exact``) or the nearest one below it; "" if none."""
        with self.lock:
            if self.read_at == 0.0:
                self._read()
            for attempt in (0, 1):
                syms = self.symbols
                if syms is not None:
                    i = syms.index(addr)
                    if i >= 0 and (not exact or syms.addresses[i] == addr):
                        return syms.raw_names[i].decode(errors="replace")
                if attempt or time.monotonic() - self.read_at < self.REREAD:
                    return ""
                self._read()
        return ""

    def address(self, name: str) -> Optional[int]:
        """The (lowest) address of symbol ``name``; a scan, for the few ``kaddrs`` asked."""
        with self.lock:
            if self.read_at == 0.0:
                self._read()
            if self.symbols is None:
                return None
            try:
                return self.symbols.addresses[self.symbols.raw_names.index(name.encode())]
            except ValueError:
                return None


class _Ksym:
    def __init__(self, syms: KernelAddresses) -> None:
        self.syms = syms

    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        addr = int.from_bytes(data[:8], sys.byteorder)
        return (self.syms.name(addr) or f"unknown_addr:0x{addr:x}").encode()


class _Kstack(_Ksym):
    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        frames = []
        for off in range(0, len(data) - 7, 8):
            addr = int.from_bytes(data[off:off + 8], sys.byteorder)
            if addr == 0:
                break
            frames.append(self.syms.name(addr, exact=False) or "??")
        return "\n".join(frames).encode()


# -- devices, interfaces, cgroups ------------------------------------------------------------
class _MajorMinor:
    def __init__(self, partitions: str = "/proc/partitions") -> None:
        self.partitions = partitions
        self.cache: dict[int, bytes] = {}

    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        dev = int.from_bytes(data[:4], sys.byteorder)  # new_encode_dev(): a u32
        if dev in self.cache:
            return self.cache[dev]
        major, minor = os.major(dev), os.minor(dev)
        with open(self.partitions) as f:
            for line in f:
                parts = line.split()
                if len(parts) == 4 and parts[0] == str(major) and parts[1] == str(minor):
                    self.cache[dev] = parts[3].encode()
                    return self.cache[dev]
        return f"unknown:{major}:{minor}".encode()


def decode_ifname(data: bytes, conf: DecoderConfig) -> bytes:
    index = int.from_bytes(data[:4], sys.byteorder)
    try:
        return socket.if_indextoname(index).encode()
    except OSError:
        return f"unknown:{index}".encode()


def cgroup2_mount() -> str:
    """Where the cgroup v2 hierarchy is mounted (``/sys/fs/cgroup``, or its ``unified``
    directory on hybrid systems); ``/sys/fs/cgroup`` when none is."""
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                fields = line.split()
                if len(fields) > 2 and fields[2] == "cgroup2":
                    return fields[1]
    except OSError:
        pass
    return "/sys/fs/cgroup"


class CgroupPaths:
    """cgroup v2 ids (the directory's inode number, what ``bpf_get_current_cgroup_id()``
    returns) to paths under ``root`` (default: the cgroup2 mount), by walking the hierarchy;
    walked again (at most once a second) when an id is not known."""

    def __init__(self, root: Optional[str] = None) -> None:
        self.root = root or cgroup2_mount()
        self.paths: dict[int, str] = {}
        self.walked = 0.0
        self.lock = threading.Lock()

    def walk(self) -> dict[int, str]:
        found: dict[int, str] = {}
        try:
            found[os.stat(self.root).st_ino] = self.root
        except OSError:
            return found
        for top, dirs, _ in os.walk(self.root):
            for d in dirs:
                path = os.path.join(top, d)
                try:
                    found[os.stat(path).st_ino] = path
                except OSError:  # removed while walking
                    pass
        with self.lock:
            self.paths = found
            self.walked = time.monotonic()
        return found

    def path(self, cgroup_id: int) -> str:
        path = self.paths.get(cgroup_id)
        if path is None and time.monotonic() - self.walked >= 1.0:
            path = self.walk().get(cgroup_id)
        return path or ""


class _Cgroup:
    def __init__(self, paths: CgroupPaths) -> None:
        self.paths = paths

    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        cid = _int_text(data)
        return (self.paths.path(cid) or f"unknown_cgroup_id:{cid}").encode()


# -- PCI ids ---------------------------------------------------------------------------------
PCI_IDS_PATHS = ("/usr/share/misc/pci.ids", "/usr/share/hwdata/pci.ids")
MISSING_PCI_IDS = b"missing pci.ids db"


class PciIds:
    """The pci.ids database: vendors (``8086``), products (vendor + device, ``80861000``),
    classes (``02``) and subclasses (``0200``)."""

    def __init__(self, path: str) -> None:
        self.vendors: dict[str, str] = {}
        self.products: dict[str, str] = {}
        self.classes: dict[str, str] = {}
        self.subclasses: dict[str, str] = {}
        vendor = klass = ""
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                if not line.strip() or line.startswith("#"):
                    continue
                if line.startswith("C "):
                    klass, _, name = line[2:].rstrip("\n").partition("  ")
                    self.classes[klass] = name
                    vendor = ""
                elif not line[0].isspace():
                    vendor, _, name = line.rstrip("\n").partition("  ")
                    self.vendors[vendor] = name
                    klass = ""
                elif line.startswith("\t") and not line.startswith("\t\t"):
                    ident, _, name = line[1:].rstrip("\n").partition("  ")
                    if vendor:
                        self.products[vendor + ident] = name
                    elif klass:
                        self.subclasses[klass + ident] = name

    @classmethod
    def find(cls) -> Optional["PciIds"]:
        for path in PCI_IDS_PATHS:
            if os.path.exists(path):
                return cls(path)
        return None


class _Pci:
    def __init__(self, kind: str, db: Callable[[], Optional[PciIds]]) -> None:
        self.kind, self.db = kind, db

    def __call__(self, data: bytes, conf: DecoderConfig) -> bytes:
        db = self.db()
        if db is None:
            return MISSING_PCI_IDS
        n = _int_text(data)
        if self.kind == "vendor":
            key = f"{n:02x}"
            return (db.vendors.get(key) or f"unknown pci vendor: 0x{key}").encode()
        if self.kind == "device":
            key = f"{n:04x}"
            return (db.products.get(key) or f"unknown pci device: 0x{key}").encode()
        if self.kind == "class":
            key = f"{n:02x}"
            return (db.classes.get(key) or f"unknown pci class: 0x{key}").encode()
        klass, sub = f"{n >> 8:02x}", f"{n & 0xff:02x}"
        if klass not in db.classes:
            return f"unknown pci class: 0x{klass}".encode()
        return (db.subclasses.get(klass + sub) or
                f"unknown pci subclass: 0x{sub} (class 0x{klass})").encode()


# -- Python decoders -------------------------------------------------------------------------
def python_decoder(spec: str) -> Callable[[bytes, DecoderConfig], Union[bytes, str]]:
    """The callable ``module:function`` names (ImportError/AttributeError if it does not exist)."""
    module, _, func = spec.partition(":")
    obj = importlib.import_module(module)
    for part in func.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{spec} is not callable")
    return obj


class Decoders:
    """Every decoder by name, with the state some keep (symbols, cgroup paths, caches), and the
    per-metric cache of decoded keys."""

    def __init__(self, cgroups: Optional[CgroupPaths] = None, *,
                 skip_cache_size: Optional[int] = None) -> None:
        self.kernel = KernelAddresses()
        self._pci: Optional[tuple[Optional[PciIds]]] = None
        self.cgroups = cgroups or CgroupPaths()
        ksym = _Ksym(self.kernel)
        kstack = _Kstack(self.kernel)
        self.table: dict[str, Decode] = {
            "uint": decode_uint, "hex": decode_hex, "string": decode_string,
            "ksym": ksym, "kstack": kstack, "syscall": _Syscalls(), "errno": decode_errno,
            "majorminor": _MajorMinor(), "inet_ip": decode_inet_ip, "ifname": decode_ifname,
            "cgroup": _Cgroup(self.cgroups), "dname": decode_dname,
            "static_map": decode_static_map, "regexp": _Regexps(),
            "pci_vendor": _Pci("vendor", self.pci_ids), "pci_device": _Pci("device", self.pci_ids),
            "pci_class": _Pci("class", self.pci_ids),
            "pci_subclass": _Pci("subclass", self.pci_ids),
        }
        self.cache: dict[str, dict[bytes, Optional[tuple[str, ...]]]] = {}
        # --config.skip-cache-size: None keeps skipped keys in ``cache`` (as None); N keeps
        # the last N apart, least recently seen dropped first (0: none, decoded every time)
        self.skip_cache_size = skip_cache_size
        self.skipped: OrderedDict[tuple[str, bytes], None] = OrderedDict()
        self.lock = threading.Lock()

    def pci_ids(self) -> Optional[PciIds]:
        if self._pci is None:
            self._pci = (PciIds.find(),)
        return self._pci[0]

    def why_unknown(self, name: str) -> Optional[str]:
        """None if ``name`` is a decoder (built in, or an importable ``module:function``),
        else why not."""
        if name in self.table:
            return None
        if ":" not in name:
            return f"unknown decoder {name!r} (built in: {', '.join(sorted(self.table))}; " \
                   "or module:function for a Python decoder)"
        try:
            self.table[name] = _python(python_decoder(name))
        except Exception as e:  # the user's module: any failure to import it is reported
            return f"Python decoder {name!r} cannot be loaded: {type(e).__name__}: {e}"
        return None

    def decode_label(self, data: bytes, label: Label) -> bytes:
        for conf in label.decoders:
            try:
                data = self.table[conf.name](data, conf)
            except SkipLabelSet:
                raise
            except Exception as e:
                raise DecodeError(f"label {label.name!r}: decoder {conf.name!r}: {e}") from None
        return data

    def decode(self, raw: bytes, labels: list[Label]) -> tuple[str, ...]:
        """Label values of key ``raw`` (uncached; SkipLabelSet drops it, DecodeError if it does
        not fit)."""
        total = sum(lb.size + lb.padding for lb in labels)
        if total != len(raw):
            raise DecodeError(f"the key has {len(raw)} bytes but the labels describe {total}")
        out, off = [], 0
        for lb in labels:
            out.append(self.decode_label(raw[off:off + lb.size], lb)
                       .decode("utf-8", errors="replace"))
            off += lb.size + lb.padding
        return tuple(out)

    def decode_cached(self, metric: str, raw: bytes, labels: list[Label]
                      ) -> Optional[tuple[str, ...]]:
        """As ``decode``, remembered per metric by key bytes; None for a skipped key."""
        cache = self.cache.get(metric)
        if cache is None:
            cache = self.cache[metric] = {}
        try:
            return cache[raw]
        except KeyError:
            pass
        size, skipped = self.skip_cache_size, self.skipped
        if size and (metric, raw) in skipped:
            skipped.move_to_end((metric, raw))
            return None
        try:
            values: Optional[tuple[str, ...]] = self.decode(raw, labels)
        except SkipLabelSet:
            if size is not None:
                if size:
                    skipped[(metric, raw)] = None
                    if len(skipped) > size:
                        skipped.popitem(last=False)
                return None
            values = None
        if len(cache) >= 1 << 20:  # keys come and go (pids, cgroups): bound the memory
            cache.clear()
        cache[raw] = values
        return values


def _python(func: Callable[[bytes, DecoderConfig], Union[bytes, str]]) -> Decode:
    def decode(data: bytes, conf: DecoderConfig) -> bytes:
        out = func(data, conf)
        return out.encode() if isinstance(out, str) else bytes(out)
    return decode
