"""go-ipfix, the library Antrea exports with, to the real ipfix-collect: every record arrives as sent.

The peer is tests/goexporter, a small Go program on go-ipfix's own exporter (the version pinned in
its go.mod). It sends the Flow Aggregator's templates (aggregate mode IPv4 and IPv6 with the UUID
elements, proxy mode IPv4: 79, 79 and 50 elements of every type the FA exports) and records with
Kubernetes-style names, 253-character names, labels over 255 octets and empty strings, framed the
way go-ipfix frames them (one set per message, several records per message up to the path MTU).
It writes the ``ipfix`` object it expects ipfix-collect to produce for each record into a JSON
lines file (see the comment at the top of main.go); these tests compare the two.

Each transport runs once per module: start ``ipfix-collect --input <scheme>://127.0.0.1:0 --sink
jsonl:OUT``, read the bound port from its ``listening on`` line on stderr, run the exporter against
it, wait until the output stops growing, send SIGTERM (the collector drains and exits) and read
OUT. UDP is paced by the exporter (``-pace``) so that loopback cannot drop a datagram. TLS uses
certificates from trustme: a CA, a server certificate for 127.0.0.1, and for mutual TLS a client
certificate the collector checks against the CA.

The exporter binary comes from ``IPFIX_ANTREA_GOEXPORTER`` (.ci/run builds it, see
.ci/goexporter.sh). Without it the tests build it with ``go`` when ``go`` is on PATH, and skip
otherwise; with ``IPFIX_ANTREA_REQUIRE_PEERS=1`` (CI) a missing binary fails them instead.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import peers
import pytest

GOEXPORTER_ENV = "IPFIX_ANTREA_GOEXPORTER"
GOEXPORTER_SRC = Path(__file__).resolve().parent / "goexporter"

RECORDS = 300
TEMPLATE_IDS = {256, 257, 258}  # go-ipfix numbers templates from 256, in the order sent
MIN_ELEMENTS = 40  # fewer, and the stream would not look like the Flow Aggregator's
UDP_PACE = "1ms"  # ~300 records/s: far below what loopback and the collector can take

LISTENING = re.compile(r"listening on (?P<scheme>\w+)://127\.0\.0\.1:(?P<port>\d+)")
START_TIMEOUT = 20.0  # seconds for the collector to bind and say so
EXPORT_TIMEOUT = 120.0  # seconds for the exporter to connect and send everything
QUIET = 1.0  # seconds without a new output line after which the collector has written all
DRAIN_TIMEOUT = 30.0  # seconds for the output to go quiet, and again for exit after SIGTERM


# ------------------------------------------------------------------------------------- peer


@pytest.fixture(scope="session")
def goexporter(tmp_path_factory) -> str:
    """Path of the go-ipfix exporter: from the environment, else built with go, else skip."""
    path = os.environ.get(GOEXPORTER_ENV)
    if path:
        if not os.access(path, os.X_OK):
            pytest.fail(f"{GOEXPORTER_ENV}={path} is not an executable file", pytrace=False)
        return path
    go = shutil.which("go")
    if go is None:
        msg = (f"{GOEXPORTER_ENV} is not set and go is not on PATH to build tests/goexporter "
               "(.ci/goexporter.sh does it in CI)")
        if peers.peers_required():
            pytest.fail(f"{msg}, and {peers.REQUIRE_ENV} is set", pytrace=False)
        pytest.skip(msg)
    binary = tmp_path_factory.mktemp("goexporter") / "goexporter"
    build = subprocess.run(
        [go, "build", "-mod=readonly", "-buildvcs=false", "-o", str(binary), "."],
        cwd=GOEXPORTER_SRC, capture_output=True, text=True, timeout=600, check=False)
    if build.returncode != 0:
        pytest.fail(f"building tests/goexporter failed:\n{build.stderr}", pytrace=False)
    return str(binary)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory) -> dict[str, Path]:
    """PEM files: the CA, the collector's certificate and key, an exporter's certificate and key."""
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    client = ca.issue_cert("goexporter.flow-aggregator.svc")
    d = tmp_path_factory.mktemp("certs")
    files = {"ca": d / "ca.pem", "server_cert": d / "server.pem", "server_key": d / "server.key",
             "client_cert": d / "client.pem", "client_key": d / "client.key"}
    ca.cert_pem.write_to_path(str(files["ca"]))
    server.private_key_pem.write_to_path(str(files["server_key"]))
    client.private_key_pem.write_to_path(str(files["client_key"]))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(files["server_cert"]), append=True)
    for blob in client.cert_chain_pems:
        blob.write_to_path(str(files["client_cert"]), append=True)
    return files


# ------------------------------------------------------------------------------------- run


def collector_command() -> list[str]:
    # The interpreter running the tests, so the code under test is this checkout's; the
    # decoded elements as they arrived, without derived fields, to compare with what was sent.
    return [sys.executable, "-m", "ipfix_antrea.cli", "--enrich", "none"]


class StderrReader:
    """Collects a process's stderr lines in a thread, so the pipe never fills up."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            with self._changed:
                self.lines.append(line.rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self.closed = True
            self._changed.notify_all()

    def wait_for(self, pattern: re.Pattern, timeout: float) -> re.Match | None:
        """The first line matching ``pattern``; None on timeout or when the process closed stderr."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._changed:
            while True:
                for line in self.lines[seen:]:
                    if m := pattern.search(line):
                        return m
                seen = len(self.lines)
                left = deadline - time.monotonic()
                if left <= 0 or self.closed:
                    return None
                self._changed.wait(left)

    def text(self) -> str:
        self._thread.join(5)
        return "\n".join(self.lines)


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(1 for line in f if line.endswith(b"\n"))
    except FileNotFoundError:
        return 0


def wait_until_quiet(path: Path, target: int) -> None:
    """Return once ``path`` holds ``target`` lines, or has not grown for QUIET seconds."""
    deadline = time.monotonic() + DRAIN_TIMEOUT
    last, last_change = -1, time.monotonic()
    while time.monotonic() < deadline:
        n = count_lines(path)
        if n >= target:
            return
        if n != last:
            last, last_change = n, time.monotonic()
        elif time.monotonic() - last_change >= QUIET:
            return
        time.sleep(0.05)


@dataclass
class Delivery:
    """One run: what the exporter says it sent, what the collector wrote, how it ended."""

    transport: str
    expected: list[dict]  # the exporter's -expected file, one ipfix object per record sent
    documents: list[dict]  # the collector's JSON lines output
    exit_status: int
    collector_stderr: str


def run_delivery(transport: str, goexporter: str, certs: dict[str, Path], tmp: Path) -> Delivery:
    scheme = "udp" if transport == "udp" else "tcp" if transport == "tcp" else "tls"
    out, expected_file = tmp / "collected.jsonl", tmp / "expected.jsonl"
    collector = [*collector_command(), "--input", f"{scheme}://127.0.0.1:0",
                 "--sink", f"jsonl:{out}"]
    exporter = [goexporter, "-records", str(RECORDS), "-expected", str(expected_file),
                "-proto", "udp" if scheme == "udp" else "tcp"]
    if scheme == "udp":
        exporter += ["-pace", UDP_PACE]
    if scheme == "tls":
        collector += ["--tls-cert", str(certs["server_cert"]), "--tls-key", str(certs["server_key"])]
        exporter += ["-tls", "-ca", str(certs["ca"])]
    if transport == "mtls":
        collector += ["--tls-client-ca", str(certs["ca"])]
        exporter += ["-cert", str(certs["client_cert"]), "-key", str(certs["client_key"])]

    proc = subprocess.Popen(collector, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    stderr = StderrReader(proc.stderr)
    try:
        listening = stderr.wait_for(LISTENING, START_TIMEOUT)
        if listening is None or listening["scheme"] != scheme:
            pytest.fail(f"ipfix-collect never said it was listening on {scheme}://127.0.0.1:"
                        f"PORT; stderr:\n{stderr.text()}", pytrace=False)
        sent = subprocess.run([*exporter, "-addr", f"127.0.0.1:{listening['port']}"],
                              capture_output=True, text=True, timeout=EXPORT_TIMEOUT, check=False)
        if sent.returncode != 0:
            pytest.fail(f"the go-ipfix exporter exited {sent.returncode}:\n{sent.stderr}\n"
                        f"collector stderr:\n{stderr.text()}", pytrace=False)
        wait_until_quiet(out, RECORDS)
        proc.send_signal(signal.SIGTERM)
        exit_status = proc.wait(DRAIN_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    expected = [json.loads(line) for line in expected_file.read_text().splitlines()]
    documents = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return Delivery(transport, expected, documents, exit_status, stderr.text())


@pytest.fixture(scope="module", params=["udp", "tcp", "tls", "mtls"])
def delivery(request, goexporter, certificates, tmp_path_factory) -> Delivery:
    return run_delivery(request.param, goexporter, certificates,
                        tmp_path_factory.mktemp(f"goipfix-{request.param}"))


def by_template(objects: list[dict]) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = defaultdict(list)
    for obj in objects:
        out[obj.get("flowset_id")].append(obj)
    return out


# ------------------------------------------------------------------------------------- tests


def test_exporter_sends_the_flow_aggregator_templates_with_awkward_values(delivery):
    """The peer's stream is what this module claims to test (else the tests below prove little):
    all records, three FA-sized templates, the 3-octet string length form, empty strings and
    64-bit counters beyond 2**63."""
    expected = delivery.expected
    assert len(expected) == RECORDS
    assert {e["flowset_id"] for e in expected} == TEMPLATE_IDS
    assert min(len(e) - 2 for e in expected) >= MIN_ELEMENTS  # minus version and flowset_id
    strings = [v for e in expected for v in e.values() if isinstance(v, str)]
    assert max(len(s.encode()) for s in strings) >= 255
    assert "" in strings
    assert max(v for e in expected for v in e.values() if isinstance(v, int)) >= 2**63


def test_collector_writes_one_document_per_record_sent(delivery):
    assert len(delivery.documents) == len(delivery.expected), delivery.collector_stderr


def test_every_record_arrives_with_the_values_sent(delivery):
    """Compared per template in the order sent: go-ipfix's buffered exporter keeps one message
    buffer per template, so only the order within a template is defined."""
    got = by_template([doc.get("ipfix", {}) for doc in delivery.documents])
    want = by_template(delivery.expected)
    assert sorted(got) == sorted(want), "template ids"
    for template_id, records in want.items():
        assert len(got[template_id]) == len(records), f"records of template {template_id}"
        for index, (sent, received) in enumerate(zip(records, got[template_id], strict=True)):
            diff = {key: (sent.get(key, "<absent>"), received.get(key, "<absent>"))
                    for key in sent.keys() | received.keys() if sent.get(key) != received.get(key)}
            assert not diff, f"template {template_id} record {index}: (sent, received) {diff}"


def test_documents_name_the_exporter_as_host(delivery):
    assert {doc.get("host") for doc in delivery.documents} == {"127.0.0.1"}


# The collector's end-of-run summary on stderr (docs/collector.md, "Summary and exit status").
SUMMARY_COUNTS = re.compile(r"(?P<decode_errors>\d+) decode errors, (?P<malformed_sets>\d+) "
                            r"malformed sets, (?P<missing_template_sets>\d+) missing-template sets, "
                            r"(?P<sequence_gaps>\d+) sequence gaps")


def test_collector_counts_no_decode_error_and_no_sequence_gap(delivery):
    """go-ipfix frames messages and counts sequence numbers as RFC 7011 says, and its transport
    session ends cleanly, so the collector's summary has nothing to count. (The collector's exit
    status does not say this for network inputs: a broken connection is the exporter's problem,
    and the collector still exits 0.)"""
    summary = SUMMARY_COUNTS.search(delivery.collector_stderr)
    assert summary is not None, f"no summary on stderr:\n{delivery.collector_stderr}"
    counts = {name: int(value) for name, value in summary.groupdict().items()}
    assert counts == dict.fromkeys(counts, 0), delivery.collector_stderr


def test_collector_exits_0_after_sigterm(delivery):
    """SIGTERM drains the queue, flushes the sink and stops the collector with status 0."""
    assert delivery.exit_status == 0, delivery.collector_stderr
