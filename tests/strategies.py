"""Hypothesis strategies shared by the round-trip, compiled-decoder and fuzz tests.

The central object is a :class:`Schema`: a registry (the default one plus made-up enterprise
elements added at run time, shared by the encoder and the session) and a list of
:class:`TemplatePlan` objects, each a list of :class:`FieldPlan` objects. A field plan says which
element the *encoder* puts in the template, with which length, and how the *decoder* is expected
to see it:

``registry``  an element of the default registry (IANA, RFC 5103 reverse 29305, Antrea 56506,
              legacy 55829), decoded with its own type;
``custom``    a made-up element of a private enterprise, added to the shared registry;
``unknown``   an element the decoder's registry lacks (the encoder may know a type for it):
              decoded as the octets on the wire, under the name ``en<E>:id<N>``;
``mismatch``  a known element given a length its type cannot have (an ipv4Address of 5 octets, an
              unsigned32 of variable length): decoded as octets, with an InvalidFieldLength event.

Every value strategy yields ``(input, expected)``: what is handed to ``Encoder.encode`` and what
the decoder must return. ``expected`` uses two stand-ins that :func:`assert_same` understands:
``ipaddress`` objects (the decoded value must be a ``str`` naming the same address: canonical
comparison, because ``inet_ntop`` writes IPv4-mapped IPv6 addresses in mixed notation while
``ipaddress`` in Python 3.11 does not), and floats, compared bit-for-bit except that any NaN equals
any NaN (NaN *is* generated, with and without payloads, for float32, float64 and float64 reduced
to 4 octets; a NaN payload need not survive a float32/float64 conversion, so it is not compared).

Templates may refer to earlier templates of the same schema through subTemplateList and
subTemplateMultiList fields, so the encoder can build those lists and the decoder, which gets the
templates in the same stream, can resolve them.
"""

from __future__ import annotations

import ipaddress
import itertools
import math
import struct
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from ipfix_antrea import (
    BasicList,
    Encoder,
    InformationElement,
    Registry,
    SubTemplateList,
    SubTemplateMultiList,
    default_registry,
)
from ipfix_antrea.types import DATA_TYPES, NTP_EPOCH_OFFSET, data_type

VARIABLE = 65535
LIST_TYPES = ("basicList", "subTemplateList", "subTemplateMultiList")
SCALAR_TYPES = tuple(sorted(t for t in DATA_TYPES if t not in LIST_TYPES))
ALL_TYPES = tuple(sorted(DATA_TYPES))
#: Types whose length is fixed by the type (reduced sizes aside): the ones a template can get wrong.
FIXED_TYPES = tuple(t for t in SCALAR_TYPES if DATA_TYPES[t].natural_length is not None)
KNOWN_ENTERPRISES = (0, 29305, 55829, 56506)
ALL_KINDS = ("registry", "custom", "unknown", "mismatch")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
UNITS = {"dateTimeSeconds": 1, "dateTimeMilliseconds": 1000,
         "dateTimeMicroseconds": 1_000_000, "dateTimeNanoseconds": 1_000_000_000}


def _registry_pools() -> dict[str, list[InformationElement]]:
    pools: dict[str, list[InformationElement]] = {t: [] for t in ALL_TYPES}
    for ie in default_registry():
        pools[ie.data_type].append(ie)
    return pools


#: Elements of the default registry by abstract type (some types, e.g. signed8, have none).
REGISTRY_POOLS = _registry_pools()


# -- plans --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldPlan:
    element: InformationElement  # what the encoder writes into the template
    length: int
    kind: str  # registry | custom | unknown | mismatch
    sub: tuple[int, ...] = ()  # subTemplate(Multi)List: indexes of the templates it may carry
    item: FieldPlan | None = None  # basicList: the plan of its element

    @property
    def decoded_element(self) -> InformationElement:
        """The element the decoder reports for this field."""
        if self.kind == "unknown":
            e = self.element
            return InformationElement(f"en{e.enterprise}:id{e.element_id}", e.element_id,
                                      e.enterprise)
        return self.element

    @property
    def decoded_name(self) -> str:
        return self.decoded_element.name

    @property
    def encoder_type(self) -> str:
        """The type the encoder encodes the value with."""
        return "octetArray" if self.kind == "mismatch" else self.element.data_type


