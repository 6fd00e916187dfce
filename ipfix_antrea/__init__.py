"""ipfix_antrea: an IPFIX (RFC 7011) codec, information-element registry, sans-IO decoder and
encoder, built for Antrea's flow records and useful for any exporter.

The public API is re-exported here; the modules behind it are documented in docs/library.md.
"""

from .encoder import Encoder
from .errors import DecodeError
from .events import (
    Event,
    InvalidFieldLength,
    MalformedSet,
    MissingTemplate,
    NonZeroPadding,
    PendingSetDropped,
    SequenceGap,
    SequenceOutOfOrder,
    TemplateAdded,
    TemplateExpired,
    TemplateRedefined,
    TemplateWithdrawn,
    UnknownElement,
)
from .record import Record
from .registry import InformationElement, Registry, default_registry
from .session import SavedTemplate, Session, SessionStats
from .structured import BasicList, SubTemplateList, SubTemplateMultiList
from .template import FieldSpec, Template

__version__ = "0.1.0"

__all__ = [
    "BasicList",
    "DecodeError",
    "Encoder",
    "Event",
    "FieldSpec",
    "InformationElement",
    "InvalidFieldLength",
    "MalformedSet",
    "MissingTemplate",
    "NonZeroPadding",
    "PendingSetDropped",
    "Record",
    "Registry",
    "SavedTemplate",
    "SequenceGap",
    "SequenceOutOfOrder",
    "Session",
    "SessionStats",
    "SubTemplateList",
    "SubTemplateMultiList",
    "Template",
    "TemplateAdded",
    "TemplateExpired",
    "TemplateRedefined",
    "TemplateWithdrawn",
    "UnknownElement",
    "default_registry",
]
