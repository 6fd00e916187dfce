"""RFC 6313 lists: malformed list content is a MalformedSet with a reason, never a crash."""

from __future__ import annotations

import struct

from ipfix_antrea import (
    BasicList,
    Encoder,
    MalformedSet,
    Session,
    SubTemplateList,
    SubTemplateMultiList,
)

BASIC_LIST, SUB_TEMPLATE_MULTI_LIST = 291, 293


def varlen(content: bytes) -> bytes:
    if len(content) < 255:
        return bytes([len(content)]) + content
    return b"\xff" + struct.pack(">H", len(content)) + content


def message(*sets: tuple[int, bytes]) -> bytes:
    body = b"".join(struct.pack(">HH", sid, 4 + len(b)) + b for sid, b in sets)
    return struct.pack(">HHIII", 10, 16 + len(body), 0, 0, 1) + body


def decode_list_field(element_id: int, content: bytes) -> tuple[Session, list]:
    """A template of one variable-length list field, and one record holding ``content``."""
    s = Session()
    records = s.decode_datagram(message((2, struct.pack(">HHHH", 256, 1, element_id, 65535)),
                                        (256, varlen(content))))
    return s, records


def malformed_reason(s: Session) -> str:
    (event,) = [e for e in s.take_events() if isinstance(e, MalformedSet)]
    assert s.stats.malformed_sets == 1
    return event.error.reason


def test_basic_list_decodes_and_renders_as_an_array():
    # semantic allOf (3), element sourceIPv4Address (8), 4 octets each
    _, (record,) = decode_list_field(BASIC_LIST, bytes([3]) + struct.pack(">HH", 8, 4)
                                     + bytes([10, 0, 0, 1, 10, 0, 0, 2]))
    value = record["basicList"]
    assert isinstance(value, BasicList) and value.semantic == 3
    assert record.to_dict() == {"basicList": ["10.0.0.1", "10.0.0.2"]}


def test_basic_list_of_zero_length_values_is_malformed():
    s, records = decode_list_field(BASIC_LIST, bytes([3]) + struct.pack(">HH", 8, 0) + b"\x01")
    assert records == []
    assert "basicList of zero-length values" in malformed_reason(s)


def test_basic_list_value_running_past_its_list_is_malformed():
    s, records = decode_list_field(BASIC_LIST, bytes([3]) + struct.pack(">HH", 8, 4) + b"\x0a\x00")
    assert records == []
    assert "basicList value runs past the end of its list" in malformed_reason(s)


def test_basic_list_with_a_truncated_header_is_malformed():
    s, records = decode_list_field(BASIC_LIST, bytes([3, 0]))
    assert records == []
    assert "basicList content is truncated" in malformed_reason(s)


def test_multi_list_entry_longer_than_its_list_is_malformed():
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(300, ["protocolIdentifier"])
    s = Session()
    s.decode_datagram(enc.template_messages()[0])
    content = bytes([3]) + struct.pack(">HH", 300, 40) + b"\x06"
    records = s.decode_datagram(message(
        (2, struct.pack(">HHHH", 256, 1, SUB_TEMPLATE_MULTI_LIST, 65535)), (256, varlen(content))))
    assert records == []
    assert "subTemplateMultiList entry of length 40 does not fit its list" in malformed_reason(s)


def test_multi_list_decodes_every_entry():
    enc = Encoder(1, export_time=lambda: 0)
    enc.add_template(300, ["protocolIdentifier"])
    enc.add_template(301, ["sourceTransportPort"])
    enc.add_template(302, ["subTemplateMultiList"])
    value = SubTemplateMultiList([SubTemplateList(300, [(6,), (17,)]), SubTemplateList(301, [(80,)])])
    s = Session()
    (record,) = s.feed(b"".join(enc.template_messages() + enc.encode(302, [(value,)])))
    assert record.to_dict() == {"subTemplateMultiList": [
        {"protocolIdentifier": 6}, {"protocolIdentifier": 17}, {"sourceTransportPort": 80}]}


def test_lists_nested_deeper_than_the_cap_are_malformed():
    inner = bytes([3]) + struct.pack(">HH", 1, 8)  # an empty basicList of octetDeltaCount
    for _ in range(20):
        inner = bytes([3]) + struct.pack(">HH", BASIC_LIST, 65535) + varlen(inner)
    s, records = decode_list_field(BASIC_LIST, inner)
    assert records == []
    assert "lists nested more than 16 deep" in malformed_reason(s)
