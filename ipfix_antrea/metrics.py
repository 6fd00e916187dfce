"""`--metrics-listen HOST:PORT`: the collector's operations endpoints over HTTP.

  /metrics    Prometheus metrics (text or OpenMetrics, as the scraper asks)
  /healthz    liveness: the process answers, its event loop runs callbacks, its sink thread lives
  /readyz     readiness: every listener listens, every sink is ready, the collector is not stopping
  /templates  JSON: the templates each open exporter session holds

Nothing is counted here. Every number is one the collector already keeps -- the `Monitor`'s
problems and ended sessions, the live sessions' `SessionStats`, the `Pipeline`'s and each sink's
counts -- read when Prometheus scrapes, by a custom collector (`ServiceMetrics`), so the decoding
and delivery paths pay nothing for the metrics. Those numbers live on the event loop (the
listeners' sessions are changed there), so each request runs its reading on the loop
(`Collector.snapshot`, `readiness`, `templates`, `liveness`) and waits for it at most
`loop_timeout` seconds: a loop that does not run the callback in that time is blocked, and every
endpoint answers 503, which is what makes /healthz a liveness check. The server runs in threads
of its own, so it answers even then. With `--workers N` the supervisor serves the endpoints with
the same four readings, made of what its workers report (`ipfix_antrea.supervisor`).

Labels stay bounded: `input` (one per --input), `sink` (one per --sink), `kind` (the monitor's
problem kinds) and `exporter` (the first --metrics-exporters exporter addresses, then "other";
see `ipfix_antrea.monitor`).

This module needs prometheus_client (the [collector] extra); the collector imports it only when
--metrics-listen is given.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import socket
import threading
from collections.abc import Awaitable, Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import TYPE_CHECKING, Any, TypeVar, cast
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

import orjson
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder

from .inputs import InputError, InputSpec
from .inputs.options import format_address, resolve_bind
from .sinks import SINK_GAUGES

if TYPE_CHECKING:
    from .service import Operated, ServiceSnapshot

__all__ = ["OperationsServer", "ServiceMetrics", "SESSION_METRICS", "DEFAULT_METRICS_PORT", "LOOP_TIMEOUT"]

DEFAULT_METRICS_PORT = 9740
LOOP_TIMEOUT = 5.0  # seconds the event loop may take to run a request's reading
PREFIX = "ipfix_collect_"
log = logging.getLogger("ipfix_antrea.collector")
T = TypeVar("T")

#: Every `SessionStats` counter as a metric with labels input and exporter: (name, help).
SESSION_METRICS: dict[str, tuple[str, str]] = {
    "messages": ("messages", "IPFIX messages received and framed"),
    "octets": ("received_bytes", "bytes of the IPFIX messages received"),
    "records": ("records_decoded", "data records decoded (options records included)"),
    "options_records": ("options_records_decoded", "options data records decoded"),
    "templates_added": ("templates_added", "templates received that were new"),
    "templates_redefined": ("templates_redefined", "templates received that replaced another with the same id"),
    "templates_withdrawn": ("templates_withdrawn", "templates withdrawn by the exporter"),
    "templates_expired": ("templates_expired", "UDP templates expired (not sent again within --template-lifetime)"),
    "unknown_elements": ("unknown_elements", "template fields with an element the registry does not know"),
    "invalid_field_lengths": ("invalid_field_lengths", "template fields whose length does not fit their type"),
    "malformed_messages": ("malformed_messages", "messages that could not be decoded (dropped, or the stream closed)"),
    "malformed_sets": ("malformed_sets", "sets that could not be decoded (the rest of their message was)"),
    "missing_template_sets": ("missing_template_sets", "data sets whose template never came"),
    "pending_decoded_sets": ("pending_sets_decoded", "data sets held until their template came, then decoded"),
    "pending_dropped_sets": ("pending_sets_dropped", "data sets held for a template and dropped to bound memory"),
    "sequence_gaps": ("sequence_gaps", "messages whose sequence number skipped records"),
    "missing_records": ("missing_records", "data records the sequence numbers say were lost on the way"),
    "out_of_order": ("out_of_order_messages", "messages whose sequence number went backwards"),
    "nonzero_padding": ("nonzero_padding_sets", "sets with padding that was not zero"),
}

#: Help for the counters the Elasticsearch sink keeps (`ElasticsearchSink.stats`); other sinks'
#: counters get a generic one.
_SINK_COUNTER_HELP = {
    "indexed": "documents indexed",
    "duplicates": "documents already stored (derived ids)",
    "retried": "document sends repeated after 429, 5xx or a connection error",
    "rejected": "documents refused as invalid, in the dead-letter file",
    "failed": "documents not delivered when retries ran out, in the dead-letter file",
    "in_flight": "documents accepted whose outcome is not known yet",
}


class LoopUnresponsive(Exception):
    """The event loop did not run a callback in time (or is gone)."""


class ServiceMetrics:
    """A Prometheus collector that reads the collector's numbers when scraped."""

    def __init__(self, snapshot: Callable[[], ServiceSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        pipe = snap.pipeline
        yield _gauge("ready", "1 when every input listens and every sink is ready (as /readyz)", int(snap.ready))
        yield _counter("records_accepted", "records accepted into the delivery queue", pipe.accepted)
        yield _gauge("queue_records", "records in the delivery queue", pipe.queued)
        yield _gauge("queue_capacity_records", "records the delivery queue holds at most (--queue-size)",
                     pipe.capacity)
        yield _counter("exporter_sessions", "exporter transport sessions started", snap.exporters_seen)
        yield _counter("worker_deaths", "worker processes (--workers) that died instead of draining; each "
                       "was restarted unless the collector was stopping", snap.worker_deaths)
        yield _labelled(CounterMetricFamily, "problems", "problems with exporters' input, by kind",
                        ["kind"], (((k,), n) for k, n in sorted(snap.problems.items())))
        yield from self._inputs(snap)
        yield from self._sinks(snap)

    def _inputs(self, snap: ServiceSnapshot) -> Iterator[Metric]:
        inputs = snap.inputs
        yield _labelled(CounterMetricFamily, "records_dropped",
                        "UDP records dropped because the delivery queue was full", ["input"],
                        (((i.name,), i.dropped) for i in inputs))
        yield _labelled(GaugeMetricFamily, "exporters_connected", "exporter transport sessions open now",
                        ["input"], (((i.name,), i.sessions) for i in inputs))
        yield _labelled(GaugeMetricFamily, "templates_active", "templates held by the open sessions",
                        ["input", "exporter"],
                        (((i.name, e), n) for i in inputs for e, n in sorted(i.templates.items())))
        for field, (name, help_text) in SESSION_METRICS.items():
            yield _labelled(CounterMetricFamily, name, help_text, ["input", "exporter"],
                            (((i.name, e), c[field]) for i in inputs for e, c in sorted(i.counters.items())))

    def _sinks(self, snap: ServiceSnapshot) -> Iterator[Metric]:
        sinks = snap.pipeline.sinks
        yield _labelled(CounterMetricFamily, "sink_delivered_records", "records delivered to the sink",
                        ["sink"], (((s.name,), s.delivered) for s in sinks))
        yield _labelled(CounterMetricFamily, "sink_undelivered_records",
                        "accepted records the sink did not get or could not deliver", ["sink"],
                        (((s.name,), s.undelivered) for s in sinks))
        yield _labelled(GaugeMetricFamily, "sink_ready", "1 when the sink is ready (set up, not failed)",
                        ["sink"], (((s.name,), int(s.ready)) for s in sinks))
        yield _labelled(GaugeMetricFamily, "sink_working", "1 until the sink fails", ["sink"],
                        (((s.name,), int(s.error is None)) for s in sinks))
        for key in sorted({k for s in sinks for k in s.counters}):
            kind = GaugeMetricFamily if key in SINK_GAUGES else CounterMetricFamily
            help_text = _SINK_COUNTER_HELP.get(key, f"the sink's own counter {key!r}")
            yield _labelled(kind, f"sink_{key}", help_text, ["sink"],
                            (((s.name,), s.counters[key]) for s in sinks if key in s.counters))
        for name in sorted({h for s in sinks for h in s.histograms}):
            family = HistogramMetricFamily(f"{PREFIX}sink_{name}_seconds", f"duration of the sink's {name}s",
                                           labels=["sink"])
            for s in sinks:
                if name in s.histograms:
                    h = s.histograms[name]
                    cumulative, buckets = 0, []
                    for bound, count in zip([*map(repr, h.bounds), "+Inf"], h.counts, strict=True):
                        cumulative += count
                        buckets.append((bound, cumulative))
                    family.add_metric([s.name], buckets, sum_value=h.total)
            yield family


def _counter(name: str, help_text: str, value: float) -> Metric:
    return CounterMetricFamily(PREFIX + name, help_text, value=value)


def _gauge(name: str, help_text: str, value: float) -> Metric:
    return GaugeMetricFamily(PREFIX + name, help_text, value=value)


def _labelled(kind: type[CounterMetricFamily | GaugeMetricFamily], name: str, help_text: str, labels: list[str],
              values: Iterable[tuple[tuple[str, ...], float]]) -> Metric:
    family = kind(PREFIX + name, help_text, labels=labels)
    for label_values, value in values:
        family.add_metric(list(label_values), value)
    return family


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # `format`: the stdlib's parameter name
        pass  # scrapes and probes every few seconds would drown the collector's own log


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class OperationsServer:
    """The HTTP server of `/metrics`, `/healthz`, `/readyz` and `/templates` for ``collector``.

    ``listen`` is ``HOST:PORT`` (``[::]:9740`` for IPv6; port 0 picks a free one, see `url`).
    Raises ValueError when it is not an address; `start` raises InputError when it cannot listen,
    as a listener does.
    """

    def __init__(self, collector: Operated, listen: str, *, loop_timeout: float = LOOP_TIMEOUT) -> None:
        self._collector = collector
        self._spec = InputSpec("http", listen, text=f"--metrics-listen {listen}")
        try:
            self._host, self._port = self._spec.host_port(DEFAULT_METRICS_PORT)
        except InputError as exc:
            raise ValueError(str(exc)) from None
        self.loop_timeout = loop_timeout
        self.url = f"http://{format_address(self._host)}:{self._port}"
        self.registry = CollectorRegistry()
        self.registry.register(ServiceMetrics(lambda: self._on_loop(collector.snapshot)))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._routes: dict[str, Callable[[dict[str, Any]], tuple[str, str, bytes]]] = {
            "/metrics": self._metrics, "/healthz": self._healthz, "/readyz": self._readyz,
            "/templates": self._templates}

    # ---------------------------------------------------------------- lifecycle

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Listens, and serves from a thread of its own; ``loop`` is the collector's."""
        self._loop = loop
        family, sockaddr = resolve_bind(self._spec, self._host, self._port, socket.SOCK_STREAM)
        server_class = type("_Server", (_Server,), {"address_family": family})
        try:
            self._server = server_class(sockaddr[:2], _QuietHandler)
        except OSError as exc:
            raise InputError(f"{self._spec}: cannot listen: {exc.strerror or exc}") from exc
        self._server.set_app(self._app)
        bound = self._server.socket.getsockname()
        self.url = f"http://{format_address(bound[0])}:{bound[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="ipfix-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stops serving (blocks until the serving thread is done; not from the loop)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # ---------------------------------------------------------------- requests

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        route = self._routes.get(environ.get("PATH_INFO") or "/")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            status, content_type, body = "405 Method Not Allowed", "text/plain", b"GET only\n"
        elif route is None:
            status, content_type = "404 Not Found", "text/plain"
            body = ("not found; endpoints: " + " ".join(self._routes) + "\n").encode()
        else:
            try:
                status, content_type, body = route(environ)
            except LoopUnresponsive as exc:
                status, content_type, body = "503 Service Unavailable", "text/plain", f"{exc}\n".encode()
        start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
        return [b"" if environ.get("REQUEST_METHOD") == "HEAD" else body]

    def _on_loop(self, call: Callable[[], T] | Callable[[], Awaitable[T]]) -> T:
        """``call()`` run on the collector's event loop (awaited there when it is a coroutine
        function: a supervisor asks its workers); raises LoopUnresponsive when it has not
        returned within `loop_timeout` seconds."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(cast(T, call()))  # not a coroutine function: the value itself
                except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
                    future.set_exception(exc)

        loop = self._loop
        assert loop is not None, "start() first"
        try:
            if inspect.iscoroutinefunction(call):
                future = asyncio.run_coroutine_threadsafe(call(), loop)
            else:
                loop.call_soon_threadsafe(run)
            return future.result(self.loop_timeout)
        except RuntimeError:  # the loop is closed
            raise LoopUnresponsive("the collector's event loop has stopped") from None
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise LoopUnresponsive(f"the collector's event loop did not respond within "
                                   f"{self.loop_timeout:g} s") from None

    def _metrics(self, environ: dict[str, Any]) -> tuple[str, str, bytes]:
        encode, content_type = choose_encoder(environ.get("HTTP_ACCEPT", ""))
        return "200 OK", content_type, encode(self.registry)

    def _healthz(self, environ: dict[str, Any]) -> tuple[str, str, bytes]:
        alive, reason = self._on_loop(self._collector.liveness)
        return ("200 OK" if alive else "503 Service Unavailable"), "text/plain", f"{reason}\n".encode()

    def _readyz(self, environ: dict[str, Any]) -> tuple[str, str, bytes]:
        ready, parts = self._on_loop(self._collector.readiness)
        body = "\n".join(["ready" if ready else "not ready", *parts, ""]).encode()
        return ("200 OK" if ready else "503 Service Unavailable"), "text/plain", body

    def _templates(self, environ: dict[str, Any]) -> tuple[str, str, bytes]:
        sessions = self._on_loop(self._collector.templates)
        return "200 OK", "application/json", orjson.dumps({"sessions": sessions}, option=orjson.OPT_INDENT_2)

