"""`ipfix-collect --workers N`: the real command in a subprocess, real sockets on loopback.

Several UDP exporters (one socket, so one source port, each) and several TCP connections go to
one port; the kernel spreads them over the workers, whose jsonl files (`NAME-wK.EXT`), summary,
status lines and metrics show where each went. Workers are killed, stopped and starved to check
the supervisor's restarts, liveness and exit statuses.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import orjson
import pytest
from collector_harness import encoder, messages, row
from elasticsearch_server import cleanup, require_es, unique_prefix, wait_until
from prometheus_client.parser import text_string_to_metric_families
from test_collector_operations import free_port

from ipfix_antrea.cli import EXIT_INPUT_ERRORS, EXIT_OK, EXIT_USAGE, main
from ipfix_antrea.supervisor import CRASH_LIMIT, available_cpus

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent


class Collect:
    """``ipfix-collect ARGS`` in a subprocess; its stderr is read all along by a thread (a
    worker must never block on a full pipe), and its lines can be waited for."""

    def __init__(self, *argv: str, stdout=subprocess.DEVNULL) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "ipfix_antrea.cli", *argv], cwd=REPO,
                                     stderr=subprocess.PIPE, stdout=stdout, text=True,
                                     env=dict(os.environ, PYTHONPATH=str(REPO)))
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> list[re.Match]:
        """The first ``count`` stderr lines matching ``pattern`` (waits for them)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [m for m in map(re.compile(pattern).search, self.lines) if m]
                if len(found) >= count:
                    return found[:count]
                left = deadline - time.monotonic()
                if left <= 0 or (not self._reader.is_alive() and self.proc.poll() is not None):
                    raise AssertionError(f"no {count} lines matching {pattern!r}; stderr:\n{self.text()}")
                self._changed.wait(min(left, 0.5))

    def ports(self, inputs: int = 1) -> dict[str, int]:
        """The ports of the 'listening on' lines of ``inputs`` inputs, by scheme."""
        return {m[1]: int(m[2]) for m in self.wait_for(r"listening on (\w+)://[^ ]+:(\d+)$", inputs)}

    def lines_matching(self, pattern: str) -> list[str]:
        with self._changed:
            return [line for line in self.lines if re.search(pattern, line)]

    def pids(self) -> list[int]:
        """The workers' process ids, in worker order."""
        (match,) = self.wait_for(r"\d+ workers \(pids ([\d ]+)\)")
        return [int(p) for p in match[1].split()]

    def text(self) -> str:
        with self._changed:
            return "".join(self.lines)

    def finish(self, sig: int | None = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        if sig is not None:
            self.proc.send_signal(sig)
        status = self.proc.wait(timeout)
        self._reader.join(10)
        return status, self.text()


def jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []


def pod(doc: dict) -> str:
    return doc["ipfix"]["sourcePodName"]


def udp_exporters(port: int, exporters: int, datagrams) -> list[socket.socket]:
    """``exporters`` UDP exporters, each its own socket (source port), exporter k sending
    ``datagrams(k)``; their sockets, to send more from the same ports."""
    socks = []
    for k in range(exporters):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        for d in datagrams(k):
            s.sendto(d, ("127.0.0.1", port))
        socks.append(s)
    return socks


def send_udp_exporters(port: int, exporters: int, records: int, prefix: str = "u") -> list[socket.socket]:
    """``exporters`` UDP exporters, a template and ``records`` records each (pods `uK-N`)."""
    return udp_exporters(port, exporters, lambda k: messages(records, pod=f"{prefix}{k}"))


def send_tcp_connections(port: int, connections: int, records: int, prefix: str = "t") -> None:
    for k in range(connections):
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"".join(messages(records, pod=f"{prefix}{k}", max_size=65535)))


def send_tcp_at_once(port: int, connections: int, records: int) -> None:
    """``connections`` exporters that connect together, ``records`` each (pods `tKx-N`)."""
    senders = [threading.Thread(target=send_tcp_connections, args=(port, 1, records, f"t{k}x"))
               for k in range(connections)]
    for t in senders:
        t.start()
    for t in senders:
        t.join()


