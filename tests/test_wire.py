"""The construct declarations of RFC 7011: they parse real bytes and build the same bytes."""

from __future__ import annotations

import pytest
from construct import ConstructError

from ipfix_antrea import Encoder
from ipfix_antrea.wire import (
    FieldSpecifier,
    MessageHeader,
    OptionsTemplateRecord,
    Set,
    TemplateRecord,
    VariableLengthField,
)

# go-ipfix's validTemplatePacket (vmware/go-ipfix pkg/collector/process_test.go): template 256 with an
# Antrea enterprise (56506) variable-length field.
GO_IPFIX_TEMPLATE = bytes.fromhex(
    "000a00285f9a6b7f0000000000000001000200180100000300080004000c00048065ffff0000dcba")


def test_message_header_parses_and_builds():
    header = MessageHeader.parse(GO_IPFIX_TEMPLATE)
    assert (header.length, header.export_time, header.sequence_number,
            header.observation_domain_id) == (40, 0x5F9A6B7F, 0, 1)
    assert MessageHeader.build(header) == GO_IPFIX_TEMPLATE[:16]


def test_message_header_rejects_other_versions():
    with pytest.raises(ConstructError):
        MessageHeader.parse(b"\x00\x09" + GO_IPFIX_TEMPLATE[2:])


def test_template_set_with_enterprise_field_parses_and_builds():
    ipfix_set = Set.parse(GO_IPFIX_TEMPLATE[16:])
    assert (ipfix_set.set_id, ipfix_set.length) == (2, 24)
    record = TemplateRecord.parse(ipfix_set.body)
    assert (record.template_id, record.field_count) == (256, 3)
    last = record.fields[2]
    assert (last.id.enterprise_bit, last.id.element_id, last.length, last.enterprise) \
        == (True, 101, 65535, 56506)
    assert TemplateRecord.build(record) == ipfix_set.body


def test_field_specifier_without_enterprise_bit_has_no_enterprise_number():
    spec = FieldSpecifier.parse(bytes.fromhex("00080004"))
    assert spec.enterprise is None and spec.id.element_id == 8


def test_options_template_withdrawal_has_no_scope_field_count():
    withdrawal = OptionsTemplateRecord.build(
        {"template_id": 300, "field_count": 0, "scope_field_count": None, "fields": []})
    assert withdrawal == bytes.fromhex("012c0000")


@pytest.mark.parametrize("length, prefix", [(0, "00"), (254, "fe"), (255, "ff00ff"),
                                            (1000, "ff03e8")])
def test_variable_length_prefix_uses_three_octets_from_255(length, prefix):
    built = VariableLengthField.build(b"x" * length)
    assert built[: len(prefix) // 2].hex() == prefix
    assert VariableLengthField.parse(built) == b"x" * length


def test_encoder_reproduces_go_ipfix_template_bytes():
    enc = Encoder(1, export_time=lambda: 0x5F9A6B7F)
    enc.add_template(256, ["sourceIPv4Address", "destinationIPv4Address", "sourcePodName"])
    assert enc.template_messages() == [GO_IPFIX_TEMPLATE]
