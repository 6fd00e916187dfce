"""Round trips: random templates of every type -> Encoder -> Session -> the same values.

Templates are drawn by ``strategies.schemas``: every abstract type of ``ipfix_antrea.types``
(integers at every reduced size, float64 reduced to float32, fixed and variable strings and octet
arrays, both variable-length prefix forms, the four timestamp types, the three RFC 6313 lists),
elements from the default registry (IANA, reverse 29305, Antrea 56506 and legacy 55829), made-up
enterprise elements added at run time to a registry that encoder and session share, elements the
decoder does not know (octets under ``en<E>:id<N>``), elements given a length their type cannot
have, options templates and repeated elements. The encoded stream is decoded twice: fed to
``Session.feed`` in random chunks, and message by message with ``Session.decode_datagram``.

NaN floats are generated and compare equal to any NaN (see ``strategies.assert_same``); IP
addresses are compared canonically through ``ipaddress``.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import (
    SCALAR_TYPES,
    VARIABLE,
    FieldPlan,
    Schema,
    Stream,
    StreamPlan,
    TemplatePlan,
    assert_same,
    event_key,
    message_sizes,
    record_values,
    scalar_values,
    schemas,
    splits,
    stream_plans,
    valid_lengths,
)

from ipfix_antrea import (
    BasicList,
    Encoder,
    InformationElement,
    Record,
    Session,
    SubTemplateList,
    SubTemplateMultiList,
    default_registry,
)
from ipfix_antrea.types import DATA_TYPES

SLOW_OK = settings(deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

ERROR_COUNTERS = ("templates_redefined", "templates_withdrawn", "templates_expired",
                  "malformed_messages", "malformed_sets", "missing_template_sets",
                  "pending_decoded_sets", "pending_dropped_sets", "sequence_gaps",
                  "missing_records", "out_of_order", "nonzero_padding")
SEQUENCE_MODULUS = 1 << 32


# -- checks -------------------------------------------------------------------------------------


def check_records(records: list[Record], stream: Stream, plan: StreamPlan) -> None:
    by_id = {tp.template_id: tp for tp in plan.schema.templates}
    assert len(records) == len(stream.records)
    for i, (record, expected) in enumerate(zip(records, stream.records, strict=True)):
        tp = by_id[expected.template_id]
        assert record.template_id == expected.template_id, f"record {i}"
        assert record.observation_domain_id == plan.domain
        assert record.export_time == plan.export_time
        assert record.sequence_number == expected.sequence_number, f"record {i}"
        assert record.is_options == bool(expected.scope_count)
        assert record.template.scope_count == expected.scope_count
        assert record.template.names == tp.names
        assert tuple(f.length for f in record.template.fields) == \
            tuple(f.length for f in tp.fields)
        assert_same(record.values, expected.values, f"record {i}")
        check_access(record, tp)


def check_access(record: Record, tp: TemplatePlan) -> None:
    """get(), [], scope and to_dict() agree with the values, and to_dict() is JSON-ready."""
    counts = Counter(tp.names)
    as_dict = record.to_dict()
    orjson.loads(orjson.dumps(as_dict))  # raises on anything orjson cannot serialise
    assert set(as_dict) == set(counts)
    for name, n in counts.items():
        positions = [i for i, m in enumerate(tp.names) if m == name]
        if n == 1:
            assert record[name] is record.values[positions[0]]
            assert name in record
        else:
            assert isinstance(as_dict[name], list) and len(as_dict[name]) == n, name
            got = record.get(name)
            assert isinstance(got, list) and len(got) == n
            for value, i in zip(got, positions, strict=True):
                assert value is record.values[i]
    assert record.get("noSuchElementAnywhere", 42) == 42
    if tp.scope_count:
        assert set(record.scope) == set(tp.names[:tp.scope_count])
    else:
        assert record.scope == {}


def check_session(session: Session, plan: StreamPlan, stream: Stream) -> None:
    schema = plan.schema
    assert [event_key(e) for e in session.take_events()] == \
        schema.expected_template_events(plan.domain)
    stats = session.stats
    fields = [f for tp in schema.templates for f in tp.fields]
    assert stats.messages == len(stream.messages)
    assert stats.octets == len(stream.octets)
    assert stats.records == len(stream.records)
    assert stats.options_records == sum(1 for r in stream.records if r.scope_count)
    assert stats.templates_added == len(schema.templates)
    assert stats.unknown_elements == sum(1 for f in fields if f.kind == "unknown")
    assert stats.unknown_element_names == {f.decoded_name for f in fields if f.kind == "unknown"}
    assert stats.invalid_field_lengths == sum(1 for f in fields if f.kind == "mismatch")
    for counter in ERROR_COUNTERS:
        assert getattr(stats, counter) == 0, counter
    templates = session.templates
    assert set(templates) == {(plan.domain, tp.template_id) for tp in schema.templates}
    for tp in schema.templates:
        assert templates[(plan.domain, tp.template_id)].names == tp.names


def check_headers(plan: StreamPlan, stream: Stream) -> None:
    """RFC 7011 §3.1: each data message's sequence number counts the data records before it."""
    before = 0
    for message in stream.template_messages:
        version, length, export_time, seq, domain = struct.unpack_from(">HHIII", message)
        assert (version, length, export_time, seq, domain) == \
            (10, len(message), plan.export_time, 0, plan.domain)
        assert length <= plan.max_message_size
    for message, count in zip(stream.data_messages, stream.records_per_message, strict=True):
        version, length, export_time, seq, domain = struct.unpack_from(">HHIII", message)
        assert (version, length, export_time, seq, domain) == \
            (10, len(message), plan.export_time, before, plan.domain)
        assert length <= plan.max_message_size
        before += count


