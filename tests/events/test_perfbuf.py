"""Perf buffer reader against bpf_perf_event_output: exact lost accounting, wrapped records,
wakeup settings, asyncio, arrays, cleanup."""
from __future__ import annotations

import asyncio
import os

import pytest

from pybpf.errors import UsageError
from pybpf.events import PerfBuffer, Poller, RingBuffer
from pybpf.maps import Map
from pybpf.sys.cpus import online_cpus

from .producers import emit, emitter, one_cpu, seqs, stats_of
from .test_ringbuf import Event36, open_fds

PAGE = os.sysconf("SC_PAGE_SIZE")


@pytest.fixture
def perf_map():
    with Map.create("perf_event_array", name="ev_perf") as m:
        yield m


def test_one_ring_per_online_cpu_and_records_in_order(perf_map):
    with emitter("perf", perf_map, 36, fill=b"q") as (prog, stats), PerfBuffer(perf_map) as pb:
        assert pb.cpus == online_cpus()
        emit(prog, 100)
        recs = pb.read()
        # each CPU's ring is in order; test_run may move between CPUs
        assert sorted(seqs(recs)) == list(range(100))
        assert all(r[8:36] == b"q" * 28 for r in recs)
        assert stats_of(stats).failed == 0 and pb.lost == 0


def test_lost_samples_reported_exactly(perf_map):
    """Overflow a one-page ring: samples the program failed to output == PERF_RECORD_LOST sum
    (the kernel reports them when the next sample fits), produced == received + lost."""
    reports = []
    with one_cpu(), emitter("perf", perf_map, 36) as (prog, stats), \
            PerfBuffer(perf_map, pages=1,
                       lost_callback=lambda cpu, n: reports.append((cpu, n))) as pb:
        received = []
        for burst in (500, 20, 1000):
            emit(prog, burst)
            received += pb.read()
        emit(prog, 1)  # room again: the kernel writes the LOST record before this sample
        received += pb.read()
        st = stats_of(stats)
        assert st.failed > 0 and pb.lost == st.failed == sum(n for _, n in reports)
        assert st.produced == 1521 == len(received) + pb.lost
        assert all(cpu in pb.cpus for cpu, _ in reports)


def test_records_wrapping_around_the_ring_end(perf_map):
    """48-byte records in a 4 KiB ring: some start near the end and continue at the start."""
    fill = bytes(range(100, 128))
    with one_cpu(), emitter("perf", perf_map, 36, fill=fill) as (prog, stats), \
            PerfBuffer(perf_map, decode=Event36, pages=1) as pb:
        got = []
        for burst in (3, 50, 17, 80, 41, 5) * 8:
            emit(prog, burst)
            batch = pb.read()
            assert all(ev.text == (fill * 2)[8:36] for ev in batch)
            got += [ev.seq for ev in batch]
        st = stats_of(stats)
        assert st.failed == 0 and got == list(range(st.produced))
        assert st.produced * 48 > 15 * PAGE  # 15 times round


def test_wakeup_events_and_watermark(perf_map):
    with emitter("perf", perf_map, 8) as (prog, _):
        with PerfBuffer(perf_map, wakeup_events=1) as pb:
            emit(prog, 1)
            assert pb.wait(1000)
            assert len(pb.read()) == 1
        for kw in ({"wakeup_events": 1000}, {"watermark": 64 * 1024}):
            with PerfBuffer(perf_map, **kw) as pb:
                emit(prog, 10)
                assert not pb.wait(50), f"{kw}: woken before the threshold"
                assert len(pb.read()) == 10  # read() takes what is there regardless


def test_callback_and_poller_with_a_ring_buffer(perf_map):
    got_perf, got_ring = [], []
    with Map.create("ringbuf", 0, 0, PAGE, name="ev_ring_p") as rm, \
            emitter("perf", perf_map, 16) as (pp, _), emitter("output", rm, 16) as (rp, _), \
            Poller(PerfBuffer(perf_map, got_perf.append),
                   RingBuffer(rm, got_ring.append)) as poller:
        emit(pp, 5)
        emit(rp, 6)
        assert poller.poll(1000) == 11
        assert sorted(seqs(got_perf)) == list(range(5)) and seqs(got_ring) == list(range(6))
        assert all(len(r) == 20 for r in got_perf)  # 16 bytes + padding to 8-byte records


def test_async_iteration(perf_map):
    async def main(prog):
        loop = asyncio.get_running_loop()
        got = []
        with PerfBuffer(perf_map, decode=Event36) as pb:
            loop.call_later(0.05, emit, prog, 5)
            async for ev in pb:
                got.append(ev.seq)
                if len(got) == 5:
                    break
        return sorted(got)

    with emitter("perf", perf_map, 36) as (prog, _):
        assert asyncio.run(asyncio.wait_for(main(prog), 5)) == list(range(5))


def test_read_array_with_lost_records_between(perf_map):
    np = pytest.importorskip("numpy")
    with one_cpu(), emitter("perf", perf_map, 36, fill=b"z") as (prog, stats), \
            PerfBuffer(perf_map, decode=Event36, pages=1) as pb:
        emit(prog, 200)  # overflows
        first = pb.read_array()
        emit(prog, 10)   # a LOST record, then samples
        second = pb.read_array()
        st = stats_of(stats)
        total = len(first) + len(second)
        assert st.produced == 210 == total + pb.lost and pb.lost == st.failed > 0
        assert isinstance(second, np.ndarray) and set(second["text"].tolist()) == {b"z" * 28}
        assert sorted(np.concatenate([first, second])["seq"].tolist())[:len(first)] \
            == sorted(first["seq"].tolist())


def test_errors_and_fd_hygiene(perf_map):
    with pytest.raises(UsageError, match="power of two"):
        PerfBuffer(perf_map, pages=3)
    with Map.create("perf_event_array", max_entries=1) as small:
        if len(online_cpus()) > 1:
            with pytest.raises(UsageError, match="slots"):
                PerfBuffer(small)
    with Map.create("ringbuf", 0, 0, PAGE) as rm, \
            pytest.raises(UsageError, match="PERF_EVENT_ARRAY"):
        PerfBuffer(rm)
    before = open_fds()
    for _ in range(20):
        with PerfBuffer(perf_map, pages=2) as pb:
            pb.read()
    assert open_fds() == before
