"""Session behaviour: framing, templates, sequence numbers, held data sets, events and counters."""

from __future__ import annotations

import struct

import pytest

from ipfix_antrea import (
    DecodeError,
    Encoder,
    InformationElement,
    InvalidFieldLength,
    MalformedSet,
    MissingTemplate,
    NonZeroPadding,
    PendingSetDropped,
    SavedTemplate,
    SequenceGap,
    SequenceOutOfOrder,
    Session,
    TemplateAdded,
    TemplateExpired,
    TemplateRedefined,
    TemplateWithdrawn,
    UnknownElement,
)
from ipfix_antrea.session import MAX_UNKNOWN_NAMES

FIELDS = ["sourceIPv4Address", "destinationIPv4Address", "sourcePodName", "octetDeltaCount"]
ROWS = [("10.0.0.1", "10.0.0.2", "web-0", 100), ("10.0.0.3", "10.0.0.4", "db-0", 200)]


def encoder(domain: int = 1, **kw) -> Encoder:
    enc = Encoder(domain, export_time=lambda: 1_700_000_000, **kw)
    enc.add_template(256, FIELDS)
    return enc


def message(sets: list[tuple[int, bytes]], domain: int = 1, sequence: int = 0) -> bytes:
    """A message built by hand, for what the encoder would never write."""
    body = b"".join(struct.pack(">HH", sid, 4 + len(b)) + b for sid, b in sets)
    return struct.pack(">HHIII", 10, 16 + len(body), 1_700_000_000, sequence, domain) + body


def template_set(template_id: int, fields: list[tuple[int, int]]) -> tuple[int, bytes]:
    body = struct.pack(">HH", template_id, len(fields))
    body += b"".join(struct.pack(">HH", eid, length) for eid, length in fields)
    return 2, body


def test_feed_decodes_a_stream_split_at_every_offset():
    enc = encoder()
    stream = b"".join(enc.template_messages() + enc.encode(256, ROWS))
    for cut in range(len(stream) + 1):
        s = Session()
        records = s.feed(stream[:cut]) + s.feed(stream[cut:])
        assert [r.values for r in records] == ROWS
        assert s.buffered == 0


def test_feed_takes_any_bytes_like_chunk():
    enc = encoder()
    stream = b"".join(enc.template_messages() + enc.encode(256, ROWS))
    for chunk in (bytearray(stream), memoryview(stream)):
        assert [r.values for r in Session().feed(chunk)] == ROWS
    s = Session()
    records = s.feed(memoryview(stream)[:30]) + s.feed(bytearray(stream[30:]))
    assert [r.values for r in records] == ROWS


def test_feed_rejects_a_bad_header_completed_by_a_later_chunk():
    enc = encoder()
    good = b"".join(enc.template_messages() + enc.encode(256, ROWS))
    bad = b"\x00\x09" + good[2:16]
    s = Session()
    assert len(s.feed(good + bad[:7])) == 2
    with pytest.raises(DecodeError, match="version 9") as raised:
        s.feed(bad[7:])
    assert raised.value.offset == len(good) and raised.value.records == []
    assert s.stats.malformed_messages == 1


def test_feed_keeps_a_partial_message_for_the_next_call():
    enc = encoder()
    stream = b"".join(enc.template_messages() + enc.encode(256, ROWS))
    s = Session()
    assert s.feed(stream[:-1]) == []
    assert s.buffered > 0
    assert len(s.feed(stream[-1:])) == 2


def test_end_of_stream_inside_a_message_is_a_decode_error():
    enc = encoder()
    s = Session()
    s.feed(enc.template_messages()[0][:10])
    with pytest.raises(DecodeError, match="stream ended inside a message"):
        s.end_of_stream()
    assert s.stats.malformed_messages == 1


def test_records_carry_header_facts():
    enc = encoder(domain=7)
    s = Session()
    s.feed(b"".join(enc.template_messages()))
    (first,) = s.feed(enc.encode(256, ROWS[:1])[0])
    (second,) = s.feed(enc.encode(256, ROWS[1:])[0])
    assert (first.template_id, first.observation_domain_id, first.export_time) == (256, 7, 1_700_000_000)
    assert (first.sequence_number, second.sequence_number) == (0, 1)