def decode_both_ways(plan: StreamPlan, stream: Stream, chunks: list[bytes]) -> None:
    assert b"".join(chunks) == stream.octets
    session = Session(registry=plan.schema.registry)
    records = [r for chunk in chunks for r in session.feed(chunk)]
    assert session.buffered == 0
    session.end_of_stream()
    check_records(records, stream, plan)
    check_session(session, plan, stream)

    session = Session(registry=plan.schema.registry)
    records = [r for message in stream.messages for r in session.decode_datagram(message)]
    check_records(records, stream, plan)
    check_session(session, plan, stream)


# -- the property ------------------------------------------------------------------------------


@settings(SLOW_OK, max_examples=150)
@given(plan=stream_plans(), data=st.data())
def test_random_templates_round_trip(plan: StreamPlan, data: st.DataObject) -> None:
    stream = plan.encode()
    check_headers(plan, stream)
    decode_both_ways(plan, stream, data.draw(splits(stream.octets)))


@settings(SLOW_OK, max_examples=60)
@given(plan=stream_plans(schemas(max_templates=3, max_fields=3, all_lists=True)),
       data=st.data())
def test_lists_round_trip(plan: StreamPlan, data: st.DataObject) -> None:
    """Every schema here has a basicList, a subTemplateList and a subTemplateMultiList field."""
    stream = plan.encode()
    decode_both_ways(plan, stream, data.draw(splits(stream.octets)))


@settings(SLOW_OK, max_examples=40)
@given(plan=stream_plans(max_calls=6, max_records=8), data=st.data())
def test_every_split_point_of_small_streams(plan: StreamPlan, data: st.DataObject) -> None:
    """Feeding one octet at a time is the extreme of 'any split'."""
    stream = plan.encode()
    octets = stream.octets
    if len(octets) > 4000:
        chunks = data.draw(splits(octets, max_cuts=40))
    else:
        chunks = [octets[i:i + 1] for i in range(len(octets))]
    decode_both_ways(plan, stream, chunks)


# -- every type, one at a time -----------------------------------------------------------------

ENTERPRISE = 4_242_424_242


