"""The sans-IO decoder of one IPFIX transport session.

A :class:`Session` takes bytes and returns records; it never touches a socket, a file or a
clock of its own (UDP template expiry takes ``now`` from the caller). Its state is what RFC 7011
scopes to a transport session: the templates of each observation domain (§8), the sequence
number expected next per domain (§3.1), data sets still waiting for their template, and a
partial message of a stream.

Strategy: messages are framed with ``struct`` from the header length and decoded where they lie
in the chunk or datagram (no copy per message); each set is handled on its own so that a bad set
is reported (:class:`~ipfix_antrea.events.MalformedSet`) while the sets around it still decode.
Template records are parsed with the ``construct`` declarations of :mod:`ipfix_antrea.wire`; the
session keeps each current template's record bytes, and a record that arrives again with the same
bytes (UDP exporters re-send every template every few dozen messages, RFC 7011 §8.4) only
refreshes the template's lifetime, since parsing it would build an equal template. Data records
go through the code compiled per template. Only a message that cannot be framed raises
:class:`DecodeError`, because nothing after it can be trusted.
"""

from __future__ import annotations

import struct
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from construct import ConstructError

from . import events as ev
from .errors import DecodeError
from .record import Record
from .registry import Registry, default_registry
from .structured import UnknownSubTemplate
from .template import FieldSpec, Template
from .wire import (
    IPFIX_VERSION,
    MESSAGE_HEADER_LENGTH,
    MIN_DATA_SET_ID,
    OPTIONS_TEMPLATE_SET_ID,
    SET_HEADER_LENGTH,
    TEMPLATE_SET_ID,
    WITHDRAW_ALL_OPTIONS_TEMPLATES_ID,
    WITHDRAW_ALL_TEMPLATES_ID,
    OptionsTemplateRecord,
    TemplateRecord,
)

# The same layouts as wire.MessageHeader and wire.SetHeader, for the per-message hot path.
_HEADER = struct.Struct(">HHIII")
_SET_HEADER = struct.Struct(">HH")
_SEQUENCE_MODULUS = 1 << 32
#: Distinct unknown element names a session's stats keep (`SessionStats.unknown_element_names`).
MAX_UNKNOWN_NAMES = 1000


@dataclass
class SessionStats:
    """Counters of everything a session has seen; they only grow."""

    messages: int = 0
    octets: int = 0
    records: int = 0
    options_records: int = 0
    templates_added: int = 0
    templates_redefined: int = 0
    templates_withdrawn: int = 0
    templates_expired: int = 0
    unknown_elements: int = 0
    #: the names of the first `MAX_UNKNOWN_NAMES` distinct unknown elements (a bound: an exporter
    #: that sends ever new ones must not grow memory; `unknown_elements` counts every one)
    unknown_element_names: set[str] = field(default_factory=set)
    invalid_field_lengths: int = 0
    malformed_messages: int = 0
    malformed_sets: int = 0
    missing_template_sets: int = 0
    pending_decoded_sets: int = 0
    pending_dropped_sets: int = 0
    sequence_gaps: int = 0
    missing_records: int = 0
    out_of_order: int = 0
    nonzero_padding: int = 0


@dataclass(frozen=True)
class SavedTemplate:
    """A template in its wire form, as :meth:`Session.export_templates` gives it and
    :meth:`Session.import_templates` takes it: to carry a session's templates across a restart.

    ``record`` is the (options) template record exactly as RFC 7011 §3.4.1/§3.4.2 lays it out
    (what the exporter sent), so that importing parses it with the same declarations and checks
    as a template that arrives. ``age`` is how many seconds ago the exporter last sent it, for
    sessions whose templates expire (UDP); ``None`` where they do not.
    """

    observation_domain_id: int
    record: bytes
    options: bool = False  # an options template record (set id 3)
    age: float | None = None


@dataclass
class _HeldSet:
    """A data set that arrived before its template."""

    observation_domain_id: int
    template_id: int
    body: bytes
    export_time: int
    sequence_number: int


class _ListContext:
    """Resolves the templates that RFC 6313 lists refer to, within one domain."""

    __slots__ = ("registry", "depth", "_templates", "_domain")

    def __init__(self, session: Session, domain: int):
        self.registry = session.registry
        self.depth = 0
        self._templates = session._templates
        self._domain = domain

    def template(self, template_id: int) -> Template | None:
        return self._templates.get((self._domain, template_id))


