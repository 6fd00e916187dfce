"""The supervisor's sums of its workers' numbers (`ipfix_antrea.totals`)."""

from __future__ import annotations

from collections import Counter

from ipfix_antrea.channel import WorkerReport
from ipfix_antrea.monitor import RunSummary
from ipfix_antrea.pipeline import PipelineStats
from ipfix_antrea.service import ServiceSnapshot
from ipfix_antrea.session import MAX_UNKNOWN_NAMES
from ipfix_antrea.totals import ExporterLabels, combine


def worker_report(records: int, unknown: set[str]) -> WorkerReport:
    snapshot = ServiceSnapshot(PipelineStats(accepted=records), [], Counter(), 0, True)
    summary = RunSummary(records=records, counters=Counter(unknown_elements=len(unknown)),
                         unknown_elements=unknown)
    return WorkerReport(snapshot, summary, (True, []), (True, "ok"), 0)


def test_the_workers_unknown_names_are_kept_up_to_the_bound_of_one_collector_and_all_are_counted():
    reports = [worker_report(10, {f"en{w}:id{i}" for i in range(1, MAX_UNKNOWN_NAMES)}) for w in range(3)]
    total = combine(reports, [], ExporterLabels(10))
    assert len(total.summary.unknown_elements) == MAX_UNKNOWN_NAMES
    assert total.summary.counters["unknown_elements"] == 3 * (MAX_UNKNOWN_NAMES - 1)
    assert total.summary.records == 30 and total.snapshot.pipeline.accepted == 30
