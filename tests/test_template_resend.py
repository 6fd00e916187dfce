"""Re-sent templates: a template record whose bytes equal the current template's is not parsed
again (UDP exporters re-send every template every few dozen messages, RFC 7011 §8.4), and this
shortcut must be invisible: the session ends up with the same templates, records, events,
counters and saved templates as when every template record goes the full way through the
construct declaration."""

from __future__ import annotations

import struct
from dataclasses import fields as dataclass_fields
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from ipfix_antrea import (
    DecodeError,
    Encoder,
    InformationElement,
    Session,
    TemplateAdded,
    TemplateRedefined,
    default_registry,
)
from ipfix_antrea import session as session_module


def exporter(fields: list[str]) -> Encoder:
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(256, fields)
    return enc


FA_LIKE = ["sourceIPv4Address", "sourcePodName", "sourcePodNamespace", "octetDeltaCount"]


def parses(messages: list[bytes]) -> int:
    """How many template records the construct declaration parsed while a fresh session
    decoded ``messages`` as datagrams."""
    declaration = session_module.TemplateRecord
    with mock.patch.object(session_module, "TemplateRecord", wraps=declaration) as spy:
        session = Session()
        for m in messages:
            session.decode_datagram(m, now=0.0)
    return spy.parse.call_count


def test_a_resent_template_is_parsed_once():
    enc = exporter(FA_LIKE)
    assert parses([enc.template_messages()[0] for _ in range(5)]) == 1


def test_a_changed_template_is_parsed_again_and_redefines():
    enc = exporter(FA_LIKE)
    first = enc.template_messages()[0]
    enc.add_template(256, FA_LIKE[:2])
    changed = enc.template_messages()[0]
    assert parses([first, changed, changed]) == 2
    s = Session()
    for m in (first, changed):
        s.decode_datagram(m)
    assert [type(e) for e in s.take_events()] == [TemplateAdded, TemplateRedefined]


def test_a_resent_template_is_resolved_again_after_the_registry_changed():
    private = InformationElement("podColour", 7, enterprise=32473, data_type="string")
    enc = Encoder(1, export_time=lambda: 0)
    enc.registry.add(private)
    enc.add_template(256, ["sourceIPv4Address", "podColour"])
    registry = default_registry()
    s = Session(registry)
    s.decode_datagram(enc.template_messages()[0])
    assert s.template(1, 256).names == ("sourceIPv4Address", "en32473:id7")
    registry.add(private)
    s.decode_datagram(enc.template_messages()[0])
    assert s.template(1, 256).names == ("sourceIPv4Address", "podColour")
    assert s.stats.templates_redefined == 1


def test_a_resent_template_is_resolved_again_by_a_registry_given_to_the_session():
    private = InformationElement("podColour", 7, enterprise=32473, data_type="string")
    enc = Encoder(1, export_time=lambda: 0)
    enc.registry.add(private)
    enc.add_template(256, ["sourceIPv4Address", "podColour"])
    first, second = default_registry(), default_registry()
    first.add(first.get(0, 8))  # as many changes as `second` will have: only identity tells them apart
    second.add(private)
    s = Session(first)
    s.decode_datagram(enc.template_messages()[0])
    s.registry = second
    s.decode_datagram(enc.template_messages()[0])
    assert s.template(1, 256).names == ("sourceIPv4Address", "podColour")


def test_a_resent_template_refreshes_its_udp_lifetime_without_an_event():
    enc = exporter(FA_LIKE)
    s = Session(template_lifetime=100)
    for now in (0.0, 90.0, 180.0):
        s.decode_datagram(enc.template_messages()[0], now=now)
    records = s.decode_datagram(enc.encode(256, [("10.1.0.1", "web-1", "shop", 1400)])[0], now=270.0)
    assert [r.values for r in records] == [("10.1.0.1", "web-1", "shop", 1400)]
    assert [type(e) for e in s.take_events()] == [TemplateAdded]


# --- the shortcut against the full way, on made-up streams -------------------------------------

PRIVATE = InformationElement("podColour", 999, enterprise=12345, data_type="unsigned32")

