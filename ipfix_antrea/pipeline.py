# The collector's delivery pipeline: inputs -> bounded queue -> one sink thread -> sinks.
#
# Inputs hand over `Batch`es of decoded records. The queue between them and the sinks is bounded
# by *records*, not batches (a UDP datagram carries tens of records, a TCP read hundreds), so its
# memory is bounded whatever the inputs look like. Two ways in:
#
# - `put` (threads) and `put_async` (the event loop) wait for room: this is how a slow sink pushes
#   back on TCP, TLS and file inputs -- they stop reading, and TCP's window closes on the exporter.
#   They wait as soon as `wait_above` records are queued (default: the smaller of the capacity and
#   10,000), not only when the queue is full. Waiting costs these inputs nothing, and a decoded
#   record costs about 3 KB: a file read faster than the sink writes would otherwise fill the whole
#   queue (300 MB at the default capacity, for no gain in speed -- the extra memory is slower), and
#   a busy TCP exporter would leave no room for UDP's bursts.
# - `offer` never waits: UDP cannot push back, so a datagram whose records do not fit is refused,
#   and the caller counts the records it had to drop instead of growing memory.
#
# One thread owns the sinks (the `Sink` contract says sinks are driven from one thread). It takes
# the queued batches together while they come to at most `COALESCE_RECORDS` (UDP queues one
# datagram of one or two records per batch: one write per datagram would cost more than the
# documents), has the document stage (`ipfix_antrea.documents.DocumentBuilder`, given by the
# caller) turn the records into documents, writes them in slices of `batch_size`, and flushes at
# least every `flush_interval` seconds, and whenever the queue runs dry, so that a
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

from .documents import DocumentBuilder
from .inputs import Batch
from .sinks import Sink, SinkError

__all__ = ["Pipeline", "PipelineStats", "DEFAULT_QUEUE_RECORDS", "DEFAULT_FLUSH_INTERVAL"]

