"""Run a saved object's queries the way Kibana would, against a real Elasticsearch.

Kibana never runs on the test machines, so this module builds the search requests Kibana's
panels send and runs them with the official client:

* aggregation-based visualizations: the bucket aggregations nested in their order, every metric
  inside the innermost bucket (and each terms ordered by its metric), under the time-range
  filter on the data view's time field, the visualization's query (Lucene as ``query_string``)
  and filters, and the dashboard's filters;
* TSVB: per series, its split (terms), a date histogram at the panel's interval on the panel's
  time field, and the metrics; ``calculation`` and ``math`` metrics are evaluated here, as
  Kibana's server does for ``math`` (``calculation`` would be a ``bucket_script``, which needs
  the painless module that the minimal test Elasticsearch lacks: the arithmetic is the same);
* Vega: each ``url`` body with ``%context%``/``%timefield%`` replaced by the dashboard context
  and the time-range filter, as Kibana's Vega parser does;
* saved searches: the newest hits with the time-range filter;
* controls (dashboard options lists and legacy input controls): a terms aggregation on the
  field, as the control does to list its options.

Every result comes back as a `PanelResult` in a small normalized form that the dashboard
preview draws from, with `empty` saying whether it holds data (some bucket with a non-zero value).
What it cannot do: render what Kibana would draw, apply Kibana's own client-side formatting, or
run KQL queries (none of the checked files has a non-empty one: it raises if it meets one).
"""

from __future__ import annotations

import ast
import copy
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from kibana_fields import (
    AGG_VIS_TYPES,
    UnknownSavedObject,
    dashboard_controls,
    search_source,
    vega_queries,
    vega_spec,
    vis_state,
)

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_NICE = [1, 5, 10, 30, 60, 300, 600, 1800, 3600, 3 * 3600, 12 * 3600, 86400, 7 * 86400, 30 * 86400]


