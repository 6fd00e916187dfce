"""Creates the Secret with the stack's Elasticsearch passwords, once, through the Kubernetes API.

Runs as the Job elasticsearch-credentials, in the collector's image (Python's standard library
only), with its service account's token. Idempotent, so the Job can run again at any time:

* no Secret: create it with a random password for every key;
* a Secret with every key: leave it alone (whoever made it, the Job or a person);
* a Secret missing keys (one made by hand, or by an older release): add only the missing keys;
* another creator wins a race (409 on create): start again from reading it.

Keys: ``elastic`` (the superuser: people, and the setup Job), ``kibana-server`` (Kibana's user)
and ``ipfix-collect`` (the collector's user). Passwords are 32 URL-safe characters from `secrets`.

Environment: SECRET_NAME (default elasticsearch-credentials); KUBERNETES_API and
SERVICEACCOUNT_DIR replace the in-cluster API address and service-account directory (tests).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import ssl
import sys
import urllib.error
import urllib.request
from pathlib import Path

KEYS = ("elastic", "kibana-server", "ipfix-collect")
SERVICEACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
ATTEMPTS = 3  # create-or-complete rounds before giving up on a racing writer


class ApiError(Exception):
    """The API server answered with a status this script does not expect."""


class Api:
    """The few calls needed on one namespace's Secrets, as the pod's service account."""

    def __init__(self, base_url: str, token: str, namespace: str, ca_file: str | None) -> None:
        self.base = f"{base_url.rstrip('/')}/api/v1/namespaces/{namespace}/secrets"
        self.token = token
        self.context = ssl.create_default_context(cafile=ca_file) if base_url.startswith("https:") else None

    def request(self, method: str, path: str = "", body: dict | None = None,
                content_type: str = "application/json") -> tuple[int, dict]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method, headers={
            "Authorization": f"Bearer {self.token}", "Accept": "application/json",
            "Content-Type": content_type})
        try:
            with urllib.request.urlopen(req, context=self.context, timeout=30) as resp:
                return resp.status, json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read().decode(errors="replace")
            try:
                return exc.code, json.loads(text)
            except ValueError:
                return exc.code, {"message": text}


def _password() -> str:
    return secrets.token_urlsafe(24)


def _encoded(keys: list[str]) -> dict[str, str]:
    return {key: base64.b64encode(_password().encode()).decode() for key in keys}


def _fail(what: str, status: int, body: dict) -> ApiError:
    return ApiError(f"{what}: HTTP {status}: {body.get('message') or body}")


def ensure_secret(api: Api, name: str) -> str:
    """Makes Secret ``name`` hold every key of `KEYS`; returns what was done, for the log."""
    for _ in range(ATTEMPTS):
        status, body = api.request("GET", f"/{name}")
        if status == 200:
            missing = [key for key in KEYS if key not in (body.get("data") or {})]
            if not missing:
                return f"secret {name} exists with {', '.join(KEYS)}: unchanged"
            status, body = api.request("PATCH", f"/{name}", {"data": _encoded(missing)},
                                       content_type="application/merge-patch+json")
            if status == 200:
                return f"secret {name} completed: added {', '.join(missing)}"
            if status not in (404, 409):  # deleted or changed meanwhile: read it again
                raise _fail(f"cannot complete secret {name}", status, body)
        elif status == 404:
            secret = {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                      "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "ipfix-antrea"}},
                      "data": _encoded(list(KEYS))}
            status, body = api.request("POST", "", secret)
            if status == 201:
                return f"secret {name} created with {', '.join(KEYS)}"
            if status != 409:  # 409: created by someone else meanwhile: read it again
                raise _fail(f"cannot create secret {name}", status, body)
        else:
            raise _fail(f"cannot read secret {name}", status, body)
    raise ApiError(f"secret {name} kept changing while being created; giving up after {ATTEMPTS} rounds")


def in_cluster_api(environ: dict[str, str]) -> Api:
    """The API server and credentials a pod has: its service account's token, CA and namespace."""
    sa = Path(environ.get("SERVICEACCOUNT_DIR", SERVICEACCOUNT_DIR))
    url = environ.get("KUBERNETES_API")
    if not url:
        host, port = environ["KUBERNETES_SERVICE_HOST"], environ.get("KUBERNETES_SERVICE_PORT", "443")
        url = f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"
    ca = sa / "ca.crt"
    return Api(url, (sa / "token").read_text().strip(), (sa / "namespace").read_text().strip(),
               str(ca) if ca.exists() else None)


def main() -> int:
    name = os.environ.get("SECRET_NAME", "elasticsearch-credentials")
    try:
        print(ensure_secret(in_cluster_api(dict(os.environ)), name), flush=True)
    except (ApiError, OSError, KeyError) as exc:
        print(f"generate_credentials: error: {exc}", file=sys.stderr, flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