@dataclass
class TemplatePlan:
    template_id: int
    fields: tuple[FieldPlan, ...]
    scope_count: int = 0

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.decoded_name for f in self.fields)

    @property
    def encoder_fields(self) -> list[tuple[InformationElement, int]]:
        return [(f.element, f.length) for f in self.fields]


@dataclass
class Schema:
    registry: Registry  # shared by encoder and session: default registry + custom elements
    templates: list[TemplatePlan]

    def expected_template_events(self, domain: int) -> list[tuple[Any, ...]]:
        """What a session reports when it learns these templates, in order (see event_key)."""
        out: list[tuple[Any, ...]] = []
        for tp in self.templates:
            out.append(("TemplateAdded", domain, tp.template_id))
            for f in tp.fields:
                if f.kind == "unknown":
                    e = f.element
                    out.append(("UnknownElement", domain, tp.template_id, e.enterprise,
                                e.element_id, f.decoded_name))
                elif f.kind == "mismatch":
                    out.append(("InvalidFieldLength", domain, tp.template_id, f.decoded_name,
                                f.length))
        return out


def event_key(event: Any) -> tuple[Any, ...]:
    """A comparable summary of an event (templates by id)."""
    name = type(event).__name__
    if name == "TemplateAdded":
        return (name, event.observation_domain_id, event.template.template_id)
    if name == "UnknownElement":
        return (name, event.observation_domain_id, event.template_id, event.enterprise,
                event.element_id, event.name)
    if name == "InvalidFieldLength":
        return (name, event.observation_domain_id, event.template_id, event.name, event.length)
    return (name, event.observation_domain_id)


class _Builder:
    """Per-schema state: the registry being extended and the (enterprise, id) pairs in use."""

    def __init__(self) -> None:
        self.registry = default_registry()
        self.used: set[tuple[int, int]] = set()
        self.customs: dict[str, InformationElement] = {}

    def free(self, enterprise: int, element_id: int) -> bool:
        key = (enterprise, element_id)
        return key not in self.used and self.registry.get(enterprise, element_id) is None

    def claim(self, enterprise: int, element_id: int) -> tuple[int, int]:
        """The first free element id from ``element_id`` on (no rejection sampling, so the
        smallest example stays small), marked as used."""
        for step in range(0x8000):
            candidate = (element_id + step) % 0x8000
            if self.free(enterprise, candidate):
                self.used.add((enterprise, candidate))
                return enterprise, candidate
        raise AssertionError(f"enterprise {enterprise} has no free element id")


_enterprises = st.integers(1, 0xFFFFFFFF).filter(lambda e: e not in KNOWN_ENTERPRISES)
_element_ids = st.integers(0, 0x7FFF)


def _custom(draw: Any, b: _Builder, dtype: str) -> InformationElement:
    """A made-up enterprise element of ``dtype``, registered in the shared registry."""
    ie = b.customs.get(dtype)
    if ie is not None and draw(st.booleans()):
        return ie
    enterprise, element_id = b.claim(draw(_enterprises), draw(_element_ids))
    ie = InformationElement(f"madeUp{dtype[0].upper()}{dtype[1:]}E{enterprise}N{element_id}",
                            element_id, enterprise, dtype)
    b.registry.add(ie)
    b.customs[dtype] = ie
    return ie


def _unknown(draw: Any, b: _Builder, dtype: str) -> InformationElement:
    """An element the decoder's registry lacks; the encoder may know it as ``dtype``."""
    enterprise, element_id = b.claim(draw(st.sampled_from(KNOWN_ENTERPRISES) | _enterprises),
                                     draw(_element_ids))
    if dtype == "octetArray":  # what Encoder.field("en<E>:id<N>") makes
        return InformationElement(f"en{enterprise}:id{element_id}", element_id, enterprise)
    return InformationElement(f"exporterOnly{enterprise}x{element_id}", element_id, enterprise,
                              dtype)


