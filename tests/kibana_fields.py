"""Which document fields a file of Kibana saved objects reads, and how.

`field_uses(objects)` walks every saved object and returns a `FieldUse` per field reference:
the field, what the query needs of it (`AGGREGATABLE` for terms, cardinality, composite sources,
controls and sort; `NUMERIC` for sums and averages; `DATE` for time fields and date histograms;
`ANY` for saved-search columns and the fields of filter queries) and where it was found. The
checks compare those needs with Elasticsearch's `_field_caps` after loading real documents.

It understands the saved-object types and visualization types that ipfix-antrea's dashboards
and Antrea's v0.9 and v1.6 files use, and raises `UnknownSavedObject` on anything else (a new
visualization type, an aggregation, a TSVB metric, a Vega query key it does not know), so that
a dashboard cannot use a field the checks never look at.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import hjson

AGGREGATABLE = "aggregatable"
NUMERIC = "numeric"
DATE = "date"
ANY = "any"


class UnknownSavedObject(ValueError):
    """A saved object, visualization, aggregation or query of a kind this module does not read."""


@dataclass(frozen=True)
class FieldUse:
    field: str
    need: str  # AGGREGATABLE, NUMERIC, DATE or ANY
    object_id: str
    title: str
    where: str  # e.g. "terms aggregation", "TSVB series time field"


# Aggregation-based visualizations (visState.aggs): what each aggregation type needs of its field.
AGG_NEEDS = {
    "count": None, "sum": NUMERIC, "avg": NUMERIC, "min": NUMERIC, "max": NUMERIC,
    "cardinality": AGGREGATABLE, "terms": AGGREGATABLE, "date_histogram": DATE,
    "histogram": NUMERIC, "top_hits": ANY,
}
AGG_VIS_TYPES = {"pie", "horizontal_bar", "histogram", "line", "area", "metric", "table", "heatmap"}
# TSVB metrics: those with a field, and those computed from other metrics.
TSVB_FIELD_METRICS = {"sum": NUMERIC, "avg": NUMERIC, "min": NUMERIC, "max": NUMERIC,
                      "cardinality": AGGREGATABLE, "count": None}
TSVB_DERIVED_METRICS = {"calculation", "math", "cumulative_sum"}
TSVB_PANEL_TYPES = {"timeseries", "markdown", "metric", "top_n", "table"}
# Elasticsearch aggregations inside Vega query bodies.
VEGA_AGGS = {"terms": AGGREGATABLE, "cardinality": AGGREGATABLE, "date_histogram": DATE,
             "histogram": NUMERIC, "sum": NUMERIC, "avg": NUMERIC, "min": NUMERIC, "max": NUMERIC}
VEGA_BUCKET_WRAPPERS = {"filter", "composite"}
# Query DSL clauses: (field-keyed leaf queries) and compound ones.
LEAF_QUERIES = {"term", "terms", "match", "match_phrase", "wildcard", "prefix", "range", "exists"}
COMPOUND_QUERIES = {"bool", "match_all"}
VEGA_URL_KEYS = {"index", "body", "%context%", "%timefield%"}


def vis_state(obj: dict) -> dict:
    return json.loads(obj["attributes"]["visState"])


def search_source(obj: dict) -> dict:
    meta = obj["attributes"].get("kibanaSavedObjectMeta") or {}
    return json.loads(meta.get("searchSourceJSON") or "{}")


def vega_spec(state: dict) -> dict:
    """A Vega visualization's spec, read as Kibana reads it: HJSON (comments, trailing commas
    and unquoted strings are allowed)."""
    return hjson.loads(state["params"]["spec"])


def vega_queries(spec: dict) -> Iterator[tuple[dict, dict]]:
    """(data entry, url) of each data entry of a Vega spec (and its nested groups) that queries
    Elasticsearch."""
    def walk(node):
        if isinstance(node, dict):
            url = node.get("url")
            if isinstance(url, dict):
                unknown = set(url) - VEGA_URL_KEYS
                if unknown:
                    raise UnknownSavedObject(f"Vega url keys {sorted(unknown)}")
                yield node, url
            for key, value in node.items():
                if key != "url":
                    yield from walk(value)
        elif isinstance(node, list):
            for item in node:
                yield from walk(item)
    yield from walk(spec)


def query_fields(query: dict) -> Iterator[str]:
    """The fields an Elasticsearch query reads."""
    if not isinstance(query, dict):
        raise UnknownSavedObject(f"query {query!r}")
    for kind, body in query.items():
        if kind in LEAF_QUERIES:
            if kind == "exists":
                yield body["field"]
            else:
                yield from (k for k in body if k not in ("boost", "_name"))
        elif kind == "bool":
            for clause in ("must", "filter", "should", "must_not"):
                items = body.get(clause, [])
                for item in items if isinstance(items, list) else [items]:
                    yield from query_fields(item)
        elif kind == "match_all":
            continue
        else:
            raise UnknownSavedObject(f"query clause {kind!r}")


def lucene_fields(query: str) -> Iterator[str]:
    """The fields named in a Lucene query string (``field:value`` terms)."""
    yield from re.findall(r"([A-Za-z_@][\w.@]*):", query)


def _filter_uses(filters: Iterable[dict], obj: dict, title: str) -> Iterator[FieldUse]:
    for f in filters:
        if "query" in f:
            for fld in query_fields(f["query"]):
                yield FieldUse(fld, ANY, obj["id"], title, "filter")
        elif "meta" in f and f["meta"].get("key"):
            yield FieldUse(f["meta"]["key"], ANY, obj["id"], title, "filter")


def _search_source_uses(obj: dict, title: str) -> Iterator[FieldUse]:
    source = search_source(obj)
    query = source.get("query") or {}
    if query.get("language") == "lucene":
        for fld in lucene_fields(query.get("query", "")):
            yield FieldUse(fld, ANY, obj["id"], title, "query")
    elif query.get("query"):
        raise UnknownSavedObject(f"{title}: non-empty {query.get('language')} query")
    yield from _filter_uses(source.get("filter", []), obj, title)


def _agg_uses(obj: dict, title: str, aggs: list[dict]) -> Iterator[FieldUse]:
    for agg in aggs:
        if not agg.get("enabled", True):
            continue
        kind = agg["type"]
        if kind not in AGG_NEEDS:
            raise UnknownSavedObject(f"{title}: aggregation {kind!r}")
        need = AGG_NEEDS[kind]
        if need is not None:
            yield FieldUse(agg["params"]["field"], need, obj["id"], title, f"{kind} aggregation")


def _tsvb_uses(obj: dict, title: str, params: dict) -> Iterator[FieldUse]:
    if params.get("type") not in TSVB_PANEL_TYPES:
        raise UnknownSavedObject(f"{title}: TSVB panel type {params.get('type')!r}")
    if params.get("time_field"):
        yield FieldUse(params["time_field"], DATE, obj["id"], title, "TSVB time field")
    if params.get("pivot_id"):
        yield FieldUse(params["pivot_id"], AGGREGATABLE, obj["id"], title, "TSVB table rows")
    for series in params["series"]:
        if series.get("override_index_pattern") and series.get("series_time_field"):
            yield FieldUse(series["series_time_field"], DATE, obj["id"], title, "TSVB series time field")
        if series.get("split_mode") == "terms" and series.get("terms_field"):
            fields = series["terms_field"]
            for fld in fields if isinstance(fields, list) else [fields]:
                yield FieldUse(fld, AGGREGATABLE, obj["id"], title, "TSVB split")
        flt = series.get("filter") or {}
        if isinstance(flt, dict) and flt.get("query"):
            if flt.get("language") != "lucene":
                raise UnknownSavedObject(f"{title}: TSVB {flt.get('language')} filter")
            for fld in lucene_fields(flt["query"]):
                yield FieldUse(fld, ANY, obj["id"], title, "TSVB series filter")
        for m in series["metrics"]:
            if m["type"] in TSVB_FIELD_METRICS:
                need = TSVB_FIELD_METRICS[m["type"]]
                if need is not None:
                    yield FieldUse(m["field"], need, obj["id"], title, f"TSVB {m['type']}")
            elif m["type"] not in TSVB_DERIVED_METRICS:
                raise UnknownSavedObject(f"{title}: TSVB metric {m['type']!r}")


def _vega_agg_uses(obj: dict, title: str, aggs: dict) -> Iterator[FieldUse]:
    for name, agg in aggs.items():
        kinds = [k for k in agg if k != "aggs"]
        if len(kinds) != 1:
            raise UnknownSavedObject(f"{title}: aggregation {name!r} with {kinds}")
        kind = kinds[0]
        body = agg[kind]
        if kind in VEGA_AGGS:
            yield FieldUse(body["field"], VEGA_AGGS[kind], obj["id"], title, f"Vega {kind}")
        elif kind == "composite":
            for source in body["sources"]:
                for sub in source.values():
                    (sub_kind, sub_body), = sub.items()
                    if sub_kind not in ("terms", "date_histogram", "histogram"):
                        raise UnknownSavedObject(f"{title}: composite source {sub_kind!r}")
                    yield FieldUse(sub_body["field"], VEGA_AGGS[sub_kind], obj["id"], title, "Vega composite source")
        elif kind == "filter":
            for fld in query_fields(body):
                yield FieldUse(fld, ANY, obj["id"], title, "Vega filter aggregation")
        else:
            raise UnknownSavedObject(f"{title}: Vega aggregation {kind!r}")
        yield from _vega_agg_uses(obj, title, agg.get("aggs", {}))


def _vega_uses(obj: dict, title: str, state: dict) -> Iterator[FieldUse]:
    for _data, url in vega_queries(vega_spec(state)):
        if url.get("%timefield%"):
            yield FieldUse(url["%timefield%"], DATE, obj["id"], title, "Vega %timefield%")
        body = url.get("body", {})
        unknown = set(body) - {"size", "aggs", "query"}
        if unknown:
            raise UnknownSavedObject(f"{title}: Vega body keys {sorted(unknown)}")
        if "query" in body:
            for fld in query_fields(body["query"]):
                yield FieldUse(fld, ANY, obj["id"], title, "Vega query")
        yield from _vega_agg_uses(obj, title, body.get("aggs", {}))


def _visualization_uses(obj: dict) -> Iterator[FieldUse]:
    state = vis_state(obj)
    title = obj["attributes"]["title"]
    kind = state["type"]
    if kind in AGG_VIS_TYPES:
        yield from _search_source_uses(obj, title)
        yield from _agg_uses(obj, title, state["aggs"])
    elif kind == "metrics":
        yield from _tsvb_uses(obj, title, state["params"])
    elif kind == "vega":
        yield from _vega_uses(obj, title, state)
    elif kind == "input_control_vis":
        for control in state["params"]["controls"]:
            need = AGGREGATABLE if control["type"] == "list" else NUMERIC
            yield FieldUse(control["fieldName"], need, obj["id"], title, f"{control['type']} control")
    elif kind == "markdown":
        return
    else:
        raise UnknownSavedObject(f"{title}: visualization type {kind!r}")


def dashboard_controls(obj: dict) -> list[dict]:
    """The controls of a dashboard's control group (8.x form), in order."""
    group = obj["attributes"].get("controlGroupInput")
    if not group:
        return []
    panels = json.loads(group["panelsJSON"])
    for panel in panels.values():
        if panel["type"] != "optionsListControl":
            raise UnknownSavedObject(f"control type {panel['type']!r}")
    return [dict(panel["explicitInput"], id=cid) for cid, panel in
            sorted(panels.items(), key=lambda item: item[1]["order"])]