def single_field_plan(dtype: str, length: int, kind: str) -> StreamPlan:
    reg = default_registry()
    if kind == "unknown":
        element = InformationElement(f"exporterOnly{dtype}", 7, ENTERPRISE + 1, dtype)
    else:
        element = InformationElement(f"t{dtype}", 7, ENTERPRISE, dtype)
        reg.add(element)
    anchor = InformationElement("anchorOctet", 8, ENTERPRISE, "unsigned8")
    reg.add(anchor)
    fields = (FieldPlan(element, length, kind), FieldPlan(anchor, 1, "custom"))
    schema = Schema(reg, [TemplatePlan(300, fields)])
    return StreamPlan(schema, 7, 1_700_000_000, 65535)


@pytest.mark.parametrize("dtype", SCALAR_TYPES)
@settings(SLOW_OK, max_examples=40)
@given(data=st.data())
def test_each_scalar_type(dtype: str, data: st.DataObject) -> None:
    length = data.draw(valid_lengths(dtype), label="length")
    plan = single_field_plan(dtype, length, "custom")
    tp = plan.schema.templates[0]
    rows = data.draw(st.lists(st.tuples(scalar_values(dtype, length), st.integers(0, 255)),
                              min_size=1, max_size=5))
    plan.calls.append((0, [(v[0], a) for v, a in rows], [(v[1], a) for v, a in rows]))
    plan.max_message_size = data.draw(st.sampled_from([65535, 700]))
    stream = plan.encode()
    decode_both_ways(plan, stream, [stream.octets])
    assert tp.fields[0].element.data_type == dtype


@pytest.mark.parametrize("dtype", SCALAR_TYPES)
@settings(SLOW_OK, max_examples=15)
@given(data=st.data())
def test_each_scalar_type_unknown_to_the_decoder(dtype: str, data: st.DataObject) -> None:
    """The exporter knows the type; the collector gets the octets under en<E>:id<N>."""
    length = data.draw(valid_lengths(dtype), label="length")
    plan = single_field_plan(dtype, length, "unknown")
    value, _ = data.draw(scalar_values(dtype, length))
    wire = DATA_TYPES[dtype].encode(value, length)
    plan.calls.append((0, [(value, 1)], [(wire, 1)]))
    stream = plan.encode()
    decode_both_ways(plan, stream, [stream.octets])
    session = Session(registry=plan.schema.registry)
    (record,) = [r for m in stream.messages for r in session.decode_datagram(m)]
    assert record.template.names[0] == f"en{ENTERPRISE + 1}:id7"
    assert record[f"en{ENTERPRISE + 1}:id7"] == wire


# -- specific cases, spelled out ---------------------------------------------------------------


def test_three_octet_length_form_from_255_octets() -> None:
    """RFC 7011 §7: lengths of 255 and more use 0xFF and two length octets."""
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(256, ["sourcePodName", ("en99:id7", VARIABLE), "octetDeltaCount"])
    name = "p" * 254
    blob = bytes(range(256)) * 2
    (message,) = enc.encode(256, [(name, blob, 5)])
    body = message[20:]
    assert body[0] == 254 and body[1:255] == name.encode()
    assert body[255:258] == b"\xff\x02\x00" and body[258:770] == blob
    session = Session()
    session.decode_datagram(enc.template_messages()[0])
    (record,) = session.decode_datagram(message)
    assert record.values == (name, blob, 5)
    assert record.to_dict()["en99:id7"] == blob.hex()


def test_duplicate_elements_give_lists() -> None:
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(256, ["sourceIPv4Address", "sourceIPv4Address", ("octetDeltaCount", 4)])
    session = Session()
    session.decode_datagram(enc.template_messages()[0])
    (record,) = session.decode_datagram(enc.encode(256, [("1.1.1.1", "2.2.2.2", 3)])[0])
    assert record["sourceIPv4Address"] == ["1.1.1.1", "2.2.2.2"]
    assert record.to_dict() == {"sourceIPv4Address": ["1.1.1.1", "2.2.2.2"],
                                "octetDeltaCount": 3}
    with pytest.raises(ValueError):
        enc.encode(256, [{"sourceIPv4Address": "1.1.1.1", "octetDeltaCount": 3}])


