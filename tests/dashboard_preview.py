"""Pictures of the dashboards, drawn from their real query results, for the checks and the docs.

Kibana cannot run here, so a dashboard is previewed the way it is laid out: every panel at its
``gridData`` place (48 columns, rows of `ROW` pixels), drawn from the result of the query Kibana
would run (`kibana_queries`). Each panel becomes a small Vega spec (pie, bars, lines, table,
big numbers, text) or, for Vega panels, the panel's own spec with its Elasticsearch data
replaced by the response; npm's ``vega`` renders them headless to SVG (``tests/vega``), the
SVGs are nested into one page, and ``rsvg-convert`` turns the page into a PNG. The colours and
fonts are not Kibana's; the data, the layout and the panel kinds are.

Also a command, to refresh the pictures in docs/img from a running test Elasticsearch:

    eval "$(.ci/elasticsearch.sh env)"; python3 tests/dashboard_preview.py --out docs/img
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest

for _path in (Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent):  # run as a script
    if str(_path) not in sys.path:
        sys.path.append(str(_path))

import kibana_queries as kq  # noqa: E402
from kibana_fields import dashboard_controls  # noqa: E402

VEGA_DIR = Path(__file__).resolve().parent / "vega"
REQUIRE_ENV = "IPFIX_ANTREA_REQUIRE_VEGA"
WIDTH = 1280
COLUMNS = 48
ROW = 20  # Kibana's dashboard grid row height in pixels
TITLE_BAR = 22
CONTROL_BAR = 44
PALETTE = ["#54B399", "#6092C0", "#D36086", "#9170B8", "#CA8EAE", "#D6BF57", "#B9A888", "#DA8B45",
           "#AA6556", "#E7664C"]


def render_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def require_renderer() -> tuple[str, str]:
    """(node, rsvg-convert), with tests/vega installed; skips the test without them (fails in CI)."""
    node, rsvg = shutil.which("node"), shutil.which("rsvg-convert")
    missing = [name for name, path in (("node", node), ("rsvg-convert (librsvg2-bin)", rsvg)) if not path]
    if not (VEGA_DIR / "node_modules" / "vega").is_dir():
        missing.append("tests/vega/node_modules (cd tests/vega && npm ci)")
    if missing:
        msg = f"missing: {', '.join(missing)}"
        if render_required():
            pytest.fail(f"{msg}, and {REQUIRE_ENV} is set", pytrace=False)
        pytest.skip(msg)
    return node, rsvg


def render_vega(jobs: list[dict]) -> list[dict]:
    """Run tests/vega/render.js on ``jobs`` ({"spec", "data": [names]}); its results in order."""
    node, _ = require_renderer()
    proc = subprocess.run([node, str(VEGA_DIR / "render.js")], input=json.dumps(jobs).encode(),
                          capture_output=True, timeout=300, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"render.js failed: {proc.stderr.decode(errors='replace')}")
    return json.loads(proc.stdout)


def svg_to_png(svg: str, path: Path) -> None:
    _, rsvg = require_renderer()
    subprocess.run([rsvg, "--format", "png", "--background-color", "#F7F8FC", "-o", str(path)],
                   input=svg.encode(), check=True, timeout=120)


# --------------------------------------------------------------------------- panel specs

def _base(width: int, height: int, data: list, marks: list, **extra) -> dict:
    return {"$schema": "https://vega.github.io/schema/vega/v5.json", "width": width, "height": height,
            "padding": 4, "autosize": {"type": "fit", "contains": "padding"}, "background": "white",
            "config": {"text": {"font": "DejaVu Sans"},
                       "axis": {"labelFont": "DejaVu Sans", "titleFont": "DejaVu Sans"},
                       "legend": {"labelFont": "DejaVu Sans"}},
            "data": data, "marks": marks, **extra}


def _short(value, limit: int = 34) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _number(value) -> str:
    if value is None:
        return "-"
    value = float(value)
    for unit, size in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.0f}" if value == int(value) else f"{value:.2f}"


def pie_spec(result: kq.PanelResult, width: int, height: int) -> dict:
    values = [{"label": _short(keys[0], 30), "value": ms[0]} for keys, ms in result.rows if ms[0]]
    radius = min(width * 0.4, height) / 2 - 4
    return _base(width, height, [{"name": "t", "values": values, "transform": [
        {"type": "pie", "field": "value", "sort": True}]}], [
        {"type": "arc", "from": {"data": "t"}, "encode": {"enter": {
            "fill": {"scale": "color", "field": "label"}, "x": {"value": radius + 6}, "y": {"signal": "height / 2"},
            "startAngle": {"field": "startAngle"}, "endAngle": {"field": "endAngle"},
            "innerRadius": {"value": radius * 0.55}, "outerRadius": {"value": radius},
            "stroke": {"value": "white"}}}}],
        scales=[{"name": "color", "type": "ordinal", "range": PALETTE, "domain": {"data": "t", "field": "label"}}],
        legends=[{"fill": "color", "orient": "right", "labelLimit": max(60, width - 2 * radius - 60),
                  "labelFontSize": 10, "symbolSize": 60}])


def bars_spec(result: kq.PanelResult, width: int, height: int) -> dict:
    values = [{"label": _short(keys[0], 36), "value": ms[0] or 0} for keys, ms in result.rows]
    return _base(width, height, [{"name": "t", "values": values}], [
        {"type": "rect", "from": {"data": "t"}, "encode": {"enter": {
            "y": {"scale": "y", "field": "label"}, "height": {"scale": "y", "band": 1},
            "x": {"scale": "x", "value": 0}, "x2": {"scale": "x", "field": "value"}, "fill": {"value": PALETTE[1]}}}},
        {"type": "text", "from": {"data": "t"}, "encode": {"enter": {
            "y": {"scale": "y", "field": "label", "band": 0.5}, "x": {"scale": "x", "field": "value", "offset": 3},
            "baseline": {"value": "middle"}, "fontSize": {"value": 10},
            "text": {"signal": "format(datum.value, '.3~s')"}}}}],
        scales=[{"name": "y", "type": "band", "range": "height", "padding": 0.2,
                 "domain": {"data": "t", "field": "label"}},
                {"name": "x", "type": "linear", "range": "width", "nice": True, "zero": True,
                 "domain": {"data": "t", "field": "value"}}],
        axes=[{"orient": "left", "scale": "y", "labelFontSize": 10, "labelLimit": 220},
              {"orient": "bottom", "scale": "x", "format": "~s", "labelFontSize": 10,
               "title": result.labels[-1] if result.labels else ""}])


def lines_spec(result: kq.PanelResult, width: int, height: int) -> dict:
    values = [{"series": _short(label, 40) or "all", "t": t, "v": v}
              for label, points in result.series for t, v in points if v is not None]
    return _base(width, height, [{"name": "t", "values": values}], [
        {"type": "group", "from": {"facet": {"name": "s", "data": "t", "groupby": "series"}}, "marks": [
            {"type": "line", "from": {"data": "s"}, "encode": {"enter": {
                "x": {"scale": "x", "field": "t"}, "y": {"scale": "y", "field": "v"},
                "stroke": {"scale": "color", "field": "series"}, "strokeWidth": {"value": 2}}}}]}],
        scales=[{"name": "x", "type": "time", "range": "width", "domain": {"data": "t", "field": "t"}},
                {"name": "y", "type": "linear", "range": "height", "nice": True, "zero": True,
                 "domain": {"data": "t", "field": "v"}},
                {"name": "color", "type": "ordinal", "range": PALETTE, "domain": {"data": "t", "field": "series"}}],
        axes=[{"orient": "bottom", "scale": "x", "labelFontSize": 10, "format": "%H:%M"},
              {"orient": "left", "scale": "y", "format": "~s", "grid": True, "labelFontSize": 10}],
        legends=[{"stroke": "color", "orient": "bottom", "direction": "horizontal", "columns": 3,
                  "labelFontSize": 10, "symbolType": "stroke", "labelLimit": 300}])


def table_spec(header: list[str], rows: list[list[str]], width: int, height: int, keys: int = 1) -> dict:
    """A table; the first ``keys`` columns (names) get twice the width of the others (numbers)."""
    line = 17
    shown = rows[: max(1, (height - line) // line)]
    weights = [2 if c < keys else 1 for c in range(len(header))]
    unit = width / sum(weights)
    left = [sum(weights[:c]) * unit for c in range(len(header))]
    cells = [{"r": 0, "c": c, "text": h, "head": True} for c, h in enumerate(header)]
    cells += [{"r": r + 1, "c": c, "text": text, "head": False}
              for r, row in enumerate(shown) for c, text in enumerate(row)]
    for cell in cells:
        cell["x"], cell["limit"] = left[cell["c"]], weights[cell["c"]] * unit - 8
    return _base(width, height, [{"name": "t", "values": cells}], [
        {"type": "rule", "encode": {"enter": {"x": {"value": 0}, "x2": {"signal": "width"},
                                              "y": {"value": line - 3}, "stroke": {"value": "#D3DAE6"}}}},
        {"type": "text", "from": {"data": "t"}, "encode": {"enter": {
            "x": {"field": "x"}, "y": {"signal": f"datum.r * {line} + 10"}, "limit": {"field": "limit"},
            "fontSize": {"value": 10.5}, "fontWeight": {"signal": "datum.head ? 'bold' : 'normal'"},
            "text": {"field": "text"}, "baseline": {"value": "middle"}}}}])


def numbers_spec(result: kq.PanelResult, width: int, height: int) -> dict:
    values = result.rows[0][1] if result.rows else []
    labels = result.labels[-len(values):] if values else []
    items = [{"i": i, "value": _number(v), "label": label}
             for i, (v, label) in enumerate(zip(values, labels, strict=True))]
    n = max(1, len(items))
    return _base(width, height, [{"name": "t", "values": items}], [
        {"type": "text", "from": {"data": "t"}, "encode": {"enter": {
            "x": {"signal": f"(datum.i + 0.5) * width / {n}"}, "y": {"signal": "height / 2 - 4"},
            "align": {"value": "center"}, "fontSize": {"value": min(30, width / n / 5.5)},
            "fontWeight": {"value": "bold"},
            "fill": {"value": "#343741"}, "text": {"field": "value"}}}},
        {"type": "text", "from": {"data": "t"}, "encode": {"enter": {
            "x": {"signal": f"(datum.i + 0.5) * width / {n}"}, "y": {"signal": "height / 2 + 18"},
            "align": {"value": "center"}, "fontSize": {"value": 11}, "fill": {"value": "#69707D"},
            "text": {"field": "label"}}}}])


def text_spec(text: str, width: int, height: int) -> dict:
    plain = re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", text).replace("**", "")
    return _base(width, height, [], [{"type": "text", "encode": {"enter": {
        "x": {"value": 6}, "y": {"signal": "height / 2"}, "baseline": {"value": "middle"}, "fontSize": {"value": 13},
        "fill": {"value": "#006BB8"}, "text": {"value": plain}}}}])


def panel_spec(result: kq.PanelResult, width: int, height: int) -> dict:
    """A Vega spec that draws ``result`` in a ``width`` x ``height`` box."""
    if result.kind == "vega":
        spec = dict(result.vega, width=width, height=height, background="white",
                    autosize={"type": "fit", "contains": "padding"})
        spec["config"] = {"text": {"font": "DejaVu Sans"}, "axis": {"labelFont": "DejaVu Sans"},
                          "legend": {"labelFont": "DejaVu Sans"}}
        return spec
    if result.kind == "pie":
        return pie_spec(result, width, height)
    if result.kind in ("horizontal_bar", "histogram"):
        return bars_spec(result, width, height)
    if result.kind == "metric":
        return numbers_spec(result, width, height)
    if result.kind == "table":
        rows = [[_short(k, 40) for k in keys] + [_number(v) for v in ms] for keys, ms in result.rows]
        return table_spec(result.labels, rows, width, height, keys=len(result.labels) - len(result.rows[0][1]))
    if result.kind == "search":
        rows = [[_number(v) if isinstance(v, (int, float)) else _short(v, 40) for v in hit] for hit in result.hits]
        header = [label.removeprefix("ipfix.") for label in result.labels]
        first = result.hits[0] if result.hits else []
        keys = next((i for i, v in enumerate(first) if isinstance(v, (int, float))), len(header))
        return table_spec(header, rows, width, height, keys=keys)
    if result.kind.startswith("tsvb-") and result.kind != "tsvb-markdown":
        return lines_spec(result, width, height)
    if result.kind in ("markdown", "tsvb-markdown"):
        return text_spec(result.text, width, height)
    raise ValueError(f"no preview for {result.kind!r}")


# --------------------------------------------------------------------------- the page

def _inner(svg: str) -> tuple[str, float, float]:
    """An SVG document's root element without the XML prologue, and its size."""
    m = re.search(r"<svg\b[^>]*>", svg)
    if m is None:
        raise ValueError("not an SVG")
    width = float(re.search(r'width="([\d.]+)"', m.group(0)).group(1))
    height = float(re.search(r'height="([\d.]+)"', m.group(0)).group(1))
    return svg[m.start():], width, height


