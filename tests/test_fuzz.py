"""Malformed input: only DecodeError escapes, nothing hangs, and bad sets do not take good ones down.

Two halves. The property half takes valid streams from ``strategies.stream_plans`` (every type,
lists, options templates, unknown elements), mutates them (bit flips, byte replacements,
truncation, inserted and deleted octets, message and set lengths set to 0/1/.../0xFFFF, field
counts inflated, template field lengths rewritten, variable-length prefixes sent past their set,
set ids changed, messages shortened with a consistent header) and feeds the result to
``Session.feed`` (in random chunks) and ``Session.decode_datagram``. Every call runs under an
alarm and the hypothesis deadline; afterwards the events and the stats counters must tell the
same story (``session_checks``, shared with the coverage-guided harness in ``tests/fuzz/``).
The explicit half replays the go-ipfix malformed vectors (vmware/go-ipfix
pkg/collector/process_test.go) and hand-made framing cases, each checking the error, its offset
and the counters.
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from session_checks import check_consistent, feed_datagrams, feed_stream
from strategies import StreamPlan, assert_same, schemas, splits, stream_plans

from ipfix_antrea import (
    DecodeError,
    Encoder,
    MalformedSet,
    NonZeroPadding,
    Session,
    Template,
)

FUZZ = settings(deadline=2000, max_examples=120,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
#: Streams small enough that one example decodes in milliseconds.
SMALL_STREAMS = stream_plans(schemas(max_templates=3, max_fields=5), max_calls=3, max_records=3)

# -- where the length-bearing fields of a valid stream are --------------------------------------


@dataclass
class Layout:
    messages: list[tuple[int, int]] = field(default_factory=list)  # (start, end)
    sets: list[tuple[int, int]] = field(default_factory=list)
    msg_len: list[int] = field(default_factory=list)  # offsets of u16 fields
    set_len: list[int] = field(default_factory=list)
    set_id: list[int] = field(default_factory=list)
    field_count: list[int] = field(default_factory=list)
    scope_count: list[int] = field(default_factory=list)
    field_length: list[int] = field(default_factory=list)
    varlen: list[int] = field(default_factory=list)  # first octet of a varlen prefix


def layout(octets: bytes, templates: dict[int, Template]) -> Layout:
    out = Layout()
    pos = 0
    while pos < len(octets):
        length = struct.unpack_from(">H", octets, pos + 2)[0]
        out.messages.append((pos, pos + length))
        out.msg_len.append(pos + 2)
        s = pos + 16
        while s < pos + length:
            set_id, set_length = struct.unpack_from(">HH", octets, s)
            out.sets.append((s, s + set_length))
            out.set_id.append(s)
            out.set_len.append(s + 2)
            r, end = s + 4, s + set_length
            if set_id in (2, 3):
                while r < end:
                    count = struct.unpack_from(">H", octets, r + 2)[0]
                    out.field_count.append(r + 2)
                    r += 4
                    if set_id == 3:
                        out.scope_count.append(r)
                        r += 2
                    for _ in range(count):
                        out.field_length.append(r + 2)
                        r += 8 if octets[r] & 0x80 else 4
            else:
                fields = templates[set_id].fields
                while r < end:
                    for spec in fields:
                        if spec.is_variable:
                            out.varlen.append(r)
                            n = octets[r]
                            if n < 255:
                                r += 1 + n
                            else:
                                r += 3 + struct.unpack_from(">H", octets, r + 1)[0]
                        else:
                            r += spec.length
            assert r == end
            s = end
        pos += length
    return out


def put16(data: bytearray, at: int, value: int) -> None:
    data[at:at + 2] = (value & 0xFFFF).to_bytes(2, "big")


def message(*sets: bytes, seq: int = 0, domain: int = 1) -> bytes:
    payload = b"".join(sets)
    return struct.pack(">HHIII", 10, 16 + len(payload), 0, seq, domain) + payload


def data_set(template_id: int, body: bytes, length: int | None = None) -> bytes:
    return struct.pack(">HH", template_id, 4 + len(body) if length is None else length) + body


MUTATIONS = ("flip", "replace", "truncate", "insert", "delete", "msg_len", "set_len", "set_id",
             "field_count", "scope_count", "field_length", "varlen", "shorten_message")


@st.composite
def mutated(draw: Any, octets: bytes, where: Layout) -> tuple[bytes, list[str]]:
    """``octets`` after one to three mutations, and what was done (for the failure report)."""
    data = bytearray(octets)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        op = draw(st.sampled_from(MUTATIONS))
        n = len(data)
        if n == 0:
            break
        at = draw(st.integers(0, n - 1))
        if op == "flip":
            bit = draw(st.integers(0, 7))
            data[at] ^= 1 << bit
            done.append(f"flip bit {bit} at {at}")
        elif op == "replace":
            value = draw(st.integers(0, 255))
            data[at] = value
            done.append(f"octet {at} = {value:#x}")
        elif op == "truncate":
            del data[at:]
            done.append(f"truncate at {at}")
        elif op == "insert":
            extra = draw(st.binary(min_size=1, max_size=8))
            data[at:at] = extra
            done.append(f"insert {extra.hex()} at {at}")
        elif op == "delete":
            count = draw(st.integers(1, 8))
            del data[at:at + count]
            done.append(f"delete {count} at {at}")
        elif op == "shorten_message" and where.messages:
            start, end = draw(st.sampled_from(where.messages))
            if end > len(data):
                continue
            new_end = draw(st.integers(start + 16, end))
            del data[new_end:end]
            put16(data, start + 2, new_end - start)  # the header still frames it: sets overrun
            done.append(f"message at {start} shortened to {new_end - start}")
        else:
            targets = getattr(where, op, [])
            targets = [t for t in targets if t + 2 <= len(data)]
            if not targets:
                continue
            at = draw(st.sampled_from(targets))
            old = struct.unpack_from(">H", data, at)[0]
            if op == "varlen":
                value = draw(st.sampled_from([0, 1, 254, 0xFF, 0xFFFF, 0xFF00 | old])
                             | st.integers(0, 0xFFFF))
                if value > 0xFF:  # the three-octet form, running far past the set
                    data[at:at + 1] = b"\xff" + value.to_bytes(2, "big")
                else:
                    data[at] = value
                done.append(f"varlen prefix at {at} = {value:#x}")
                continue
            value = draw(st.sampled_from([0, 1, 2, 3, 4, 15, 16, 0xFFFF, old + 1, old + 4,
                                          max(old - 1, 0), old * 2 % 0x10000])
                         | st.integers(0, 0xFFFF))
            put16(data, at, value)
            done.append(f"{op} at {at}: {old} -> {value}")
    return bytes(data), done


def templates_of(plan: StreamPlan) -> dict[int, Template]:
    enc = plan.encoder()
    return {tp.template_id: enc.template(tp.template_id) for tp in plan.schema.templates}


# -- properties -------------------------------------------------------------------------------


@FUZZ
@given(plan=SMALL_STREAMS, data=st.data())
def test_mutated_streams_give_only_decode_errors(plan: StreamPlan, data: st.DataObject) -> None:
    stream = plan.encode()
    octets = stream.octets
    bad, done = data.draw(mutated(octets, layout(octets, templates_of(plan))), label="mutation")
    note(f"mutations: {done}")
    chunks = data.draw(splits(bad), label="chunks")
    run = feed_stream(chunks, Session(registry=plan.schema.registry))
    check_consistent(run)
    # The same octets as one datagram (several messages back to back are accepted).
    run = feed_datagrams([bad], Session(registry=plan.schema.registry))
    check_consistent(run)


@FUZZ
@given(plan=SMALL_STREAMS, data=st.data())
def test_mutated_datagrams_give_only_decode_errors(plan: StreamPlan, data: st.DataObject) -> None:
    """One datagram per message, one or more of them mutated; the session carries on."""
    stream = plan.encode()
    messages = stream.messages
    templates = templates_of(plan)
    chosen = data.draw(st.lists(st.integers(0, len(messages) - 1), min_size=1, max_size=3,
                                unique=True))
    datagrams = list(messages)
    for index in chosen:
        datagrams[index], done = data.draw(mutated(messages[index],
                                                   layout(messages[index], templates)))
        note(f"datagram {index}: {done}")
    run = feed_datagrams(datagrams, Session(registry=plan.schema.registry))
    check_consistent(run)
    # Datagrams before the first mutated one decode exactly as if nothing had happened.
    first = min(chosen)
    good = feed_datagrams(messages[:first], Session(registry=plan.schema.registry))
    assert_same([r.values for r in run.records[:len(good.records)]],
                [r.values for r in good.records])


@settings(FUZZ, max_examples=25)
@given(plan=SMALL_STREAMS)
def test_truncation_at_every_offset(plan: StreamPlan) -> None:
    """A stream cut anywhere: the complete messages before the cut decode, the rest is an error."""
    stream = plan.encode()
    octets = stream.octets
    bounds = [0]
    for message in stream.messages:
        bounds.append(bounds[-1] + len(message))
    full = feed_datagrams([octets], Session(registry=plan.schema.registry)).records
    per_message = [0] * len(stream.template_messages) + stream.records_per_message
    step = max(1, len(octets) // 300)  # every offset of small streams, a dense sample of big ones
    for cut in range(0, len(octets), step):
        complete = max(i for i, b in enumerate(bounds) if b <= cut)
        expected = full[:sum(per_message[:complete])]
        start = bounds[complete]

        run = feed_datagrams([octets[:cut]], Session(registry=plan.schema.registry))
        check_consistent(run)
        assert_same([r.values for r in run.records], [r.values for r in expected])
        if cut == start:
            assert not run.errors
        else:
            (error,) = run.errors
            assert error.offset == start

        run = feed_stream([octets[:cut]], Session(registry=plan.schema.registry))
        check_consistent(run)
        assert_same([r.values for r in run.records], [r.values for r in expected])
        assert run.session.buffered == 0  # end_of_stream drops what is left
        if cut == start:
            assert not run.errors
        else:
            (error,) = run.errors
            assert error.offset == start


_field_specifiers = st.tuples(
    st.sampled_from([291, 292, 293]) | st.integers(0, 520),  # the three list types, or anything
    st.sampled_from([0xFFFF, 1, 2, 4, 8, 16]) | st.integers(0, 20),
    st.none() | st.sampled_from([29305, 56506, 55829, 7]))


def template_set(templates: list[list[tuple[int, int, int | None]]]) -> bytes:
    body = b""
    for template_id, fields in enumerate(templates, start=256):
        body += struct.pack(">HH", template_id, len(fields))
        for element_id, length, enterprise in fields:
            if enterprise is None:
                body += struct.pack(">HH", element_id, length)
            else:
                body += struct.pack(">HHI", element_id | 0x8000, length, enterprise)
    return data_set(2, body)


@FUZZ
@given(templates=st.lists(st.lists(_field_specifiers, min_size=1, max_size=5), min_size=1,
                          max_size=3),
       data=st.data())
def test_random_templates_with_random_data_sets(templates: list[Any],
                                                data: st.DataObject) -> None:
    """Templates of arbitrary elements and lengths (lists included), then arbitrary octets."""
    sets = [template_set(templates)]
    for _ in range(data.draw(st.integers(1, 4))):
        template_id = data.draw(st.integers(256, 255 + len(templates)))
        body = data.draw(st.binary(max_size=120)
                         | st.tuples(st.sampled_from([b"\xff", b"\x00", b"\x03\x01\x01"]),
                                     st.binary(max_size=60)).map(b"".join))
        sets.append(data_set(template_id, body))
    check_consistent(feed_datagrams([message(*sets)]))
    check_consistent(feed_stream(data.draw(splits(message(*sets)))))


@FUZZ
@given(plan=SMALL_STREAMS, data=st.data())
def test_reordered_datagrams_lose_nothing(plan: StreamPlan, data: st.DataObject) -> None:
    """Data before its template is held and decoded when the template arrives."""
    stream = plan.encode()
    datagrams = data.draw(st.permutations(stream.messages))
    run = feed_datagrams(datagrams, Session(registry=plan.schema.registry))
    check_consistent(run)
    assert not run.errors
    assert run.session.stats.malformed_sets == 0
    assert Counter(r.template_id for r in run.records) == \
        Counter(r.template_id for r in stream.records)


RESERVED_SET_IDS = st.sampled_from([0, 1]) | st.integers(4, 255)


@FUZZ
@given(plan=SMALL_STREAMS, data=st.data())
def test_bad_set_between_good_sets(plan: StreamPlan, data: st.DataObject) -> None:
    """A set that cannot be decoded costs its own records only, not its neighbours'."""
    stream = plan.encode()
    enc = plan.encoder()
    index, given_records, _ = plan.calls[0]
    template_id = plan.schema.templates[index].template_id
    body = b"".join(enc.encode_record(template_id, r) for r in given_records)
    good = struct.pack(">HH", template_id, 4 + len(body)) + body
    bad_body = data.draw(st.binary(max_size=40))
    bad = struct.pack(">HH", data.draw(RESERVED_SET_IDS), 4 + len(bad_body)) + bad_body
    payload = good + bad + good
    message = struct.pack(">HHIII", 10, 16 + len(payload), 0, 0, plan.domain) + payload

    session = Session(registry=plan.schema.registry)
    for template_message in stream.template_messages:
        session.decode_datagram(template_message)
    session.take_events()
    run = feed_datagrams([message], session)
    assert not run.errors
    n = len(given_records)
    assert len(run.records) == 2 * n
    assert_same([r.values for r in run.records[:n]], [r.values for r in run.records[n:]])
    malformed = [e for e in run.events if isinstance(e, MalformedSet)]
    assert len(malformed) == 1 and session.stats.malformed_sets == 1
    assert malformed[0].error.offset == 16 + len(good)


