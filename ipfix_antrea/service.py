# The collector as a running service: inputs -> decoder -> bounded queue -> sinks.
#
# Everything network runs on one asyncio event loop: the listeners (`udp://`, `tcp://`, `tls://`)
# decode as bytes arrive and hand batches to an `Intake` (this module's `_Intake`), which checks
# the allow-list, logs problems through the `Monitor` and queues batches in the `Pipeline`, whose
# own thread writes them to the sinks. Finite inputs (files, captures) run one after another in a
# worker thread and block on the queue when it is full, which is their backpressure.
#
# The run ends when the finite inputs are done and there is no listener, or on SIGTERM/SIGINT:
# stop accepting (listeners stop, connections hand over what they had received), drain the
# queue, flush and close every sink. A second signal while draining gives up at once. A sink that
# fails also ends the run: what it could not write is counted as undelivered in the summary.
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections.abc import Sequence

from .inputs import Batch, Input, InputError, Listener
from .inputs.allow import AllowList
from .monitor import Monitor, RunSummary, StatusLine
from .pipeline import DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL, DEFAULT_QUEUE_RECORDS, Pipeline
from .documents import DocumentBuilder
from .session import SessionStats
from .sinks import Sink

__all__ = ["Collector", "DEFAULT_STATUS_INTERVAL"]

DEFAULT_STATUS_INTERVAL = 60.0
log = logging.getLogger("ipfix_antrea.collector")


class _Intake:
    """The `Intake` listeners see: allow-list, problem reports, the pipeline's two ways in."""

    def __init__(self, collector: Collector) -> None:
        self._allow = collector.allow
        self._monitor = collector.monitor
        self._pipeline = collector.pipeline
        self.allows = self._allow.allows
        self.report = self._monitor.report
        self.session_started = self._monitor.session_started
        self.session_ended = self._monitor.session_ended

    def offer(self, batch: Batch) -> bool:
        self._monitor.observe(batch)
        return self._pipeline.offer(batch)

    async def put(self, batch: Batch) -> None:
        self._monitor.observe(batch)
        await self._pipeline.put_async(batch)


