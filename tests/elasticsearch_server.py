"""The real Elasticsearch the sink's tests run against, and a fault-injecting proxy in front of it.

The server is started by ``.ci/elasticsearch.sh`` (see docs/elasticsearch.md), which exports:

* ``IPFIX_ANTREA_ES_URL`` (e.g. ``http://127.0.0.1:19200``), ``IPFIX_ANTREA_ES_USER`` and
  ``IPFIX_ANTREA_ES_PASSWORD`` (a superuser: the server runs with security on);
* ``IPFIX_ANTREA_ES_CONTROL``: the script itself, which the restart tests call with ``stop``,
  ``kill`` and ``start`` (it finds the same server through ``IPFIX_ES_*``).

`require_es` skips a test when the server is not configured or does not answer, or fails it when
``IPFIX_ANTREA_REQUIRE_ES=1`` (set by .ci/run in CI), so that CI cannot go green by skipping.

`FaultProxy` is a small HTTP(S) server that forwards to the real server and, on request, answers
some requests itself with 429, 503 or 401, refuses some documents of a bulk request with 429 (they
are not forwarded, as Elasticsearch would not have stored them), holds requests until released,
and records the headers it saw. It only adds faults on top of the real server: what is stored is
always what Elasticsearch stored.
"""

from __future__ import annotations

import base64
import http.client
import http.server
import os
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import orjson
import pytest
from elasticsearch import Elasticsearch

from ipfix_antrea import Encoder, Registry, Session
from ipfix_antrea.documents import document_ids, to_document

REQUIRE_ENV = "IPFIX_ANTREA_REQUIRE_ES"
CONTROL_TIMEOUT = 240  # seconds for the control script to stop or start the server


def es_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _unavailable(reason: str) -> None:
    if es_required():
        pytest.fail(f"{reason}, and {REQUIRE_ENV} is set", pytrace=False)
    pytest.skip(f"{reason} (start one with .ci/elasticsearch.sh, see docs/elasticsearch.md)")


@dataclass
class Server:
    """The test server: where it is, how to log in, how to stop and start it."""

    url: str
    user: str | None
    password: str | None
    control: str | None

    @property
    def auth(self) -> tuple[str, str] | None:
        return (self.user, self.password or "") if self.user else None

    def client(self) -> Elasticsearch:
        return Elasticsearch(self.url, basic_auth=self.auth, request_timeout=60)

    def _control(self, command: str) -> None:
        if not self.control:
            _unavailable("IPFIX_ANTREA_ES_CONTROL is not set, so the server cannot be restarted")
        subprocess.run(["bash", self.control, command], check=True, timeout=CONTROL_TIMEOUT,
                       stdin=subprocess.DEVNULL)

    def stop(self) -> None:
        """A clean shutdown (SIGTERM); returns when the process is gone."""
        self._control("stop")

    def kill(self) -> None:
        """A crash (SIGKILL); returns when the process is gone."""
        self._control("kill")

    def start(self) -> None:
        """Start again; returns when the cluster is yellow or green."""
        self._control("start")


def require_es() -> Server:
    """The configured server, answering; skips (or fails in CI) otherwise."""
    url = os.environ.get("IPFIX_ANTREA_ES_URL")
    if not url:
        _unavailable("no Elasticsearch: IPFIX_ANTREA_ES_URL is not set")
    server = Server(url, os.environ.get("IPFIX_ANTREA_ES_USER"),
                    os.environ.get("IPFIX_ANTREA_ES_PASSWORD"),
                    os.environ.get("IPFIX_ANTREA_ES_CONTROL"))
    try:
        with server.client() as es:
            es.cluster.health(wait_for_status="yellow", timeout="30s")
    except Exception as exc:  # noqa: BLE001 - any failure means: not usable
        _unavailable(f"Elasticsearch at {url} does not answer: {exc}")
    return server


# --------------------------------------------------------------------------- documents

EXPORT_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z
PODS = ("frontend-7d9c8b6f5-x2k4p", "backend-5f6d7c8b9-q8w7e", "redis-0")
FLOW_FIELDS = [
    "flowStartSeconds", "flowEndSeconds", "sourceIPv4Address", "destinationIPv4Address",
    "sourcePodName", "sourcePodNamespace", "destinationPodName", "protocolIdentifier",
    "octetDeltaCount", "octetTotalCount",
]


def flow_rows(n: int) -> list[tuple]:
    """``n`` flow records (values in FLOW_FIELDS order): Pods in turn, flows ending one per
    second from EXPORT_TIME - n, and ``octetTotalCount`` = the record's number (0..n-1), a value
    no other record has, to find lost or doubled records by."""
    rows = []
    for i in range(n):
        end = EXPORT_TIME - n + i
        rows.append((end - 30, end, f"10.244.{i % 7}.{i % 250 + 1}", "10.96.0.10", PODS[i % len(PODS)],
                     "default", PODS[(i + 1) % len(PODS)], 6, 100 + i % 1000, i))
    return rows


def decode(stream: bytes, registry: Registry | None = None, host: str | None = "192.0.2.1"):
    """(documents, derived ids) of an IPFIX stream, as the collector makes them."""
    records = list(Session(registry=registry).feed(stream))
    return [to_document(r, host) for r in records], document_ids(records, host)


def flow_documents(n: int, host: str | None = "192.0.2.1") -> tuple[list[dict], list[str]]:
    """``flow_rows(n)`` through the library: encoded as IPFIX, decoded, made documents."""
    enc = Encoder(observation_domain_id=7, export_time=lambda: EXPORT_TIME)
    enc.add_template(256, FLOW_FIELDS)
    stream = b"".join(enc.template_messages() + enc.encode(256, flow_rows(n)))
    return decode(stream, host=host)


