"""What a session tells its operator, as small immutable event objects.

The session appends events as it decodes and the caller drains them with
``Session.take_events()``; counters for the same things are in ``Session.stats``. Events name the
observation domain and template they concern, so a collector can log them per exporter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .errors import DecodeError

if TYPE_CHECKING:
    from .template import Template


@dataclass(frozen=True)
class Event:
    """Base class of everything a session reports."""

    observation_domain_id: int


@dataclass(frozen=True)
class TemplateAdded(Event):
    template: Template


@dataclass(frozen=True)
class TemplateRedefined(Event):
    """A template id was reused with other fields; the new template replaced the old one."""

    template: Template
    previous: Template


@dataclass(frozen=True)
class TemplateWithdrawn(Event):
    template_id: int


@dataclass(frozen=True)
class TemplateExpired(Event):
    """A UDP template was not refreshed within the session's template lifetime."""

    template_id: int


@dataclass(frozen=True)
class UnknownElement(Event):
    """A template uses an element the registry lacks; it decodes as octets under ``name``."""

    template_id: int
    enterprise: int
    element_id: int
    name: str


@dataclass(frozen=True)
class InvalidFieldLength(Event):
    """A template gives an element a length its type cannot have; it decodes as octets."""

    template_id: int
    name: str
    length: int


@dataclass(frozen=True)
class MalformedSet(Event):
    """A set (or the rest of a message) could not be decoded; the other sets were."""

    set_id: int
    error: DecodeError


@dataclass(frozen=True)
class MissingTemplate(Event):
    """A data set arrived before its template; it is held and decoded if the template comes."""

    template_id: int


@dataclass(frozen=True)
class PendingSetDropped(Event):
    """A held data set was dropped without being decoded: the buffer for them was full, or the
    session ended (``session_ended``) before its template came."""

    template_id: int
    session_ended: bool = False


@dataclass(frozen=True)
class SequenceGap(Event):
    """RFC 7011 §3.1: records were lost between two messages (or the exporter miscounts)."""

    expected: int
    received: int
    missing: int


@dataclass(frozen=True)
class SequenceOutOfOrder(Event):
    """A message arrived with a sequence number behind the expected one (reordering)."""

    expected: int
    received: int


@dataclass(frozen=True)
class NonZeroPadding(Event):
    """A set ended in padding octets that are not zero (RFC 7011 §3.3.1 says zero)."""

    set_id: int
    offset: int
