"""RFC 6313 structured data: basicList, subTemplateList and subTemplateMultiList.

A list's content refers to information elements (basicList) or to templates of the same
observation domain (the sub-template lists), so decoding one needs a context that can resolve
both; the session and the encoder each provide one. Lists are rare next to flat records, so this
module favours clarity over speed: it decodes element by element through
:mod:`ipfix_antrea.types` and reuses the compiled decoder of each referenced template.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from construct import ConstructError

from .errors import DecodeError
from .registry import InformationElement
from .wire import (
    VARIABLE_LENGTH,
    BasicListHeader,
    SubTemplateListHeader,
    SubTemplateMultiListEntryHeader,
)

if TYPE_CHECKING:
    from .registry import Registry
    from .template import FieldSpec, Template

# RFC 6313 §4.4: structured data type semantics.
NONE_OF, EXACTLY_ONE_OF, ONE_OR_MORE_OF, ALL_OF, ORDERED, UNDEFINED = 0, 1, 2, 3, 4, 0xFF


#: Lists inside lists deeper than this are malformed: real exporters nest two or three levels,
#: and a cap keeps a hostile message from exhausting the interpreter's stack.
MAX_NESTING = 16


class TemplateLookup(Protocol):
    """Where list encoding finds the templates that sub-template lists refer to."""

    def template(self, template_id: int) -> Template | None:
        """The template with this id in the current observation domain, if known."""


class ListContext(TemplateLookup, Protocol):
    """What list decoding needs from its surroundings."""

    registry: Registry
    #: How many lists enclose the one being decoded (decoding keeps it up to date).
    depth: int


@dataclass(eq=True)
class BasicList:
    """RFC 6313 §4.5.1: values of one information element."""

    element: InformationElement
    values: list[Any]
    semantic: int = UNDEFINED
    #: The element's length inside the list; 65535 for variable-length values.
    field_length: int = VARIABLE_LENGTH

    def to_json(self) -> list[Any]:
        from .template import FieldSpec
        render = FieldSpec(self.element, self.field_length).dtype.to_json
        return [_json(v, render) for v in self.values]


@dataclass(eq=True)
class SubTemplateList:
    """RFC 6313 §4.5.2: records of one template, as tuples of values in template order."""

    template_id: int
    records: list[tuple[Any, ...]]
    semantic: int = UNDEFINED
    #: The template the records were decoded with (set by the decoder; names the fields).
    template: Template | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> list[dict[str, Any]]:
        if self.template is None:
            return [{"templateId": self.template_id, "values": list(r)} for r in self.records]
        return [self.template.to_dict(tuple(r)) for r in self.records]


@dataclass(eq=True)
class SubTemplateMultiList:
    """RFC 6313 §4.5.3: records of several templates; each entry is one template's records."""

    entries: list[SubTemplateList]
    semantic: int = UNDEFINED

    def to_json(self) -> list[dict[str, Any]]:
        return [d for entry in self.entries for d in entry.to_json()]


def _json(value: Any, render: Any) -> Any:
    if hasattr(value, "to_json"):
        return value.to_json()
    return render(value) if render is not None else value


def _read_length(content: bytes, offset: int) -> tuple[int, int]:
    n = content[offset]
    if n < 255:
        return n, offset + 1
    return (content[offset + 1] << 8) | content[offset + 2], offset + 3


def decode_value(spec: FieldSpec, raw: bytes, ctx: ListContext) -> Any:
    """The Python value of one field's content octets, whatever its type."""
    if spec.dtype.structured:
        return decode_structured(spec, raw, ctx)
    return spec.dtype.decode(raw, spec.length)


def decode_structured(spec: FieldSpec, content: bytes, ctx: ListContext) -> Any:
    """Decodes the content of a basicList, subTemplateList or subTemplateMultiList field."""
    kind = spec.wire_type
    depth = ctx.depth
    if depth >= MAX_NESTING:
        raise DecodeError(f"lists nested more than {MAX_NESTING} deep")
    ctx.depth = depth + 1
    try:
        if kind == "basicList":
            return _decode_basic_list(content, ctx)
        if kind == "subTemplateList":
            header = SubTemplateListHeader.parse(content)
            template = _template(ctx, header.template_id)
            records = _decode_records(template, content, 3, len(content), ctx)
            return SubTemplateList(header.template_id, records, header.semantic, template)
        entries = []
        semantic = content[0]
        offset = 1
        while offset < len(content):
            entry = SubTemplateMultiListEntryHeader.parse(content[offset:])
            end = offset + entry.length
            if entry.length < 4 or end > len(content):
                raise DecodeError(f"subTemplateMultiList entry of length {entry.length} does "
                                  f"not fit its list", offset)
            template = _template(ctx, entry.template_id)
            records = _decode_records(template, content, offset + 4, end, ctx)
            entries.append(SubTemplateList(entry.template_id, records, semantic, template))
            offset = end
        return SubTemplateMultiList(entries, semantic)
    except (ConstructError, IndexError) as exc:
        raise DecodeError(f"{kind} content is truncated ({exc.__class__.__name__})") from None
    finally:
        ctx.depth = depth


