"""The record decoder compiled per template agrees with the construct declaration.

``Template.decode`` is generated Python (struct runs, inline variable-length prefixes); the
specification is ``ipfix_antrea.wire.data_record_struct(template)``. For random templates and
random bytes, both must either fail together (compiled: DecodeError, struct.error or IndexError;
construct: a ConstructError, e.g. StreamError when the record runs past ``end``) or succeed with
the same values and the same end offset. Construct parses a field to its raw wire value; the
reference then applies ``data_type(wire_type).converter(length)``, except for integers, which
construct already reads as ``int`` at every length (the integer converters exist only for the
``Ns`` struct format of odd reduced sizes; they are checked against ``int.from_bytes``).

List fields need a context; the list tests supply a small one with a registry and sub-templates.
"""

from __future__ import annotations

import io
import struct
from typing import Any

from construct import ConstructError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from strategies import (
    FIXED_TYPES,
    SCALAR_TYPES,
    VARIABLE,
    assert_same,
    invalid_lengths,
    scalar_values,
    valid_lengths,
)

from ipfix_antrea import (
    BasicList,
    DecodeError,
    InformationElement,
    SubTemplateList,
    default_registry,
)
from ipfix_antrea.structured import decode_structured, encode_field
from ipfix_antrea.template import FieldSpec, Template
from ipfix_antrea.types import data_type
from ipfix_antrea.wire import data_record_struct

