"""The monitor's totals and the summary: bounded however many exporters come and go."""

from __future__ import annotations

from ipfix_antrea.monitor import Monitor, RunSummary
from ipfix_antrea.session import MAX_UNKNOWN_NAMES, SessionStats


def test_unknown_names_of_ended_sessions_are_kept_up_to_a_bound_and_every_one_is_counted():
    monitor = Monitor()
    for n in range(3):
        key = f"udp 10.0.0.{n}:4739"
        monitor.session_started(key, "udp://0.0.0.0:4739")
        names = {f"en{n}:id{i}" for i in range(1, MAX_UNKNOWN_NAMES + 1)}
        monitor.session_ended(key, SessionStats(unknown_elements=len(names), unknown_element_names=names),
                              "udp://0.0.0.0:4739")
    counters, names = monitor.totals(())
    assert counters["unknown_elements"] == 3 * MAX_UNKNOWN_NAMES
    assert len(names) == MAX_UNKNOWN_NAMES


def test_summary_says_when_there_were_more_unknown_names_than_it_names():
    few = RunSummary(unknown_elements={"en1:id1", "en1:id2"}).lines()
    many = RunSummary(unknown_elements={f"en1:id{i}" for i in range(1, MAX_UNKNOWN_NAMES + 1)}).lines()
    assert any(line.startswith("ipfix-collect: 2 unknown element(s), decoded as octetArray: en1:id1, en1:id2")
               for line in few)
    assert any(f"{MAX_UNKNOWN_NAMES} or more unknown elements (the first {MAX_UNKNOWN_NAMES} named)" in line
               for line in many)


def test_a_session_that_ended_is_forgotten_by_the_once_per_session_log(caplog):
    # Exporters that reconnect for ever (a new session key each time) must not grow what the
    # monitor remembers; a key that comes back after its session ended is a new session.
    monitor = Monitor()
    key = "tcp 10.0.0.1:40000"
    for _ in range(2):
        monitor.session_started(key, "tcp://0.0.0.0:4739")
        monitor.report(key, "stream not IPFIX", "closing the connection")
        monitor.report(key, "stream not IPFIX", "closing the connection")
        monitor.session_ended(key, SessionStats(), "tcp://0.0.0.0:4739")
    assert [r.getMessage() for r in caplog.records].count(
        f"{key}: closing the connection (further 'stream not IPFIX' problems from {key} are counted, "
        "not logged)") == 2
    assert monitor.problems["stream not IPFIX"] == 4