def unique_prefix(label: str) -> str:
    """An index-name prefix no other test uses (lowercase, as index names must be)."""
    return f"t-{label.lower()}-{uuid.uuid4().hex[:8]}"


def cleanup(server: Server, prefix: str) -> None:
    """Delete a test's indices and index template (both named after ``prefix``)."""
    with server.client() as es:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=prefix)


# --------------------------------------------------------------------------- the proxy

@dataclass
class Faults:
    """What the proxy does to the next requests; the tests set these fields."""

    #: answer this many of the next bulk requests with these statuses, one each, in order
    bulk_statuses: list[int] = field(default_factory=list)
    #: answer every bulk request with this status (e.g. 503 for ever); None: forward
    always_status: int | None = None
    #: refuse with 429 every n-th document of the next this-many forwarded bulk requests
    refuse_every: int = 0
    refuse_requests: int = 0
    #: when set, requests wait on it before being handled
    gate: threading.Event | None = None


class FaultProxy:
    """Forwards HTTP requests to ``upstream`` (with ``upstream_auth``), adding `Faults`.

    ``tls``: an ``ssl.SSLContext`` to serve HTTPS with; ``port``: where to listen on loopback
    (default: any free port). Records the ``Authorization`` header of
    every request in ``authorizations`` and counts bulk requests in ``bulk_requests``.
    """

    def __init__(self, upstream: str, upstream_auth: tuple[str, str] | None,
                 tls: ssl.SSLContext | None = None, port: int = 0) -> None:
        self.faults = Faults()
        self.authorizations: list[str | None] = []
        self.bulk_requests = 0
        self.refused_documents = 0
        self._lock = threading.Lock()
        parts = urlsplit(upstream)
        self._upstream = (parts.hostname, parts.port)
        self._upstream_auth = None
        if upstream_auth:
            token = base64.b64encode(f"{upstream_auth[0]}:{upstream_auth[1]}".encode()).decode()
            self._upstream_auth = f"Basic {token}"
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                status, headers, payload = proxy._respond(self.command, self.path, self.headers, body)
                self.send_response(status)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
        scheme = "https" if tls is not None else "http"
        self.url = f"{scheme}://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self.faults.gate is not None:
            self.faults.gate.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- behaviour ---------------------------------------------------------------------------

    def _respond(self, method: str, path: str, headers, body: bytes):
        with self._lock:
            self.authorizations.append(headers.get("Authorization"))
        gate = self.faults.gate
        if gate is not None:
            gate.wait(60)
        if urlsplit(path).path.rstrip("/").endswith("_bulk"):
            with self._lock:
                self.bulk_requests += 1
                faults = self.faults
                status = faults.always_status
                if status is None and faults.bulk_statuses:
                    status = faults.bulk_statuses.pop(0)
                refuse = 0
                if status is None and faults.refuse_requests > 0 and faults.refuse_every:
                    faults.refuse_requests -= 1
                    refuse = faults.refuse_every
            if status is not None:
                return status, [("Content-Type", "application/json")], _error_body(status)
            if refuse:
                return self._bulk_refusing(path, headers, body, refuse)
        return self._forward(method, path, headers, body)

    def _forward(self, method: str, path: str, headers, body: bytes):
        conn = http.client.HTTPConnection(*self._upstream, timeout=60)
        try:
            out = {k: v for k, v in headers.items()
                   if k.lower() not in ("host", "authorization", "content-length", "connection")}
            if self._upstream_auth:
                out["Authorization"] = self._upstream_auth
            conn.request(method, path, body=body, headers=out)
            response = conn.getresponse()
            payload = response.read()
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() not in ("content-length", "connection", "transfer-encoding")]
            return response.status, kept, payload
        finally:
            conn.close()

    def _bulk_refusing(self, path: str, headers, body: bytes, every: int):
        """Forward all but every ``every``-th document; answer those with 429 items, merged
        into Elasticsearch's response in their places."""
        lines = body.splitlines()
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]
        refused = {i for i in range(len(pairs)) if i % every == every - 1}
        kept = b"".join(a + b"\n" + s + b"\n" for i, (a, s) in enumerate(pairs) if i not in refused)
        # Without the sink's filter_path, Elasticsearch answers every item in full.
        plain_path = urlsplit(path).path
        status, _, payload = self._forward("POST", plain_path, headers, kept)
        upstream = orjson.loads(payload)
        items = iter(upstream["items"])
        merged = []
        for i, (action, _) in enumerate(pairs):
            if i in refused:
                (op,) = orjson.loads(action)
                merged.append({op: {"status": 429, "error": {
                    "type": "es_rejected_execution_exception", "reason": "injected by FaultProxy"}}})
            else:
                merged.append(next(items))
        with self._lock:
            self.refused_documents += len(refused)
        result = {"errors": True, "took": upstream.get("took", 0), "items": merged}
        return status, [("Content-Type", "application/json")], orjson.dumps(result)


def _error_body(status: int) -> bytes:
    kinds = {429: "es_rejected_execution_exception", 503: "unavailable_shards_exception",
             401: "security_exception"}
    return orjson.dumps({"error": {"type": kinds.get(status, "exception"),
                                   "reason": f"injected by FaultProxy ({status})"},
                         "status": status})


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.05) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passes; its last value."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