# -- explicit vectors: go-ipfix pkg/collector/process_test.go (antrea-facts.md §5.3) -------------

VALID_TEMPLATE = bytes.fromhex(
    "000a00285f9a6b7f0000000000000001000200180100000300080004000c00048065ffff0000dcba")
VALID_DATA = bytes.fromhex(
    "000a00215f9a6c12000000000000000101000011010203040506070804706f6431")
VERSION_9 = bytes.fromhex(
    "000900285f28d3ec0000000000000001000200180100000300080004000c00048069ffff0000da15")
TRUNCATED_TEMPLATE = bytes.fromhex(  # header says 40 octets, 38 present: cut in the PEN
    "000a00285f28d3ec0000000000000001000200180100000300080004000c00048069ffff0000")
TRUNCATED_TEMPLATE_HEADER = bytes.fromhex(  # template record header cut to 3 octets
    "000a00285f9a6b7f000000000000000100020018010000")
TRUNCATED_DATA = bytes.fromhex("000a00215f28d49f00000000000000010100")  # 18 of 33 octets


def with_length(message: bytes, length: int, at: int = 2) -> bytes:
    return message[:at] + length.to_bytes(2, "big") + message[at + 2:]


def session_with_template() -> Session:
    session = Session()
    assert session.decode_datagram(VALID_TEMPLATE) == []
    assert (1, 256) in session.templates
    session.take_events()
    return session


