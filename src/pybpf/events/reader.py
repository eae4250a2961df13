"""What ring and perf buffer readers share: epoll waiting, delivery, iteration, asyncio.

A reader drains its rings into a *sink*: runs of equal records (same header, so same length,
back to back at a fixed stride) go to ``sink.run`` in one call, so decoding a run is one
C-level ``map()`` (objects) or one ``numpy.frombuffer`` (arrays); other records go to
``sink.one``. Records are copied out of the shared pages before the consumer position is
stored (once per batch), so everything a reader returns stays valid.
"""
from __future__ import annotations

import mmap
import os
import select
import signal
import threading
import time
from array import array
from itertools import repeat
from typing import Any, AsyncIterator, Callable, Iterator, Optional

from ..errors import UsageError
from ..maps import Map
from ..sys.uapi import MapType
from .decode import DecodeSpec, Decoder, decoder_for, record_type

Callback = Callable[[Any], Any]
ITER_BATCH = 4096
"""Records decoded at a time by iteration (short-lived lists keep the cyclic GC cheap)."""


def open_map(m: Any, map_type: MapType, what: str) -> tuple[Map, bool]:
    """``m`` as a Map of ``map_type`` (a Map, or an fd that is duplicated); and whether it is
    ours to close."""
    owned = not isinstance(m, Map)
    mp = Map.from_fd(m if isinstance(m, int) else m.fileno()) if owned else m
    if mp.type != map_type:
        desc = mp.describe()
        if owned:
            mp.close()
        raise UsageError(f"{what} reads a BPF_MAP_TYPE_{map_type.name} map; {desc} is "
                         f"{getattr(mp.type, 'name', mp.type)}")
    return mp, owned


def unmap(views: list[memoryview], mms: list[mmap.mmap]) -> None:
    """Release the views of a reader's shared pages, then unmap them."""
    for v in reversed(views):
        v.release()
    for mm in mms:
        try:
            mm.close()
        except BufferError:
            pass  # a decode callable kept a view: unmapped when that view goes


class Sink:
    """Where a drain puts records: at most ``room`` more; ``taken`` says how many records of
    the last ``run`` left the ring (also when it raised)."""

    def __init__(self, limit: Optional[int] = None) -> None:
        self.room = limit if limit is not None else 1 << 62
        self.taken = 0

    def run(self, buf: memoryview, start: int, stride: int, n: int, hdr: int,
            length: int) -> None:
        """``n`` records of ``length`` bytes at ``start + k * stride + hdr``."""
        raise NotImplementedError

    def one(self, buf: memoryview, off: int, length: int) -> None:
        raise NotImplementedError


def _decoded(decoder: Decoder, buf: memoryview, start: int, stride: int, n: int, hdr: int,
             length: int) -> Iterator[Any]:
    first = start + hdr
    offsets = range(first, first + n * stride, stride)
    at, size = decoder.at, decoder.size
    if at is not None and size is not None and length >= size:
        return map(at, repeat(buf, n), offsets)  # one C-level loop
    one = decoder.one
    return (one(buf, off, length) for off in offsets)


class ObjectSink(Sink):
    """Decodes records into a list of objects."""

    def __init__(self, decoder: Decoder, limit: Optional[int] = None) -> None:
        super().__init__(limit)
        self.decoder = decoder
        self.out: list[Any] = []

    def run(self, buf: memoryview, start: int, stride: int, n: int, hdr: int,
            length: int) -> None:
        before = len(self.out)
        failed = 0
        try:
            self.out.extend(_decoded(self.decoder, buf, start, stride, n, hdr, length))
        except Exception:
            failed = 1  # a record that fails to decode is consumed with the error
            raise
        finally:  # (a signal handler's KeyboardInterrupt consumes nothing more)
            self.taken = len(self.out) - before + failed
            self.room -= self.taken

    def one(self, buf: memoryview, off: int, length: int) -> None:
        self.room -= 1
        self.out.append(self.decoder.one(buf, off, length))


