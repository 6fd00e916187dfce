"""The document stage: decoded records -> documents, through an ordered list of transforms.

A `DocumentBuilder` makes the Logstash envelope of every record (`envelope`), then lets each of
its transforms add derived fields to the record's ``ipfix`` object, in order. It is the one place
that knows what a document holds: the pipeline hands it batches and sinks receive its output; the
Elasticsearch index template and ``ipfix-collect --help`` read its `fields`.

A transform works per template. `Transform.compile` looks at a template once (which elements it
has, where, of which type) and returns a *step*, a function that fills one record's ``ipfix``
dict, or None when it has nothing to add to such records -- so plain router IPFIX costs a
transform nothing per record, and a step never tests per record what the template already told.
Steps are kept per template object (the templates a session holds live as long as the exporter
does), so a stream of one template compiles once.

The library can run the same builder as the collector does:

    builder = DocumentBuilder([AntreaTransform()])
    docs = builder.build(session.feed(data), host="10.0.0.1")
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from ..record import Record
from ..template import DictMaker, Template
from .envelope import document_ids, ipfix_maker, logstash_timestamp, to_document
from .fields import ENVELOPE_FIELDS, DocumentField

__all__ = ["DocumentBuilder", "RecordStep", "Transform"]

#: ``step(ipfix, record, host)``: adds (or rewrites) fields of ``ipfix``, the JSON-ready element
#: dict of ``record``, which came from the exporter at ``host`` (None when not known).
RecordStep = Callable[[dict[str, Any], Record, "str | None"], None]

_STEP_CACHE_SIZE = 1024  # templates remembered (each holds its template alive); then the cache starts afresh


@runtime_checkable
class Transform(Protocol):
    """Derives fields of documents from their records (see the module comment)."""

    @property
    def name(self) -> str:
        """What ``--enrich`` calls it."""
        ...

    @property
    def fields(self) -> Sequence[DocumentField]:
        """The fields it writes, with their mappings; paths start with ``ipfix.``."""
        ...

    def compile(self, template: Template) -> RecordStep | None:
        """The step for records of ``template``, or None when it adds nothing to them."""
        ...


class DocumentBuilder:
    """Turns records into documents: the envelope, then each transform in order.

    Thread-safe: several inputs' threads may build at once (transforms that keep state lock it).
    """

    def __init__(self, transforms: Sequence[Transform] = ()) -> None:
        self.transforms: tuple[Transform, ...] = tuple(transforms)
        # id(template) -> (template, its steps); the template is held so that its id stays its own.
        self._steps: dict[int, tuple[Template, tuple[RecordStep, ...]]] = {}

    @property
    def fields(self) -> tuple[DocumentField, ...]:
        """Every field the stage writes: the envelope's, then each transform's. A later
        declaration of the same path replaces the earlier one."""
        by_path = {f.path: f for f in ENVELOPE_FIELDS}
        for transform in self.transforms:
            by_path.update((f.path, f) for f in transform.fields)
        return tuple(by_path.values())

    def steps(self, template: Template) -> tuple[RecordStep, ...]:
        """The transforms' steps for records of ``template``, compiled on first use."""
        entry = self._steps.get(id(template))
        if entry is not None and entry[0] is template:
            return entry[1]
        steps = tuple(step for step in (t.compile(template) for t in self.transforms) if step is not None)
        if len(self._steps) >= _STEP_CACHE_SIZE:
            self._steps.clear()
        self._steps[id(template)] = (template, steps)
        return steps

    def build(self, records: Iterable[Record], host: str | None = None) -> list[dict[str, Any]]:
        """The documents of ``records`` (from the exporter at ``host``), in order.

        Without transforms, equal key for key and value for value to
        ``[to_document(r, host) for r in records]``, at about half the cost: the ``ipfix`` dict
        of each record is built in one go by its template's `dict_maker`, and ``@timestamp`` is
        rendered once per export time (the records of one message share it).
        """
        docs: list[dict[str, Any]] = []
        append = docs.append
        template: Template | None = None
        maker: DictMaker | None = None
        export_time: int | None = None
        stamp = ""
        steps: tuple[RecordStep, ...] = ()
        for record in records:
            if type(record) is not Record:  # a record-like object: the plain envelope only
                append(to_document(record, host))
                continue
            if record.template is not template:
                template = record.template
                maker = ipfix_maker(template)
                steps = self.steps(template)
            if record.export_time != export_time:
                export_time = record.export_time
                stamp = logstash_timestamp(export_time)
            ipfix = maker(record.values)  # type: ignore[misc]  # set with template, on the first record
            for step in steps:
                step(ipfix, record, host)
            if host is None:
                append({"@timestamp": stamp, "@version": "1", "type": "ipfix", "ipfix": ipfix})
            else:
                append({"@timestamp": stamp, "@version": "1", "type": "ipfix", "host": host,
                        "ipfix": ipfix})
        return docs

    def ids(self, records: Sequence[Record], host: str | None) -> list[str]:
        """Stable ids of the documents of ``records`` (`envelope.document_id`), for sinks that
        deduplicate by id."""
        return document_ids(records, host)

    def __repr__(self) -> str:
        return f"DocumentBuilder([{', '.join(t.name for t in self.transforms)}])"
