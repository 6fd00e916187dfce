"""`ipfix-collect setup`: the index template into the real Elasticsearch, the saved objects into
Kibana (a recording stand-in: Kibana cannot run here, see kibana_server.py)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time

import pytest
from elasticsearch_server import FaultProxy, cleanup
from kibana_server import FakeKibana

from ipfix_antrea.cli import EXIT_OK, EXIT_SETUP_FAILED, main
from ipfix_antrea.kibana import KibanaClient
from ipfix_antrea.provision import data_view_ids, import_dashboards

pytestmark = pytest.mark.timeout(120)



@pytest.fixture
def dashboards(tmp_path, prefix):
    """A small Kibana export: a data view over the test's indices and a dashboard."""
    path = tmp_path / "objects.ndjson"
    objects = [
        {"type": "index-pattern", "id": "flows-view",
         "attributes": {"title": f"{prefix}-*", "timeFieldName": "@timestamp"}},
        {"type": "dashboard", "id": "overview", "attributes": {"title": "Overview", "panelsJSON": "[]"},
         "references": []},
    ]
    path.write_text("".join(json.dumps(o) + "\n" for o in objects))
    return path


def setup(server, prefix, *extra, env=None) -> int:
    return main(["setup", "--elasticsearch", server.url, "--es-user", server.user, "--es-password",
                 server.password, "--es-index", f"{prefix}-%Y.%m.%d", "--es-template-name", prefix, *extra],
                environ=env or {})


def installed_template(server, prefix) -> dict:
    with server.client() as es:
        (found,) = es.indices.get_index_template(name=prefix)["index_templates"]
    return found["index_template"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------------------------
# Elasticsearch


def test_setup_installs_the_index_template_with_the_derived_fields(server, prefix):
    assert setup(server, prefix) == EXIT_OK
    template = installed_template(server, prefix)
    assert template["index_patterns"] == [f"{prefix}-*"]
    ipfix = template["template"]["mappings"]["properties"]["ipfix"]["properties"]
    assert ipfix["flowKey"]["fields"]["keyword"]["type"] == "keyword"
    assert ipfix["sourceIP"]["type"] == "ip"


def test_setup_again_replaces_the_template_and_succeeds(server, prefix):
    assert setup(server, prefix) == EXIT_OK
    first = installed_template(server, prefix)
    assert setup(server, prefix) == EXIT_OK
    assert installed_template(server, prefix) == first


def test_setup_with_enrich_none_maps_no_derived_fields(server, prefix):
    assert setup(server, prefix, "--enrich", "none") == EXIT_OK
    ipfix = installed_template(server, prefix)["template"]["mappings"]["properties"]["ipfix"]["properties"]
    assert set(ipfix) == {"version", "flowset_id"}


def test_setup_names_an_elasticsearch_it_cannot_reach(capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert main(["setup", "--elasticsearch", url], environ={}) == EXIT_SETUP_FAILED
    err = capsys.readouterr().err
    assert f"reaching Elasticsearch at {url} failed" in err and "ConnectionError" in err


def test_setup_fails_at_once_when_elasticsearch_refuses_the_credentials(server, prefix, capsys):
    status = main(["setup", "--elasticsearch", server.url, "--es-user", server.user, "--es-password",
                   "wrong", "--wait", "60", "--es-template-name", prefix], environ={})
    assert status == EXIT_SETUP_FAILED
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "retrying" not in err


def test_setup_waits_for_an_elasticsearch_that_is_not_up_yet(server, prefix):
    port = free_port()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(main(
        ["setup", "--elasticsearch", f"http://127.0.0.1:{port}", "--wait", "60",
         "--es-index", f"{prefix}-%Y.%m.%d", "--es-template-name", prefix], environ={})))
    runner.start()
    time.sleep(1.0)  # setup has found nothing listening by now
    with FaultProxy(server.url, server.auth, port=port):
        runner.join(60)
    assert result == [EXIT_OK]
    assert installed_template(server, prefix)["index_patterns"] == [f"{prefix}-*"]


def test_setup_reads_its_flags_from_the_environment(server, prefix):
    env = {"IPFIX_COLLECT_ELASTICSEARCH": server.url, "IPFIX_COLLECT_ES_USER": server.user,
           "IPFIX_COLLECT_ES_PASSWORD": server.password, "IPFIX_COLLECT_ES_TEMPLATE_NAME": prefix,
           "IPFIX_COLLECT_ES_INDEX": f"{prefix}-%Y.%m.%d"}
    assert main(["setup"], environ=env) == EXIT_OK
    assert installed_template(server, prefix)["index_patterns"] == [f"{prefix}-*"]


def test_setup_without_an_elasticsearch_url_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["setup"], environ={})
    assert exit_.value.code == 2


def test_setup_refuses_a_bad_index_pattern(capsys):
    assert main(["setup", "--elasticsearch", "http://127.0.0.1:9", "--es-index", "Flows-%Y"], environ={}) == 2
    assert "not a valid index name" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# Kibana


