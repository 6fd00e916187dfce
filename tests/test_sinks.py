"""Sinks: the batch interface, JSON Lines serialisation, the scheme registry, the histogram."""
from __future__ import annotations

import io
import sys

import orjson
import pytest

from ipfix_antrea import sinks
from ipfix_antrea.sinks import (
    Histogram,
    JsonLinesSink,
    Sink,
    SinkBase,
    SinkContext,
    SinkError,
    StdoutSink,
    open_sink,
    parse_sink_spec,
    serialize,
)
from ipfix_antrea.workers import WorkerInfo

DOCS = [
    {"@timestamp": "2024-05-01T12:00:00.000Z", "ipfix": {"flowset_id": 256, "sourcePodName": "a"}},
    {"@timestamp": "2024-05-01T12:00:01.000Z", "ipfix": {"flowset_id": 256, "sourcePodName": "é"}},
]


def read_lines(path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def test_serialize_writes_one_newline_terminated_line_per_document():
    data = serialize(DOCS)
    assert data.endswith(b"\n")
    assert data.count(b"\n") == 2
    assert [orjson.loads(line) for line in data.splitlines()] == DOCS


def test_serialize_of_an_empty_batch_is_empty():
    assert serialize([]) == b""


def test_jsonl_sink_writes_documents_that_parse_back(tmp_path):
    out = tmp_path / "out.jsonl"
    sink = open_sink(f"jsonl:{out}")
    sink.write(DOCS)
    sink.close()
    assert read_lines(out) == DOCS


def test_jsonl_sink_appends_to_an_existing_file(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_bytes(b'{"old":1}\n')
    sink = JsonLinesSink(str(out))
    sink.write(DOCS[:1])
    sink.close()
    assert read_lines(out) == [{"old": 1}, DOCS[0]]


def test_jsonl_sink_flush_makes_written_documents_visible(tmp_path):
    out = tmp_path / "out.jsonl"
    sink = JsonLinesSink(str(out))
    sink.write(DOCS)
    sink.flush()
    assert read_lines(out) == DOCS
    sink.close()


def test_jsonl_sink_that_cannot_be_opened_raises_sink_error_naming_it(tmp_path):
    target = tmp_path / "no-such-dir" / "out.jsonl"
    with pytest.raises(SinkError, match=r"jsonl:.*cannot open"):
        open_sink(f"jsonl:{target}")


def test_jsonl_without_path_is_rejected():
    with pytest.raises(SinkError, match="jsonl:PATH"):
        open_sink("jsonl")


def test_stdout_sink_writes_to_the_binary_buffer_of_sys_stdout(monkeypatch):
    buffer = io.BytesIO()
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(buffer, encoding="utf-8"))
    sink = open_sink("stdout")
    sink.write(DOCS)
    sink.close()
    assert [orjson.loads(line) for line in buffer.getvalue().splitlines()] == DOCS


def test_stdout_sink_close_does_not_close_stdout():
    buffer = io.BytesIO()
    sink = StdoutSink(buffer)
    sink.write(DOCS)
    sink.close()
    assert not buffer.closed


def test_stdout_takes_no_argument():
    with pytest.raises(SinkError, match="stdout takes no argument"):
        open_sink("stdout:/tmp/x")


def test_unknown_sink_scheme_is_rejected_with_the_known_ones():
    with pytest.raises(SinkError, match=r"unknown sink 'kafka:x'.*jsonl:PATH.*stdout"):
        parse_sink_spec("kafka:x")


def test_sink_spec_argument_keeps_its_own_colons():
    spec = parse_sink_spec("jsonl:C:/data/out.jsonl")
    assert (spec.scheme, spec.arg) == ("jsonl", "C:/data/out.jsonl")


def test_registering_a_scheme_makes_it_openable_without_touching_other_sinks(monkeypatch):
    monkeypatch.setattr(sinks, "_SCHEMES", dict(sinks._SCHEMES))
    opened = []

    class Memory(SinkBase):
        name = "memory"

        def __init__(self, arg, options=None, context=None):
            opened.append(arg)
            self.docs = []

        def write(self, docs, ids=None):
            self.docs.extend(docs)

        def flush(self):
            pass

        def close(self):
            pass

    sinks.register_sink("memory", Memory, usage="memory:URL", help="test sink")
    sink = open_sink("memory:http://es:9200/x")
    sink.write(DOCS)
    assert opened == ["http://es:9200/x"]
    assert sink.docs == DOCS
    assert "memory:URL" in [s.usage for s in sinks.sink_schemes()]


def test_built_in_sinks_satisfy_the_sink_protocol(tmp_path):
    assert isinstance(JsonLinesSink(str(tmp_path / "x")), Sink)
    assert isinstance(StdoutSink(io.BytesIO()), Sink)


def test_sink_base_defaults_ready_nothing_undelivered_nothing_timed():
    sink = StdoutSink(io.BytesIO())
    assert (sink.ready(), sink.undelivered(), sink.histograms(), sink.stats()) == (True, 0, {}, {})


def test_histogram_counts_each_value_in_the_first_bucket_whose_bound_it_does_not_exceed():
    h = Histogram([0.1, 1.0])
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(value)
    snap = h.snapshot()
    assert snap.bounds == (0.1, 1.0)
    assert snap.counts == (2, 2, 1)  # <= 0.1, <= 1.0, above
    assert snap.total == pytest.approx(8.65)


# --------------------------------------------------------------------------------------------
# one of several worker processes (--workers N)


def test_a_jsonl_sink_of_a_worker_writes_a_file_of_its_own(tmp_path):
    sink = open_sink(f"jsonl:{tmp_path / 'flows.jsonl'}", None, SinkContext(worker=WorkerInfo(1, 2)))
    sink.write(DOCS)
    sink.close()
    assert sink.name == f"jsonl:{tmp_path / 'flows-w1.jsonl'}"
    assert read_lines(tmp_path / "flows-w1.jsonl") == DOCS and not (tmp_path / "flows.jsonl").exists()


def test_an_elasticsearch_sink_of_a_worker_has_a_dead_letter_file_of_its_own(tmp_path):
    import argparse

    options = argparse.Namespace(es_template="skip", es_dead_letter=str(tmp_path / "dead.jsonl"))
    sink = open_sink("elasticsearch:http://127.0.0.1:1", options, SinkContext(worker=WorkerInfo(0, 2)))
    sink.close()
    assert sink.options.dead_letter == str(tmp_path / "dead-w0.jsonl")
    assert sink.name == "elasticsearch:http://127.0.0.1:1"  # one name for the sink in every worker


def test_stdout_shared_by_workers_is_refused_when_it_cannot_be_locked():
    class Unlockable(io.BytesIO):
        def fileno(self) -> int:
            raise io.UnsupportedOperation("no file descriptor")

    with pytest.raises(SinkError, match="cannot be shared by worker processes"):
        StdoutSink(Unlockable(), shared=True)


@pytest.mark.parametrize(("path", "worker"), [("flows.jsonl", "flows-w3.jsonl"),
                                              ("/var/log/flows", "/var/log/flows-w3"),
                                              ("a.b/flows.json.log", "a.b/flows.json-w3.log")])
def test_a_workers_file_has_the_worker_number_before_the_extension(path, worker):
    assert WorkerInfo(3, 4).path(path) == worker


def test_a_jsonl_sink_of_a_worker_shares_a_path_that_is_not_a_regular_file(tmp_path):
    sink = open_sink("jsonl:/dev/null", None, SinkContext(worker=WorkerInfo(1, 2)))
    sink.write(DOCS)
    sink.close()
    assert sink.name == "jsonl:/dev/null" and sink.shared