def test_record_values_by_name_and_to_dict():
    enc = encoder()
    s = Session()
    (record, _) = s.feed(b"".join(enc.template_messages() + enc.encode(256, ROWS)))
    assert record["sourcePodName"] == "web-0"
    assert record.get("missing", "x") == "x"
    assert record.to_dict() == dict(zip(FIELDS, ROWS[0], strict=True))


def test_truncated_datagram_is_malformed_not_kept():
    enc = encoder()
    s = Session()
    s.decode_datagram(enc.template_messages()[0])
    data = enc.encode(256, ROWS)[0]
    with pytest.raises(DecodeError, match="truncated") as info:
        s.decode_datagram(data[:-3])
    assert info.value.offset == 0
    assert s.stats.malformed_messages == 1
    assert s.buffered == 0


def test_datagram_with_two_messages_decodes_both():
    enc = encoder()
    s = Session()
    assert len(s.decode_datagram(b"".join(enc.template_messages() + enc.encode(256, ROWS)))) == 2


def test_wrong_version_raises_and_keeps_earlier_records():
    enc = encoder()
    good = b"".join(enc.template_messages() + enc.encode(256, ROWS))
    bad = b"\x00\x09" + good[2:16]
    s = Session()
    with pytest.raises(DecodeError, match="version 9") as info:
        s.feed(good + bad)
    assert len(info.value.records) == 2
    assert info.value.offset == len(good)
    with pytest.raises(DecodeError, match="lost its framing"):
        s.feed(good)


def test_decode_error_is_a_value_error():
    assert issubclass(DecodeError, ValueError)


def test_message_length_shorter_than_header_is_rejected():
    with pytest.raises(DecodeError, match="shorter than its header"):
        Session().decode_datagram(struct.pack(">HHIII", 10, 12, 0, 0, 0))


def test_several_sets_and_records_in_one_message():
    tset = template_set(300, [(4, 1), (7, 2)])
    data = (300, bytes([6, 0, 80, 17, 0, 53]))
    s = Session()
    records = s.decode_datagram(message([tset, data, data]))
    assert [r.values for r in records] == [(6, 80), (17, 53)] * 2


def test_zero_padding_is_skipped_silently():
    s = Session()
    s.decode_datagram(message([template_set(300, [(4, 1), (7, 2)])]))
    records = s.decode_datagram(message([(300, bytes([6, 0, 80, 0, 0]))]))
    assert len(records) == 1
    assert not any(isinstance(e, NonZeroPadding) for e in s.take_events())
    assert s.stats.nonzero_padding == 0


def test_nonzero_padding_is_warned_not_fatal():
    s = Session()
    s.decode_datagram(message([template_set(300, [(4, 1), (7, 2)])]))
    s.take_events()
    records = s.decode_datagram(message([(300, bytes([6, 0, 80, 9, 9]))]))
    assert len(records) == 1
    assert s.stats.nonzero_padding == 1
    assert isinstance(s.take_events()[0], NonZeroPadding)


def test_same_element_twice_keeps_both_values():
    s = Session()
    s.decode_datagram(message([template_set(300, [(8, 4), (8, 4)])]))
    (record,) = s.decode_datagram(message([(300, bytes([1, 1, 1, 1, 2, 2, 2, 2]))]))
    assert record["sourceIPv4Address"] == ["1.1.1.1", "2.2.2.2"]
    assert record.to_dict() == {"sourceIPv4Address": ["1.1.1.1", "2.2.2.2"]}


def test_data_set_before_its_template_is_held_then_decoded():
    enc = encoder()
    s = Session()
    assert s.feed(enc.encode(256, ROWS)[0]) == []
    assert s.stats.missing_template_sets == 1
    assert isinstance(s.take_events()[0], MissingTemplate)
    records = s.feed(enc.template_messages()[0])
    assert [r.values for r in records] == ROWS
    assert records[0].sequence_number == 0
    assert s.stats.pending_decoded_sets == 1


def test_held_sets_a_template_releases_do_not_count_for_its_message_sequence():
    enc = encoder()
    s = Session()
    s.decode_datagram(enc.encode(256, ROWS)[0])  # before its template: held
    assert len(s.decode_datagram(enc.template_messages()[0])) == 2
    s.take_events()
    assert len(s.decode_datagram(enc.encode(256, ROWS)[0])) == 2
    assert s.take_events() == []
    assert s.stats.sequence_gaps == 0 and s.stats.out_of_order == 0


