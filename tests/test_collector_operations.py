"""The collector as a service people operate: metrics, liveness, readiness and templates over HTTP
(--metrics-listen, scraped from the real server while it runs), start-up while Elasticsearch is
not there yet, and one failing sink among several."""

from __future__ import annotations

import dataclasses
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import orjson
import pytest
from collector_harness import FIELDS, MemorySink, RunningCollector, encoder, messages
from elasticsearch_server import FaultProxy, cleanup, require_es, unique_prefix, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_collector_cli import Process
from test_collector_network import send_tcp, send_udp

from ipfix_antrea import SessionStats
from ipfix_antrea.cli import EXIT_INPUT_ERRORS, EXIT_OK, EXIT_SINK_FAILED, EXIT_USAGE, main
from ipfix_antrea.metrics import SESSION_METRICS
from ipfix_antrea.sinks import JsonLinesSink
from ipfix_antrea.sinks.elasticsearch import ElasticsearchOptions, ElasticsearchSink, make_client

pytestmark = pytest.mark.timeout(120)


def get(c: RunningCollector, path: str) -> tuple[int, bytes]:
    """GET ``path`` from the collector's operations server: (status, body)."""
    try:
        with urllib.request.urlopen(c.collector.operations.url + path, timeout=30) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def scrape(c: RunningCollector) -> dict[tuple[str, frozenset], float]:
    """/metrics, parsed as Prometheus parses it: {(sample name, labels): value}."""
    status, body = get(c, "/metrics")
    assert status == 200
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body.decode()) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    return samples[name, frozenset(labels.items())]


def metrics_collector(specs, sink=None, **kw) -> RunningCollector:
    return RunningCollector(specs, sink, metrics_listen="127.0.0.1:0", **kw)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# /metrics


def test_metrics_count_what_each_input_decoded_and_each_sink_delivered():
    with metrics_collector(["tcp://127.0.0.1:0", "udp://127.0.0.1:0"]) as c:
        tcp = socket.create_connection(("127.0.0.1", c.port("tcp")))
        tcp.sendall(b"".join(messages(40, max_size=65535)))
        send_udp(c.port("udp"), messages(25), source="127.0.0.2")
        c.sink.wait_for(65)
        samples = scrape(c)
        tcp.close()
    tcp_input, udp_input = "tcp://127.0.0.1:0", "udp://127.0.0.1:0"
    assert value(samples, "ipfix_collect_records_decoded_total", input=tcp_input, exporter="127.0.0.1") == 40
    assert value(samples, "ipfix_collect_records_decoded_total", input=udp_input, exporter="127.0.0.2") == 25
    assert value(samples, "ipfix_collect_messages_total", input=udp_input, exporter="127.0.0.2") == 1 + 3
    assert value(samples, "ipfix_collect_templates_active", input=tcp_input, exporter="127.0.0.1") == 1
    assert value(samples, "ipfix_collect_exporters_connected", input=tcp_input) == 1
    assert value(samples, "ipfix_collect_records_accepted_total") == 65
    assert value(samples, "ipfix_collect_sink_delivered_records_total", sink="memory") == 65
    assert value(samples, "ipfix_collect_sink_undelivered_records_total", sink="memory") == 0
    assert value(samples, "ipfix_collect_queue_capacity_records") == 100_000
    assert value(samples, "ipfix_collect_ready") == 1
    assert value(samples, "ipfix_collect_sink_ready", sink="memory") == 1
    assert ("process_resident_memory_bytes", frozenset()) in samples


def test_every_session_counter_is_a_metric():
    counters = {f.name for f in dataclasses.fields(SessionStats) if f.type in ("int", int)}
    assert set(SESSION_METRICS) == counters


def test_counters_of_ended_sessions_stay_in_their_exporters_totals():
    with metrics_collector(["tcp://127.0.0.1:0"]) as c:
        send_tcp(c.port("tcp"), b"".join(messages(10, max_size=65535)))
        c.sink.wait_for(10)
        assert wait_until(lambda: c.collector.monitor.exporters == 0)  # the session ended
        send_tcp(c.port("tcp"), b"".join(messages(7, max_size=65535)))
        c.sink.wait_for(17)
        assert wait_until(lambda: c.collector.monitor.exporters == 0)
        samples = scrape(c)
    assert value(samples, "ipfix_collect_records_decoded_total", input="tcp://127.0.0.1:0",
                 exporter="127.0.0.1") == 17
    assert value(samples, "ipfix_collect_exporter_sessions_total") == 2


