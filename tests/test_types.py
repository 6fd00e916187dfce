"""Abstract data types: Python values and their JSON rendering (docs/json.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from ipfix_antrea import Encoder, Session
from ipfix_antrea.types import data_type


def decode_one(fields, values):
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(256, fields)
    (record,) = Session().feed(b"".join(enc.template_messages() + enc.encode(256, [values])))
    return record


@pytest.mark.parametrize("name, value, rendered", [
    ("dateTimeSeconds", 1_714_564_800, "2024-05-01T12:00:00Z"),
    ("dateTimeMilliseconds", 1_714_564_800_123, "2024-05-01T12:00:00.123Z"),
    ("dateTimeMicroseconds", 1_714_564_800_123_456, "2024-05-01T12:00:00.123456Z"),
    ("dateTimeNanoseconds", 1_714_564_800_123_456_789, "2024-05-01T12:00:00.123456789Z"),
])
def test_timestamps_render_as_iso8601_utc_with_their_precision(name, value, rendered):
    assert data_type(name).to_json(value) == rendered


def test_timestamp_beyond_the_calendar_stays_a_number():
    assert data_type("dateTimeMilliseconds").to_json(2**63) == 2**63


def test_ntp_microseconds_are_converted_to_unix_time():
    # 2024-05-01T12:00:00.5Z in NTP format: seconds since 1900, half of 2**32 as fraction.
    raw = ((1_714_564_800 + 2_208_988_800) << 32) | (1 << 31)
    assert data_type("dateTimeMicroseconds").decode(raw.to_bytes(8, "big")) == 1_714_564_800_500_000


def test_encoder_accepts_datetimes_for_timestamps():
    when = datetime(2024, 5, 1, 12, 0, 0, 250_000, tzinfo=UTC)
    record = decode_one(["flowStartMilliseconds", "flowEndSeconds"], (when, when))
    assert record.to_dict() == {"flowStartMilliseconds": "2024-05-01T12:00:00.250Z",
                                "flowEndSeconds": "2024-05-01T12:00:00Z"}


def test_booleans_are_true_and_false():
    assert decode_one(["dataRecordsReliability", "isMulticast"], (True, 1)).to_dict() \
        == {"dataRecordsReliability": True, "isMulticast": 1}
    assert decode_one(["dataRecordsReliability"], (False,))["dataRecordsReliability"] is False


def test_addresses_are_canonical_strings():
    record = decode_one(["sourceIPv6Address", "sourceMacAddress"],
                        ("2001:0db8:0000::0001", "00:1B:21:AA:BB:CC"))
    assert record.to_dict() == {"sourceIPv6Address": "2001:db8::1",
                                "sourceMacAddress": "00:1b:21:aa:bb:cc"}


def test_invalid_utf8_is_replaced_never_raised():
    record = decode_one(["sourcePodName"], (b"pod-\xff\xfe",))
    assert record["sourcePodName"] == "pod-\ufffd\ufffd"


def test_octet_arrays_render_as_lowercase_hex():
    assert decode_one(["sourcePodUUID"], (bytes(range(16)),)).to_dict() \
        == {"sourcePodUUID": "000102030405060708090a0b0c0d0e0f"}


def test_non_finite_floats_render_as_strings():
    record = decode_one(["samplingProbability", "absoluteError"], (float("nan"), float("-inf")))
    assert orjson.loads(orjson.dumps(record.to_dict())) == {"samplingProbability": "NaN",
                                                             "absoluteError": "-Infinity"}


def test_fixed_length_strings_drop_nul_padding():
    assert decode_one([("interfaceName", 8)], ("eth0",))["interfaceName"] == "eth0"


@pytest.mark.parametrize("name, length, ok", [
    ("unsigned64", 3, True), ("unsigned64", 9, False), ("signed32", 1, True),
    ("float64", 4, True), ("float64", 2, False), ("ipv4Address", 16, False),
    ("boolean", 2, False), ("string", 100, True), ("dateTimeSeconds", 8, False),
])
def test_valid_field_lengths_follow_rfc7011_reduced_size_rules(name, length, ok):
    assert data_type(name).valid_length(length) is ok


def test_unknown_type_name_is_a_value_error():
    with pytest.raises(ValueError, match="unknown abstract data type"):
        data_type("unsigned128")
