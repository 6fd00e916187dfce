# What the collector tells its operator: problems (counted, logged once per kind and exporter),
# the periodic one-line status, and the summary at the end.
#
# Every problem with an exporter's input -- malformed messages and sets, a stream that cannot be
# framed, a failed TLS handshake, a refused exporter, dropped datagrams -- goes through `report`,
# which counts it by kind and logs only the first of each kind per exporter: an exporter that
# sends garbage ten thousand times a second produces one log line and a counter, and cannot drown
# what other exporters' problems say. Counters of the decoding sessions (`SessionStats`) are
# summed over live sessions and those that ended (`session_ended` folds them into the totals), so
# the numbers only grow, however many exporters come and go.
from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING

from .events import MalformedSet

if TYPE_CHECKING:
    from .events import Event
    from .inputs import Batch
    from .pipeline import PipelineStats
    from .session import SessionStats

__all__ = ["Monitor", "RunSummary", "describe_event", "PROG"]

PROG = "ipfix-collect"
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


def add_stats(total: Counter, names: set[str], stats: SessionStats) -> None:
    """Add one SessionStats into ``total``: every integer counter, and the unknown names."""
    for f in fields(stats):
        value = getattr(stats, f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            total[f.name] += value
    names.update(stats.unknown_element_names)


class Monitor:
    """Counts problems and sessions; thread-safe (file inputs report from their own thread)."""

    def __init__(self) -> None:
        self.problems: Counter[str] = Counter()  # kind -> occurrences
        self.input_errors: list[str] = []  # inputs that broke off (finite inputs)
        self._logged: set[tuple[str, str]] = set()
        self._live: set[str] = set()
        self.exporters_seen = 0
        self._ended = Counter()
        self._ended_names: set[str] = set()
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- problems

    def report(self, exporter: str, kind: str, message: str) -> None:
        """Counts one problem of ``kind``; logs it if it is the first of its kind from
        ``exporter``, saying that later ones are only counted."""
        with self._lock:
            self.problems[kind] += 1
            first = (exporter, kind) not in self._logged
            if first:
                self._logged.add((exporter, kind))
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

    def session_started(self, key: str) -> None:
        with self._lock:
            self._live.add(key)
            self.exporters_seen += 1
        log.info("%s: session started", key)

    def session_ended(self, key: str, stats: SessionStats) -> None:
        with self._lock:
            self._live.discard(key)
            add_stats(self._ended, self._ended_names, stats)
        log.info("%s: session ended (%d records)", key, stats.records)

    @property
    def exporters(self) -> int:
        """Transport sessions open now."""
        return len(self._live)

    def totals(self, live: Iterable[SessionStats]) -> tuple[Counter, set[str]]:
        """Session counters summed over ``live`` sessions and every session that ended."""
        with self._lock:
            total, names = Counter(self._ended), set(self._ended_names)
        for stats in live:
            add_stats(total, names, stats)
        return total, names


@dataclass
class RunSummary:
    """What a run did: the numbers for the final summary and the exit status."""

    inputs: int = 0
    records: int = 0  # accepted into the delivery queue
    delivered: int = 0
    undelivered: int = 0
    dropped: int = 0  # UDP records refused by a full queue
    exporters: int = 0
    counters: Counter = field(default_factory=Counter)
    unknown_elements: set[str] = field(default_factory=set)
    problems: Counter = field(default_factory=Counter)
    input_errors: list[str] = field(default_factory=list)
    sink_error: str | None = None
    stopped_by_signal: bool = False
    output_closed: bool = False

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
        if self.undelivered:
            out.append(f"{PROG}: {self.undelivered} records NOT delivered: a sink failed (see above)")
        if self.unknown_elements:
            names = sorted(self.unknown_elements)
            out.append(f"{PROG}: {len(names)} unknown element(s), decoded as octetArray: " + ", ".join(names))
        if self.input_errors:
            out.append(f"{PROG}: {len(self.input_errors)} input(s) with errors (see above)")
        if self.output_closed:
            out.append(f"{PROG}: standard output was closed; stopped early")
        return out


class StatusLine:
    """Builds the periodic status line: totals, and rates since the previous line."""

    def __init__(self) -> None:
        self._last_time = time.monotonic()
        self._last_records = 0

    def line(self, pipeline: PipelineStats, counters: Counter, exporters: int, problems: Counter,
             sink_stats: dict | None) -> str:
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
            f"{plural(counters['sequence_gaps'], 'sequence gap')} ({plural(counters['missing_records'], 'record')} missing)",
            f"{pipeline.refused} dropped",
            plural(errors, "error"),
            f"queue {pipeline.queued}/{pipeline.capacity}",
        ]
        if problems["refused"]:
            parts.append(f"{problems['refused']} refused")
        if pipeline.undelivered:
            parts.append(f"{pipeline.undelivered} undelivered")
        if sink_stats:
            parts.append("sink " + " ".join(f"{k}={v}" for k, v in sink_stats.items()))
        return "status: " + ", ".join(parts)
