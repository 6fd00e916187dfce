"""A small client for the three Kibana HTTP APIs that `ipfix-collect setup` needs.

Kibana has no official Python client, and the calls are few: whether Kibana is up (``GET
/api/status``), importing saved objects (``POST /api/saved_objects/_import?overwrite=true``, a
multipart upload of an ndjson file, with the ``kbn-xsrf`` header Kibana demands of every write),
and making a data view the default one (``POST /api/data_views/default``), all optionally in a
space (``/s/<space>/...``). The standard library does them: `urllib.request` with an SSL context
for a CA file or no verification, and basic or API-key authentication, as the Elasticsearch sink
takes them.

Every failure is a `KibanaError` that says what was asked and what Kibana answered: an
unreachable URL, credentials refused (401/403), or objects refused by the import (Kibana answers
200 with ``success: false`` and a list of errors, one per object).
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ImportResult", "KibanaClient", "KibanaError"]


class KibanaError(Exception):
    """Kibana could not be reached, refused a request, or refused objects of an import.
    ``status`` is the HTTP status when Kibana answered, else None."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class ImportResult:
    """What a saved-objects import did: how many objects were imported, and the errors of those
    that were not (Kibana's ``errors``: each with ``type``, ``id``, ``title`` and ``error``)."""

    success_count: int
    errors: list[dict[str, Any]] = field(default_factory=list)


class KibanaClient:
    """Kibana at ``url`` (``http(s)://host:5601``, with a base path if Kibana has one)."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 api_key: str | None = None, ca: str | None = None, insecure: bool = False,
                 timeout: float = 30.0, space: str | None = None) -> None:
        if "://" not in url:
            url = f"http://{url}"
        self.url = url.rstrip("/")
        self.space = space
        self.timeout = timeout
        self._headers = {"kbn-xsrf": "ipfix-collect", "Accept": "application/json"}
        if api_key:
            key_id, colon, key = api_key.partition(":")
            encoded = base64.b64encode(f"{key_id}:{key}".encode()).decode() if colon else api_key
            self._headers["Authorization"] = f"ApiKey {encoded}"
        elif user is not None:
            token = base64.b64encode(f"{user}:{password or ''}".encode()).decode()
            self._headers["Authorization"] = f"Basic {token}"
        self._ssl: ssl.SSLContext | None = None
        if self.url.startswith("https://"):
            try:
                self._ssl = ssl.create_default_context(cafile=ca)
            except (OSError, ssl.SSLError) as exc:
                raise KibanaError(f"Kibana CA file {ca}: {exc}") from exc
            if insecure:
                self._ssl.check_hostname = False
                self._ssl.verify_mode = ssl.CERT_NONE

    # ---------------------------------------------------------------- the calls

    def status(self) -> str:
        """Kibana's overall status level (``available``, ``degraded``, ...), from ``/api/status``.
        Raises KibanaError when Kibana does not answer or answers with an error."""
        body = self._request("GET", "/api/status", space=False)
        status = body.get("status", {}) if isinstance(body, dict) else {}
        overall = status.get("overall", {})
        return str(overall.get("level") or overall.get("state") or "unknown")

    def import_objects(self, ndjson: bytes, *, filename: str = "kibana.ndjson") -> ImportResult:
        """Import saved objects, overwriting those with the same ids (so a second run updates
        instead of failing). Raises KibanaError when Kibana refuses the request or any object."""
        boundary = f"ipfix-collect-{uuid.uuid4().hex}"
        body = b"".join([
            f"--{boundary}\r\n".encode(),
            f'Content-Disposition: form-data; name="file"; filename="{filename}"\r\n'.encode(),
            b"Content-Type: application/ndjson\r\n\r\n",
            ndjson,
            f"\r\n--{boundary}--\r\n".encode(),
        ])
        answer = self._request("POST", "/api/saved_objects/_import?overwrite=true", body,
                               content_type=f"multipart/form-data; boundary={boundary}")
        if not isinstance(answer, dict):
            raise KibanaError(f"Kibana answered the import with {answer!r}, not an import result")
        result = ImportResult(int(answer.get("successCount", 0)), list(answer.get("errors") or []))
        if not answer.get("success") or result.errors:
            details = "; ".join(_describe_import_error(e) for e in result.errors[:10]) or "no details"
            more = f" (and {len(result.errors) - 10} more)" if len(result.errors) > 10 else ""
            raise KibanaError(f"Kibana refused {len(result.errors)} of the objects ({result.success_count} "
                              f"imported): {details}{more}")
        return result

    def set_default_data_view(self, data_view_id: str, *, force: bool = False) -> None:
        """Make ``data_view_id`` the default data view; with ``force`` False, only when there
        is no default yet (a user's own choice is kept)."""
        self._request("POST", "/api/data_views/default",
                      json.dumps({"data_view_id": data_view_id, "force": force}).encode(),
                      content_type="application/json")

    # ---------------------------------------------------------------- HTTP

    def _request(self, method: str, path: str, body: bytes | None = None, *,
                 content_type: str | None = None, space: bool = True) -> Any:
        prefix = f"/s/{self.space}" if space and self.space else ""
        url = f"{self.url}{prefix}{path}"
        headers = dict(self._headers)
        if content_type:
            headers["Content-Type"] = content_type
        request = urllib.request.Request(url, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self._ssl) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise KibanaError(f"Kibana {method} {path}: HTTP {exc.code} {_error_text(exc)}", exc.code) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise KibanaError(f"cannot reach Kibana at {self.url}: {reason}") from None
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            raise KibanaError(f"Kibana {method} {path}: the answer is not JSON: {raw[:200]!r}") from None


def _error_text(exc: urllib.error.HTTPError) -> str:
    """Kibana's error answer (``{"statusCode", "error", "message"}``) as one line."""
    try:
        body = json.loads(exc.read() or b"{}")
    except ValueError:
        return exc.reason or ""
    if isinstance(body, dict):
        return " ".join(str(body[k]) for k in ("error", "message") if body.get(k)) or str(exc.reason)
    return str(body)


def _describe_import_error(error: dict[str, Any]) -> str:
    what = error.get("error", {})
    kind = what.get("type", "error") if isinstance(what, dict) else str(what)
    detail = what.get("message") or what.get("reason") or "" if isinstance(what, dict) else ""
    title = error.get("title") or error.get("meta", {}).get("title") or ""
    return f"{error.get('type', '?')} {error.get('id', '?')} {title!r}: {kind}{f' ({detail})' if detail else ''}"
