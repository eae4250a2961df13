"""Table method calls (``counts.increment(key)``, ``output.perf_submit(ctx, &d, sizeof(d))``)
rewritten to helper calls on the table's map.

A submitted event's type is kept in BTF: the call site declares an unused static variable of
that type in section :data:`EVENT_SECTION`, named ``__pybpf_event__<table>`` (clang prefixes
it with the function's name), which the Python side reads back to decode events.
"""
from __future__ import annotations

from typing import Callable, Mapping

from ..scan import closing, line_of, span, split_args, tokenize
from .errors import DialectError
from .tables import Table

EVENT_SECTION = ".pybpf.events"
EVENT_PREFIX = "__pybpf_event__"
_SIZES_ONLY_VALUE = {"PERF_EVENT_ARRAY", "PROG_ARRAY", "CGROUP_ARRAY", "STACK_TRACE",
                     "DEVMAP", "DEVMAP_HASH", "CPUMAP", "XSKMAP", "SOCKMAP", "SOCKHASH",
                     "ARRAY_OF_MAPS", "HASH_OF_MAPS"}   # lookups give void * (inner: a map)


def _event(table: str, ptr: str) -> str:
    return (f"static __typeof__(*({ptr})) {EVENT_PREFIX}{table} "
            f"__attribute__((section(\"{EVENT_SECTION}\"), used));")


def _value_ptr(t: Table) -> str:
    return "void *" if t.map_type in _SIZES_ONLY_VALUE else f"__typeof__({t.name}.value)"


def _increment(t: Table, a: list[str], atomic: bool) -> str:
    n = a[1] if len(a) > 1 else "1"
    add = f"__sync_fetch_and_add(____v, {n})" if atomic else f"*____v += {n}"
    return (f"({{ __typeof__(*{t.name}.key) ____k = {a[0]}; __typeof__({t.name}.value) ____v = "
            f"bpf_map_lookup_elem((void *)&{t.name}, &____k); if (____v) {add}; else {{ "
            f"__typeof__(*{t.name}.value) ____z = {n}; bpf_map_update_elem((void *)&{t.name}, "
            f"&____k, &____z, BPF_NOEXIST); }} }})")


def _lookup_or_init(t: Table, a: list[str], give_up: str = "") -> str:
    m = f"(void *)&{t.name}"
    return (f"({{ const void *____k = {a[0]}; {_value_ptr(t)} ____l = "
            f"bpf_map_lookup_elem({m}, ____k); if (!____l) {{ bpf_map_update_elem({m}, ____k, "
            f"{a[1]}, BPF_NOEXIST); ____l = bpf_map_lookup_elem({m}, ____k); {give_up}}} "
            "____l; })")


def _submit(t: Table, data: str, call: str) -> str:
    return f"({{ {_event(t.name, data)} {call}; }})"