SETTINGS = settings(deadline=None, max_examples=300,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
COMPILED_ERRORS = (DecodeError, struct.error, IndexError)


class Context:
    """The smallest ListContext: a registry and some templates."""

    def __init__(self, templates: dict[int, Template] | None = None) -> None:
        self.registry = default_registry()
        self.templates = templates or {}
        self.depth = 0

    def template(self, template_id: int) -> Template | None:
        return self.templates.get(template_id)


# -- templates and record bytes ------------------------------------------------------------------


@st.composite
def field_specs(draw: Any) -> FieldSpec:
    """A field of any non-list type, with a valid length or (for fixed types) an invalid one."""
    dtype = draw(st.sampled_from(SCALAR_TYPES))
    if dtype in ("string", "octetArray"):
        length = draw(valid_lengths(dtype) | st.just(0))
    elif dtype in FIXED_TYPES and draw(st.integers(0, 4)) == 0:
        length = draw(invalid_lengths(dtype))
    else:
        length = draw(valid_lengths(dtype))
    element = InformationElement(f"e{dtype}", draw(st.integers(0, 0x7FFF)),
                                 draw(st.integers(0, 0xFFFFFFFF)), dtype)
    return FieldSpec(element, length)


templates = st.lists(field_specs(), min_size=1, max_size=10).map(lambda f: Template(256, f))


def varlen_prefix(n: int, long_form: bool) -> bytes:
    """RFC 7011 §7; the three-octet form may also carry lengths below 255."""
    if n < 255 and not long_form:
        return bytes([n])
    return b"\xff" + n.to_bytes(2, "big")


@st.composite
def record_bytes(draw: Any, template: Template) -> bytes:
    out = bytearray()
    for spec in template.fields:
        if spec.is_variable:
            content = draw(st.binary(max_size=20) | st.binary(min_size=250, max_size=400))
            out += varlen_prefix(len(content), draw(st.booleans())) + content
        else:
            out += draw(st.binary(min_size=spec.length, max_size=spec.length))
    return bytes(out)


# -- the two decoders ----------------------------------------------------------------------------

INTEGER_TYPES = tuple(t for t in SCALAR_TYPES if t.startswith(("unsigned", "signed")))


def reference(template: Template, buf: bytes, off: int, end: int, ctx: Any) -> tuple[Any, int]:
    """construct parse of buf[off:end], then the per-type conversion."""
    stream = io.BytesIO(buf[off:end])
    parsed = data_record_struct(template).parse_stream(stream)
    values = []
    for index, spec in enumerate(template.fields):
        raw = parsed[f"f{index}"]
        dtype = spec.dtype
        if dtype.structured:
            values.append(decode_structured(spec, raw, ctx))
            continue
        convert = dtype.converter(spec.length)
        if spec.wire_type in INTEGER_TYPES:
            assert isinstance(raw, int)
            if convert is not None:  # odd reduced sizes: the converter takes the octets
                signed = spec.wire_type.startswith("signed")
                octets = raw.to_bytes(spec.length, "big", signed=signed)
                assert convert(octets) == raw
            values.append(raw)
        else:
            values.append(convert(raw) if convert is not None else raw)
    return tuple(values), off + stream.tell()


def outcome(fn: Any, allowed: tuple[type[BaseException], ...]) -> tuple[str, Any]:
    try:
        return "ok", fn()
    except allowed as exc:
        return "error", exc


def assert_agree(template: Template, buf: bytes, off: int, end: int, ctx: Any = None) -> str:
    """Both decoders fail, or both succeed with the same values and end offset."""
    compiled = outcome(lambda: template.decode(buf, off, end, ctx), COMPILED_ERRORS)
    spec = outcome(lambda: reference(template, buf, off, end, ctx), (ConstructError, DecodeError))
    assert compiled[0] == spec[0], f"compiled {compiled!r} vs construct {spec!r} on {buf.hex()}"
    if compiled[0] == "ok":
        values, new_off = compiled[1]
        ref_values, ref_off = spec[1]
        assert isinstance(values, tuple) and len(values) == len(template.fields)
        assert new_off == ref_off
        assert off <= new_off <= end
        for i, (a, b) in enumerate(zip(values, ref_values, strict=True)):
            assert_same(a, b, f"field {i} ({template.fields[i].wire_type}/"
                              f"{template.fields[i].length})")
    else:
        error = compiled[1]
        if isinstance(error, DecodeError) and error.reason.startswith("record runs"):
            assert error.offset == end
    return compiled[0]


# -- properties -----------------------------------------------------------------------------------


@SETTINGS
@given(data=st.data(), template=templates)
def test_agree_on_valid_records(data: st.DataObject, template: Template) -> None:
    record = data.draw(record_bytes(template))
    before = data.draw(st.binary(max_size=8))
    after = data.draw(st.binary(max_size=8))
    buf = before + record + after
    off = len(before)
    # end at the record's end, or further into the buffer: the decoder stops at the record.
    end = data.draw(st.sampled_from([off + len(record), len(buf)]))
    assert assert_agree(template, buf, off, end) == "ok"
    _, new_off = template.decode(buf, off, end, None)
    assert new_off == off + len(record)


@SETTINGS
@given(data=st.data(), template=templates)
def test_agree_on_truncated_records(data: st.DataObject, template: Template) -> None:
    """Cut anywhere inside a record: both fail, whether the buffer goes on past end or not."""
    record = data.draw(record_bytes(template))
    assume(len(record) > 0)
    cut = data.draw(st.integers(0, len(record) - 1))
    tail = data.draw(st.sampled_from([b"", record[cut:], b"\xff" * 8, b"\x00" * 300]))
    buf = record[:cut] + tail
    result = assert_agree(template, buf, 0, cut)
    # A record whose fields are all zero-length fixed fields is the only one that fits 0 octets.
    assert result == "error" or template.min_length == 0


@SETTINGS
@given(template=templates, buf=st.binary(max_size=80), data=st.data())
def test_agree_on_random_bytes(template: Template, buf: bytes, data: st.DataObject) -> None:
    off = data.draw(st.integers(0, len(buf)))
    end = data.draw(st.integers(off, len(buf)))
    assert_agree(template, buf, off, end)


@SETTINGS
@given(data=st.data(), template=templates)
def test_agree_on_records_built_by_construct(data: st.DataObject, template: Template) -> None:
    """Raw wire values built with ``data_record_struct(template).build`` decode alike."""
    raw: dict[str, Any] = {}
    for index, spec in enumerate(template.fields):
        wire = spec.wire_type
        if spec.is_variable:
            value: Any = data.draw(st.binary(max_size=300))
        elif wire.startswith("signed"):
            bits = 8 * spec.length
            value = data.draw(st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1))
        elif wire.startswith(("unsigned", "dateTime")) or wire == "boolean":
            value = data.draw(st.integers(0, (1 << (8 * spec.length)) - 1))
        elif wire in ("float32", "float64"):
            value = data.draw(st.floats(width=32 if spec.length == 4 else 64))
        else:
            value = data.draw(st.binary(min_size=spec.length, max_size=spec.length))
        raw[f"f{index}"] = value
    declaration = data_record_struct(template)
    buf = declaration.build(raw)
    parsed = declaration.parse(buf)
    for key, value in raw.items():
        assert_same(parsed[key], value, key)
    assert assert_agree(template, buf, 0, len(buf)) == "ok"


