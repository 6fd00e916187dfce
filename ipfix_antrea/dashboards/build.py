"""The Kibana dashboards, described in Python; running this module writes kibana.ndjson.

Kibana's saved-objects format is verbose (JSON inside JSON strings, references by name, grid
positions), so the dashboards are described here with a few small builders, one per kind of
panel, and the file is generated: ``python -m ipfix_antrea.dashboards.build`` (``--check`` only
compares). A test checks that the committed file is this module's output.

Choices, so that the file imports and works in Kibana 8.13+ and 9.x alike:

* Panel types that every 8.x and 9.x Kibana has: aggregation-based pie, horizontal bar, metric
  and table; TSVB (``metrics``) time series; Vega; markdown; a saved search. No Lens (its format
  is large and changes often) and no legacy input controls (deprecated in 8.x): the Pod,
  namespace and policy filters are the dashboards' own controls (a control group of options-list
  controls).
* Saved objects carry the migration versions of the format they are written in (``8.0.0`` for
  visualizations, searches and the data view, ``8.7.0`` for dashboards, as Kibana's own sample
  data does), so each Kibana migrates them forward from there.
* Every id is a uuid5 of the object's kind and name: stable across runs and releases, so a new
  import overwrites the old objects instead of adding copies.
* Fields: only what the collector's documents hold (see docs/visualization.md), every string
  through its ``.keyword`` sub-field. Byte rates over time are per bucket:
  sum(delta octets) * 8 / bucket seconds (bits/s), right however many records of a flow fall in
  a bucket; the derived ``throughput`` (bytes/s, per record) appears only in the record table.
* Queries inside visualizations are Lucene strings (Kibana sends them to Elasticsearch as
  ``query_string``) or Elasticsearch query DSL (filters, Vega bodies): nothing that needs a
  script, so they run on any Elasticsearch.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DATA_VIEW_ID", "INDEX_PATTERN", "build", "dashboards", "main", "object_id", "render"]

JsonObject = dict[str, Any]  # a saved object, or a part of one, as Kibana reads it

INDEX_PATTERN = "flow-*"
TIME_FIELD = "@timestamp"
TITLE_PREFIX = "ipfix-antrea: "
#: Namespaces the Home dashboard hides by default: Kubernetes' own and the collector's.
INFRASTRUCTURE_NAMESPACES = ("kube-system", "antreaflow")

_ID_NAMESPACE = uuid.UUID("4b0f7c1e-2d56-5a8e-9c3b-7e1d2f6a9b40")
_CORE_MIGRATION = "8.8.0"
_TYPE_MIGRATION = {"index-pattern": "8.0.0", "visualization": "8.0.0", "search": "8.0.0",
                   "dashboard": "8.7.0"}
_PANEL_VERSION = "8.8.0"


def object_id(kind: str, name: str) -> str:
    """The stable id of a saved object: uuid5 of its kind and name."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{kind}:{name}"))


DATA_VIEW_ID = object_id("index-pattern", INDEX_PATTERN)
_INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def ipfix(name: str) -> str:
    """A numeric, date or address field of the documents."""
    return f"ipfix.{name}"


def kw(name: str) -> str:
    """The keyword sub-field of a string (or address) field: what aggregations and filters use."""
    return f"ipfix.{name}.keyword"


def nonempty(*names: str) -> str:
    """A Lucene query: these string fields hold at least one character (the Flow Aggregator
    sends "" for a Pod it does not know, such as the outside end of an external flow)."""
    return " AND ".join(f"{kw(n)}:?*" for n in names)


def denied() -> str:
    """A Lucene query: a policy rule dropped or rejected the connection (action 2 or 3)."""
    return ("ipfix.ingressNetworkPolicyRuleAction:(2 OR 3) OR "
            "ipfix.egressNetworkPolicyRuleAction:(2 OR 3)")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _search_source(query: str = "", *, index: bool = True, filters: Sequence[JsonObject] = ()) -> str:
    source: JsonObject = {"query": {"query": query, "language": "lucene" if query else "kuery"},
                    "filter": list(filters)}
    if index:
        source["indexRefName"] = _INDEX_REF
    return _json(source)


def _saved_object(kind: str, title: str, attributes: JsonObject, references: list[JsonObject]) -> JsonObject:
    return {"id": object_id(kind, title), "type": kind, "attributes": attributes,
            "references": references, "coreMigrationVersion": _CORE_MIGRATION,
            "typeMigrationVersion": _TYPE_MIGRATION[kind], "managed": False}


def _data_view_ref(name: str) -> JsonObject:
    return {"name": name, "type": "index-pattern", "id": DATA_VIEW_ID}


# --------------------------------------------------------------------------- the data view

_BYTE_FIELDS = ("octetDeltaCount", "reverseOctetDeltaCount", "octetTotalCount",
                "reverseOctetTotalCount", "bytes")


def data_view() -> JsonObject:
    """``flow-*`` with ``@timestamp`` (the IPFIX export time) as its time field; octet counters
    shown as bytes."""
    formats = {ipfix(n): {"id": "bytes"} for n in _BYTE_FIELDS}
    return _saved_object("index-pattern", INDEX_PATTERN, {
        "title": INDEX_PATTERN, "name": f"{INDEX_PATTERN} (ipfix-antrea)",
        "timeFieldName": TIME_FIELD, "fieldFormatMap": _json(formats), "fields": "[]",
        "runtimeFieldMap": "{}", "sourceFilters": "[]", "allowNoIndex": True,
    }, [])


# --------------------------------------------------------------------------- visualizations

@dataclass(frozen=True)
class Metric:
    """An aggregation-based metric: ``kind`` is count, sum or cardinality."""

    kind: str
    field: str | None = None
    label: str = ""

    def agg(self, agg_id: str) -> JsonObject:
        params = {} if self.field is None else {"field": self.field}
        if self.label:
            params["customLabel"] = self.label
        return {"id": agg_id, "enabled": True, "type": self.kind, "schema": "metric", "params": params}


