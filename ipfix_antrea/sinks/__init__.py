"""Sinks: where documents go. One registry maps a spec's scheme to a factory.

A sink spec is `SCHEME` or `SCHEME:ARG`; everything after the first colon is the factory's
argument, untouched (so `elasticsearch:http://host:9200` keeps its own colons). The collector
opens sinks with `open_sink(spec, options)` and knows none of them by name; a new sink registers
itself here with one line and touches nothing else. A sink with settings of its own (batch
sizes, credentials) registers an ``add_arguments(parser)`` hook that adds its flags to the
command line (prefixed with its scheme, e.g. ``--es-index``); its factory then reads them from
``options``, the parsed command line, or uses its defaults when ``options`` is None (a library
caller). Every flag can also be set from the environment (see `ipfix_antrea.cli`). What a sink
may need to know of the documents it will get -- the element registry and the fields the
document stage writes, from which Elasticsearch's index template is made -- comes in a
`SinkContext`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

from .base import (
    SINK_GAUGES,
    Histogram,
    HistogramSnapshot,
    Sink,
    SinkBase,
    SinkContext,
    SinkError,
    StreamSink,
    serialize,
)
from .es_options import add_arguments as _es_arguments
from .jsonl import JsonLinesSink, add_jsonl_arguments, open_jsonl
from .stdout import StdoutSink, open_stdout

__all__ = [
    "SINK_GAUGES",
    "Sink",
    "SinkBase",
    "SinkContext",
    "SinkError",
    "SinkSpec",
    "StreamSink",
    "Histogram",
    "HistogramSnapshot",
    "JsonLinesSink",
    "StdoutSink",
    "serialize",
    "register_sink",
    "sink_schemes",
    "parse_sink_spec",
    "open_sink",
]

SinkFactory = Callable[[str | None, argparse.Namespace | None, SinkContext], Sink]
AddArguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class SinkScheme:
    scheme: str
    factory: SinkFactory  # factory(arg, options, context): arg after the colon (or None), parsed flags
    usage: str  # e.g. "jsonl:PATH"
    help: str
    add_arguments: AddArguments | None = None  # adds the sink's own flags to the command line


_SCHEMES: dict[str, SinkScheme] = {}


def register_sink(scheme: str, factory: SinkFactory, *, usage: str, help: str,
                  add_arguments: AddArguments | None = None) -> None:
    """Make ``SCHEME[:ARG]`` open ``factory(ARG or None, options, context)``. Re-registering
    replaces."""
    _SCHEMES[scheme.lower()] = SinkScheme(scheme.lower(), factory, usage, help, add_arguments)


def sink_schemes() -> list[SinkScheme]:
    """The registered schemes, in registration order (for --help)."""
    return list(_SCHEMES.values())


@dataclass(frozen=True)
class SinkSpec:
    scheme: str
    arg: str | None  # None when the spec has no colon

    def __str__(self) -> str:
        return self.scheme if self.arg is None else f"{self.scheme}:{self.arg}"


def parse_sink_spec(text: str) -> SinkSpec:
    """``SCHEME`` or ``SCHEME:ARG`` -> SinkSpec. Raises SinkError for an unknown scheme."""
    scheme, sep, arg = text.partition(":")
    scheme = scheme.strip().lower()
    if scheme not in _SCHEMES:
        known = ", ".join(s.usage for s in _SCHEMES.values())
        raise SinkError(f"unknown sink {text!r}; known sinks: {known}")
    return SinkSpec(scheme, arg if sep else None)


def open_sink(spec: str | SinkSpec, options: argparse.Namespace | None = None,
              context: SinkContext | None = None) -> Sink:
    """Parse (if needed) and open one sink; ``options`` is the parsed command line, if any;
    ``context`` describes the documents (default: the default registry, the envelope's fields).
    Raises SinkError."""
    if isinstance(spec, str):
        spec = parse_sink_spec(spec)
    return _SCHEMES[spec.scheme].factory(spec.arg, options, context or SinkContext())


register_sink("jsonl", open_jsonl, usage="jsonl:PATH",
              help="append one JSON document per line to PATH (created if missing)",
              add_arguments=add_jsonl_arguments)
register_sink("stdout", open_stdout, usage="stdout",
              help="write one JSON document per line to standard output")


def _open_elasticsearch(arg: str | None, options: argparse.Namespace | None, context: SinkContext) -> Sink:
    # The client library takes about 0.3 s to import, and is a collector extra: only runs with
    # this sink pay for it, or need it.
    try:
        from .elasticsearch import open_elasticsearch
    except ImportError as exc:
        raise SinkError(f"elasticsearch: the sink needs the elasticsearch client ({exc.name} is not "
                        "installed): pip install 'ipfix-antrea[collector]'") from None
    return open_elasticsearch(arg, options, context)


register_sink("elasticsearch", _open_elasticsearch, usage="elasticsearch:URL[,URL...]",
              help="bulk-load into Elasticsearch 8/9 (daily flow-YYYY.MM.DD indices, index template "
              "from the registry); see the --es-* flags", add_arguments=_es_arguments)