def valid_lengths(dtype: str) -> st.SearchStrategy[int]:
    """Lengths a template may give ``dtype`` (RFC 7011 §6.2 reduced sizes included)."""
    t = DATA_TYPES[dtype]
    if dtype in LIST_TYPES:
        return st.just(VARIABLE)
    if dtype in ("string", "octetArray"):
        return st.just(VARIABLE) | st.integers(1, 24)
    if dtype.startswith(("unsigned", "signed")):
        return st.integers(1, t.natural_length)
    if dtype == "float64":
        return st.sampled_from([8, 4])
    return st.just(t.natural_length)


def invalid_lengths(dtype: str) -> st.SearchStrategy[int]:
    t = DATA_TYPES[dtype]
    return (st.integers(1, 20) | st.just(VARIABLE)).filter(
        lambda n: not t.valid_length(n) or n == VARIABLE)


@st.composite
def _field_plan(draw: Any, b: _Builder, earlier: int, depth: int, kinds: tuple[str, ...],
                lists: bool, in_basic_list: bool = False, dtype: str | None = None) -> FieldPlan:
    types = ALL_TYPES if lists else SCALAR_TYPES
    if dtype is None:
        dtype = draw(st.sampled_from(types))
    if dtype in ("subTemplateList", "subTemplateMultiList") and (earlier == 0 or in_basic_list):
        dtype = "basicList"
    if dtype == "basicList" and depth >= 2:
        dtype = draw(st.sampled_from(SCALAR_TYPES))
    if dtype in LIST_TYPES:
        pool = REGISTRY_POOLS[dtype]
        use_registry = "registry" in kinds and draw(st.booleans())
        element = draw(st.sampled_from(pool)) if use_registry else _custom(draw, b, dtype)
        kind = "registry" if use_registry else "custom"
        if dtype == "basicList":
            item = draw(_field_plan(b, earlier, depth + 1, kinds, lists, in_basic_list=True))
            return FieldPlan(element, VARIABLE, kind, item=item)
        if dtype == "subTemplateList":
            return FieldPlan(element, VARIABLE, kind, sub=(draw(st.integers(0, earlier - 1)),))
        sub = draw(st.lists(st.integers(0, earlier - 1), min_size=1, max_size=3, unique=True))
        return FieldPlan(element, VARIABLE, kind, sub=tuple(sub))
    choices = [k for k in kinds if k != "mismatch" or dtype in FIXED_TYPES]
    kind = draw(st.sampled_from(choices))
    if kind == "registry" and not REGISTRY_POOLS[dtype]:
        kind = "custom"
    if kind == "unknown":
        return FieldPlan(_unknown(draw, b, dtype), draw(valid_lengths(dtype)), kind)
    element = draw(st.sampled_from(REGISTRY_POOLS[dtype])) if kind == "registry" else _custom(draw, b, dtype)
    if kind == "mismatch":
        return FieldPlan(element, draw(invalid_lengths(dtype)), kind)
    return FieldPlan(element, draw(valid_lengths(dtype)), kind)


@st.composite
def schemas(draw: Any, max_templates: int = 4, max_fields: int = 6, lists: bool = True,
            kinds: tuple[str, ...] = ALL_KINDS, options: bool = True,
            duplicates: bool = True, all_lists: bool = False) -> Schema:
    """Random templates of every type; later templates may carry earlier ones in lists.

    ``all_lists``: at least two templates, and the last one also gets a basicList, a
    subTemplateList and a subTemplateMultiList field.
    """
    b = _Builder()
    count = draw(st.integers(2 if all_lists else 1, max(max_templates, 2 if all_lists else 1)))
    ids = draw(st.lists(st.integers(256, 0xFFFF), min_size=count, max_size=count, unique=True))
    templates: list[TemplatePlan] = []
    for index, template_id in enumerate(ids):
        fields = draw(st.lists(_field_plan(b, index, 0, kinds, lists), min_size=1,
                               max_size=max_fields))
        if all_lists and index == count - 1:
            for dtype in LIST_TYPES:
                fields.insert(draw(st.integers(0, len(fields))),
                              draw(_field_plan(b, index, 0, kinds, True, dtype=dtype)))
        if duplicates and draw(st.booleans()):
            twin = fields[draw(st.integers(0, len(fields) - 1))]
            fields.insert(draw(st.integers(0, len(fields))), twin)
        scope = draw(st.integers(1, len(fields))) if options and draw(st.booleans()) else 0
        templates.append(TemplatePlan(template_id, tuple(fields), scope))
    return Schema(b.registry, templates)