def _terms(agg_id: str, schema: str, field: str, label: str, size: int, order_by: str = "1") -> JsonObject:
    return {"id": agg_id, "enabled": True, "type": "terms", "schema": schema, "params": {
        "field": field, "orderBy": order_by, "order": "desc", "size": size, "otherBucket": False,
        "otherBucketLabel": "Other", "missingBucket": False, "missingBucketLabel": "Missing",
        "customLabel": label}}


def _visualization(title: str, vis_type: str, params: JsonObject, aggs: list[JsonObject], *, query: str = "",
                   uses_data_view: bool = True, description: str = "",
                   references: Sequence[JsonObject] = ()) -> JsonObject:
    full = TITLE_PREFIX + title
    state = {"title": full, "type": vis_type, "params": params, "aggs": aggs}
    refs = [_data_view_ref(_INDEX_REF)] if uses_data_view else []
    return _saved_object("visualization", full, {
        "title": full, "description": description, "visState": _json(state), "uiStateJSON": "{}",
        "version": 1,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query, index=uses_data_view)},
    }, [*refs, *references])


def markdown(title: str, text: str) -> JsonObject:
    return _visualization(title, "markdown", {"fontSize": 12, "openLinksInNewTab": False,
                                              "markdown": text}, [], uses_data_view=False)


def pie(title: str, metric: Metric, split: str, split_label: str, *, size: int = 10,
        query: str = "", description: str = "") -> JsonObject:
    """A donut of ``metric`` by the top ``size`` values of ``split``."""
    params = {
        "type": "pie", "addTooltip": True, "addLegend": True, "legendDisplay": "show",
        "legendPosition": "right", "isDonut": True, "nestedLegend": False, "distinctColors": True,
        "truncateLegend": True, "maxLegendLines": 1, "emptySizeRatio": 0.3,
        "palette": {"type": "palette", "name": "default"},
        "labels": {"show": False, "values": True, "last_level": True, "truncate": 100,
                   "position": "default", "valuesFormat": "percent", "percentDecimals": 1},
    }
    return _visualization(title, "pie", params, [metric.agg("1"), _terms("2", "segment", split, split_label, size)],
                          query=query, description=description)


def bars(title: str, metric: Metric, split: str, split_label: str, *, size: int = 10,
         query: str = "", description: str = "") -> JsonObject:
    """Horizontal bars of ``metric`` by the top ``size`` values of ``split``."""
    label = metric.label or metric.kind
    params = {
        "type": "histogram", "addTooltip": True, "addLegend": False, "legendPosition": "right",
        "times": [], "addTimeMarker": False, "truncateLegend": True, "maxLegendLines": 1,
        "legendSize": "auto", "detailedTooltip": True, "fittingFunction": "linear",
        "isVislibVis": True, "radiusRatio": 9, "thresholdLine": {
            "show": False, "value": 10, "width": 1, "style": "full", "color": "#E7664C"},
        "labels": {"show": True}, "palette": {"type": "palette", "name": "default"},
        "grid": {"categoryLines": False},
        "categoryAxes": [{"id": "CategoryAxis-1", "type": "category", "position": "left", "show": True,
                          "style": {}, "scale": {"type": "linear"},
                          "labels": {"show": True, "rotate": 0, "filter": False, "truncate": 200},
                          "title": {}}],
        "valueAxes": [{"id": "ValueAxis-1", "name": "BottomAxis-1", "type": "value", "position": "bottom",
                       "show": True, "style": {}, "scale": {"type": "linear", "mode": "normal"},
                       "labels": {"show": True, "rotate": 75, "filter": True, "truncate": 100},
                       "title": {"text": label}}],
        "seriesParams": [{"show": True, "type": "histogram", "mode": "normal",
                          "data": {"label": label, "id": "1"}, "valueAxis": "ValueAxis-1",
                          "drawLinesBetweenPoints": True, "lineWidth": 2, "showCircles": True,
                          "interpolate": "linear", "circlesRadius": 1}],
    }
    return _visualization(title, "horizontal_bar", params,
                          [metric.agg("1"), _terms("2", "segment", split, split_label, size)],
                          query=query, description=description)


def metric(title: str, metrics: Sequence[Metric], *, query: str = "", description: str = "") -> JsonObject:
    """One or more big numbers."""
    params = {"addTooltip": True, "addLegend": False, "type": "metric", "metric": {
        "percentageMode": False, "useRanges": False, "colorSchema": "Green to Red",
        "metricColorMode": "None", "colorsRange": [{"from": 0, "to": 10000}], "labels": {"show": True},
        "invertColors": False, "style": {"bgFill": "#000", "bgColor": False, "labelColor": False,
                                         "subText": "", "fontSize": 36}}}
    return _visualization(title, "metric", params, [m.agg(str(i + 1)) for i, m in enumerate(metrics)],
                          query=query, description=description)


def table(title: str, metrics: Sequence[Metric], rows: Sequence[tuple[str, str]], *, size: int = 10,
          query: str = "", description: str = "") -> JsonObject:
    """A table: a row per combination of the top values of ``rows`` ((field, label) pairs,
    outermost first), a column per metric (rows ordered by the first)."""
    params = {"perPage": 10, "showPartialRows": False, "showMetricsAtAllLevels": False,
              "showTotal": False, "totalFunc": "sum", "percentageCol": "", "autoFitRowToContent": False,
              "showToolbar": False}
    aggs = [m.agg(str(i + 1)) for i, m in enumerate(metrics)]
    aggs += [_terms(str(len(metrics) + i + 1), "bucket", f, label, size) for i, (f, label) in enumerate(rows)]
    return _visualization(title, "table", params, aggs, query=query, description=description)


def _tsvb_id(*parts: str) -> str:
    return object_id("tsvb", "/".join(parts))


