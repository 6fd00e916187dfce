"""The Elasticsearch pod's user set-up (deploy/kubernetes/base/elasticsearch: prepare-config.sh and
roles.yml), on the real Elasticsearch the other tests use (`.ci/elasticsearch.sh`).

prepare-config.sh runs with the server's own distribution (its `elasticsearch-users`), as the
init container runs it in Elasticsearch's image. The users and the role it produces are then added
to the running server's file realm, which reloads them, and the collector runs as that user: it
must be able to do its whole job (install its index template, create the daily index, index) and
no more (it cannot read the flows or delete an index). Kibana's user must get kibana_system.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from elasticsearch import AuthenticationException, AuthorizationException, Elasticsearch
from elasticsearch_server import require_es, wait_until

from ipfix_antrea import cli

pytestmark = pytest.mark.timeout(180)
REPO = Path(__file__).resolve().parent.parent
SETUP = REPO / "deploy/kubernetes/base/elasticsearch"
SAMPLE = REPO / "ipfix_antrea/data/sample-flow-aggregator.ipfix"
PASSWORDS = {"kibana-server": "kibana-password-for-tests", "ipfix-collect": "collector-password-for-tests"}
FILES = ("users", "users_roles", "roles.yml")


def distribution() -> tuple[Path, Path, str]:
    """(the server's Elasticsearch home, its configuration directory, a JDK for its tools)."""
    run_dir, version = os.environ.get("IPFIX_ES_RUN_DIR"), os.environ.get("IPFIX_ES_VERSION")
    if not run_dir or not version:
        pytest.skip("the server's files are unknown: IPFIX_ES_RUN_DIR/IPFIX_ES_VERSION unset "
                    "(eval \"$(.ci/elasticsearch.sh env)\")")
    java = subprocess.run(["bash", "-c", "source .ci/elasticsearch.sh && es_java_home"], cwd=REPO,
                          capture_output=True, text=True, check=True).stdout.strip()
    return Path(run_dir) / f"elasticsearch-{version}", Path(run_dir) / "config", java


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The configuration directory prepare-config.sh makes, and the server it was installed in."""
    server = require_es()
    home, server_config, java = distribution()
    config = tmp_path_factory.mktemp("config")
    env = dict(os.environ, ES_HOME=str(home), CONFIG_DIR=str(config), SETUP_DIR=str(SETUP),
               ES_JAVA_HOME=str(java), KIBANA_PASSWORD=PASSWORDS["kibana-server"],
               COLLECTOR_PASSWORD=PASSWORDS["ipfix-collect"])
    proc = subprocess.run(["/bin/sh", str(SETUP / "prepare-config.sh")], env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = {name: (server_config / name).read_bytes() for name in FILES if (server_config / name).exists()}
    try:
        for name in FILES:  # add ours to the server's file realm; it reloads changed files
            with open(server_config / name, "ab") as f:
                f.write(b"\n" + (config / name).read_bytes())
        yield config, server
    finally:
        for name in FILES:
            if name in saved:
                (server_config / name).write_bytes(saved[name])


def client(server, user: str) -> Elasticsearch:
    return Elasticsearch(server.url, basic_auth=(user, PASSWORDS[user]), request_timeout=30)


def authenticated(server, user: str) -> dict | None:
    try:
        with client(server, user) as es:
            return es.security.authenticate().body
    except AuthenticationException:
        return None


def test_it_copies_the_distribution_config_and_adds_two_users(prepared):
    config, _ = prepared
    assert (config / "elasticsearch.yml").is_file() and (config / "jvm.options").is_file()
    users = {line.split(":", 1)[0] for line in (config / "users").read_text().splitlines() if line}
    assert users == {"kibana-server", "ipfix-collect"}
    roles = dict(line.split(":", 1) for line in (config / "users_roles").read_text().splitlines() if line)
    assert roles == {"kibana_system": "kibana-server", "ipfix_collect": "ipfix-collect"}


def test_kibanas_user_signs_in_with_the_kibana_system_role(prepared):
    _, server = prepared
    assert wait_until(lambda: authenticated(server, "kibana-server") is not None, timeout=60), \
        "the server never accepted kibana-server (file realm not reloaded?)"
    assert authenticated(server, "kibana-server")["roles"] == ["kibana_system"]


def test_the_collectors_user_can_do_the_collectors_whole_job_and_no_more(prepared):
    _, server = prepared
    assert wait_until(lambda: (authenticated(server, "ipfix-collect") or {}).get("roles") == ["ipfix_collect"],
                      timeout=60), "ipfix-collect never got its role"
    prefix = f"flow-deploy-{os.getpid()}"
    try:
        status = cli.main(["--input", f"file:{SAMPLE}", "--sink", f"elasticsearch:{server.url}",
                           "--es-index", f"{prefix}-%Y.%m.%d", "--es-template-name", prefix,
                           "--es-dead-letter", os.devnull, "--quiet"],
                          environ={"IPFIX_COLLECT_ES_USER": "ipfix-collect",
                                   "IPFIX_COLLECT_ES_PASSWORD": PASSWORDS["ipfix-collect"]})
        assert status == cli.EXIT_OK
        with server.client() as es:
            es.indices.refresh(index=f"{prefix}-*")
            assert es.count(index=f"{prefix}-*")["count"] > 0
        with client(server, "ipfix-collect") as es, pytest.raises(AuthorizationException):
            es.search(index=f"{prefix}-*")
        with client(server, "ipfix-collect") as es, pytest.raises(AuthorizationException):
            es.indices.delete(index=f"{prefix}-*")
    finally:
        with server.client() as es:
            es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
            es.options(ignore_status=404).indices.delete_index_template(name=prefix)


def test_a_missing_password_stops_the_init_container_naming_the_secret_key(tmp_path):
    env = {"PATH": os.environ["PATH"], "ES_HOME": str(tmp_path), "CONFIG_DIR": str(tmp_path),
           "KIBANA_PASSWORD": PASSWORDS["kibana-server"]}
    proc = subprocess.run(["/bin/sh", str(SETUP / "prepare-config.sh")], env=env, capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode != 0
    assert "COLLECTOR_PASSWORD" in proc.stderr and "key ipfix-collect" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing half-prepared
