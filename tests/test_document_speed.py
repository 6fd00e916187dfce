"""The fast paths of document building equal the plain ones, key order included.

``Template.dict_maker(head)`` builds ``{**head, **template.to_dict(values)}`` in one dict, and
``DocumentBuilder().build`` (no transforms) builds ``[to_document(r, host) for r in records]``
with those makers and one ``@timestamp`` per export time. Both must give the same keys, in the same order, with the
same values, as the plain expressions (the reference below is the original ``to_document``), for
any template: repeated elements, lists, every type, keys that clash with the head's.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import orjson
from hypothesis import HealthCheck, given, settings
from strategies import schemas, stream_plans

from ipfix_antrea import (
    Encoder,
    InformationElement,
    Registry,
    Session,
    default_registry,
)
from ipfix_antrea.documents import DocumentBuilder, logstash_timestamp, to_document
from ipfix_antrea.template import FieldSpec, Template

SETTINGS = settings(deadline=None, max_examples=150,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def reference_document(record, host=None) -> dict:
    """to_document as it was written first: two dicts merged per record."""
    doc = {"@timestamp": logstash_timestamp(record.export_time), "@version": "1", "type": "ipfix"}
    if host is not None:
        doc["host"] = host
    doc["ipfix"] = {"version": 10, "flowset_id": record.template_id, **record.to_dict()}
    return doc


def same(actual: dict, expected: dict) -> None:
    """Equal as orjson writes them: keys, order and values (recursively)."""
    assert orjson.dumps(actual) == orjson.dumps(expected)
    assert list(actual) == list(expected)
    assert list(actual["ipfix"]) == list(expected["ipfix"])


def to_documents(records, host=None) -> list[dict]:
    return DocumentBuilder().build(records, host)


@given(stream_plans(schemas(max_templates=3, max_fields=8)))
@SETTINGS
def test_build_equals_the_plain_documents_for_any_stream(plan):
    stream = plan.encode()
    records = Session(registry=plan.schema.registry).feed(stream.octets)
    for host in (None, "192.0.2.1"):
        fast = to_documents(records, host)
        assert len(fast) == len(records)
        for doc, record in zip(fast, records, strict=True):
            same(doc, reference_document(record, host))
            same(to_document(record, host), reference_document(record, host))


@given(stream_plans(schemas(max_templates=3, max_fields=8)))
@SETTINGS
def test_dict_maker_equals_head_merged_with_to_dict(plan):
    records = Session(registry=plan.schema.registry).feed(plan.encode().octets)
    for record in records:
        head = {"version": 10, "flowset_id": record.template_id}
        made = record.template.dict_maker(head)(record.values)
        expected = {**head, **record.to_dict()}
        assert orjson.dumps(made) == orjson.dumps(expected)
        assert list(made) == list(expected)


def _template_with(names_and_types: list[tuple[str, str]]) -> Template:
    fields = [FieldSpec(InformationElement(name, 100 + i, 4242, dtype), 65535 if dtype == "string" else 4)
              for i, (name, dtype) in enumerate(names_and_types)]
    return Template(300, fields)


def test_a_field_named_like_a_head_key_keeps_the_head_position_and_takes_the_field_value():
    template = _template_with([("a", "unsigned32"), ("version", "unsigned32"), ("b", "string")])
    head = {"version": 10, "flowset_id": 300}
    made = template.dict_maker(head)((1, 99, "x"))
    expected = {**head, **template.to_dict((1, 99, "x"))}
    assert list(made.items()) == list(expected.items()) == [
        ("version", 99), ("flowset_id", 300), ("a", 1), ("b", "x")]


def test_repeated_elements_become_lists_as_in_to_dict():
    template = _template_with([("a", "unsigned32"), ("a", "unsigned32"), ("b", "string")])
    made = template.dict_maker({"h": 1})((1, 2, "x"))
    assert list(made.items()) == [("h", 1), ("a", [1, 2]), ("b", "x")]


def test_makers_are_cached_per_head_and_do_not_share_dicts():
    template = _template_with([("a", "unsigned32")])
    first = template.dict_maker({"version": 10, "flowset_id": 300})
    assert template.dict_maker({"version": 10, "flowset_id": 300}) is first
    assert template.dict_maker({"version": 10, "flowset_id": 301}) is not first
    one, two = first((1,)), first((2,))
    assert one == {"version": 10, "flowset_id": 300, "a": 1} and two["a"] == 2
    one["a"] = 5
    assert first((3,))["a"] == 3 and template.to_dict((4,)) == {"a": 4}


def test_a_head_with_unhashable_values_still_works():
    template = _template_with([("a", "unsigned32")])
    maker = template.dict_maker({"tags": ["x"]})
    assert maker((1,)) == {"tags": ["x"], "a": 1}


def _records_of_two_templates_and_export_times() -> list:
    registry = Registry(default_registry())
    clock = [0]
    enc = Encoder(observation_domain_id=1, registry=registry, export_time=lambda: clock[0])
    enc.add_template(256, ["sourceIPv4Address", "sourcePodName", "octetDeltaCount", "flowStartSeconds"])
    enc.add_template(257, ["destinationIPv4Address", "octetDeltaCount"])
    data = b"".join(enc.template_messages())
    for t in (1_700_000_000, 1_700_000_000, 1_700_000_001):
        clock[0] = t
        data += b"".join(enc.encode(256, [("10.0.0.1", "pod-a", 1, t), ("10.0.0.2", "pod-b", 2, t)]))
        data += b"".join(enc.encode(257, [("10.0.0.3", 3)]))
    return Session(registry=registry).feed(data)


def test_build_follows_template_and_export_time_changes():
    records = _records_of_two_templates_and_export_times()
    assert {r.template_id for r in records} == {256, 257}
    assert {r.export_time for r in records} == {1_700_000_000, 1_700_000_001}
    docs = to_documents(records, "10.1.1.1")
    for doc, record in zip(docs, records, strict=True):
        same(doc, reference_document(record, "10.1.1.1"))


@dataclass
class FakeRecord:
    template_id: int = 256
    export_time: int = 1714564800
    values: dict = field(default_factory=lambda: {"sourcePodName": "pod-a"})

    def to_dict(self) -> dict:
        return dict(self.values)


def test_build_takes_anything_to_document_takes():
    records = [*_records_of_two_templates_and_export_times()[:2], FakeRecord(), FakeRecord(257)]
    docs = to_documents(records)
    for doc, record in zip(docs, records, strict=True):
        same(doc, reference_document(record))
    assert to_documents([]) == []