# -- values -------------------------------------------------------------------------------------


def _ints(signed: bool, length: int) -> st.SearchStrategy[int]:
    bits = 8 * length
    if signed:
        return st.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return st.integers(0, (1 << bits) - 1)


def _units(dt: datetime, per_second: int) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - EPOCH
    micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
    return micros * per_second // 1_000_000


def _timestamps(dtype: str, length: int) -> st.SearchStrategy[tuple[Any, Any]]:
    unit = UNITS[dtype]
    if dtype in ("dateTimeMicroseconds", "dateTimeNanoseconds"):
        # NTP era 0 on the wire: 1900-01-01 .. 2036-02-07 06:28:15.
        low, high = -NTP_EPOCH_OFFSET * unit, ((1 << 32) - NTP_EPOCH_OFFSET) * unit - 1
        dt_low, dt_high = datetime(1900, 1, 1), datetime(2036, 2, 7, 6, 28, 14)
    elif dtype == "dateTimeSeconds":
        low, high = 0, (1 << 32) - 1
        dt_low, dt_high = datetime(1970, 1, 1), datetime(2106, 2, 7, 6, 28, 14)
    else:
        low, high = 0, (1 << 64) - 1
        dt_low, dt_high = datetime(1970, 1, 1), datetime(9999, 12, 31)
    ints = st.integers(low, high).map(lambda v: (v, v))
    dts = st.datetimes(dt_low, dt_high, timezones=st.sampled_from([None, UTC]))
    return ints | ints | dts.map(lambda d: (d, _units(d, unit)))


def _fixed_text(length: int) -> st.SearchStrategy[str]:
    def fit(text: str) -> str:
        while len(text.encode()) > length:
            text = text[:-1]
        return text.rstrip("\x00")  # NUL padding is stripped on decoding
    return st.text(st.characters(codec="utf-8"), max_size=length).map(fit)


def _text_or_bytes_inputs(raw: bytes) -> st.SearchStrategy[Any]:
    return st.sampled_from([raw, raw.hex(), bytearray(raw)])


def scalar_values(dtype: str, length: int) -> st.SearchStrategy[tuple[Any, Any]]:
    """(input, expected) for a field of a non-list type that the decoder knows as ``dtype``."""
    if dtype.startswith(("unsigned", "signed")):
        return _ints(dtype.startswith("signed"), length).map(lambda v: (v, v))
    if dtype in ("float32", "float64"):
        floats = st.floats(width=32) if length == 4 else st.floats()
        return floats.map(lambda v: (v, v))
    if dtype == "boolean":
        return (st.booleans().map(lambda v: (v, v))
                | st.integers(0, 255).map(lambda v: (v, True if v == 1 else False if v == 2
                                                     else v)))
    if dtype == "macAddress":
        return st.binary(min_size=6, max_size=6).flatmap(
            lambda raw: st.sampled_from([raw, raw.hex(":"), raw.hex("-").upper()]).map(
                lambda given: (given, raw.hex(":"))))
    if dtype in ("ipv4Address", "ipv6Address"):
        version = 4 if dtype == "ipv4Address" else 6
        return st.ip_addresses(v=version).flatmap(
            lambda ip: st.sampled_from([str(ip), ip, ip.packed, ip.exploded]).map(
                lambda given: (given, ip)))
    if dtype == "string":
        if length == VARIABLE:
            text = (st.text(st.characters(codec="utf-8"), max_size=12)
                    | st.text(st.characters(codec="utf-8"), min_size=255, max_size=300))
        else:
            text = _fixed_text(length)
        return text.map(lambda v: (v, v))
    if dtype == "octetArray":
        if length == VARIABLE:
            raw = (st.binary(max_size=12) | st.binary(min_size=253, max_size=600)
                   | st.sampled_from([b"\x00" * 254, b"\xff" * 255, b"\x01" * 256]))
        else:
            raw = st.binary(min_size=length, max_size=length)
        return raw.flatmap(lambda r: _text_or_bytes_inputs(r).map(lambda given: (given, r)))
    if dtype in UNITS:
        return _timestamps(dtype, length)
    raise AssertionError(f"no value strategy for {dtype}")


