"""What the collector tells its operator: problems (counted, logged once per kind and exporter),
the periodic one-line status, and the summary at the end.

Every problem with an exporter's input -- malformed messages and sets, a stream that cannot be
framed, a failed TLS handshake, a refused exporter, dropped datagrams -- goes through `report`,
which counts it by kind and logs only the first of each kind per exporter: an exporter that
sends garbage ten thousand times a second produces one log line and a counter, and cannot drown
what other exporters' problems say. Counters of the decoding sessions (`SessionStats`) are
summed over live sessions and those that ended (`session_ended` folds them into the totals), so
the numbers only grow, however many exporters come and go.

The totals are kept per input and per exporter, for the metrics (`ipfix_antrea.metrics`). An
exporter is its address (all its UDP ports and TCP connections); the first `max_exporters`
exporters to start a session get a label of their own and every later one counts as "other",
decided when the session starts and never moved, so that each label's counters only grow and a
scan from many addresses cannot make the number of labels grow without bound.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from .events import MalformedSet
from .session import MAX_UNKNOWN_NAMES

if TYPE_CHECKING:
    from .events import Event
    from .inputs import Batch
    from .pipeline import PipelineStats, SinkReport
    from .session import SessionStats

__all__ = ["Monitor", "RunSummary", "describe_event", "exporter_address", "PROG", "OTHER_EXPORTERS",
           "DEFAULT_MAX_EXPORTERS"]

PROG = "ipfix-collect"
OTHER_EXPORTERS = "other"  # the label of exporters beyond the first max_exporters
DEFAULT_MAX_EXPORTERS = 50
log = logging.getLogger("ipfix_antrea.collector")

# Kinds of problem that are the exporter's fault (errors) or a consequence of load or policy.
WARNING_KINDS = frozenset({"dropped", "refused"})
# Problems with a connection rather than with IPFIX content (which the session counters count).
CONNECTION_KINDS = ("tls handshake failed", "connection error")


def describe_event(event: Event) -> str:
    """One line for an event: its class and fields, a template by its id."""
    parts = []
    for f in fields(event):
        value = getattr(event, f.name)
        if hasattr(value, "template_id") and not isinstance(value, int):
            value = value.template_id
        parts.append(f"{f.name}={value}")
    return f"{type(event).__name__}({', '.join(parts)})"


def plural(n: int, noun: str) -> str:
    """``1 exporter``, ``3 exporters``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def add_stats(total: Counter[str], names: set[str], stats: SessionStats) -> None:
    """Add one SessionStats into ``total``: every integer counter, and the unknown names while
    ``names`` holds fewer than `MAX_UNKNOWN_NAMES` (exporters that come and go with ever new
    elements must not grow it without end)."""
    for f in fields(stats):
        value = getattr(stats, f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            total[f.name] += value
    add_names(names, stats.unknown_element_names)


def add_names(names: set[str], more: Iterable[str]) -> None:
    """Add ``more`` unknown element names into ``names`` while it holds fewer than
    `MAX_UNKNOWN_NAMES` (the summary then says it names only the first ones)."""
    for name in more:
        if len(names) >= MAX_UNKNOWN_NAMES:
            break
        names.add(name)


def exporter_address(key: str) -> str:
    """The exporter's address in a listener's session key (``udp 10.0.0.1:4739``,
    ``tcp [::1]:52011``): the key without its scheme and port."""
    host = key.rpartition(" ")[2].rpartition(":")[0]
    return host[1:-1] if host.startswith("[") else host


class Monitor:
    """Counts problems and sessions; thread-safe (file inputs report from their own thread)."""

    def __init__(self, max_exporters: int = DEFAULT_MAX_EXPORTERS) -> None:
        self.problems: Counter[str] = Counter()  # kind -> occurrences
        self.input_errors: list[str] = []  # inputs that broke off (finite inputs)
        self.max_exporters = max_exporters
        # exporter or session key -> the kinds of problem logged for it; a session's entry goes
        # when the session ends, so that exporters reconnecting for ever do not grow it
        self._logged: dict[str, set[str]] = {}
        self._live: dict[tuple[str, str], str] = {}  # (input, session key) -> exporter label
        self._labels: set[str] = set()  # exporters with a label of their own
        self.exporters_seen = 0
        self._ended: dict[tuple[str, str], Counter[str]] = {}  # (input, exporter label) -> counters
        self._ended_names: set[str] = set()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- problems

    def report(self, exporter: str, kind: str, message: str) -> None:
        """Counts one problem of ``kind``; logs it if it is the first of its kind from
        ``exporter``, saying that later ones are only counted."""
        with self._lock:
            self.problems[kind] += 1
            logged = self._logged.setdefault(exporter, set())
            first = kind not in logged
            logged.add(kind)
        if first:
            level = logging.WARNING if kind in WARNING_KINDS else logging.ERROR
            log.log(level, "%s: %s (further %r problems from %s are counted, not logged)",
                    exporter, message, kind, exporter)

    def input_error(self, text: str) -> None:
        """A finite input stopped early (``text`` names it and says why)."""
        with self._lock:
            self.input_errors.append(text)
        log.error("%s", text)

    def observe(self, batch: Batch) -> None:
        """Looks at a batch's events (every one at debug level; malformed sets are reported)
        and at its error, before the batch is queued."""
        for event in batch.events:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s: %s", batch.source, describe_event(event))
            if isinstance(event, MalformedSet):
                self.report(batch.source, "malformed set", f"set {event.set_id} of domain "
                            f"{event.observation_domain_id}: {event.error}")
        if batch.error:
            self.input_error(batch.error)

    # ---------------------------------------------------------------- sessions

    def session_started(self, key: str, input_name: str = "") -> None:
        """A transport session of ``input_name`` started; ``key`` names it in logs."""
        address = exporter_address(key)
        with self._lock:
            if address not in self._labels and len(self._labels) < self.max_exporters:
                self._labels.add(address)
            self._live[input_name, key] = address if address in self._labels else OTHER_EXPORTERS
            self.exporters_seen += 1
        log.info("%s: session started", key)

    def session_ended(self, key: str, stats: SessionStats, input_name: str = "") -> None:
        """The session ``key`` ended: its counters move into the totals of its exporter."""
        with self._lock:
            label = self._live.pop((input_name, key), OTHER_EXPORTERS)
            self._logged.pop(key, None)
            add_stats(self._ended.setdefault((input_name, label), Counter()), self._ended_names, stats)
        log.info("%s: session ended (%d records)", key, stats.records)

    def exporter_label(self, key: str, input_name: str = "") -> str:
        """The exporter label of the open session ``key`` of ``input_name``."""
        with self._lock:
            return self._live.get((input_name, key), OTHER_EXPORTERS)

    @property
    def exporters(self) -> int:
        """Transport sessions open now."""
        return len(self._live)

    def totals(self, live: Iterable[SessionStats]) -> tuple[Counter[str], set[str]]:
        """Session counters summed over ``live`` sessions and every session that ended."""
        total: Counter[str] = Counter()
        names: set[str] = set()
        with self._lock:
            for counters in self._ended.values():
                total.update(counters)
            names.update(self._ended_names)
        for stats in live:
            add_stats(total, names, stats)
        return total, names

    def ended_by_exporter(self) -> dict[tuple[str, str], Counter[str]]:
        """The counters of ended sessions, by (input, exporter label)."""
        with self._lock:
            return {k: Counter(v) for k, v in self._ended.items()}


@dataclass
class RunSummary:
    """What a run did: the numbers for the final summary and the exit status."""

    inputs: int = 0
    records: int = 0  # accepted into the delivery queue
    dropped: int = 0  # UDP records refused by a full queue
    exporters: int = 0
    counters: Counter[str] = field(default_factory=Counter[str])
    unknown_elements: set[str] = field(default_factory=set)
    problems: Counter[str] = field(default_factory=Counter[str])
    input_errors: list[str] = field(default_factory=list)
    sinks: list[SinkReport] = field(default_factory=list)
    stopped_by_signal: bool = False
    #: worker processes (--workers N) that died instead of draining, each as "worker K (pid P)
    #: was killed by SIGKILL"; their undelivered records are counted for each sink
    worker_deaths: list[str] = field(default_factory=list)

    @property
    def output_closed(self) -> bool:
        """A sink's reader went away (standard output closed by ``| head``): a quiet stop."""
        return any(s.output_closed for s in self.sinks)

    @property
    def sink_failed(self) -> bool:
        """A sink failed for a reason of its own (see `SinkReport.failed`)."""
        return any(s.failed for s in self.sinks)

    def lines(self) -> list[str]:
        c = self.counters
        inputs = f"{self.inputs} input" + ("" if self.inputs == 1 else "s")
        gaps = f"{c['sequence_gaps']} sequence gaps"
        if c["missing_records"]:
            gaps += f" ({c['missing_records']} records missing)"
        if c["out_of_order"]:
            gaps += f", {c['out_of_order']} out of order"
        # Sets that waited for a template and were dropped: the buffer was full, or the session
        # ended first. Their records are lost, though not counted (the template says how many).
        dropped = f" ({c['pending_dropped_sets']} never decoded)" if c["pending_dropped_sets"] else ""
        out = [
            f"{PROG}: {inputs}: {self.records} records, {c['messages']} messages, {c['octets']} bytes",
            f"{PROG}: {c['malformed_messages']} decode errors, {c['malformed_sets']} malformed sets, "
            f"{c['missing_template_sets']} missing-template sets{dropped}, {gaps}",
        ]
        if self.exporters:
            out.append(f"{PROG}: {self.exporters} exporter session(s)")
        other = {k: n for k, n in self.problems.items() if k != "malformed set"}
        if other:
            out.append(f"{PROG}: problems: " + ", ".join(f"{n} {k}" for k, n in sorted(other.items())))
        if self.dropped:
            out.append(f"{PROG}: {self.dropped} UDP records dropped: the delivery queue was full")
        out += [f"{PROG}: {_sink_summary(s)}" for s in self.sinks]
        if self.unknown_elements:
            names = sorted(self.unknown_elements)
            count = f"{len(names)} unknown element(s)" if len(names) < MAX_UNKNOWN_NAMES else \
                f"{len(names)} or more unknown elements (the first {len(names)} named)"
            out.append(f"{PROG}: {count}, decoded as octetArray: " + ", ".join(names))
        if self.input_errors:
            out.append(f"{PROG}: {len(self.input_errors)} input(s) with errors (see above)")
        if self.worker_deaths:
            n = len(self.worker_deaths)
            out.append(f"{PROG}: {n} worker process{'es' if n > 1 else ''} died instead of draining "
                       "(see above); what they had not delivered is counted as NOT delivered")
        return out


def _sink_summary(sink: SinkReport) -> str:
    if sink.output_closed:
        return f"{sink.name} was closed by its reader after {sink.delivered} records; stopped early"
    text = f"{sink.name}: {sink.delivered} records delivered"
    if sink.undelivered:
        text += f", {sink.undelivered} NOT delivered"
    if sink.failed:
        text += ": it failed (see above)"
    counters = {k: v for k, v in sink.counters.items() if v}
    if counters:
        text += " (" + ", ".join(f"{k}={v}" for k, v in counters.items()) + ")"
    return text


def _sink_status(sink: SinkReport) -> str:
    parts = [f"{sink.name}: {sink.delivered} delivered"]
    if sink.undelivered:
        parts.append(f"{sink.undelivered} undelivered")
    if sink.failed:
        parts.append("FAILED")
    elif not sink.ready and sink.error is None:
        parts.append("not ready")
    text = ", ".join(parts)
    if sink.counters:
        text += " (" + " ".join(f"{k}={v}" for k, v in sink.counters.items()) + ")"
    return text


class StatusLine:
    """Builds the periodic status line: totals, and rates since the previous line."""

    def __init__(self) -> None:
        self._last_time = time.monotonic()
        self._last_records = 0

    def line(self, pipeline: PipelineStats, counters: Counter[str], exporters: int, problems: Counter[str]) -> str:
        now = time.monotonic()
        elapsed = max(now - self._last_time, 1e-9)
        rate = (pipeline.accepted - self._last_records) / elapsed
        self._last_time, self._last_records = now, pipeline.accepted
        # Decode errors are in the sessions' counters; connection-level ones only in problems.
        errors = counters["malformed_messages"] + counters["malformed_sets"] + sum(
            problems[k] for k in CONNECTION_KINDS)
        parts = [
            f"{plural(pipeline.accepted, 'record')} ({rate:.0f}/s)",
            plural(exporters, "exporter"),
            f"{plural(counters['sequence_gaps'], 'sequence gap')} "
            f"({plural(counters['missing_records'], 'record')} missing)",
            f"{pipeline.refused} dropped",
            plural(errors, "error"),
            f"queue {pipeline.queued}/{pipeline.capacity}",
        ]
        if problems["refused"]:
            parts.append(f"{problems['refused']} refused")
        return "; ".join(["status: " + ", ".join(parts), *map(_sink_status, pipeline.sinks)])
