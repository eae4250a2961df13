"""``union bpf_attr`` members and ``bpf_*_info`` structs, one ctypes Structure each.

Transcribed from the UAPI of Linux 6.18 (``include/uapi/linux/bpf.h``); the tests
compare every offset with the running kernel's BTF. Each attr struct ends at the
last field its command knows, so ``sizeof`` is the size passed to ``bpf()``.
Unions in the UAPI are kept as one field named as strace names it, with the
alternative names listed in ``_aliases_`` (same offset, same type).
"""
from __future__ import annotations

import ctypes
from ctypes import c_char, c_int32, c_uint8, c_uint32, c_uint64

from .uapi import Cmd


class Attr(ctypes.Structure):
    """Base of every attr struct: field access by UAPI alias names too."""

    _aliases_: dict[str, str] = {}

    def __getattr__(self, name: str):  # only called for names not found normally
        real = type(self)._aliases_.get(name)
        if real is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        return getattr(self, real)


class MapCreateAttr(Attr):
    _fields_ = [
        ("map_type", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("inner_map_fd", c_uint32),
        ("numa_node", c_uint32), ("map_name", c_char * 16), ("map_ifindex", c_uint32),
        ("btf_fd", c_uint32), ("btf_key_type_id", c_uint32), ("btf_value_type_id", c_uint32),
        ("btf_vmlinux_value_type_id", c_uint32), ("map_extra", c_uint64),
        ("value_type_btf_obj_fd", c_int32), ("map_token_fd", c_int32),
        ("excl_prog_hash", c_uint64), ("excl_prog_hash_size", c_uint32),
    ]


class MapElemAttr(Attr):
    """BPF_MAP_{LOOKUP,UPDATE,DELETE,LOOKUP_AND_DELETE}_ELEM, GET_NEXT_KEY, FREEZE."""

    _fields_ = [("map_fd", c_uint32), ("key", c_uint64), ("value", c_uint64), ("flags", c_uint64)]
    _aliases_ = {"next_key": "value"}


class MapBatchAttr(Attr):
    _fields_ = [
        ("in_batch", c_uint64), ("out_batch", c_uint64), ("keys", c_uint64), ("values", c_uint64),
        ("count", c_uint32), ("map_fd", c_uint32), ("elem_flags", c_uint64), ("flags", c_uint64),
    ]


class ProgLoadAttr(Attr):
    _fields_ = [
        ("prog_type", c_uint32), ("insn_cnt", c_uint32), ("insns", c_uint64), ("license", c_uint64),
        ("log_level", c_uint32), ("log_size", c_uint32), ("log_buf", c_uint64),
        ("kern_version", c_uint32), ("prog_flags", c_uint32), ("prog_name", c_char * 16),
        ("prog_ifindex", c_uint32), ("expected_attach_type", c_uint32), ("prog_btf_fd", c_uint32),
        ("func_info_rec_size", c_uint32), ("func_info", c_uint64), ("func_info_cnt", c_uint32),
        ("line_info_rec_size", c_uint32), ("line_info", c_uint64), ("line_info_cnt", c_uint32),
        ("attach_btf_id", c_uint32), ("attach_prog_fd", c_uint32), ("core_relo_cnt", c_uint32),
        ("fd_array", c_uint64), ("core_relos", c_uint64), ("core_relo_rec_size", c_uint32),
        ("log_true_size", c_uint32), ("prog_token_fd", c_int32), ("fd_array_cnt", c_uint32),
        ("signature", c_uint64), ("signature_size", c_uint32), ("keyring_id", c_int32),
    ]
    _aliases_ = {"attach_btf_obj_fd": "attach_prog_fd"}


class ObjAttr(Attr):
    """BPF_OBJ_PIN, BPF_OBJ_GET."""

    _fields_ = [("pathname", c_uint64), ("bpf_fd", c_uint32), ("file_flags", c_uint32),
                ("path_fd", c_int32)]


class ProgAttachAttr(Attr):
    """BPF_PROG_ATTACH, BPF_PROG_DETACH."""

    _fields_ = [
        ("target_fd", c_uint32), ("attach_bpf_fd", c_uint32), ("attach_type", c_uint32),
        ("attach_flags", c_uint32), ("replace_bpf_fd", c_uint32), ("relative_fd", c_uint32),
        ("expected_revision", c_uint64),
    ]
    _aliases_ = {"target_ifindex": "target_fd", "relative_id": "relative_fd"}


class TestRunAttr(Attr):
    """BPF_PROG_TEST_RUN (``test``)."""

    __test__ = False  # not a pytest class
    _fields_ = [
        ("prog_fd", c_uint32), ("retval", c_uint32), ("data_size_in", c_uint32),
        ("data_size_out", c_uint32), ("data_in", c_uint64), ("data_out", c_uint64),
        ("repeat", c_uint32), ("duration", c_uint32), ("ctx_size_in", c_uint32),
        ("ctx_size_out", c_uint32), ("ctx_in", c_uint64), ("ctx_out", c_uint64),
        ("flags", c_uint32), ("cpu", c_uint32), ("batch_size", c_uint32),
    ]


class GetIdAttr(Attr):
    """BPF_{PROG,MAP,BTF,LINK}_GET_NEXT_ID and _GET_FD_BY_ID."""

    _fields_ = [("start_id", c_uint32), ("next_id", c_uint32), ("open_flags", c_uint32),
                ("fd_by_id_token_fd", c_int32)]
    _aliases_ = {"prog_id": "start_id", "map_id": "start_id", "btf_id": "start_id",
                 "link_id": "start_id"}


class InfoAttr(Attr):
    """BPF_OBJ_GET_INFO_BY_FD (``info``)."""

    _fields_ = [("bpf_fd", c_uint32), ("info_len", c_uint32), ("info", c_uint64)]


class QueryAttr(Attr):
    """BPF_PROG_QUERY (``query``)."""

    _fields_ = [
        ("target_fd", c_uint32), ("attach_type", c_uint32), ("query_flags", c_uint32),
        ("attach_flags", c_uint32), ("prog_ids", c_uint64), ("prog_cnt", c_uint32),
        ("prog_attach_flags", c_uint64), ("link_ids", c_uint64), ("link_attach_flags", c_uint64),
        ("revision", c_uint64),
    ]
    _aliases_ = {"target_ifindex": "target_fd", "count": "prog_cnt"}


class RawTracepointAttr(Attr):
    _fields_ = [("name", c_uint64), ("prog_fd", c_uint32), ("cookie", c_uint64)]


class BtfLoadAttr(Attr):
    _fields_ = [
        ("btf", c_uint64), ("btf_log_buf", c_uint64), ("btf_size", c_uint32),
        ("btf_log_size", c_uint32), ("btf_log_level", c_uint32), ("btf_log_true_size", c_uint32),
        ("btf_flags", c_uint32), ("btf_token_fd", c_int32),
    ]


class TaskFdQueryAttr(Attr):
    _fields_ = [
        ("pid", c_uint32), ("fd", c_uint32), ("flags", c_uint32), ("buf_len", c_uint32),
        ("buf", c_uint64), ("prog_id", c_uint32), ("fd_type", c_uint32),
        ("probe_offset", c_uint64), ("probe_addr", c_uint64),
    ]


class _Relative(ctypes.Structure):
    """Relative placement of mprog attachments (tcx, netkit, cgroup links)."""

    _fields_ = [("relative_fd", c_uint32), ("expected_revision", c_uint64)]


class _LinkIter(ctypes.Structure):
    _fields_ = [("iter_info", c_uint64), ("iter_info_len", c_uint32)]


class _LinkPerfEvent(ctypes.Structure):
    _fields_ = [("bpf_cookie", c_uint64)]


class _LinkKprobeMulti(ctypes.Structure):
    _fields_ = [("flags", c_uint32), ("cnt", c_uint32), ("syms", c_uint64), ("addrs", c_uint64),
                ("cookies", c_uint64)]


class _LinkTracing(ctypes.Structure):
    _fields_ = [("target_btf_id", c_uint32), ("cookie", c_uint64)]


class _LinkNetfilter(ctypes.Structure):
    _fields_ = [("pf", c_uint32), ("hooknum", c_uint32), ("priority", c_int32), ("flags", c_uint32)]


class _LinkUprobeMulti(ctypes.Structure):
    _fields_ = [("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64),
                ("cookies", c_uint64), ("cnt", c_uint32), ("flags", c_uint32), ("pid", c_uint32)]


class _LinkTarget(ctypes.Union):
    _fields_ = [
        ("target_btf_id", c_uint32), ("iter", _LinkIter), ("perf_event", _LinkPerfEvent),
        ("kprobe_multi", _LinkKprobeMulti), ("tracing", _LinkTracing),
        ("netfilter", _LinkNetfilter), ("tcx", _Relative), ("uprobe_multi", _LinkUprobeMulti),
        ("netkit", _Relative), ("cgroup", _Relative),
    ]


class LinkCreateAttr(Attr):
    """BPF_LINK_CREATE (``link_create``); per-attach-type data in ``target``."""

    _fields_ = [("prog_fd", c_uint32), ("target_fd", c_uint32), ("attach_type", c_uint32),
                ("flags", c_uint32), ("target", _LinkTarget)]
    _aliases_ = {"map_fd": "prog_fd", "target_ifindex": "target_fd"}


class LinkUpdateAttr(Attr):
    _fields_ = [("link_fd", c_uint32), ("new_prog_fd", c_uint32), ("flags", c_uint32),
                ("old_prog_fd", c_uint32)]
    _aliases_ = {"new_map_fd": "new_prog_fd", "old_map_fd": "old_prog_fd"}


class LinkDetachAttr(Attr):
    _fields_ = [("link_fd", c_uint32)]


class EnableStatsAttr(Attr):
    _fields_ = [("type", c_uint32)]


class IterCreateAttr(Attr):
    _fields_ = [("link_fd", c_uint32), ("flags", c_uint32)]


class _IterMap(ctypes.Structure):
    _fields_ = [("map_fd", c_uint32)]


class _IterCgroup(ctypes.Structure):
    _fields_ = [("order", c_uint32), ("cgroup_fd", c_uint32), ("cgroup_id", c_uint64)]


class _IterTask(ctypes.Structure):
    _fields_ = [("tid", c_uint32), ("pid", c_uint32), ("pid_fd", c_uint32)]


class IterLinkInfo(ctypes.Union):
    """union bpf_iter_link_info: what an iterator link walks (LINK_CREATE ``iter_info``)."""

    _fields_ = [("map", _IterMap), ("cgroup", _IterCgroup), ("task", _IterTask)]


class ProgBindMapAttr(Attr):
    _fields_ = [("prog_fd", c_uint32), ("map_fd", c_uint32), ("flags", c_uint32)]


class TokenCreateAttr(Attr):
    _fields_ = [("flags", c_uint32), ("bpffs_fd", c_uint32)]


ATTR_OF_CMD: dict[int, type[Attr]] = {
    Cmd.MAP_CREATE: MapCreateAttr,
    Cmd.MAP_LOOKUP_ELEM: MapElemAttr, Cmd.MAP_UPDATE_ELEM: MapElemAttr,
    Cmd.MAP_DELETE_ELEM: MapElemAttr, Cmd.MAP_GET_NEXT_KEY: MapElemAttr,
    Cmd.MAP_LOOKUP_AND_DELETE_ELEM: MapElemAttr, Cmd.MAP_FREEZE: MapElemAttr,
    Cmd.MAP_LOOKUP_BATCH: MapBatchAttr, Cmd.MAP_LOOKUP_AND_DELETE_BATCH: MapBatchAttr,
    Cmd.MAP_UPDATE_BATCH: MapBatchAttr, Cmd.MAP_DELETE_BATCH: MapBatchAttr,
    Cmd.PROG_LOAD: ProgLoadAttr,
    Cmd.OBJ_PIN: ObjAttr, Cmd.OBJ_GET: ObjAttr,
    Cmd.PROG_ATTACH: ProgAttachAttr, Cmd.PROG_DETACH: ProgAttachAttr,
    Cmd.PROG_TEST_RUN: TestRunAttr,
    Cmd.PROG_GET_NEXT_ID: GetIdAttr, Cmd.MAP_GET_NEXT_ID: GetIdAttr,
    Cmd.BTF_GET_NEXT_ID: GetIdAttr, Cmd.LINK_GET_NEXT_ID: GetIdAttr,
    Cmd.PROG_GET_FD_BY_ID: GetIdAttr, Cmd.MAP_GET_FD_BY_ID: GetIdAttr,
    Cmd.BTF_GET_FD_BY_ID: GetIdAttr, Cmd.LINK_GET_FD_BY_ID: GetIdAttr,
    Cmd.OBJ_GET_INFO_BY_FD: InfoAttr,
    Cmd.PROG_QUERY: QueryAttr,
    Cmd.RAW_TRACEPOINT_OPEN: RawTracepointAttr,
    Cmd.BTF_LOAD: BtfLoadAttr,
    Cmd.TASK_FD_QUERY: TaskFdQueryAttr,
    Cmd.LINK_CREATE: LinkCreateAttr, Cmd.LINK_UPDATE: LinkUpdateAttr,
    Cmd.LINK_DETACH: LinkDetachAttr,
    Cmd.ENABLE_STATS: EnableStatsAttr,
    Cmd.ITER_CREATE: IterCreateAttr,
    Cmd.PROG_BIND_MAP: ProgBindMapAttr,
    Cmd.TOKEN_CREATE: TokenCreateAttr,
}


# --- OBJ_GET_INFO_BY_FD results -------------------------------------------------------------

class ProgInfoStruct(ctypes.Structure):
    """struct bpf_prog_info."""

    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("tag", c_uint8 * 8), ("jited_prog_len", c_uint32),
        ("xlated_prog_len", c_uint32), ("jited_prog_insns", c_uint64),
        ("xlated_prog_insns", c_uint64), ("load_time", c_uint64), ("created_by_uid", c_uint32),
        ("nr_map_ids", c_uint32), ("map_ids", c_uint64), ("name", c_char * 16),
        ("ifindex", c_uint32), ("gpl_compatible", c_uint32, 1), ("netns_dev", c_uint64),
        ("netns_ino", c_uint64), ("nr_jited_ksyms", c_uint32), ("nr_jited_func_lens", c_uint32),
        ("jited_ksyms", c_uint64), ("jited_func_lens", c_uint64), ("btf_id", c_uint32),
        ("func_info_rec_size", c_uint32), ("func_info", c_uint64), ("nr_func_info", c_uint32),
        ("nr_line_info", c_uint32), ("line_info", c_uint64), ("jited_line_info", c_uint64),
        ("nr_jited_line_info", c_uint32), ("line_info_rec_size", c_uint32),
        ("jited_line_info_rec_size", c_uint32), ("nr_prog_tags", c_uint32),
        ("prog_tags", c_uint64), ("run_time_ns", c_uint64), ("run_cnt", c_uint64),
        ("recursion_misses", c_uint64), ("verified_insns", c_uint32),
        ("attach_btf_obj_id", c_uint32), ("attach_btf_id", c_uint32),
    ]


class MapInfoStruct(ctypes.Structure):
    """struct bpf_map_info."""

    _fields_ = [
        ("type", c_uint32), ("id", c_uint32), ("key_size", c_uint32), ("value_size", c_uint32),
        ("max_entries", c_uint32), ("map_flags", c_uint32), ("name", c_char * 16),
        ("ifindex", c_uint32), ("btf_vmlinux_value_type_id", c_uint32), ("netns_dev", c_uint64),
        ("netns_ino", c_uint64), ("btf_id", c_uint32), ("btf_key_type_id", c_uint32),
        ("btf_value_type_id", c_uint32), ("btf_vmlinux_id", c_uint32), ("map_extra", c_uint64),
        ("hash", c_uint64), ("hash_size", c_uint32),
    ]


class BtfInfoStruct(ctypes.Structure):
    """struct bpf_btf_info."""

    _fields_ = [("btf", c_uint64), ("btf_size", c_uint32), ("id", c_uint32), ("name", c_uint64),
                ("name_len", c_uint32), ("kernel_btf", c_uint32)]


class _LinkInfoRawTp(ctypes.Structure):
    _fields_ = [("tp_name", c_uint64), ("tp_name_len", c_uint32), ("cookie", c_uint64)]


class _LinkInfoTracing(ctypes.Structure):
    _fields_ = [("attach_type", c_uint32), ("target_obj_id", c_uint32),
                ("target_btf_id", c_uint32), ("cookie", c_uint64)]


class _LinkInfoCgroup(ctypes.Structure):
    _fields_ = [("cgroup_id", c_uint64), ("attach_type", c_uint32)]


class _LinkInfoIter(ctypes.Structure):
    _fields_ = [("target_name", c_uint64), ("target_name_len", c_uint32),
                ("map_id", c_uint32), ("cgroup_id", c_uint64), ("order", c_uint32)]


class _LinkInfoIfAttach(ctypes.Structure):
    """netns, tcx, netkit, sockmap: (netns inode / ifindex / map id, attach_type)."""

    _fields_ = [("target", c_uint32), ("attach_type", c_uint32)]


class _LinkInfoTarget(ctypes.Structure):
    """xdp (ifindex), struct_ops (map id)."""

    _fields_ = [("target", c_uint32)]


class _LinkInfoNetfilter(ctypes.Structure):
    _fields_ = [("pf", c_uint32), ("hooknum", c_uint32), ("priority", c_int32), ("flags", c_uint32)]


class _LinkInfoKprobeMulti(ctypes.Structure):
    _fields_ = [("addrs", c_uint64), ("count", c_uint32), ("flags", c_uint32),
                ("missed", c_uint64), ("cookies", c_uint64)]


class _LinkInfoUprobeMulti(ctypes.Structure):
    _fields_ = [("path", c_uint64), ("offsets", c_uint64), ("ref_ctr_offsets", c_uint64),
                ("cookies", c_uint64), ("path_size", c_uint32), ("count", c_uint32),
                ("flags", c_uint32), ("pid", c_uint32)]


class _LinkInfoPerfEvent(ctypes.Structure):
    """perf_event links: ``type`` (enum bpf_perf_event_type) then the union's first words.

    Layouts (all start at ``data``): uprobe {file_name u64, name_len u32, offset u32, cookie u64,
    ref_ctr_offset u64}; kprobe {func_name u64, name_len u32, offset u32, addr u64, missed u64,
    cookie u64}; tracepoint {tp_name u64, name_len u32, cookie u64 at +16}; event {config u64,
    type u32, cookie u64 at +16}.
    """

    _fields_ = [("type", c_uint32), ("name", c_uint64), ("name_len", c_uint32),
                ("offset", c_uint32), ("word2", c_uint64), ("word3", c_uint64),
                ("word4", c_uint64)]


class _LinkInfoData(ctypes.Union):
    _fields_ = [
        ("raw_tracepoint", _LinkInfoRawTp), ("tracing", _LinkInfoTracing),
        ("cgroup", _LinkInfoCgroup), ("iter", _LinkInfoIter), ("netns", _LinkInfoIfAttach),
        ("xdp", _LinkInfoTarget), ("struct_ops", _LinkInfoTarget),
        ("netfilter", _LinkInfoNetfilter), ("kprobe_multi", _LinkInfoKprobeMulti),
        ("uprobe_multi", _LinkInfoUprobeMulti), ("perf_event", _LinkInfoPerfEvent),
        ("tcx", _LinkInfoIfAttach), ("netkit", _LinkInfoIfAttach),
        ("sockmap", _LinkInfoIfAttach),
    ]


class LinkInfoStruct(ctypes.Structure):
    """struct bpf_link_info: header then the per-link-type union."""

    _fields_ = [("type", c_uint32), ("id", c_uint32), ("prog_id", c_uint32),
                ("data", _LinkInfoData)]


class Insn(ctypes.Structure):
    """struct bpf_insn: code, dst_reg:4, src_reg:4, off, imm (little-endian bitfield order)."""

    _fields_ = [("code", c_uint8), ("regs", c_uint8), ("off", ctypes.c_int16),
                ("imm", ctypes.c_int32)]