@dataclass(frozen=True)
class Series:
    """A TSVB series: ``rate_of`` sums a delta counter and shows it as bits/s per bucket
    (sum * 8 / bucket seconds); without it, records per minute. ``split`` draws a line per top
    value of that field; ``query`` (Lucene) narrows the series."""

    label: str
    rate_of: str | None = None
    split: str | None = None
    query: str = ""
    color: str = "#54B399"

    def model(self, panel: str) -> JsonObject:
        sid = _tsvb_id(panel, self.label)
        first = _tsvb_id(panel, self.label, "sum")
        if self.rate_of:
            metrics = [{"id": first, "type": "sum", "field": self.rate_of},
                       {"id": _tsvb_id(panel, self.label, "rate"), "type": "math",
                        "script": "params.octets * 8 / (params._interval / 1000)",
                        "variables": [{"id": _tsvb_id(panel, self.label, "var"), "name": "octets",
                                       "field": first}]}]
            formatter, template = "0.[0]a", "{{value}}bit/s"
        else:
            metrics = [{"id": first, "type": "count"},
                       {"id": _tsvb_id(panel, self.label, "rate"), "type": "math",
                        "script": "params.records * 60000 / params._interval",
                        "variables": [{"id": _tsvb_id(panel, self.label, "var"), "name": "records",
                                       "field": first}]}]
            formatter, template = "0.[0]", "{{value}}/min"
        model = {
            "id": sid, "label": self.label, "color": self.color, "metrics": metrics,
            "split_mode": "terms" if self.split else "everything", "split_color_mode": "kibana",
            "palette": {"type": "palette", "name": "default"}, "separate_axis": 0,
            "axis_position": "right", "formatter": formatter, "value_template": template,
            "chart_type": "line", "line_width": 2, "point_size": 0, "fill": 0.2, "stacked": "none",
            "override_index_pattern": 0, "series_drop_last_bucket": 0,
            "filter": {"query": self.query, "language": "lucene" if self.query else "kuery"},
        }
        if self.split:
            model.update({"terms_field": self.split, "terms_size": "10", "terms_order_by": first,
                          "terms_direction": "desc"})
        return model


def timeseries(title: str, series: Sequence[Series], *, description: str = "") -> JsonObject:
    """A TSVB time series on ``@timestamp``, buckets of at least a minute (the Flow
    Aggregator's export period: a flow has at most one record per minute)."""
    params = {
        "id": _tsvb_id(title), "type": "timeseries", "series": [s.model(title) for s in series],
        "time_field": TIME_FIELD, "use_kibana_indexes": True, "index_pattern_ref_name": "metrics_0_index_pattern",
        "interval": ">=1m", "drop_last_bucket": 0, "axis_position": "left", "axis_formatter": "number",
        "axis_scale": "normal", "axis_min": "0", "show_legend": 1, "legend_position": "bottom",
        "truncate_legend": 1, "max_lines_legend": 1, "show_grid": 1, "tooltip_mode": "show_all",
        "isModelInvalid": False, "annotations": [], "background_color_rules": [],
        "filter": {"query": "", "language": "kuery"},
    }
    return _visualization(title, "metrics", params, [], uses_data_view=False, description=description,
                          references=[_data_view_ref("metrics_0_index_pattern")])


def vega(title: str, spec: JsonObject, *, description: str = "") -> JsonObject:
    return _visualization(title, "vega", {"spec": json.dumps(spec, indent=2)}, [], uses_data_view=False,
                          description=description)


# --------------------------------------------------------------------------- Vega specs

@dataclass(frozen=True)
class Endpoint:
    """One side of a Sankey: a Pod as "namespace/name" when the record names one, else the
    address (or another field)."""

    title: str
    name: str  # the field that names the endpoint ("" when there is none)
    namespace: str | None = None
    fallback: str | None = None

    def sources(self, side: str) -> list[JsonObject]:
        fields = [("name", self.name), ("ns", self.namespace), ("alt", self.fallback)]
        return [{f"{side}_{key}": {"terms": {"field": kw(f)}}} for key, f in fields if f]

    def label(self, side: str) -> str:
        """A Vega expression: "namespace/name" (name alone when the namespace is "" or "N/A",
        as for cluster-wide policies), the fallback field when the name is "", and "none" for
        a policy name "N/A" (no policy applied)."""
        name, ns = f"datum.key.{side}_name", f"datum.key.{side}_ns"
        shown = f"({ns} != '' && {ns} != 'N/A' ? {ns} + '/' + {name} : {name})" if self.namespace else name
        shown = f"({name} == 'N/A' ? 'none' : {shown})"
        if self.fallback:
            return f"{name} != '' ? {shown} : datum.key.{side}_alt"
        return shown


def _url(aggs: JsonObject) -> JsonObject:
    return {"%context%": True, "%timefield%": TIME_FIELD, "index": INDEX_PATTERN,
            "body": {"size": 0, "aggs": aggs}}