def test_options_template_round_trip() -> None:
    enc = Encoder(3, export_time=lambda: 0)
    enc.add_template(258, ["templateId", "exportingProcessId", "exportedMessageTotalCount"],
                     scope_count=2)
    session = Session()
    session.decode_datagram(enc.template_messages()[0])
    (record,) = session.decode_datagram(enc.encode(258, [(256, 9, 1234)])[0])
    assert record.is_options and record.template.scope_count == 2
    assert record.scope == {"templateId": 256, "exportingProcessId": 9}
    assert session.stats.options_records == 1


def test_lists_of_every_kind_spelled_out() -> None:
    reg = default_registry()
    enc = Encoder(1, registry=reg, export_time=lambda: 0)
    enc.add_template(256, ["sourceIPv4Address", "sourcePodName"])
    enc.add_template(257, [("octetDeltaCount", 2)])
    enc.add_template(258, ["basicList", "subTemplateList", "subTemplateMultiList"])
    ports = BasicList(reg.by_name("sourceTransportPort"), [80, 443], 3, 2)
    pods = SubTemplateList(256, [("1.2.3.4", "a"), ("::1", "b")][:1], 4)
    multi = SubTemplateMultiList([SubTemplateList(256, [("5.6.7.8", "c")]),
                                  SubTemplateList(257, [(1,), (2,)])], 1)
    session = Session(registry=reg)
    for message in enc.template_messages():
        session.decode_datagram(message)
    (record,) = session.decode_datagram(enc.encode(258, [(ports, pods, multi)])[0])
    assert record["basicList"] == ports
    assert record["subTemplateList"] == pods
    got = record["subTemplateMultiList"]
    assert got.semantic == 1
    assert [(e.template_id, e.records, e.semantic) for e in got.entries] == \
        [(256, [("5.6.7.8", "c")], 1), (257, [(1,), (2,)], 1)]
    assert orjson.loads(orjson.dumps(record.to_dict())) == {
        "basicList": [80, 443],
        "subTemplateList": [{"sourceIPv4Address": "1.2.3.4", "sourcePodName": "a"}],
        "subTemplateMultiList": [{"sourceIPv4Address": "5.6.7.8", "sourcePodName": "c"},
                                 {"octetDeltaCount": 1}, {"octetDeltaCount": 2}],
    }


def test_ntp_timestamps_at_the_era_edges() -> None:
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(256, ["flowStartMicroseconds", "flowEndNanoseconds"])
    first_us = -2_208_988_800 * 10**6
    last_ns = ((1 << 32) - 2_208_988_800) * 10**9 - 1
    rows = [(first_us, last_ns), (0, 0), (datetime(2024, 5, 1, 12, 0, 0, 123456,
                                                    tzinfo=UTC), 1)]
    session = Session()
    session.decode_datagram(enc.template_messages()[0])
    records = session.decode_datagram(enc.encode(256, rows)[0])
    assert [r.values for r in records] == [(first_us, last_ns), (0, 0),
                                           (1_714_564_800_123_456, 1)]
    with pytest.raises(ValueError):
        enc.encode(256, [(first_us - 1, 0)])


def test_zero_length_fixed_fields() -> None:
    """A fixed length of 0 is legal for octetArray and string: empty values, no octets."""
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(258, [("en99:id7", 0), ("sourcePodName", 0), "protocolIdentifier"])
    session = Session()
    for message in enc.template_messages():
        session.decode_datagram(message)
    (message,) = enc.encode(258, [(b"", "", 6), (b"", "", 17)])
    assert len(message) == 16 + 4 + 2
    assert [r.values for r in session.decode_datagram(message)] == [(b"", "", 6), (b"", "", 17)]


