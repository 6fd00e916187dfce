"""The Elasticsearch sink against a real Elasticsearch (see tests/elasticsearch_server.py).

Documents go in through the sink and are read back with searches, aggregations and the index's
mapping; the server is stopped and killed mid-stream to show that nothing is lost or doubled.
Without a server these tests skip, except in CI (IPFIX_ANTREA_REQUIRE_ES=1), where they fail.
"""
from __future__ import annotations

import argparse
import io
import threading
from collections import Counter

import orjson
import pytest
from elasticsearch_server import (
    EXPORT_TIME,
    PODS,
    cleanup,
    decode,
    flow_documents,
    unique_prefix,
    wait_until,
)

from ipfix_antrea import Encoder, default_registry
from ipfix_antrea.sinks import SinkContext, SinkError, open_sink
from ipfix_antrea.sinks.elasticsearch import (
    ElasticsearchOptions,
    ElasticsearchSink,
    add_arguments,
    make_client,
)
from ipfix_antrea.sinks.es_mapping import element_mapping


def open_es(server, prefix, tmp_path, **settings) -> ElasticsearchSink:
    """A sink writing to ``<prefix>-%Y.%m.%d`` with template ``<prefix>``."""
    settings.setdefault("dead_letter", str(tmp_path / "dead.jsonl"))
    options = ElasticsearchOptions(
        index=f"{prefix}-%Y.%m.%d", template_name=prefix, user=server.user,
        password=server.password, retry_for=180, **settings)
    return ElasticsearchSink(make_client([server.url], options), options, name="test")


def write_all(sink, docs, ids=None, step=250) -> None:
    for i in range(0, len(docs), step):
        sink.write(docs[i:i + step], None if ids is None else ids[i:i + step])


def search(server, prefix, **body) -> dict:
    with server.client() as es:
        es.indices.refresh(index=f"{prefix}-*")
        return es.search(index=f"{prefix}-*", **body).body


def count(server, prefix) -> int:
    return search(server, prefix, size=0, track_total_hits=True)["hits"]["total"]["value"]


def doubled_values(server, prefix) -> list:
    """Values of ipfix.octetTotalCount (each record's own number) stored more than once."""
    result = search(server, prefix, size=0, aggs={"twice": {"terms": {
        "field": "ipfix.octetTotalCount", "min_doc_count": 2, "size": 10}}})
    return [b["key"] for b in result["aggregations"]["twice"]["buckets"]]


def field_mapping(server, prefix, path: str) -> dict:
    with server.client() as es:
        found = es.indices.get_field_mapping(index=f"{prefix}-*", fields=path).body
    (index,) = found.values()
    return index["mappings"][path]["mapping"][path.rsplit(".", 1)[-1]]


def dead_letters(tmp_path) -> list[dict]:
    path = tmp_path / "dead.jsonl"
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


# --------------------------------------------------------------------------- loading


def test_every_document_written_is_indexed(server, prefix, tmp_path):
    docs, _ = flow_documents(3000)
    sink = open_es(server, prefix, tmp_path, batch_docs=400)
    write_all(sink, docs)
    sink.close()
    assert count(server, prefix) == 3000
    assert sink.stats() == {"indexed": 3000, "duplicates": 0, "retried": 0, "rejected": 0,
                            "failed": 0, "in_flight": 0}


def test_flush_makes_written_documents_searchable(server, prefix, tmp_path):
    docs, _ = flow_documents(10)
    sink = open_es(server, prefix, tmp_path, flush_interval=3600)
    sink.write(docs)
    sink.flush()
    assert count(server, prefix) == 10
    sink.close()


def test_stored_documents_equal_the_documents_written(server, prefix, tmp_path):
    docs, ids = flow_documents(5)
    sink = open_es(server, prefix, tmp_path, ids="derived")
    sink.write(docs, ids)
    sink.close()
    with server.client() as es:
        stored = [es.get(index=f"{prefix}-2026.01.01", id=i)["_source"] for i in ids]
    assert stored == docs


def test_index_is_named_by_the_timestamp_in_utc(server, prefix, tmp_path):
    docs, _ = flow_documents(3)
    docs[0]["@timestamp"] = "2026-01-01T00:30:00.000+01:00"  # 2025-12-31 in UTC
    docs[1]["@timestamp"] = "2025-12-31T23:59:59.999Z"
    sink = open_es(server, prefix, tmp_path)
    sink.write(docs)
    sink.close()
    with server.client() as es:
        es.indices.refresh(index=f"{prefix}-*")
        counts = {row["index"]: int(row["docs.count"])
                  for row in es.cat.indices(index=f"{prefix}-*", format="json").body}
    assert counts == {f"{prefix}-2025.12.31": 2, f"{prefix}-2026.01.01": 1}