def _encoded(dtype: str, length: int) -> st.SearchStrategy[tuple[Any, Any]]:
    """A typed input whose expected decoded value is its wire octets."""
    return scalar_values(dtype, length).map(
        lambda pair: (pair[0], data_type(dtype).encode(pair[0], length)))


_semantics = st.integers(0, 255)


def field_values(plan: FieldPlan, schema: Schema) -> st.SearchStrategy[tuple[Any, Any]]:
    if plan.kind == "mismatch":
        return scalar_values("octetArray", plan.length)
    dtype = plan.element.data_type
    if plan.kind == "unknown":
        if dtype == "octetArray":
            return scalar_values("octetArray", plan.length)
        return _encoded(dtype, plan.length)
    if dtype == "basicList":
        return _basic_lists(plan, schema)
    if dtype == "subTemplateList":
        return _sub_template_lists(plan, schema)
    if dtype == "subTemplateMultiList":
        return _sub_template_multi_lists(plan, schema)
    return scalar_values(dtype, plan.length)


@st.composite
def _basic_lists(draw: Any, plan: FieldPlan, schema: Schema) -> tuple[Any, Any]:
    item = plan.item
    assert item is not None
    semantic = draw(_semantics)
    pairs = draw(st.lists(field_values(item, schema), max_size=3))
    given = BasicList(item.element, [p[0] for p in pairs], semantic, item.length)
    expected = BasicList(item.decoded_element, [p[1] for p in pairs], semantic, item.length)
    return given, expected


@st.composite
def _sub_template_lists(draw: Any, plan: FieldPlan, schema: Schema) -> tuple[Any, Any]:
    tp = schema.templates[plan.sub[0]]
    semantic = draw(_semantics)
    pairs = draw(st.lists(record_values(tp, schema, as_tuples=True), max_size=2))
    return (SubTemplateList(tp.template_id, [p[0] for p in pairs], semantic),
            SubTemplateList(tp.template_id, [p[1] for p in pairs], semantic))


@st.composite
def _sub_template_multi_lists(draw: Any, plan: FieldPlan, schema: Schema) -> tuple[Any, Any]:
    semantic = draw(_semantics)
    given, expected = [], []
    for _ in range(draw(st.integers(0, 3))):
        tp = schema.templates[draw(st.sampled_from(plan.sub))]
        pairs = draw(st.lists(record_values(tp, schema, as_tuples=True), max_size=2))
        # An entry has no semantic of its own on the wire: it takes the list's.
        given.append(SubTemplateList(tp.template_id, [p[0] for p in pairs]))
        expected.append(SubTemplateList(tp.template_id, [p[1] for p in pairs], semantic))
    return SubTemplateMultiList(given, semantic), SubTemplateMultiList(expected, semantic)


@st.composite
def record_values(draw: Any, tp: TemplatePlan, schema: Schema,
                  as_tuples: bool = False) -> tuple[Any, tuple[Any, ...]]:
    """(record as handed to the encoder, expected decoded values)."""
    pairs = [draw(field_values(f, schema)) for f in tp.fields]
    values = tuple(p[0] for p in pairs)
    expected = tuple(p[1] for p in pairs)
    names = [f.element.name for f in tp.fields]
    form = "tuple" if as_tuples else draw(st.sampled_from(["tuple", "list", "dict"]))
    if form == "dict" and len(set(names)) == len(names):
        return dict(zip(names, values, strict=True)), expected
    if form == "list":
        return list(values), expected
    return values, expected