def test_list_field_with_a_fixed_length() -> None:
    """A template may give a list element a fixed length (RFC 6313 §4.5.2 allows it)."""
    from ipfix_antrea import FieldSpec
    from ipfix_antrea.structured import encode_field
    reg = default_registry()
    enc = Encoder(1, registry=reg, export_time=lambda: 0)
    enc.add_template(256, ["octetDeltaCount"])
    value = SubTemplateList(256, [(1,), (2,)], 3)
    length = len(encode_field(FieldSpec(reg.by_name("subTemplateList"), VARIABLE), value, enc)) - 1
    enc.add_template(257, [("subTemplateList", length), "sourceIPv4Address"])
    session = Session(registry=reg)
    for message in enc.template_messages():
        session.decode_datagram(message)
    (record,) = session.decode_datagram(enc.encode(257, [(value, "1.2.3.4")])[0])
    assert record.values == (value, "1.2.3.4")


@settings(SLOW_OK, max_examples=40)
@given(plan=stream_plans(schemas(max_templates=3, max_fields=4)), data=st.data())
def test_two_observation_domains_interleaved(plan: StreamPlan, data: st.DataObject) -> None:
    """Templates and sequence numbers are per observation domain (RFC 7011 §3.1, §8)."""
    other = data.draw(stream_plans(st.just(plan.schema)), label="second domain")
    if other.domain == plan.domain:
        other.domain = (plan.domain + 1) % (1 << 32)
    a, b = plan.encode(), other.encode()
    queue_a, queue_b = list(a.messages), list(b.messages)
    merged: list[bytes] = []
    while queue_a or queue_b:
        take_a = queue_a and (not queue_b or data.draw(st.booleans()))
        merged.append((queue_a if take_a else queue_b).pop(0))
    session = Session(registry=plan.schema.registry)
    records = [r for chunk in data.draw(splits(b"".join(merged))) for r in session.feed(chunk)]
    check_records([r for r in records if r.observation_domain_id == plan.domain], a, plan)
    check_records([r for r in records if r.observation_domain_id == other.domain], b, other)
    assert Counter(event_key(e) for e in session.take_events()) == Counter(
        plan.schema.expected_template_events(plan.domain)
        + plan.schema.expected_template_events(other.domain))
    for counter in ERROR_COUNTERS:
        assert getattr(session.stats, counter) == 0, counter


# -- an exporter over time: template refreshes, templates re-sent by hand, withdrawals ----------

#: None: the caller sends templates; inf: each once (TCP); finite: re-sent when due (UDP).
REFRESHES = st.none() | st.just(math.inf) | st.sampled_from([0.0, 1.0, 600.0]) | st.floats(0, 1000)
CLOCK_STEPS = st.sampled_from([0.0, 1.0, 599.0, 600.0, 601.0]) | st.floats(0, 2000)
#: Where the exporter's count starts: a fresh exporter, or one about to wrap at 2^32.
FIRST_SEQUENCE = st.just(0) | st.integers(SEQUENCE_MODULUS - 12, SEQUENCE_MODULUS - 1) \
    | st.integers(0, SEQUENCE_MODULUS - 1)
OPERATIONS = ("encode", "encode", "encode", "tick", "send", "withdraw")


@dataclass
class Export:
    """A message as the exporter produced it, with the exporter's clock at the time."""

    octets: bytes
    now: float