def test_setup_imports_the_saved_objects_with_overwrite_and_the_xsrf_header(server, prefix, dashboards):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        assert setup(server, prefix, "--kibana", kibana.url, "--dashboards", str(dashboards)) == EXIT_OK
    (upload,) = [r for r in kibana.requests if r.path.startswith("/api/saved_objects/_import")]
    assert upload.path == "/api/saved_objects/_import?overwrite=true"
    assert upload.headers["kbn-xsrf"]
    assert [o["id"] for o in kibana.imported] == ["flows-view", "overview"]


def test_setup_makes_the_data_view_the_default_unless_one_is_set(server, prefix, dashboards):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        setup(server, prefix, "--kibana", kibana.url, "--dashboards", str(dashboards))
    (default,) = [r for r in kibana.requests if r.path == "/api/data_views/default"]
    assert json.loads(default.body) == {"data_view_id": "flows-view", "force": False}


def test_kibana_gets_an_api_key_given_as_id_and_key_in_its_encoded_form(dashboards):
    with FakeKibana(api_key=base64.b64encode(b"key-id:secret").decode()) as kibana:
        client = KibanaClient(kibana.url, api_key="key-id:secret")
        result = import_dashboards(client, dashboards.read_bytes(), wait=0)
    assert result.success_count == 2


def test_setup_logs_in_to_kibana_with_the_elasticsearch_user(server, prefix, dashboards):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        assert setup(server, prefix, "--kibana", kibana.url, "--dashboards", str(dashboards)) == EXIT_OK
    token = base64.b64encode(f"{server.user}:{server.password}".encode()).decode()
    assert {r.headers["authorization"] for r in kibana.requests} == {f"Basic {token}"}


def test_setup_imports_into_a_kibana_space(server, prefix, dashboards):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        assert setup(server, prefix, "--kibana", kibana.url, "--kibana-space", "flows",
                     "--dashboards", str(dashboards)) == EXIT_OK
    assert "POST /s/flows/api/saved_objects/_import?overwrite=true" in kibana.paths()
    assert "GET /api/status" in kibana.paths()  # the status is not per space


def test_setup_waits_while_kibana_is_starting(server, prefix, dashboards):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        kibana.behaviour.statuses = [503, "degraded", "available"]
        assert setup(server, prefix, "--kibana", kibana.url, "--wait", "30", "--dashboards", str(dashboards)) == EXIT_OK
    assert kibana.paths()[:3] == ["GET /api/status"] * 3


def test_setup_without_wait_fails_on_a_kibana_that_is_starting(server, prefix, dashboards, capsys):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        kibana.behaviour.statuses = [503]
        assert setup(server, prefix, "--kibana", kibana.url, "--dashboards", str(dashboards)) == EXIT_SETUP_FAILED
    assert "HTTP 503" in capsys.readouterr().err


def test_setup_reports_the_objects_kibana_refuses(server, prefix, dashboards, capsys):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        kibana.behaviour.import_errors = [{"id": "overview", "type": "dashboard", "title": "Overview",
                                           "error": {"type": "unsupported_type"}}]
        assert setup(server, prefix, "--kibana", kibana.url, "--dashboards", str(dashboards)) == EXIT_SETUP_FAILED
    err = capsys.readouterr().err
    assert "Kibana refused 1 of the objects (1 imported)" in err
    assert "dashboard overview 'Overview': unsupported_type" in err


def test_setup_fails_at_once_when_kibana_refuses_the_credentials(server, prefix, dashboards, capsys):
    with FakeKibana(user="someone", password="else") as kibana:
        assert setup(server, prefix, "--kibana", kibana.url, "--wait", "60",
                     "--dashboards", str(dashboards)) == EXIT_SETUP_FAILED
    assert "HTTP 401" in capsys.readouterr().err
    assert kibana.paths() == ["GET /api/status"]


def test_setup_names_a_kibana_it_cannot_reach(server, prefix, dashboards, capsys):
    url = f"http://127.0.0.1:{free_port()}"
    assert setup(server, prefix, "--kibana", url, "--dashboards", str(dashboards)) == EXIT_SETUP_FAILED
    assert f"cannot reach Kibana at {url}" in capsys.readouterr().err


def test_setup_warns_when_the_dashboards_read_other_indices(server, prefix, dashboards, capsys):
    with FakeKibana(user=server.user, password=server.password) as kibana:
        main(["setup", "--elasticsearch", server.url, "--es-user", server.user, "--es-password", server.password,
              "--es-template-name", prefix, "--es-index", f"{prefix}x-%Y.%m.%d", "--kibana", kibana.url,
              "--dashboards", str(dashboards)], environ={})
    cleanup(server, f"{prefix}x")
    assert f"the dashboards read the data view {prefix}-*, but documents go to {prefix}x-*" in capsys.readouterr().err


def test_data_view_ids_reads_the_index_patterns_of_an_export(dashboards):
    assert data_view_ids(dashboards.read_bytes())[0][0] == "flows-view"
