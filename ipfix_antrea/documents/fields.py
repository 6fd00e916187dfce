"""The fields a document may carry, each with the Elasticsearch mapping it needs.

A document has two kinds of fields: the information elements of its record, under ``ipfix.``,
whose types come from the registry (``ipfix_antrea.sinks.es_mapping`` maps them by abstract type),
and fields that the document stage itself writes -- the Logstash envelope (`ENVELOPE_FIELDS`) and
what each transform derives. Those are declared here, each once, with its mapping and a line of
help, so that the index template, ``ipfix-collect --help`` and the docs are all built from the one
declaration instead of restating it.

The mappings are plain dicts in Elasticsearch's own form. The shared ones are constants below: the
registry's element rules (`es_mapping`) use the same constants, so a derived string and an
element string map alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DocumentField",
    "ENVELOPE_FIELDS",
    "KEYWORD_IGNORE_ABOVE",
    "STRING",
    "IP",
    "DATE",
    "DATE_NANOS",
    "LONG",
    "INTEGER",
    "UNSIGNED_LONG",
    "DOUBLE",
    "BOOLEAN",
    "KEYWORD",
    "OCTETS",
    "copy_mapping",
]

#: Elasticsearch's own default for the `keyword` sub-field of dynamically mapped strings, which
#: Antrea's dashboards were built on; longer values stay searchable as text.
KEYWORD_IGNORE_ABOVE = 256
_OCTETS_IGNORE_ABOVE = 4096  # Lucene refuses terms over 32 KiB; long blobs stay in _source

STRING: Mapping[str, Any] = {"type": "text",
                             "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}}
IP: Mapping[str, Any] = {"type": "ip",
                         "fields": {"keyword": {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}}}
DATE: Mapping[str, Any] = {"type": "date", "format": "strict_date_optional_time"}
DATE_NANOS: Mapping[str, Any] = {"type": "date_nanos", "format": "strict_date_optional_time_nanos"}
LONG: Mapping[str, Any] = {"type": "long"}
INTEGER: Mapping[str, Any] = {"type": "integer"}
UNSIGNED_LONG: Mapping[str, Any] = {"type": "unsigned_long"}
DOUBLE: Mapping[str, Any] = {"type": "double", "ignore_malformed": True}
BOOLEAN: Mapping[str, Any] = {"type": "boolean"}
KEYWORD: Mapping[str, Any] = {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}
OCTETS: Mapping[str, Any] = {"type": "keyword", "ignore_above": _OCTETS_IGNORE_ABOVE}


def copy_mapping(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``mapping`` that callers may change."""
    return {k: copy_mapping(v) if isinstance(v, Mapping) else v for k, v in mapping.items()}


@dataclass(frozen=True)
class DocumentField:
    """A field the document stage writes: its dotted path in the document (``ipfix.bytes``),
    its Elasticsearch mapping, and one line saying what it holds."""

    path: str
    mapping: Mapping[str, Any]
    help: str


#: The Logstash event envelope around every record (`ipfix_antrea.documents.envelope`).
ENVELOPE_FIELDS: tuple[DocumentField, ...] = (
    DocumentField("@timestamp", DATE, "export time of the IPFIX message (RFC 7011 §3.1), ISO 8601 UTC"),
    DocumentField("@version", KEYWORD, 'always "1", as Logstash wrote it'),
    DocumentField("type", KEYWORD, 'always "ipfix"'),
    DocumentField("host", IP, "the exporter's address, when the input knows it"),
    DocumentField("ipfix.version", INTEGER, "IPFIX version, 10"),
    DocumentField("ipfix.flowset_id", INTEGER, "the record's template id"),
)
