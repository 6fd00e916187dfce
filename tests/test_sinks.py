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
    SinkError,
    StdoutSink,
    open_sink,
    parse_sink_spec,
    serialize,
)

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
    with pytest.raises(SinkError, match="jsonl:.*cannot open"):
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