def test_held_data_sets_are_bounded():
    enc = encoder()
    s = Session(max_pending_sets=2)
    for _ in range(3):
        s.feed(enc.encode(256, ROWS[:1])[0])
    assert s.stats.pending_dropped_sets == 1
    assert any(isinstance(e, PendingSetDropped) for e in s.take_events())
    assert len(s.feed(enc.template_messages()[0])) == 2


def test_sets_still_waiting_for_their_template_when_the_stream_ends_are_dropped_and_counted():
    enc = encoder()
    s = Session()
    s.feed(enc.encode(256, ROWS)[0])
    s.take_events()
    s.end_of_stream()
    assert s.stats.pending_dropped_sets == 1
    assert s.take_events() == [PendingSetDropped(1, 256, session_ended=True)]
    assert s.feed(enc.template_messages()[0]) == []  # nothing is left to release


def test_closing_a_datagram_session_drops_the_sets_still_waiting_once():
    enc = encoder()
    s = Session(template_lifetime=1800)
    s.decode_datagram(enc.encode(256, ROWS[:1])[0], now=0)
    s.decode_datagram(enc.encode(256, ROWS[1:])[0], now=1)
    s.close()
    s.close()
    assert s.stats.pending_dropped_sets == 2
    assert [e for e in s.take_events() if isinstance(e, PendingSetDropped)] == \
        [PendingSetDropped(1, 256, session_ended=True)] * 2


def test_a_stream_ending_inside_a_message_still_drops_the_waiting_sets():
    enc = encoder()
    s = Session()
    s.feed(enc.encode(256, ROWS)[0] + enc.template_messages()[0][:10])
    with pytest.raises(DecodeError):
        s.end_of_stream()
    assert s.stats.pending_dropped_sets == 1


def test_sequence_gap_is_counted_and_warned():
    enc = encoder()
    s = Session()
    s.feed(b"".join(enc.template_messages() + enc.encode(256, ROWS)))
    enc.encode(256, ROWS)  # lost in transit
    s.take_events()
    assert len(s.feed(enc.encode(256, ROWS)[0])) == 2
    assert s.stats.sequence_gaps == 1 and s.stats.missing_records == 2
    assert s.take_events() == [SequenceGap(1, expected=2, received=4, missing=2)]


def test_sequence_out_of_order_is_counted_not_rejected():
    enc = encoder()
    s = Session()
    s.decode_datagram(enc.template_messages()[0])
    first = enc.encode(256, ROWS)[0]
    second = enc.encode(256, ROWS)[0]
    s.decode_datagram(second)
    s.take_events()
    assert len(s.decode_datagram(first)) == 2
    assert s.stats.out_of_order == 1
    assert isinstance(s.take_events()[0], SequenceOutOfOrder)


def test_sequence_numbers_are_tracked_per_domain():
    one, two = encoder(domain=1), encoder(domain=2)
    s = Session()
    s.feed(b"".join(one.template_messages() + two.template_messages()))
    for _ in range(3):
        s.feed(b"".join(one.encode(256, ROWS) + two.encode(256, ROWS[:1])))
    assert s.stats.sequence_gaps == 0 and s.stats.out_of_order == 0


def test_sequence_number_wraps_modulo_2_to_the_32():
    enc = encoder()
    enc.sequence_number = 2**32 - 1
    s = Session()
    s.feed(b"".join(enc.template_messages() + enc.encode(256, ROWS) + enc.encode(256, ROWS)))
    assert enc.sequence_number == 3
    assert s.stats.sequence_gaps == 0


def test_templates_are_scoped_by_observation_domain():
    a, b = encoder(domain=1), Encoder(2, export_time=lambda: 0)
    b.add_template(256, ["protocolIdentifier"])
    s = Session()
    s.feed(b"".join(a.template_messages() + b.template_messages()))
    (ra,) = s.feed(a.encode(256, ROWS[:1])[0])
    (rb,) = s.feed(b.encode(256, [(6,)])[0])
    assert ra.values == ROWS[0] and rb.values == (6,)