def sankey(left: Endpoint, right: Endpoint, where: JsonObject, *, octets: Sequence[str] = (
        "octetDeltaCount", "reverseOctetDeltaCount")) -> JsonObject:
    """A Vega Sankey of bytes (the sum of the ``octets`` delta counters: both directions by
    default) from ``left`` to ``right``, over the records that match ``where`` (query DSL).

    The query groups records with a composite aggregation on both endpoints' fields; each link
    is drawn as a band from its share of the left node to its share of the right node. The
    ``links`` data set (source, target, bytes) is what the checks read back after rendering.
    """
    sources = left.sources("l") + right.sources("r")
    sums = {f"o{i}": {"sum": {"field": ipfix(f)}} for i, f in enumerate(octets)}
    total = " + ".join(f"datum.o{i}.value" for i in range(len(octets)))
    return {
        "$schema": "https://vega.github.io/schema/vega/v5.json",
        "description": f"Bytes from {left.title} to {right.title}",
        "padding": 8,
        "data": [
            {"name": "buckets",
             "url": _url({"flows": {"filter": where, "aggs": {
                 "pairs": {"composite": {"size": 1000, "sources": sources}, "aggs": sums}}}}),
             "format": {"property": "aggregations.flows.pairs.buckets"},
             "transform": [{"type": "formula", "as": "source", "expr": left.label("l")},
                           {"type": "formula", "as": "target", "expr": right.label("r")},
                           {"type": "formula", "as": "bytes", "expr": total}]},
            {"name": "links", "source": "buckets", "transform": [
                {"type": "aggregate", "groupby": ["source", "target"], "fields": ["bytes"],
                 "ops": ["sum"], "as": ["bytes"]},
                {"type": "filter", "expr": "datum.bytes > 0"},
                {"type": "formula", "as": "key", "expr": "datum.source + '\\u0000' + datum.target"}]},
            # each link has a segment on each side; segments of one node are adjacent
            {"name": "segments", "source": "links", "transform": [
                {"type": "fold", "fields": ["source", "target"], "as": ["side", "node"]},
                {"type": "formula", "as": "order",
                 "expr": "datum.side == 'source' ? datum.source + '\\u0000' + datum.target"
                         " : datum.target + '\\u0000' + datum.source"},
                {"type": "stack", "groupby": ["side"], "sort": {"field": "order", "order": "descending"},
                 "field": "bytes"},
                {"type": "formula", "as": "mid", "expr": "(datum.y0 + datum.y1) / 2"}]},
            {"name": "nodes", "source": "segments", "transform": [
                {"type": "aggregate", "groupby": ["side", "node"], "fields": ["y0", "y1", "bytes"],
                 "ops": ["min", "max", "sum"], "as": ["y0", "y1", "bytes"]}]},
            {"name": "targets", "source": "segments",
             "transform": [{"type": "filter", "expr": "datum.side == 'target'"}]},
            {"name": "bands", "source": "segments", "transform": [
                {"type": "filter", "expr": "datum.side == 'source'"},
                {"type": "lookup", "from": "targets", "key": "key", "fields": ["key"], "as": ["to"]},
                {"type": "linkpath", "orient": "horizontal", "shape": "diagonal",
                 "sourceX": {"expr": "scale('x', 'source') + bandwidth('x')"},
                 "sourceY": {"expr": "scale('y', datum.mid)"},
                 "targetX": {"expr": "scale('x', 'target')"},
                 "targetY": {"expr": "scale('y', datum.to.mid)"}},
                {"type": "formula", "as": "width", "expr": "scale('y', 0) - scale('y', datum.bytes)"}]},
        ],
        "scales": [
            {"name": "x", "type": "band", "range": "width", "domain": ["source", "target"],
             "paddingOuter": 0.02, "paddingInner": 0.96},
            {"name": "y", "type": "linear", "range": "height", "domain": {"data": "segments", "field": "y1"}},
            {"name": "color", "type": "ordinal", "range": "category",
             "domain": {"data": "links", "field": "source"}},
            {"name": "sides", "type": "ordinal", "domain": ["source", "target"],
             "range": [left.title, right.title]},
        ],
        "axes": [{"orient": "bottom", "scale": "x", "domain": False, "ticks": False,
                  "encode": {"labels": {"update": {"text": {"scale": "sides", "field": "value"}}}}}],
        "marks": [
            # clip: a wide stroke's bounds would otherwise make autosize shrink the whole chart
            {"type": "path", "from": {"data": "bands"}, "clip": True, "encode": {"update": {
                "path": {"field": "path"}, "stroke": {"scale": "color", "field": "source"},
                "strokeWidth": {"field": "width"}, "strokeOpacity": {"value": 0.45},
                "tooltip": {"signal": "datum.source + ' → ' + datum.target + ': ' + format(datum.bytes, '.3s') + 'B'"}},
                "hover": {"strokeOpacity": {"value": 0.8}}}},
            {"type": "rect", "from": {"data": "nodes"}, "encode": {"update": {
                "x": {"scale": "x", "field": "side"}, "width": {"scale": "x", "band": 1},
                "y": {"scale": "y", "field": "y1"}, "y2": {"scale": "y", "field": "y0"},
                "fill": {"signal": "datum.side == 'source' ? scale('color', datum.node) : '#6D7388'"},
                "tooltip": {"signal": "datum.node + ': ' + format(datum.bytes, '.3s') + 'B'"}}}},
            {"type": "text", "from": {"data": "nodes"}, "interactive": False, "encode": {"update": {
                "x": {"signal": "datum.side == 'source' ? scale('x', 'source') + bandwidth('x') + 6"
                                " : scale('x', 'target') - 6"},
                "y": {"signal": "(scale('y', datum.y0) + scale('y', datum.y1)) / 2"},
                "align": {"signal": "datum.side == 'source' ? 'left' : 'right'"},
                "baseline": {"value": "middle"}, "fontSize": {"value": 11},
                "text": {"signal": "abs(scale('y', datum.y0) - scale('y', datum.y1)) > 9 ? datum.node : ''"}}}},
        ],
    }


