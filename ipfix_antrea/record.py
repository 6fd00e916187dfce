"""One decoded data record, as the session hands it out.

A record keeps the template it was decoded with and a tuple of values in template order; names,
the field dict and JSON rendering come from the template's compiled code, so building a record
costs one small object and nothing more.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .template import FieldSpec, Template

_MISSING = object()


class Record:
    """A data record (or options record) with the header facts of the message it came in."""

    __slots__ = ("template", "values", "observation_domain_id", "export_time", "sequence_number")

    def __init__(self, template: Template, values: tuple[Any, ...], observation_domain_id: int,
                 export_time: int, sequence_number: int):
        self.template = template
        self.values = values
        self.observation_domain_id = observation_domain_id
        #: Export time of the message, seconds since 1970 (RFC 7011 §3.1).
        self.export_time = export_time
        #: Sequence number in the header of the message the record came in.
        self.sequence_number = sequence_number

    @property
    def template_id(self) -> int:
        return self.template.template_id

    @property
    def is_options(self) -> bool:
        """True for a record of an options template (RFC 7011 §3.4.2.2)."""
        return self.template.scope_count > 0

    @property
    def fields(self) -> tuple[tuple[FieldSpec, Any], ...]:
        """(field, value) pairs in template order."""
        return tuple(zip(self.template.fields, self.values, strict=True))

    @property
    def scope(self) -> dict[str, Any]:
        """The scope fields of an options record, by name (empty for data records)."""
        n = self.template.scope_count
        return {f.name: v for f, v in zip(self.template.fields[:n], self.values[:n], strict=True)}

    def get(self, name: str, default: Any = None) -> Any:
        """The value of the element ``name``; a list when it appears more than once."""
        positions = self.template.positions(name)
        if not positions:
            return default
        if len(positions) == 1:
            return self.values[positions[0]]
        return [self.values[i] for i in positions]

    def __getitem__(self, name: str) -> Any:
        value = self.get(name, _MISSING)
        if value is _MISSING:
            raise KeyError(name)
        return value

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self.template.positions(name))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict (docs/json.md lists how each type renders)."""
        return self.template.to_dict(self.values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record):
            return NotImplemented
        return (self.template == other.template and self.values == other.values
                and self.observation_domain_id == other.observation_domain_id
                and self.export_time == other.export_time
                and self.sequence_number == other.sequence_number)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"<Record template={self.template_id} domain={self.observation_domain_id} "
                f"seq={self.sequence_number} {dict(zip(self.template.names, self.values, strict=True))!r}>")


def values_in_order(template: Template, record: Sequence[Any] | Mapping[str, Any]) -> Sequence[Any]:
    """A record given as values in template order, or as a mapping by element name."""
    if isinstance(record, Mapping):
        if len(set(template.names)) != len(template.names):
            raise ValueError(f"template {template.template_id} repeats an element: "
                             "give its records as sequences")
        missing = [n for n in template.names if n not in record]
        if missing:
            raise ValueError(f"record lacks {', '.join(missing)}")
        return [record[n] for n in template.names]
    if len(record) != len(template.fields):
        raise ValueError(f"template {template.template_id} has {len(template.fields)} fields, "
                         f"the record {len(record)} values")
    return record