def compose(title: str, panels: list[tuple[dict, str, str]], controls: list[tuple[str, list]],
            filters: list[str]) -> str:
    """One SVG page: the title, the filter pills, the controls, then each (gridData, title, svg)."""
    col = WIDTH / COLUMNS
    top = 44 + (CONTROL_BAR if controls else 0) + (26 if filters else 0)
    height = top + max((g["y"] + g["h"]) * ROW for g, _, _ in panels) + 8
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'font-family="DejaVu Sans">',
           f'<rect width="{WIDTH}" height="{height}" fill="#F7F8FC"/>',
           f'<text x="12" y="28" font-size="18" font-weight="bold" fill="#1A1C21">{html.escape(title)}</text>']
    y = 44
    if filters:
        x = 12
        for label in filters:
            w = 8 + 6.6 * len(label)
            out.append(f'<rect x="{x}" y="{y}" width="{w}" height="20" rx="10" fill="#E0E5EE"/>'
                       f'<text x="{x + 8}" y="{y + 14}" font-size="11" fill="#BD271E">NOT {html.escape(label)}</text>')
            x += w + 8
        y += 26
    if controls:
        w = (WIDTH - 24) / len(controls)
        for i, (label, options) in enumerate(controls):
            x = 12 + i * w
            first = f"{len(options)} options" if options else "no options"
            out.append(f'<rect x="{x}" y="{y + 4}" width="{w - 8}" height="30" rx="4" fill="white" stroke="#D3DAE6"/>'
                       f'<text x="{x + 8}" y="{y + 23}" font-size="11" fill="#343741">'
                       f'{html.escape(_short(label, 24))}: <tspan fill="#69707D">Any ({first})</tspan></text>')
    for grid, panel_title, svg in panels:
        x, y0 = grid["x"] * col + 4, top + grid["y"] * ROW + 4
        w, h = grid["w"] * col - 8, grid["h"] * ROW - 8
        inner, iw, ih = _inner(svg)
        out.append(f'<rect x="{x}" y="{y0}" width="{w}" height="{h}" rx="6" fill="white" stroke="#D3DAE6"/>')
        if panel_title:
            out.append(f'<text x="{x + 8}" y="{y0 + 16}" font-size="12" font-weight="bold" fill="#343741">'
                       f'{html.escape(panel_title)}</text>')
        offset = TITLE_BAR if panel_title else 0
        out.append(f'<svg x="{x + 4}" y="{y0 + offset}" width="{w - 8}" height="{h - offset - 4}" '
                   f'viewBox="0 0 {iw} {ih}" preserveAspectRatio="xMidYMid meet">'
                   + inner.split(">", 1)[1].rsplit("</svg>", 1)[0] + "</svg>")
    out.append("</svg>")
    return "\n".join(out)