def test_exporter_labels_are_bounded_and_later_exporters_count_as_other():
    with metrics_collector(["udp://127.0.0.1:0"], max_exporters=2) as c:
        for k in range(2, 7):  # five exporters, one after the other
            send_udp(c.port("udp"), messages(5), source=f"127.0.0.{k}")
            c.sink.wait_for(5 * (k - 1))
        samples = scrape(c)
    decoded = {dict(labels)["exporter"]: v for (name, labels), v in samples.items()
               if name == "ipfix_collect_records_decoded_total"}
    assert decoded == {"127.0.0.2": 5, "127.0.0.3": 5, "other": 15}


def test_udp_records_dropped_by_a_full_queue_are_counted_for_their_input():
    sink = MemorySink()
    sink.hold()
    with metrics_collector(["udp://127.0.0.1:0"], sink, queue_records=50) as c:
        send_udp(c.port("udp"), messages(300), pace=0.001)
        time.sleep(0.3)
        samples = scrape(c)
        sink.release()
        summary = c.stop()
    dropped = value(samples, "ipfix_collect_records_dropped_total", input="udp://127.0.0.1:0")
    assert dropped == summary.dropped > 0


def test_problems_are_counted_by_kind():
    with metrics_collector(["udp://127.0.0.1:0"]) as c:
        send_udp(c.port("udp"), [b"\x00\x09garbage garbage garbage"] * 3)
        assert wait_until(lambda: c.collector.monitor.problems["malformed message"] == 3)
        samples = scrape(c)
    assert value(samples, "ipfix_collect_problems_total", kind="malformed message") == 3
    assert value(samples, "ipfix_collect_malformed_messages_total", input="udp://127.0.0.1:0",
                 exporter="127.0.0.1") == 3