# method -> (argument counts accepted, C text builder(table, args))
METHODS: dict[str, tuple[tuple[int, ...], Callable[[Table, list[str]], str]]] = {
    "lookup": ((1,), lambda t, a: f"(({_value_ptr(t)})bpf_map_lookup_elem((void *)&{t.name}, "
                                  f"{a[0]}))"),
    "lookup_or_try_init": ((2,), _lookup_or_init),
    # the deprecated form leaves the program (returning 0) when the entry cannot be made
    "lookup_or_init": ((2,), lambda t, a: _lookup_or_init(t, a, "if (!____l) return 0; ")),
    "update": ((2,), lambda t, a: f"bpf_map_update_elem((void *)&{t.name}, {a[0]}, {a[1]}, "
                                  "BPF_ANY)"),
    "insert": ((2,), lambda t, a: f"bpf_map_update_elem((void *)&{t.name}, {a[0]}, {a[1]}, "
                                  "BPF_NOEXIST)"),
    "delete": ((1,), lambda t, a: f"bpf_map_delete_elem((void *)&{t.name}, {a[0]})"),
    "increment": ((1, 2), lambda t, a: _increment(t, a, False)),
    "atomic_increment": ((1, 2), lambda t, a: _increment(t, a, True)),
    "perf_submit": ((3,), lambda t, a: _submit(
        t, a[1], f"bpf_perf_event_output({a[0]}, (void *)&{t.name}, BPF_F_CURRENT_CPU, {a[1]}, "
                 f"{a[2]})")),
    "perf_submit_skb": ((4,), lambda t, a: _submit(
        t, a[2], f"bpf_perf_event_output({a[0]}, (void *)&{t.name}, "
                 f"(((__u64)({a[1]})) << 32) | BPF_F_CURRENT_CPU, {a[2]}, {a[3]})")),
    "perf_read": ((1,), lambda t, a: f"bpf_perf_event_read((void *)&{t.name}, {a[0]})"),
    "perf_counter_value": ((3,), lambda t, a: f"bpf_perf_event_read_value((void *)&{t.name}, "
                                              f"{a[0]}, {a[1]}, {a[2]})"),
    "ringbuf_output": ((3,), lambda t, a: _submit(
        t, a[0], f"bpf_ringbuf_output((void *)&{t.name}, {a[0]}, {a[1]}, {a[2]})")),
    "ringbuf_reserve": ((1,), lambda t, a: f"bpf_ringbuf_reserve((void *)&{t.name}, {a[0]}, 0)"),
    "ringbuf_submit": ((2,), lambda t, a: _submit(t, a[0], f"bpf_ringbuf_submit({a[0]}, "
                                                           f"{a[1]})")),
    "ringbuf_discard": ((2,), lambda t, a: f"bpf_ringbuf_discard({a[0]}, {a[1]})"),
    "ringbuf_query": ((1,), lambda t, a: f"bpf_ringbuf_query((void *)&{t.name}, {a[0]})"),
    "call": ((2,), lambda t, a: f"bpf_tail_call({a[0]}, (void *)&{t.name}, {a[1]})"),
    "get_stackid": ((2,), lambda t, a: f"bpf_get_stackid({a[0]}, (void *)&{t.name}, {a[1]})"),
    "push": ((2,), lambda t, a: f"bpf_map_push_elem((void *)&{t.name}, {a[0]}, {a[1]})"),
    "pop": ((1,), lambda t, a: f"bpf_map_pop_elem((void *)&{t.name}, {a[0]})"),
    "peek": ((1,), lambda t, a: f"bpf_map_peek_elem((void *)&{t.name}, {a[0]})"),
    "redirect_map": ((2,), lambda t, a: f"bpf_redirect_map((void *)&{t.name}, {a[0]}, {a[1]})"),
    "check_current_task": ((1,), lambda t, a: f"bpf_current_task_under_cgroup("
                                              f"(void *)&{t.name}, {a[0]})"),
    "sk_storage_get": ((3,), lambda t, a: f"(({_value_ptr(t)})bpf_sk_storage_get("
                                          f"(void *)&{t.name}, {a[0]}, {a[1]}, {a[2]}))"),
    "sk_storage_delete": ((1,), lambda t, a: f"bpf_sk_storage_delete((void *)&{t.name}, "
                                             f"{a[0]})"),
    "task_storage_get": ((3,), lambda t, a: f"(({_value_ptr(t)})bpf_task_storage_get("
                                            f"(void *)&{t.name}, {a[0]}, {a[1]}, {a[2]}))"),
    "task_storage_delete": ((1,), lambda t, a: f"bpf_task_storage_delete((void *)&{t.name}, "
                                               f"{a[0]})"),
    "inode_storage_get": ((3,), lambda t, a: f"(({_value_ptr(t)})bpf_inode_storage_get("
                                             f"(void *)&{t.name}, {a[0]}, {a[1]}, {a[2]}))"),
    "inode_storage_delete": ((1,), lambda t, a: f"bpf_inode_storage_delete("
                                                f"(void *)&{t.name}, {a[0]})"),
    "get_local_storage": ((1,), lambda t, a: f"(({_value_ptr(t)})bpf_get_local_storage("
                                             f"(void *)&{t.name}, {a[0]}))"),
    "sock_map_update": ((3,), lambda t, a: f"bpf_sock_map_update({a[0]}, (void *)&{t.name}, "
                                           f"{a[1]}, {a[2]})"),
    "sock_hash_update": ((3,), lambda t, a: f"bpf_sock_hash_update({a[0]}, (void *)&{t.name}, "
                                            f"{a[1]}, {a[2]})"),
    "msg_redirect_map": ((3,), lambda t, a: f"bpf_msg_redirect_map({a[0]}, (void *)&{t.name}, "
                                            f"{a[1]}, {a[2]})"),
    "msg_redirect_hash": ((3,), lambda t, a: f"bpf_msg_redirect_hash({a[0]}, "
                                             f"(void *)&{t.name}, {a[1]}, {a[2]})"),
    "sk_redirect_map": ((3,), lambda t, a: f"bpf_sk_redirect_map({a[0]}, (void *)&{t.name}, "
                                           f"{a[1]}, {a[2]})"),
    "sk_redirect_hash": ((3,), lambda t, a: f"bpf_sk_redirect_hash({a[0]}, (void *)&{t.name}, "
                                            f"{a[1]}, {a[2]})"),
}
# methods whose call submits an event: method -> index of the data argument
SUBMITS = {"perf_submit": 1, "perf_submit_skb": 2, "ringbuf_output": 0, "ringbuf_submit": 0}


def rewrite(text: str, tables: Mapping[str, Table], events: dict[str, str],
            base_line: int = 0) -> str:
    """``text`` with every ``table.method(args)`` call rewritten (nested calls too); the tables
    whose events are submitted are added to ``events`` (table -> event variable name).
    Newlines are kept where they were, so line numbers do not move."""
    tokens = tokenize(text)
    out: list[str] = []
    pos, i = 0, 0
    while i + 3 < len(tokens):
        t, dot, meth, paren = tokens[i], tokens[i + 1], tokens[i + 2], tokens[i + 3]
        if not (t.kind == "id" and t.text in tables and dot.text == "." and meth.kind == "id"
                and paren.text == "(" and (i == 0 or tokens[i - 1].text not in (".", "->"))):
            i += 1
            continue
        line = base_line + line_of(text, t.start)
        table = tables[t.text]
        if meth.text not in METHODS:
            raise DialectError(f"table {t.text!r} has no method {meth.text!r} (pybpf's BCC "
                               f"front end knows: {', '.join(sorted(METHODS))})", line)
        try:
            close = closing(tokens, i + 3)
        except ValueError as e:
            raise DialectError(f"{t.text}.{meth.text}(...): {e}", line) from None
        args = [rewrite(span(text, tokens, r), tables, events, line - 1)
                for r in split_args(tokens, i + 3, close)]
        counts, build = METHODS[meth.text]
        if len(args) not in counts:
            want = " or ".join(map(str, counts))
            raise DialectError(f"{t.text}.{meth.text}() takes {want} argument"
                               f"{'s' if want != '1' else ''}, not {len(args)}", line)
        if meth.text in SUBMITS:
            events[t.text] = EVENT_PREFIX + t.text
        # the arguments' own newlines are kept by the builders; none are added
        out.append(text[pos:t.start])
        out.append(build(table, args))
        pos = tokens[close].end
        i = close + 1
    out.append(text[pos:])
    return "".join(out)