class Collector:
    """Runs inputs into a sink until the inputs end or a signal stops it; see `run`.

    ``documents`` is the document stage between decoded records and the sink (default: the
    plain Logstash envelope, no transforms).
    """

    def __init__(self, inputs: Sequence[Input | Listener], sink: Sink, *,
                 documents: DocumentBuilder | None = None, allow: AllowList | None = None,
                 queue_records: int = DEFAULT_QUEUE_RECORDS, batch_size: int = DEFAULT_BATCH_SIZE,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 status_interval: float = DEFAULT_STATUS_INTERVAL) -> None:
        self.listeners = [i for i in inputs if isinstance(i, Listener)]
        self.finite = [i for i in inputs if not isinstance(i, Listener)]
        self.sink = sink
        self.allow = allow if allow is not None else AllowList()
        self.monitor = Monitor()
        self.status_interval = status_interval
        self._pipeline_args = dict(documents=documents, capacity=queue_records, batch_size=batch_size,
                                   flush_interval=flush_interval)
        self.pipeline: Pipeline | None = None
        self._stop: asyncio.Event | None = None
        self._stop_reading = threading.Event()  # tells the finite-input thread to stop
        self._signalled = False
        #: Set once every listener is bound (or failed to bind) and the run is under way.
        self.ready = threading.Event()

    # ---------------------------------------------------------------- running

    def run(self) -> RunSummary:
        """Runs to the end (see the module comment) and returns what happened."""
        return asyncio.run(self.serve())

    async def serve(self) -> RunSummary:
        """`run` on an event loop that is already running (embedding, tests); signal handlers
        are installed only when this is the main thread."""
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        # Listeners need the sink thread (they must keep reading while the sink writes); files and
        # captures alone are faster writing from the thread that decodes them.
        self.pipeline = Pipeline(self.sink, on_sink_error=lambda _e: loop.call_soon_threadsafe(self._stop.set),
                                 threaded=bool(self.listeners), **self._pipeline_args)
        intake = _Intake(self)
        self._install_signals(loop)
        started: list[Listener] = []
        try:
            for listener in self.listeners:
                await listener.start(intake)
                started.append(listener)
                log.info("listening on %s", listener.address)
        except InputError as exc:
            log.error("%s", exc)
            self.monitor.input_errors.append(str(exc))
            self._stop.set()
        self.ready.set()
        reader = asyncio.create_task(asyncio.to_thread(self._read_finite))
        status = asyncio.create_task(self._status_forever()) if self.status_interval > 0 else None
        waits = {asyncio.create_task(self._stop.wait())}
        if not self.listeners:
            waits.add(reader)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        # Shutting down: stop accepting, let connections hand over, drain, flush, close.
        self._stop_reading.set()
        for listener in started:
            await listener.stop()
        await reader
        await asyncio.to_thread(self.pipeline.close)
        if status is not None:
            status.cancel()
        self._remove_signals(loop)
        return self.summary()

    def _read_finite(self) -> None:
        """The finite inputs, one after the other, in this worker thread."""
        for inp in self.finite:
            if self._stop_reading.is_set():
                break
            try:
                for batch in inp:
                    if batch.host is not None and not self.allow.allows(batch.host):
                        # A capture's flows have exporters too; the allow-list applies to them.
                        self.monitor.report(batch.source, "refused", "exporter not in the --allow "
                                            "list; its records are skipped")
                        continue
                    self.monitor.observe(batch)
                    if batch.records or batch.events:
                        self.pipeline.put(batch)
                    if self._stop_reading.is_set():
                        break
            except InputError as exc:
                self.monitor.input_error(str(exc))
            finally:
                inp.close()

    # ---------------------------------------------------------------- signals

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # signal handlers can only be set from the main thread (embedding, tests)
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self._on_signal, sig)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.remove_signal_handler(sig)

    def _on_signal(self, sig: int) -> None:
        if self._signalled:
            log.error("%s again: giving up on draining; queued records are lost", signal.Signals(sig).name)
            logging.shutdown()
            os._exit(130)  # the sink thread may be stuck in a write; nothing else would stop it
        self._signalled = True
        log.info("%s: stopping: no new data; draining the queue and flushing the sinks",
                 signal.Signals(sig).name)
        self.stop()

    def stop(self) -> None:
        """Asks a running `serve` to shut down gracefully (thread-safe from the loop's thread)."""
        self._stop_reading.set()
        if self._stop is not None:
            self._stop.set()

    # ---------------------------------------------------------------- reporting

    def _live_stats(self) -> list[SessionStats]:
        """The counters of finite inputs' sessions and listeners' open sessions (listeners'
        ended sessions are in the monitor's totals)."""
        return [s for inp in [*self.finite, *self.listeners] for s in inp.stats()]

    async def _status_forever(self) -> None:
        status = StatusLine()
        while True:
            await asyncio.sleep(self.status_interval)
            log.info("%s", self.status_line(status))

    def status_line(self, status: StatusLine) -> str:
        counters, _ = self.monitor.totals(self._live_stats())
        return status.line(self.pipeline.stats(), counters, self.monitor.exporters,
                           self.monitor.problems, self.sink.stats())

    def summary(self) -> RunSummary:
        """The numbers of the run so far (complete once `serve` has returned)."""
        done = self.pipeline.stats()
        counters, names = self.monitor.totals(self._live_stats())
        error = self.pipeline.sink_error
        return RunSummary(
            inputs=len(self.finite) + len(self.listeners), records=done.accepted,
            delivered=done.delivered, undelivered=done.undelivered, dropped=done.refused,
            exporters=self.monitor.exporters_seen, counters=counters, unknown_elements=names,
            problems=+self.monitor.problems, input_errors=list(self.monitor.input_errors),
            sink_error=str(error) if error else None, stopped_by_signal=self._signalled,
            output_closed=isinstance(getattr(error, "__cause__", None), BrokenPipeError),
        )