def malformed_events(session: Session) -> list[MalformedSet]:
    return [e for e in session.take_events() if isinstance(e, MalformedSet)]


def test_go_ipfix_valid_vectors_decode() -> None:
    run = feed_datagrams([VALID_TEMPLATE, VALID_DATA])
    check_consistent(run)
    (record,) = run.records
    assert record.values == ("1.2.3.4", "5.6.7.8", "pod1")
    assert record.template.names == ("sourceIPv4Address", "destinationIPv4Address",
                                     "sourcePodName")
    run = feed_stream([VALID_TEMPLATE + VALID_DATA])
    check_consistent(run)
    assert [r.values for r in run.records] == [("1.2.3.4", "5.6.7.8", "pod1")]


def test_go_ipfix_truncated_template_38_octets_datagram() -> None:
    session = Session()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(TRUNCATED_TEMPLATE)
    assert caught.value.offset == 0 and caught.value.records == []
    assert "truncated" in caught.value.reason
    assert session.stats.malformed_messages == 1
    assert session.templates == {}
    assert session.take_events() == []


def test_go_ipfix_truncated_template_38_octets_stream() -> None:
    session = Session()
    assert session.feed(TRUNCATED_TEMPLATE) == []
    assert session.buffered == 38  # waiting for the 2 octets the header promises
    with pytest.raises(DecodeError) as caught:
        session.end_of_stream()
    assert caught.value.offset == 0
    assert session.stats.malformed_messages == 1 and session.templates == {}