def pair_throughput() -> JsonObject:
    """A Vega line chart: bits/s between the top client and server Pods, per minute.

    Per bucket: (octetDeltaCount + reverseOctetDeltaCount) * 8 / 60. The buckets are fixed at a
    minute, the Flow Aggregator's export period, so the rate is right whatever the range; the
    cost is a bucket per minute per pair (at most 8 x 4 pairs: about 46000 buckets for a day,
    within Elasticsearch's default search.max_buckets of 65536).
    """
    pods = {"bool": {"filter": [{"wildcard": {kw("sourcePodName"): "?*"}},
                                {"wildcard": {kw("destinationPodName"): "?*"}}]}}
    octets = {"o": {"sum": {"field": ipfix("octetDeltaCount")}},
              "r": {"sum": {"field": ipfix("reverseOctetDeltaCount")}}}
    aggs = {"flows": {"filter": pods, "aggs": {"clients": {
        "terms": {"field": kw("sourcePodName"), "size": 8, "order": {"o": "desc"}},
        "aggs": {**octets, "servers": {
            "terms": {"field": kw("destinationPodName"), "size": 4, "order": {"o": "desc"}},
            "aggs": {**octets, "minutes": {
                "date_histogram": {"field": TIME_FIELD, "fixed_interval": "1m", "min_doc_count": 1},
                "aggs": octets}}}}}}}}
    return {
        "$schema": "https://vega.github.io/schema/vega/v5.json",
        "description": "Throughput between Pods, per minute",
        "padding": 8,
        "data": [
            {"name": "clients", "url": _url(aggs), "format": {"property": "aggregations.flows.clients.buckets"}},
            {"name": "points", "source": "clients", "transform": [
                {"type": "flatten", "fields": ["servers.buckets"], "as": ["server"]},
                {"type": "flatten", "fields": ["server.minutes.buckets"], "as": ["minute"]},
                {"type": "formula", "as": "pair", "expr": "datum.key + ' → ' + datum.server.key"},
                {"type": "formula", "as": "time", "expr": "datum.minute.key"},
                {"type": "formula", "as": "bps",
                 "expr": "(datum.minute.o.value + datum.minute.r.value) * 8 / 60"},
                {"type": "collect", "sort": {"field": "time"}}]},
        ],
        "scales": [
            {"name": "x", "type": "time", "range": "width", "domain": {"data": "points", "field": "time"}},
            {"name": "y", "type": "linear", "range": "height", "nice": True, "zero": True,
             "domain": {"data": "points", "field": "bps"}},
            {"name": "color", "type": "ordinal", "range": "category", "domain": {"data": "points", "field": "pair"}},
        ],
        "axes": [
            {"orient": "bottom", "scale": "x", "labelOverlap": True, "format": "%d %b %H:%M"},
            {"orient": "left", "scale": "y", "grid": True, "format": ".2s", "title": "bit/s"},
        ],
        "legends": [{"stroke": "color", "orient": "right", "symbolType": "stroke", "labelLimit": 320}],
        "marks": [{"type": "group", "from": {"facet": {"name": "line", "data": "points", "groupby": "pair"}},
                   "marks": [{"type": "line", "from": {"data": "line"}, "encode": {"update": {
                       "x": {"scale": "x", "field": "time"}, "y": {"scale": "y", "field": "bps"},
                       "stroke": {"scale": "color", "field": "pair"}, "strokeWidth": {"value": 2},
                       "tooltip": {"signal": "datum.pair + ': ' + format(datum.bps, '.3s') + 'bit/s'"}}}}]}],
    }


def _flow_types(*names: str) -> JsonObject:
    return {"terms": {kw("flowTypeStr"): list(names)}}


POD = Endpoint("client Pod", "sourcePodName", "sourcePodNamespace", "sourceIP")
SERVER = Endpoint("server Pod", "destinationPodName", "destinationPodNamespace", "destinationIP")


# --------------------------------------------------------------------------- saved search

def saved_search(title: str, columns: Sequence[str], *, query: str = "") -> JsonObject:
    full = TITLE_PREFIX + title
    return _saved_object("search", full, {
        "title": full, "description": "", "columns": list(columns), "sort": [[TIME_FIELD, "desc"]],
        "grid": {}, "hideChart": False, "isTextBasedQuery": False,
        "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(query)},
    }, [_data_view_ref(_INDEX_REF)])


# --------------------------------------------------------------------------- dashboards

@dataclass(frozen=True)
class Panel:
    obj: JsonObject  # a visualization or saved search
    x: int
    y: int
    w: int
    h: int


@dataclass(frozen=True)
class Dashboard:
    title: str
    description: str
    panels: list[Panel]
    #: options-list controls: (field, label)
    controls: Sequence[tuple[str, str]] = ()
    #: dashboard filters (the pills under the query bar), Kibana filter objects without meta.index
    filters: Sequence[JsonObject] = ()

    @property
    def id(self) -> str:
        return object_id("dashboard", TITLE_PREFIX + self.title)

    def saved_object(self) -> JsonObject:
        panels, refs = [], []
        for n, p in enumerate(self.panels):
            index = str(n + 1)
            panels.append({"version": _PANEL_VERSION, "type": p.obj["type"], "panelIndex": index,
                           "gridData": {"x": p.x, "y": p.y, "w": p.w, "h": p.h, "i": index},
                           "embeddableConfig": {"enhancements": {}}, "panelRefName": f"panel_{index}"})
            refs.append({"name": f"{index}:panel_{index}", "type": p.obj["type"], "id": p.obj["id"]})
        filters = []
        for n, f in enumerate(self.filters):
            ref = f"kibanaSavedObjectMeta.searchSourceJSON.filter[{n}].meta.index"
            filters.append({**f, "meta": {**f["meta"], "indexRefName": ref}})
            refs.append(_data_view_ref(ref))
        attrs = {
            "title": TITLE_PREFIX + self.title, "description": self.description, "version": 1,
            "timeRestore": False, "panelsJSON": _json(panels),
            "optionsJSON": _json({"useMargins": True, "syncColors": False, "syncCursor": True,
                                  "syncTooltips": False, "hidePanelTitles": False}),
            "kibanaSavedObjectMeta": {"searchSourceJSON": _search_source(index=False, filters=filters)},
        }
        if self.controls:
            controls = {}
            for order, (fld, label) in enumerate(self.controls):
                cid = object_id("control", f"{self.title}/{fld}")
                controls[cid] = {"order": order, "width": "medium", "grow": True, "type": "optionsListControl",
                                 "explicitInput": {"id": cid, "fieldName": fld, "title": label,
                                                   "enhancements": {}}}
                refs.append(_data_view_ref(f"controlGroup_{cid}:optionsListDataView"))
            attrs["controlGroupInput"] = {
                "controlStyle": "oneLine", "chainingSystem": "HIERARCHICAL", "panelsJSON": _json(controls),
                "ignoreParentSettingsJSON": _json({"ignoreFilters": False, "ignoreQuery": False,
                                                   "ignoreTimerange": False, "ignoreValidations": False}),
            }
        obj = _saved_object("dashboard", TITLE_PREFIX + self.title, attrs, refs)
        assert obj["id"] == self.id
        return obj


