"""BTF: the type model (``types``), parsed BTF (``Spec``), encoding (``encode``), loader
fix-ups and sanitization for older kernels (``fixup_datasecs``, ``sanitize``), BTF-driven
value codecs and bpftool-style formatting (``values``), and BTF objects in the kernel."""
from .._lazy import exports

# ``encode`` and ``sanitize`` share their modules' names: imported here, or importing the
# module would rebind the package attribute to it (and loading an object needs both anyway)
from .encode import encode, encode_spec, int_btf
from .sanitize import KernelBTF, fixup_datasecs, sanitize

# the others imported from their modules on first use (``types``, ``values``: submodules)
__getattr__, __dir__ = exports(__name__, {
    ".cdump": "CDumper, dump_c",
    ".ext": "BTFExt, CoreRelo, FuncInfo, LineInfo, parse_ext",
    ".kernel": "BTF, BTFInfo, list_btf",
    ".spec": "Spec",
})

__all__ = ["BTF", "BTFExt", "BTFInfo", "CDumper", "CoreRelo", "FuncInfo", "LineInfo", "Spec",
           "dump_c", "int_btf", "list_btf", "parse_ext", "types",
           "KernelBTF", "encode", "encode_spec", "fixup_datasecs", "sanitize", "values"]