def test_metrics_can_be_asked_for_as_openmetrics():
    with metrics_collector(["udp://127.0.0.1:0"]) as c:
        request = urllib.request.Request(c.collector.operations.url + "/metrics",
                                         headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            body = answer.read()
            content_type = answer.headers["Content-Type"]
    assert content_type.startswith("application/openmetrics-text")
    assert body.endswith(b"# EOF\n")


# --------------------------------------------------------------------------------------------
# /healthz, /readyz, /templates


def test_healthz_answers_ok_while_the_loop_runs_and_503_while_it_is_blocked():
    with metrics_collector(["udp://127.0.0.1:0"]) as c:
        c.collector.operations.loop_timeout = 0.5
        assert get(c, "/healthz") == (200, b"ok\n")
        blocked = threading.Event()
        c._loop.call_soon_threadsafe(lambda: (blocked.set(), time.sleep(3)))
        assert blocked.wait(10)
        status, body = get(c, "/healthz")
        assert status == 503 and b"did not respond within 0.5 s" in body
        assert wait_until(lambda: get(c, "/healthz")[0] == 200)


def test_readyz_is_ready_when_every_input_listens_and_every_sink_is_ready():
    with metrics_collector(["tcp://127.0.0.1:0"]) as c:
        status, body = get(c, "/readyz")
    lines = body.decode().splitlines()
    assert status == 200 and lines[0] == "ready"
    assert lines[1].startswith("input tcp://127.0.0.1:0: listening on tcp://127.0.0.1:")
    assert lines[2] == "sink memory: ready"


def test_readyz_is_not_ready_while_the_collector_drains():
    sink = MemorySink()
    sink.hold()
    with metrics_collector(["tcp://127.0.0.1:0"], sink) as c:
        send_tcp(c.port("tcp"), b"".join(messages(10, max_size=65535)))
        assert wait_until(lambda: c.collector.pipeline.stats().accepted == 10)
        c._loop.call_soon_threadsafe(c.collector.stop)  # SIGTERM, as Kubernetes sends it
        assert wait_until(lambda: get(c, "/readyz")[0] == 503)
        status, body = get(c, "/readyz")
        sink.release()
        c.stop()
    assert status == 503 and b"collector: stopping" in body


def test_templates_shows_the_templates_each_exporter_session_holds():
    enc = encoder()
    with metrics_collector(["tcp://127.0.0.1:0"]) as c, socket.create_connection(("127.0.0.1", c.port("tcp"))) as s:
        s.sendall(b"".join(enc.template_messages()))
        assert wait_until(lambda: c.collector.monitor.exporters == 1 and any(
            x.templates for x in c.collector.listeners[0].sessions().values()))
        status, body = get(c, "/templates")
    (session,) = orjson.loads(body)["sessions"]
    assert status == 200
    assert (session["input"], session["exporter"]) == ("tcp://127.0.0.1:0", "127.0.0.1")
    (template,) = session["templates"]
    assert (template["observation_domain_id"], template["template_id"]) == (7, 256)
    assert [f["name"] for f in template["fields"]] == FIELDS
    assert template["fields"][0] == {"name": "flowStartSeconds", "element_id": 150, "enterprise": 0, "length": 4}


def test_an_unknown_path_is_404_naming_the_endpoints():
    with metrics_collector(["udp://127.0.0.1:0"]) as c:
        status, body = get(c, "/metricz")
    assert status == 404 and b"/metrics /healthz /readyz /templates" in body


# --------------------------------------------------------------------------------------------
# the command line


def test_metrics_listen_on_a_port_in_use_is_reported_and_exits_1(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = main(["-i", "tcp://127.0.0.1:0", "--metrics-listen", f"127.0.0.1:{port}", "-q"])
    assert status == EXIT_INPUT_ERRORS
    assert f"--metrics-listen 127.0.0.1:{port}: cannot listen" in capsys.readouterr().err


def test_a_bad_metrics_listen_address_is_a_usage_error(capsys):
    assert main(["-i", "tcp://127.0.0.1:0", "--metrics-listen", "127.0.0.1:http"]) == EXIT_USAGE
    assert "--metrics-listen 127.0.0.1:http: port 'http' is not a number" in capsys.readouterr().err


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_with_elasticsearch_down_at_start_inputs_open_and_a_signal_still_stops_the_run(tmp_path, sig):
    p = Process("-i", "tcp://127.0.0.1:0", "-s", f"elasticsearch:http://127.0.0.1:{free_port()}",
                "--es-dead-letter", str(tmp_path / "dead.jsonl"), "--status-interval", "0.2")
    with socket.create_connection(("127.0.0.1", p.port())) as exporter:  # the exporter gets in
        exporter.sendall(b"".join(encoder().template_messages()))
        p.wait_for_line("session started")
    status_line = p.wait_for_line("status:")
    status, err = p.finish(sig)
    assert "not ready" in status_line
    assert status == EXIT_OK
    assert "Traceback" not in err and "1 input: 0 records" in err
    assert not (tmp_path / "dead.jsonl").exists()


def test_one_failing_sink_does_not_stop_the_others_and_the_run_exits_3(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(2000, max_size=65535)))
    out = tmp_path / "out.jsonl"
    status = main(["-i", f"file:{src}", "-s", "jsonl:/dev/full", "-s", f"jsonl:{out}"])
    err = capsys.readouterr().err
    assert status == EXIT_SINK_FAILED
    assert len(out.read_bytes().splitlines()) == 2000
    assert "jsonl:/dev/full: write failed" in err and "1 other sink(s) go on" in err
    assert "jsonl:/dev/full: 0 records delivered, 2000 NOT delivered: it failed (see above)" in err
    assert f"jsonl:{out}: 2000 records delivered" in err


def test_a_sink_that_fails_is_dropped_while_the_others_keep_receiving():
    archive = MemorySink()
    with RunningCollector(["tcp://127.0.0.1:0"], archive, sinks=[JsonLinesSink("/dev/full")]) as c:
        send_tcp(c.port("tcp"), b"".join(messages(10, max_size=65535)))
        archive.wait_for(10)
        assert wait_until(lambda: len(c.collector.pipeline.working()) == 1)
        send_tcp(c.port("tcp"), b"".join(messages(10, max_size=65535)))
        archive.wait_for(20)
        summary = c.stop()
    kept, failed = summary.sinks
    assert (kept.delivered, kept.undelivered, kept.error) == (20, 0, None)
    assert (failed.delivered, failed.undelivered) == (0, 20) and "write failed" in failed.error


# --------------------------------------------------------------------------------------------
# with a real Elasticsearch


@pytest.fixture
def es_prefix():
    server = require_es()
    prefix = unique_prefix("ops")
    yield server, prefix
    cleanup(server, prefix)


def es_sink(url: str, prefix: str, tmp_path, **settings) -> ElasticsearchSink:
    options = ElasticsearchOptions(index=f"{prefix}-%Y.%m.%d", template_name=prefix,
                                   dead_letter=str(tmp_path / "dead.jsonl"), **settings)
    return ElasticsearchSink(make_client([url], options), options, name="es")


def stored(server, prefix) -> int:
    with server.client() as es:
        es.indices.refresh(index=f"{prefix}-*")
        return es.count(index=f"{prefix}-*")["count"]


def test_readiness_flips_to_ready_when_elasticsearch_comes_up_and_queued_records_go_in(es_prefix, tmp_path):
    server, prefix = es_prefix
    port = free_port()  # where Elasticsearch will be
    sink = es_sink(f"http://127.0.0.1:{port}", prefix, tmp_path)
    with metrics_collector(["tcp://127.0.0.1:0"], sink) as c:
        status, body = get(c, "/readyz")
        assert status == 503 and "sink es: not ready" in body.decode().splitlines()
        assert value(scrape(c), "ipfix_collect_ready") == 0
        send_tcp(c.port("tcp"), b"".join(messages(30, max_size=65535)))  # accepted meanwhile
        with FaultProxy(server.url, server.auth, port=port):  # Elasticsearch comes up
            assert wait_until(lambda: get(c, "/readyz")[0] == 200, timeout=60)
            assert wait_until(lambda: sink.stats()["indexed"] == 30, timeout=60)
            samples = scrape(c)
            summary = c.stop()
    assert stored(server, prefix) == 30 and summary.sinks[0].delivered == 30
    assert value(samples, "ipfix_collect_sink_indexed_total", sink="es") == 30
    assert value(samples, "ipfix_collect_sink_bulk_request_seconds_count", sink="es") >= 1
    assert value(samples, "ipfix_collect_sink_in_flight", sink="es") == 0


def test_documents_elasticsearch_could_not_take_at_close_are_reported_not_delivered(es_prefix, tmp_path, capsys):
    server, prefix = es_prefix
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(100, max_size=65535)))
    with FaultProxy(server.url, server.auth) as proxy:
        proxy.faults.always_status = 503  # every bulk request; the template still goes in
        status = main(["-i", f"file:{src}", "-s", f"elasticsearch:{proxy.url}", "--es-retry-for", "1",
                       "--es-index", f"{prefix}-%Y.%m.%d", "--es-template-name", prefix,
                       "--es-dead-letter", str(tmp_path / "dead.jsonl")])
    err = capsys.readouterr().err
    assert status == EXIT_SINK_FAILED
    assert f"elasticsearch:{proxy.url}: 0 records delivered, 100 NOT delivered: it failed" in err
    assert len((tmp_path / "dead.jsonl").read_bytes().splitlines()) == 100


def test_a_dead_letter_path_that_cannot_be_created_does_not_stop_a_run_that_refuses_nothing(es_prefix, tmp_path):
    server, prefix = es_prefix
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(20, max_size=65535)))
    blocker = tmp_path / "read-only"
    blocker.write_text("a file where the dead-letter directory would be")
    status = main(["-i", f"file:{src}", "-s", f"elasticsearch:{server.url}", "--es-user", server.user,
                   "--es-password", server.password, "--es-index", f"{prefix}-%Y.%m.%d",
                   "--es-template-name", prefix, "--es-dead-letter", str(blocker / "dead.jsonl"), "-q"])
    assert status == EXIT_OK
    assert stored(server, prefix) == 20

