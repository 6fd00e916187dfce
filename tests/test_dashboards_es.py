"""The dashboards against a real Elasticsearch, on documents the real collector wrote.

The simulated cluster (benchmarks/antrea_cluster.py) goes through ``ipfix-collect --enrich
antrea --sink elasticsearch:...`` into this module's own indices; then, for ipfix-antrea's
dashboards and for Antrea's own v0.9 and v1.6 files:

* every field a saved object reads exists (``_field_caps``) with a type its use needs, and holds
  data;
* every panel's query, sent as Kibana would (tests/kibana_queries.py), returns data;
* every Vega spec renders headless with the real responses, the Sankeys link what the data links,
  and each dashboard renders to a picture (tests/dashboard_preview.py; these need node, the
  tests/vega packages and rsvg-convert).

Set IPFIX_ANTREA_DASHBOARD_PICTURES=DIR to keep the pictures (docs/img holds the committed ones).
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import pytest
from dashboard_preview import dashboard_picture, load_cluster, picture_name, render_vega
from elasticsearch_server import cleanup, require_es, unique_prefix
from kibana_fields import AGGREGATABLE, ANY, DATE, NUMERIC, field_uses, load_ndjson, vis_state
from kibana_queries import Context, PanelResult, run

from benchmarks.antrea_cluster import PODS, connections
from ipfix_antrea.dashboards import saved_objects

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "ipfix-antrea": None,
    "antrea-v0.9": ROOT / "tests" / "data" / "antrea-elk" / "kibana-v0.9.ndjson",
    "antrea-v1.6": ROOT / "tests" / "data" / "antrea-elk" / "kibana-v1.6.ndjson",
}
NUMERIC_TYPES = {"long", "integer", "short", "byte", "double", "float", "half_float", "scaled_float",
                 "unsigned_long"}
DATE_TYPES = {"date", "date_nanos"}


def objects_of(name: str) -> list[dict]:
    return saved_objects() if FILES[name] is None else load_ndjson(FILES[name])


class Loaded:
    def __init__(self, server, prefix: str, time_range) -> None:
        self.server, self.prefix, self.time_range = server, prefix, time_range
        self.es = server.client()
        self.index = f"{prefix}-*"
        self._caps = None

    def context(self, objects: list[dict], filters=()) -> Context:
        views = {o["id"]: o["attributes"]["timeFieldName"] for o in objects if o.get("type") == "index-pattern"}
        return Context(self.es, self.index, self.time_range, views, list(filters))

    @property
    def caps(self) -> dict:
        if self._caps is None:
            self._caps = self.es.field_caps(index=self.index, fields="*").body["fields"]
        return self._caps


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    server = require_es()
    prefix = unique_prefix("dash")
    try:
        time_range = load_cluster(server.url, server.user, server.password, prefix,
                                  tmp_path_factory.mktemp("cluster"))
        loaded = Loaded(server, prefix, time_range)
        loaded.es.indices.refresh(index=loaded.index)
        yield loaded
    finally:
        cleanup(server, prefix)


def _usable(caps: dict, need: str) -> bool:
    types = set(caps)
    if need == DATE:
        return types <= DATE_TYPES
    if need == NUMERIC:
        return types <= NUMERIC_TYPES
    if need == AGGREGATABLE:
        return all(c["aggregatable"] for c in caps.values())
    return need == ANY


@pytest.mark.parametrize("name", FILES)
def test_every_field_read_exists_with_a_usable_type(loaded, name):
    problems = []
    for use in field_uses(objects_of(name)):
        caps = loaded.caps.get(use.field)
        if caps is None:
            problems.append(f"{use.title}: {use.field} ({use.where}) is not in the index")
        elif not _usable(caps, use.need):
            problems.append(f"{use.title}: {use.field} ({use.where}) needs {use.need}, is {sorted(caps)}")
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("name", FILES)
def test_every_field_read_holds_data(loaded, name):
    empty = []
    for fld in sorted({u.field for u in field_uses(objects_of(name))}):
        count = loaded.es.count(index=loaded.index, query={"exists": {"field": fld}})["count"]
        if count == 0:
            empty.append(fld)
    assert not empty


def _panels(objects: list[dict]) -> list[dict]:
    from kibana_fields import dashboard_controls

    return [o for o in objects if o.get("type") in ("visualization", "search")
            or (o.get("type") == "dashboard" and dashboard_controls(o))]


@pytest.mark.parametrize("name", FILES)
def test_every_panel_query_returns_data(loaded, name):
    objects = objects_of(name)
    ctx = loaded.context(objects)
    empty = [o["attributes"]["title"] for o in _panels(objects) if run(o, ctx).empty]
    assert not empty


def _home_client_pods(loaded, enabled: bool) -> set:
    objects = saved_objects()
    home = next(o for o in objects if o["attributes"]["title"] == "ipfix-antrea: Home")
    from kibana_queries import dashboard_filters

    filters = [dict(f, meta=dict(f["meta"], disabled=not enabled)) for f in dashboard_filters(home)]
    talkers = next(o for o in objects if o["attributes"]["title"] == "ipfix-antrea: Top talkers: client Pods")
    return {keys[0] for keys, _ in run(talkers, loaded.context(objects, filters)).rows}


def test_home_filter_hides_infrastructure_namespaces_until_disabled(loaded):
    collector_feed = "flow-aggregator-6c9b7d8f5-zw4xk"  # sends to antreaflow
    assert collector_feed not in _home_client_pods(loaded, enabled=True)
    assert collector_feed in _home_client_pods(loaded, enabled=False)


def test_throughput_panels_show_bits_per_second_of_the_delta_counters(loaded):
    """Summing rate x bucket length over the buckets gives back every octet, times 8: the rate is
    right however many records of a flow fall in a bucket."""
    objects = saved_objects()
    panel = next(o for o in objects if o["attributes"]["title"] == "ipfix-antrea: Throughput")
    result = run(panel, loaded.context(objects))
    points = next(p for label, p in result.series if label == "client → server")
    bucket = (points[1][0] - points[0][0]) / 1000
    octets = loaded.es.search(index=loaded.index, size=0, aggs={"o": {"sum": {"field": "ipfix.octetDeltaCount"}}})
    assert sum(v or 0 for _, v in points) * bucket / 8 == pytest.approx(octets["aggregations"]["o"]["value"])


@pytest.mark.parametrize("name", FILES)
def test_every_vega_spec_renders_with_its_real_data(loaded, name):
    objects = objects_of(name)
    vegas = [o for o in objects if o.get("type") == "visualization" and vis_state(o)["type"] == "vega"]
    results: list[PanelResult] = [run(o, loaded.context(objects)) for o in vegas]
    rendered = render_vega([{"spec": dict(r.vega, width=900, height=400), "data": []} for r in results])
    for o, r in zip(vegas, rendered, strict=True):
        assert "error" not in r, f"{o['attributes']['title']}: {r.get('error')}"
        assert r["svg"].count("<path") > 1, o["attributes"]["title"]


def _sankey_links(loaded, title: str) -> set[tuple[str, str]]:
    objects = saved_objects()
    obj = next(o for o in objects if o["attributes"]["title"] == title)
    result = run(obj, loaded.context(objects))
    (rendered,) = render_vega([{"spec": dict(result.vega, width=900, height=400), "data": ["links"]}])
    assert "error" not in rendered, rendered.get("error")
    return {(link["source"], link["target"]) for link in rendered["data"]["links"]}


def test_pod_to_pod_sankey_links_every_pod_pair_of_the_data_and_no_other(loaded):
    expected = set()
    for c in connections():
        src, dst = PODS.get(c.src), PODS.get(c.dst)
        if src and dst:
            expected.add((f"{src.namespace}/{src.name}", f"{dst.namespace}/{dst.name}"))
    assert _sankey_links(loaded, "ipfix-antrea: Pod-to-Pod bytes") == expected


def test_policy_sankey_links_egress_to_ingress_policies_of_the_data(loaded):
    from benchmarks.antrea_cluster import POLICIES

    def label(policy: str) -> str:
        if not policy:
            return "none"
        namespace = POLICIES[policy][0]
        return f"{namespace}/{policy}" if namespace else policy

    expected = {(label(c.egress[0]), label(c.ingress[0])) for c in connections() if c.egress[0] or c.ingress[0]}
    assert _sankey_links(loaded, "ipfix-antrea: Egress → ingress policy bytes") == expected


def test_each_dashboard_renders_to_a_picture_of_its_panels(loaded, tmp_path):
    out = Path(os.environ.get("IPFIX_ANTREA_DASHBOARD_PICTURES") or tmp_path)
    out.mkdir(parents=True, exist_ok=True)
    objects = saved_objects()
    by_id = {o["id"]: o for o in objects}
    drawn = defaultdict(list)
    for board in (o for o in objects if o["type"] == "dashboard"):
        png = out / picture_name(board)
        panels = dashboard_picture(board, by_id, loaded.context(objects), png)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000
        drawn[board["attributes"]["title"]] = [t for t, (result, _) in panels.items() if not result.empty]
    assert all(len(titles) >= 3 for titles in drawn.values()), drawn
