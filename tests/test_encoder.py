"""Encoder behaviour: message splitting, sequence numbers, template (re)sending, bad values."""

from __future__ import annotations

import math

import pytest

from ipfix_antrea import Encoder, Session
from ipfix_antrea.wire import MessageHeader

ROW = ("10.0.0.1", "10.0.0.2", "frontend-7d9c8b6f5-x2k4p")
FIELDS = ["sourceIPv4Address", "destinationIPv4Address", "sourcePodName"]


def make(**kw) -> Encoder:
    enc = Encoder(1, export_time=lambda: 1_700_000_000, **kw)
    enc.add_template(256, FIELDS)
    return enc


def test_messages_are_split_at_the_size_limit():
    enc = make(max_message_size=200)
    messages = enc.encode(256, [ROW] * 20)
    assert len(messages) > 1 and all(len(m) <= 200 for m in messages)
    s = Session()
    s.feed(b"".join(enc.template_messages()))
    assert len(s.feed(b"".join(messages))) == 20


def test_sequence_numbers_count_data_records_before_each_message():
    enc = make(max_message_size=200)
    messages = enc.encode(256, [ROW] * 20)
    sequences = [MessageHeader.parse(m).sequence_number for m in messages]
    per_message = [(b - a) for a, b in zip(sequences, [*sequences[1:], 20], strict=True)]
    assert sequences[0] == 0 and sum(per_message) == 20 and enc.sequence_number == 20


def test_template_messages_do_not_advance_the_sequence_number():
    enc = make()
    enc.template_messages()
    assert enc.sequence_number == 0


def test_record_too_large_for_a_message_is_refused():
    enc = make(max_message_size=64)
    with pytest.raises(ValueError, match="does not fit a message"):
        enc.encode(256, [("10.0.0.1", "10.0.0.2", "x" * 100)])


def test_records_may_be_given_by_name():
    enc = make()
    s = Session()
    s.feed(b"".join(enc.template_messages()))
    (record,) = s.feed(enc.encode(256, [dict(zip(FIELDS, ROW, strict=True))])[0])
    assert record.values == ROW


def test_record_missing_a_field_by_name_is_refused():
    with pytest.raises(ValueError, match="lacks sourcePodName"):
        make().encode(256, [{"sourceIPv4Address": "10.0.0.1", "destinationIPv4Address": "10.0.0.2"}])


def test_value_that_does_not_fit_its_field_is_refused():
    enc = make()
    enc.add_template(257, [("octetDeltaCount", 2)])
    with pytest.raises(ValueError, match="does not fit unsigned64 in 2 octets"):
        enc.encode(257, [(70000,)])


def test_template_ids_below_256_are_refused():
    with pytest.raises(ValueError, match=r"outside 256\.\.65535"):
        Encoder().add_template(255, ["octetDeltaCount"])


def test_without_refresh_encode_sends_no_templates():
    assert len(make().encode(256, [ROW])) == 1


def test_refresh_sends_templates_before_first_use_then_when_due():
    now = [0.0]
    enc = make(template_refresh=600, clock=lambda: now[0])
    first = enc.encode(256, [ROW])
    assert len(first) == 2 and MessageHeader.parse(first[0]).length == len(first[0])
    now[0] = 599.0
    assert len(enc.encode(256, [ROW])) == 1
    now[0] = 600.0
    assert len(enc.encode(256, [ROW])) == 2
    s = Session()
    assert len(s.feed(b"".join(first))) == 1


def test_infinite_refresh_sends_each_template_once():
    enc = make(template_refresh=math.inf)
    assert len(enc.encode(256, [ROW])) == 2
    assert len(enc.encode(256, [ROW])) == 1


def test_redefined_template_is_sent_again():
    enc = make(template_refresh=math.inf)
    enc.encode(256, [ROW])
    enc.add_template(256, ["protocolIdentifier"])
    assert len(enc.encode(256, [(6,)])) == 2


def test_withdrawal_message_removes_the_template_from_a_session():
    enc = make()
    s = Session()
    s.feed(b"".join(enc.template_messages()))
    s.feed(enc.withdraw(256))
    assert s.template(1, 256) is None


def sequence_numbers(messages: list[bytes]) -> list[int]:
    return [MessageHeader.parse(m).sequence_number for m in messages]


def test_refreshed_templates_carry_the_count_of_records_sent_before_them():
    """RFC 7011 §3.1: the template message in front of a batch carries the count before the
    batch, like the batch's first data message; a collector sees nothing out of order."""
    now = [0.0]
    enc = make(template_refresh=600, clock=lambda: now[0])
    first = enc.encode(256, [ROW] * 3)
    now[0] = 600.0
    second = enc.encode(256, [ROW] * 2)
    assert sequence_numbers(first) == [0, 0] and sequence_numbers(second) == [3, 3]
    s = Session()
    assert len(s.feed(b"".join(first + second))) == 5
    assert (s.stats.out_of_order, s.stats.sequence_gaps) == (0, 0)


def test_templates_and_withdrawals_after_data_carry_the_current_count():
    enc = make()
    enc.encode(256, [ROW] * 4)
    assert sequence_numbers([*enc.template_messages(), enc.withdraw(256)]) == [4, 4]


def test_a_refused_batch_changes_neither_the_sequence_number_nor_the_due_templates():
    enc = make(max_message_size=100, template_refresh=math.inf)
    with pytest.raises(ValueError, match="does not fit a message of 100"):
        enc.encode(256, [ROW] * 3 + [("10.0.0.1", "10.0.0.2", "x" * 100)])
    assert enc.sequence_number == 0
    messages = enc.encode(256, [ROW])
    assert len(messages) == 2 and sequence_numbers(messages) == [0, 0]


def test_a_refused_template_request_marks_no_template_as_sent():
    enc = make(template_refresh=math.inf)
    with pytest.raises(KeyError):
        enc.template_messages([256, 999])
    assert len(enc.encode(256, [ROW])) == 2  # 256 is still due


def test_a_withdrawal_larger_than_the_size_cap_is_refused_and_the_template_kept():
    enc = Encoder(1, max_message_size=23)
    enc.add_template(256, ["protocolIdentifier"])
    with pytest.raises(ValueError, match="a record of 4 octets does not fit a message of 23"):
        enc.withdraw(256)
    assert enc.template(256) is not None