@settings(SLOW_OK, max_examples=150)
@given(schema=schemas(max_templates=3, max_fields=4), data=st.data())
def test_sequence_numbers_with_refreshes_resends_and_withdrawals(schema: Schema,
                                                                 data: st.DataObject) -> None:
    """RFC 7011 §3.1: a message's sequence number counts the data records sent before it, so a
    template or withdrawal message carries the current count, wherever the encoder puts it. Any
    mix of data batches, template refreshes, clock steps, templates re-sent by hand after data,
    and withdrawals (re-added at once) decodes with no gap, nothing out of order, every record in
    order, and (over UDP, with a template lifetime equal to the refresh interval) no template
    expiring before its refresh."""
    refresh = data.draw(REFRESHES, label="template_refresh")
    domain = data.draw(st.integers(0, 0xFFFFFFFF), label="domain")
    # The operations first, so that the size cap can be drawn to fit every record.
    operations: list[tuple[Any, ...]] = []
    for _ in range(data.draw(st.integers(1, 10), label="operations")):
        op = data.draw(st.sampled_from(OPERATIONS))
        index = data.draw(st.integers(0, len(schema.templates) - 1))
        if op == "encode":
            pairs = data.draw(st.lists(record_values(schema.templates[index], schema),
                                       max_size=6))
            operations.append((op, index, [p[0] for p in pairs], [p[1] for p in pairs]))
        elif op == "tick":
            operations.append((op, data.draw(CLOCK_STEPS)))
        elif op == "send":
            operations.append((op, data.draw(st.lists(st.integers(0, len(schema.templates) - 1),
                                                      unique=True, max_size=3))))
        else:
            operations.append((op, index))
    rows = [(o[1], r) for o in operations if o[0] == "encode" for r in o[2]]
    max_message_size = data.draw(message_sizes(schema, exporter(schema), rows), label="size")
    first = data.draw(FIRST_SEQUENCE, label="first sequence number")

    now = [0.0]
    enc = exporter(schema, domain, max_message_size=max_message_size, template_refresh=refresh,
                   clock=lambda: now[0])
    enc.sequence_number = first
    exports: list[Export] = []
    expected: list[tuple[int, tuple[Any, ...]]] = []

    def emit(messages: list[bytes]) -> None:
        exports.extend(Export(m, now[0]) for m in messages)

    if refresh is None:
        emit(enc.template_messages())
    for op, *args in operations:
        if op == "encode":
            index, given, values = args
            template_id = schema.templates[index].template_id
            emit(enc.encode(template_id, given))
            expected += [(template_id, v) for v in values]
        elif op == "tick":
            now[0] += args[0]
        elif op == "send":
            emit(enc.template_messages([schema.templates[i].template_id for i in args[0]]))
        else:
            tp = schema.templates[args[0]]
            emit([enc.withdraw(tp.template_id)])
            enc.add_template(tp.template_id, tp.encoder_fields, scope_count=tp.scope_count)
            if refresh is None:  # the caller's job: the template goes out again before data
                emit(enc.template_messages([tp.template_id]))
    assert all(len(e.octets) <= max_message_size for e in exports)
    assert enc.sequence_number == (first + len(expected)) % SEQUENCE_MODULUS

    lifetime = refresh if refresh is not None and math.isfinite(refresh) else None
    datagrams = Session(registry=schema.registry, template_lifetime=lifetime)
    per_message = [datagrams.decode_datagram(e.octets, now=e.now) for e in exports]
    sent = first
    for export, records in zip(exports, per_message, strict=True):
        header_sequence = struct.unpack_from(">I", export.octets, 8)[0]
        assert header_sequence == sent, "the header does not count the records sent before it"
        assert all(r.sequence_number == sent for r in records)
        sent = (sent + len(records)) % SEQUENCE_MODULUS
    check_export(datagrams, [r for records in per_message for r in records], expected)
    assert datagrams.stats.templates_expired == 0

    stream = Session(registry=schema.registry)
    octets = b"".join(e.octets for e in exports)
    records = [r for chunk in data.draw(splits(octets)) for r in stream.feed(chunk)]
    stream.end_of_stream()
    check_export(stream, records, expected)


def exporter(schema: Schema, domain: int = 0, **kw: Any) -> Encoder:
    enc = Encoder(domain, registry=schema.registry, export_time=lambda: 0, **kw)
    for tp in schema.templates:
        enc.add_template(tp.template_id, tp.encoder_fields, scope_count=tp.scope_count)
    return enc


def check_export(session: Session, records: list[Record],
                 expected: list[tuple[int, tuple[Any, ...]]]) -> None:
    """Every record arrived, in order, with no sequence anomaly or anything else reported."""
    assert [r.template_id for r in records] == [e[0] for e in expected]
    assert_same([r.values for r in records], [e[1] for e in expected])
    stats = session.stats
    for counter in ("sequence_gaps", "missing_records", "out_of_order", "malformed_messages",
                    "malformed_sets", "missing_template_sets", "pending_dropped_sets",
                    "templates_redefined", "nonzero_padding"):
        assert getattr(stats, counter) == 0, counter