class Session:
    """Template state and decoding for one transport session (a TCP connection, a UDP exporter
    address and port, a file).

    ``template_lifetime``: seconds after which a template that was not re-sent expires (RFC
    7011 §8.4, for UDP; ``None`` keeps templates forever, as TCP wants). ``max_pending_sets`` and
    ``max_pending_octets`` bound the data sets held while their template has not arrived.
    ``max_template_fields`` refuses (as a malformed set) templates with more fields than that:
    each new template costs about 50 µs per field to compile, so a collector facing untrusted
    exporters caps it (``None``: no cap beyond what fits in a message).
    """

    def __init__(self, registry: Registry | None = None, *, template_lifetime: float | None = None,
                 max_pending_sets: int = 256, max_pending_octets: int = 1 << 20,
                 max_template_fields: int | None = None):
        self.registry = registry if registry is not None else default_registry()
        self.template_lifetime = template_lifetime
        self.max_template_fields = max_template_fields
        self.max_pending_sets = max_pending_sets
        self.max_pending_octets = max_pending_octets
        self.stats = SessionStats()
        self._templates: dict[tuple[int, int], Template] = {}
        self._refreshed: dict[tuple[int, int], float] = {}
        # Each current template's record as the exporter sent it: its bytes, whether it came in
        # an options template set, and the registry (and its count of changes) that resolved
        # it. A re-sent record with the same bytes is the same template while that registry has
        # not changed; the bytes are also what `export_templates` saves.
        self._wire: dict[tuple[int, int], tuple[bytes, bool, Registry, int]] = {}
        self._held: deque[_HeldSet] = deque()
        self._held_octets = 0
        self._next_sequence: dict[int, int | None] = {}
        self._events: list[ev.Event] = []
        self._buffer = bytearray()
        self._stream_offset = 0
        self._broken: DecodeError | None = None

    # -- public API -------------------------------------------------------------------------

    def feed(self, data: bytes) -> list[Record]:
        """Decodes the complete messages of a stream chunk; keeps a trailing partial message.

        Raises :class:`DecodeError` when the stream cannot be framed (a header that is not
        IPFIX); the records of the messages before it are in the error's ``records``, and the
        session refuses further stream data, since nothing after that point can be trusted.
        """
        if self._broken is not None:
            raise DecodeError(f"stream lost its framing earlier: {self._broken.reason}",
                              self._broken.offset)
        records: list[Record] = []
        origin = self._stream_offset
        buffer = self._buffer
        pos = 0
        try:
            if buffer:  # a partial message waits: decode nothing until it is complete
                buffer += data
                if len(buffer) < MESSAGE_HEADER_LENGTH \
                        or len(buffer) < self._message_length(buffer, 0, origin):
                    return records
                data = bytes(buffer)
                buffer.clear()
            elif type(data) is not bytes:
                data = bytes(data)
            size = len(data)
            while size - pos >= MESSAGE_HEADER_LENGTH:
                length = self._message_length(data, pos, origin + pos)
                if size - pos < length:
                    break
                self._decode_message(data, pos, pos + length, origin, None, records)
                pos += length
        except DecodeError as exc:
            exc.records = records
            self._broken = exc
            self._buffer = bytearray()
            raise
        if pos < size:
            with memoryview(data) as view:
                buffer += view[pos:]
        self._stream_offset = origin + pos
        return records

    def end_of_stream(self) -> None:
        """Says the stream has ended: :meth:`close`, then :class:`DecodeError` if a partial
        message is left."""
        self.close()
        if self._buffer:
            left = len(self._buffer)
            offset = self._stream_offset
            self._buffer = bytearray()
            self.stats.malformed_messages += 1
            raise DecodeError(f"stream ended inside a message ({left} octets left over)", offset)

    def close(self) -> None:
        """Says the transport session is over (a stream ended, a UDP exporter is forgotten):
        the data sets still waiting for their template never will be decoded. Each is dropped,
        counted in ``pending_dropped_sets`` and reported as a
        :class:`~ipfix_antrea.events.PendingSetDropped` with ``session_ended``. Calling it again
        drops nothing more."""
        while self._held:
            self._drop_held(session_ended=True)

    @property
    def buffered(self) -> int:
        """Octets of a partial message held by :meth:`feed`."""
        return len(self._buffer)

    def decode_datagram(self, data: bytes, now: float | None = None) -> list[Record]:
        """Decodes one UDP datagram (normally one message; several back to back are accepted).

        A truncated message is malformed: :class:`DecodeError`, with the records of any complete
        message before it in the error's ``records``. ``now`` is the clock for template expiry
        (``time.monotonic()`` when not given).
        """
        if now is None and self.template_lifetime is not None:
            now = time.monotonic()
        data = bytes(data)
        size = len(data)
        records: list[Record] = []
        pos = 0
        try:
            while pos < size:
                if size - pos < MESSAGE_HEADER_LENGTH:
                    raise self._framing_error(
                        f"{size - pos} octets are too few for a message header", pos)
                length = self._message_length(data, pos, pos)
                if size - pos < length:
                    raise self._framing_error(f"message of {length} octets truncated to "
                                              f"{size - pos}", pos)
                self._decode_message(data, pos, pos + length, 0, now, records)
                pos += length
        except DecodeError as exc:
            exc.records = records
            raise
        return records

    def take_events(self) -> list[ev.Event]:
        """The events since the last call, oldest first."""
        events, self._events = self._events, []
        return events

    def template(self, observation_domain_id: int, template_id: int) -> Template | None:
        """The current template with this id in this domain, if any."""
        return self._templates.get((observation_domain_id, template_id))

    @property
    def templates(self) -> dict[tuple[int, int], Template]:
        """A copy of the current templates, keyed by (observation domain, template id)."""
        return dict(self._templates)

    def export_templates(self, now: float | None = None) -> list[SavedTemplate]:
        """The current templates in their wire form (each record's bytes as the exporter sent
        them), with their age at ``now`` (the clock of :meth:`decode_datagram`); templates whose
        lifetime has run out are left out."""
        clock = time.monotonic() if now is None else now
        saved = []
        for key in self._templates:
            age = None
            if self.template_lifetime is not None:
                age = max(clock - self._refreshed[key], 0.0)
                if age > self.template_lifetime:
                    continue
            record, options = self._wire[key][:2]
            saved.append(SavedTemplate(key[0], record, options, age))
        return saved

    def import_templates(self, templates: Iterable[SavedTemplate],
                         now: float | None = None) -> list[Record]:
        """Installs templates saved by :meth:`export_templates`, as if each had arrived ``age``
        seconds before ``now``: one whose lifetime ran out meanwhile is skipped, the others
        expire when they would have. Each record is checked as one that arrives on the wire
        (the construct declaration, reserved ids, ``max_template_fields``...) and reported and
        counted like one (:class:`~ipfix_antrea.events.TemplateAdded`). Returns the records of
        held data sets the templates released (none on a new session).

        Raises :class:`DecodeError` for a record that is not exactly one valid (options)
        template record; the templates before it stay installed, and the error's ``records``
        holds what they released.
        """
        if now is None and self.template_lifetime is not None:
            now = time.monotonic()
        out: list[Record] = []
        for saved in templates:
            age = max(saved.age or 0.0, 0.0)
            if self.template_lifetime is not None and age > self.template_lifetime:
                continue  # it expired while it was away
            record, domain = saved.record, saved.observation_domain_id
            declaration = OptionsTemplateRecord if saved.options else TemplateRecord
            try:
                try:
                    parsed: Any = declaration.parse(record)
                    size = len(declaration.build(parsed))
                except ConstructError:
                    raise DecodeError(f"saved template record of {len(record)} octets is cut short "
                                      "or not a template record", 0) from None
                if size != len(record) or not parsed.field_count:
                    raise DecodeError(f"saved template {parsed.template_id} is not one template "
                                      f"record ({len(record)} octets, {parsed.field_count} fields)", 0)
                self._template_set(record, 0, len(record), OPTIONS_TEMPLATE_SET_ID if saved.options
                                   else TEMPLATE_SET_ID, domain, 0,
                                   None if now is None else now - age, out)
            except DecodeError as exc:
                exc.records = out
                raise
        return out

    def reset_sequence_numbers(self) -> None:
        """Forgets the sequence number expected next in every domain, so that the next message
        of each starts the count again. For a collector that keeps one session across transport
        sessions (UDP templates scoped by exporter address): an exporter that restarted on a new
        source port counts from its own beginning, which is no gap."""
        self._next_sequence.clear()

    def expire_templates(self, now: float) -> int:
        """Expires every template not refreshed within the lifetime; returns how many."""
        if self.template_lifetime is None:
            return 0
        stale = [k for k, t in self._refreshed.items() if now - t > self.template_lifetime]
        for key in stale:
            self._expire(key)
        return len(stale)

    # -- framing ------------------------------------------------------------------------------

    def _framing_error(self, reason: str, offset: int) -> DecodeError:
        self.stats.malformed_messages += 1
        return DecodeError(reason, offset)

    def _message_length(self, data: bytes | bytearray, pos: int, offset: int) -> int:
        """The length of the message whose header starts at ``pos``; raises DecodeError (at the
        stream ``offset``) when the header is not IPFIX's."""
        version: int
        length: int
        version, length = _SET_HEADER.unpack_from(data, pos)  # the header's first two fields
        if version != IPFIX_VERSION:
            raise self._framing_error(f"version {version} is not IPFIX (10)", offset)
        if length < MESSAGE_HEADER_LENGTH:
            raise self._framing_error(f"message length {length} is shorter than its header",
                                      offset)
        return length

    # -- messages and sets ----------------------------------------------------------------------

    def _decode_message(self, data: bytes, start: int, end: int, origin: int, now: float | None,
                        out: list[Record]) -> None:
        """Decodes the message ``data[start:end]`` into ``out``. Positions are in ``data``;
        ``origin`` is the offset of ``data`` in the stream, for the offsets of errors."""
        _, length, export_time, sequence, domain = _HEADER.unpack_from(data, start)
        stats = self.stats
        stats.messages += 1
        stats.octets += length
        expected = self._next_sequence.get(domain)
        if expected is not None and sequence != expected:
            self._check_sequence(domain, expected, sequence)
        own = 0  # data records of this message (not held sets that its templates released)
        counted = True  # whether every data record of the message was seen (for sequencing)
        pos = start + MESSAGE_HEADER_LENGTH
        while pos < end:
            if end - pos < SET_HEADER_LENGTH:
                self._malformed(domain, -1, DecodeError(
                    f"{end - pos} trailing octets are too few for a set header", origin + pos))
                counted = False
                break
            set_id, set_length = _SET_HEADER.unpack_from(data, pos)
            set_end = pos + set_length
            if set_length < SET_HEADER_LENGTH or set_end > end:
                self._malformed(domain, set_id, DecodeError(
                    f"set {set_id} claims {set_length} octets, {end - pos} remain in the "
                    "message", origin + pos))
                counted = False
                break
            try:
                if set_id >= MIN_DATA_SET_ID:
                    decoded = self._data_set(data, pos + SET_HEADER_LENGTH, set_end, set_id,
                                             domain, export_time, sequence, origin, now, out)
                    if decoded is None:
                        counted = False
                    else:
                        own += decoded
                elif set_id in (TEMPLATE_SET_ID, OPTIONS_TEMPLATE_SET_ID):
                    self._template_set(data, pos + SET_HEADER_LENGTH, set_end, set_id, domain,
                                       origin, now, out)
                else:
                    raise DecodeError(f"set id {set_id} is reserved (RFC 7011 §3.3.2)",
                                      origin + pos)
            except DecodeError as exc:
                self._malformed(domain, set_id, exc)
                counted = False
            pos = set_end
        self._next_sequence[domain] = (sequence + own) % _SEQUENCE_MODULUS if counted else None

    def _check_sequence(self, domain: int, expected: int, sequence: int) -> None:
        """Reports a message whose sequence number is not the ``expected`` one."""
        ahead = (sequence - expected) % _SEQUENCE_MODULUS
        if ahead < _SEQUENCE_MODULUS // 2:
            self.stats.sequence_gaps += 1
            self.stats.missing_records += ahead
            self._events.append(ev.SequenceGap(domain, expected, sequence, ahead))
        else:
            self.stats.out_of_order += 1
            self._events.append(ev.SequenceOutOfOrder(domain, expected, sequence))

    def _malformed(self, domain: int, set_id: int, error: DecodeError) -> None:
        self.stats.malformed_sets += 1
        self._events.append(ev.MalformedSet(domain, set_id, error))

    def _padding(self, data: bytes, pos: int, end: int, domain: int, set_id: int,
                 origin: int) -> None:
        if pos < end and any(data[pos:end]):
            self.stats.nonzero_padding += 1
            self._events.append(ev.NonZeroPadding(domain, set_id, origin + pos))

    # -- data sets ----------------------------------------------------------------------------

    def _data_set(self, data: bytes, start: int, end: int, template_id: int, domain: int,
                  export_time: int, sequence: int, origin: int, now: float | None,
                  out: list[Record]) -> int | None:
        """Decodes a data set into ``out``: how many records it held, or None when it was held
        back for its template (so its records could not be counted)."""
        key = (domain, template_id)
        template = self._templates.get(key)
        if template is not None and now is not None and self.template_lifetime is not None \
                and now - self._refreshed[key] > self.template_lifetime:
            self._expire(key)
            template = None
        if template is not None:
            try:
                return self._decode_records(template, data, start, end, domain, export_time,
                                            sequence, origin, out)
            except UnknownSubTemplate:
                pass  # held like a set without template, until the sub-template comes
        self._hold(_HeldSet(domain, template_id, data[start:end], export_time, sequence))
        return None

    def _decode_records(self, template: Template, data: bytes, pos: int, end: int,
                        domain: int, export_time: int, sequence: int, origin: int,
                        out: list[Record]) -> int:
        """Decodes the records of one data set into ``out``; returns how many.

        On a malformed record, the records before it are kept and DecodeError raised; on
        UnknownSubTemplate none are kept, since the whole set will be decoded again later.
        """
        decode = template.decode
        min_length = template.min_length
        ctx = _ListContext(self, domain) if template.has_lists else None
        first = len(out)
        append = out.append
        try:
            while end - pos >= min_length:
                values, pos = decode(data, pos, end, ctx)
                append(Record(template, values, domain, export_time, sequence))
        except UnknownSubTemplate:
            del out[first:]
            raise
        except (struct.error, IndexError):
            self._count(template, len(out) - first)
            raise DecodeError(f"record of template {template.template_id} is truncated",
                              origin + pos) from None
        except DecodeError as exc:
            self._count(template, len(out) - first)
            raise DecodeError(f"template {template.template_id}: {exc.reason}",
                              origin + pos) from None
        decoded = len(out) - first
        self._count(template, decoded)
        if pos < end:
            self._padding(data, pos, end, domain, template.template_id, origin)
        return decoded

    def _count(self, template: Template, decoded: int) -> None:
        self.stats.records += decoded
        if template.scope_count:
            self.stats.options_records += decoded

    def _hold(self, held: _HeldSet) -> None:
        stats = self.stats
        stats.missing_template_sets += 1
        self._events.append(ev.MissingTemplate(held.observation_domain_id, held.template_id))
        self._held.append(held)
        self._held_octets += len(held.body)
        while self._held and (len(self._held) > self.max_pending_sets
                              or self._held_octets > self.max_pending_octets):
            self._drop_held(session_ended=False)

    def _drop_held(self, *, session_ended: bool) -> None:
        """Drops the oldest held data set, counted and reported."""
        dropped = self._held.popleft()
        self._held_octets -= len(dropped.body)
        self.stats.pending_dropped_sets += 1
        self._events.append(ev.PendingSetDropped(dropped.observation_domain_id,
                                                 dropped.template_id, session_ended))

    def _release_held(self, domain: int, out: list[Record]) -> None:
        """Decodes the held sets of ``domain`` whose templates (and sub-templates) are known."""
        for held in [h for h in self._held if h.observation_domain_id == domain]:
            template = self._templates.get((domain, held.template_id))
            if template is None:
                continue
            try:
                self._decode_records(template, held.body, 0, len(held.body), domain,
                                     held.export_time, held.sequence_number, 0, out)
            except UnknownSubTemplate:
                continue  # a sub-template is still missing: keep waiting
            except DecodeError as exc:
                self._malformed(domain, template.template_id, exc)
            self._held.remove(held)
            self._held_octets -= len(held.body)
            self.stats.pending_decoded_sets += 1

    # -- templates ----------------------------------------------------------------------------

    def _template_set(self, data: bytes, start: int, end: int, set_id: int, domain: int,
                      origin: int, now: float | None, out: list[Record]) -> None:
        options = set_id == OPTIONS_TEMPLATE_SET_ID
        registry = self.registry
        wire = self._wire
        pos = start
        while end - pos >= 4:
            template_id = (data[pos] << 8) | data[pos + 1]
            if template_id == 0 and not any(data[pos:end]):
                break  # what is left is padding (RFC 7011 §3.3.1), however long
            cap = self.max_template_fields
            if cap is not None:
                count = (data[pos + 2] << 8) | data[pos + 3]
                if count > cap:  # checked before parsing: parsing a huge template costs too
                    self._forget(domain, template_id)
                    raise DecodeError(f"template {template_id} has {count} fields, more than the "
                                      f"limit of {cap}", origin + pos)
            key = (domain, template_id)
            known = wire.get(key)
            if known is not None and known[1] is options and known[2] is registry \
                    and known[3] == registry.changes and data.startswith(known[0], pos, end):
                # The current template, re-sent (RFC 7011 §8.4): parsing it again would build an
                # equal template, which changes nothing but its lifetime.
                self._refresh(key, now)
                pos += len(known[0])
                continue
            pos = self._template_record(data, pos, end, template_id, options, domain, origin,
                                        now, out)
        self._padding(data, pos, end, domain, set_id, origin)

    def _template_record(self, data: bytes, pos: int, end: int, template_id: int, options: bool,
                         domain: int, origin: int, now: float | None, out: list[Record]) -> int:
        """Parses the (options) template record at ``pos`` with the construct declaration and
        installs or withdraws what it says; returns where the next record starts."""
        declaration = OptionsTemplateRecord if options else TemplateRecord
        try:
            parsed: Any = declaration.parse(data[pos:end])
        except ConstructError:
            self._forget(domain, template_id)  # an invalid redefinition must not leave the old
            raise DecodeError(f"template {template_id} has more fields than fit its set",
                              origin + pos) from None
        start = pos
        pos += 4 + (2 if options and parsed.field_count else 0) + sum(
            8 if f.enterprise is not None else 4 for f in parsed.fields)
        if parsed.field_count == 0:
            self._withdraw(domain, template_id, options)
            return pos
        if template_id < MIN_DATA_SET_ID:
            raise DecodeError(f"template id {template_id} is reserved (RFC 7011 §3.4.1)",
                              origin + start)
        scope = parsed.scope_field_count if options else 0
        if options and not 1 <= scope <= parsed.field_count:
            self._forget(domain, template_id)
            raise DecodeError(f"options template {template_id} has scope field count {scope}"
                              f" of {parsed.field_count} fields", origin + start)
        fields = [FieldSpec(self.registry.lookup(f.enterprise or 0, f.id.element_id), f.length)
                  for f in parsed.fields]
        template = Template(template_id, fields, scope)
        if template.min_length == 0:
            self._forget(domain, template_id)
            raise DecodeError(f"template {template_id} describes empty records", origin + start)
        self._install(domain, template, now, out)
        self._wire[(domain, template_id)] = (data[start:pos], options, self.registry,
                                             self.registry.changes)
        return pos

    def _refresh(self, key: tuple[int, int], now: float | None) -> None:
        if self.template_lifetime is not None:
            self._refreshed[key] = now if now is not None else time.monotonic()

    def _install(self, domain: int, template: Template, now: float | None,
                 out: list[Record]) -> None:
        key = (domain, template.template_id)
        previous = self._templates.get(key)
        self._templates[key] = template
        self._refresh(key, now)
        if previous == template:
            return
        stats = self.stats
        if previous is None:
            stats.templates_added += 1
            self._events.append(ev.TemplateAdded(domain, template))
        else:
            stats.templates_redefined += 1
            self._events.append(ev.TemplateRedefined(domain, template, previous))
        for spec in template.fields:
            element = spec.element
            if self.registry.get(element.enterprise, element.element_id) is None:
                stats.unknown_elements += 1
                if len(stats.unknown_element_names) < MAX_UNKNOWN_NAMES:
                    stats.unknown_element_names.add(element.name)
                self._events.append(ev.UnknownElement(domain, template.template_id,
                                                      element.enterprise, element.element_id,
                                                      element.name))
            elif spec.length_mismatch:
                stats.invalid_field_lengths += 1
                self._events.append(ev.InvalidFieldLength(domain, template.template_id,
                                                          spec.name, spec.length))
        self._release_held(domain, out)

    def _withdraw(self, domain: int, template_id: int, options: bool) -> None:
        if template_id in (WITHDRAW_ALL_TEMPLATES_ID, WITHDRAW_ALL_OPTIONS_TEMPLATES_ID):
            keys = [k for k, t in self._templates.items()
                    if k[0] == domain and t.is_options == options]
        else:
            keys = [(domain, template_id)] if (domain, template_id) in self._templates else []
        for key in keys:
            self._forget(*key)
            self.stats.templates_withdrawn += 1
            self._events.append(ev.TemplateWithdrawn(domain, key[1]))

    def _expire(self, key: tuple[int, int]) -> None:
        self._forget(*key)
        self.stats.templates_expired += 1
        self._events.append(ev.TemplateExpired(key[0], key[1]))

    def _forget(self, domain: int, template_id: int) -> None:
        self._templates.pop((domain, template_id), None)
        self._refreshed.pop((domain, template_id), None)
        self._wire.pop((domain, template_id), None)