class UnknownSubTemplate(DecodeError):
    """A list refers to a template its domain does not have, or not yet: over UDP the template
    may still be on its way, so the session holds the data set rather than calling it bad."""

    def __init__(self, template_id: int):
        super().__init__(f"list refers to template {template_id}, which is not known")
        self.template_id = template_id


def _template(ctx: ListContext, template_id: int) -> Template:
    template = ctx.template(template_id)
    if template is None:
        raise UnknownSubTemplate(template_id)
    return template


def _decode_records(template: Template, content: bytes, offset: int, end: int,
                    ctx: ListContext) -> list[tuple[Any, ...]]:
    records = []
    while offset < end:
        values, offset = template.decode(content, offset, end, ctx)
        records.append(values)
    return records


def _decode_basic_list(content: bytes, ctx: ListContext) -> BasicList:
    from .template import FieldSpec
    header = BasicListHeader.parse(content)
    ident = header.field
    element = ctx.registry.lookup(ident.enterprise or 0, ident.id.element_id)
    offset = 5 + (4 if ident.enterprise is not None else 0)
    spec = FieldSpec(element, ident.length)
    values = []
    while offset < len(content):
        if spec.is_variable:
            size, offset = _read_length(content, offset)
        else:
            size = spec.length
        if size == 0 and not spec.is_variable:
            raise DecodeError("basicList of zero-length values", offset)
        if offset + size > len(content):
            raise DecodeError("basicList value runs past the end of its list", offset)
        values.append(decode_value(spec, content[offset:offset + size], ctx))
        offset += size
    return BasicList(element, values, header.semantic, ident.length)


def encode_field(spec: FieldSpec, value: Any, ctx: TemplateLookup) -> bytes:
    """The wire bytes of one field, with the variable-length prefix when the field has one."""
    dtype = spec.dtype
    raw = _encode_structured(value, ctx) if dtype.structured else dtype.encode(value, spec.length)
    if not spec.is_variable:
        if len(raw) != spec.length:
            raise ValueError(f"{spec.name}: {len(raw)} octets in a {spec.length}-octet field")
        return raw
    if len(raw) < 255:
        return bytes([len(raw)]) + raw
    if len(raw) > 0xFFFF:
        raise ValueError(f"{spec.name}: {len(raw)} octets exceed a variable-length field")
    return b"\xff" + len(raw).to_bytes(2, "big") + raw


def _encode_records(template: Template, records: list[Any], ctx: TemplateLookup) -> bytes:
    from .record import values_in_order
    out = bytearray()
    for record in records:
        for spec, value in zip(template.fields, values_in_order(template, record), strict=True):
            out += encode_field(spec, value, ctx)
    return bytes(out)


def _known(ctx: TemplateLookup, template_id: int) -> Template:
    template = ctx.template(template_id)
    if template is None:
        raise ValueError(f"list refers to template {template_id}, which this encoder lacks")
    return template


def _encode_structured(value: Any, ctx: TemplateLookup) -> bytes:
    from .template import FieldSpec
    if isinstance(value, BasicList):
        element = value.element
        header: bytes = BasicListHeader.build({
            "semantic": value.semantic,
            "field": {"id": {"enterprise_bit": element.enterprise != 0,
                             "element_id": element.element_id},
                      "length": value.field_length,
                      "enterprise": element.enterprise or None},
        })
        spec = FieldSpec(element, value.field_length)
        body = b"".join(encode_field(spec, v, ctx) for v in value.values)
        return header + body
    if isinstance(value, SubTemplateList):
        template = _known(ctx, value.template_id)
        list_header: bytes = SubTemplateListHeader.build({"semantic": value.semantic,
                                                          "template_id": value.template_id})
        return list_header + _encode_records(template, value.records, ctx)
    if isinstance(value, SubTemplateMultiList):
        out = bytearray([value.semantic])
        for entry in value.entries:
            body = _encode_records(_known(ctx, entry.template_id), entry.records, ctx)
            out += SubTemplateMultiListEntryHeader.build({"template_id": entry.template_id,
                                                          "length": 4 + len(body)})
            out += body
        return bytes(out)
    raise TypeError(f"a list field needs a BasicList, SubTemplateList or SubTemplateMultiList, "
                    f"got {value!r}")