def test_go_ipfix_truncated_template_38_octets_framed_as_38() -> None:
    """With the message length fixed, the template set (24 octets) overruns the message."""
    session = session_with_template()
    assert session.decode_datagram(with_length(TRUNCATED_TEMPLATE, 38)) == []
    (event,) = malformed_events(session)
    assert event.set_id == 2 and event.error.offset == 16
    assert session.stats.malformed_sets == 1 and session.stats.malformed_messages == 0


def test_go_ipfix_truncated_template_fields_forget_the_old_template() -> None:
    """Message and set lengths both fixed: the record itself has more fields than fit.

    An invalid redefinition must not leave the previous template 256 in place (go-ipfix #383).
    """
    session = session_with_template()
    vector = with_length(with_length(TRUNCATED_TEMPLATE, 38), 22, at=18)
    assert session.decode_datagram(vector) == []
    (event,) = malformed_events(session)
    assert event.set_id == 2 and event.error.offset == 20
    assert session.stats.malformed_sets == 1
    assert (1, 256) not in session.templates
    assert session.decode_datagram(VALID_DATA) == []  # held until a template 256 comes
    assert session.stats.missing_template_sets == 1


def test_go_ipfix_truncated_template_record_header_datagram() -> None:
    session = session_with_template()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(TRUNCATED_TEMPLATE_HEADER)
    assert caught.value.offset == 0
    assert session.stats.malformed_messages == 1
    assert (1, 256) in session.templates  # the existing template is kept
    assert len(session.decode_datagram(VALID_DATA)) == 1