class CallbackSink(Sink):
    """Decodes each record and hands it to ``callback`` right away (no list of a whole run).

    When the callback raises, the rest of the run is decoded into ``pending`` (the ring's
    memory is released with the batch) for the next delivery.
    """

    def __init__(self, decoder: Decoder, callback: Callback, pending: list[Any]) -> None:
        super().__init__()
        self.decoder = decoder
        self.callback = callback
        self.pending = pending
        self.count = 0

    def run(self, buf: memoryview, start: int, stride: int, n: int, hdr: int,
            length: int) -> None:
        records = _decoded(self.decoder, buf, start, stride, n, hdr, length)
        cb = self.callback
        done = 0
        # a signal handler's exception (KeyboardInterrupt) can come between any two lines:
        # only decoding's own error consumes the record being decoded
        decoding = True
        try:
            for rec in records:
                decoding = False
                done += 1
                cb(rec)
                decoding = True
        except BaseException as e:
            if not decoding:
                self.pending.extend(records)
                self.count += done
                done = n
            elif isinstance(e, Exception):
                done += 1  # the record that failed to decode is consumed with the error
            raise
        finally:
            self.taken = done
        self.count += n

    def one(self, buf: memoryview, off: int, length: int) -> None:
        rec = self.decoder.one(buf, off, length)
        self.count += 1
        self.callback(rec)


class ArraySink(Sink):
    """Copies fixed-size records into numpy structured arrays, a run at a time: the run's
    bytes as an (n, stride) byte matrix, the record columns copied out in C."""

    def __init__(self, dtype: Any, limit: Optional[int] = None) -> None:
        super().__init__(limit)
        from .arrays import numpy
        self.np = numpy()
        self.dtype = dtype
        self.parts: list[Any] = []

    def run(self, buf: memoryview, start: int, stride: int, n: int, hdr: int,
            length: int) -> None:
        self.taken = n
        self.room -= n
        size = self.dtype.itemsize
        if length < size or stride < hdr + size:
            for k in range(n):
                self._one(buf, start + k * stride + hdr, length)
            return
        np = self.np
        matrix = np.frombuffer(buf, dtype=np.uint8, count=n * stride, offset=start)
        packed = np.ascontiguousarray(matrix.reshape(n, stride)[:, hdr:hdr + size])
        self.parts.append(packed.view(self.dtype).reshape(n))

    def one(self, buf: memoryview, off: int, length: int) -> None:
        self.room -= 1
        self._one(buf, off, length)

    def _one(self, buf: memoryview, off: int, length: int) -> None:
        size = self.dtype.itemsize
        rec = bytes(buf[off:off + min(length, size)]).ljust(size, b"\0")
        self.parts.append(self.np.frombuffer(rec, dtype=self.dtype).copy())

    def result(self) -> Any:
        if not self.parts:
            return self.np.empty(0, dtype=self.dtype)
        return self.parts[0] if len(self.parts) == 1 else self.np.concatenate(self.parts)


class HeaderRuns:
    """Finds runs of equal record headers in a ring: strided memoryview compares (in C) of
    up to ``CHUNK`` headers at a time, a binary search in the chunk that differs."""

    CHUNK = 4096

    def __init__(self, words: memoryview) -> None:
        self.words = words  # the ring's data as 4- or 8-byte words
        self._expect: dict[int, memoryview] = {}

    def count(self, first: int, step: int, n: int, header: int) -> int:
        """How many of the ``n`` words at ``first, first + step, ...`` equal ``header``,
        counted from the start (``words[first] == header`` is known)."""
        expect = self._expect.get(header)
        if expect is None:
            if len(self._expect) > 64:
                self._expect.clear()
            expect = self._expect[header] = memoryview(
                array(self.words.format, [header]) * self.CHUNK)
        words = self.words
        done = 0
        while done < n:
            k = min(self.CHUNK, n - done)
            start = first + done * step
            if words[start:start + k * step:step] == expect[:k]:
                done += k
                continue
            lo, hi = 0, k - 1  # the first lo words match, the k do not
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if words[start:start + mid * step:step] == expect[:mid]:
                    lo = mid
                else:
                    hi = mid - 1
            return done + lo
        return n


_wakeup: list[int] = []
"""The signal wakeup pipe (read end, write end), once made; empty when another is in use."""


