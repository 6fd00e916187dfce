"""The numbers of several worker processes as one collector's (`ipfix-collect --workers N`).

Each worker reports what a collector alone would show (`ipfix_antrea.channel.WorkerReport`);
the supervisor adds them up here, for its status line, its metrics and its summary, so that
these read as they do without workers: records, drops, session counters and problems are sums;
each sink's delivered and undelivered records are sums over the workers' instances of that sink
(which have one name, or the spec's when they differ: `jsonl:flows-w0.jsonl`,
`jsonl:flows-w1.jsonl` -> `jsonl:flows.jsonl`); a sink failed if it failed in any worker, and is
ready when it is in every one.

Every counter only grows, also across restarts: a worker process that is gone leaves its last
numbers in the totals (`ended`), with its levels (queue, open sessions, templates held, records
in flight) at zero, and when it died rather than ended, what it had accepted but not delivered
to a sink counted as undelivered for that sink, since nobody will deliver it now. Combining is
associative, so the supervisor folds the incarnations that ended into one report per worker.

Exporter labels are bounded again (`ExporterLabels`): each worker gives labels to the first
--metrics-exporters exporters it sees, and the supervisor keeps the first --metrics-exporters of
those, for good, and counts every other as "other".
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace

from .channel import WorkerReport
from .monitor import OTHER_EXPORTERS, RunSummary, add_names
from .pipeline import PipelineStats, SinkReport
from .service import InputSnapshot, ServiceSnapshot
from .sinks import SINK_GAUGES, HistogramSnapshot

__all__ = ["ExporterLabels", "combine", "ended"]


class ExporterLabels:
    """The first ``maximum`` exporter labels seen keep theirs for good; later ones are "other"."""

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        self._kept: set[str] = set()

    def __call__(self, label: str) -> str:
        if label in ("", OTHER_EXPORTERS) or label in self._kept:
            return label
        if len(self._kept) < self.maximum:
            self._kept.add(label)
            return label
        return OTHER_EXPORTERS


def combine(reports: Sequence[WorkerReport], sink_names: Sequence[str], labels: ExporterLabels) -> WorkerReport:
    """``reports`` as the report of one collector; ``sink_names`` name the sinks whose workers'
    names differ (the specs as given)."""
    snaps = [r.snapshot for r in reports]
    summaries = [r.summary for r in reports]
    snapshot = ServiceSnapshot(_pipeline([s.pipeline for s in snaps], sink_names), _inputs(snaps, labels),
                               _sum(s.problems for s in snaps), sum(s.exporters_seen for s in snaps),
                               all(s.ready for s in snaps), sum(s.worker_deaths for s in snaps))
    summary = RunSummary(
        inputs=max((s.inputs for s in summaries), default=0), records=sum(s.records for s in summaries),
        dropped=sum(s.dropped for s in summaries), exporters=sum(s.exporters for s in summaries),
        counters=_sum(s.counters for s in summaries),
        unknown_elements=_names(s.unknown_elements for s in summaries),
        problems=_sum(s.problems for s in summaries),
        input_errors=[e for s in summaries for e in s.input_errors],
        sinks=_sinks([s.sinks for s in summaries], sink_names),
        stopped_by_signal=any(s.stopped_by_signal for s in summaries),
        worker_deaths=[d for s in summaries for d in s.worker_deaths])
    ready = all(r.readiness[0] for r in reports)
    alive = all(r.liveness[0] for r in reports)
    return WorkerReport(snapshot, summary, (ready, [line for r in reports for line in r.readiness[1]]),
                        (alive, "; ".join(r.liveness[1] for r in reports if not r.liveness[0]) or "ok"),
                        sum(r.open_sessions for r in reports))


def ended(report: WorkerReport, *, died: bool) -> WorkerReport:
    """What a worker process that is gone leaves in the totals (see the module comment):
    counters as they were, levels at zero, and when it ``died``, each sink's unsettled records
    (accepted, neither delivered nor undelivered yet) as undelivered."""
    snap, summary = report.snapshot, report.summary
    pipeline = replace(snap.pipeline, queued=0, capacity=0,
                       sinks=tuple(_settled(s, snap.pipeline.accepted, died) for s in snap.pipeline.sinks))
    inputs = [replace(i, templates={}, sessions=0) for i in snap.inputs]
    summary = replace(summary, sinks=[_settled(s, summary.records, died) for s in summary.sinks])
    return WorkerReport(replace(snap, pipeline=pipeline, inputs=inputs, ready=True), summary, (True, []),
                        (True, "ok"), 0)


def _settled(sink: SinkReport, accepted: int, died: bool) -> SinkReport:
    unsettled = max(accepted - sink.delivered - sink.undelivered, 0) if died else 0
    return replace(sink, undelivered=sink.undelivered + unsettled, ready=True,
                   counters={k: 0 if k in SINK_GAUGES else v for k, v in sink.counters.items()})


def _names(per_worker: Iterable[set[str]]) -> set[str]:
    """The workers' unknown element names, bounded as each worker's are (`add_names`)."""
    names: set[str] = set()
    for more in per_worker:
        add_names(names, more)
    return names


def _sum(counters: Iterable[Counter[str]]) -> Counter[str]:
    total: Counter[str] = Counter()
    for c in counters:
        total.update(c)
    return total


def _pipeline(stats: Sequence[PipelineStats], sink_names: Sequence[str]) -> PipelineStats:
    return PipelineStats(sum(s.accepted for s in stats), sum(s.refused for s in stats),
                         sum(s.queued for s in stats), sum(s.capacity for s in stats),
                         tuple(_sinks([s.sinks for s in stats], sink_names)))


def _sinks(per_worker: Sequence[Sequence[SinkReport]], sink_names: Sequence[str]) -> list[SinkReport]:
    """Sink i of every worker as one sink (every worker opens the same sinks, in order)."""
    out = []
    for i, fallback in enumerate(sink_names):
        same = [sinks[i] for sinks in per_worker if i < len(sinks)]
        if not same:
            continue
        names = {s.name for s in same}
        counters: Counter[str] = Counter()
        for s in same:
            counters.update(s.counters)
        histograms: dict[str, HistogramSnapshot] = {}
        for s in same:
            for name, h in s.histograms.items():
                histograms[name] = _histogram(histograms[name], h) if name in histograms else h
        out.append(SinkReport(
            names.pop() if len(names) == 1 else fallback, sum(s.delivered for s in same),
            sum(s.undelivered for s in same), next((s.error for s in same if s.error), None),
            any(s.output_closed for s in same), all(s.ready for s in same),
            dict(counters), histograms))
    return out


def _histogram(a: HistogramSnapshot, b: HistogramSnapshot) -> HistogramSnapshot:
    if a.bounds != b.bounds:  # the same sink in every worker: the same buckets
        raise ValueError(f"histograms with different buckets: {a.bounds} and {b.bounds}")
    return HistogramSnapshot(a.bounds, tuple(x + y for x, y in zip(a.counts, b.counts, strict=True)), a.total + b.total)


def _inputs(snaps: Sequence[ServiceSnapshot], labels: ExporterLabels) -> list[InputSnapshot]:
    inputs: dict[str, InputSnapshot] = {}
    for snap in snaps:
        for i in snap.inputs:
            total = inputs.setdefault(i.name, InputSnapshot(i.name))
            for label, counters in i.counters.items():
                total.counters.setdefault(labels(label), Counter()).update(counters)
            for label, n in i.templates.items():
                label = labels(label)
                total.templates[label] = total.templates.get(label, 0) + n
            total.sessions += i.sessions
            total.dropped += i.dropped
    return list(inputs.values())
