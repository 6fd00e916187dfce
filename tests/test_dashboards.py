"""The shipped Kibana file, without a server: generated, consistent, importable in shape.

The checks against a real Elasticsearch (fields, queries, pictures) are in
test_dashboards_es.py.
"""

from __future__ import annotations

import fnmatch
import json
import re
import uuid
from pathlib import Path

import pytest
from kibana_fields import UnknownSavedObject, dashboard_controls, field_uses, load_ndjson, vega_spec, vis_state

from benchmarks.antrea_cluster import FLOWS, WINDOW, cluster_records
from ipfix_antrea import default_registry
from ipfix_antrea.dashboards import KIBANA_NDJSON, build, saved_objects
from ipfix_antrea.documents import AntreaTransform, DocumentBuilder

ROOT = Path(__file__).resolve().parent.parent
ANTREA_FILES = {v: ROOT / "tests" / "data" / "antrea-elk" / f"kibana-{v}.ndjson" for v in ("v0.9", "v1.6")}
# What Kibana 8.x's dashboard schema (model version 1) accepts; it refuses unknown attributes.
DASHBOARD_ATTRIBUTES = {"title", "description", "kibanaSavedObjectMeta", "timeRestore", "timeFrom", "timeTo",
                        "refreshInterval", "controlGroupInput", "panelsJSON", "optionsJSON", "hits", "version"}
CONTROL_GROUP_ATTRIBUTES = {"panelsJSON", "controlStyle", "chainingSystem", "ignoreParentSettingsJSON"}
# The fields the Antrea transform (--enrich antrea) adds under ipfix. (docs/visualization.md).
# What the document stage writes besides the elements: the envelope and the Antrea transform's fields.
DERIVED_FIELDS = {f.path.removeprefix("ipfix.") for f in DocumentBuilder([AntreaTransform()]).fields}


def test_committed_file_is_the_generators_output():
    assert KIBANA_NDJSON.read_text(encoding="utf-8") == build.render(), (
        "run: python -m ipfix_antrea.dashboards.build")


def test_every_id_is_unique_and_a_uuid5_of_the_objects_kind_and_title():
    objects = saved_objects()
    assert len({o["id"] for o in objects}) == len(objects)
    for o in objects:
        assert uuid.UUID(o["id"]).version == 5
        assert o["id"] == build.object_id(o["type"], o["attributes"]["title"])


@pytest.mark.parametrize("name", ["ipfix-antrea", *ANTREA_FILES])
def test_every_reference_names_an_object_in_the_file(name):
    objects = saved_objects() if name == "ipfix-antrea" else load_ndjson(ANTREA_FILES[name])
    ids = {o["id"] for o in objects if "id" in o}
    for o in objects:
        for ref in o.get("references", []):
            assert ref["id"] in ids, f"{o['attributes']['title']}: {ref['name']} -> {ref['id']}"


@pytest.mark.parametrize("name", ["ipfix-antrea", *ANTREA_FILES])
def test_every_dashboard_panel_and_reference_name_resolves(name):
    objects = saved_objects() if name == "ipfix-antrea" else load_ndjson(ANTREA_FILES[name])
    by_id = {o["id"]: o for o in objects if "id" in o}
    for board in (o for o in objects if o.get("type") == "dashboard"):
        refs = {r["name"]: r for r in board["references"]}
        for panel in json.loads(board["attributes"]["panelsJSON"]):
            name_ = panel["panelRefName"]
            ref = refs.get(f"{panel['panelIndex']}:{name_}") or refs[name_]  # 8.x form, or 7.x's
            assert by_id[ref["id"]]["type"] == ref["type"]
        for control in dashboard_controls(board):
            assert refs[f"controlGroup_{control['id']}:optionsListDataView"]["type"] == "index-pattern"


def test_dashboards_have_only_the_attributes_kibana_8_accepts():
    for board in (o for o in saved_objects() if o["type"] == "dashboard"):
        assert set(board["attributes"]) <= DASHBOARD_ATTRIBUTES
        assert set(board["attributes"].get("controlGroupInput", {})) <= CONTROL_GROUP_ATTRIBUTES


def test_objects_carry_migration_versions_every_supported_kibana_knows():
    for o in saved_objects():
        assert o["coreMigrationVersion"] == "8.8.0"
        assert o["typeMigrationVersion"] in ("8.0.0", "8.7.0")


def test_the_panels_use_only_types_that_import_in_kibana_8_and_9():
    kinds = {vis_state(o)["type"] for o in saved_objects() if o["type"] == "visualization"}
    assert kinds <= {"markdown", "pie", "horizontal_bar", "metric", "table", "metrics", "vega"}
    assert {o["type"] for o in saved_objects()} == {"index-pattern", "visualization", "search", "dashboard"}


def test_every_dashboard_has_the_navigation_panel_linking_all_dashboards():
    objects = saved_objects()
    boards = [o for o in objects if o["type"] == "dashboard"]
    nav = next(o for o in objects if o["attributes"]["title"] == "ipfix-antrea: Navigation")
    text = vis_state(nav)["params"]["markdown"]
    assert sorted(re.findall(r"#/view/([0-9a-f-]+)", text)) == sorted(b["id"] for b in boards)
    for board in boards:
        assert nav["id"] in {r["id"] for r in board["references"]}


