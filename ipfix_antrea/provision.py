"""`ipfix-collect setup`: prepare Elasticsearch and Kibana for the collector's documents.

Two things make flow documents usable before the first record arrives: Elasticsearch's index
template (the mapping of every element and derived field, from the registry and the document
stage, exactly as the Elasticsearch sink installs it at start) and Kibana's saved objects (the
``flow-*`` data view and the dashboards that ship with the package, `DASHBOARDS`). Both steps are
idempotent: the template is PUT (replaced), the objects are imported with ``overwrite``; running
setup again after an upgrade brings both up to date.

Services often start in any order (a Kubernetes Job runs setup while Elasticsearch and Kibana
are still booting): with ``wait`` seconds, each step keeps trying while the service is not there
yet (connection refused, 5xx, Kibana's 503 while it migrates), and fails at once on an answer
that waiting will not change (bad credentials, a refused object).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

from .documents import DocumentField
from .kibana import ImportResult, KibanaClient, KibanaError
from .registry import Registry
from .sinks.es_options import ElasticsearchOptions

__all__ = ["DASHBOARDS", "data_view_ids", "import_dashboards", "install_template", "read_dashboards"]

log = logging.getLogger("ipfix_antrea.setup")

#: The Kibana saved objects that ship with the package (data view ``flow-*`` and the dashboards).
DASHBOARDS = "dashboards/kibana.ndjson"
_KIBANA_POLL = 2.0  # seconds between tries while Kibana is not available yet


def read_dashboards(path: str | Path | None = None) -> bytes:
    """The saved objects to import: the file at ``path``, or the packaged `DASHBOARDS`."""
    if path is not None:
        return Path(path).read_bytes()
    return resources.files("ipfix_antrea").joinpath(DASHBOARDS).read_bytes()


def data_view_ids(ndjson: bytes) -> list[tuple[str, str]]:
    """(id, title) of each data view (``index-pattern`` object) in an ndjson export."""
    views = []
    for line in ndjson.splitlines():
        if not line.strip():
            continue
        obj = json.loads(line)
        if obj.get("type") == "index-pattern":
            views.append((obj["id"], obj.get("attributes", {}).get("title", "")))
    return views


def install_template(hosts: Sequence[str], settings: ElasticsearchOptions, registry: Registry,
                     fields: Sequence[DocumentField], *, wait: float) -> bool:
    """Installs (or replaces) the index template on the cluster at ``hosts``; ``settings`` are
    the Elasticsearch sink's (`ElasticsearchOptions`: index pattern, template name, credentials,
    TLS). Returns whether the cluster has the unsigned_long type. Raises SinkError."""
    from .sinks.base import SinkError

    # The client library is a collector extra: imported when setup runs, as the sink does.
    try:
        from elasticsearch import ApiError

        from .sinks.elasticsearch import describe_api_error, install_index_template, make_client, retrying
    except ImportError as exc:
        raise SinkError(f"elasticsearch: setup needs the elasticsearch client ({exc.name} is not "
                        "installed): pip install 'ipfix-antrea[collector]'") from None

    where = ", ".join(hosts)
    client = make_client(hosts, settings)
    try:
        try:
            # Cluster health answers on every distribution (the root endpoint is not in all of
            # them) and needs the same credentials as the template.
            retrying(client.cluster.health, f"reaching Elasticsearch at {where}", retry_for=wait,
                     name="elasticsearch")
        except ApiError as exc:
            raise SinkError(f"elasticsearch: Elasticsearch at {where} refused the request: "
                            f"{describe_api_error(exc)}") from exc
        return install_index_template(client, settings, registry, fields, retry_for=wait, name="elasticsearch")
    finally:
        client.close()


def import_dashboards(kibana: KibanaClient, ndjson: bytes, *, wait: float,
                      index_patterns: Sequence[str] = ()) -> ImportResult:
    """Imports the saved objects ``ndjson`` into Kibana (overwriting), once Kibana is available
    (waiting up to ``wait`` seconds), then makes the first data view the default one unless
    Kibana has a default already. Warns when no data view covers ``index_patterns`` (the
    sink's indices). Raises KibanaError."""
    _until_available(kibana, wait)
    result = kibana.import_objects(ndjson)
    views = data_view_ids(ndjson)
    titles = {title for _, title in views}
    for pattern in index_patterns:
        if pattern not in titles:
            log.warning("the dashboards read the data view %s, but documents go to %s: they will "
                        "show nothing unless the index pattern is %s", ", ".join(sorted(titles)) or "(none)",
                        pattern, ", ".join(sorted(titles)))
    if views:
        kibana.set_default_data_view(views[0][0])
    return result


def _until_available(kibana: KibanaClient, wait: float) -> None:
    """Returns once Kibana reports itself available; keeps asking for ``wait`` seconds while it
    cannot be reached, answers 503 (starting, migrating) or is not available yet."""
    deadline = time.monotonic() + wait
    while True:
        try:
            level = kibana.status()
            if level == "available":
                return
            problem = f"Kibana's status is {level}"
        except KibanaError as exc:
            if exc.status not in (None, 502, 503, 504):
                raise
            problem = str(exc)
        if time.monotonic() >= deadline:
            raise KibanaError(f"{problem}{f' after waiting {wait:g} s' if wait else ''}")
        log.info("waiting for Kibana: %s", problem)
        time.sleep(min(_KIBANA_POLL, max(0.0, deadline - time.monotonic())))