# (element id, length, enterprise) lists a template record may carry
FIELD_LISTS = [
    [(8, 4, 0), (12, 4, 0), (1, 8, 0)],  # two addresses, a counter
    [(4, 1, 0), (7, 2, 0)],  # protocol, port
    [(82, 65535, 0), (7, 2, 0)],  # a variable-length string first
    [(8, 5, 0)],  # an address of a length its type cannot have
    [(999, 4, 12345), (4, 1, 0)],  # an element the registry learns only with "register"
    [(8, 0, 0)],  # nothing but zero-length fields: malformed
]


def _template_record(template_id: int, field_list: list[tuple[int, int, int]], scope: int | None,
                     cut: int) -> bytes:
    """A template record (an options template record when ``scope`` is given) with its last
    ``cut`` octets cut off (a truncated record is malformed)."""
    head = struct.pack(">HH", template_id, len(field_list))
    if scope is not None:
        head += struct.pack(">H", scope)
    body = b"".join(struct.pack(">HHI", 0x8000 | eid, length, ent) if ent
                    else struct.pack(">HH", eid, length) for eid, length, ent in field_list)
    record = head + body
    return record[:len(record) - cut] if cut else record


template_ids = st.sampled_from([256, 257, 300, 5])  # 5 is reserved: malformed
template_set = st.builds(
    lambda options, records: (3 if options else 2, b"".join(records)),
    st.booleans(),
    st.lists(st.one_of(
        st.builds(_template_record, template_ids, st.sampled_from(FIELD_LISTS),
                  st.sampled_from([None, None, 1, 0]), st.sampled_from([0, 0, 0, 2])),
        # withdrawals: one template, or all (ids 2 and 3) of the set's kind
        st.builds(lambda tid: struct.pack(">HH", tid, 0), st.sampled_from([256, 257, 300, 2, 3])),
    ), min_size=1, max_size=3),
)
data_set = st.tuples(st.sampled_from([256, 257, 300]), st.binary(max_size=24))
message_sets = st.lists(st.one_of(template_set, template_set, data_set), min_size=1, max_size=4)
step = st.one_of(
    st.tuples(st.just("message"), st.sampled_from([1, 2]), message_sets),
    st.tuples(st.just("wait"), st.integers(0, 150)),
    st.tuples(st.just("register")),
)


def _message(domain: int, sequence: int, sets: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(struct.pack(">HH", sid, 4 + len(b)) + b for sid, b in sets)
    return struct.pack(">HHIII", 10, 16 + len(body), 0, sequence, domain) + body


def _event_facts(event) -> tuple:
    """An event as comparable facts (a DecodeError compares by identity, so by its text)."""
    values = []
    for f in dataclass_fields(event):
        value = getattr(event, f.name)
        values.append((str(value), value.offset) if isinstance(value, DecodeError) else value)
    return (type(event).__name__, *values)


def _record_facts(records) -> list[tuple]:
    return [(r.template, r.values, r.observation_domain_id, r.sequence_number) for r in records]


@settings(max_examples=300, deadline=None)
@given(steps=st.lists(step, max_size=14), lifetime=st.sampled_from([None, 100]))
def test_the_shortcut_and_the_full_way_agree(steps, lifetime):
    # Session b's registry is told of a change before every message (re-adding an element it
    # holds changes nothing it resolves), so b parses every template record in full.
    shortcut, full = default_registry(), default_registry()
    a = Session(shortcut, template_lifetime=lifetime)
    b = Session(full, template_lifetime=lifetime)
    now, sequence = 0.0, 0
    for action, *args in steps:
        if action == "wait":
            now += args[0]
            continue
        if action == "register":
            shortcut.add(PRIVATE)
            full.add(PRIVATE)
            continue
        domain, sets = args
        message = _message(domain, sequence, sets)
        sequence += 1
        full.add(full.get(0, 8))
        got_a = a.decode_datagram(message, now=now)
        got_b = b.decode_datagram(message, now=now)
        assert _record_facts(got_a) == _record_facts(got_b)
        assert [_event_facts(e) for e in a.take_events()] == [_event_facts(e) for e in b.take_events()]
        assert a.stats == b.stats
        assert a.templates == b.templates
        assert a.export_templates(now=now) == b.export_templates(now=now)