def panel_size(grid: dict, titled: bool) -> tuple[int, int]:
    col = WIDTH / COLUMNS
    return int(grid["w"] * col - 16), int(grid["h"] * ROW - 16 - (TITLE_BAR if titled else 0))


def dashboard_picture(dashboard: dict, objects: dict[str, dict], ctx: kq.Context, png: Path | None) -> dict:
    """Run every panel of ``dashboard`` in its context, render the page, write ``png``.

    Returns {panel title: (PanelResult, data sets read back from Vega)}.
    """
    ctx = kq.Context(ctx.es, ctx.index, ctx.time_range, ctx.data_views, kq.dashboard_filters(dashboard))
    panels = json.loads(dashboard["attributes"]["panelsJSON"])
    refs = {r["name"]: r["id"] for r in dashboard["references"]}
    jobs, placed, results = [], [], {}
    for panel in panels:
        obj = objects[refs[f"{panel['panelIndex']}:{panel['panelRefName']}"]]
        result = kq.run(obj, ctx)
        title = "" if result.kind == "markdown" else obj["attributes"]["title"].removeprefix("ipfix-antrea: ")
        width, height = panel_size(panel["gridData"], bool(title))
        wanted = ["links", "points"] if result.kind == "vega" else []
        spec_data = {d["name"] for d in (result.vega or {}).get("data", [])}
        jobs.append({"spec": panel_spec(result, width, height), "data": [n for n in wanted if n in spec_data]})
        placed.append((panel["gridData"], title))
        results[obj["attributes"]["title"]] = result
    rendered = render_vega(jobs)
    errors = [f"{title}: {r['error']}" for (_, title), r in zip(placed, rendered, strict=True) if "error" in r]
    if errors:
        raise RuntimeError("Vega could not render:\n" + "\n".join(errors))
    controls = kq.run_dashboard_controls(dashboard, ctx).options if dashboard_controls(dashboard) else []
    pills = [f["meta"].get("alias") or f["meta"].get("key", "") for f in ctx.filters if not f["meta"].get("disabled")]
    svg = compose(dashboard["attributes"]["title"],
                  [(g, t, r["svg"]) for (g, t), r in zip(placed, rendered, strict=True)], controls, pills)
    if png is not None:
        svg_to_png(svg, png)
    return {title: (results[title], r["data"]) for title, r in
            zip([objects[refs[f"{p['panelIndex']}:{p['panelRefName']}"]]["attributes"]["title"] for p in panels],
                rendered, strict=True)}