def test_options_from_the_command_line_reach_the_sink(server, prefix, tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    options = parser.parse_args([
        "--es-index", f"{prefix}-%Y.%m", "--es-template-name", prefix, "--es-user", server.user,
        "--es-password", server.password, "--es-ids", "derived",
        "--es-dead-letter", str(tmp_path / "dead.jsonl")])
    docs, ids = flow_documents(4)
    sink = open_sink(f"elasticsearch:{server.url}", options)
    sink.write(docs, ids)
    sink.close()
    with server.client() as es:
        assert es.get(index=f"{prefix}-2026.01", id=ids[3])["_source"] == docs[3]


# --------------------------------------------------------------------------- mapping

# One element of each abstract type, and a value for it (Python value, as the Encoder takes).
TYPED_VALUES = {
    "interfaceName": "eth0",  # string
    "sourceIPv4Address": "10.0.0.1",  # ipv4Address
    "sourceIPv6Address": "2001:db8::1",  # ipv6Address
    "flowStartSeconds": EXPORT_TIME - 60,  # dateTimeSeconds
    "flowStartMilliseconds": (EXPORT_TIME - 60) * 1000 + 123,  # dateTimeMilliseconds
    "flowStartMicroseconds": (EXPORT_TIME - 60) * 10**6 + 123456,  # dateTimeMicroseconds
    "flowStartNanoseconds": (EXPORT_TIME - 60) * 10**9 + 123456789,  # dateTimeNanoseconds
    "protocolIdentifier": 17,  # unsigned8
    "tcpControlBits": 0x12,  # unsigned16
    "ingressInterface": 4_000_000_000,  # unsigned32
    "octetDeltaCount": 2**62,  # unsigned64
    "mibObjectValueInteger": -5,  # signed32
    "samplingProbability": 0.25,  # float64
    "dataRecordsReliability": True,  # boolean
    "sourceMacAddress": "00:1b:21:aa:bb:cc",  # macAddress
    "mplsTopLabelStackSection": b"\x0a\x0b\x0c",  # octetArray
}


@pytest.fixture(scope="module")
def typed_index(server, tmp_path_factory):
    """One document holding an element of every type, indexed; yields (prefix, sink)."""
    prefix = unique_prefix("typed")
    enc = Encoder(observation_domain_id=1, export_time=lambda: EXPORT_TIME)
    enc.add_template(300, list(TYPED_VALUES))
    docs, _ = decode(b"".join(enc.template_messages() + enc.encode(300, [TYPED_VALUES])))
    sink = open_es(server, prefix, tmp_path_factory.mktemp("typed"))
    sink.write(docs)
    sink.close()
    assert sink.stats()["indexed"] == 1
    yield prefix, sink
    cleanup(server, prefix)


@pytest.mark.parametrize("name", list(TYPED_VALUES))
def test_each_element_type_is_mapped_as_the_registry_says(server, typed_index, name):
    prefix, sink = typed_index
    data_type = default_registry().by_name(name).data_type
    assert field_mapping(server, prefix, f"ipfix.{name}") == element_mapping(
        data_type, unsigned_long=sink.unsigned_long)


@pytest.mark.parametrize("path, es_type", [("@timestamp", "date"), ("host", "ip"),
                                           ("type", "keyword"), ("ipfix.flowset_id", "integer")])
def test_document_fields_are_mapped(server, typed_index, path, es_type):
    prefix, _ = typed_index
    assert field_mapping(server, prefix, path)["type"] == es_type


def test_an_element_from_a_run_time_registry_is_mapped_by_its_type(server, prefix, tmp_path):
    registry = default_registry()
    registry.load_csv(io.StringIO("elementId,name,dataType\n1,gatewayAddress,ipv4Address\n"),
                      enterprise=99999)
    enc = Encoder(observation_domain_id=1, registry=registry, export_time=lambda: EXPORT_TIME)
    enc.add_template(256, ["gatewayAddress"])
    docs, _ = decode(b"".join(enc.template_messages() + enc.encode(256, [("10.1.2.3",)])), registry)
    options = argparse.Namespace(
        es_index=f"{prefix}-%Y.%m.%d", es_template_name=prefix, es_user=server.user,
        es_password=server.password, es_dead_letter=str(tmp_path / "dead.jsonl"))
    sink = open_sink(f"elasticsearch:{server.url}", options, SinkContext(registry))
    sink.write(docs)
    sink.close()
    assert field_mapping(server, prefix, "ipfix.gatewayAddress")["type"] == "ip"


def test_an_unknown_element_is_mapped_as_keyword(server, prefix, tmp_path):
    sender = default_registry()
    sender.load_csv(io.StringIO("elementId,name,dataType\n7,secret,unsigned32\n"), enterprise=424242)
    enc = Encoder(observation_domain_id=1, registry=sender, export_time=lambda: EXPORT_TIME)
    enc.add_template(256, ["secret"])
    docs, _ = decode(b"".join(enc.template_messages() + enc.encode(256, [(7,)])))
    sink = open_es(server, prefix, tmp_path)
    sink.write(docs)
    sink.close()
    assert docs[0]["ipfix"]["en424242:id7"] == "00000007"
    assert field_mapping(server, prefix, "ipfix.en424242:id7")["type"] == "keyword"


# --------------------------------------------------------------------------- what dashboards ask


def test_terms_aggregation_on_source_pod_name_keyword_counts_each_pod(server, prefix, tmp_path):
    docs, _ = flow_documents(300)
    sink = open_es(server, prefix, tmp_path)
    write_all(sink, docs)
    sink.close()
    result = search(server, prefix, size=0, aggs={"pods": {"terms": {
        "field": "ipfix.sourcePodName.keyword", "size": 10}}})
    buckets = {b["key"]: b["doc_count"] for b in result["aggregations"]["pods"]["buckets"]}
    assert buckets == Counter(d["ipfix"]["sourcePodName"] for d in docs)
    assert set(buckets) == set(PODS)


def test_date_histogram_on_flow_end_seconds_buckets_by_minute(server, prefix, tmp_path):
    docs, _ = flow_documents(300)  # flows end one per second over the 5 minutes before export
    sink = open_es(server, prefix, tmp_path)
    write_all(sink, docs)
    sink.close()
    result = search(server, prefix, size=0, aggs={"per_minute": {"date_histogram": {
        "field": "ipfix.flowEndSeconds", "fixed_interval": "1m"}}})
    buckets = {b["key_as_string"]: b["doc_count"] for b in result["aggregations"]["per_minute"]["buckets"]}
    expected = Counter(d["ipfix"]["flowEndSeconds"][:16] + ":00.000Z" for d in docs)
    assert buckets == expected
    assert len(buckets) == 5


# --------------------------------------------------------------------------- refusals


def test_a_refused_document_goes_to_the_dead_letter_file_with_the_reason(server, prefix, tmp_path):
    enc = Encoder(observation_domain_id=1, export_time=lambda: EXPORT_TIME)
    enc.add_template(256, ["sourcePodName", "dataRecordsReliability"])
    # RFC 7011 booleans are 1 or 2; a 3 stays the number 3, which a boolean field refuses.
    docs, _ = decode(b"".join(enc.template_messages()
                              + enc.encode(256, [("good", True), ("bad", 3), ("good2", False)])))
    sink = open_es(server, prefix, tmp_path)
    sink.write(docs)
    sink.close()
    (dead,) = dead_letters(tmp_path)
    assert dead["document"] == docs[1]
    assert dead["status"] == 400
    assert "dataRecordsReliability" in dead["reason"]
    assert dead["index"] == f"{prefix}-2026.01.01"
    assert sink.stats()["rejected"] == 1 and sink.stats()["indexed"] == 2
    assert count(server, prefix) == 2


def test_a_document_without_timestamp_goes_to_the_dead_letter_file(server, prefix, tmp_path):
    docs, _ = flow_documents(2)
    del docs[0]["@timestamp"]
    sink = open_es(server, prefix, tmp_path)
    sink.write(docs)
    sink.close()
    (dead,) = dead_letters(tmp_path)
    assert dead["document"] == docs[0]
    assert "@timestamp" in dead["reason"]
    assert sink.stats()["rejected"] == 1 and sink.stats()["indexed"] == 1


def test_wrong_password_fails_the_sink_without_retrying(server, prefix, tmp_path):
    options = ElasticsearchOptions(index=f"{prefix}-%Y", template_name=prefix, user=server.user,
                                   password="wrong", dead_letter=str(tmp_path / "dead.jsonl"))
    sink = ElasticsearchSink(make_client([server.url], options), options)  # retry_for 0: for ever
    with pytest.raises(SinkError, match="401"):
        sink.close()  # the set-up's answer is final: closing does not wait for ever
    assert not sink.ready()


def test_a_sink_that_refuses_nothing_creates_no_dead_letter_file(server, prefix, tmp_path):
    sink = open_es(server, prefix, tmp_path)
    sink.write(flow_documents(20)[0])
    sink.close()
    assert sink.stats()["indexed"] == 20
    assert not (tmp_path / "dead.jsonl").exists()


def test_the_dead_letter_file_and_its_directory_are_created_when_first_needed(server, prefix, tmp_path):
    docs, _ = flow_documents(3)
    docs[1] = {"no": "timestamp"}
    sink = open_es(server, prefix, tmp_path, dead_letter=str(tmp_path / "dead" / "letters.jsonl"))
    sink.write(docs)
    sink.close()
    lines = (tmp_path / "dead" / "letters.jsonl").read_bytes().splitlines()
    assert [orjson.loads(x)["document"] for x in lines] == [{"no": "timestamp"}]


def test_a_dead_letter_file_that_cannot_be_created_fails_the_sink_when_needed(server, prefix, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory should be")
    sink = open_es(server, prefix, tmp_path, dead_letter=str(blocker / "dead.jsonl"))  # opens fine
    sink.write([{"no": "timestamp"}])  # refused at once: to the dead-letter file, which fails
    with pytest.raises(SinkError, match=r"1 document\(s\) not delivered .*cannot write dead-letter file .*lost"):
        sink.close()
    assert sink.undelivered() == 1 and sink.stats()["in_flight"] == 0


# --------------------------------------------------------------------------- ids and replays


def test_derived_ids_store_a_replayed_record_once(server, prefix, tmp_path):
    docs, ids = flow_documents(500)
    sink = open_es(server, prefix, tmp_path, ids="derived")
    write_all(sink, docs, ids)
    sink.flush()
    write_all(sink, docs, ids)  # the same IPFIX read again, e.g. after a crash
    sink.close()
    assert count(server, prefix) == 500
    assert sink.stats()["duplicates"] == 500


# --------------------------------------------------------------------------- templates


def test_template_install_replaces_an_existing_template(server, prefix, tmp_path):
    with server.client() as es:
        es.indices.put_index_template(name=prefix, index_patterns=[f"{prefix}-*"],
                                      template={"mappings": {"dynamic": False}})
    open_es(server, prefix, tmp_path).close()
    with server.client() as es:
        (found,) = es.indices.get_index_template(name=prefix)["index_templates"]
    assert "dynamic_templates" in found["index_template"]["template"]["mappings"]


def test_template_skip_leaves_an_existing_template_alone(server, prefix, tmp_path):
    with server.client() as es:
        es.indices.put_index_template(name=prefix, index_patterns=[f"{prefix}-*"],
                                      template={"mappings": {"dynamic": False}})
    open_es(server, prefix, tmp_path, template="skip").close()
    with server.client() as es:
        (found,) = es.indices.get_index_template(name=prefix)["index_templates"]
    assert found["index_template"]["template"]["mappings"] == {"dynamic": False}


# --------------------------------------------------------------------------- outages

N_OUTAGE = 20000


def write_through_outage(server, sink, docs, ids, outage) -> None:
    """Write ``docs`` from a thread; once some are indexed, run ``outage`` (stop or kill the
    server) while the first half may still be in flight, then start the server again. The second
    half is written only after the outage began, so some of the stream always meets a server
    that is away."""
    half = len(docs) // 2
    outage_begun = threading.Event()
    errors = []

    def writer():
        try:
            write_all(sink, docs[:half], None if ids is None else ids[:half], step=200)
            outage_begun.wait(120)
            write_all(sink, docs[half:], None if ids is None else ids[half:], step=200)
            sink.flush()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert wait_until(lambda: sink.stats()["indexed"] >= 1000, timeout=60)
        outage()
    finally:
        outage_begun.set()
        server.start()
    thread.join(timeout=240)
    assert not thread.is_alive() and not errors
    sink.close()


@pytest.mark.timeout(400)
def test_clean_stop_mid_stream_loses_and_doubles_nothing(server, prefix, tmp_path):
    docs, _ = flow_documents(N_OUTAGE)
    sink = open_es(server, prefix, tmp_path, batch_docs=500)
    write_through_outage(server, sink, docs, None, server.stop)
    assert sink.stats()["retried"] > 0  # the server really was away mid-stream
    assert count(server, prefix) == N_OUTAGE
    assert doubled_values(server, prefix) == []
    assert dead_letters(tmp_path) == []


@pytest.mark.timeout(400)
def test_crash_mid_stream_with_derived_ids_loses_and_doubles_nothing(server, prefix, tmp_path):
    docs, ids = flow_documents(N_OUTAGE)
    sink = open_es(server, prefix, tmp_path, batch_docs=500, ids="derived")
    write_through_outage(server, sink, docs, ids, server.kill)
    assert sink.stats()["retried"] > 0
    assert count(server, prefix) == N_OUTAGE
    assert doubled_values(server, prefix) == []
    assert dead_letters(tmp_path) == []