def test_go_ipfix_truncated_template_record_header_framed() -> None:
    """Lengths fixed to what is present: 3 octets cannot hold a template record header.

    RFC 7011 §3.3.1 makes them padding (shorter than any record); they are not zero, so either
    NonZeroPadding or MalformedSet is a fair report. The existing template stays.
    """
    session = session_with_template()
    vector = with_length(with_length(TRUNCATED_TEMPLATE_HEADER, 23), 7, at=18)
    assert session.decode_datagram(vector) == []
    events = session.take_events()
    assert len(events) == 1 and isinstance(events[0], (NonZeroPadding, MalformedSet))
    if isinstance(events[0], NonZeroPadding):
        assert events[0].offset == 20
    assert (1, 256) in session.templates
    assert len(session.decode_datagram(VALID_DATA)) == 1


def test_go_ipfix_truncated_data_message_18_octets() -> None:
    session = session_with_template()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(TRUNCATED_DATA)
    assert caught.value.offset == 0 and session.stats.malformed_messages == 1
    stream = session_with_template()
    assert stream.feed(TRUNCATED_DATA) == [] and stream.buffered == 18
    with pytest.raises(DecodeError) as caught:
        stream.end_of_stream()
    assert caught.value.offset == 0 and stream.stats.malformed_messages == 1


def test_go_ipfix_truncated_data_framed_as_18_octets() -> None:
    """Two octets after the header are too few for a set header."""
    session = session_with_template()
    assert session.decode_datagram(with_length(TRUNCATED_DATA, 18)) == []
    (event,) = malformed_events(session)
    assert event.error.offset == 16
    assert session.stats.malformed_sets == 1 and session.stats.records == 0


def test_go_ipfix_version_9_datagram() -> None:
    session = Session()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(VERSION_9)
    assert caught.value.offset == 0 and "version 9" in caught.value.reason
    assert session.stats.malformed_messages == 1 and session.templates == {}


def test_go_ipfix_version_9_in_a_stream() -> None:
    """Framing is lost: the records before it are kept, and the stream is refused afterwards."""
    session = Session()
    with pytest.raises(DecodeError) as caught:
        session.feed(VALID_TEMPLATE + VALID_DATA + VERSION_9 + VALID_DATA)
    assert caught.value.offset == len(VALID_TEMPLATE) + len(VALID_DATA)
    assert [r.values for r in caught.value.records] == [("1.2.3.4", "5.6.7.8", "pod1")]
    assert session.stats.malformed_messages == 1
    with pytest.raises(DecodeError):
        session.feed(VALID_DATA)
    assert session.stats.malformed_messages == 1


def test_datagram_error_keeps_records_of_earlier_messages() -> None:
    session = Session()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(VALID_TEMPLATE + VALID_DATA + VALID_DATA[:20])
    assert caught.value.offset == len(VALID_TEMPLATE) + len(VALID_DATA)
    assert len(caught.value.records) == 1 and session.stats.records == 1


# -- explicit vectors: framing and sets -----------------------------------------------------------


GOOD_RECORD = bytes.fromhex("010203040506070804706f6431")  # 1.2.3.4, 5.6.7.8, "pod1"