def picture_name(dashboard: dict) -> str:
    name = dashboard["attributes"]["title"].removeprefix("ipfix-antrea: ")
    return "dashboard-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + ".png"


# --------------------------------------------------------------------------- loading data

def load_cluster(url: str, user: str | None, password: str | None, prefix: str, workdir: Path) -> kq.TimeRange:
    """Load the simulated cluster (benchmarks/antrea_cluster.py) through the real collector
    into ``prefix-YYYY.MM.DD`` (index template ``prefix``); the time range it covers."""
    from benchmarks.antrea_cluster import WINDOW, cluster_stream
    from ipfix_antrea import cli

    stream = workdir / "cluster.ipfix"
    stream.write_bytes(cluster_stream())
    argv = ["--input", f"file:{stream}", "--sink", f"elasticsearch:{url}", "--enrich", "antrea",
            "--es-index", f"{prefix}-%Y.%m.%d", "--es-template-name", prefix,
            "--es-dead-letter", str(workdir / "dead-letter.jsonl")]
    if user:
        argv += ["--es-user", user, "--es-password", password or ""]
    try:
        status = cli.main(argv, environ={})
    except SystemExit as exc:  # a command line this collector does not take (exit 2)
        status = exc.code
    if status != 0:
        raise RuntimeError(f"ipfix-collect exited {status}")
    return kq.TimeRange(datetime.fromtimestamp(WINDOW[0], UTC),
                        datetime.fromtimestamp(WINDOW[1] + 2, UTC))


