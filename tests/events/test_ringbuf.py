"""Ring buffer reader against real BPF producers: order, exact accounting, discard, wraparound,
several rings, asyncio, decoding, errors, fd hygiene."""
from __future__ import annotations

import asyncio
import ctypes
import multiprocessing
import os
import time

import pytest

from pybpf.errors import UsageError
from pybpf.events import Poller, RingBuffer
from pybpf.maps import Map

from .producers import emit, emitter, seqs, stats_of

PAGE = os.sysconf("SC_PAGE_SIZE")


class Event36(ctypes.Structure):
    """A 36-byte record: sequence number, then 28 bytes of fill."""

    _pack_ = 4
    _fields_ = [("seq", ctypes.c_uint64), ("text", ctypes.c_char * 28)]


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def ring():
    with Map.create("ringbuf", 0, 0, PAGE, name="ev_ring") as m:
        yield m


def test_records_arrive_in_order_as_bytes(ring):
    with emitter("output", ring, 36, fill=b"xyz") as (prog, stats), RingBuffer(ring) as rb:
        assert rb.read() == []
        emit(prog, 50)
        recs = rb.read()
        assert seqs(recs) == list(range(50))
        assert all(len(r) == 36 and r[8:] == (b"xyz" * 12)[8:36] for r in recs)
        assert rb.read() == []  # consumed: the consumer position moved
        assert stats_of(stats).failed == 0


def test_overflow_accounting_is_exact(ring):
    """A full ring makes the program's output fail; produced == received + failed."""
    received = []
    with emitter("output", ring, 36) as (prog, stats), RingBuffer(ring) as rb:
        for burst in (10, 500, 3, 1000, 85, 2000):
            emit(prog, burst)
            received += rb.read()
        st = stats_of(stats)
        assert st.failed > 0, "the 4 KiB ring never overflowed"
        assert st.produced == 3598 == len(received) + st.failed
        got = seqs(received)
        assert got == sorted(got) and len(set(got)) == len(got)


def test_discarded_records_are_skipped(ring):
    with emitter("reserve", ring, 24, discard_every=3) as (prog, stats), RingBuffer(ring) as rb:
        got = []
        for _ in range(5):
            emit(prog, 60)
            got += seqs(rb.read())
        st = stats_of(stats)
        assert st.discarded == rb.discarded == 100
        assert st.produced == 300 == len(got) + st.discarded + st.failed
        assert got == [s for s in range(300) if s % 3]


def test_wraparound_many_times_with_records_across_the_end(ring):
    """48-byte strides do not divide the 4 KiB ring: records straddle its end (read through
    the second mapping of the data pages)."""
    fill = bytes(range(1, 29))
    with emitter("reserve", ring, 36, fill=fill) as (prog, stats), \
            RingBuffer(ring, decode=Event36) as rb:
        expect = 0
        for burst in (1, 7, 50, 84, 13, 85, 29, 64) * 6:
            emit(prog, burst)
            for ev in rb.read():
                assert ev.seq == expect and ev.text == (fill * 2)[8:36]
                expect += 1
        assert expect == stats_of(stats).produced > 20 * PAGE // 48  # 20 times round
        assert stats_of(stats).failed == 0


def test_decode_variants_agree(ring):
    fill = b"hello\0"
    with emitter("output", ring, 36, fill=fill) as (prog, _):
        def check(rb, seq_of):
            emit(prog, 5)
            got = rb.read()
            assert len(got) == 5
            return [seq_of(r) for r in got]
        with RingBuffer(ring) as rb:
            base = check(rb, lambda r: int.from_bytes(r[:8], "little"))
        with RingBuffer(ring, decode=Event36) as rb:
            assert check(rb, lambda r: r.seq) == [s + 5 for s in base]
        with RingBuffer(ring, decode=lambda mv: mv.tobytes()) as rb:
            assert check(rb, lambda r: int.from_bytes(r[:8], "little")) == [s + 10 for s in base]