# -- streams ------------------------------------------------------------------------------------


@dataclass
class ExpectedRecord:
    template_id: int
    values: tuple[Any, ...]
    scope_count: int
    sequence_number: int = -1  # filled in from the message layout


@dataclass
class Stream:
    template_messages: list[bytes]
    data_messages: list[bytes]
    records: list[ExpectedRecord]
    #: Data records in each data message, counted from the encoded record sizes.
    records_per_message: list[int]

    @property
    def messages(self) -> list[bytes]:
        return self.template_messages + self.data_messages

    @property
    def octets(self) -> bytes:
        return b"".join(self.messages)


@dataclass
class StreamPlan:
    schema: Schema
    domain: int
    export_time: int
    max_message_size: int
    #: encode() calls in order: (template index, records for the encoder, expected values).
    calls: list[tuple[int, list[Any], list[tuple[Any, ...]]]] = field(default_factory=list)

    def encoder(self) -> Encoder:
        enc = Encoder(self.domain, registry=self.schema.registry,
                      max_message_size=self.max_message_size,
                      export_time=lambda: self.export_time)
        for tp in self.schema.templates:
            enc.add_template(tp.template_id, tp.encoder_fields, scope_count=tp.scope_count)
        return enc

    def encode(self) -> Stream:
        enc = self.encoder()
        template_messages = enc.template_messages()
        data_messages: list[bytes] = []
        expected: list[ExpectedRecord] = []
        per_message: list[int] = []
        for index, given, values in self.calls:
            tp = self.schema.templates[index]
            sizes = [len(enc.encode_record(tp.template_id, r)) for r in given]
            messages = enc.encode(tp.template_id, given)
            per_message += _count_records(messages, sizes)
            data_messages += messages
            expected += [ExpectedRecord(tp.template_id, v, tp.scope_count) for v in values]
        seq, k = 0, 0
        for count in per_message:
            for record in expected[k:k + count]:
                record.sequence_number = seq
            seq, k = seq + count, k + count
        assert k == len(expected)
        return Stream(template_messages, data_messages, expected, per_message)


def _count_records(messages: list[bytes], sizes: list[int]) -> list[int]:
    """How many records each message carries, walking set bodies with the known record sizes."""
    counts = []
    i = 0
    for message in messages:
        length = struct.unpack_from(">H", message, 2)[0]
        assert length == len(message)
        pos, n = 16, 0
        while pos < length:
            set_length = struct.unpack_from(">H", message, pos + 2)[0]
            body = set_length - 4
            while body > 0:
                body -= sizes[i]
                i, n = i + 1, n + 1
            assert body == 0, "a data set does not end on a record boundary"
            pos += set_length
        counts.append(n)
    assert i == len(sizes)
    return counts


_TEMPLATE_HEADER = 4


def _template_record_size(tp: TemplatePlan) -> int:
    size = _TEMPLATE_HEADER + (2 if tp.scope_count else 0)
    return size + sum(8 if f.element.enterprise else 4 for f in tp.fields)


@st.composite
def stream_plans(draw: Any, schema_strategy: st.SearchStrategy[Schema] | None = None,
                 max_calls: int = 4, max_records: int = 5) -> StreamPlan:
    """A schema, records for some of its templates, and a message size cap they all fit."""
    schema = draw(schema_strategy if schema_strategy is not None else schemas())
    domain = draw(st.integers(0, 0xFFFFFFFF))
    export_time = draw(st.integers(0, 0xFFFFFFFF))
    plan = StreamPlan(schema, domain, export_time, 65535)
    for _ in range(draw(st.integers(1, max_calls))):
        index = draw(st.integers(0, len(schema.templates) - 1))
        tp = schema.templates[index]
        pairs = draw(st.lists(record_values(tp, schema), min_size=1, max_size=max_records))
        plan.calls.append((index, [p[0] for p in pairs], [p[1] for p in pairs]))
    rows = [(index, r) for index, given, _ in plan.calls for r in given]
    plan.max_message_size = draw(message_sizes(schema, plan.encoder(), rows))
    return plan


