"""The credentials Job's script (deploy/kubernetes/base/credentials/generate_credentials.py).

No Kubernetes API server can run on these machines, so the script talks to `SecretsApi`: a
loopback HTTP server that keeps Secrets the way the API server does for the calls the script
makes (GET, POST with 409 on a duplicate, JSON merge PATCH), checks the bearer token, and can
answer a call with a given status instead. The script runs as the Job runs it: a process, with
its service-account directory (token, namespace) pointed at a temporary one.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "deploy/kubernetes/base/credentials/generate_credentials.py"
KEYS = ["elastic", "kibana-server", "ipfix-collect"]
NAME = "elasticsearch-credentials"
TOKEN = "token-of-the-job"

pytestmark = pytest.mark.timeout(60)


class SecretsApi:
    """Secrets of one namespace behind /api/v1/namespaces/<ns>/secrets, on a loopback port."""

    def __init__(self, namespace: str = "antreaflow") -> None:
        self.namespace = namespace
        self.secrets: dict[str, dict] = {}
        self.calls: list[tuple[str, str]] = []
        self.override: dict[tuple[str, int], tuple[int, dict]] = {}  # (method, call #) -> answer
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                api.calls.append((self.command, self.path))
                n = sum(1 for method, _ in api.calls if method == self.command)
                if (self.command, n) in api.override:
                    return self._answer(*api.override[(self.command, n)])
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    return self._answer(401, {"message": "Unauthorized"})
                prefix = f"/api/v1/namespaces/{api.namespace}/secrets"
                if not self.path.startswith(prefix):
                    return self._answer(404, {"message": f"no route {self.path}"})
                name = self.path[len(prefix):].lstrip("/")
                if self.command == "GET" and name:
                    if name not in api.secrets:
                        return self._answer(404, {"message": f'secrets "{name}" not found'})
                    return self._answer(200, api.secrets[name])
                if self.command == "POST" and not name:
                    created = body["metadata"]["name"]
                    if created in api.secrets:
                        return self._answer(409, {"message": f'secrets "{created}" already exists'})
                    api.secrets[created] = body
                    return self._answer(201, body)
                if self.command == "PATCH" and name in api.secrets:
                    assert self.headers["Content-Type"] == "application/merge-patch+json"
                    api.secrets[name].setdefault("data", {}).update(body["data"])
                    return self._answer(200, api.secrets[name])
                return self._answer(405, {"message": "not allowed"})

            do_GET = do_POST = do_PATCH = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def passwords(self, name: str = NAME) -> dict[str, str]:
        return {k: base64.b64decode(v).decode() for k, v in self.secrets[name]["data"].items()}


@pytest.fixture
def api():
    server = SecretsApi()
    yield server
    server.close()


def run_job(api: SecretsApi, tmp_path: Path) -> subprocess.CompletedProcess:
    sa = tmp_path / "serviceaccount"
    sa.mkdir(exist_ok=True)
    (sa / "token").write_text(TOKEN + "\n")
    (sa / "namespace").write_text(api.namespace)
    env = {"PATH": os.environ["PATH"], "KUBERNETES_API": api.url, "SERVICEACCOUNT_DIR": str(sa),
           "SECRET_NAME": NAME}
    return subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30)


def encoded(values: dict[str, str]) -> dict:
    return {"metadata": {"name": NAME}, "data": {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}}


def test_it_creates_the_secret_with_a_random_password_per_key(api, tmp_path):
    proc = run_job(api, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "created" in proc.stdout
    passwords = api.passwords()
    assert sorted(passwords) == sorted(KEYS)
    assert len(set(passwords.values())) == len(KEYS)
    assert all(len(p) == 32 and p.isascii() for p in passwords.values())
    assert api.secrets[NAME]["type"] == "Opaque"


def test_a_second_run_leaves_the_secret_alone(api, tmp_path):
    run_job(api, tmp_path)
    first = api.passwords()
    api.calls.clear()
    proc = run_job(api, tmp_path)
    assert proc.returncode == 0 and "unchanged" in proc.stdout
    assert api.passwords() == first
    assert [method for method, _ in api.calls] == ["GET"]


def test_a_secret_made_by_hand_keeps_its_passwords_and_gets_the_missing_keys(api, tmp_path):
    api.secrets[NAME] = encoded({"elastic": "chosen-by-the-admin"})
    proc = run_job(api, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "added kibana-server, ipfix-collect" in proc.stdout
    passwords = api.passwords()
    assert passwords["elastic"] == "chosen-by-the-admin" and sorted(passwords) == sorted(KEYS)


def test_losing_a_race_to_create_reads_the_winners_secret(api, tmp_path):
    # The first GET says "not found"; by the POST, another writer has created the Secret.
    api.secrets[NAME] = encoded({k: f"winner-{k}" for k in KEYS})
    api.override[("GET", 1)] = (404, {"message": "not found"})
    proc = run_job(api, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert [method for method, _ in api.calls] == ["GET", "POST", "GET"]
    assert api.passwords() == {k: f"winner-{k}" for k in KEYS}


def test_a_refusal_is_an_error_with_the_api_servers_message(api, tmp_path):
    api.override[("GET", 1)] = (403, {"message": 'secrets "elasticsearch-credentials" is forbidden'})
    proc = run_job(api, tmp_path)
    assert proc.returncode == 1
    assert "cannot read secret elasticsearch-credentials: HTTP 403" in proc.stderr and "forbidden" in proc.stderr
    assert NAME not in api.secrets


def test_an_unreachable_api_server_is_an_error(tmp_path):
    api = SecretsApi()
    api.close()  # nothing listens on its port any more
    proc = run_job(api, tmp_path)
    assert proc.returncode == 1 and "generate_credentials: error:" in proc.stderr
