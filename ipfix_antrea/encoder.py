"""Building IPFIX messages from Python values: the exporter side of the codec.

An :class:`Encoder` is one observation domain of one exporting process: it holds templates,
turns records into data sets, splits them into messages no larger than a size limit, and keeps
the RFC 7011 §3.1 sequence number (the count of data records sent before each message). Headers
and template records are built with the ``construct`` declarations of :mod:`ipfix_antrea.wire`,
so encoder and decoder share one description of the format. Like the session, it does no I/O:
it returns bytes for the caller to send or write.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from .record import values_in_order
from .registry import InformationElement, Registry, default_registry
from .structured import encode_field
from .template import FieldSpec, Template
from .types import data_type
from .wire import (
    MAX_MESSAGE_LENGTH,
    MESSAGE_HEADER_LENGTH,
    MIN_DATA_SET_ID,
    OPTIONS_TEMPLATE_SET_ID,
    SET_HEADER_LENGTH,
    TEMPLATE_SET_ID,
    VARIABLE_LENGTH,
    MessageHeader,
    OptionsTemplateRecord,
    SetHeader,
    TemplateRecord,
)

FieldLike = str | InformationElement | FieldSpec | tuple[str | InformationElement, int]
RecordLike = Sequence[Any] | Mapping[str, Any]


class Encoder:
    """Encodes templates and records of one observation domain into IPFIX messages.

    ``export_time`` is a callable returning the export time in seconds (the clock by default);
    ``max_message_size`` caps each message (65535 for TCP; the path MTU less headers for UDP).

    ``template_refresh`` makes :meth:`encode` send templates by itself: before their first use,
    and again once that many seconds (of ``clock``) have passed since they were last sent, as
    RFC 7011 §8.4 asks of UDP exporters (Antrea refreshes every 600 s). ``math.inf`` sends each
    template once, as suits TCP. ``None``, the default, leaves it to the caller
    (:meth:`template_messages`).
    """

    def __init__(self, observation_domain_id: int = 0, *, registry: Registry | None = None,
                 max_message_size: int = MAX_MESSAGE_LENGTH,
                 export_time: Callable[[], int] | None = None,
                 template_refresh: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if not MESSAGE_HEADER_LENGTH + SET_HEADER_LENGTH < max_message_size <= MAX_MESSAGE_LENGTH:
            raise ValueError(f"max_message_size must be 21..{MAX_MESSAGE_LENGTH}")
        self.observation_domain_id = observation_domain_id
        self.registry = registry if registry is not None else default_registry()
        self.max_message_size = max_message_size
        self.template_refresh = template_refresh
        self._export_time = export_time or (lambda: int(time.time()))
        self._clock = clock
        self.sequence_number = 0
        self._templates: dict[int, Template] = {}
        self._sent: dict[int, float] = {}  # template id -> clock when it was last sent

    # The structured-data encoder resolves sub-templates through this (TemplateLookup).
    def template(self, template_id: int) -> Template | None:
        """The template with this id, if added."""
        return self._templates.get(template_id)

    def field(self, spec: FieldLike) -> FieldSpec:
        """A field specifier from a name, an element, a FieldSpec, or (name or element, length)."""
        if isinstance(spec, FieldSpec):
            return spec
        length = None
        if isinstance(spec, tuple):
            spec, length = spec
        element = spec if isinstance(spec, InformationElement) else self.registry.by_name(spec)
        if length is None:
            length = element.length if element.length is not None else _natural_length(element)
        return FieldSpec(element, length)

    def add_template(self, template_id: int, fields: Iterable[FieldLike],
                     scope_count: int = 0) -> Template:
        """Defines (or redefines) a template; ``scope_count`` > 0 makes an options template."""
        if not MIN_DATA_SET_ID <= template_id <= 0xFFFF:
            raise ValueError(f"template id {template_id} is outside 256..65535")
        specs = [self.field(f) for f in fields]
        if not specs:
            raise ValueError("a template needs at least one field")
        if not 0 <= scope_count <= len(specs):
            raise ValueError(f"scope_count {scope_count} of {len(specs)} fields")
        template = Template(template_id, specs, scope_count)
        self._templates[template_id] = template
        self._sent.pop(template_id, None)  # a new definition is due at once
        return template

    def template_messages(self, template_ids: Iterable[int] | None = None) -> list[bytes]:
        """Messages carrying the given templates (all by default), to send or re-send."""
        ids = list(self._templates) if template_ids is None else list(template_ids)
        units: list[tuple[int, bytes]] = []
        for template_id in ids:
            template = self._templates[template_id]
            set_id = OPTIONS_TEMPLATE_SET_ID if template.is_options else TEMPLATE_SET_ID
            units.append((set_id, template_record(template)))
        messages = self._pack(units)
        now = self._clock()  # only once the messages exist: a refused call sends nothing
        for template_id in ids:
            self._sent[template_id] = now
        return messages

    def withdraw(self, template_id: int) -> bytes:
        """A withdrawal message for one template (RFC 7011 §8.1); the template is forgotten."""
        template = self._templates[template_id]
        if template.is_options:
            unit = (OPTIONS_TEMPLATE_SET_ID, OptionsTemplateRecord.build(
                {"template_id": template_id, "field_count": 0, "scope_field_count": None,
                 "fields": []}))
        else:
            unit = (TEMPLATE_SET_ID, TemplateRecord.build(
                {"template_id": template_id, "field_count": 0, "fields": []}))
        (message,) = self._pack([unit])
        del self._templates[template_id]
        self._sent.pop(template_id, None)
        return message

    def encode_record(self, template_id: int, record: RecordLike) -> bytes:
        """The wire bytes of one data record."""
        template = self._templates[template_id]
        values = values_in_order(template, record)
        return b"".join(encode_field(spec, value, self)
                        for spec, value in zip(template.fields, values, strict=True))

    def encode(self, template_id: int, records: Iterable[RecordLike]) -> list[bytes]:
        """Messages carrying ``records`` in data sets of ``template_id``, split at the size cap;
        preceded by template messages when ``template_refresh`` says they are due."""
        units = [(template_id, self.encode_record(template_id, r)) for r in records]
        layout = self._layout(units)  # refuses a record too large before anything changes
        # Templates first: their message must carry the count of the data records sent before
        # it, not after this data (RFC 7011 §3.1), or a collector sees it out of order.
        templates = self._due_templates()
        return templates + [self._message(sets, count_records=True) for sets in layout]

    def _due_templates(self) -> list[bytes]:
        if self.template_refresh is None:
            return []
        now = self._clock()
        due = [t for t in self._templates
               if t not in self._sent or now - self._sent[t] >= self.template_refresh]
        return self.template_messages(due) if due else []

    # -- message assembly ---------------------------------------------------------------------

    def _pack(self, units: list[tuple[int, bytes]]) -> list[bytes]:
        """Messages of template (or withdrawal) records: (set id, record bytes) units."""
        return [self._message(sets) for sets in self._layout(units)]

    def _layout(self, units: list[tuple[int, bytes]]) -> list[list[tuple[int, list[bytes]]]]:
        """The sets of each message, packing (set id, record bytes) units into as few messages as
        the size cap allows. Builds nothing, so a unit too large for any message is refused
        before a call has changed the sequence number or marked a template as sent."""
        for _, body in units:
            if MESSAGE_HEADER_LENGTH + SET_HEADER_LENGTH + len(body) > self.max_message_size:
                raise ValueError(f"a record of {len(body)} octets does not fit a message of "
                                 f"{self.max_message_size}")
        room = self.max_message_size - MESSAGE_HEADER_LENGTH
        layout: list[list[tuple[int, list[bytes]]]] = []
        sets: list[tuple[int, list[bytes]]] = []
        used = 0
        for set_id, body in units:
            same_set = bool(sets) and sets[-1][0] == set_id
            cost = len(body) + (0 if same_set else SET_HEADER_LENGTH)
            if used + cost > room:
                layout.append(sets)
                sets, used, same_set = [], 0, False
                cost = len(body) + SET_HEADER_LENGTH
            if same_set:
                sets[-1][1].append(body)
            else:
                sets.append((set_id, [body]))
            used += cost
        if sets:
            layout.append(sets)
        return layout

    def _message(self, sets: list[tuple[int, list[bytes]]], count_records: bool = False) -> bytes:
        payload = b"".join(
            SetHeader.build({"set_id": set_id, "length": SET_HEADER_LENGTH + sum(map(len, bodies))})
            + b"".join(bodies)
            for set_id, bodies in sets)
        header: bytes = MessageHeader.build({
            "length": MESSAGE_HEADER_LENGTH + len(payload),
            "export_time": self._export_time(),
            "sequence_number": self.sequence_number,
            "observation_domain_id": self.observation_domain_id,
        })
        if count_records:
            records = sum(len(bodies) for _, bodies in sets)
            self.sequence_number = (self.sequence_number + records) % (1 << 32)
        return header + payload


def _natural_length(element: InformationElement) -> int:
    natural = data_type(element.data_type).natural_length
    return VARIABLE_LENGTH if natural is None else natural


def template_record(template: Template) -> bytes:
    """The wire form of ``template``: its (options) template record, RFC 7011 §3.4.1 and §3.4.2."""
    fields = [{"id": {"enterprise_bit": f.element.enterprise != 0,
                      "element_id": f.element.element_id},
               "length": f.length,
               "enterprise": f.element.enterprise or None}
              for f in template.fields]
    record: bytes
    if template.is_options:
        record = OptionsTemplateRecord.build({"template_id": template.template_id,
                                              "field_count": len(fields),
                                              "scope_field_count": template.scope_count,
                                              "fields": fields})
    else:
        record = TemplateRecord.build({"template_id": template.template_id,
                                       "field_count": len(fields), "fields": fields})
    return record