def message_sizes(schema: Schema, enc: Encoder,
                  rows: Iterable[tuple[int, Any]]) -> st.SearchStrategy[int]:
    """Message size caps that every template of ``schema`` and every record of ``rows``
    ((template index, record)) fits, tight ones included so that messages get split."""
    units = [_template_record_size(tp) for tp in schema.templates]
    units += [len(enc.encode_record(schema.templates[index].template_id, r)) for index, r in rows]
    smallest = max(21, max(units) + 16 + 4)
    if smallest > 65535:  # pragma: no cover - strategies keep records far smaller
        raise AssertionError("generated record does not fit any message")
    return (st.integers(smallest, min(65535, smallest + 400)) | st.integers(smallest, 65535)
            | st.just(65535))


@st.composite
def splits(draw: Any, data: bytes, max_cuts: int = 12) -> list[bytes]:
    """``data`` cut into chunks at random offsets (empty chunks included)."""
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=max_cuts)))
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- comparison ---------------------------------------------------------------------------------


def assert_same(actual: Any, expected: Any, path: str = "value") -> None:
    """Deep equality of decoded values with the stand-ins described in the module docstring."""
    if isinstance(expected, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        assert isinstance(actual, str), f"{path}: {actual!r} is not a str"
        assert ipaddress.ip_address(actual) == expected, f"{path}: {actual!r} != {expected}"
        return
    if isinstance(expected, float):
        assert type(actual) is float, f"{path}: {actual!r} is not a float"
        if math.isnan(expected):
            assert math.isnan(actual), f"{path}: {actual!r} is not NaN"
        else:
            assert struct.pack(">d", actual) == struct.pack(">d", expected), \
                f"{path}: {actual!r} != {expected!r}"
        return
    if isinstance(expected, BasicList):
        assert isinstance(actual, BasicList), f"{path}: {actual!r} is not a BasicList"
        assert actual.element == expected.element, f"{path}.element: {actual.element!r}"
        assert actual.semantic == expected.semantic, f"{path}.semantic: {actual.semantic}"
        assert actual.field_length == expected.field_length, f"{path}.field_length"
        assert_same(actual.values, expected.values, f"{path}.values")
        return
    if isinstance(expected, SubTemplateList):
        assert isinstance(actual, SubTemplateList), f"{path}: {actual!r} is not a SubTemplateList"
        assert actual.template_id == expected.template_id, f"{path}.template_id"
        assert actual.semantic == expected.semantic, f"{path}.semantic: {actual.semantic}"
        assert actual.template is not None and actual.template.template_id == \
            expected.template_id, f"{path}.template"
        assert_same(actual.records, expected.records, f"{path}.records")
        return
    if isinstance(expected, SubTemplateMultiList):
        assert isinstance(actual, SubTemplateMultiList), f"{path}: {actual!r}"
        assert actual.semantic == expected.semantic, f"{path}.semantic"
        assert_same(actual.entries, expected.entries, f"{path}.entries")
        return
    if isinstance(expected, (tuple, list)):
        assert isinstance(actual, (tuple, list)), f"{path}: {actual!r} is not a sequence"
        assert len(actual) == len(expected), \
            f"{path}: {len(actual)} items, expected {len(expected)}: {actual!r}"
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            assert_same(a, e, f"{path}[{i}]")
        return
    assert type(actual) is type(expected), \
        f"{path}: {actual!r} ({type(actual).__name__}) != {expected!r} ({type(expected).__name__})"
    assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def name_counts(plan: TemplatePlan) -> Counter[str]:
    return Counter(plan.names)


__all__ = [
    "ALL_KINDS", "ALL_TYPES", "FIXED_TYPES", "LIST_TYPES", "SCALAR_TYPES", "VARIABLE",
    "ExpectedRecord", "FieldPlan", "Schema", "Stream", "StreamPlan", "TemplatePlan",
    "assert_same", "event_key", "field_values", "invalid_lengths", "message_sizes", "name_counts",
    "record_values", "scalar_values", "schemas", "splits", "stream_plans", "valid_lengths",
]