def test_records_shorter_than_the_struct_are_zero_padded(ring):
    class Wide(ctypes.Structure):
        _fields_ = [("seq", ctypes.c_uint64), ("rest", ctypes.c_uint64 * 8)]

    with emitter("output", ring, 16, fill=b"\x01") as (prog, _), \
            RingBuffer(ring, decode=Wide) as rb:
        emit(prog, 3)
        got = rb.read()
        assert [e.seq for e in got] == [0, 1, 2]
        assert [list(e.rest) for e in got] == [[0x0101010101010101] + [0] * 7] * 3


def test_callback_poll_consume_and_a_raising_callback(ring):
    seen = []
    with emitter("output", ring, 8) as (prog, _), RingBuffer(ring, callback=seen.append) as rb:
        t0 = time.monotonic()
        assert rb.poll(100) == 0
        assert time.monotonic() - t0 >= 0.09
        emit(prog, 10)
        assert rb.poll(1000) == 10
        assert seqs(seen) == list(range(10))

        def fussy(rec):
            if int.from_bytes(rec[:8], "little") == 12:
                raise RuntimeError("no twelve")
            seen.append(rec)

        emit(prog, 5)
        with pytest.raises(RuntimeError, match="no twelve"):
            rb.consume(fussy)
        assert rb.consume() == 2  # 13 and 14 were kept for the next delivery
        assert seqs(seen) == [*range(12), 13, 14]


def test_consume_without_callback_is_a_clear_error(ring):
    with RingBuffer(ring) as rb, pytest.raises(UsageError, match="no callback"):
        rb.consume()


def test_several_rings_in_one_poller():
    got: dict[str, list] = {"a": [], "b": []}
    with Map.create("ringbuf", 0, 0, PAGE, name="ev_ring_a") as ma, \
            Map.create("ringbuf", 0, 0, 4 * PAGE, name="ev_ring_b") as mb, \
            emitter("output", ma, 8) as (pa, _), emitter("reserve", mb, 100) as (pb, _):
        with Poller(RingBuffer(ma, got["a"].append), RingBuffer(mb, got["b"].append)) as poller:
            assert poller.poll(50) == 0
            emit(pa, 3)
            assert poller.poll(1000) == 3
            emit(pb, 4)
            emit(pa, 2)
            assert poller.poll(1000) == 6
            assert seqs(got["a"]) == [0, 1, 2, 3, 4] and seqs(got["b"]) == [0, 1, 2, 3]
            assert [len(r) for r in got["b"]] == [100] * 4
            emit(pb, 2)
            assert len(poller.read()) == 2
        assert all(r.closed for r in poller.readers)


def test_async_iteration_on_the_running_loop(ring):
    async def main(prog):
        loop = asyncio.get_running_loop()
        got = []
        with RingBuffer(ring, decode=Event36) as rb:
            loop.call_later(0.05, emit, prog, 3)
            loop.call_later(0.15, emit, prog, 4)
            async for ev in rb:
                got.append(ev.seq)
                if len(got) == 7:
                    break
        return got

    with emitter("output", ring, 36) as (prog, _):
        assert asyncio.run(asyncio.wait_for(main(prog), 5)) == list(range(7))


def _produce(prog_fd: int, rounds: int) -> None:
    from pybpf.programs import Program
    from .producers import PACKET
    prog = Program.from_fd(prog_fd)
    for _ in range(rounds):
        prog.test_run(PACKET, repeat=200)


def test_concurrent_producer_process(ring):
    """A producer in another process while this one reads: records reserved but not yet
    committed (busy) stop the reader until committed; nothing is lost or duplicated."""
    with emitter("reserve", ring, 36) as (prog, stats), RingBuffer(ring, decode=Event36) as rb:
        ctx = multiprocessing.get_context("fork")
        child = ctx.Process(target=_produce, args=(prog.fd, 100))
        child.start()
        got = []
        while True:
            batch = rb.read(20)
            got += [e.seq for e in batch]
            if not batch and not child.is_alive():
                break
        child.join()
        assert child.exitcode == 0
        got += [e.seq for e in rb.read()]
        st = stats_of(stats)
        assert st.produced == 20000 == len(got) + st.failed
        assert got == sorted(got) and len(set(got)) == len(got)