@dataclass(frozen=True)
class TimeRange:
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()

    def filter(self, field_name: str) -> dict:
        return {"range": {field_name: {"gte": _iso(self.start), "lte": _iso(self.end),
                                       "format": "strict_date_optional_time"}}}


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def interval_seconds(text: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h|d|w)", text)
    if not m:
        raise UnknownSavedObject(f"interval {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _seconds_text(seconds: float) -> str:
    for unit in ("d", "h", "m", "s"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{int(seconds // _UNITS[unit])}{unit}"
    return f"{int(seconds * 1000)}ms"


def auto_interval(time_range: TimeRange, buckets: int) -> float:
    """Kibana's automatic interval, near enough: the nice interval closest above range/buckets."""
    want = time_range.seconds / buckets
    return next((n for n in _NICE if n >= want), _NICE[-1])


def resolve_interval(text: str, time_range: TimeRange, buckets: int = 100) -> float:
    """A panel's interval setting in seconds: ``auto``/empty, ``>=1m`` (at least), or fixed."""
    text = (text or "auto").strip()
    if text == "auto":
        return auto_interval(time_range, buckets)
    if text.startswith(">="):
        return max(interval_seconds(text[2:]), auto_interval(time_range, buckets))
    return interval_seconds(text)


# --------------------------------------------------------------------------- arithmetic

_OPS: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def evaluate(expression: str, params: dict[str, float | None]) -> float | None:
    """An arithmetic expression over ``params.NAME`` (TSVB math and calculation scripts) or
    ``_value`` (aggregation value scripts): + - * / and numbers only; None when a variable is
    None (an empty bucket), as Kibana leaves such points out."""
    def walk(node):
        if isinstance(node, ast.Expression):
            return walk(node.body)
        if isinstance(node, ast.BinOp) and type(node.op) in _OPS:
            left, right = walk(node.left), walk(node.right)
            if left is None or right is None:
                return None
            if isinstance(node.op, ast.Div) and right == 0:
                return None
            return _OPS[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            value = walk(node.operand)
            return None if value is None else -value
        if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)):
            return node.value
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "params":
            return params[node.attr]
        if isinstance(node, ast.Name) and node.id in params:
            return params[node.id]
        raise UnknownSavedObject(f"script {expression!r}")
    return walk(ast.parse(expression.strip().rstrip(";"), mode="eval"))


# --------------------------------------------------------------------------- context

@dataclass
class Context:
    """Where and when: the Elasticsearch client, the index pattern every data view and index
    name of the file stands for (the test's own indices), the time range, the data views' time
    fields by id and title, and the dashboard's filters when a panel runs inside one."""

    es: Any
    index: str
    time_range: TimeRange
    data_views: dict[str, str]  # id -> time field
    filters: list[dict] = field(default_factory=list)

    def search(self, body: dict) -> dict:
        return self.es.search(index=self.index, **body).body

    def time_field(self, data_view_id: str | None) -> str:
        if data_view_id is None or data_view_id not in self.data_views:
            raise UnknownSavedObject(f"data view {data_view_id!r} is not in the file")
        return self.data_views[data_view_id]

    def context_clauses(self) -> tuple[list[dict], list[dict]]:
        """(must, must_not) clauses of the dashboard's enabled filters."""
        must, must_not = [], []
        for f in self.filters:
            meta = f.get("meta", {})
            if meta.get("disabled"):
                continue
            (must_not if meta.get("negate") else must).append(f["query"])
        return must, must_not


def lucene(query: dict | None) -> list[dict]:
    """A Kibana query object as Elasticsearch clauses: Lucene becomes ``query_string``."""
    if not query or not query.get("query"):
        return []
    if query.get("language") != "lucene":
        raise UnknownSavedObject(f"{query.get('language')} query {query.get('query')!r}")
    return [{"query_string": {"query": query["query"], "analyze_wildcard": True}}]


def _bool(ctx: Context, time_field: str | None, *clauses: list[dict], filters: list[dict] = ()) -> dict:
    must, must_not = ctx.context_clauses()
    for f in filters:
        if f.get("meta", {}).get("disabled"):
            continue
        (must_not if f.get("meta", {}).get("negate") else must).append(f["query"])
    for group in clauses:
        must.extend(group)
    if time_field:
        must.append(ctx.time_range.filter(time_field))
    return {"bool": {"filter": must, "must_not": must_not}}


# --------------------------------------------------------------------------- results

@dataclass
class PanelResult:
    """What a panel shows, normalized:

    * ``rows``: aggregation-based panels and tables: (bucket keys, metric values) per leaf
      bucket; ``labels`` names the keys then the metrics; ``kind`` is the visualization type;
    * ``series``: TSVB: (label, [(epoch ms, value)]) per line;
    * ``vega``: the spec with every Elasticsearch ``url`` replaced by its response's values;
    * ``hits``: saved search: the columns' values per hit;
    * ``options``: controls: (label, [option values]).
    """

    title: str
    kind: str
    labels: list[str] = field(default_factory=list)
    rows: list[tuple[list, list]] = field(default_factory=list)
    series: list[tuple[str, list[tuple[int, float | None]]]] = field(default_factory=list)
    vega: dict | None = None
    vega_values: dict[str, list] = field(default_factory=dict)
    hits: list[list] = field(default_factory=list)
    options: list[tuple[str, list]] = field(default_factory=list)
    text: str = ""

    @property
    def empty(self) -> bool:
        if self.kind == "markdown":
            return False
        values = [v for _, ms in self.rows for v in ms]
        values += [v for _, points in self.series for _, v in points]
        if values:
            return not any(v for v in values if v is not None)
        if self.vega_values:
            return any(not v for v in self.vega_values.values())
        if self.hits:
            return False
        if self.options:
            return any(not opts for _, opts in self.options)
        return True


# --------------------------------------------------------------------------- aggregation-based

def _agg_request(agg: dict, first_metric: dict | None, ctx: Context) -> dict:
    """The Elasticsearch aggregation for a bucket aggregation of a visualization."""
    params = agg["params"]
    if agg["type"] == "terms":
        order_by = params.get("orderBy", "_key")
        if order_by == "_key":
            order = {"_key": params.get("order", "desc")}
        elif (first_metric is not None and first_metric["type"] == "count") or order_by == "_count":
            order = {"_count": params.get("order", "desc")}
        else:
            order = {order_by: params.get("order", "desc")}
        body = {"terms": {"field": params["field"], "size": params.get("size", 5), "order": order}}
        for key in ("include", "exclude"):
            if params.get(key):
                body["terms"][key] = params[key]
        return body
    if agg["type"] == "date_histogram":
        seconds = resolve_interval(params.get("interval", "auto"), ctx.time_range, buckets=50)
        return {"date_histogram": {"field": params["field"], "fixed_interval": _seconds_text(seconds),
                                   "min_doc_count": params.get("min_doc_count", 1)}}
    raise UnknownSavedObject(f"bucket aggregation {agg['type']!r}")


def _metric_request(agg: dict, scripts: dict) -> dict | None:
    if agg["type"] == "count":
        return None
    params = agg["params"]
    extra = params.get("json")
    if extra:
        import json as _json

        extra = _json.loads(extra)
        script = extra.pop("script", None)
        if extra:
            raise UnknownSavedObject(f"aggregation JSON input {extra}")
        if script is not None:  # a value script: applied here (see the module notes)
            scripts[agg["id"]] = script if isinstance(script, str) else script["source"]
    return {agg["type"]: {"field": params["field"]}}


def _leaf_rows(agg_body: dict, levels: list[dict], metrics: list[dict], scripts: dict, keys: list) -> list:
    if not levels:
        values = []
        for m in metrics:
            v = agg_body.get("doc_count") if m["type"] == "count" else agg_body.get(m["id"], {}).get("value")
            if m["id"] in scripts and v is not None:
                v = evaluate(scripts[m["id"]], {"_value": v})
            values.append(v)
        return [(keys, values)]
    level, rest = levels[0], levels[1:]
    rows = []
    for bucket in agg_body[level["id"]]["buckets"]:
        rows.extend(_leaf_rows(bucket, rest, metrics, scripts, [*keys, bucket["key"]]))
    return rows


def run_aggregation_vis(obj: dict, ctx: Context) -> PanelResult:
    state = vis_state(obj)
    title = obj["attributes"]["title"]
    source = search_source(obj)
    ref = next((r for r in obj["references"] if r["name"] == source.get("indexRefName")), None)
    time_field = ctx.time_field(ref["id"] if ref else None)
    aggs = [a for a in state["aggs"] if a.get("enabled", True)]
    metrics = [a for a in aggs if a["schema"] == "metric"]
    levels = [a for a in aggs if a["schema"] != "metric"]
    scripts: dict[str, str] = {}
    metric_aggs = {}
    for m in metrics:
        request = _metric_request(m, scripts)
        if request is not None:
            metric_aggs[m["id"]] = request
    tree: dict = dict(metric_aggs)
    for level in reversed(levels):
        tree = {level["id"]: {**_agg_request(level, metrics[0] if metrics else None, ctx),
                              "aggs": {**metric_aggs, **tree}}}
    body = {"size": 0, "track_total_hits": True,
            "query": _bool(ctx, time_field, lucene(source.get("query")), filters=source.get("filter", [])),
            "aggs": tree}
    response = ctx.search(body)
    root = dict(response.get("aggregations", {}), doc_count=response["hits"]["total"]["value"])
    rows = _leaf_rows(root, levels, metrics, scripts, [])
    labels = [lv["params"].get("customLabel") or lv["params"]["field"] for lv in levels]
    labels += [m["params"].get("customLabel") or f"{m['type']} {m['params'].get('field', '')}".strip() for m in metrics]
    return PanelResult(title, state["type"], labels, rows)


# --------------------------------------------------------------------------- TSVB

def _tsvb_index_time_field(obj: dict, params: dict, ctx: Context) -> str:
    if params.get("use_kibana_indexes"):
        ref = next(r for r in obj["references"] if r["name"] == params["index_pattern_ref_name"])
        default = ctx.time_field(ref["id"])
    else:
        default = next(iter(ctx.data_views.values()))
    return params.get("time_field") or default


def run_tsvb(obj: dict, ctx: Context) -> PanelResult:
    state = vis_state(obj)
    params = state["params"]
    title = obj["attributes"]["title"]
    time_field = _tsvb_index_time_field(obj, params, ctx)
    seconds = resolve_interval(params.get("interval", "auto"), ctx.time_range)
    panel_filter = lucene(params.get("filter")) if isinstance(params.get("filter"), dict) else (
        lucene({"query": params["filter"], "language": "kuery"}) if params.get("filter") else [])
    result = PanelResult(title, f"tsvb-{params['type']}", text=params.get("markdown", ""))
    for series in params["series"]:
        series_time = series.get("series_time_field") if series.get("override_index_pattern") else None
        series_time = series_time or time_field
        metric_aggs = {}
        for m in series["metrics"]:
            if m["type"] in ("sum", "avg", "min", "max", "cardinality"):
                metric_aggs[m["id"]] = {m["type"]: {"field": m["field"]}}
            elif m["type"] == "cumulative_sum":
                path = "_count" if next(x for x in series["metrics"] if x["id"] == m["field"])["type"] == "count" \
                    else m["field"]
                metric_aggs[m["id"]] = {"cumulative_sum": {"buckets_path": path}}
        histogram = {"date_histogram": {"field": series_time, "fixed_interval": _seconds_text(seconds),
                                        "min_doc_count": 0, "extended_bounds": {
                                            "min": _iso(ctx.time_range.start), "max": _iso(ctx.time_range.end)}},
                     "aggs": metric_aggs}
        split = series.get("terms_field") if series.get("split_mode") == "terms" else None
        if isinstance(split, list):
            raise UnknownSavedObject(f"{title}: multi-field TSVB split (multi_terms)")
        if split:
            order_by = series.get("terms_order_by") or "_count"
            order_metric = next((m for m in series["metrics"] if m["id"] == order_by), None)
            order_key = "_count" if order_metric is None or order_metric["type"] == "count" else order_by
            aggs = {"split": {"terms": {"field": split, "size": int(series.get("terms_size") or 10),
                                        "order": {order_key: series.get("terms_direction", "desc")}},
                              "aggs": {"time": histogram, **({order_by: metric_aggs[order_by]}
                                                             if order_key == order_by else {})}}}
        else:
            aggs = {"time": histogram}
        series_filter = series.get("filter")
        series_clauses = lucene(series_filter) if isinstance(series_filter, dict) else []
        body = {"size": 0, "query": _bool(ctx, series_time, panel_filter, series_clauses), "aggs": aggs}
        response = ctx.search(body)["aggregations"]
        groups = ([(b["key"], b["time"]) for b in response["split"]["buckets"]] if split
                  else [(series.get("label") or "", response["time"])])
        last = series["metrics"][-1]
        for key, histo in groups:
            points = []
            for bucket in histo["buckets"]:
                values: dict[str, float | None] = {}
                for m in series["metrics"]:
                    if m["type"] == "count":
                        values[m["id"]] = bucket["doc_count"]
                    elif m["id"] in metric_aggs:
                        values[m["id"]] = bucket[m["id"]]["value"]
                    elif m["type"] in ("math", "calculation"):
                        variables = {v["name"]: values.get(v["field"]) for v in m["variables"]}
                        variables["_interval"] = seconds * 1000
                        values[m["id"]] = evaluate(m["script"], variables)
                points.append((bucket["key"], values[last["id"]]))
            label = f"{series.get('label') or ''} {key}".strip() if split else key
            result.series.append((label, points))
    return result


# --------------------------------------------------------------------------- Vega

def _substitute(node, ctx: Context, url: dict):
    if isinstance(node, dict):
        keys = [k for k in node if isinstance(k, str) and k.startswith("%")]
        if keys:
            raise UnknownSavedObject(f"Vega placeholder {keys}")
        return {k: _substitute(v, ctx, url) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, ctx, url) for v in node]
    return node


def vega_request(url: dict, ctx: Context) -> dict:
    """The search body Kibana sends for a Vega ``url``."""
    body = _substitute(copy.deepcopy(url.get("body", {})), ctx, url)
    if url.get("%context%"):
        if "query" in body:
            raise UnknownSavedObject("Vega: %context% together with a query")
        must, must_not = ctx.context_clauses()
        if url.get("%timefield%"):
            must.append(ctx.time_range.filter(url["%timefield%"]))
        body["query"] = {"bool": {"must": must, "must_not": must_not}}
    elif url.get("%timefield%"):
        raise UnknownSavedObject("Vega: %timefield% without %context%")
    return body


def _property(value, path: str | None):
    for part in (path or "").split("."):
        if part:
            value = value[part]
    return value


def run_vega(obj: dict, ctx: Context) -> PanelResult:
    state = vis_state(obj)
    spec = vega_spec(state)
    result = PanelResult(obj["attributes"]["title"], "vega", vega=spec)
    for data, url in vega_queries(spec):
        response = ctx.search(vega_request(url, ctx))
        fmt = data.get("format") or {}
        values = _property(response, fmt.get("property"))
        result.vega_values[data["name"]] = values
        del data["url"]
        data["values"] = values
        if "property" in fmt:
            fmt.pop("property")
            if not fmt:
                data.pop("format")
    return result


# --------------------------------------------------------------------------- the rest

def _get(doc: dict, dotted: str):
    value = doc
    for part in dotted.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def run_search(obj: dict, ctx: Context, size: int = 12) -> PanelResult:
    attrs = obj["attributes"]
    source = search_source(obj)
    ref = next(r for r in obj["references"] if r["name"] == source.get("indexRefName"))
    time_field = ctx.time_field(ref["id"])
    sort = [{s[0]: {"order": s[1]}} for s in attrs.get("sort", [])]
    body = {"size": size, "sort": sort,
            "query": _bool(ctx, time_field, lucene(source.get("query")), filters=source.get("filter", []))}
    hits = ctx.search(body)["hits"]["hits"]
    columns = attrs["columns"]
    return PanelResult(attrs["title"], "search", labels=list(columns),
                       hits=[[_get(h["_source"], c) for c in columns] for h in hits])


def run_controls(title: str, controls: list[tuple[str, str, int]], ctx: Context, time_field: str) -> PanelResult:
    """(label, field, size) per control: the options each would list."""
    result = PanelResult(title, "controls")
    for label, fld, size in controls:
        body = {"size": 0, "query": _bool(ctx, time_field),
                "aggs": {"options": {"terms": {"field": fld, "size": size}}}}
        buckets = ctx.search(body)["aggregations"]["options"]["buckets"]
        result.options.append((label, [b["key"] for b in buckets]))
    return result


def run_dashboard_controls(obj: dict, ctx: Context) -> PanelResult:
    controls = []
    for c in dashboard_controls(obj):
        ref = next(r for r in obj["references"] if r["name"] == f"controlGroup_{c['id']}:optionsListDataView")
        controls.append((c.get("title") or c["fieldName"], c["fieldName"], 10, ref["id"]))
    time_field = ctx.time_field(controls[0][3]) if controls else None
    return run_controls(obj["attributes"]["title"], [c[:3] for c in controls], ctx, time_field)


def run_visualization(obj: dict, ctx: Context) -> PanelResult:
    state = vis_state(obj)
    kind = state["type"]
    if kind in AGG_VIS_TYPES:
        return run_aggregation_vis(obj, ctx)
    if kind == "metrics":
        return run_tsvb(obj, ctx)
    if kind == "vega":
        return run_vega(obj, ctx)
    if kind == "markdown":
        return PanelResult(obj["attributes"]["title"], "markdown", text=state["params"]["markdown"])
    if kind == "input_control_vis":
        controls = []
        for c in state["params"]["controls"]:
            ref = next(r for r in obj["references"] if r["name"] == c["indexPatternRefName"])
            controls.append((c["label"], c["fieldName"], c["options"].get("size", 5), ref["id"]))
        return run_controls(obj["attributes"]["title"], [c[:3] for c in controls], ctx,
                            ctx.time_field(controls[0][3]))
    raise UnknownSavedObject(f"visualization type {kind!r}")


def run(obj: dict, ctx: Context) -> PanelResult:
    """The panel result of one visualization, saved search or dashboard (its controls)."""
    if obj["type"] == "visualization":
        return run_visualization(obj, ctx)
    if obj["type"] == "search":
        return run_search(obj, ctx)
    if obj["type"] == "dashboard":
        return run_dashboard_controls(obj, ctx)
    raise UnknownSavedObject(f"saved object type {obj['type']!r}")


def dashboard_filters(obj: dict) -> list[dict]:
    """A dashboard's saved filters (its filter pills)."""
    return search_source(obj).get("filter", [])
