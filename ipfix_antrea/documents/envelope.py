"""The Logstash event envelope: one decoded data record -> the document Antrea's Logstash
pipeline stored in Elasticsearch, before any derived field.

The old ELK flow collector (Antrea v1.5-v1.6) ran Logstash's netflow codec with
`target => "ipfix"` and `include_flowset_id => true` behind a `type => "ipfix"` input, so each
event looked like

    {"@timestamp": <IPFIX message export time>, "@version": "1", "host": <exporter IP>,
     "type": "ipfix", "ipfix": {"version": 10, "flowset_id": <template id>, <element>: <value>, ...}}

and the Kibana dashboards read exactly these paths. We build the same shape from a `Record`:
element names and JSON renderings come from `Record.to_dict()` (dateTime* elements as ISO 8601,
which is what the codec did for flowStartSeconds/flowEndSeconds, so they map as `date`), and
`@timestamp` is the export time in Logstash's own format (milliseconds, `Z`). The fields Logstash's
ruby filter derived on top are the business of transforms (`ipfix_antrea.documents.builder`); the
envelope's own fields are declared in `ipfix_antrea.documents.fields.ENVELOPE_FIELDS`.

`to_document` is the plain, one-record form; `DocumentBuilder.build` makes the same documents for
many records at about half the cost.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, cast

from ..record import Record
from ..template import DictMaker, Template
from ..types import data_type
from ..wire import IPFIX_VERSION

__all__ = ["document_id", "document_ids", "ipfix_maker", "logstash_timestamp", "to_document"]

_MILLISECONDS = cast("Callable[[int], str]", data_type("dateTimeMilliseconds").to_json)


def logstash_timestamp(export_time: int) -> str:
    """Export time (seconds since 1970, RFC 7011 §3.1) as Logstash writes ``@timestamp``:
    ISO 8601 UTC with milliseconds and ``Z``."""
    return _MILLISECONDS(export_time * 1000)


def ipfix_maker(template: Template) -> DictMaker:
    """The function that builds a record's ``ipfix`` dict in one go from its values:
    ``version`` and ``flowset_id`` in front of the fields (`Template.dict_maker`, which caches
    it per template)."""
    return template.dict_maker({"version": IPFIX_VERSION, "flowset_id": template.template_id})


def to_document(record: Record, host: str | None = None) -> dict[str, Any]:
    """The Logstash-compatible document for one data record.

    ``record`` is an `ipfix_antrea.Record` (or anything with ``export_time``, ``template_id``
    and ``to_dict()``); ``host`` is the exporter's address when the input knows it, and the key
    is omitted when it does not (a file). Every value is JSON-ready for orjson.
    `DocumentBuilder.build` does the same for many records, faster.
    """
    doc: dict[str, Any] = {
        "@timestamp": logstash_timestamp(record.export_time),
        "@version": "1",
        "type": "ipfix",
    }
    if host is not None:
        doc["host"] = host
    template = getattr(record, "template", None)
    if isinstance(template, Template):
        doc["ipfix"] = ipfix_maker(template)(record.values)
    else:
        doc["ipfix"] = {"version": IPFIX_VERSION, "flowset_id": record.template_id, **record.to_dict()}
    return doc


def document_id(record: Record, host: str | None, index: int) -> str:
    """A stable id for the document of ``record``: the same bytes from the same exporter always
    give the same id, so a sink that stores by id (Elasticsearch ``_id``) does not duplicate
    records when a capture or file is replayed after a crash.

    ``index`` is the record's position among the data records of its message. RFC 7011's
    sequence number counts data records per observation domain, so (exporter, domain, sequence
    number, index) names one record of a stream; the export time is added so that an exporter
    that restarts its sequence numbers does not overwrite the records of its previous run.
    """
    return (f"{host or '-'}/{record.observation_domain_id}/{record.export_time}/"
            f"{record.sequence_number}/{index}")


def document_ids(records: Sequence[Record], host: str | None) -> list[str]:
    """`document_id` for each of ``records``, in order; ``records`` is what an input decoded,
    so the records of one message are consecutive and share its header facts."""
    ids = []
    previous = None
    index = 0
    for record in records:
        key = (record.observation_domain_id, record.export_time, record.sequence_number)
        index = index + 1 if key == previous else 0
        previous = key
        ids.append(document_id(record, host, index))
    return ids
