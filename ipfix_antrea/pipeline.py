"""The collector's delivery pipeline: inputs -> bounded queue -> one sink thread -> sinks.

Inputs hand over `Batch`es of decoded records. The queue between them and the sinks is bounded
by *records*, not batches (a UDP datagram carries tens of records, a TCP read hundreds), so its
memory is bounded whatever the inputs look like. Two ways in:

- `put` (threads) and `put_async` (the event loop) wait for room: this is how a slow sink pushes
  back on TCP, TLS and file inputs -- they stop reading, and TCP's window closes on the exporter.
  They wait as soon as `wait_above` records are queued (default: the smaller of the capacity and
  10,000), not only when the queue is full. Waiting costs these inputs nothing, and a decoded
  record costs about 3 KB: a file read faster than the sink writes would otherwise fill the whole
  queue (300 MB at the default capacity, for no gain in speed -- the extra memory is slower), and
  a busy TCP exporter would leave no room for UDP's bursts.
- `offer` never waits: UDP cannot push back, so a datagram whose records do not fit is refused,
  and the caller counts the records it had to drop instead of growing memory.

One thread owns the sinks (the `Sink` contract says sinks are driven from one thread). It takes
the queued batches together while they come to at most `COALESCE_RECORDS` (a UDP exporter's
batch may hold a few records: one write for each would cost more than the documents), waiting up
to `LINGER` (10 ms) for that many when fewer are queued, and is woken only when there is
something to do or enough to stop waiting, not at every batch. It has the document stage
(`ipfix_antrea.documents.DocumentBuilder`, given by the caller) turn the records into documents
once, writes them to every sink in slices of `batch_size`, and flushes at least every
`flush_interval` seconds, and whenever the queue runs dry, so that a quiet exporter's records do
not wait in a buffer. A slow sink holds the others back: they share the queue, and its
backpressure.

Accounting is per sink. A record counts as *accepted* when it enters the queue, and for each
sink as *delivered* when the sink's `write` returned for it (less what the sink reports it could
not deliver after all, `Sink.undelivered`), or as *undelivered* for that sink. A sink that fails
is dropped from the writing while the others go on; every record handled after that counts as
undelivered for it; `close` drains the queue into the sinks still working, flushes and closes
every sink. `on_sink_failed` tells the caller of each failure, which decides whether the run can
go on (the collector stops when no sink is left, or when standard output was closed). Every
accepted record thus ends up delivered or reported for every sink, never silently lost.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .documents import DocumentBuilder
from .inputs import Batch
from .sinks import HistogramSnapshot, Sink, SinkError

__all__ = ["Pipeline", "PipelineStats", "SinkReport", "DEFAULT_QUEUE_RECORDS", "DEFAULT_FLUSH_INTERVAL"]

DEFAULT_QUEUE_RECORDS = 100_000
DEFAULT_FLUSH_INTERVAL = 1.0
DEFAULT_BATCH_SIZE = 500
DEFAULT_WAIT_ABOVE = 10_000
#: The sink thread takes more queued batches while the records taken stay within this many (and
#: within batch_size): enough to turn UDP's one-datagram batches into a write per hundred records,
#: small enough that the documents of one write stay in the CPU's cache until they are serialised
#: (500 documents of 3 KB do not, and cost measurably more per document).
COALESCE_RECORDS = 128
#: With fewer than COALESCE_RECORDS records queued, the sink thread waits this long for more
#: before it writes: a UDP exporter at a few thousand datagrams a second would otherwise be
#: written a datagram at a time, and each write costs as much as the documents of several.
LINGER = 0.01


@dataclass(frozen=True)
class SinkReport:
    """Where one sink stands: its records (accepted = delivered + undelivered + not handled yet),
    its failure, its readiness and its own counters (`Sink.stats`, `Sink.histograms`)."""

    name: str
    delivered: int = 0
    undelivered: int = 0  # accepted, and not delivered to this sink (it failed)
    error: str | None = None  # why it failed; None while it works
    output_closed: bool = False  # it failed because its reader went away (stdout | head)
    ready: bool = True
    counters: dict[str, int] = field(default_factory=dict)
    histograms: dict[str, HistogramSnapshot] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        """Failed for a reason of its own (a closed standard output is not one)."""
        return self.error is not None and not self.output_closed


@dataclass
class PipelineStats:
    """Record counts through the pipeline, and each sink's report."""

    accepted: int = 0
    refused: int = 0  # offered (UDP) while the queue was full; never accepted
    queued: int = 0  # records in the queue now
    capacity: int = 0
    sinks: tuple[SinkReport, ...] = ()


