# The collector's delivery pipeline: inputs -> bounded queue -> one sink thread -> sinks.
#
# Inputs hand over `Batch`es of decoded records. The queue between them and the sinks is bounded
# by *records*, not batches (a UDP datagram carries tens of records, a TCP read hundreds), so its
# memory is bounded whatever the inputs look like. Two ways in:
#
# - `put` (threads) and `put_async` (the event loop) wait for room: this is how a slow sink pushes
#   back on TCP, TLS and file inputs -- they stop reading, and TCP's window closes on the exporter.
# - `offer` never waits: UDP cannot push back, so a datagram whose records do not fit is refused,
#   and the caller counts the records it had to drop instead of growing memory.
#
# One thread owns the sinks (the `Sink` contract says sinks are driven from one thread). It turns
# records into documents (`ipfix_antrea.document`), writes them in slices of `batch_size`, and
# flushes at least every `flush_interval` seconds, and whenever the queue runs dry, so that a
# quiet exporter's records do not wait in a buffer. A record counts as *accepted* when it enters
# the queue and as *delivered* when the sink's `write` returned for it; `close` drains the queue,
# flushes and closes the sink. If a sink fails, the pipeline stops writing, keeps taking batches
# off the queue (so producers are never stuck behind a dead sink) and counts their records as
# *undelivered*: every accepted record ends up delivered or reported, never silently lost.
from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from .document import document_ids, to_document
from .inputs import Batch
from .sinks import Sink, SinkError

__all__ = ["Pipeline", "PipelineStats", "DEFAULT_QUEUE_RECORDS", "DEFAULT_FLUSH_INTERVAL"]

DEFAULT_QUEUE_RECORDS = 100_000
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_BATCH_SIZE = 500


@dataclass
class PipelineStats:
    """Record counts through the pipeline; accepted = delivered + undelivered + queued."""

    accepted: int = 0
    delivered: int = 0
    undelivered: int = 0  # accepted, then not written because a sink failed
    refused: int = 0  # offered (UDP) while the queue was full; never accepted
    queued: int = 0  # records in the queue now
    capacity: int = 0