def test_dashboards_are_the_ones_the_issue_asks_for():
    titles = [o["attributes"]["title"] for o in saved_objects() if o["type"] == "dashboard"]
    assert titles == [f"ipfix-antrea: {n}" for n in (
        "Home", "Overview", "Flows", "Flow Records", "Pod-to-Service", "Pod-to-External", "Node Throughput",
        "Network Policy")]


def test_home_hides_infrastructure_namespaces_with_a_filter_pill_not_a_query():
    home = next(o for o in saved_objects() if o["attributes"]["title"] == "ipfix-antrea: Home")
    source = json.loads(home["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"])
    assert source["query"]["query"] == ""
    (pill,) = source["filter"]
    assert pill["meta"]["negate"] is True and pill["meta"]["disabled"] is False
    assert "kube-system" in json.dumps(pill["query"]) and "antreaflow" in json.dumps(pill["query"])


def test_sankeys_are_vega_specs_that_query_elasticsearch_in_context():
    sankeys = [o for o in saved_objects() if o["type"] == "visualization" and vis_state(o)["type"] == "vega"]
    assert len(sankeys) >= 6
    for o in sankeys:
        data = vega_spec(vis_state(o))["data"][0]
        assert data["url"]["%context%"] is True and data["url"]["%timefield%"] == "@timestamp"
        assert data["url"]["index"] == "flow-*"


def test_every_field_the_dashboards_read_is_an_element_or_a_field_the_document_stage_writes():
    registry_names = {ie.name for ie in default_registry()}
    for use in field_uses(saved_objects()):
        name = use.field.removeprefix("ipfix.").removesuffix(".keyword")
        assert name in registry_names or name in DERIVED_FIELDS, use


@pytest.mark.parametrize("broken, message", [
    ({"type": "lens", "id": "x", "attributes": {"title": "t"}}, "saved object type 'lens'"),
    ({"type": "visualization", "id": "x", "attributes": {"title": "t", "visState": json.dumps(
        {"type": "tagcloud", "aggs": [], "params": {}})}}, "visualization type 'tagcloud'"),
    ({"type": "visualization", "id": "x", "attributes": {"title": "t", "visState": json.dumps(
        {"type": "pie", "aggs": [{"type": "percentiles", "schema": "metric", "params": {"field": "f"}}],
         "params": {}}), "kibanaSavedObjectMeta": {"searchSourceJSON": "{}"}}}, "aggregation 'percentiles'"),
    ({"type": "visualization", "id": "x", "attributes": {"title": "t", "visState": json.dumps(
        {"type": "metrics", "aggs": [], "params": {"type": "timeseries", "series": [
            {"metrics": [{"type": "positive_rate", "field": "f"}]}]}})}}, "TSVB metric 'positive_rate'"),
    ({"type": "visualization", "id": "x", "attributes": {"title": "t", "visState": json.dumps(
        {"type": "vega", "aggs": [], "params": {"spec": "{data: [{url: {index: 'i', body: {aggs: "
                                                        "{a: {percentiles: {field: 'f'}}}}}}]}"}})}},
     "Vega aggregation 'percentiles'"),
])
def test_field_extractor_refuses_what_it_does_not_understand(broken, message):
    with pytest.raises(UnknownSavedObject, match=re.escape(message)):
        field_uses([broken])


def test_package_data_ships_the_kibana_file():
    import tomllib

    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    relative = KIBANA_NDJSON.relative_to(ROOT / "ipfix_antrea").as_posix()
    assert any(fnmatch.fnmatch(relative, p) for p in patterns["ipfix_antrea"])


def test_antrea_files_are_the_ones_antrea_shipped():
    readme = (ROOT / "tests" / "data" / "antrea-elk" / "README.md").read_text()
    for commit in ("fab27de19", "7a793898f"):
        assert commit in readme
    assert "Apache-2.0" in readme


def test_simulated_cluster_covers_every_panel():
    records = [r for _, _, r in cluster_records()]
    assert {r["flowType"] for r in records} == {1, 2, 3, 4}
    assert {r["sourcePodNamespace"] for r in records} >= {"kube-system", "storefront", "payments"}
    assert {r["destinationPodNamespace"] for r in records} >= {"kube-system", "antreaflow"}
    assert {r["ingressNetworkPolicyRuleAction"] for r in records} >= {1, 2}
    assert {r["egressNetworkPolicyRuleAction"] for r in records} >= {1, 3}
    assert {r["ingressNetworkPolicyType"] for r in records} >= {1, 2}
    assert {r["egressNetworkPolicyType"] for r in records} >= {3}
    assert any("sourceIPv6Address" in r for r in records) and any("sourceIPv4Address" in r for r in records)
    assert all(WINDOW[0] <= r["flowEndSeconds"] <= WINDOW[1] for r in records)
    per_flow = {}
    for r in records:
        per_flow.setdefault((r["sourcePodName"], r["sourceTransportPort"]), []).append(r)
    assert max(len(v) for v in per_flow.values()) == 30  # a record a minute for half an hour
    assert len(FLOWS) > 10