class _Output:
    """A sink and the pipeline's accounting of it (guarded by the pipeline's lock)."""

    __slots__ = ("sink", "given", "error")

    def __init__(self, sink: Sink) -> None:
        self.sink = sink
        self.given = 0  # records whose write returned
        self.error: SinkError | None = None


class Pipeline:
    """A bounded queue of batches in front of a list of sinks, drained by a thread of its own.

    ``documents`` turns each batch's records into the sinks' documents (default: the plain
    Logstash envelope, no transforms).

    ``on_sink_failed`` is called once per failing sink, from the thread that met the failure
    (the sink thread, or `close`'s caller), with the sink and its `SinkError`; `working` then
    says which sinks are left. The collector uses it to log the failure and to stop when none is.

    ``linger``: with fewer than `COALESCE_RECORDS` records queued, the sink thread waits this
    long for more before it writes (0: it writes what there is at once).

    ``threaded=False`` is for a single producer that may block (files and captures with no
    listener): `put` then writes to the sinks in the caller's thread, and there is no queue and no
    sink thread. Decoding and writing in two threads that share the GIL cost about a quarter
    more CPU than doing both in one; only listeners, which must keep reading while the sinks
    write, need the thread. `offer` and `put_async` are not available then.
    """

    def __init__(self, sinks: Sequence[Sink], *, documents: DocumentBuilder | None = None,
                 capacity: int = DEFAULT_QUEUE_RECORDS,
                 batch_size: int = DEFAULT_BATCH_SIZE, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 on_sink_failed: Callable[[Sink, SinkError], None] | None = None,
                 wait_above: int | None = None, threaded: bool = True, linger: float = LINGER) -> None:
        if not sinks:
            raise ValueError("a pipeline needs at least one sink")
        self.sinks = list(sinks)
        self._outputs = [_Output(s) for s in self.sinks]
        self.documents = documents if documents is not None else DocumentBuilder()
        self.capacity = capacity
        #: `put` and `put_async` wait while a batch would take the queue past this many records.
        self.wait_above = min(capacity, wait_above if wait_above is not None else DEFAULT_WAIT_ABOVE)
        self.batch_size = batch_size
        self._coalesce = min(batch_size, COALESCE_RECORDS)
        self.linger = linger
        self.flush_interval = flush_interval
        self._on_sink_failed = on_sink_failed
        self._queue: deque[Batch] = deque()
        self._queued = 0
        self._lock = threading.Lock()
        self._not_empty = threading.Condition(self._lock)
        self._not_full = threading.Condition(self._lock)
        self._closing = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._accepted = 0
        self._handled = 0  # records taken off the queue and written to every working sink
        self._refused = 0
        self._last_flush = time.monotonic()  # inline mode: when the sinks were last flushed
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
        # Wake the sink thread when it has something to do (the queue was empty) and when it
        # has enough to stop lingering; not for every UDP datagram in between.
        if self._queued == n or self._queued - n < self._coalesce <= self._queued:
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
        ``COALESCE_RECORDS`` (and ``batch_size``) records; when fewer are queued, waits up to
        ``linger`` seconds for more."""
        with self._lock:
            if not self._queue and not self._closing:
                self._not_empty.wait(timeout)
            if self._queue and self._queued < self._coalesce and not self._closing and self.linger:
                self._not_empty.wait(self.linger)  # woken early when there are enough
            queue = self._queue
            if not queue:
                return None
            first = queue.popleft()
            taken = [first]
            n = len(first.records)
            limit = self._coalesce
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
        while True:
            batches = self._take(self.flush_interval)
            if batches is None:
                # Idle for a flush interval: push out what the sinks hold, and give them the
                # chance to report what went wrong meanwhile (a sink failing in the background,
                # a rotation due while nothing comes).
                self._flush()
                last_flush = time.monotonic()
                with self._lock:
                    if self._closing and not self._queue:
                        return
                continue
            self._deliver(batches)
            if time.monotonic() - last_flush >= self.flush_interval:
                self._flush()
                last_flush = time.monotonic()

    def _deliver(self, batches: list[Batch]) -> None:
        """Writes the records of ``batches`` to every working sink."""
        n = sum(len(b.records) for b in batches)
        outputs = self.working_outputs()
        if not outputs or not n:
            self._handled_more(n)
            return
        docs: list[dict[str, Any]] = []
        wants_ids = any(o.sink.wants_ids for o in outputs)
        ids: list[str] | None = [] if wants_ids else None
        for batch in batches:
            if batch.records:
                docs += self.documents.build(batch.records, batch.host)
                if ids is not None:
                    ids += self.documents.ids(batch.records, batch.host)
        size = self.batch_size
        for output in outputs:
            sink = output.sink
            own_ids = ids if sink.wants_ids else None
            for i in range(0, len(docs), size):
                try:
                    sink.write(docs[i:i + size], None if own_ids is None else own_ids[i:i + size])
                except Exception as exc:  # noqa: BLE001 - one sink's failure, whatever it is, is its own
                    self._fail(output, exc)
                    break
                with self._lock:
                    output.given += min(size, len(docs) - i)
        self._handled_more(n)

    def _handled_more(self, n: int) -> None:
        with self._lock:
            self._handled += n

    def _flush(self) -> None:
        for output in self.working_outputs():
            try:
                output.sink.flush()
            except Exception as exc:  # noqa: BLE001 - as in _deliver
                self._fail(output, exc)

    def _fail(self, output: _Output, exc: BaseException) -> None:
        error = _as_sink_error(output.sink, exc)
        with self._lock:
            if output.error is not None:
                return
            output.error = error
        if self._on_sink_failed is not None:
            self._on_sink_failed(output.sink, error)

    def working_outputs(self) -> list[_Output]:
        with self._lock:
            return [o for o in self._outputs if o.error is None]

    def alive(self) -> bool:
        """False when the sink thread has died while the pipeline was open (a bug): nothing
        would empty the queue any more."""
        return self._thread is None or self._thread.is_alive() or self._closing

    def working(self) -> list[Sink]:
        """The sinks that have not failed."""
        return [o.sink for o in self.working_outputs()]

    # ---------------------------------------------------------------- shutting down

    def close(self, timeout: float | None = None) -> PipelineStats:
        """Refuses new batches, waits for the sink thread to drain the queue into the working
        sinks and flush them, then closes every sink (failed ones too: they may release what
        they hold and account for it). A failure while closing is reported like any other."""
        with self._lock:
            self._closing = True
            self._not_empty.notify_all()
            self._not_full.notify_all()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_wake, fut)
        if self._thread is not None:
            self._thread.join(timeout)
        for output in self._outputs:
            try:
                output.sink.close()
            except Exception as exc:  # noqa: BLE001 - as in _deliver
                self._fail(output, exc)
        return self.stats()

    def stats(self) -> PipelineStats:
        with self._lock:
            head = (self._accepted, self._refused, self._queued, self.capacity)
            handled = self._handled
            outputs = [(o.sink, o.given, o.error) for o in self._outputs]
        return PipelineStats(*head, sinks=tuple(_report(sink, given, error, handled)
                                                for sink, given, error in outputs))


def _report(sink: Sink, given: int, error: SinkError | None, handled: int) -> SinkReport:
    lost = sink.undelivered()  # taken by write, then not delivered after all
    # A failed sink missed every record handled since; a working one misses none (`given` may
    # run ahead of `handled` while a write is under way).
    missed = max(handled - given, 0) if error is not None else 0
    return SinkReport(sink.name, given - lost, missed + lost, None if error is None else str(error),
                      isinstance(getattr(error, "__cause__", None), BrokenPipeError),
                      sink.ready() and error is None, sink.stats(), sink.histograms())


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


def _as_sink_error(sink: Sink, exc: BaseException) -> SinkError:
    """A sink's failure as a SinkError; the original (e.g. BrokenPipeError) is its cause."""
    if isinstance(exc, SinkError):
        return exc
    if isinstance(exc, OSError):
        error = SinkError(f"{sink.name}: {exc.strerror or exc}")
    else:  # a bug in the sink: say what it raised
        error = SinkError(f"{sink.name}: unexpected error: {exc!r}")
    error.__cause__ = exc
    return error
