"""The collector as a running service: inputs -> decoder -> bounded queue -> sinks.

Everything network runs on one asyncio event loop: the listeners (`udp://`, `tcp://`, `tls://`)
decode as bytes arrive and hand batches to their `Intake` (this module's `_Intake`, one per
listener, so that counters stay per input), which checks the allow-list, logs problems through
the `Monitor` and queues batches in the `Pipeline`, whose own thread writes them to the sinks.
Finite inputs (files, captures) run one after another in a worker thread and block on the queue
when it is full, which is their backpressure. Every part is built by the constructor; `serve`
only starts and stops them.

The run ends when the finite inputs are done and there is no listener, or on SIGTERM/SIGINT:
stop accepting (listeners stop, connections hand over what they had received), drain the
queue, flush and close every sink. A second signal while draining gives up at once. A sink that
fails is dropped while the others go on (what it did not get is counted for it); the run ends
when no sink is left, or when standard output was closed (`| head`).

Operations (`metrics_listen`): an HTTP server (`ipfix_antrea.metrics`, imported only then) reads
what the parts already count through `snapshot`, `readiness`, `templates` and `liveness`, which
run on the event loop, where the listeners' sessions live. A worker process of `--workers N`
hands the same readings to its supervisor instead (`ipfix_antrea.channel`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from .documents import DocumentBuilder
from .inputs import Batch, Input, InputError, Listener
from .inputs.allow import AllowList
from .monitor import DEFAULT_MAX_EXPORTERS, Monitor, RunSummary, StatusLine, add_stats, exporter_address
from .pipeline import DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL, DEFAULT_QUEUE_RECORDS, Pipeline, PipelineStats
from .session import SessionStats
from .sinks import Sink, SinkError

if TYPE_CHECKING:
    from types import FrameType

    from .metrics import OperationsServer
    from .template import Template

__all__ = ["Collector", "DEFAULT_STATUS_INTERVAL", "EarlySignals", "InputSnapshot", "Operated", "ServiceSnapshot",
           "STOP_SIGNALS", "install_stop_signals", "remove_stop_signals", "wind_down"]

DEFAULT_STATUS_INTERVAL = 60.0
log = logging.getLogger("ipfix_antrea.collector")


class _Intake:
    """The `Intake` one listener sees: allow-list, problem reports and sessions (counted for its
    input), the pipeline's two ways in, and the records it had to drop."""

    def __init__(self, collector: Collector, input_name: str) -> None:
        self._monitor = collector.monitor
        self._pipeline = collector.pipeline
        self._input = input_name
        self.allows = collector.allow.allows
        self.report = self._monitor.report
        self.dropped = 0  # records refused by a full queue (UDP)

    def session_started(self, key: str) -> None:
        self._monitor.session_started(key, self._input)

    def session_ended(self, key: str, stats: SessionStats) -> None:
        self._monitor.session_ended(key, stats, self._input)

    def offer(self, batch: Batch) -> bool:
        self._monitor.observe(batch)
        if self._pipeline.offer(batch):
            return True
        self.dropped += len(batch.records)
        return False

    async def put(self, batch: Batch) -> None:
        self._monitor.observe(batch)
        await self._pipeline.put_async(batch)


@dataclass
class InputSnapshot:
    """One input's numbers at one moment, for the metrics."""

    name: str
    #: session counters (`SessionStats` fields) by exporter label ("" where the input does not
    #: know its exporters: files)
    counters: dict[str, Counter[str]] = field(default_factory=dict)
    templates: dict[str, int] = field(default_factory=dict)  # exporter label -> templates held now
    sessions: int = 0  # transport sessions open now
    dropped: int = 0  # records dropped: the queue was full (UDP)


@dataclass
class ServiceSnapshot:
    """Everything the metrics show, taken at once on the event loop."""

    pipeline: PipelineStats
    inputs: list[InputSnapshot]
    problems: Counter[str]
    exporters_seen: int
    ready: bool
    worker_deaths: int = 0  # worker processes of --workers N that died instead of draining