class Pipeline:
    """A bounded queue of batches in front of a sink, drained by a thread of its own.

    ``on_sink_error`` is called once, from the sink thread, with the `SinkError` that stopped the
    pipeline's writing; the collector uses it to shut down.
    """

    def __init__(self, sink: Sink, *, capacity: int = DEFAULT_QUEUE_RECORDS,
                 batch_size: int = DEFAULT_BATCH_SIZE, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 on_sink_error: Callable[[SinkError], None] | None = None) -> None:
        self.sink = sink
        self.capacity = capacity
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.sink_error: SinkError | None = None
        self._on_sink_error = on_sink_error
        self._wants_ids = bool(getattr(sink, "wants_ids", False))
        self._queue: deque[Batch] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closing = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._accepted = 0
        self._delivered = 0
        self._undelivered = 0
        self._refused = 0
        self._thread = threading.Thread(target=self._run, name="ipfix-sink", daemon=True)
        self._thread.start()

    # ---------------------------------------------------------------- producers

    def _fits(self, n: int) -> bool:
        # An empty queue takes a batch of any size, so one batch larger than the capacity
        # cannot wedge its producer forever.
        return self._queued == 0 or self._queued + n <= self.capacity

    def _append(self, batch: Batch, n: int) -> None:
        self._queue.append(batch)
        self._queued += n
        self._accepted += n
        self._not_empty.notify()

    def offer(self, batch: Batch) -> bool:
        """Queues ``batch`` if its records fit now; False (and counted as refused) if not."""
        n = len(batch.records)
        with self._lock:
            if self._closing:
                raise RuntimeError("pipeline is closed")
            if not self._fits(n):
                self._refused += n
                return False
            self._append(batch, n)
            return True

    def put(self, batch: Batch) -> None:
        """Queues ``batch``, waiting (this thread) for room: backpressure for blocking readers."""
        n = len(batch.records)
        with self._lock:
            while not self._fits(n) and not self._closing:
                self._not_full.wait()
            if self._closing:
                raise RuntimeError("pipeline is closed")
            self._append(batch, n)

    async def put_async(self, batch: Batch) -> None:
        """Queues ``batch`` from the event loop, awaiting room without blocking the loop."""
        loop = asyncio.get_running_loop()
        n = len(batch.records)
        while True:
            with self._lock:
                if self._closing:
                    raise RuntimeError("pipeline is closed")
                if self._fits(n):
                    self._append(batch, n)
                    return
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
            await waiter

    # ---------------------------------------------------------------- the sink thread

    def _take(self, timeout: float) -> Batch | None:
        with self._lock:
            if not self._queue and not self._closing:
                self._not_empty.wait(timeout)
            if not self._queue:
                return None
            batch = self._queue.popleft()
            self._queued -= len(batch.records)
            self._not_full.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)
        return batch

    def _run(self) -> None:
        last_flush = time.monotonic()
        dirty = False
        while True:
            batch = self._take(self.flush_interval)
            if batch is None:
                if dirty:
                    self._flush()
                    dirty = False
                    last_flush = time.monotonic()
                with self._lock:
                    if self._closing and not self._queue:
                        return
                continue
            if batch.records:
                dirty = self._deliver(batch) or dirty
            if dirty and time.monotonic() - last_flush >= self.flush_interval:
                self._flush()
                dirty = False
                last_flush = time.monotonic()

    def _deliver(self, batch: Batch) -> bool:
        records = batch.records
        if self.sink_error is not None:
            self._count_undelivered(len(records))
            return False
        host = batch.host
        docs = [to_document(r, host) for r in records]
        ids = document_ids(records, host) if self._wants_ids else None
        size = self.batch_size
        for i in range(0, len(docs), size):
            try:
                self.sink.write(docs[i:i + size], None if ids is None else ids[i:i + size])
            except (SinkError, OSError) as exc:
                self._fail(exc)
                self._count_undelivered(len(docs) - i)
                return False
            with self._lock:
                self._delivered += min(size, len(docs) - i)
        return True

    def _flush(self) -> None:
        if self.sink_error is not None:
            return
        try:
            self.sink.flush()
        except (SinkError, OSError) as exc:
            self._fail(exc)

    def _count_undelivered(self, n: int) -> None:
        with self._lock:
            self._undelivered += n

    def _fail(self, exc: BaseException) -> None:
        self.sink_error = _as_sink_error(self.sink, exc)
        if self._on_sink_error is not None:
            self._on_sink_error(self.sink_error)

    # ---------------------------------------------------------------- shutting down

    def close(self, timeout: float | None = None) -> PipelineStats:
        """Refuses new batches, waits for the sink thread to drain the queue and flush, then
        closes the sink. A sink failure while closing is in ``sink_error`` afterwards."""
        with self._lock:
            self._closing = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)
        self._thread.join(timeout)
        try:
            self.sink.close()
        except (SinkError, OSError) as exc:
            if self.sink_error is None:
                self.sink_error = _as_sink_error(self.sink, exc)
        return self.stats()

    def stats(self) -> PipelineStats:
        with self._lock:
            return PipelineStats(self._accepted, self._delivered, self._undelivered, self._refused,
                                 self._queued, self.capacity)


def _wake(fut: asyncio.Future) -> None:
    if not fut.done():
        fut.set_result(None)


def _as_sink_error(sink: Sink, exc: BaseException) -> SinkError:
    """A sink's failure as a SinkError; the original (e.g. BrokenPipeError) is its cause."""
    if isinstance(exc, SinkError):
        return exc
    error = SinkError(f"{sink.name}: {getattr(exc, 'strerror', None) or exc}")
    error.__cause__ = exc
    return error