def test_redefinition_replaces_the_template():
    enc = encoder()
    s = Session()
    s.feed(enc.template_messages()[0])
    enc.add_template(256, ["protocolIdentifier"])
    s.feed(enc.template_messages()[0])
    events = s.take_events()
    assert isinstance(events[-1], TemplateRedefined)
    assert s.feed(enc.encode(256, [(17,)])[0])[0].values == (17,)
    assert s.stats.templates_redefined == 1


def test_resending_the_same_template_is_no_event():
    enc = encoder()
    s = Session()
    s.feed(enc.template_messages()[0])
    s.feed(enc.template_messages()[0])
    assert [type(e) for e in s.take_events()] == [TemplateAdded]


def test_withdrawal_of_one_template():
    enc = encoder()
    s = Session()
    s.feed(enc.template_messages()[0])
    data = enc.encode(256, ROWS)[0]
    s.feed(enc.withdraw(256))
    assert s.template(1, 256) is None
    assert TemplateWithdrawn(1, 256) in s.take_events()
    assert s.feed(data) == [] and s.stats.missing_template_sets == 1


def test_withdrawal_of_all_templates_of_a_domain_keeps_options_templates():
    enc = encoder()
    enc.add_template(257, ["protocolIdentifier"])
    enc.add_template(258, ["templateId", "exportingProcessId"], scope_count=1)
    s = Session()
    s.feed(b"".join(enc.template_messages()))
    s.decode_datagram(message([(2, struct.pack(">HH", 2, 0))]))
    assert set(s.templates) == {(1, 258)}
    assert s.stats.templates_withdrawn == 2


def test_withdrawal_of_all_options_templates():
    enc = encoder()
    enc.add_template(258, ["templateId", "exportingProcessId"], scope_count=1)
    s = Session()
    s.feed(b"".join(enc.template_messages()))
    s.decode_datagram(message([(3, struct.pack(">HH", 3, 0))]))
    assert set(s.templates) == {(1, 256)}


def test_options_template_records_have_scope():
    enc = encoder()
    enc.add_template(258, ["templateId", "exportingProcessId"], scope_count=1)
    s = Session()
    (record,) = s.feed(b"".join(enc.template_messages() + enc.encode(258, [(256, 42)])))
    assert record.is_options and record.scope == {"templateId": 256}
    assert s.stats.options_records == 1


def test_udp_template_expires_after_its_lifetime():
    enc = encoder()
    s = Session(template_lifetime=1800)
    s.decode_datagram(enc.template_messages()[0], now=0.0)
    assert len(s.decode_datagram(enc.encode(256, ROWS)[0], now=1799.0)) == 2
    assert s.decode_datagram(enc.encode(256, ROWS)[0], now=1801.0) == []
    assert s.stats.templates_expired == 1
    assert TemplateExpired(1, 256) in s.take_events()


def test_refreshed_template_does_not_expire():
    enc = encoder()
    s = Session(template_lifetime=1800)
    s.decode_datagram(enc.template_messages()[0], now=0.0)
    s.decode_datagram(enc.template_messages()[0], now=1000.0)
    assert len(s.decode_datagram(enc.encode(256, ROWS)[0], now=2500.0)) == 2


def test_expire_templates_sweeps_stale_ones():
    s = Session(template_lifetime=10)
    s.decode_datagram(encoder().template_messages()[0], now=0.0)
    assert s.expire_templates(now=11.0) == 1
    assert s.templates == {}


def test_unknown_element_decodes_as_octets_and_is_reported():
    s = Session()
    s.decode_datagram(message([(2, struct.pack(">HHHHHHI", 300, 2, 8, 4, 0x8000 | 999, 2, 56506))]))
    (record,) = s.decode_datagram(message([(300, bytes([1, 2, 3, 4, 0xAB, 0xCD]))]))
    assert record.to_dict() == {"sourceIPv4Address": "1.2.3.4", "en56506:id999": "abcd"}
    assert s.stats.unknown_elements == 1 and s.stats.unknown_element_names == {"en56506:id999"}
    assert UnknownElement(1, 300, 56506, 999, "en56506:id999") in s.take_events()