def _main(argv: list[str] | None = None) -> None:
    import argparse

    from elasticsearch import Elasticsearch

    from ipfix_antrea.dashboards import saved_objects

    p = argparse.ArgumentParser(description="Render the dashboards' pictures from the simulated cluster.")
    p.add_argument("--out", type=Path, required=True, help="directory for dashboard-*.png")
    args = p.parse_args(argv)
    url = os.environ["IPFIX_ANTREA_ES_URL"]
    user, password = os.environ.get("IPFIX_ANTREA_ES_USER"), os.environ.get("IPFIX_ANTREA_ES_PASSWORD")
    prefix = f"t-preview-{uuid.uuid4().hex[:8]}"
    es = Elasticsearch(url, basic_auth=(user, password or "") if user else None, request_timeout=60)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            time_range = load_cluster(url, user, password, prefix, Path(tmp))
        es.indices.refresh(index=f"{prefix}-*")
        objects = saved_objects()
        by_id = {o["id"]: o for o in objects}
        views = {o["id"]: o["attributes"]["timeFieldName"] for o in objects if o["type"] == "index-pattern"}
        ctx = kq.Context(es, f"{prefix}-*", time_range, views)
        args.out.mkdir(parents=True, exist_ok=True)
        for o in objects:
            if o["type"] == "dashboard":
                dashboard_picture(o, by_id, ctx, args.out / picture_name(o))
                print(args.out / picture_name(o))
    finally:
        es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
        es.options(ignore_status=404).indices.delete_index_template(name=prefix)


if __name__ == "__main__":
    _main()