@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_agree_on_typed_values(data: st.DataObject) -> None:
    """Values encoded by the library's types decode to themselves through both decoders."""
    dtype = data.draw(st.sampled_from(SCALAR_TYPES))
    length = data.draw(valid_lengths(dtype))
    given_value, expected = data.draw(scalar_values(dtype, length))
    spec = FieldSpec(InformationElement("x", 1, 1, dtype), length)
    template = Template(256, [spec])
    buf = encode_field(spec, given_value, Context())
    assert assert_agree(template, buf, 0, len(buf)) == "ok"
    (value,), _ = template.decode(buf, 0, len(buf), None)
    assert_same(value, expected)


# -- list fields, with a context -------------------------------------------------------------------

REG = default_registry()
SUB = Template(300, [FieldSpec(REG.by_name("sourceIPv4Address"), 4),
                     FieldSpec(REG.by_name("sourcePodName"), VARIABLE)])
LISTS = Template(301, [FieldSpec(REG.by_name("basicList"), VARIABLE),
                       FieldSpec(REG.by_name("sourceTransportPort"), 2),
                       FieldSpec(REG.by_name("subTemplateList"), VARIABLE),
                       FieldSpec(REG.by_name("subTemplateMultiList"), VARIABLE)])


@settings(SETTINGS, max_examples=150)
@given(ports=st.lists(st.integers(0, 0xFFFF), max_size=4),
       rows=st.lists(st.tuples(st.ip_addresses(v=4).map(str), st.text(max_size=5)), max_size=3),
       port=st.integers(0, 0xFFFF), data=st.data())
def test_agree_on_list_fields(ports: list[int], rows: list[tuple[str, str]], port: int,
                              data: st.DataObject) -> None:
    from ipfix_antrea import SubTemplateMultiList
    ctx = Context({300: SUB, 301: LISTS})
    values = (BasicList(REG.by_name("destinationTransportPort"), ports, 3, 2), port,
              SubTemplateList(300, rows, 4),
              SubTemplateMultiList([SubTemplateList(300, rows)], 2))
    buf = b"".join(encode_field(spec, v, ctx) for spec, v in zip(LISTS.fields, values, strict=True))
    assert assert_agree(LISTS, buf, 0, len(buf), ctx) == "ok"
    decoded, _ = LISTS.decode(buf, 0, len(buf), ctx)
    assert decoded[0] == values[0] and decoded[1] == port and decoded[2] == values[2]
    cut = data.draw(st.integers(0, len(buf) - 1))
    assert assert_agree(LISTS, buf[:cut], 0, cut, ctx) == "error"


@settings(SETTINGS, max_examples=200)
@given(buf=st.binary(max_size=60))
def test_agree_on_random_list_content(buf: bytes) -> None:
    """Random octets where lists are expected: only DecodeError comes out of list decoding."""
    ctx = Context({300: SUB, 301: LISTS})
    assert_agree(LISTS, buf, 0, len(buf), ctx)
    template = Template(302, [FieldSpec(REG.by_name("basicList"), len(buf))])
    assert_agree(template, buf, 0, len(buf), ctx)


def test_integer_converters_match_int_from_bytes() -> None:
    for dtype in INTEGER_TYPES:
        t = data_type(dtype)
        for length in range(1, t.natural_length + 1):
            convert = t.converter(length)
            octets = bytes(range(0x80, 0x80 + length))
            signed = dtype.startswith("signed")
            expected = int.from_bytes(octets, "big", signed=signed)
            if convert is None:
                (value,) = struct.unpack(">" + t.unpack_format(length), octets)
            else:
                value = convert(octets)
            assert value == expected, (dtype, length)