def signal_wakeup() -> int:
    """The read end of the pipe Python's signal handler writes a byte to on each signal
    (``signal.set_wakeup_fd``), set up once, in the main thread, if nothing else set one; -1 in
    other threads or when another wakeup fd is in use.

    A blocking ``epoll_wait`` that also waits on it sees a signal that came after the
    interpreter last checked for one and before the syscall began (no EINTR then): the pipe is
    readable, the wait returns and the handler (Ctrl-C's KeyboardInterrupt) runs. Without it
    such a signal waits for the next event.
    """
    if threading.current_thread() is not threading.main_thread():
        return -1
    if not _wakeup:
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        old = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        if old != -1:  # someone else's (asyncio's): theirs stays
            signal.set_wakeup_fd(old)
            os.close(r)
            os.close(w)
            r = w = -1
        _wakeup.extend((r, w))
    return _wakeup[0]


def _drain_wakeup(fd: int) -> None:
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


class Waitable:
    """Waiting (epoll), iteration and ``async for`` on top of ``read(timeout_ms)``."""

    _epoll: select.epoll

    def _new_epoll(self) -> None:
        """The epoll fd waited on; the signal wakeup pipe is set up now, in the thread that
        makes the reader, so no first wait is left without it."""
        self._epoll = select.epoll()
        signal_wakeup()

    def read(self, timeout_ms: int = 0, limit: Optional[int] = None) -> list[Any]:
        raise NotImplementedError

    def fileno(self) -> int:
        """The epoll fd: readable when records may be waiting (for select/loop.add_reader)."""
        return self._epoll.fileno()

    @property
    def closed(self) -> bool:
        return self._epoll.closed

    def wait(self, timeout_ms: int = -1) -> bool:
        """Block until a ring signals data or ``timeout_ms`` passes (-1: forever); True if ready.

        A signal ends the wait early only through its handler's exception (Ctrl-C); any other
        signal is waited past."""
        if self._epoll.closed:
            raise UsageError(f"{self!r} is closed")
        wake = signal_wakeup()
        if wake < 0:
            return bool(self._epoll.poll(timeout_ms / 1000 if timeout_ms >= 0 else -1, 1))
        deadline = time.monotonic() + timeout_ms / 1000 if timeout_ms >= 0 else None
        # registered for this wait only (a Poller waits on readers' epoll fds: one holding the
        # pipe would be ready for it); a handler's exception can come between any two calls
        try:
            try:
                self._epoll.register(wake, select.EPOLLIN)
            except FileExistsError:
                pass
            while True:
                left = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
                ready = self._epoll.poll(left, 2)
                if not ready:
                    return False
                if any(fd != wake for fd, _ in ready):
                    return True
                _drain_wakeup(wake)  # the handler runs at the loop's next turn
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        finally:
            try:
                self._epoll.unregister(wake)
            except FileNotFoundError:
                pass

    def __iter__(self) -> Iterator[Any]:
        """Records forever, waiting as needed (break out of the loop to stop)."""
        while True:
            yield from self.read(-1, ITER_BATCH)

    def records(self, timeout_ms: int) -> Iterator[Any]:
        """Records until none arrives for ``timeout_ms``."""
        while True:
            batch = self.read(timeout_ms, ITER_BATCH)
            if not batch:
                return
            yield from batch

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[Any]:
        """Records as they come, waiting on the running loop (``loop.add_reader``, no thread)."""
        import asyncio  # imported when first used: it is heavy for pybpf's import
        loop = asyncio.get_running_loop()
        fd = self.fileno()
        while True:
            batch = self.read(0, ITER_BATCH)
            if batch:
                for record in batch:
                    yield record
                continue
            ready = loop.create_future()
            loop.add_reader(fd, _resolve, ready)
            try:
                await ready
            finally:
                loop.remove_reader(fd)

    def __enter__(self) -> "Waitable":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._epoll.close()


def _resolve(fut: Any) -> None:
    if not fut.done():
        fut.set_result(None)


