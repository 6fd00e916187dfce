"""A stand-in for Kibana's HTTP API that records what `ipfix-collect setup` sends it.

Kibana cannot run on these machines (no registry publishes it), so this is the one place where the
tests talk to a stand-in instead of the real service (docs/visualization.md says so). It
implements the three calls setup makes, the way Kibana 8/9 documents them, and checks what Kibana
checks: the ``kbn-xsrf`` header on writes, the credentials, a multipart body whose ``file`` part
is an ndjson file of saved objects. Each request is recorded (method, path, headers, body) so a
test can assert on exactly what was sent; ``statuses`` scripts the answers of ``/api/status``
(503 while "starting"), ``import_errors`` makes the import refuse objects.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case: HTTP header names are case-insensitive
    body: bytes


@dataclass
class KibanaBehaviour:
    #: answers of the next /api/status calls: an HTTP status (503) or a level ("available");
    #: once used up, "available"
    statuses: list[int | str] = field(default_factory=list)
    #: per-object errors the import answers with (Kibana's shape); empty: every object imported
    import_errors: list[dict] = field(default_factory=list)


class FakeKibana:
    """Listens on loopback; ``url`` is where. ``user``/``password`` (or ``api_key``, as sent in
    ``Authorization: ApiKey ...``) are the credentials it accepts; None: no authentication."""

    def __init__(self, *, user: str | None = None, password: str | None = None, api_key: str | None = None) -> None:
        self.behaviour = KibanaBehaviour()
        self.requests: list[Request] = []
        self.imported: list[dict] = []  # the saved objects of every successful import
        self._accept: str | None = None
        if user is not None:
            self._accept = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        elif api_key is not None:
            self._accept = f"ApiKey {api_key}"
        kibana = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                request = Request(self.command, self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                kibana.requests.append(request)
                status, answer = kibana._answer(request)
                payload = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = _handle

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> FakeKibana:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def paths(self) -> list[str]:
        return [f"{r.method} {r.path}" for r in self.requests]

    # ---------------------------------------------------------------- Kibana's answers

    def _answer(self, request: Request) -> tuple[int, object]:
        if self._accept is not None and request.headers.get("authorization") != self._accept:
            return 401, {"statusCode": 401, "error": "Unauthorized",
                         "message": "[security_exception]: unable to authenticate user"}
        path = request.path.split("?")[0]
        if path.startswith("/s/"):
            path = "/" + path.split("/", 3)[3]
        if request.method == "POST" and request.headers.get("kbn-xsrf") is None:
            return 400, {"statusCode": 400, "error": "Bad Request",
                         "message": "Request must contain a kbn-xsrf header."}
        if path == "/api/status":
            answer = self.behaviour.statuses.pop(0) if self.behaviour.statuses else "available"
            if isinstance(answer, int):
                return answer, {"statusCode": answer, "error": "Service Unavailable",
                                "message": "Kibana server is not ready yet"}
            return 200, {"status": {"overall": {"level": answer}}}
        if path == "/api/saved_objects/_import":
            return self._import(request)
        if path == "/api/data_views/default":
            return 200, {"acknowledged": True}
        return 404, {"statusCode": 404, "error": "Not Found", "message": "Not Found"}

    def _import(self, request: Request) -> tuple[int, object]:
        content_type = request.headers.get("content-type", "")
        if not content_type.startswith("multipart/form-data"):
            return 415, {"statusCode": 415, "error": "Unsupported Media Type", "message": content_type}
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + request.body)
        files = [part for part in message.iter_parts()
                 if part.get_param("name", header="content-disposition") == "file"]
        if len(files) != 1:
            return 400, {"statusCode": 400, "error": "Bad Request", "message": "[request body.file]: expected a file"}
        try:
            objects = [json.loads(line) for line in files[0].get_payload(decode=True).splitlines() if line.strip()]
        except ValueError as exc:
            return 400, {"statusCode": 400, "error": "Bad Request", "message": f"Unexpected token: {exc}"}
        errors = self.behaviour.import_errors
        if not errors:
            self.imported.extend(objects)
        return 200, {"success": not errors, "successCount": len(objects) - len(errors), "errors": errors}
