"""Running a session on hostile input, and checking that it told a consistent story.

Shared by the mutation fuzzing (``test_fuzz.py``) and the coverage-guided harness
(``tests/fuzz/``): :func:`feed_stream` and :func:`feed_datagrams` drive a :class:`Session` and
let only :class:`DecodeError` out (any other exception propagates: that is the finding), while
checking after every call that the counters only grew and that error offsets lie in the input;
:func:`check_consistent` then checks that the events and the stats counters agree, that the
framing errors were counted, and that every record is whole and JSON-ready.

Under hypothesis each call runs under an alarm (:func:`watchdog`); the coverage-guided harness
turns it off, because libFuzzer's own ``-timeout`` uses the same SIGALRM.
"""

from __future__ import annotations

import functools
import signal
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import orjson

from ipfix_antrea import DecodeError, MalformedSet, Record, Session

EVENT_COUNTERS = {
    "TemplateAdded": "templates_added",
    "TemplateRedefined": "templates_redefined",
    "TemplateWithdrawn": "templates_withdrawn",
    "TemplateExpired": "templates_expired",
    "UnknownElement": "unknown_elements",
    "InvalidFieldLength": "invalid_field_lengths",
    "MalformedSet": "malformed_sets",
    "MissingTemplate": "missing_template_sets",
    "PendingSetDropped": "pending_dropped_sets",
    "SequenceGap": "sequence_gaps",
    "SequenceOutOfOrder": "out_of_order",
    "NonZeroPadding": "nonzero_padding",
}
COUNTERS = ("messages", "octets", "records", "options_records", "malformed_messages",
            "pending_decoded_sets", "missing_records", *EVENT_COUNTERS.values())


# -- running, with a watchdog ------------------------------------------------------------------


class Hang(BaseException):
    """Raised by the alarm; a BaseException so that no `except Exception` can swallow it."""


@contextmanager
def watchdog(seconds: float | None = 10.0) -> Iterator[None]:
    """Raises :class:`Hang` in the block after ``seconds`` (None: no alarm)."""
    if seconds is None:
        yield
        return

    def fire(signum: int, frame: Any) -> None:
        raise Hang(f"decoder call still running after {seconds} s")
    previous = signal.signal(signal.SIGALRM, fire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclass
class Run:
    """What a session returned and raised, and everything it reported."""

    session: Session
    #: Seconds each call may take before :class:`Hang`; None: no alarm (libFuzzer has its own).
    alarm: float | None = 10.0
    records: list[Record] = field(default_factory=list)
    errors: list[DecodeError] = field(default_factory=list)
    framing_errors: int = 0  # errors that should each count one malformed message
    events: list[Any] = field(default_factory=list)
    fed: int = 0  # octets handed over, for offset bounds

    def call(self, fn: Callable[[bytes], list[Record]], data: bytes,
             counts_as_framing: bool = True) -> None:
        before = snapshot(self.session)
        with watchdog(self.alarm):
            try:
                self.records += fn(data)
            except DecodeError as exc:  # the only exception allowed out
                self.records += exc.records
                self.errors.append(exc)
                self.framing_errors += counts_as_framing
                assert exc.offset is None or 0 <= exc.offset <= max(self.fed + len(data), 0)
        self.fed += len(data)
        after = snapshot(self.session)
        for name in COUNTERS:  # counters only grow
            assert after[name] >= before[name], name
        self.events += self.session.take_events()


def snapshot(session: Session) -> dict[str, int]:
    return {name: getattr(session.stats, name) for name in COUNTERS}


def feed_stream(chunks: list[bytes], session: Session | None = None,
                alarm: float | None = 10.0) -> Run:
    """Feeds ``chunks`` as one stream, then says it has ended."""
    run = Run(session or Session(), alarm)
    for chunk in chunks:
        broken = bool(run.errors)
        run.call(run.session.feed, chunk, counts_as_framing=not broken)
        if broken:  # once framing is lost, the session refuses further stream data
            assert len(run.errors) >= 2 and run.errors[-1].records == []
    if not run.errors:
        buffered = run.session.buffered
        run.call(lambda _: run.session.end_of_stream() or [], b"")
        assert bool(run.errors) == (buffered > 0)
    return run


def feed_datagrams(datagrams: list[bytes], session: Session | None = None,
                   alarm: float | None = 10.0, clock: list[float] | None = None) -> Run:
    """Decodes each datagram; ``clock[i]`` (if given) is the time datagram ``i`` arrived."""
    run = Run(session or Session(), alarm)
    for i, datagram in enumerate(datagrams):
        run.fed = 0  # offsets are relative to each datagram
        now = None if clock is None else clock[i]
        run.call(functools.partial(run.session.decode_datagram, now=now), datagram)
    return run


def check_consistent(run: Run) -> None:
    """The events and the counters tell the same story, and every record is whole."""
    stats = run.session.stats
    kinds = Counter(type(e).__name__ for e in run.events)
    for event_name, counter in EVENT_COUNTERS.items():
        assert kinds.pop(event_name, 0) == getattr(stats, counter), (event_name, counter)
    assert not kinds, f"events without a counter: {kinds}"
    assert stats.missing_records == sum(e.missing for e in run.events
                                        if type(e).__name__ == "SequenceGap")
    assert stats.unknown_element_names == {e.name for e in run.events
                                           if type(e).__name__ == "UnknownElement"}
    assert stats.malformed_messages == run.framing_errors
    assert stats.pending_decoded_sets + stats.pending_dropped_sets <= stats.missing_template_sets
    assert stats.records == len(run.records)
    assert stats.options_records == sum(1 for r in run.records if r.is_options)
    assert stats.octets >= 16 * stats.messages
    for event in run.events:
        if isinstance(event, MalformedSet):
            assert isinstance(event.error, DecodeError)
    for record in run.records:
        assert isinstance(record, Record)
        assert len(record.values) == len(record.template.fields)
        orjson.dumps(record.to_dict())  # still JSON-ready, whatever the octets were