class Reader(Waitable):
    """Base of RingBuffer and PerfBuffer: rings drained into a callback, a list or an array."""

    def __init__(self, callback: Optional[Callback], decode: DecodeSpec) -> None:
        self.callback = callback
        self.decode = decode
        # a type's C name is looked up in the map's BTF once the map is open (_typed)
        self.decoder = decoder_for(None if isinstance(decode, str) else decode)
        self._new_epoll()
        self._pending: list[Any] = []  # records left when a callback raised

    def _typed(self, m: Map) -> None:
        """``decode="struct event"``: the type looked up in the BTF of ``m``'s object."""
        if isinstance(self.decode, str):
            self.decode = record_type(self.decode, m.btf, m.describe())
            self.decoder = decoder_for(self.decode)

    def _drain(self, sink: Any) -> int:
        raise NotImplementedError

    def read(self, timeout_ms: int = 0, limit: Optional[int] = None) -> list[Any]:
        """The records waiting now (at most ``limit``), decoded; if none, wait up to
        ``timeout_ms`` (-1: forever) for some."""
        out, self._pending = self._pending, []
        if limit is not None and len(out) >= limit:
            self._pending = out[limit:]
            return out[:limit]
        sink = ObjectSink(self.decoder, None if limit is None else limit - len(out))
        try:
            self._drain(sink)
            if not out and not sink.out and timeout_ms != 0 and self.wait(timeout_ms):
                self._drain(sink)
        except BaseException:
            self._pending = out + sink.out
            raise
        out += sink.out
        return out

    def read_array(self, timeout_ms: int = 0, dtype: Any = None) -> Any:
        """The records waiting now as one numpy structured array (no per-record Python work).

        ``dtype`` defaults to the one of ``decode`` (a BTF struct or ctypes Structure); a
        record shorter than the dtype is zero-padded, a longer one truncated.
        """
        from .arrays import dtype_of
        spec = self.decode if dtype is None else dtype
        if spec is None:
            raise UsageError(f"{self!r}: read_array() needs a record type: dtype=..., or "
                             "decode=a BTF struct or ctypes Structure")
        sink = ArraySink(dtype_of(spec))
        self._drain(sink)
        if not sink.parts and timeout_ms != 0 and self.wait(timeout_ms):
            self._drain(sink)
        return sink.result()

    def consume(self, callback: Optional[Callback] = None) -> int:
        """Hand every waiting record to the callback, without waiting; returns how many.

        Each record is decoded and delivered in turn. If the callback raises, the exception
        propagates and the records not yet delivered come first next time.
        """
        cb = callback or self.callback
        if cb is None:
            raise UsageError(f"{self!r}: no callback: pass callback= (here or to the "
                             "constructor), or use read() / iteration")
        done = 0
        while self._pending:
            rec = self._pending.pop(0)
            done += 1
            cb(rec)
        sink = CallbackSink(self.decoder, cb, self._pending)
        self._drain(sink)
        return done + sink.count

    def poll(self, timeout_ms: int = -1, callback: Optional[Callback] = None) -> int:
        """Wait up to ``timeout_ms`` (-1: forever) for records, hand them to the callback;
        returns how many (0 on timeout)."""
        done = self.consume(callback)
        if done or timeout_ms == 0 or not self.wait(timeout_ms):
            return done
        return self.consume(callback)


class Poller(Waitable):
    """Several readers (ring and perf buffers) waited on together with one epoll fd.

    ``poll()`` hands each reader's records to that reader's callback; ``read()``, iteration
    and ``async for`` give the records of all readers, in the order the readers were given.
    Closing the poller closes the readers.
    """

    def __init__(self, *readers: Reader) -> None:
        self.readers = list(readers)
        self._new_epoll()
        try:
            for r in self.readers:
                self._epoll.register(r.fileno(), select.EPOLLIN)
        except BaseException:
            self._epoll.close()
            raise

    def add(self, reader: Reader) -> None:
        self._epoll.register(reader.fileno(), select.EPOLLIN)
        self.readers.append(reader)

    def read(self, timeout_ms: int = 0, limit: Optional[int] = None) -> list[Any]:
        out: list[Any] = []
        for attempt in (0, 1):
            for r in self.readers:
                out += r.read(0, None if limit is None else limit - len(out))
                if limit is not None and len(out) >= limit:
                    return out
            if out or attempt or timeout_ms == 0 or not self.wait(timeout_ms):
                return out
        return out

    def consume(self) -> int:
        """Every waiting record to its reader's callback; returns how many."""
        return sum(r.consume() for r in self.readers)

    def poll(self, timeout_ms: int = -1) -> int:
        """Wait up to ``timeout_ms`` for any reader, then ``consume()``; returns how many."""
        done = self.consume()
        if done or timeout_ms == 0 or not self.wait(timeout_ms):
            return done
        return self.consume()

    def close(self) -> None:
        for r in self.readers:
            r.close()
        super().close()

    def __repr__(self) -> str:
        return f"<Poller of {len(self.readers)} readers{' closed' if self.closed else ''}>"