class Collector:
    """Runs inputs into sinks until the inputs end or a signal stops it; see `run`.

    ``documents`` is the document stage between decoded records and the sinks (default: the
    plain Logstash envelope, no transforms). ``metrics_listen`` (``HOST:PORT``) serves metrics,
    health, readiness and templates over HTTP while the collector runs (`ipfix_antrea.metrics`,
    which needs prometheus_client); ``max_exporters`` exporters get labels of their own there.
    ``announce``: log each listener's address once it listens (a worker process leaves that to
    its supervisor, which says it once for all workers). Raises ValueError for a bad
    ``metrics_listen`` or a missing prometheus_client.
    """

    def __init__(self, inputs: Sequence[Input | Listener], sinks: Sequence[Sink], *,
                 documents: DocumentBuilder | None = None, allow: AllowList | None = None,
                 queue_records: int = DEFAULT_QUEUE_RECORDS, batch_size: int = DEFAULT_BATCH_SIZE,
                 flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 status_interval: float = DEFAULT_STATUS_INTERVAL, metrics_listen: str | None = None,
                 max_exporters: int = DEFAULT_MAX_EXPORTERS, announce: bool = True) -> None:
        self.listeners = [i for i in inputs if isinstance(i, Listener)]
        self.finite = [i for i in inputs if not isinstance(i, Listener)]
        self.allow = allow if allow is not None else AllowList()
        self.monitor = Monitor(max_exporters)
        self.status_interval = status_interval
        self.announce = announce
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop = asyncio.Event()
        self._stop_reading = threading.Event()  # tells the finite-input thread to stop
        self._listening: list[Listener] = []
        self._draining = False
        self._signalled = False
        #: Set once every listener is bound (or failed to bind) and the run is under way.
        self.started = threading.Event()
        self.operations = _operations_server(self, metrics_listen) if metrics_listen else None
        # Last, as it starts the sink thread. Listeners need that thread (they must keep reading
        # while the sinks write); files and captures alone are faster writing from the thread
        # that decodes them.
        self.pipeline = Pipeline(sinks, documents=documents, capacity=queue_records, batch_size=batch_size,
                                 flush_interval=flush_interval, on_sink_failed=self._sink_failed,
                                 threaded=bool(self.listeners))
        self._intakes = [_Intake(self, listener.name) for listener in self.listeners]

    # ---------------------------------------------------------------- running

    def run(self) -> RunSummary:
        """Runs to the end (see the module comment) and returns what happened."""
        return asyncio.run(self.serve())

    async def serve(self) -> RunSummary:
        """`run` on an event loop that is already running (embedding, tests); signal handlers
        are installed only when this is the main thread."""
        loop = self._loop = asyncio.get_running_loop()
        install_stop_signals(loop, self.on_signal)
        try:
            if self.operations is not None:
                self.operations.start(loop)
                log.info("metrics, health and readiness on %s", self.operations.url)
            for listener, intake in zip(self.listeners, self._intakes, strict=True):
                if self._stop.is_set():
                    break  # a signal came while the collector was being set up
                await listener.start(intake)
                self._listening.append(listener)
                if self.announce:
                    log.info("listening on %s", listener.address)
        except InputError as exc:
            self.monitor.input_error(str(exc))
            self._stop.set()
        self.started.set()
        reader = asyncio.create_task(asyncio.to_thread(self._read_finite))
        status = asyncio.create_task(self._status_forever()) if self.status_interval > 0 else None
        waits: set[asyncio.Task[Any]] = {asyncio.create_task(self._stop.wait())}
        if not self.listeners:
            waits.add(reader)
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        # Shutting down: stop accepting, let connections hand over, drain, flush, close.
        self._draining = True
        self._stop_reading.set()
        for listener in self._listening:
            await listener.stop()
        await reader
        await asyncio.to_thread(self.pipeline.close)
        await wind_down(loop, status, self.operations)
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

    def _sink_failed(self, sink: Sink, error: SinkError) -> None:
        """A sink failed (from the sink thread, or the one closing the pipeline): say so, and
        end the run when no sink is left or standard output was closed."""
        output_closed = isinstance(error.__cause__, BrokenPipeError)
        left = self.pipeline.working()
        if not output_closed:
            going_on = "" if self._draining or not left else f"; {len(left)} other sink(s) go on"
            log.error("%s%s", error, going_on)
        if output_closed or not left:
            self.stop()

    # ---------------------------------------------------------------- signals

    def on_signal(self, sig: int) -> None:
        """SIGTERM or SIGINT: the first stops the run gracefully, the second gives up at once.
        `serve` installs this on its loop; a caller may also call it before `serve` (a signal
        that came while the collector was being set up), and the run then stops as it starts."""
        if self._signalled:
            log.error("%s again: giving up on draining; queued records are lost", signal.Signals(sig).name)
            logging.shutdown()
            os._exit(130)  # the sink thread may be stuck in a write; nothing else would stop it
        self._signalled = True
        log.info("%s: stopping: no new data; draining the queue and flushing the sinks",
                 signal.Signals(sig).name)
        self.stop()

    def stop(self) -> None:
        """Asks the run to shut down gracefully; from any thread, also before `serve`."""
        self._stop_reading.set()
        loop = self._loop
        if loop is None:
            self._stop.set()  # not running yet: serve() finds it set
            return
        with contextlib.suppress(RuntimeError):  # the loop is gone: the run is over anyway
            loop.call_soon_threadsafe(self._stop.set)

    # ---------------------------------------------------------------- reporting

    def _live_stats(self) -> list[SessionStats]:
        """The counters of finite inputs' sessions and listeners' open sessions (listeners'
        ended sessions are in the monitor's totals)."""
        inputs: list[Input | Listener] = [*self.finite, *self.listeners]
        return [s for inp in inputs for s in inp.stats()]

    async def _status_forever(self) -> None:
        status = StatusLine()
        while True:
            await asyncio.sleep(self.status_interval)
            log.info("%s", self.status_line(status))

    def status_line(self, status: StatusLine) -> str:
        counters, _ = self.monitor.totals(self._live_stats())
        return status.line(self.pipeline.stats(), counters, self.monitor.exporters, self.monitor.problems)

    def summary(self) -> RunSummary:
        """The numbers of the run so far (complete once `serve` has returned)."""
        done = self.pipeline.stats()
        counters, names = self.monitor.totals(self._live_stats())
        return RunSummary(
            inputs=len(self.finite) + len(self.listeners), records=done.accepted, dropped=done.refused,
            exporters=self.monitor.exporters_seen, counters=counters, unknown_elements=names,
            problems=+self.monitor.problems, input_errors=list(self.monitor.input_errors),
            sinks=list(done.sinks), stopped_by_signal=self._signalled,
        )

    # ---------------------------------------------------------------- operations (on the loop)

    def readiness(self) -> tuple[bool, list[str]]:
        """Whether the collector is ready (every listener listening, every sink ready, not
        stopping), and one line per part saying how it is."""
        stopping = self._draining or self._stop.is_set()
        ready = self.started.is_set() and not stopping
        parts: list[str] = []
        if stopping or not ready:
            parts.append("collector: " + ("stopping" if stopping else "starting"))
        for listener in self.listeners:
            listening = listener in self._listening
            ready = ready and listening
            parts.append(f"input {listener.name}: " + (f"listening on {listener.address}" if listening
                                                       else "not listening"))
        for sink in self.pipeline.stats().sinks:
            ready = ready and sink.ready
            state = "ready" if sink.ready else f"failed: {sink.error}" if sink.error else "not ready"
            parts.append(f"sink {sink.name}: {state}")
        return ready, parts

    def snapshot(self) -> ServiceSnapshot:
        """The numbers behind the metrics: pipeline and sinks, every input by exporter."""
        inputs: dict[str, InputSnapshot] = {}  # by name: the same spec twice is one input here

        def counters(name: str, label: str) -> Counter[str]:
            snap = inputs.setdefault(name, InputSnapshot(name))
            return snap.counters.setdefault(label, Counter())

        for (name, label), ended in self.monitor.ended_by_exporter().items():
            counters(name, label).update(ended)
        for listener, intake in zip(self.listeners, self._intakes, strict=True):
            snap = inputs.setdefault(listener.name, InputSnapshot(listener.name))
            snap.dropped += intake.dropped
            for key, session in listener.sessions().items():
                label = self.monitor.exporter_label(key, listener.name)
                add_stats(counters(listener.name, label), set(), session.stats)
                snap.templates[label] = snap.templates.get(label, 0) + len(session.templates)
                snap.sessions += 1
        for inp in self.finite:
            for stats in inp.stats():
                add_stats(counters(inp.name, ""), set(), stats)
            inputs.setdefault(inp.name, InputSnapshot(inp.name))
        ready, _ = self.readiness()
        return ServiceSnapshot(self.pipeline.stats(), list(inputs.values()), Counter(self.monitor.problems),
                               self.monitor.exporters_seen, ready)

    def templates(self) -> list[dict[str, Any]]:
        """The templates each open exporter session holds (network inputs), as JSON."""
        out = []
        for listener in self.listeners:
            for key, session in listener.sessions().items():
                out.append({"input": listener.name, "session": key, "exporter": exporter_address(key),
                            "templates": [_template_json(domain, t)
                                          for (domain, _), t in sorted(session.templates.items())]})
        return out

    def liveness(self) -> tuple[bool, str]:
        """Whether the sink thread is alive, and what to say about it (the loop's
        responsiveness is the caller's to check)."""
        if self.pipeline.alive():
            return True, "ok"
        return False, "the sink thread has died"


STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def install_stop_signals(loop: asyncio.AbstractEventLoop, handler: Callable[[int], None]) -> None:
    """``handler(signal number)`` for SIGTERM and SIGINT on ``loop``; only in the main thread,
    where signal handlers can be set (not when embedded, or in tests)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, handler, sig)


def remove_stop_signals(loop: asyncio.AbstractEventLoop) -> None:
    for sig in STOP_SIGNALS:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(sig)


async def wind_down(loop: asyncio.AbstractEventLoop, status: asyncio.Task[None] | None,
                    operations: OperationsServer | None) -> None:
    """The end of a run: no more status lines, the operations server and the signal handlers
    gone."""
    if status is not None:
        status.cancel()
    if operations is not None:
        await asyncio.to_thread(operations.stop)
    remove_stop_signals(loop)


class EarlySignals:
    """SIGTERM and SIGINT that come while a collector's parts are being set up (opening the
    Elasticsearch sink imports its client, which takes a moment), from construction until
    `hand_over`: kept, and handed to the collector, which then stops as soon as it starts, with
    its summary, instead of the process dying without one (or with a traceback). `restore` puts
    the previous handlers back when no collector comes. Only in the main thread, where signal
    handlers can be set; `Collector.serve` replaces these handlers with its loop's."""

    SIGNALS = STOP_SIGNALS

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._collector: Stoppable | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}
        if threading.current_thread() is threading.main_thread():
            self._previous = {sig: signal.signal(sig, self._caught) for sig in self.SIGNALS}

    def _caught(self, number: int, _frame: object) -> None:
        if self._collector is not None:
            self._collector.on_signal(number)
        else:
            self._pending.append(number)

    def hand_over(self, collector: Stoppable) -> None:
        """From now on signals go to ``collector``, starting with those that came already."""
        self._collector = collector
        for number in self._pending:
            collector.on_signal(number)

    def restore(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _template_json(domain: int, template: Template) -> dict[str, Any]:
    return {"observation_domain_id": domain, "template_id": template.template_id,
            "scope_count": template.scope_count,
            "fields": [{"name": f.name, "element_id": f.element.element_id, "enterprise": f.element.enterprise,
                        "length": f.length} for f in template.fields]}


class Operated(Protocol):
    """What the operations server (`ipfix_antrea.metrics`) reads, on the event loop: a
    `Collector`, or the `Supervisor` of worker processes (whose templates come from its workers,
    so it awaits them)."""

    def snapshot(self) -> ServiceSnapshot: ...

    def readiness(self) -> tuple[bool, list[str]]: ...

    def liveness(self) -> tuple[bool, str]: ...

    def templates(self) -> list[dict[str, Any]] | Awaitable[list[dict[str, Any]]]: ...


class Stoppable(Protocol):
    """What signals are handed to (`EarlySignals.hand_over`)."""

    def on_signal(self, sig: int) -> None: ...


def _operations_server(collector: Operated, listen: str) -> OperationsServer:
    try:
        from .metrics import OperationsServer
    except ImportError as exc:
        raise ValueError(f"--metrics-listen needs the Prometheus client ({exc.name} is not installed): "
                         "pip install 'ipfix-antrea[collector]'") from None
    return OperationsServer(collector, listen)
