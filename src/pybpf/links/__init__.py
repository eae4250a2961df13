"""Attaching programs to hooks; one module per hook family.

Each name is imported from its module on first use (``pybpf._lazy``): attaching a tracepoint
does not import netlink, sockets or the uprobe ELF reader.
"""
from .._lazy import exports

__getattr__, __dir__ = exports(__name__, {
    ".link": "Attachment, Link, LinkGroup, PerfEventAttachment, list_links",
    ".info": "AttachmentInfo, LinkGroupInfo, LinkInfo",
    ".tracing": "attach_perf_event, attach_raw_tracepoint, attach_tracepoint",
    ".kprobe": "attach_kprobe, attach_kprobe_multi, attach_kretprobe, attach_ksyscall",
    ".uprobe": "attach_uprobe, attach_uprobe_multi, attach_uretprobe",
    ".usdt": "attach_usdt, usdt_notes",
    ".btf_tracing": "load as load_btf_tracing, attach as attach_btf_tracing, load_freplace",
    ".iter": "IterLink, attach_iter",
    ".perf_event": "attach_perf_event_program",
    ".attach": "AttachedProgram, HookQuery, ProgAttachment",
    ".cgroup": "attach_cgroup, detach_cgroup, list_cgroup, query_cgroup",
    ".netfilter": "attach_netfilter",
    ".netns": "attach_flow_dissector, attach_sk_lookup, query_netns",
    ".socket": "SocketFilterAttachment, attach_sockmap, attach_socket_filter, "
               "detach_socket_filter",
    ".struct_ops": "StructOpsRegistration, attach_struct_ops",
    ".tc": "TcFilterAttachment, TcProgram, attach_tc, attach_tc_filter, attach_tcx, list_tc",
    ".xdp": "XdpAttachment, XdpInfo, attach_xdp, list_xdp",
})

__all__ = ["Attachment", "AttachmentInfo", "Link", "LinkGroupInfo", "LinkInfo",
           "PerfEventAttachment", "SocketFilterAttachment", "list_links", "attach_perf_event",
           "attach_raw_tracepoint", "attach_tracepoint",
           "LinkGroup", "attach_kprobe", "attach_kprobe_multi", "attach_kretprobe",
           "attach_ksyscall", "attach_uprobe", "attach_uprobe_multi", "attach_uretprobe",
           "attach_usdt", "usdt_notes", "load_btf_tracing", "attach_btf_tracing", "load_freplace",
           "IterLink", "attach_iter", "attach_perf_event_program",
           "AttachedProgram", "HookQuery", "ProgAttachment", "attach_cgroup", "detach_cgroup",
           "list_cgroup", "query_cgroup", "attach_netfilter", "attach_flow_dissector",
           "attach_sk_lookup", "query_netns", "attach_sockmap", "attach_socket_filter",
           "detach_socket_filter", "StructOpsRegistration", "attach_struct_ops",
           "TcFilterAttachment", "TcProgram", "attach_tc",
           "attach_tc_filter", "attach_tcx", "list_tc", "XdpAttachment", "XdpInfo", "attach_xdp",
           "list_xdp"]