def test_read_array(ring):
    np = pytest.importorskip("numpy")
    with emitter("reserve", ring, 36, fill=b"ab") as (prog, _), \
            RingBuffer(ring, decode=Event36) as rb:
        emit(prog, 70)  # the ring holds 85: then records cross the end of the ring
        rb.read()
        emit(prog, 80)
        arr = rb.read_array()
        assert arr.dtype.names == ("seq", "text") and arr.dtype.itemsize == 36
        assert arr["seq"].tolist() == list(range(70, 150))
        assert set(arr["text"].tolist()) == {(b"ab" * 18)[8:36]}
        assert len(rb.read_array(dtype=np.dtype([("seq", "<u8")]))) == 0


def test_wrong_map_type_and_closed_reader(ring):
    with Map.create("array", 4, 4, 1) as arr, pytest.raises(UsageError, match="RINGBUF"):
        RingBuffer(arr)
    rb = RingBuffer(ring)
    rb.close()
    rb.close()
    with pytest.raises(UsageError, match="closed"):
        rb.read()


def test_no_fd_leaks(ring):
    before = open_fds()
    for _ in range(50):
        with RingBuffer(ring.fd, decode=Event36) as rb:  # an fd: the reader dups and closes it
            rb.read()
        with pytest.raises(UsageError):
            RingBuffer(ring, decode=42)
    assert open_fds() == before


def test_a_record_that_fails_to_decode_is_consumed_with_the_error(ring):
    def picky(mv):
        seq = int.from_bytes(mv[:8], "little")
        if seq == 3:
            raise ValueError("bad record 3")
        return seq

    with emitter("output", ring, 8) as (prog, _), RingBuffer(ring, decode=picky) as rb:
        emit(prog, 6)
        with pytest.raises(ValueError, match="bad record 3"):
            rb.read()
        assert rb.read() == [0, 1, 2, 4, 5]  # decoded before the error: kept, in order


def test_a_keyboard_interrupt_while_decoding_consumes_nothing(ring):
    """Ctrl-C's KeyboardInterrupt can come while a record is decoded: unlike a decoding error,
    it leaves that record in the ring (read() and poll() both deliver it next time)."""
    interrupt = {3}

    def slow(mv):
        seq = int.from_bytes(mv[:8], "little")
        if seq in interrupt:
            interrupt.discard(seq)
            raise KeyboardInterrupt
        return seq

    with emitter("output", ring, 8) as (prog, _), RingBuffer(ring, decode=slow) as rb:
        emit(prog, 6)
        with pytest.raises(KeyboardInterrupt):
            rb.read()
        assert rb.read() == [0, 1, 2, 3, 4, 5]
        got: list[int] = []
        emit(prog, 4)
        interrupt.add(8)
        with pytest.raises(KeyboardInterrupt):
            rb.poll(0, got.append)
        rb.poll(0, got.append)
        assert got == [6, 7, 8, 9]


def test_poller_async_and_iteration_limits(ring):
    async def main(prog):
        loop = asyncio.get_running_loop()
        with Poller(RingBuffer(ring)) as poller:
            loop.call_later(0.05, emit, prog, 3)
            got = []
            async for rec in poller:
                got.append(rec)
                if len(got) == 3:
                    return seqs(got)

    with emitter("output", ring, 8) as (prog, _):
        assert asyncio.run(asyncio.wait_for(main(prog), 5)) == [0, 1, 2]
        with RingBuffer(ring) as rb:
            emit(prog, 10)
            assert seqs(rb.read(limit=4)) == [3, 4, 5, 6]
            assert seqs(list(rb.records(50))) == [7, 8, 9, 10, 11, 12]


def test_numpy_is_optional():
    """Without numpy, pybpf.events imports and read_array() says what to install."""
    import subprocess
    import sys
    code = ("import sys; sys.modules['numpy'] = None\n"
            "import pybpf.events\n"
            "from pybpf.events.arrays import dtype_of\n"
            "from pybpf.errors import UnsupportedFeatureError\n"
            "try:\n    dtype_of(None)\nexcept UnsupportedFeatureError as e:\n    print(e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "pip install 'pybpf[numpy]'" in out.stdout
