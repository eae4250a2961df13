"""C declarations of the kernel's BPF helpers for BCC-dialect programs.

A helper is called through a constant function pointer holding its id (``enum bpf_func_id``),
which clang turns into ``call <id>``. Ids come from :class:`pybpf.sys.uapi.Helper`; the
prototypes below give the common helpers their argument and return types; every other helper
is declared without a prototype (arguments passed as written, result ``long``).
"""
from __future__ import annotations

# helper name (without bpf_) -> (return type, parameter list)
PROTOTYPES: dict[str, tuple[str, str]] = {
    "map_lookup_elem": ("void *", "void *map, const void *key"),
    "map_update_elem": ("long", "void *map, const void *key, const void *value, __u64 flags"),
    "map_delete_elem": ("long", "void *map, const void *key"),
    "map_push_elem": ("long", "void *map, const void *value, __u64 flags"),
    "map_pop_elem": ("long", "void *map, void *value"),
    "map_peek_elem": ("long", "void *map, void *value"),
    "probe_read": ("long", "void *dst, __u32 size, const void *src"),
    "probe_read_str": ("long", "void *dst, __u32 size, const void *src"),
    "probe_read_kernel": ("long", "void *dst, __u32 size, const void *src"),
    "probe_read_kernel_str": ("long", "void *dst, __u32 size, const void *src"),
    "probe_read_user": ("long", "void *dst, __u32 size, const void *src"),
    "probe_read_user_str": ("long", "void *dst, __u32 size, const void *src"),
    "probe_write_user": ("long", "void *dst, const void *src, __u32 len"),
    "ktime_get_ns": ("__u64", "void"),
    "ktime_get_boot_ns": ("__u64", "void"),
    "ktime_get_coarse_ns": ("__u64", "void"),
    "ktime_get_tai_ns": ("__u64", "void"),
    "jiffies64": ("__u64", "void"),
    "trace_printk": ("long", "const char *fmt, __u32 fmt_size, ..."),
    "get_prandom_u32": ("__u32", "void"),
    "get_smp_processor_id": ("__u32", "void"),
    "get_numa_node_id": ("long", "void"),
    "get_current_pid_tgid": ("__u64", "void"),
    "get_current_uid_gid": ("__u64", "void"),
    "get_current_comm": ("long", "void *buf, __u32 size_of_buf"),
    "get_current_task": ("__u64", "void"),
    "get_current_task_btf": ("struct task_struct *", "void"),
    "get_current_cgroup_id": ("__u64", "void"),
    "get_current_ancestor_cgroup_id": ("__u64", "int ancestor_level"),
    "get_cgroup_classid": ("__u32", "struct __sk_buff *skb"),
    "get_stackid": ("long", "void *ctx, void *map, __u64 flags"),
    "get_stack": ("long", "void *ctx, void *buf, __u32 size, __u64 flags"),
    "get_task_stack": ("long", "struct task_struct *task, void *buf, __u32 size, __u64 flags"),
    "perf_event_output": ("long", "void *ctx, void *map, __u64 flags, void *data, __u64 size"),
    "perf_event_read": ("__u64", "void *map, __u64 flags"),
    "perf_event_read_value": ("long", "void *map, __u64 flags, "
                                      "struct bpf_perf_event_value *buf, __u32 buf_size"),
    "perf_prog_read_value": ("long", "struct bpf_perf_event_data *ctx, "
                                     "struct bpf_perf_event_value *buf, __u32 buf_size"),
    "ringbuf_output": ("long", "void *ringbuf, void *data, __u64 size, __u64 flags"),
    "ringbuf_reserve": ("void *", "void *ringbuf, __u64 size, __u64 flags"),
    "ringbuf_submit": ("void", "void *data, __u64 flags"),
    "ringbuf_discard": ("void", "void *data, __u64 flags"),
    "ringbuf_query": ("__u64", "void *ringbuf, __u64 flags"),
    "tail_call": ("long", "void *ctx, void *prog_array_map, __u32 index"),
    "redirect": ("long", "__u32 ifindex, __u64 flags"),
    "redirect_map": ("long", "void *map, __u64 key, __u64 flags"),
    "clone_redirect": ("long", "struct __sk_buff *skb, __u32 ifindex, __u64 flags"),
    "skb_load_bytes": ("long", "const void *skb, __u32 offset, void *to, __u32 len"),
    "skb_store_bytes": ("long", "struct __sk_buff *skb, __u32 offset, const void *from, "
                                "__u32 len, __u64 flags"),
    "l3_csum_replace": ("long", "struct __sk_buff *skb, __u32 offset, __u64 from, __u64 to, "
                                "__u64 size"),
    "l4_csum_replace": ("long", "struct __sk_buff *skb, __u32 offset, __u64 from, __u64 to, "
                                "__u64 flags"),
    "csum_diff": ("__s64", "__be32 *from, __u32 from_size, __be32 *to, __u32 to_size, "
                           "__wsum seed"),
    "skb_vlan_push": ("long", "struct __sk_buff *skb, __be16 vlan_proto, __u16 vlan_tci"),
    "skb_vlan_pop": ("long", "struct __sk_buff *skb"),
    "skb_change_proto": ("long", "struct __sk_buff *skb, __be16 proto, __u64 flags"),
    "skb_change_type": ("long", "struct __sk_buff *skb, __u32 type"),
    "skb_adjust_room": ("long", "struct __sk_buff *skb, __s32 len_diff, __u32 mode, "
                                "__u64 flags"),
    "xdp_adjust_head": ("long", "struct xdp_md *xdp_md, int delta"),
    "xdp_adjust_tail": ("long", "struct xdp_md *xdp_md, int delta"),
    "xdp_adjust_meta": ("long", "struct xdp_md *xdp_md, int delta"),
    "fib_lookup": ("long", "void *ctx, struct bpf_fib_lookup *params, int plen, __u32 flags"),
    "send_signal": ("long", "__u32 sig"),
    "send_signal_thread": ("long", "__u32 sig"),
    "override_return": ("long", "struct pt_regs *regs, __u64 rc"),
    "get_func_ip": ("__u64", "void *ctx"),
    "get_attach_cookie": ("__u64", "void *ctx"),
    "get_ns_current_pid_tgid": ("long", "__u64 dev, __u64 ino, "
                                        "struct bpf_pidns_info *nsdata, __u32 size"),
    "sk_storage_get": ("void *", "void *map, void *sk, void *value, __u64 flags"),
    "sk_storage_delete": ("long", "void *map, void *sk"),
    "task_storage_get": ("void *", "void *map, struct task_struct *task, void *value, "
                                   "__u64 flags"),
    "task_storage_delete": ("long", "void *map, struct task_struct *task"),
    "inode_storage_get": ("void *", "void *map, void *inode, void *value, __u64 flags"),
    "inode_storage_delete": ("int", "void *map, void *inode"),
    "sock_map_update": ("long", "struct bpf_sock_ops *skops, void *map, void *key, __u64 flags"),
    "sock_hash_update": ("long", "struct bpf_sock_ops *skops, void *map, void *key, "
                                 "__u64 flags"),
    "msg_redirect_map": ("long", "struct sk_msg_md *msg, void *map, __u32 key, __u64 flags"),
    "msg_redirect_hash": ("long", "struct sk_msg_md *msg, void *map, void *key, __u64 flags"),
    "sk_redirect_map": ("long", "struct __sk_buff *skb, void *map, __u32 key, __u64 flags"),
    "sk_redirect_hash": ("long", "struct __sk_buff *skb, void *map, void *key, __u64 flags"),
    "d_path": ("long", "struct path *path, char *buf, __u32 sz"),
    "snprintf": ("long", "char *str, __u32 str_size, const char *fmt, __u64 *data, "
                         "__u32 data_len"),
    "loop": ("long", "__u32 nr_loops, void *callback_fn, void *callback_ctx, __u64 flags"),
    "spin_lock": ("long", "struct bpf_spin_lock *lock"),
    "spin_unlock": ("long", "struct bpf_spin_lock *lock"),
    "get_socket_cookie": ("__u64", "void *ctx"),
    "get_netns_cookie": ("__u64", "void *ctx"),
    "skb_cgroup_id": ("__u64", "struct __sk_buff *skb"),
    "sk_cgroup_id": ("__u64", "void *sk"),
    "current_task_under_cgroup": ("long", "void *map, __u32 index"),
    "skb_under_cgroup": ("long", "struct __sk_buff *skb, void *map, __u32 index"),
    "get_hash_recalc": ("__u32", "struct __sk_buff *skb"),
    "set_hash": ("long", "struct __sk_buff *skb, __u32 hash"),
    "skb_get_tunnel_key": ("long", "struct __sk_buff *skb, struct bpf_tunnel_key *key, "
                                   "__u32 size, __u64 flags"),
    "skb_set_tunnel_key": ("long", "struct __sk_buff *skb, struct bpf_tunnel_key *key, "
                                   "__u32 size, __u64 flags"),
    "setsockopt": ("long", "void *bpf_socket, int level, int optname, void *optval, "
                           "int optlen"),
    "getsockopt": ("long", "void *bpf_socket, int level, int optname, void *optval, "
                           "int optlen"),
    "sk_lookup_tcp": ("struct bpf_sock *", "void *ctx, struct bpf_sock_tuple *tuple, "
                                           "__u32 tuple_size, __u64 netns, __u64 flags"),
    "sk_lookup_udp": ("struct bpf_sock *", "void *ctx, struct bpf_sock_tuple *tuple, "
                                           "__u32 tuple_size, __u64 netns, __u64 flags"),
    "sk_release": ("long", "void *sock"),
    "read_branch_records": ("long", "struct bpf_perf_event_data *ctx, void *buf, __u32 size, "
                                    "__u64 flags"),
}


def declarations(helpers: "dict[str, int]") -> str:
    """C declarations of ``helpers`` (name without ``bpf_`` -> id)."""
    lines = ["/* generated by pybpf.bcc.helpers from pybpf.sys.uapi.Helper */"]
    for name, hid in helpers.items():
        if hid == 0:
            continue
        ret, params = PROTOTYPES.get(name, ("long", ""))
        lines.append(f"static {ret} (* const bpf_{name})({params}) = (void *) {hid};")
    return "\n".join(lines) + "\n"