@pytest.mark.parametrize("length", [0, 1, 15])
def test_message_length_shorter_than_its_header(length: int) -> None:
    vector = with_length(VALID_DATA, length)
    session = session_with_template()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(vector)
    assert caught.value.offset == 0 and "shorter than its header" in caught.value.reason
    assert session.stats.malformed_messages == 1
    stream = Session()
    with pytest.raises(DecodeError) as caught:
        stream.feed(VALID_TEMPLATE + vector)
    assert caught.value.offset == len(VALID_TEMPLATE)
    assert (1, 256) in stream.templates and stream.stats.malformed_messages == 1


def test_too_few_octets_for_a_message_header() -> None:
    session = Session()
    with pytest.raises(DecodeError) as caught:
        session.decode_datagram(VALID_TEMPLATE + VALID_DATA[:10])
    assert caught.value.offset == len(VALID_TEMPLATE)
    assert (1, 256) in session.templates


def test_zero_length_set() -> None:
    session = session_with_template()
    vector = message(data_set(256, GOOD_RECORD), data_set(256, b"", length=0),
                     data_set(256, GOOD_RECORD))
    records = session.decode_datagram(vector)
    assert len(records) == 1  # a zero length cannot be stepped over: the rest is lost
    (event,) = malformed_events(session)
    assert event.set_id == 256 and event.error.offset == 16 + 4 + len(GOOD_RECORD)
    assert session.stats.malformed_sets == 1 and session.stats.records == 1


@pytest.mark.parametrize("length", [1, 2, 3])
def test_set_length_shorter_than_set_header(length: int) -> None:
    session = session_with_template()
    vector = message(data_set(256, GOOD_RECORD), data_set(256, b"\x00" * 8, length=length))
    assert len(session.decode_datagram(vector)) == 1
    (event,) = malformed_events(session)
    assert event.error.offset == 16 + 4 + len(GOOD_RECORD)
    assert session.stats.malformed_sets == 1 and session.stats.malformed_messages == 0


def test_set_longer_than_its_message() -> None:
    session = session_with_template()
    vector = message(data_set(256, GOOD_RECORD), data_set(256, GOOD_RECORD, length=0xFFFF))
    assert len(session.decode_datagram(vector)) == 1
    (event,) = malformed_events(session)
    assert event.error.offset == 16 + 4 + len(GOOD_RECORD)
    assert session.stats.malformed_sets == 1


def test_template_with_more_fields_than_fit() -> None:
    session = session_with_template()
    record = bytes.fromhex("0100") + (50).to_bytes(2, "big") + bytes.fromhex("000800040000c0")
    assert session.decode_datagram(message(data_set(2, record))) == []
    (event,) = malformed_events(session)
    assert event.set_id == 2 and event.error.offset == 20
    assert "more fields than fit" in event.error.reason
    assert (1, 256) not in session.templates  # an invalid redefinition removes the old one
    assert session.stats.malformed_sets == 1 and session.stats.templates_added == 1


def test_options_template_with_bad_scope_count() -> None:
    session = Session()
    for scope in (0, 3):
        record = struct.pack(">HHH", 400, 2, scope) + struct.pack(">HHHH", 145, 2, 144, 4)
        assert session.decode_datagram(message(data_set(3, record))) == []
    events = malformed_events(session)
    assert [e.set_id for e in events] == [3, 3] and session.templates == {}
    assert session.stats.malformed_sets == 2


def test_reserved_template_id() -> None:
    session = Session()
    record = struct.pack(">HHHH", 255, 1, 8, 4)
    assert session.decode_datagram(message(data_set(2, record))) == []
    (event,) = malformed_events(session)
    assert event.set_id == 2 and session.templates == {}


def test_reserved_set_id() -> None:
    session = session_with_template()
    records = session.decode_datagram(message(data_set(5, b"\x01\x02\x03\x04"),
                                              data_set(256, GOOD_RECORD)))
    assert len(records) == 1
    (event,) = malformed_events(session)
    assert event.set_id == 5 and event.error.offset == 16


