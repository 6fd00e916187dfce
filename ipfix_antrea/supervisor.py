"""`ipfix-collect --workers N`: N worker processes, one supervisor.

One Python process decodes on one core. With N workers, the supervisor (the process that was
started) binds every listener for N workers (`Listener.bind`: UDP, N sockets on one port with
SO_REUSEPORT; TCP and TLS, one listening socket they share) and starts N copies of the command,
each told which worker it is and given its socket of each listener and its end of a channel
(`ipfix_antrea.channel`). An exporter always goes to the same worker -- its UDP address and
port by the kernel's hashing, its TCP connection to the worker that accepted it -- so its
templates stay where its data goes. Each worker is a whole collector for its share: it decodes,
builds documents and writes its own sinks (`WorkerInfo`: a jsonl sink writes `NAME-wK.EXT`,
Elasticsearch gets a client per worker).

Why processes started afresh (`python -m ipfix_antrea.cli --worker ...`) and not forked: the
supervisor has threads (the metrics server, asyncio's child watcher) by the time it restarts a
worker, and forking a process with threads is unsafe; a fresh interpreter costs about 0.3 s
and some memory that fork would share, once per start.

Why the supervisor binds the sockets and keeps them: with port 0 every worker gets the same port
without a race; a worker that dies leaves its UDP socket open in the supervisor, so while it is
restarted its exporters' datagrams wait in the socket's buffer, and the kernel does not move
them to other workers (which do not have their templates); new TCP connections go to the
workers that are running. The supervisor closes its copies when it stops: that is when it stops
accepting.

Workers run in process groups of their own, so a Ctrl-C at the terminal reaches only the
supervisor. The first SIGTERM or SIGINT is passed on as ("stop",) on each channel: every worker
stops accepting, drains and flushes, sends its final numbers and exits; a second gives up at
once (the workers are killed, exit 130). A worker that dies outside a shutdown is restarted
after a pause that doubles (from `RESTART_FIRST`, at most `RESTART_MAX`), logged and counted;
one that dies `CRASH_LIMIT` times within `CRASH_WINDOW` seconds, or cannot start at all, ends
the run with an error. A worker that ends by itself (its sinks failed, standard output was
closed, it was sent a signal of its own) ends the run too, as it would without workers.

The supervisor has the collector's face for the operations server (`ipfix_antrea.metrics`):
`snapshot`, `readiness`, `templates` and `liveness`, made of the workers' reports
(`ipfix_antrea.totals`); it is ready when every worker is, and alive when every worker is
running and reporting. Its status lines and summary are the workers' sums.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .channel import WorkerReport, receive, send
from .inputs import InputError, Listener
from .monitor import RunSummary, StatusLine
from .service import DEFAULT_STATUS_INTERVAL, ServiceSnapshot, _operations_server, install_stop_signals, wind_down
from .totals import ExporterLabels, combine, ended
from .workers import WorkerInfo

__all__ = ["Supervisor", "WorkerLaunch", "WORKER_FLAG", "available_cpus", "RESTART_FIRST", "RESTART_MAX",
           "CRASH_LIMIT", "CRASH_WINDOW", "LIVENESS"]

WORKER_FLAG = "--worker"  # argv[1] of a worker process, followed by its `WorkerLaunch`
RESTART_FIRST = 0.25  # seconds before a worker that died is started again; doubles, to:
RESTART_MAX = 8.0
CRASH_LIMIT = 5  # deaths of one worker within CRASH_WINDOW seconds that end the run
CRASH_WINDOW = 60.0
LIVENESS = 5.0  # seconds without a report after which a worker is not alive (the loop timeout)
log = logging.getLogger("ipfix_antrea.collector")


@dataclass(frozen=True)
class WorkerLaunch:
    """What a worker process is told on its command line: who it is, and the inherited file
    descriptors of its channel and of its socket of each listener (in --input order)."""

    index: int
    count: int
    channel: int
    sockets: tuple[int, ...]

    @property
    def info(self) -> WorkerInfo:
        return WorkerInfo(self.index, self.count)

    def text(self) -> str:
        return json.dumps({"index": self.index, "count": self.count, "channel": self.channel,
                           "sockets": list(self.sockets)}, separators=(",", ":"))

    @classmethod
    def parse(cls, text: str) -> WorkerLaunch:
        """Raises ValueError for anything the supervisor would not have written."""
        try:
            d = json.loads(text)
            launch = cls(int(d["index"]), int(d["count"]), int(d["channel"]), tuple(int(s) for s in d["sockets"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{WORKER_FLAG} {text!r}: not a worker launch ({exc})") from None
        if not 0 <= launch.index < launch.count:
            raise ValueError(f"{WORKER_FLAG} {text!r}: index out of range")
        for fd in (launch.channel, *launch.sockets):
            try:
                if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                    raise ValueError(f"{WORKER_FLAG} {text!r}: descriptor {fd} is not a socket")
            except OSError as exc:
                raise ValueError(f"{WORKER_FLAG} {text!r}: descriptor {fd}: {exc.strerror or exc}") from None
        return launch


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity), fewer when a cgroup (v2) CPU quota,
    as a container's CPU limit, allows less: what ``--workers auto`` starts."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota, period = f.read().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(cpus, 1)


class _Worker:
    """One worker's place: its current process and channel, and what its processes reported."""

    def __init__(self, index: int) -> None:
        self.index = index
        self.process: asyncio.subprocess.Process | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.report: WorkerReport | None = None  # the latest of the current process
        self.final = False  # the current process sent its final report: it drained
        self.reported_at: float | None = None  # monotonic
        self.spawned_at = 0.0
        self.started = asyncio.Event()  # the current process listens (it reported)
        self.ever_started = False
        self.past: WorkerReport | None = None  # the processes that are gone, combined
        self.deaths: deque[float] = deque()  # monotonic times of recent deaths
        self.pending: dict[int, asyncio.Future[list[dict[str, Any]]]] = {}  # template requests by id

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    """Runs ``count`` worker processes of the command ``argv`` (see the module comment) and
    returns their summed summary from `run`.

    ``listeners`` are the command's listeners, opened but not started; the supervisor binds
    them (`Listener.bind`). ``sink_names`` are the sink specs as given, which name a sink whose
    workers' names differ. ``environ`` is the workers' environment.
    """

    def __init__(self, argv: Sequence[str], count: int, listeners: Sequence[Listener], sink_names: Sequence[str], *,
                 environ: Mapping[str, str] | None = None, status_interval: float = DEFAULT_STATUS_INTERVAL,
                 metrics_listen: str | None = None, max_exporters: int = 50) -> None:
        self.count = count
        self.listeners = list(listeners)
        self._argv = list(argv)
        self._command = [sys.executable, "-m", "ipfix_antrea.cli"]
        self._environ = dict(environ if environ is not None else os.environ)
        self._sink_names = list(sink_names)
        self.status_interval = status_interval
        self._labels = ExporterLabels(max_exporters)
        self.workers = [_Worker(i) for i in range(count)]
        self._sockets: list[list[socket.socket]] = []  # per listener, one per worker
        self._stop = asyncio.Event()
        self._stopping = False
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._deaths: list[str] = []
        self._input_errors: list[str] = []
        self._requests = 0
        #: Set when the run could not start because a worker could not: its exit status.
        self.failed_start: int | None = None
        #: Set once every worker listens (or the run is over before they do).
        self.started = threading.Event()
        self.operations = _operations_server(self, metrics_listen) if metrics_listen else None

    # ---------------------------------------------------------------- running

    def run(self) -> RunSummary:
        return asyncio.run(self.serve())

    async def serve(self) -> RunSummary:
        loop = self._loop = asyncio.get_running_loop()
        install_stop_signals(loop, self.on_signal)
        keepers: list[asyncio.Task[None]] = []
        status = None
        try:
            if self.operations is not None:
                self.operations.start(loop)
                log.info("metrics, health and readiness on %s", self.operations.url)
            for listener in self.listeners:
                self._sockets.append(listener.bind(self.count))
            # Worker 0 first: a worker that cannot start (a sink that cannot open) says why once.
            for group in (self.workers[:1], self.workers[1:]):
                if self._stop.is_set():
                    break
                started = [(w, asyncio.create_task(self._keep_running(w))) for w in group]
                keepers += [task for _, task in started]
                await self._until_started(started)
            if not self._stop.is_set():
                for listener in self.listeners:
                    log.info("listening on %s", listener.address)
                log.info("%d workers (pids %s)", self.count,
                         " ".join(str(w.process.pid) for w in self.workers if w.process is not None))
        except InputError as exc:
            self._input_errors.append(str(exc))
            log.error("%s", exc)
            self._stop.set()
        self.started.set()
        if self.status_interval > 0:
            status = asyncio.create_task(self._status_forever())
        await self._stop.wait()
        # Shutting down: stop accepting, have every worker drain, wait for them all.
        self._stopping = True
        self._close_sockets()
        for w in self.workers:
            if w.running and w.writer is not None:
                with contextlib.suppress(ConnectionError):
                    await send(w.writer, ("stop",))
        await asyncio.gather(*keepers)
        await wind_down(loop, status, self.operations)
        return self.summary()

    async def _until_started(self, workers: list[tuple[_Worker, asyncio.Task[None]]]) -> None:
        """Waits until each worker listens, or the run is stopping (or its keeper has ended)."""
        stop = asyncio.create_task(self._stop.wait())
        try:
            for w, keeper in workers:
                started = asyncio.create_task(w.started.wait())
                await asyncio.wait([started, stop, keeper], return_when=asyncio.FIRST_COMPLETED)
                started.cancel()
                if not w.started.is_set():
                    return
        finally:
            stop.cancel()

    async def _keep_running(self, w: _Worker) -> None:
        """Runs worker ``w``, again after each death, until the run stops or gives up."""
        while True:
            status = await self._run_once(w)
            if w.final:
                self._ended(w)
                return
            what = self._died(w, status)
            if self._stopping:
                log.error("%s while draining", what)
                return
            if not w.ever_started:
                log.error("worker %d could not start (%s); stopping", w.index, _describe(status))
                self.failed_start = status if status is not None and status > 0 else 1
                self.stop()
                return
            if len(w.deaths) >= CRASH_LIMIT:
                log.error("%s; it died %d times within %.0f s: giving up; stopping", what, len(w.deaths),
                          CRASH_WINDOW)
                self.stop()
                return
            delay = min(RESTART_FIRST * 2 ** (len(w.deaths) - 1), RESTART_MAX)
            log.error("%s; restarting it in %.2g s", what, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
                return  # stopped while waiting

    async def _run_once(self, w: _Worker) -> int | None:
        """Starts a process for ``w``, reads its channel until it closes; its exit status
        (None: it could not be started)."""
        mine, theirs = socket.socketpair()
        fds = [theirs.fileno(), *(socks[w.index].fileno() for socks in self._sockets)]
        launch = WorkerLaunch(w.index, self.count, fds[0], tuple(fds[1:]))
        w.process, w.report, w.final, w.reported_at = None, None, False, None
        w.started.clear()
        try:
            w.process = await asyncio.create_subprocess_exec(
                *self._command, WORKER_FLAG, launch.text(), *self._argv, pass_fds=fds, env=self._environ,
                stdin=subprocess.DEVNULL, process_group=0)
        except OSError as exc:
            log.error("worker %d: cannot start a process: %s", w.index, exc.strerror or exc)
            mine.close()
            return None
        finally:
            theirs.close()
        w.spawned_at = time.monotonic()
        reader, w.writer = await asyncio.open_unix_connection(sock=mine)
        if self._stopping:  # the stop was sent while this one was being started
            with contextlib.suppress(ConnectionError):
                await send(w.writer, ("stop",))
        try:
            await self._listen(w, reader)
        finally:
            w.writer.close()
            for future in w.pending.values():  # a worker that is gone holds no templates
                if not future.done():
                    future.set_result([])
            w.pending.clear()
        return await w.process.wait()

    async def _listen(self, w: _Worker, reader: asyncio.StreamReader) -> None:
        while (message := await receive(reader)) is not None:
            kind = message[0]
            if kind in ("report", "final"):
                w.report, w.reported_at = message[1], time.monotonic()
                w.final = kind == "final"
                if w.deaths and not w.started.is_set() and w.process is not None:
                    log.info("worker %d restarted (pid %d)", w.index, w.process.pid)
                w.ever_started = True
                w.started.set()
            elif kind == "templates":
                future = w.pending.pop(message[1], None)
                if future is not None and not future.done():
                    future.set_result(message[2])

    def _ended(self, w: _Worker) -> None:
        """``w`` drained and exited: the end of the run, if it was not already."""
        if self._stopping or w.report is None:
            return
        summary = w.report.summary
        if not summary.output_closed:  # `| head` is a quiet end
            why = "it was sent a signal" if summary.stopped_by_signal else "no sink is left"
            log.info("worker %d has stopped (%s); stopping the others", w.index, why)
        self.stop()

    def _died(self, w: _Worker, status: int | None) -> str:
        """``w``'s process is gone without draining: keeps its numbers, with what it had not
        delivered as undelivered, and counts the death (also in ``w.deaths``, those of the last
        `CRASH_WINDOW` seconds). Returns what happened, to be logged."""
        now = time.monotonic()
        w.deaths.append(now)
        while now - w.deaths[0] > CRASH_WINDOW:
            w.deaths.popleft()
        what = f"worker {w.index} (pid {w.process.pid if w.process is not None else '-'}) {_describe(status)}"
        self._deaths.append(what)
        if w.report is not None:
            gone = ended(w.report, died=True)
            w.past = gone if w.past is None else combine([w.past, gone], self._sink_names, self._labels)
            w.report = None
        return what

    def _close_sockets(self) -> None:
        for socks in self._sockets:
            for sock in socks:
                sock.close()

    # ---------------------------------------------------------------- signals

    def on_signal(self, sig: int) -> None:
        """SIGTERM or SIGINT: the first has every worker drain, the second gives up at once."""
        name = signal.Signals(sig).name
        if self._signalled:
            log.error("%s again: giving up on draining; the workers are killed and what they hold is lost", name)
            for w in self.workers:
                if w.process is not None and w.process.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        w.process.kill()
            logging.shutdown()
            os._exit(130)
        self._signalled = True
        log.info("%s: stopping: no new data; the workers drain their queues and flush their sinks", name)
        self.stop()

    def stop(self) -> None:
        """Asks the run to shut down gracefully; from any thread, also before `serve`."""
        loop = self._loop
        if loop is None:
            self._stop.set()
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self._stop.set)

    # ---------------------------------------------------------------- numbers

    def _totals(self) -> WorkerReport:
        reports = [r for w in self.workers for r in (w.past, w.report) if r is not None]
        return combine(reports, self._sink_names, self._labels)

    async def _status_forever(self) -> None:
        status = StatusLine()
        while True:
            await asyncio.sleep(self.status_interval)
            totals = self._totals()
            log.info("%s", status.line(totals.snapshot.pipeline, totals.summary.counters, totals.open_sessions,
                                       totals.summary.problems))

    def summary(self) -> RunSummary:
        """The workers' summaries summed (complete once `serve` has returned)."""
        summary = self._totals().summary
        summary.inputs = len(self.listeners)
        summary.input_errors = self._input_errors + summary.input_errors
        summary.stopped_by_signal = self._signalled
        summary.worker_deaths = list(self._deaths)
        return summary

    # ---------------------------------------------------------------- operations (on the loop)

    def snapshot(self) -> ServiceSnapshot:
        snapshot = self._totals().snapshot
        snapshot.ready = self.readiness()[0]
        snapshot.worker_deaths = len(self._deaths)
        return snapshot

    def readiness(self) -> tuple[bool, list[str]]:
        """Ready when every worker runs and is ready, and the run is not stopping; the workers'
        lines once when every worker says them, else with the worker's number."""
        stopping = self._stopping or self._stop.is_set()
        ready = self.started.is_set() and not stopping
        parts = ["collector: " + ("stopping" if stopping else "starting")] if stopping or not ready else []
        said: list[tuple[int, list[str]]] = []
        for w in self.workers:
            if w.report is None or not w.running:
                ready = False
                parts.append(f"worker {w.index}: not running")
                continue
            ok, lines = w.report.readiness
            ready = ready and ok
            said.append((w.index, lines))
        common = [line for line in (said[0][1] if said else []) if all(line in lines for _, lines in said)]
        if len(said) < self.count:
            common = []
        parts += common
        parts += [f"worker {i}: {line}" for i, lines in said for line in lines if line not in common]
        return ready, parts

    def liveness(self) -> tuple[bool, str]:
        """Alive when every worker runs and has reported within `LIVENESS` seconds, saying its
        own sink thread lives (workers that drained at the end count as alive)."""
        now = time.monotonic()
        problems = []
        for w in self.workers:
            if w.final:
                continue
            if not w.running:
                problems.append(f"worker {w.index}: not running")
            elif w.reported_at is None:
                if now - w.spawned_at > LIVENESS:
                    problems.append(f"worker {w.index}: no report since it started {now - w.spawned_at:.0f} s ago")
            elif now - w.reported_at > LIVENESS:
                problems.append(f"worker {w.index}: no report for {now - w.reported_at:.1f} s")
            elif w.report is not None and not w.report.liveness[0]:
                problems.append(f"worker {w.index}: {w.report.liveness[1]}")
        return not problems, "; ".join(problems) or "ok"

    async def templates(self) -> list[dict[str, Any]]:
        """The templates the sessions of every worker hold, each session with its worker."""
        asked = []
        loop = asyncio.get_running_loop()
        for w in self.workers:
            if w.running and w.writer is not None and w.started.is_set():
                self._requests += 1
                future = loop.create_future()
                w.pending[self._requests] = future
                await send(w.writer, ("templates", self._requests))
                asked.append((w, future))
        out = []
        for w, future in asked:
            out += [dict(session, worker=w.index) for session in await future]
        return out


def _describe(status: int | None) -> str:
    if status is None:
        return "could not be started"
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-status).name}"
        return f"was killed by signal {-status}"
    return f"exited with status {status}"