def field_uses(objects: Iterable[dict]) -> list[FieldUse]:
    """Every field reference of every saved object (see the module notes)."""
    uses: list[FieldUse] = []
    for obj in objects:
        kind = obj.get("type")
        attrs = obj.get("attributes", {})
        title = attrs.get("title", obj.get("id", ""))
        if kind == "index-pattern":
            if attrs.get("timeFieldName"):
                uses.append(FieldUse(attrs["timeFieldName"], DATE, obj["id"], title, "data view time field"))
        elif kind == "visualization":
            uses.extend(_visualization_uses(obj))
        elif kind == "search":
            uses.extend(_search_source_uses(obj, title))
            uses.extend(FieldUse(c, ANY, obj["id"], title, "column") for c in attrs["columns"] if c != "_source")
            uses.extend(FieldUse(s[0], AGGREGATABLE, obj["id"], title, "sort") for s in attrs.get("sort", []))
        elif kind == "dashboard":
            uses.extend(_search_source_uses(obj, title))
            uses.extend(FieldUse(c["fieldName"], AGGREGATABLE, obj["id"], title, "options-list control")
                        for c in dashboard_controls(obj))
        elif kind is None and "exportedCount" in obj:
            continue  # the export summary line Kibana appends
        else:
            raise UnknownSavedObject(f"saved object type {kind!r}")
    return uses


def load_ndjson(path) -> list[dict]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]