def test_varlen_field_running_past_its_set() -> None:
    """The second record's string claims 0xFFFF octets: the first record survives."""
    session = session_with_template()
    bad_record = bytes.fromhex("0102030405060708") + b"\xff\xff\xff" + b"pod2"
    vector = message(data_set(256, GOOD_RECORD + bad_record))
    records = session.decode_datagram(vector)
    assert [r.values for r in records] == [("1.2.3.4", "5.6.7.8", "pod1")]
    (event,) = malformed_events(session)
    assert event.set_id == 256 and event.error.offset == 20 + len(GOOD_RECORD)
    assert session.stats.malformed_sets == 1 and session.stats.records == 1


def test_good_set_bad_set_good_set_in_one_message() -> None:
    session = session_with_template()
    bad = data_set(256, bytes.fromhex("0102030405060708") + b"\xc8" + b"short")
    vector = message(data_set(256, GOOD_RECORD), bad, data_set(256, GOOD_RECORD))
    records = session.decode_datagram(vector)
    assert [r.values for r in records] == [("1.2.3.4", "5.6.7.8", "pod1")] * 2
    (event,) = malformed_events(session)
    assert event.set_id == 256 and event.error.offset == 16 + 4 + len(GOOD_RECORD) + 4
    assert session.stats.malformed_sets == 1 and session.stats.records == 2
    # The same through a stream.
    stream = Session()
    assert len(stream.feed(VALID_TEMPLATE + vector)) == 2
    assert stream.stats.malformed_sets == 1


def test_truncated_template_set_in_a_stream_keeps_later_messages() -> None:
    """A malformed set inside a well-framed message does not break the stream."""
    stream = Session()
    bad = with_length(with_length(TRUNCATED_TEMPLATE, 38), 22, at=18)
    records = stream.feed(bad + VALID_TEMPLATE + VALID_DATA)
    assert [r.values for r in records] == [("1.2.3.4", "5.6.7.8", "pod1")]
    assert stream.stats.malformed_sets == 1 and stream.stats.malformed_messages == 0


# -- explicit vectors: RFC 6313 lists nested past any sensible depth ------------------------------


def varlen(content: bytes) -> bytes:
    if len(content) < 255:
        return bytes([len(content)]) + content
    return b"\xff" + len(content).to_bytes(2, "big") + content


def check_nested(vector: bytes) -> None:
    """Deep nesting is either decoded or one MalformedSet, never another exception.

    Python's default recursion limit is 1000 frames; each nesting level costs about three.
    """
    assert len(vector) < 4000  # one ordinary UDP datagram
    run = feed_datagrams([vector])
    check_consistent(run)
    assert not run.errors
    assert len(run.records) == 1 or run.session.stats.malformed_sets == 1
    # As a stream, the message must not stay wedged in the buffer either.
    run = feed_stream([vector, b""])
    check_consistent(run)
    assert not run.errors and run.session.buffered == 0
    assert len(run.records) == 1 or run.session.stats.malformed_sets == 1


def test_deeply_nested_basic_lists() -> None:
    """basicList (IANA 291) of basicList of ...: 400 levels in 3.1 kB."""
    inner = b"\xff" + struct.pack(">HH", 1, 8)  # innermost: basicList of octetDeltaCount, empty
    for _ in range(400):
        inner = b"\xff" + struct.pack(">HH", 291, 0xFFFF) + varlen(inner)
    template = struct.pack(">HHHH", 256, 1, 291, 0xFFFF)
    check_nested(message(data_set(2, template), data_set(256, varlen(inner))))


def test_self_nesting_sub_template_list() -> None:
    """Template 258 = one subTemplateList (IANA 292) of template 258: 400 levels in 2.4 kB."""
    inner = b"\xff" + struct.pack(">H", 258)  # innermost: an empty subTemplateList
    for _ in range(400):
        inner = b"\xff" + struct.pack(">H", 258) + varlen(inner)
    template = struct.pack(">HHHH", 258, 1, 292, 0xFFFF)
    check_nested(message(data_set(2, template), data_set(258, varlen(inner))))


def test_encoder_round_trip_of_a_shallow_nesting_still_works() -> None:
    """Guard for the two tests above: a few levels of nesting are ordinary data."""
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(258, ["octetDeltaCount"])
    enc.add_template(259, ["subTemplateList"])
    from ipfix_antrea import SubTemplateList
    value = SubTemplateList(258, [(1,), (2,)], 4)
    run = feed_datagrams(enc.template_messages() + enc.encode(259, [(value,)]))
    check_consistent(run)
    (record,) = run.records
    assert record["subTemplateList"] == value
