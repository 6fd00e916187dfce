"""Documents: what the collector writes for each decoded record, and the transforms that enrich it.

`DocumentBuilder` is the document stage (`builder`): the Logstash envelope (`envelope`) around each
record's elements, then an ordered list of transforms, each adding derived fields and declaring
them with their Elasticsearch mappings (`fields`). `AntreaTransform` (`antrea`) is the first: the
fields Antrea's Logstash filter derived, which Antrea's Kibana dashboards read.

Transforms are registered by name here, as sinks and inputs are in their packages, so that
``ipfix-collect --enrich NAME[,NAME...]`` knows none of them by class: a transform registers a
factory ``factory(options) -> Transform`` (``options`` is the parsed command line, or None for a
library caller) and, if it has settings, a hook that adds its flags.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .antrea import AntreaSettings, AntreaTransform, FlowClock, add_antrea_arguments, open_antrea
from .builder import DocumentBuilder, RecordStep, Transform
from .envelope import document_id, document_ids, logstash_timestamp, to_document
from .fields import ENVELOPE_FIELDS, DocumentField

__all__ = [
    "AntreaSettings",
    "AntreaTransform",
    "DocumentBuilder",
    "DocumentField",
    "ENVELOPE_FIELDS",
    "FlowClock",
    "RecordStep",
    "Transform",
    "TransformScheme",
    "document_id",
    "document_ids",
    "logstash_timestamp",
    "make_builder",
    "parse_enrich",
    "register_transform",
    "to_document",
    "transform_schemes",
]

TransformFactory = Callable[[argparse.Namespace | None], Transform]
NO_ENRICHMENT = "none"


@dataclass(frozen=True)
class TransformScheme:
    name: str
    factory: TransformFactory
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None] | None = None


_TRANSFORMS: dict[str, TransformScheme] = {}


def register_transform(name: str, factory: TransformFactory, *, help: str,
                       add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> None:
    """Make ``--enrich NAME`` use ``factory(options)``. Re-registering replaces."""
    _TRANSFORMS[name.lower()] = TransformScheme(name.lower(), factory, help, add_arguments)


def transform_schemes() -> list[TransformScheme]:
    """The registered transforms, in registration order (for --help)."""
    return list(_TRANSFORMS.values())


def parse_enrich(text: str) -> tuple[str, ...]:
    """``NAME[,NAME...]`` or ``none`` -> the transform names, in order. Raises ValueError naming
    the known ones for an unknown name."""
    names = tuple(n.strip().lower() for n in text.split(",") if n.strip())
    if names == (NO_ENRICHMENT,):
        return ()
    unknown = [n for n in names if n not in _TRANSFORMS]
    if unknown or not names:
        known = ", ".join([*_TRANSFORMS, NO_ENRICHMENT])
        raise ValueError(f"unknown enrichment {text!r}; known: {known}")
    return names


def make_builder(names: Sequence[str], options: argparse.Namespace | None = None) -> DocumentBuilder:
    """The document builder with the transforms ``names``, in that order."""
    return DocumentBuilder([_TRANSFORMS[name].factory(options) for name in names])


register_transform("antrea", open_antrea, add_arguments=add_antrea_arguments,
                   help="what Antrea's Logstash filter derived: bytes, flowTypeStr, flowKey*, "
                   "sourceIP, throughput (bytes/s)...")