def test_unknown_element_names_are_kept_up_to_a_bound_and_every_one_is_counted():
    # A template flood with ever new unknown elements must not grow the session's memory.
    enc = Encoder(1, export_time=lambda: 1_700_000_000)
    s = Session()
    sent = 0
    for template_id in range(256, 256 + MAX_UNKNOWN_NAMES // 100 * 3):
        enc.add_template(template_id, [(InformationElement(f"en{template_id}:id{i}", i, template_id), 4)
                                       for i in range(1, 101)])
        sent += 100
    for m in enc.template_messages():
        s.decode_datagram(m)
    assert s.stats.unknown_elements == sent > MAX_UNKNOWN_NAMES
    assert len(s.stats.unknown_element_names) == MAX_UNKNOWN_NAMES


def test_field_length_that_does_not_suit_the_type_decodes_as_octets():
    s = Session()
    s.decode_datagram(message([template_set(300, [(8, 3)])]))
    (record,) = s.decode_datagram(message([(300, bytes([1, 2, 3]))]))
    assert record["sourceIPv4Address"] == b"\x01\x02\x03"
    assert s.stats.invalid_field_lengths == 1
    assert any(isinstance(e, InvalidFieldLength) for e in s.take_events())


def test_reduced_size_integers_decode():
    s = Session()
    s.decode_datagram(message([template_set(300, [(1, 3), (2, 5)])]))
    (record,) = s.decode_datagram(message([(300, bytes([0, 1, 0, 0, 0, 0, 1, 0]))]))
    assert record.values == (256, 256)


def test_bad_set_does_not_lose_the_good_sets_around_it():
    tset = template_set(300, [(4, 1), (7, 2)])
    good = (300, bytes([6, 0, 80]))
    bad = (4, b"\x00\x00\x00\x00")  # reserved set id
    s = Session()
    records = s.decode_datagram(message([tset, good, bad, good]))
    assert len(records) == 2
    assert s.stats.malformed_sets == 1
    assert [type(e) for e in s.take_events()] == [TemplateAdded, MalformedSet]


def test_set_length_past_the_message_is_reported_and_earlier_sets_kept():
    tset = template_set(300, [(4, 1)])
    msg = bytearray(message([tset, (300, b"\x06"), (300, b"\x11")]))
    msg[-3:-1] = struct.pack(">H", 40)  # last set header (5 octets from the end): length
    s = Session()
    assert [r.values for r in s.decode_datagram(bytes(msg))] == [(6,)]
    (event,) = [e for e in s.take_events() if isinstance(e, MalformedSet)]
    assert "claims 40 octets" in event.error.reason


def test_template_with_more_fields_than_fit_is_malformed():
    s = Session()
    body = struct.pack(">HHHH", 300, 5, 8, 4)
    s.decode_datagram(message([(2, body)]))
    (event,) = s.take_events()
    assert isinstance(event, MalformedSet) and "more fields than fit" in event.error.reason
    assert s.template(1, 300) is None


def test_template_with_more_fields_than_the_cap_is_refused_as_malformed():
    s = Session(max_template_fields=3)
    s.decode_datagram(message([template_set(300, [(4, 1)] * 3), template_set(301, [(4, 1)] * 4)]))
    (event,) = [e for e in s.take_events() if isinstance(e, MalformedSet)]
    assert "template 301 has 4 fields, more than the limit of 3" in event.error.reason
    assert s.template(1, 300) is not None and s.template(1, 301) is None


def test_invalid_redefinition_removes_the_old_template():
    s = Session()
    s.decode_datagram(message([template_set(300, [(4, 1)])]))
    s.decode_datagram(message([(2, struct.pack(">HHHH", 300, 5, 8, 4))]))
    assert s.template(1, 300) is None


def test_varlen_field_running_past_its_set_is_malformed():
    s = Session()
    s.decode_datagram(message([template_set(300, [(4, 1), (82, 65535)])]))
    records = s.decode_datagram(message([(300, bytes([6, 10]) + b"abc"), (300, bytes([6, 1, 65]))]))
    assert [r.values for r in records] == [(6, "A")]
    assert s.stats.malformed_sets == 1
    (event,) = [e for e in s.take_events() if isinstance(e, MalformedSet)]
    assert "past the end of its set" in event.error.reason


def test_reserved_template_id_is_malformed():
    s = Session()
    s.decode_datagram(message([template_set(255, [(4, 1)])]))
    assert s.stats.malformed_sets == 1 and s.templates == {}


def test_options_template_with_zero_scope_is_malformed():
    s = Session()
    s.decode_datagram(message([(3, struct.pack(">HHHHH", 300, 1, 0, 4, 1))]))
    assert s.stats.malformed_sets == 1 and s.templates == {}


def test_take_events_drains():
    s = Session()
    s.feed(encoder().template_messages()[0])
    assert len(s.take_events()) == 1
    assert s.take_events() == []


def test_data_set_waiting_for_a_sub_template_is_held_then_decoded():
    from ipfix_antrea import SubTemplateList

    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(300, ["sourceIPv4Address"])
    enc.add_template(301, ["subTemplateList"])
    inner, outer = enc.template_messages([300]), enc.template_messages([301])
    data = enc.encode(301, [(SubTemplateList(300, [("10.0.0.1",)]),)])
    s = Session()
    s.feed(b"".join(outer + data))  # the sub-template 300 is late (UDP reordering)
    assert s.stats.malformed_sets == 0 and s.stats.missing_template_sets == 1
    (record,) = s.feed(b"".join(inner))
    assert record.to_dict() == {"subTemplateList": [{"sourceIPv4Address": "10.0.0.1"}]}


def test_fixed_field_cut_by_the_end_of_the_message_is_malformed():
    s = Session()
    s.decode_datagram(message([template_set(300, [(82, 65535), (8, 4)])]))
    # "ab", then 2 of the address's 4 octets: the set (and the message) ends inside the record.
    records = s.decode_datagram(message([(300, bytes([2, 97, 98, 1, 2]))]))
    assert records == [] and s.stats.malformed_sets == 1
    (event,) = [e for e in s.take_events() if isinstance(e, MalformedSet)]
    assert "record of template 300 is truncated" in event.error.reason


def test_template_of_only_zero_length_fields_is_malformed():
    s = Session()
    s.decode_datagram(message([template_set(300, [(313, 0)])]))  # ipHeaderPacketSection, 0 octets
    (event,) = s.take_events()
    assert isinstance(event, MalformedSet) and "describes empty records" in event.error.reason
    assert s.templates == {} and s.stats.malformed_sets == 1


def test_bytes_after_the_last_message_of_a_datagram_are_malformed():
    enc = encoder()
    s = Session()
    template = enc.template_messages()[0]
    with pytest.raises(DecodeError, match="5 octets are too few for a message header") as info:
        s.decode_datagram(template + b"\x00\x0a\x00\x00\x00")
    assert info.value.offset == len(template)
    assert s.template(1, 256) is not None  # the complete message before still counted
    assert s.stats.malformed_messages == 1


# --------------------------------------------------------------------------------------------
# templates saved and restored


def test_exported_templates_are_the_template_records_the_exporter_sent():
    enc = encoder()
    (msg,) = enc.template_messages()
    s = Session()
    s.feed(msg)
    (saved,) = s.export_templates()
    assert saved == SavedTemplate(1, msg[20:], options=False, age=None)  # after message and set headers


def test_exported_templates_keep_the_bytes_even_where_the_encoding_is_unusual():
    # sourceIPv4Address with the enterprise bit set and enterprise number 0: decoded as IANA's,
    # saved as sent (a rebuilt record would drop the four octets)
    record = struct.pack(">HHHHI", 300, 1, 0x8000 | 8, 4, 0)
    s = Session()
    s.decode_datagram(message([(2, record)]))
    assert s.template(1, 300).names == ("sourceIPv4Address",)
    (saved,) = s.export_templates()
    assert saved.record == record
    assert Session().import_templates([saved]) == []


def test_imported_templates_decode_the_data_of_a_new_session():
    enc = encoder()
    old = Session()
    old.feed(b"".join(enc.template_messages()))
    new = Session()
    assert new.import_templates(old.export_templates()) == []
    assert [r.values for r in new.feed(enc.encode(256, ROWS)[0])] == ROWS
    assert new.stats.templates_added == 1
    assert [type(e) for e in new.take_events()] == [TemplateAdded]


def test_options_templates_unknown_elements_and_several_domains_survive_export_and_import():
    enc = Encoder(3, export_time=lambda: 1_700_000_000)
    enc.add_template(300, ["templateId", "exportingProcessId"], scope_count=1)
    enc.add_template(256, FIELDS)
    enc.add_template(257, [("octetDeltaCount", 4), "en99:id7"])
    other = encoder(domain=4)
    s = Session()
    s.feed(b"".join(enc.template_messages() + other.template_messages()))
    new = Session()
    new.import_templates(s.export_templates())
    assert new.templates == s.templates
    assert new.template(3, 300).scope_count == 1


def test_import_releases_data_sets_held_for_the_template():
    enc = encoder()
    saved = Session()
    saved.feed(b"".join(enc.template_messages()))
    s = Session()
    s.feed(enc.encode(256, ROWS)[0])
    assert [r.values for r in s.import_templates(saved.export_templates())] == ROWS


def test_template_age_is_exported_and_honoured_on_import():
    enc = encoder()
    s = Session(template_lifetime=100)
    s.decode_datagram(enc.template_messages()[0], now=1000)
    (saved,) = s.export_templates(now=1030)
    assert saved.age == 30
    new = Session(template_lifetime=100)
    new.import_templates([saved], now=5000)  # refreshed at 4970 as far as it knows: expires after 5070
    assert len(new.decode_datagram(enc.encode(256, ROWS)[0], now=5060)) == 2
    assert new.decode_datagram(enc.encode(256, ROWS)[0], now=5071) == []
    assert new.stats.templates_expired == 1


def test_a_template_whose_lifetime_ran_out_while_saved_is_not_imported():
    enc = encoder()
    s = Session(template_lifetime=100)
    s.decode_datagram(enc.template_messages()[0], now=0)
    (saved,) = s.export_templates(now=50)
    stale = SavedTemplate(saved.observation_domain_id, saved.record, saved.options, age=101)
    new = Session(template_lifetime=100)
    new.import_templates([stale], now=0)
    assert new.templates == {} and new.stats.templates_added == 0
    assert s.export_templates(now=101) == []  # nor exported once expired


def test_import_ignores_age_where_templates_do_not_expire():
    enc = encoder()
    s = Session()
    s.feed(enc.template_messages()[0])
    (saved,) = s.export_templates()
    new = Session()
    new.import_templates([SavedTemplate(1, saved.record, age=1e9)])
    assert len(new.feed(enc.encode(256, ROWS)[0])) == 2


@pytest.mark.parametrize("record, why", [
    (bytes.fromhex("0100000300080004"), "cut short"),                          # 3 fields, 1 there
    (bytes.fromhex("01000001000800040000"), "not one template record"),        # 2 octets too many
    (bytes.fromhex("01000000"), "not one template record"),                    # a withdrawal
    (bytes.fromhex("0010000100080004"), "reserved"),                           # template id 16
], ids=["short", "trailing", "withdrawal", "reserved-id"])
def test_a_record_that_is_not_one_valid_template_is_refused_and_those_before_it_stay(record, why):
    enc = encoder()
    good = Session()
    good.feed(enc.template_messages()[0])
    s = Session()
    with pytest.raises(DecodeError, match=why):
        s.import_templates([*good.export_templates(), SavedTemplate(1, record)])
    assert s.template(1, 256) is not None
    assert s.template(1, 16) is None and len(s.templates) == 1


def test_import_applies_the_template_field_cap():
    enc = encoder()
    s = Session()
    s.feed(enc.template_messages()[0])
    capped = Session(max_template_fields=2)
    with pytest.raises(DecodeError, match="more than the limit of 2"):
        capped.import_templates(s.export_templates())
    assert capped.templates == {}


def test_reset_sequence_numbers_starts_the_count_again():
    enc = encoder()
    s = Session()
    s.feed(b"".join(enc.template_messages() + enc.encode(256, ROWS)))
    restarted = encoder()  # a new exporting process: its sequence numbers start at 0 again
    s.reset_sequence_numbers()
    s.feed(b"".join(restarted.encode(256, ROWS)))
    assert s.stats.sequence_gaps == 0 and s.stats.out_of_order == 0
