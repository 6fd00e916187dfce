"""The Elasticsearch index template for flow documents, derived from an information-element registry.

Antrea's Kibana dashboards were built against indices that Elasticsearch mapped dynamically
from Logstash's events: every string `text` with a `keyword` sub-field, ISO timestamps `date`,
numbers `long`. Dynamic mapping guesses from the first value it sees, so a field's type could
differ between daily indices (a Pod name that looks like a date, an address that is only ever
`0.0.0.0`). Here the type comes from the registry instead: the element's RFC 7011 abstract type
decides the Elasticsearch type, whatever the value looks like.

The mapping is made of `dynamic_templates`, one per Elasticsearch type, each matching the names
of the registry's elements of that type (a regular expression over the field's name, below
`ipfix.`). Explicit `properties` for every element would not do: the default registry has over
1000 element names, more than Elasticsearch's default limit of 1000 fields per index, and every
daily index would carry all of them. With dynamic templates an index maps the fields that occur,
each with the type its element has. Matching the leaf name (not the path) also types the
elements inside subTemplateList records (`ipfix.<list>.<element>`).

Choices per type (see docs/elasticsearch.md for the table):
* string -> text + `keyword` sub-field (ignore_above 256: Elasticsearch's own default, which the
  dashboards were built on; longer values stay searchable as text).
* ipv4Address / ipv6Address -> ip, plus a `keyword` sub-field: Antrea's first dashboards grouped
  on `ipfix.sourceIPv4Address.keyword`, and terms on the text form cost little.
* dateTimeSeconds / Milliseconds -> date; dateTimeMicroseconds / Nanoseconds -> date_nanos, which
  keeps their precision. The formats match the ISO 8601 renderings of docs/json.md.
* unsigned64 -> unsigned_long, where the cluster has it (the full distributions do; minimal
  builds lack the module), else long; other integers -> long.
* float32 / float64 -> double, with ignore_malformed: NaN and infinities render as strings that
  Elasticsearch will not store as a number; the document is kept and the field is skipped.
* boolean -> boolean; macAddress -> keyword; octetArray and unknown elements (`en<E>:id<N>`,
  octetArray hex) -> keyword with a larger ignore_above (a long blob is kept in _source, not
  indexed: Lucene refuses terms over 32 KiB).
* basicList, subTemplateList, subTemplateMultiList: no rule of their own. Their values are arrays
  of their elements' values or objects of named elements, which the other rules type.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..documents.fields import (
    BOOLEAN,
    DATE,
    DATE_NANOS,
    DOUBLE,
    ENVELOPE_FIELDS,
    IP,
    KEYWORD,
    LONG,
    OCTETS,
    STRING,
    UNSIGNED_LONG,
    DocumentField,
    copy_mapping,
)
from ..registry import Registry

__all__ = [
    "TEMPLATE_PRIORITY",
    "document_mappings",
    "element_mapping",
    "index_patterns_for",
    "index_template",
]

#: Priority of the installed composable index template. Elasticsearch's built-in templates use
#: 100..500 for patterns like `logs-*-*`, which do not overlap `flow-*`; two templates with the
#: same priority and overlapping patterns are refused, so a user's own template can take 200+.
TEMPLATE_PRIORITY = 150

# (rule name, mapping, abstract types): one dynamic template per rule, in this order.
_RULES: tuple[tuple[str, Mapping[str, Any], tuple[str, ...]], ...] = (
    ("ipfix_string", STRING, ("string",)),
    ("ipfix_ip", IP, ("ipv4Address", "ipv6Address")),
    ("ipfix_date", DATE, ("dateTimeSeconds", "dateTimeMilliseconds")),
    ("ipfix_date_nanos", DATE_NANOS, ("dateTimeMicroseconds", "dateTimeNanoseconds")),
    ("ipfix_unsigned64", UNSIGNED_LONG, ("unsigned64",)),
    ("ipfix_integer", LONG, ("unsigned8", "unsigned16", "unsigned32", "signed8", "signed16",
                              "signed32", "signed64")),
    ("ipfix_float", DOUBLE, ("float32", "float64")),
    ("ipfix_boolean", BOOLEAN, ("boolean",)),
    ("ipfix_mac", KEYWORD, ("macAddress",)),
    ("ipfix_octets", OCTETS, ("octetArray",)),
)
_BY_TYPE: dict[str, Mapping[str, Any]] = {t: mapping for _, mapping, types in _RULES for t in types}


def element_mapping(data_type: str, *, unsigned_long: bool = True) -> dict[str, Any] | None:
    """The Elasticsearch field mapping for an element of RFC 7011 abstract type ``data_type``,
    or None for the list types (their values are typed by their elements). ``unsigned_long``
    says whether the cluster has that field type (else unsigned64 maps to long)."""
    mapping = _BY_TYPE.get(data_type)
    return None if mapping is None else _usable(mapping, unsigned_long)


def _usable(mapping: Mapping[str, Any], unsigned_long: bool) -> dict[str, Any]:
    """A copy of ``mapping``, with unsigned_long as long where the cluster lacks the type."""
    if mapping.get("type") == "unsigned_long" and not unsigned_long:
        return copy_mapping(LONG)
    return copy_mapping(mapping)


def _name_regex(names: Iterable[str]) -> str:
    """A Java regular expression that matches exactly ``names`` (sorted, so the template is the
    same for the same registry). Every character other than [A-Za-z0-9_] is escaped with a
    backslash, which Java reads as that literal character."""
    escaped = sorted({re.sub(r"([^A-Za-z0-9_])", r"\\\1", name) for name in names})
    return "^(?:" + "|".join(escaped) + ")$"


def document_mappings(registry: Registry, fields: Sequence[DocumentField] = ENVELOPE_FIELDS, *,
                      unsigned_long: bool = True) -> dict[str, Any]:
    """The ``mappings`` of a flow index: ``fields``, what the document stage writes (the
    envelope and every transform's fields: `DocumentBuilder.fields`), as properties, and one
    dynamic template per Elasticsearch type for the registry's elements under ``ipfix``. A
    derived field named like an element (``throughput``) takes its declared mapping: properties
    win over dynamic templates."""
    names_by_rule: dict[str, set[str]] = {rule: set() for rule, _, _ in _RULES}
    rule_of_type = {t: rule for rule, _, types in _RULES for t in types}
    # by_name: when two enterprises share a name, the decoder's choice for the name wins.
    for name in {ie.name for ie in registry}:
        rule = rule_of_type.get(registry.by_name(name).data_type)
        if rule is not None:
            names_by_rule[rule].add(name)

    dynamic_templates: list[dict[str, Any]] = []
    for rule, _, types in _RULES:
        names = names_by_rule[rule]
        if not names:
            continue
        dynamic_templates.append({rule: {
            "path_match": "ipfix.*",
            "match_pattern": "regex",
            "match": _name_regex(names),
            "mapping": element_mapping(types[0], unsigned_long=unsigned_long),
        }})
    # Elements the registry does not know arrive as octetArray hex named en<E>:id<N>.
    dynamic_templates.append({"ipfix_unknown": {
        "path_match": "ipfix.*",
        "match_pattern": "regex",
        "match": r"^en[0-9]+:id[0-9]+$",
        "mapping": copy_mapping(OCTETS),
    }})
    return {
        # A string that happens to look like a date must not turn a field into a date.
        "date_detection": False,
        "dynamic_templates": dynamic_templates,
        "properties": _properties(fields, unsigned_long),
    }


def _properties(fields: Sequence[DocumentField], unsigned_long: bool) -> dict[str, Any]:
    """Dotted field paths with their mappings -> Elasticsearch's nested ``properties``."""
    properties: dict[str, Any] = {}
    for field in fields:
        *parents, leaf = field.path.split(".")
        level = properties
        for parent in parents:
            level = level.setdefault(parent, {"properties": {}})["properties"]
        level[leaf] = _usable(field.mapping, unsigned_long)
    return properties


def index_patterns_for(index: str) -> list[str]:
    """The index pattern that covers every name ``index`` (a strftime pattern such as
    ``flow-%Y.%m.%d``) can produce: the literal text before the first directive, then ``*``
    (``flow-*``, the pattern Antrea's dashboards read). Raises ValueError when there is no literal
    text before the first directive: a template for ``*`` would apply to every index."""
    first = re.search(r"%[^%]", index.replace("%%", "\0\0"))
    if first is None:
        return [index.replace("%%", "%")]
    prefix = index[:first.start()].replace("%%", "%")
    if not prefix:
        raise ValueError(f"index pattern {index!r} must start with literal text, e.g. flow-%Y.%m.%d")
    return [prefix + "*"]


def index_template(registry: Registry, index: str, fields: Sequence[DocumentField] = ENVELOPE_FIELDS, *,
                   unsigned_long: bool = True) -> dict[str, Any]:
    """The body of ``PUT _index_template/<name>`` for indices named by ``index`` (a strftime
    pattern such as ``flow-%Y.%m.%d``) holding documents with ``fields`` (see
    `document_mappings`). Raises ValueError as `index_patterns_for` does."""
    return {
        "index_patterns": index_patterns_for(index),
        "priority": TEMPLATE_PRIORITY,
        "template": {"mappings": document_mappings(registry, fields, unsigned_long=unsigned_long)},
        "_meta": {"managed_by": "ipfix-antrea", "description": "IPFIX flow documents (ipfix-collect)"},
    }
