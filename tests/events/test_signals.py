"""Signals during a reader's blocking wait: Ctrl-C always ends it, other signals do not.

CPython runs a signal's Python handler only when its eval loop next checks; a signal that
comes after the last check and before ``epoll_wait`` starts would otherwise be acted on only
at the next event. Readers also wait on the signal wakeup pipe (``signal.set_wakeup_fd``).
"""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from pybpf.events import RingBuffer
from pybpf.events.reader import signal_wakeup
from pybpf.maps import Map

from .producers import emit, emitter

PAGE = os.sysconf("SC_PAGE_SIZE")

WAITER = textwrap.dedent("""
    import os, random, sys, time
    from pybpf.events import PerfBuffer, RingBuffer
    from pybpf.maps import Map

    out = int(sys.argv[2])

    def handle(record):
        os.write(out, b"A")
        # Python work after an event (a tool's print and bookkeeping), of varying length, so
        # the SIGINT sent on seeing "A" lands anywhere up to and into epoll_wait
        end = time.perf_counter() + random.random() * 1e-4
        while time.perf_counter() < end:
            pass

    kind = PerfBuffer if sys.argv[3] == "perf" else RingBuffer
    rb = kind(Map.from_fd(int(sys.argv[1])), callback=handle)
    os.write(out, b"R")
    while True:
        try:
            while True:
                rb.poll(-1)
        except KeyboardInterrupt:
            os.write(out, b"I")
""")


def _read_until(fd: int, want: bytes, timeout: float) -> bool:
    """Bytes from ``fd`` until ``want`` comes (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return False
        if want in os.read(fd, 1):
            return True


@pytest.mark.parametrize("kind", ["ringbuf", "perf"])
def test_sigint_right_after_an_event_always_ends_the_wait(kind):
    """3000 rounds of: an event, then SIGINT as soon as the waiter reports it. Without the
    wakeup pipe 8 to 13 of them (3.11, 2 CPUs) waited for the next event."""
    rounds, missed = 3000, 0
    target = (Map.create("ringbuf", 0, 0, PAGE, name="sig_ring") if kind == "ringbuf" else
              Map.create("perf_event_array", name="sig_perf"))
    with target as ring, emitter("output" if kind == "ringbuf" else "perf", ring, 8) as (prog, _):
        r, w = os.pipe()
        child = subprocess.Popen([sys.executable, "-c", WAITER, str(ring.fd), str(w), kind],
                                 pass_fds=(ring.fd, w))
        os.close(w)
        try:
            assert _read_until(r, b"R", 30), "the waiter did not start"
            for _ in range(rounds):
                emit(prog, 1)
                assert _read_until(r, b"A", 10), "the waiter did not see the event"
                child.send_signal(signal.SIGINT)
                if not _read_until(r, b"I", 2.0):
                    missed += 1
                    emit(prog, 1)  # the next event lets the pending KeyboardInterrupt run
                    assert _read_until(r, b"I", 10)
        finally:
            child.kill()
            child.wait()
            os.close(r)
    assert missed == 0, f"{missed} of {rounds} SIGINTs waited for the next event"


def test_the_wakeup_pipe_is_set_once_and_drained_by_a_wait():
    """A reader made in the main thread sets Python's wakeup fd to a pipe of its own; a byte in
    it (a signal whose handler returned) is drained and the wait goes on to its timeout."""
    with Map.create("ringbuf", 0, 0, PAGE, name="sig_ring") as ring, RingBuffer(ring) as rb:
        fd = signal_wakeup()
        assert fd >= 0, "no wakeup pipe: pytest's process has no other wakeup fd"
        write_end = signal.set_wakeup_fd(-1)
        signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
        assert write_end >= 0 and write_end != fd
        os.write(write_end, b"\x0a")
        t0 = time.monotonic()
        assert rb.wait(300) is False
        assert time.monotonic() - t0 >= 0.29
        assert not select.select([fd], [], [], 0)[0], "the wait left the byte in the pipe"


def test_a_handler_that_returns_does_not_end_the_wait_and_sigint_does():
    """SIGUSR1 (a handler that returns) during wait(): the handler runs at once, the wait goes
    on to its timeout; SIGINT during wait(-1) raises KeyboardInterrupt."""
    seen: list[float] = []
    old = signal.signal(signal.SIGUSR1, lambda *_: seen.append(time.monotonic()))
    main = threading.main_thread().ident
    try:
        with Map.create("ringbuf", 0, 0, PAGE, name="sig_ring") as ring, RingBuffer(ring) as rb:
            timer = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGUSR1))
            t0 = time.monotonic()
            timer.start()
            assert rb.wait(400) is False
            ended = time.monotonic()
            timer.join()
            assert seen and t0 < seen[0] < ended and ended - t0 >= 0.39  # ran while waiting
            timer = threading.Timer(0.1, signal.pthread_kill, (main, signal.SIGINT))
            timer.start()
            try:
                rb.wait(-1)
            except KeyboardInterrupt:
                pass
            else:
                raise AssertionError("wait(-1) returned without an event")
            finally:
                timer.join()
    finally:
        signal.signal(signal.SIGUSR1, old)


def test_another_wakeup_fd_is_left_alone():
    """A process that set its own wakeup fd first (as asyncio does) keeps it."""
    code = textwrap.dedent("""
        import os, signal
        from pybpf.events import RingBuffer
        from pybpf.events.reader import signal_wakeup
        from pybpf.maps import Map
        r, w = os.pipe2(os.O_NONBLOCK)
        signal.set_wakeup_fd(w)
        with Map.create("ringbuf", 0, 0, os.sysconf("SC_PAGE_SIZE"), name="sig_ring") as m:
            with RingBuffer(m) as rb:
                assert rb.wait(10) is False
                assert signal_wakeup() == -1
        assert signal.set_wakeup_fd(-1) == w
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
