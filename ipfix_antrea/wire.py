"""The IPFIX wire format (RFC 7011, RFC 6313), declared once with ``construct``.

These declarations are the specification of the byte layout; the same objects parse and build.
Cold paths (template records, the encoder's headers) use them directly. The hot path, data
records, is decoded by code compiled per template (see :mod:`ipfix_antrea.template`) and the
tests check that code against :func:`data_record_struct`, built here from the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from construct import (
    Array,
    BitsInteger,
    BitStruct,
    Bytes,
    BytesInteger,
    Const,
    Construct,
    Flag,
    Float32b,
    Float64b,
    GreedyBytes,
    If,
    Int8ub,
    Int16ub,
    Int32ub,
    Prefixed,
    Struct,
    stream_read,
    stream_write,
    this,
)

if TYPE_CHECKING:
    from .template import Template

# RFC 7011 §3.1: version number of the IPFIX protocol.
IPFIX_VERSION = 10
MESSAGE_HEADER_LENGTH = 16
SET_HEADER_LENGTH = 4
# RFC 7011 §3.3.2: Set IDs 2 and 3 are (Options) Template Sets; 0-1 and 4-255 are reserved;
# 256 and above are Data Sets whose Set ID is the Template ID.
TEMPLATE_SET_ID = 2
OPTIONS_TEMPLATE_SET_ID = 3
MIN_DATA_SET_ID = 256
# RFC 7011 §7: a field length of 65535 in a template means a variable-length field.
VARIABLE_LENGTH = 65535
# RFC 7011 §8.1: the Template ID that withdraws all (Options) Templates of a domain.
WITHDRAW_ALL_TEMPLATES_ID = TEMPLATE_SET_ID
WITHDRAW_ALL_OPTIONS_TEMPLATES_ID = OPTIONS_TEMPLATE_SET_ID
MAX_MESSAGE_LENGTH = 65535

# RFC 7011 §3.1, Message Header.
MessageHeader = Struct(
    "version" / Const(IPFIX_VERSION, Int16ub),
    "length" / Int16ub,
    "export_time" / Int32ub,
    "sequence_number" / Int32ub,
    "observation_domain_id" / Int32ub,
)

# RFC 7011 §3.3.2, Set Header.
SetHeader = Struct(
    "set_id" / Int16ub,
    "length" / Int16ub,
)

# RFC 7011 §3.2, Field Specifier: the enterprise bit selects a 4-octet Enterprise Number.
FieldSpecifier = Struct(
    "id" / BitStruct("enterprise_bit" / Flag, "element_id" / BitsInteger(15)),
    "length" / Int16ub,
    "enterprise" / If(this.id.enterprise_bit, Int32ub),
)

# RFC 7011 §3.4.1, Template Record; a field count of 0 is a withdrawal (§8.1).
TemplateRecord = Struct(
    "template_id" / Int16ub,
    "field_count" / Int16ub,
    "fields" / Array(this.field_count, FieldSpecifier),
)

# RFC 7011 §3.4.2.2, Options Template Record; the withdrawal form has no scope field count.
OptionsTemplateRecord = Struct(
    "template_id" / Int16ub,
    "field_count" / Int16ub,
    "scope_field_count" / If(this.field_count > 0, Int16ub),
    "fields" / Array(this.field_count, FieldSpecifier),
)


class VariableLengthPrefix(Construct):  # type: ignore[misc]
    """RFC 7011 §7: one length octet, or 255 followed by a two-octet length."""

    def _parse(self, stream: Any, context: Any, path: str) -> int:
        first: int = stream_read(stream, 1, path)[0]
        if first < 255:
            return first
        high: int
        low: int
        high, low = stream_read(stream, 2, path)
        return (high << 8) | low

    def _build(self, obj: int, stream: Any, context: Any, path: str) -> int:
        if obj < 255:
            stream_write(stream, bytes([obj]), 1, path)
        else:
            stream_write(stream, b"\xff" + obj.to_bytes(2, "big"), 3, path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:  # pragma: no cover - variable by nature
        raise NotImplementedError


VariableLengthField = Prefixed(VariableLengthPrefix(), GreedyBytes)

# RFC 6313 §4.5.1-3: the headers of the structured data types, inside the field's content.
BasicListHeader = Struct(
    "semantic" / Int8ub,
    "field" / FieldSpecifier,
)
SubTemplateListHeader = Struct(
    "semantic" / Int8ub,
    "template_id" / Int16ub,
)
SubTemplateMultiListEntryHeader = Struct(
    "template_id" / Int16ub,
    "length" / Int16ub,
)

# RFC 7011 §3: a message is a header followed by sets; each set's length includes its header.
Set = Struct(
    "set_id" / Int16ub,
    "length" / Int16ub,
    "body" / Bytes(this.length - SET_HEADER_LENGTH),
)


def _fixed_field(data_type: str, length: int) -> Construct:
    """The construct that reads one fixed-length field as its raw wire value."""
    if data_type.startswith("unsigned") or data_type in ("dateTimeSeconds", "dateTimeMilliseconds",
                                                         "dateTimeMicroseconds", "dateTimeNanoseconds",
                                                         "boolean"):
        return BytesInteger(length, signed=False)
    if data_type.startswith("signed"):
        return BytesInteger(length, signed=True)
    if data_type in ("float32", "float64"):
        return Float32b if length == 4 else Float64b
    return Bytes(length)


def data_record_struct(template: Template) -> Struct:
    """A construct declaration of one data record of ``template``, field by field.

    Fields parse to raw wire values: integers for integer, boolean and timestamp types (NTP
    timestamps as the 64-bit integer), floats, and ``bytes`` for everything else, including the
    content of variable-length fields. Field ``i`` is named ``f<i>`` because one element may
    appear twice in a template.
    """
    members = []
    for index, spec in enumerate(template.fields):
        if spec.length == VARIABLE_LENGTH:
            sub: Construct = VariableLengthField
        else:
            sub = _fixed_field(spec.wire_type, spec.length)
        members.append(f"f{index}" / sub)
    return Struct(*members)
