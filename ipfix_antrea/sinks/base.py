# The sink interface, and the JSON-lines writer that the file and stdout sinks share.
#
# A sink receives documents (plain dicts, JSON-ready) in batches. Batching is the unit of work
# because every real output wants it: a file write, a pipe write, an Elasticsearch _bulk request.
# A sink knows nothing about IPFIX, sessions or inputs; the collector knows sinks only through this
# interface and the scheme registry in `ipfix_antrea.sinks`, never by class name (the ipfixcol2
# output-plugin idea). Adding a sink = one module + one `register_sink` call.
#
# Serialisation is orjson, one document per line, each line `\n`-terminated (JSON Lines). A batch
# is serialised into one bytes object and handed to the stream in a single write.
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

import orjson

from ..documents.fields import ENVELOPE_FIELDS, DocumentField
from ..registry import Registry

__all__ = ["Sink", "SinkBase", "SinkContext", "SinkError", "StreamSink", "FanOut", "serialize"]


class SinkError(Exception):
    """A sink could not be opened or could not write; the message says which sink and why."""


@runtime_checkable
class Sink(Protocol):
    """What the collector writes documents to.

    ``write`` takes a batch (possibly empty) and may buffer; ``flush`` pushes buffered documents
    to their destination; ``close`` flushes and releases the destination. Failures raise
    `SinkError`. Sinks are driven from one thread; a sink that is shared must say so.

    Two optional features, with their defaults in `SinkBase`:

    * ``wants_ids``: when true, ``write`` gets ``ids``, one stable id per document
      (`ipfix_antrea.documents.document_id`), so that a sink that can deduplicate (Elasticsearch's
      ``_id``) does; they are computed only for sinks that want them.
    * ``stats()``: the sink's own counters (indexed, retried, ...), shown in the status line.
    """

    name: str
    wants_ids: bool

    def write(self, docs: Sequence[dict], ids: Sequence[str] | None = None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...


class SinkBase:
    """The defaults of a sink's optional features: no ids wanted, no counters of its own."""

    wants_ids: bool = False

    def stats(self) -> dict[str, int]:
        return {}


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need to know of the documents it will be given: the registry their
    elements come from (None: the default registry) and the fields the document stage writes
    (`DocumentBuilder.fields`). A sink that stores documents by type (Elasticsearch's index
    template) maps both; others ignore them."""

    registry: Registry | None = None
    fields: Sequence[DocumentField] = ENVELOPE_FIELDS


_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE


def serialize(docs: Sequence[dict]) -> bytes:
    """A batch of documents as JSON Lines: one compact object per line, each `\\n`-terminated."""
    dumps = orjson.dumps
    return b"".join([dumps(doc, option=_APPEND_NEWLINE) for doc in docs])


class StreamSink(SinkBase):
    """JSON Lines to a binary stream. ``owns_stream`` decides whether `close` closes it."""

    def __init__(self, stream: BinaryIO, *, name: str, owns_stream: bool) -> None:
        self.name = name
        self._stream = stream
        self._owns_stream = owns_stream
        self._closed = False

    def write(self, docs: Sequence[dict], ids: Sequence[str] | None = None) -> None:
        if not docs:
            return
        data = serialize(docs)
        try:
            self._stream.write(data)
        except BrokenPipeError:
            raise  # the reader went away: the caller decides (stdout | head is normal)
        except OSError as exc:
            raise SinkError(f"{self.name}: write failed: {exc.strerror or exc}") from exc

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise SinkError(f"{self.name}: flush failed: {exc.strerror or exc}") from exc

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if self._owns_stream:
                self._stream.close()
            else:
                self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            raise SinkError(f"{self.name}: close failed: {exc.strerror or exc}") from exc


class FanOut:
    """Several sinks behind one: every batch goes to each, in order; ids are made when any of
    them wants them, and the counters of all are summed.

    `close` closes every sink even when one fails, then raises the first failure.
    """

    def __init__(self, sinks: Sequence[Sink]) -> None:
        self.sinks = list(sinks)
        self.name = ", ".join(s.name for s in self.sinks)
        self.wants_ids = any(s.wants_ids for s in self.sinks)

    def stats(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for sink in self.sinks:
            for key, value in sink.stats().items():
                total[key] = total.get(key, 0) + value
        return total

    def write(self, docs: Sequence[dict], ids: Sequence[str] | None = None) -> None:
        for sink in self.sinks:
            sink.write(docs, ids)

    def flush(self) -> None:
        for sink in self.sinks:
            sink.flush()

    def close(self) -> None:
        first: BaseException | None = None
        for sink in self.sinks:
            try:
                sink.close()
            except Exception as exc:  # noqa: BLE001 - keep closing the others
                first = first or exc
        if first is not None:
            raise first
