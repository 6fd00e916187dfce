"""The coverage-guided fuzz targets: bytes in, a session run and checked, nothing else out.

Each target takes one fuzzer input: ``CONTROL`` octets that seed a ``random.Random`` (how the rest
is cut into chunks or datagrams, the clock, the session's bounds), then the IPFIX octets. A
target returns normally when the session let only :class:`~ipfix_antrea.DecodeError` out and told
a consistent story (``session_checks``); anything else escapes, and the fuzzer reports the input.
Every choice comes from the input, so an input always replays the same way.

``stream``: ``Session.feed`` in random chunks, then ``end_of_stream``; it must decode exactly
what the same octets decode in one chunk (the same records and counters: feed's promise of "any
split"). ``datagram``: the octets cut into datagrams where each message header says its message
ends (now and then two messages in one datagram), decoded by ``Session.decode_datagram`` with a
clock that steps past the template lifetime now and then.

The functions need no atheris, so pytest replays the seeds and the regressions through them
(``tests/test_fuzz_targets.py``); ``fuzz_session.py`` runs them under atheris. To replay an input
that the fuzzer reported (hex, as ``.ci/fuzz.sh`` logs it)::

    python3 tests/fuzz/targets.py stream 00000000000a0010...
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Callable
from pathlib import Path

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: session_checks

from session_checks import Run, check_consistent, feed_datagrams, feed_stream

from ipfix_antrea import Record, Session

#: Octets in front of the IPFIX octets that steer the run.
CONTROL = 4


def _session(rng: random.Random, **kw: float | None) -> Session:
    """A session with the default bounds, or now and then with tight ones, so that the
    pending-set drops and the template-size cap are reached too."""
    tight = rng.random() < 0.25
    return Session(max_pending_sets=2 if tight else 256,
                   max_pending_octets=64 if tight else 1 << 20,
                   max_template_fields=8 if tight else None, **kw)


def stream(data: bytes) -> None:
    """``Session.feed`` in random chunks agrees with one chunk, and stays consistent."""
    rng = random.Random(data[:CONTROL])
    octets = data[CONTROL:]
    seed = rng.random()
    cuts = sorted(rng.randrange(len(octets) + 1) for _ in range(rng.randrange(8)))
    chunks = [octets[a:b] for a, b in zip([0, *cuts], [*cuts, len(octets)], strict=True)]
    split = feed_stream(chunks, _session(random.Random(seed)), alarm=None)
    check_consistent(split)
    whole = feed_stream([octets], _session(random.Random(seed)), alarm=None)
    assert _summary(split) == _summary(whole), "a split changed what the stream decodes to"


def datagram(data: bytes) -> None:
    """``Session.decode_datagram`` on the messages one by one, with a clock."""
    rng = random.Random(data[:CONTROL])
    octets = data[CONTROL:]
    lifetime = rng.choice([None, 0.0, 5.0, 1800.0])
    datagrams: list[bytes] = []
    clock: list[float] = []
    now = 0.0
    pos = 0
    while pos < len(octets):
        end = _message_end(octets, pos)
        if rng.random() < 0.125:  # two messages back to back in one datagram
            end = _message_end(octets, end)
        datagrams.append(octets[pos:end])
        now += rng.choice([0.0, 0.0, 1.0, 6.0, 1801.0])
        clock.append(now)
        pos = end
    run = feed_datagrams(datagrams, _session(rng, template_lifetime=lifetime), alarm=None,
                         clock=clock)
    check_consistent(run)


def _message_end(octets: bytes, pos: int) -> int:
    """Where the message at ``pos`` says it ends (at least one octet on; the end at most)."""
    if len(octets) - pos < 4:
        return len(octets)
    (length,) = struct.unpack_from(">H", octets, pos + 2)
    return min(pos + max(length, 1), len(octets))


def _summary(run: Run) -> tuple[object, ...]:
    """What a run decoded, comparable across runs (NaN-safe: values as rendered JSON)."""
    first_error = (run.errors[0].offset, run.errors[0].reason) if run.errors else None
    return (run.session.stats, [_record(r) for r in run.records], first_error)


def _record(r: Record) -> tuple[object, ...]:
    return (r.observation_domain_id, r.template_id, r.export_time, r.sequence_number,
            orjson.dumps(r.to_dict()))


TARGETS: dict[str, Callable[[bytes], None]] = {"stream": stream, "datagram": datagram}


if __name__ == "__main__":
    TARGETS[sys.argv[1]](bytes.fromhex(sys.argv[2]))
    print("no finding")
