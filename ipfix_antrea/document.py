# One decoded data record -> the document Antrea's Logstash pipeline stored in Elasticsearch.
#
# The old ELK flow collector (Antrea v1.5-v1.6) ran Logstash's netflow codec with
# `target => "ipfix"` and `include_flowset_id => true` behind a `type => "ipfix"` input, so each
# event looked like
#
#     {"@timestamp": <IPFIX message export time>, "@version": "1", "host": <exporter IP>,
#      "type": "ipfix", "ipfix": {"version": 10, "flowset_id": <template id>, <element>: <value>, ...}}
#
# and the Kibana dashboards read exactly these paths. We build the same shape from a `Record`:
# element names and JSON renderings come from `Record.to_dict()` (dateTime* elements as ISO 8601,
# which is what the codec did for flowStartSeconds/flowEndSeconds, so they map as `date`), and
# `@timestamp` is the export time in Logstash's own format (milliseconds, `Z`).
#
# Not done here (a possible follow-up): the fields the pipeline's ruby filter (`filter.rb`) derived
# on top of the codec's output -- `bytes`/`packets`, `protocolIdentifier` as "TCP"/"UDP",
# `flowTypeStr`, `*RuleActionStr`, `*NetworkPolicyTypeStr`, `sourceIP`/`destinationIP`, "N/A"
# policy names, the `flowKey*` strings and the recomputed `throughput`/`reverseThroughput`
# (bytes/s, stateful per flow key). Dashboards that use those need that step too.
from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from .types import data_type
from .wire import IPFIX_VERSION

if TYPE_CHECKING:
    from ipfix_antrea import Record

__all__ = ["to_document", "document_id", "document_ids", "logstash_timestamp"]

_MILLISECONDS = data_type("dateTimeMilliseconds").to_json


def logstash_timestamp(export_time: int) -> str:
    """Export time (seconds since 1970, RFC 7011 §3.1) as Logstash writes ``@timestamp``:
    ISO 8601 UTC with milliseconds and ``Z``."""
    return _MILLISECONDS(export_time * 1000)


def to_document(record: Record, host: str | None = None) -> dict:
    """The Logstash-compatible document for one data record.

    ``record`` is an `ipfix_antrea.Record` (anything with ``export_time``, ``template_id`` and
    ``to_dict()``); ``host`` is the exporter's address when the input knows it, and the key is
    omitted when it does not (a file). Every value is JSON-ready for orjson.
    """
    doc: dict = {
        "@timestamp": logstash_timestamp(record.export_time),
        "@version": "1",
        "type": "ipfix",
    }
    if host is not None:
        doc["host"] = host
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