DEFAULT_QUEUE_RECORDS = 100_000
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_BATCH_SIZE = 500
DEFAULT_WAIT_ABOVE = 10_000
#: The sink thread takes more queued batches while the records taken stay within this many (and
#: within batch_size): enough to turn UDP's one-datagram batches into a write per hundred records,
#: small enough that the documents of one write stay in the CPU's cache until they are serialised
#: (500 documents of 3 KB do not, and cost measurably more per document).
COALESCE_RECORDS = 128


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

    ``documents`` turns each batch's records into the sink's documents (default: the plain
    Logstash envelope, no transforms).

    ``on_sink_error`` is called once, from the sink thread, with the `SinkError` that stopped the
    pipeline's writing; the collector uses it to shut down.

    ``threaded=False`` is for a single producer that may block (files and captures with no
    listener): `put` then writes to the sink in the caller's thread, and there is no queue and no
    sink thread. Decoding and writing in two threads that share the GIL cost about a quarter
    more CPU than doing both in one; only listeners, which must keep reading while the sink
    writes, need the thread. `offer` and `put_async` are not available then.
    """

    def __init__(self, sink: Sink, *, documents: DocumentBuilder | None = None,
                 capacity: int = DEFAULT_QUEUE_RECORDS,
                 batch_size: int = DEFAULT_BATCH_SIZE, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 on_sink_error: Callable[[SinkError], None] | None = None,
                 wait_above: int | None = None, threaded: bool = True) -> None:
        self.sink = sink
        self.documents = documents if documents is not None else DocumentBuilder()
        self.capacity = capacity
        #: `put` and `put_async` wait while a batch would take the queue past this many records.
        self.wait_above = min(capacity, DEFAULT_WAIT_ABOVE) if wait_above is None else min(capacity, wait_above)
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.sink_error: SinkError | None = None
        self._on_sink_error = on_sink_error
        self._wants_ids = sink.wants_ids
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
        self._last_flush = time.monotonic()  # inline mode: when the sink was last flushed
        self._thread: threading.Thread | None = None
        if threaded:
            self._thread = threading.Thread(target=self._run, name="ipfix-sink", daemon=True)
            self._thread.start()

    # ---------------------------------------------------------------- producers

    def _fits(self, n: int, limit: int) -> bool:
        # An empty queue takes a batch of any size, so one batch larger than the capacity
        # cannot wedge its producer forever.
        return self._queued == 0 or self._queued + n <= limit

    def _append(self, batch: Batch, n: int) -> None:
        self._queue.append(batch)
        self._queued += n
        self._accepted += n
        self._not_empty.notify()

    def offer(self, batch: Batch) -> bool:
        """Queues ``batch`` if its records fit now; False (and counted as refused) if not."""
        if self._thread is None:
            raise RuntimeError("offer needs the sink thread (threaded=True)")
        n = len(batch.records)
        with self._lock:
            if self._closing:
                raise RuntimeError("pipeline is closed")
            if not self._fits(n, self.capacity):
                self._refused += n
                return False
            self._append(batch, n)
            return True

    def put(self, batch: Batch) -> None:
        """Queues ``batch``, waiting (this thread) for room: backpressure for blocking readers.
        Without a sink thread, writes it to the sink here and now."""
        n = len(batch.records)
        if self._thread is None:
            self._put_inline(batch, n)
            return
        with self._lock:
            while not self._fits(n, self.wait_above) and not self._closing:
                self._not_full.wait()
            if self._closing:
                raise RuntimeError("pipeline is closed")
            self._append(batch, n)

    async def put_async(self, batch: Batch) -> None:
        """Queues ``batch`` from the event loop, awaiting room without blocking the loop."""
        if self._thread is None:
            raise RuntimeError("put_async needs the sink thread (threaded=True)")
        loop = asyncio.get_running_loop()
        n = len(batch.records)
        while True:
            with self._lock:
                if self._closing:
                    raise RuntimeError("pipeline is closed")
                if self._fits(n, self.wait_above):
                    self._append(batch, n)
                    return
                waiter = loop.create_future()
                self._waiters.append((loop, waiter))
            await waiter

    def _put_inline(self, batch: Batch, n: int) -> None:
        with self._lock:
            if self._closing:
                raise RuntimeError("pipeline is closed")
            self._accepted += n
        if n:
            self._deliver([batch])
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self._flush()
            self._last_flush = time.monotonic()

    # ---------------------------------------------------------------- the sink thread

    def _take(self, timeout: float) -> list[Batch] | None:
        """The next batch, and the ones behind it while all of them come to at most
        ``COALESCE_RECORDS`` (and ``batch_size``) records."""
        with self._lock:
            if not self._queue and not self._closing:
                self._not_empty.wait(timeout)
            queue = self._queue
            if not queue:
                return None
            first = queue.popleft()
            taken = [first]
            n = len(first.records)
            limit = min(self.batch_size, COALESCE_RECORDS)
            while queue and n + len(queue[0].records) <= limit:
                batch = queue.popleft()
                taken.append(batch)
                n += len(batch.records)
            self._queued -= n
            self._not_full.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)
        return taken

    def _run(self) -> None:
        last_flush = time.monotonic()
        dirty = False
        while True:
            batches = self._take(self.flush_interval)
            if batches is None:
                if dirty:
                    self._flush()
                    dirty = False
                    last_flush = time.monotonic()
                with self._lock:
                    if self._closing and not self._queue:
                        return
                continue
            dirty = self._deliver(batches) or dirty
            if dirty and time.monotonic() - last_flush >= self.flush_interval:
                self._flush()
                dirty = False
                last_flush = time.monotonic()

    def _deliver(self, batches: list[Batch]) -> bool:
        """Writes the records of ``batches``; False when nothing was written."""
        if self.sink_error is not None:
            self._count_undelivered(sum(len(b.records) for b in batches))
            return False
        docs: list[dict] = []
        ids: list[str] | None = [] if self._wants_ids else None
        for batch in batches:
            if batch.records:
                docs += self.documents.build(batch.records, batch.host)
                if ids is not None:
                    ids += self.documents.ids(batch.records, batch.host)
        if not docs:
            return False
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
        if self._thread is not None:
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
