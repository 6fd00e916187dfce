"""The document stage: the envelope, then transforms in order, compiled once per template; the
fields it declares are what the index template and --help are made of."""

from __future__ import annotations

from ipfix_antrea import Encoder, Session, default_registry
from ipfix_antrea.documents import (
    ENVELOPE_FIELDS,
    AntreaTransform,
    DocumentBuilder,
    DocumentField,
    Transform,
    make_builder,
    parse_enrich,
    to_document,
)
from ipfix_antrea.sinks.es_mapping import document_mappings

EXPORT_TIME = 1_714_564_800


def decoded(n: int = 3, template_id: int = 256) -> list:
    enc = Encoder(observation_domain_id=1, export_time=lambda: EXPORT_TIME)
    enc.add_template(template_id, ["sourceIPv4Address", "octetDeltaCount"])
    data = enc.template_messages() + enc.encode(template_id, [(f"10.0.0.{i}", i) for i in range(n)])
    return Session().feed(b"".join(data))


class Tag:
    """A transform that writes its name, the fields it saw, and counts its compiles."""

    def __init__(self, name: str, applies: bool = True) -> None:
        self.name = name
        self.fields = (DocumentField(f"ipfix.{name}", {"type": "keyword"}, "seen fields"),)
        self.applies = applies
        self.compiled = 0

    def compile(self, template):
        self.compiled += 1
        if not self.applies:
            return None

        def step(ipfix, record, host):
            ipfix[self.name] = ",".join(k for k in ipfix if k not in ("version", "flowset_id"))
        return step


def test_a_tag_transform_is_a_transform():
    assert isinstance(Tag("a"), Transform)


def test_transforms_run_in_order_and_see_what_earlier_ones_wrote():
    (doc,) = DocumentBuilder([Tag("first"), Tag("second")]).build(decoded(1))
    assert doc["ipfix"]["first"] == "sourceIPv4Address,octetDeltaCount"
    assert doc["ipfix"]["second"] == "sourceIPv4Address,octetDeltaCount,first"


def test_a_transform_compiles_once_per_template():
    tag = Tag("t")
    builder = DocumentBuilder([tag])
    records = decoded(5)
    builder.build(records)
    builder.build(records)
    assert tag.compiled == 1


def test_a_transform_with_nothing_to_add_leaves_the_envelope_alone():
    records = decoded(2)
    assert DocumentBuilder([Tag("t", applies=False)]).build(records, "10.0.0.1") == [
        to_document(r, "10.0.0.1") for r in records]


def test_fields_are_the_envelopes_then_each_transforms():
    builder = DocumentBuilder([Tag("a"), Tag("b")])
    assert [f.path for f in builder.fields] == [f.path for f in ENVELOPE_FIELDS] + ["ipfix.a", "ipfix.b"]


def test_a_later_declaration_of_a_path_replaces_the_earlier():
    later = Tag("a")
    later.fields = (DocumentField("ipfix.a", {"type": "long"}, "replaced"),)
    (field,) = [f for f in DocumentBuilder([Tag("a"), later]).fields if f.path == "ipfix.a"]
    assert field.mapping == {"type": "long"}


def test_the_index_mapping_declares_every_derived_field_with_its_mapping():
    builder = DocumentBuilder([AntreaTransform()])
    ipfix = document_mappings(default_registry(), builder.fields)["properties"]["ipfix"]["properties"]
    assert ipfix["flowKey"]["fields"]["keyword"]["type"] == "keyword"
    assert ipfix["sourceIP"]["type"] == "ip"
    assert ipfix["throughput"] == {"type": "long"}  # bytes/s, not the element's unsigned64
    assert {f.path.removeprefix("ipfix.") for f in AntreaTransform.fields} <= set(ipfix)


def test_enrich_names_make_a_builder_in_that_order():
    assert parse_enrich("antrea") == ("antrea",)
    assert parse_enrich("none") == ()
    assert [t.name for t in make_builder(parse_enrich("antrea")).transforms] == ["antrea"]


def test_records_of_a_new_template_object_get_its_own_steps():
    tag = Tag("t")
    builder = DocumentBuilder([tag])
    builder.build(decoded(1))
    builder.build(decoded(1, template_id=300))
    assert tag.compiled == 2
