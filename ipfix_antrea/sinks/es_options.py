"""The Elasticsearch sink's settings and flags, apart from the sink itself: `ipfix-collect` builds
its command line from every sink's flags at start, and the `elasticsearch` client library that
the sink needs takes about 0.3 s to import. Keeping the flags here means only runs that use the
sink pay for the client (`ipfix_antrea.sinks` opens the sink module when the sink is opened).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from datetime import UTC, datetime

from ..units import number
from .base import SinkError
from .es_mapping import index_patterns_for

__all__ = ["ElasticsearchOptions", "add_arguments", "add_connection_arguments", "add_index_arguments",
           "parse_hosts"]


@dataclass
class ElasticsearchOptions:
    """The sink's settings; the defaults are those of the command line."""

    index: str = "flow-%Y.%m.%d"
    template: str = "install"  # or "skip"
    template_name: str = "ipfix-antrea-flow"
    user: str | None = None
    password: str | None = None
    api_key: str | None = None
    ca: str | None = None
    insecure: bool = False
    timeout: float = 30.0
    ids: str = "auto"  # or "derived"
    dead_letter: str = "elasticsearch-dead-letter.jsonl"
    batch_docs: int = 2000
    batch_bytes: int = 8 * 1024 * 1024
    flush_interval: float = 1.0
    in_flight: int = 2
    retry_for: float = 0.0  # seconds; 0 = for ever

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> ElasticsearchOptions:
        """The settings from a parsed command line (`es_<field>` attributes), defaults for the
        rest or when ``options`` is None."""
        values = {}
        for f in fields(cls):
            value = getattr(options, f"es_{f.name}", None) if options is not None else None
            if value is not None:
                values[f.name] = value
        return cls(**values)

    def check(self, name: str) -> None:
        """Raise SinkError (naming the sink ``name``) for a setting that cannot work."""
        if self.ids not in ("auto", "derived"):
            raise SinkError(f"{name}: ids must be 'auto' or 'derived', not {self.ids!r}")
        if self.template not in ("install", "skip"):
            raise SinkError(f"{name}: template must be 'install' or 'skip', not {self.template!r}")
        for setting in ("batch_docs", "batch_bytes", "in_flight"):
            if getattr(self, setting) < 1:
                raise SinkError(f"{name}: {setting} must be at least 1")
        if self.flush_interval < 0 or self.retry_for < 0:
            raise SinkError(f"{name}: flush_interval and retry_for cannot be negative")
        _check_index_pattern(name, self.index)


def parse_hosts(arg: str | None) -> list[str]:
    """``URL[,URL...]`` (a scheme-less host gets ``http://``) -> the cluster's node URLs. Raises
    SinkError when there is none."""
    hosts = [h.strip() for h in (arg or "").split(",") if h.strip()]
    if not hosts:
        raise SinkError("elasticsearch needs at least one URL: elasticsearch:http://HOST:9200[,URL...]")
    return [h if "://" in h else f"http://{h}" for h in hosts]


def _check_index_pattern(name: str, index: str) -> None:
    """Refuse a pattern that cannot make a valid index name (Elasticsearch wants lowercase, no
    spaces or \\/*?"<>|,#:, not starting with -_+) or that cannot have a template."""
    sample = datetime(2024, 12, 31, 23, 59, 58, tzinfo=UTC).strftime(index)
    bad = set(' \\/*?"<>|,#:') & set(sample)
    if not sample or sample != sample.lower() or bad or sample[0] in "-_+" or sample in (".", ".."):
        raise SinkError(f"{name}: index pattern {index!r} gives {sample!r}, not a valid index name "
                        "(lowercase, no spaces or \\/*?\"<>|,#:, not starting with -, _ or +)")
    try:
        index_patterns_for(index)
    except ValueError as exc:
        raise SinkError(f"{name}: {exc}") from None