def infrastructure_filter() -> JsonObject:
    """A dashboard filter pill hiding flows from or to the infrastructure namespaces. A filter,
    not part of a query, so that a user can disable or delete it from the filter bar."""
    namespaces = list(INFRASTRUCTURE_NAMESPACES)
    query = {"bool": {"should": [{"terms": {kw("sourcePodNamespace"): namespaces}},
                                 {"terms": {kw("destinationPodNamespace"): namespaces}}],
                      "minimum_should_match": 1}}
    return {"meta": {"alias": f"Infrastructure namespaces ({', '.join(namespaces)})", "negate": True,
                     "disabled": False, "type": "custom", "key": "query", "value": _json(query)},
            "query": query, "$state": {"store": "appState"}}


_NAMES = ("Home", "Overview", "Flows", "Flow Records", "Pod-to-Service", "Pod-to-External",
          "Node Throughput", "Network Policy")


def navigation() -> JsonObject:
    """The panel at the top of every dashboard: links to all of them (as Antrea's had)."""
    links = " · ".join(f"[{n}](#/view/{object_id('dashboard', TITLE_PREFIX + n)})" for n in _NAMES)
    return markdown("Navigation", f"**Antrea flows** · {links}")


_SRC_CONTROLS = ((kw("sourcePodNamespace"), "Client namespace"), (kw("sourcePodName"), "Client Pod"))
_DST_CONTROLS = ((kw("destinationPodNamespace"), "Server namespace"), (kw("destinationPodName"), "Server Pod"))
_BYTES_OUT = Metric("sum", ipfix("octetDeltaCount"), "Bytes client → server")
_BYTES_IN = Metric("sum", ipfix("reverseOctetDeltaCount"), "Bytes server → client")
_CONNECTIONS = Metric("cardinality", kw("flowKey"), "Connections")


def _home(nav: JsonObject, denied_table: JsonObject) -> Dashboard:
    numbers = [
        metric("Pods", [Metric("cardinality", kw("sourcePodName"), "Pods sending")], query=nonempty("sourcePodName")),
        metric("Services", [Metric("cardinality", kw("destinationServiceName"), "Services used")]),
        metric("Nodes", [Metric("cardinality", kw("sourceNodeName"), "Nodes")], query=nonempty("sourceNodeName")),
        metric("Active connections", [Metric("cardinality", kw("flowKey"), "Active connections")]),
        metric("Denied connections", [Metric("cardinality", kw("flowKey"), "Denied connections")], query=denied()),
        metric("Bytes", [Metric("sum", ipfix("octetDeltaCount"), "Bytes sent"),
                         Metric("sum", ipfix("reverseOctetDeltaCount"), "Bytes received")]),
    ]
    panels = [Panel(nav, 0, 0, 48, 3)] + [Panel(v, 8 * i, 3, 8, 6) for i, v in enumerate(numbers)]
    panels += [
        Panel(timeseries("Throughput", [
            Series("client → server", ipfix("octetDeltaCount"), color="#54B399"),
            Series("server → client", ipfix("reverseOctetDeltaCount"), color="#6092C0")]), 0, 9, 32, 12),
        Panel(timeseries("Records per minute", [Series("records", color="#D6BF57")]), 32, 9, 16, 12),
        Panel(table("Top talkers: client Pods", [_BYTES_OUT, _BYTES_IN, _CONNECTIONS],
                    [(kw("sourcePodName"), "Client Pod")], query=nonempty("sourcePodName")), 0, 21, 24, 14),
        Panel(table("Top talkers: server Pods", [_BYTES_IN, _BYTES_OUT, Metric("count", label="Records")],
                    [(kw("destinationPodName"), "Server Pod")], query=nonempty("destinationPodName")), 24, 21, 24, 14),
        Panel(denied_table, 0, 35, 48, 13),
    ]
    return Dashboard("Home", "The cluster at a glance: Pods, Services, Nodes, connections, bytes, top talkers. "
                     "Infrastructure namespaces are hidden by a filter you can disable.", panels,
                     controls=_SRC_CONTROLS[:1] + _DST_CONTROLS[:1], filters=[infrastructure_filter()])


