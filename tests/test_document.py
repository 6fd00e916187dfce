"""document.to_document: the Logstash netflow-codec event shape the Antrea dashboards read."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
import pytest

from ipfix_antrea.documents import logstash_timestamp, to_document

EXPORT_TIME = 1714564800  # 2024-05-01T12:00:00Z


@dataclass
class FakeRecord:
    """The three things to_document reads from an ipfix_antrea.Record."""

    template_id: int = 256
    export_time: int = EXPORT_TIME
    values: dict = field(default_factory=lambda: {"sourcePodName": "pod-a", "octetDeltaCount": 42})

    def to_dict(self) -> dict:
        return dict(self.values)


def test_timestamp_is_the_export_time_in_logstash_format():
    assert to_document(FakeRecord())["@timestamp"] == "2024-05-01T12:00:00.000Z"


def test_timestamp_of_epoch_zero():
    assert logstash_timestamp(0) == "1970-01-01T00:00:00.000Z"


def test_logstash_envelope_fields():
    doc = to_document(FakeRecord())
    assert doc["@version"] == "1"
    assert doc["type"] == "ipfix"


def test_host_is_the_exporter_when_known():
    assert to_document(FakeRecord(), "10.0.0.7")["host"] == "10.0.0.7"


def test_host_is_omitted_when_unknown():
    assert "host" not in to_document(FakeRecord(), None)


def test_ipfix_object_has_version_10_and_the_template_id_as_flowset_id():
    ipfix = to_document(FakeRecord(template_id=257))["ipfix"]
    assert ipfix["version"] == 10
    assert ipfix["flowset_id"] == 257


def test_ipfix_object_has_every_element_by_name():
    ipfix = to_document(FakeRecord())["ipfix"]
    assert ipfix == {"version": 10, "flowset_id": 256, "sourcePodName": "pod-a", "octetDeltaCount": 42}


def test_no_derived_filter_fields_are_added():
    ipfix = to_document(FakeRecord(values={"octetTotalCount": 5, "protocolIdentifier": 6}))["ipfix"]
    assert "bytes" not in ipfix and "flowKey" not in ipfix
    assert ipfix["protocolIdentifier"] == 6  # stays numeric: no "TCP" rewriting here


def test_document_of_a_decoded_record_serialises_with_orjson():
    from ipfix_antrea import Encoder, Session

    enc = Encoder(observation_domain_id=1, export_time=lambda: EXPORT_TIME)
    enc.add_template(256, ["flowStartSeconds", "flowEndSeconds", "sourceIPv4Address",
                           "octetDeltaCount", "sourcePodName"])
    stream = b"".join(enc.template_messages() + enc.encode(
        256, [(EXPORT_TIME - 10, EXPORT_TIME, "10.10.0.5", 1234, "pod-a")]))
    (record,) = Session().feed(stream)

    doc = orjson.loads(orjson.dumps(to_document(record, "192.0.2.1")))

    assert doc == {
        "@timestamp": "2024-05-01T12:00:00.000Z",
        "@version": "1",
        "type": "ipfix",
        "host": "192.0.2.1",
        "ipfix": {
            "version": 10,
            "flowset_id": 256,
            "flowStartSeconds": "2024-05-01T11:59:50Z",
            "flowEndSeconds": "2024-05-01T12:00:00Z",
            "sourceIPv4Address": "10.10.0.5",
            "octetDeltaCount": 1234,
            "sourcePodName": "pod-a",
        },
    }


@pytest.mark.parametrize("seconds", [1, 2**31, 2**32 - 1])
def test_timestamp_covers_the_whole_unsigned32_export_time_range(seconds):
    expected = datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert logstash_timestamp(seconds) == expected


def _record(seq: int, export_time: int = 1_700_000_000, domain: int = 1):
    from types import SimpleNamespace

    return SimpleNamespace(observation_domain_id=domain, export_time=export_time, sequence_number=seq)


def test_document_ids_number_the_records_of_one_message_from_zero():
    from ipfix_antrea.documents import document_ids

    records = [_record(10), _record(10), _record(12), _record(12, domain=2)]
    assert document_ids(records, "10.0.0.1") == [
        "10.0.0.1/1/1700000000/10/0",
        "10.0.0.1/1/1700000000/10/1",
        "10.0.0.1/1/1700000000/12/0",
        "10.0.0.1/2/1700000000/12/0",
    ]


def test_document_id_without_an_exporter_address_uses_a_dash():
    from ipfix_antrea.documents import document_id

    assert document_id(_record(5), None, 3) == "-/1/1700000000/5/3"