def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The sink's --es-* flags. Every flag can also come from the environment variable
    IPFIX_COLLECT_<FLAG> (e.g. IPFIX_COLLECT_ES_PASSWORD), which keeps secrets off the command line."""
    d = ElasticsearchOptions()
    g = parser.add_argument_group(
        "elasticsearch sink (--sink elasticsearch:URL[,URL...]; every flag also as IPFIX_COLLECT_<FLAG>)")
    add_index_arguments(g)
    g.add_argument("--es-template", choices=("install", "skip"), default=d.template,
                   help="install or update the index template before the first document (default; "
                   "in the background, so the collector does not wait for Elasticsearch), or leave "
                   "the cluster's templates alone")
    add_connection_arguments(g)
    g.add_argument("--es-ids", choices=("auto", "derived"), default=d.ids,
                   help="document ids: assigned by Elasticsearch (auto, the default and fastest), or "
                   "derived from exporter, domain, export time, sequence number and record index, "
                   "so that a replay does not store a record twice")
    g.add_argument("--es-dead-letter", metavar="PATH", default=d.dead_letter,
                   help="JSON Lines file (appended) for documents Elasticsearch refuses or that could "
                   "not be delivered, each with the reason; created, with its directory, when the first "
                   "document has to go there (default %(default)s)")
    g.add_argument("--es-batch-docs", type=number(int, minimum=1), metavar="N", default=d.batch_docs,
                   help="documents per bulk request at most (default %(default)s)")
    g.add_argument("--es-batch-bytes", type=number(int, minimum=1), metavar="BYTES", default=d.batch_bytes,
                   help="bytes per bulk request at most (default %(default)s)")
    g.add_argument("--es-flush-interval", type=number(float, minimum=0), metavar="SECONDS", default=d.flush_interval,
                   help="send a partial batch once its first document is this old (default %(default)s)")
    g.add_argument("--es-in-flight", type=number(int, minimum=1), metavar="N", default=d.in_flight,
                   help="bulk requests sent concurrently (default %(default)s); when all are busy the "
                   "collector waits (backpressure)")
    g.add_argument("--es-retry-for", type=number(float, minimum=0), metavar="SECONDS", default=d.retry_for,
                   help="how long to keep retrying a request that fails with 429, a 5xx or a "
                   "connection error, and the index template while Elasticsearch is not up yet; then "
                   "the documents go to the dead-letter file and the sink fails (default 0 = for ever)")


def add_index_arguments(group: argparse._ActionsContainer) -> None:
    """--es-index and --es-template-name: which indices, which index template (the sink's and
    ``ipfix-collect setup``'s)."""
    d = ElasticsearchOptions()
    group.add_argument("--es-index", metavar="PATTERN", default=d.index,
                       help="index name: strftime of the document's @timestamp in UTC (default %(default)s); "
                       "the index template covers the text before the first %%-directive plus * (flow-*)")
    group.add_argument("--es-template-name", metavar="NAME", default=d.template_name,
                       help="name of the index template (default %(default)s)")


def add_connection_arguments(group: argparse._ActionsContainer) -> None:
    """How to reach and log in to Elasticsearch (the sink's and ``ipfix-collect setup``'s)."""
    d = ElasticsearchOptions()
    group.add_argument("--es-user", metavar="USER", default=d.user, help="basic authentication user")
    group.add_argument("--es-password", metavar="PASSWORD", default=d.password,
                       help="basic authentication password (better: IPFIX_COLLECT_ES_PASSWORD)")
    group.add_argument("--es-api-key", metavar="KEY", default=d.api_key,
                       help="API key: the base64 form Elasticsearch returns as 'encoded', or ID:KEY "
                       "(better: IPFIX_COLLECT_ES_API_KEY); takes precedence over --es-user")
    group.add_argument("--es-ca", metavar="PEM", default=d.ca,
                       help="CA certificate(s) that the servers' TLS certificates must chain to")
    group.add_argument("--es-insecure", action="store_true", default=d.insecure,
                       help="do not verify TLS certificates (test set-ups only)")
    group.add_argument("--es-timeout", type=number(float, above=0), metavar="SECONDS", default=d.timeout,
                       help="per-request timeout (default %(default)s); a timed-out request is retried")