def _overview(nav: JsonObject) -> Dashboard:
    def by(side: str, what: str, field_name: str, metric_: Metric, label: str) -> JsonObject:
        return pie(f"{what} by {side}", metric_, kw(field_name), label,
                   query=nonempty(field_name))
    sent_bytes = Metric("sum", ipfix("octetDeltaCount"), "Bytes sent by client")
    sent_packets = Metric("sum", ipfix("packetDeltaCount"), "Packets sent by client")
    back_bytes = Metric("sum", ipfix("reverseOctetDeltaCount"), "Bytes sent by server")
    back_packets = Metric("sum", ipfix("reversePacketDeltaCount"), "Packets sent by server")
    donuts = [
        by("client Pod", "Bytes", "sourcePodName", sent_bytes, "Client Pod"),
        by("client Pod", "Packets", "sourcePodName", sent_packets, "Client Pod"),
        by("server Pod", "Bytes", "destinationPodName", back_bytes, "Server Pod"),
        by("server Pod", "Packets", "destinationPodName", back_packets, "Server Pod"),
        by("client IP", "Bytes", "sourceIP", sent_bytes, "Client IP"),
        by("client IP", "Packets", "sourceIP", sent_packets, "Client IP"),
        by("server IP", "Bytes", "destinationIP", back_bytes, "Server IP"),
        by("server IP", "Packets", "destinationIP", back_packets, "Server IP"),
    ]
    panels = [Panel(nav, 0, 0, 48, 3)] + [Panel(d, 12 * (i % 4), 3 + 13 * (i // 4), 12, 13)
                                          for i, d in enumerate(donuts)]
    panels += [
        Panel(bars("Connections by client Pod", _CONNECTIONS, kw("sourcePodName"), "Client Pod",
                   query=nonempty("sourcePodName")), 0, 29, 24, 14),
        Panel(bars("Connections by server Pod", _CONNECTIONS, kw("destinationPodName"), "Server Pod",
                   query=nonempty("destinationPodName")), 24, 29, 24, 14),
    ]
    return Dashboard("Overview", "Bytes and packets by Pod and by IP, client (source) and server (destination) "
                     "side, and connection counts.", panels, controls=_SRC_CONTROLS + _DST_CONTROLS)


def _flows(nav: JsonObject) -> Dashboard:
    panels = [
        Panel(nav, 0, 0, 48, 3),
        Panel(vega("Pod-to-Pod bytes", sankey(POD, SERVER, _flow_types("Intra-Node", "Inter-Node"))),
              0, 3, 48, 20),
        Panel(vega("Throughput by Pod pair", pair_throughput()), 0, 23, 48, 15),
    ]
    return Dashboard("Flows", "Who talks to whom inside the cluster (bytes, both directions) and the throughput "
                     "of each Pod pair over time.", panels,
                     controls=_SRC_CONTROLS + _DST_CONTROLS + ((kw("flowTypeStr"), "Flow type"),))


def _flow_records(nav: JsonObject) -> Dashboard:
    columns = [ipfix(n) for n in ("sourcePodName", "sourceIP", "destinationPodName", "destinationIP",
                                     "destinationServicePortName", "protocolIdentifierStr", "flowTypeStr",
                                     "octetDeltaCount", "reverseOctetDeltaCount", "throughput")]
    panels = [
        Panel(nav, 0, 0, 48, 3),
        Panel(metric("Records", [Metric("count", label="Records")]), 0, 3, 8, 10),
        Panel(timeseries("Records over time", [Series("records", split=kw("flowTypeStr"))]), 8, 3, 40, 10),
        Panel(saved_search("Flow records", columns), 0, 13, 48, 22),
    ]
    return Dashboard("Flow Records", "The records themselves: how many arrive, and a table of the latest.", panels,
                     controls=_SRC_CONTROLS + _DST_CONTROLS + ((kw("flowTypeStr"), "Flow type"),))


def _pod_to_service(nav: JsonObject) -> Dashboard:
    service = Endpoint("Service", "destinationServicePortName")
    has_service = {"wildcard": {kw("destinationServicePortName"): "?*"}}
    panels = [
        Panel(nav, 0, 0, 48, 3),
        Panel(vega("Pod-to-Service bytes", sankey(POD, service, has_service)), 0, 3, 48, 20),
        Panel(timeseries("Throughput to Services", [Series("client → Service", ipfix("octetDeltaCount"),
                                                           split=kw("destinationServicePortName"),
                                                           query=nonempty("destinationServicePortName"))]),
              0, 23, 24, 15),
        Panel(timeseries("Throughput from Services", [Series("Service → client", ipfix("reverseOctetDeltaCount"),
                                                             split=kw("destinationServicePortName"),
                                                             query=nonempty("destinationServicePortName"))]),
              24, 23, 24, 15),
        Panel(table("Traffic by Service", [_BYTES_OUT, _BYTES_IN,
                                           Metric("cardinality", kw("flowKeyPodToService"), "Connections"),
                                           Metric("cardinality", kw("sourceIP"), "Clients")],
                    [(kw("destinationServicePortName"), "Service port")], query=nonempty("destinationServicePortName")),
              0, 38, 48, 12),
    ]
    return Dashboard("Pod-to-Service", "Traffic from Pods to Services (ClusterIP and named ports).", panels,
                     controls=(*_SRC_CONTROLS, (kw("destinationServiceName"), "Service"),
                               (kw("destinationServicePortName"), "Service port")))


def _pod_to_external(nav: JsonObject) -> Dashboard:
    inside = Endpoint("Pod", "sourcePodName", "sourcePodNamespace", "sourceIP")
    outside = Endpoint("peer", "destinationPodName", "destinationPodNamespace", "destinationIP")
    to_external = f'{kw("flowTypeStr")}:"To External"'
    from_external = f'{kw("flowTypeStr")}:"From External"'
    panels = [
        Panel(nav, 0, 0, 48, 3),
        Panel(vega("External traffic bytes", sankey(inside, outside, _flow_types("To External", "From External"))),
              0, 3, 48, 18),
        Panel(timeseries("Throughput to external peers", [Series("Pod → peer", ipfix("octetDeltaCount"),
                                                                 split=kw("destinationIP"), query=to_external)]),
              0, 21, 24, 15),
        Panel(timeseries("Throughput from external clients", [Series("client → Pod", ipfix("octetDeltaCount"),
                                                                     split=kw("sourceIP"), query=from_external)]),
              24, 21, 24, 15),
        Panel(table("External peers", [_BYTES_OUT, _BYTES_IN,
                                       Metric("cardinality", kw("flowKeyPodToExternal"), "Connections")],
                    [(kw("destinationIP"), "Peer"), (kw("sourcePodName"), "Client Pod")], query=to_external),
              0, 36, 48, 12),
    ]
    return Dashboard("Pod-to-External", "Traffic between Pods and addresses outside the cluster, both ways.", panels,
                     controls=(*_SRC_CONTROLS, (kw("destinationIP"), "Peer address"), (kw("egressName"), "Egress")))


def _node_throughput(nav: JsonObject) -> Dashboard:
    src = Endpoint("source Node", "sourceNodeName")
    dst = Endpoint("destination Node", "destinationNodeName")
    panels = [
        Panel(nav, 0, 0, 48, 3),
        Panel(vega("Node-to-Node bytes", sankey(src, dst, _flow_types("Intra-Node", "Inter-Node"),
                                                octets=("octetDeltaCountFromSourceNode",
                                                        "reverseOctetDeltaCountFromSourceNode"))), 0, 3, 48, 18),
        Panel(timeseries("Transmitted by source Node", [Series("sent", ipfix("octetDeltaCountFromSourceNode"),
                                                               split=kw("sourceNodeName"),
                                                               query=nonempty("sourceNodeName"))]), 0, 21, 24, 15),
        Panel(timeseries("Received by source Node", [Series("received", ipfix("reverseOctetDeltaCountFromSourceNode"),
                                                            split=kw("sourceNodeName"),
                                                            query=nonempty("sourceNodeName"))]), 24, 21, 24, 15),
        Panel(timeseries("Received by destination Node", [Series(
            "received", ipfix("octetDeltaCountFromDestinationNode"), split=kw("destinationNodeName"),
            query=nonempty("destinationNodeName"))]), 0, 36, 48, 13),
    ]
    return Dashboard("Node Throughput", "Traffic between Nodes, as the Nodes' own counters report it.", panels,
                     controls=((kw("sourceNodeName"), "Source Node"), (kw("destinationNodeName"), "Destination Node")))


def _network_policy(nav: JsonObject, denied_table: JsonObject) -> Dashboard:
    egress = Endpoint("egress policy", "egressNetworkPolicyName", "egressNetworkPolicyNamespace")
    ingress = Endpoint("ingress policy", "ingressNetworkPolicyName", "ingressNetworkPolicyNamespace")
    with_policy = {"bool": {"should": [
        {"bool": {"must_not": {"term": {kw("egressNetworkPolicyName"): "N/A"}}}},
        {"bool": {"must_not": {"term": {kw("ingressNetworkPolicyName"): "N/A"}}}}], "minimum_should_match": 1}}
    bytes_ = Metric("sum", ipfix("octetDeltaCount"), "Bytes client → server")
    panels = [
        Panel(nav, 0, 0, 48, 3),
        Panel(pie("Bytes by ingress policy", bytes_, kw("ingressNetworkPolicyName"), "Ingress policy",
                  query=f'NOT {kw("ingressNetworkPolicyName")}:"N/A"'), 0, 3, 16, 16),
        Panel(vega("Egress → ingress policy bytes", sankey(egress, ingress, with_policy)), 16, 3, 32, 16),
        Panel(pie("Bytes by egress policy", bytes_, kw("egressNetworkPolicyName"), "Egress policy",
                  query=f'NOT {kw("egressNetworkPolicyName")}:"N/A"'), 0, 19, 16, 16),
        Panel(table("Connections by rule action", [_CONNECTIONS, Metric("count", label="Records")],
                    [(kw("ingressNetworkPolicyRuleActionStr"), "Ingress action"),
                     (kw("egressNetworkPolicyRuleActionStr"), "Egress action")]), 16, 19, 32, 16),
        Panel(denied_table, 0, 35, 48, 13),
    ]
    return Dashboard("Network Policy", "What the network policies allowed and denied.", panels,
                     controls=((kw("ingressNetworkPolicyNamespace"), "Ingress policy namespace"),
                               (kw("ingressNetworkPolicyName"), "Ingress policy"),
                               (kw("egressNetworkPolicyNamespace"), "Egress policy namespace"),
                               (kw("egressNetworkPolicyName"), "Egress policy"),
                               (kw("ingressNetworkPolicyRuleActionStr"), "Ingress action"),
                               (kw("egressNetworkPolicyRuleActionStr"), "Egress action")))


def _denied_table() -> JsonObject:
    return table("Denied connections by policy", [Metric("cardinality", kw("flowKey"), "Attempts"),
                                        Metric("count", label="Records")],
                 [(kw("sourcePodName"), "Client Pod"), (kw("destinationPodName"), "Server Pod"),
                  (kw("destinationIP"), "Server address"),
                  (kw("ingressNetworkPolicyName"), "Ingress policy"),
                  (kw("egressNetworkPolicyName"), "Egress policy")], query=denied())


def dashboards() -> list[Dashboard]:
    """Every dashboard, in navigation order."""
    nav = navigation()
    denied_table = _denied_table()
    boards = [_home(nav, denied_table), _overview(nav), _flows(nav), _flow_records(nav), _pod_to_service(nav),
              _pod_to_external(nav), _node_throughput(nav), _network_policy(nav, denied_table)]
    assert [b.title for b in boards] == list(_NAMES)
    return boards



def build() -> list[JsonObject]:
    """Every saved object: the data view, then each dashboard's panels (each once) and itself."""
    objects, seen = [data_view()], {DATA_VIEW_ID: data_view()}
    for board in dashboards():
        for obj in [p.obj for p in board.panels] + [board.saved_object()]:
            if obj["id"] in seen:
                if seen[obj["id"]] != obj:  # two different objects with one title
                    raise ValueError(f"two saved objects named {obj['attributes']['title']!r}")
                continue
            seen[obj["id"]] = obj
            objects.append(obj)
    return objects


def render(objects: Iterable[JsonObject] | None = None) -> str:
    """The ndjson text: one saved object per line, keys sorted."""
    return "".join(_json(o) + "\n" for o in (build() if objects is None else objects))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Write (or check) ipfix_antrea/dashboards/kibana.ndjson.")
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("kibana.ndjson"))
    p.add_argument("--check", action="store_true", help="exit 1 if the file differs from the generator's output")
    args = p.parse_args(argv)
    text = render()
    if args.check:
        same = args.out.exists() and args.out.read_text(encoding="utf-8") == text
        print(f"{args.out}: {'up to date' if same else 'differs from the generator output'}")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"{args.out}: {text.count(chr(10))} saved objects")
    return 0


if __name__ == "__main__":
    sys.exit(main())