def exporter_of(doc: dict) -> str:
    """`u3-17` -> `u3`: the exporter (or connection) a test record came from."""
    return pod(doc).split("-")[0]


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    with urllib.request.urlopen(url + "/metrics", timeout=30) as answer:
        body = answer.read().decode()
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=30) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def gone(pid: int) -> bool:
    """The process ``pid`` has exited."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def metrics_url(c: Collect) -> str:
    (match,) = c.wait_for(r"metrics, health and readiness on (http://\S+)")
    return match[1]


# --------------------------------------------------------------------------------------------
# spreading, exactly once, draining


def test_exporters_and_connections_spread_over_both_workers_and_every_record_arrives_once(tmp_path):
    out = tmp_path / "flows.jsonl"
    c = Collect("-i", "udp://127.0.0.1:0", "-i", "tcp://127.0.0.1:0", "-s", f"jsonl:{out}", "--workers", "2")
    ports = c.ports(2)
    send_udp_exporters(ports["udp"], 16, 30)
    send_tcp_connections(ports["tcp"], 20, 40)
    c.wait_for("tcp .* session ended", 20)
    c.wait_for("udp .* session started", 16)
    status, err = c.finish(signal.SIGTERM)
    per_worker = {k: jsonl(tmp_path / f"flows-w{k}.jsonl") for k in (0, 1)}
    everything = per_worker[0] + per_worker[1]
    assert status == EXIT_OK
    assert not out.exists()
    assert Counter(map(pod, everything)) == Counter(
        [f"u{k}-{i}" for k in range(16) for i in range(30)] + [f"t{k}-{i}" for k in range(20) for i in range(40)])
    udp = {k: {exporter_of(d) for d in docs if pod(d).startswith("u")} for k, docs in per_worker.items()}
    tcp = {k: {exporter_of(d) for d in docs if pod(d).startswith("t")} for k, docs in per_worker.items()}
    assert udp[0] and udp[1] and not udp[0] & udp[1]  # each exporter on one worker, both busy
    assert tcp[0] and tcp[1] and not tcp[0] & tcp[1]
    assert f"jsonl:{out}: {16 * 30 + 20 * 40} records delivered" in err
    assert f"2 inputs: {16 * 30 + 20 * 40} records" in err


def test_tcp_exporters_that_connect_at_once_are_shared_out_evenly(tmp_path):
    c = Collect("-i", "tcp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "2")
    port = c.ports()["tcp"]
    send_tcp_at_once(port, 4, 500)
    c.wait_for("tcp .* session ended", 4)
    status, _ = c.finish()
    assert status == EXIT_OK
    assert len(c.lines_matching(r"\[w0\]: tcp .* session started")) == 2
    assert len(c.lines_matching(r"\[w1\]: tcp .* session started")) == 2


def test_the_listening_lines_come_once_from_the_supervisor_when_every_worker_listens(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-i", "tcp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}",
                "--workers", "2")
    ports = c.ports(2)
    pids = c.pids()
    status, err = c.finish()
    assert status == EXIT_OK
    assert len(pids) == 2
    assert [line.split(": ", 1)[1].strip() for line in err.splitlines() if "listening on" in line] == [
        f"listening on udp://127.0.0.1:{ports['udp']}", f"listening on tcp://127.0.0.1:{ports['tcp']}"]
    assert ports["udp"] != 0 and ports["tcp"] != 0  # port 0: one free port, the same for both workers


def test_sigterm_drains_connections_that_are_still_open_in_both_workers(tmp_path):
    out = tmp_path / "flows.jsonl"
    c = Collect("-i", "tcp://127.0.0.1:0", "-s", f"jsonl:{out}", "--workers", "2", "--flush-interval", "3600")
    port = c.ports()["tcp"]
    exporters = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
    for k, s in enumerate(exporters):
        s.sendall(b"".join(messages(50, pod=f"t{k}", max_size=65535)))
    c.wait_for("tcp .* session started", 12)
    assert wait_until(lambda: len(jsonl(tmp_path / "flows-w0.jsonl")) + len(jsonl(tmp_path / "flows-w1.jsonl")) == 600)
    status, err = c.finish(signal.SIGTERM)  # the exporters are still connected
    for s in exporters:
        s.close()
    assert status == EXIT_OK
    assert "SIGTERM: stopping" in err and f"jsonl:{out}: 600 records delivered" in err
    assert len(c.lines_matching(r"\[w[01]\]: tcp .* session ended")) == 12


def test_workers_1_is_one_process_as_without_the_flag(tmp_path):
    out = tmp_path / "flows.jsonl"
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{out}", "--workers", "1")
    send_udp_exporters(c.ports()["udp"], 3, 10)
    c.wait_for("session started", 3)
    time.sleep(0.3)
    status, err = c.finish()
    assert status == EXIT_OK
    assert len(jsonl(out)) == 30 and not list(tmp_path.glob("flows-w*"))
    assert "workers (pids" not in err and "[w0]" not in err


def test_workers_auto_starts_one_per_cpu(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "auto")
    c.ports()
    status, err = c.finish()
    cpus = available_cpus()
    assert status == EXIT_OK
    if cpus > 1:
        assert f"{cpus} workers (pids" in err
    else:
        assert "workers (pids" not in err


def test_workers_auto_with_a_file_input_is_one_process(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(20)))
    out = tmp_path / "o.jsonl"
    assert main(["-i", f"file:{src}", "-s", f"jsonl:{out}", "--workers", "auto"]) == EXIT_OK
    assert len(jsonl(out)) == 20


def test_workers_with_a_file_input_is_a_usage_error(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(20)))
    assert main(["-i", "udp://127.0.0.1:0", "-i", f"file:{src}", "--workers", "2"]) == EXIT_USAGE
    assert f"--workers 2: file:{src}: files and captures are read by one process" in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_a_worker_count_that_is_not_a_positive_number_or_auto_is_a_usage_error(value, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-i", "udp://127.0.0.1:0", "--workers", value], environ={})
    assert exit_.value.code == EXIT_USAGE
    assert "--workers" in capsys.readouterr().err



@pytest.mark.parametrize(("launch", "says"), [
    (None, "not a worker launch"),
    ("{not json", "not a worker launch"),
    ('{"index": 2, "count": 2, "channel": 3, "sockets": []}', "index out of range"),
    ('{"index": 0, "count": 1, "channel": 987, "sockets": []}', "descriptor 987: Bad file descriptor"),
    ('{"index": 0, "count": 1, "channel": FD, "sockets": []}', "is not a socket"),
])
def test_the_internal_worker_flag_given_by_hand_is_a_usage_error_not_a_traceback(launch, says, tmp_path, capsys):
    with open(tmp_path / "plain", "w") as plain:
        argv = ["--worker"] if launch is None else ["--worker", launch.replace("FD", str(plain.fileno()))]
        assert main([*argv, "-i", "udp://127.0.0.1:0"], environ={}) == EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err and "--worker is how the supervisor of --workers N starts its workers" in err

# --------------------------------------------------------------------------------------------
# standard output


def test_both_workers_write_whole_lines_to_one_standard_output():
    c = Collect("-i", "tcp://127.0.0.1:0", "--workers", "2", "--enrich", "none", stdout=subprocess.PIPE)
    port = c.ports()["tcp"]
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.extend(c.proc.stdout.buffer), daemon=True)
    reader.start()
    send_tcp_at_once(port, 8, 4000)
    c.wait_for("tcp .* session ended", 8)
    status, _ = c.finish()
    reader.join(30)
    docs = [orjson.loads(line) for line in received]  # a line cut by another worker's write fails here
    assert status == EXIT_OK
    assert len(docs) == 32000 and len(set(map(pod, docs))) == 32000
    assert c.lines_matching(r"\[w0\]: tcp .* session ended") and c.lines_matching(r"\[w1\]: tcp .* session ended")


# --------------------------------------------------------------------------------------------
# numbers: summary, status line, metrics


def test_the_summary_status_line_and_metrics_are_the_sums_of_the_workers(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "2",
                "--metrics-listen", "127.0.0.1:0", "--status-interval", "0.3")
    url = metrics_url(c)
    port = c.ports()["udp"]
    send_udp_exporters(port, 12, 25)
    c.wait_for("session started", 12)
    assert wait_until(lambda: scrape(url)[("ipfix_collect_records_accepted_total", frozenset())] == 300)
    samples = scrape(url)
    status_line = c.wait_for(r"status: 300 records")[0].string
    status, err = c.finish()
    name = f"jsonl:{tmp_path / 'o.jsonl'}"
    decoded = {dict(labels)["exporter"]: v for (metric, labels), v in samples.items()
               if metric == "ipfix_collect_records_decoded_total"}
    assert decoded == {"127.0.0.1": 300}
    assert samples[("ipfix_collect_sink_delivered_records_total", frozenset({("sink", name)}))] == 300
    assert samples[("ipfix_collect_exporter_sessions_total", frozenset())] == 12
    assert samples[("ipfix_collect_exporters_connected", frozenset({("input", "udp://127.0.0.1:0")}))] == 12
    assert samples[("ipfix_collect_queue_capacity_records", frozenset())] == 2 * 100_000
    assert samples[("ipfix_collect_ready", frozenset())] == 1
    assert samples[("ipfix_collect_worker_deaths_total", frozenset())] == 0
    assert "12 exporters" in status_line and f"{name}: 300 delivered" in status_line
    assert status == EXIT_OK
    assert "1 input: 300 records, 48 messages" in err and "12 exporter session(s)" in err
    assert f"{name}: 300 records delivered" in err


def test_readiness_says_each_part_once_and_templates_come_from_every_worker(tmp_path):
    enc = encoder()
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "2",
                "--metrics-listen", "127.0.0.1:0")
    url = metrics_url(c)
    port = c.ports()["udp"]
    exporters = udp_exporters(port, 10, lambda k: enc.template_messages())  # open until the end
    c.wait_for("session started", 10)
    assert wait_until(lambda: len(orjson.loads(get(url + "/templates")[1])["sessions"]) == 10)
    sessions = orjson.loads(get(url + "/templates")[1])["sessions"]
    status, body = get(url + "/readyz")
    c.finish()
    assert {s["worker"] for s in sessions} == {0, 1}
    assert all(t["template_id"] == 256 for s in sessions for t in s["templates"])
    lines = body.splitlines()
    assert status == 200 and lines[0] == "ready"
    assert lines[1] == f"input udp://127.0.0.1:0: listening on udp://127.0.0.1:{port}"  # said by both
    assert sorted(lines[2:]) == [f"worker 0: sink jsonl:{tmp_path / 'o-w0.jsonl'}: ready",
                                 f"worker 1: sink jsonl:{tmp_path / 'o-w1.jsonl'}: ready"]
    del exporters


# --------------------------------------------------------------------------------------------
# a worker dies, hangs or cannot start; the supervisor dies


def test_a_killed_worker_is_restarted_counted_and_its_exporters_still_arrive(tmp_path):
    out = tmp_path / "flows.jsonl"
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{out}", "--workers", "2",
                "--metrics-listen", "127.0.0.1:0")
    url = metrics_url(c)
    port = c.ports()["udp"]
    pids = c.pids()
    os.kill(pids[1], signal.SIGKILL)
    c.wait_for(rf"worker 1 \(pid {pids[1]}\) was killed by SIGKILL; restarting it in")
    assert wait_until(lambda: get(url + "/readyz")[0] == 200)  # the new worker 1 listens
    exporters = send_udp_exporters(port, 16, 20)  # half of them to worker 1's socket
    c.wait_for("session started", 16)
    assert wait_until(lambda: scrape(url)[("ipfix_collect_records_accepted_total", frozenset())] == 320)
    deaths = scrape(url)[("ipfix_collect_worker_deaths_total", frozenset())]
    status, err = c.finish()
    got = jsonl(tmp_path / "flows-w0.jsonl") + jsonl(tmp_path / "flows-w1.jsonl")
    assert deaths == 1
    assert len(got) == 320 and len(c.lines_matching(r"\[w1\]: udp .* session started")) > 0
    assert status == EXIT_INPUT_ERRORS  # not every worker drained
    assert "1 worker process died instead of draining" in err
    del exporters


def test_a_worker_that_keeps_dying_ends_the_run_with_an_error(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "2")
    c.ports()
    pid = c.pids()[1]
    for n in range(1, CRASH_LIMIT + 1):
        os.kill(pid, signal.SIGKILL)
        c.wait_for(rf"worker 1 \(pid {pid}\) was killed by SIGKILL")
        if n < CRASH_LIMIT:
            pid = int(c.wait_for(r"worker 1 restarted \(pid (\d+)\)", n)[-1][1])
    status, err = c.finish(None)
    assert status == EXIT_INPUT_ERRORS
    assert f"it died {CRASH_LIMIT} times within 60 s: giving up" in err
    assert f"{CRASH_LIMIT} worker processes died" in err


def test_a_stopped_worker_fails_liveness_until_it_reports_again(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "2",
                "--metrics-listen", "127.0.0.1:0")
    url = metrics_url(c)
    c.ports()
    pids = c.pids()
    assert get(url + "/healthz") == (200, "ok\n")
    os.kill(pids[0], signal.SIGSTOP)
    try:
        assert wait_until(lambda: get(url + "/healthz")[0] == 503, timeout=30)
        status, body = get(url + "/healthz")
    finally:
        os.kill(pids[0], signal.SIGCONT)
    assert wait_until(lambda: get(url + "/healthz")[0] == 200, timeout=30)
    c.finish()
    assert status == 503 and body.startswith("worker 0: no report for ")


def test_a_worker_that_cannot_open_its_sink_stops_the_run_with_its_usage_error(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'missing' / 'o.jsonl'}", "--workers", "2")
    status, err = c.finish(None)
    assert status == EXIT_USAGE
    assert len([line for line in err.splitlines() if "cannot open" in line]) == 1  # said once, by worker 0
    assert "workers (pids" not in err


def test_workers_stop_by_themselves_when_the_supervisor_is_killed(tmp_path):
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o.jsonl'}", "--workers", "2")
    c.ports()
    pids = c.pids()
    c.proc.kill()

    assert wait_until(lambda: all(gone(p) for p in pids), timeout=30)
    c.finish(None)
    assert "the supervisor has gone away: stopping" in c.text()


def test_a_second_signal_kills_the_workers_and_exits_130(tmp_path):
    # Elasticsearch is not there: the records wait in the workers, and the drain waits for them.
    c = Collect("-i", "tcp://127.0.0.1:0", "-s", f"elasticsearch:http://127.0.0.1:{free_port()}",
                "--es-dead-letter", str(tmp_path / "dead.jsonl"), "--workers", "2")
    port = c.ports()["tcp"]
    pids = c.pids()
    send_tcp_connections(port, 6, 20)
    c.wait_for("tcp .* session ended", 6)
    c.proc.send_signal(signal.SIGTERM)
    c.wait_for("SIGTERM: stopping")
    status, err = c.finish(signal.SIGTERM)
    assert status == 130
    assert "SIGTERM again: giving up" in err

    assert wait_until(lambda: all(gone(p) for p in pids), timeout=10)


# --------------------------------------------------------------------------------------------
# state files


def test_each_worker_keeps_its_state_file_and_reads_every_workers(tmp_path):
    state = tmp_path / "state"
    enc = encoder()
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'a.jsonl'}", "--workers", "2",
                "--state-dir", str(state))
    exporters = udp_exporters(c.ports()["udp"], 16, lambda k: enc.template_messages())
    c.wait_for("session started", 16)
    assert c.finish()[0] == EXIT_OK
    assert sorted(p.name for p in state.glob("*.json")) == ["udp-127.0.0.1-0-w0.json", "udp-127.0.0.1-0-w1.json"]
    # A new port: the kernel shares the exporters out anew, many go to the other worker.
    c = Collect("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'b.jsonl'}", "--workers", "2",
                "--state-dir", str(state))
    port = c.ports()["udp"]
    for k, s in enumerate(exporters):
        for m in enc.encode(256, [row(k)]):
            s.sendto(m, ("127.0.0.1", port))
    c.wait_for("session started", 16)
    assert wait_until(lambda: len(jsonl(tmp_path / "b-w0.jsonl")) + len(jsonl(tmp_path / "b-w1.jsonl")) == 16)
    status, err = c.finish()
    assert status == EXIT_OK and "0 missing-template sets" in err


# --------------------------------------------------------------------------------------------
# Elasticsearch


def test_each_worker_indexes_its_share_into_elasticsearch_with_a_client_of_its_own(tmp_path):
    server = require_es()
    prefix = unique_prefix("workers")
    try:
        c = Collect("-i", "tcp://127.0.0.1:0", "-s", f"elasticsearch:{server.url}", "--es-user", server.user,
                    "--es-password", server.password, "--es-index", f"{prefix}-%Y.%m.%d",
                    "--es-template-name", prefix, "--es-dead-letter", str(tmp_path / "dead.jsonl"), "--workers", "2")
        send_tcp_connections(c.ports()["tcp"], 12, 50)
        c.wait_for("tcp .* session ended", 12)
        status, err = c.finish()
        with server.client() as es:
            es.indices.refresh(index=f"{prefix}-*")
            pods = [h["_source"]["ipfix"]["sourcePodName"] for h in
                    es.search(index=f"{prefix}-*", size=1000, source=["ipfix.sourcePodName"])["hits"]["hits"]]
    finally:
        cleanup(server, prefix)
    assert status == EXIT_OK
    assert Counter(pods) == Counter(f"t{k}-{i}" for k in range(12) for i in range(50))
    assert f"elasticsearch:{server.url}: 600 records delivered (indexed=600)" in err
    assert c.lines_matching(r"\[w0\]: tcp .* session ended") and c.lines_matching(r"\[w1\]: tcp .* session ended")
