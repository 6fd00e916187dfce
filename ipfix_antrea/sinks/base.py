r"""The sink interface, and the JSON-lines writer that the file and stdout sinks share.

A sink receives documents (plain dicts, JSON-ready) in batches. Batching is the unit of work
because every real output wants it: a file write, a pipe write, an Elasticsearch _bulk request.
A sink knows nothing about IPFIX, sessions or inputs; the collector knows sinks only through this
interface and the scheme registry in `ipfix_antrea.sinks`, never by class name (the ipfixcol2
output-plugin idea). Adding a sink = one module + one `register_sink` call.

Serialisation is orjson, one document per line, each line `\n`-terminated (JSON Lines). A batch
is serialised into one buffer and handed to the stream in a single write.
"""

from __future__ import annotations

import bisect
import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Protocol, runtime_checkable

import orjson

from ..documents.fields import ENVELOPE_FIELDS, DocumentField
from ..registry import Registry
from ..workers import WorkerInfo

__all__ = ["Sink", "SinkBase", "SINK_GAUGES", "exclusive", "SinkContext", "SinkError", "StreamSink", "Histogram",
           "HistogramSnapshot", "serialize"]


class SinkError(Exception):
    """A sink could not be opened or could not write; the message says which sink and why."""


@runtime_checkable
class Sink(Protocol):
    """What the collector writes documents to.

    ``write`` takes a batch (possibly empty) and may buffer; ``flush`` pushes buffered documents
    to their destination; ``close`` flushes and releases the destination. Failures raise
    `SinkError`. Sinks are driven from one thread; a sink that is shared must say so. The
    reporting methods (``stats``, ``ready``, ``undelivered``, ``histograms``) may be called from
    any thread at any time (status lines, metrics scrapes).

    Optional features, with their defaults in `SinkBase`:

    * ``wants_ids``: when true, ``write`` gets ``ids``, one stable id per document
      (`ipfix_antrea.documents.document_id`), so that a sink that can deduplicate (Elasticsearch's
      ``_id``) does; they are computed only for sinks that want them.
    * ``stats()``: the sink's own counters (indexed, retried, ...), shown in the status line and
      exported as metrics; they only grow, except those in `SINK_GAUGES` (``in_flight``:
      documents whose outcome is not known yet).
    * ``ready()``: False while the sink is still getting ready in the background (Elasticsearch:
      installing its index template while the cluster is not up yet). Writes are accepted
      meanwhile and wait, like writes to a slow sink; the collector reports itself not ready.
    * ``undelivered()``: documents that ``write`` accepted but the sink could not deliver after
      all (Elasticsearch: retries ran out); the collector counts them as undelivered, not
      delivered.
    * ``histograms()``: durations the sink measured (Elasticsearch: its bulk requests), by name,
      exported as metrics.
    """

    name: str
    wants_ids: bool

    def write(self, docs: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None: ...

    def flush(self) -> None: ...

    def close(self) -> None: ...

    def stats(self) -> dict[str, int]: ...

    def ready(self) -> bool: ...

    def undelivered(self) -> int: ...

    def histograms(self) -> dict[str, HistogramSnapshot]: ...


#: The keys of `Sink.stats` that are levels, not counts: they may go down.
SINK_GAUGES = frozenset({"in_flight"})


class SinkBase:
    """The defaults of a sink's optional features: no ids wanted, no counters of its own, ready
    from the start, ``write`` returning means delivered, nothing timed."""

    wants_ids: bool = False

    def stats(self) -> dict[str, int]:
        return {}

    def ready(self) -> bool:
        return True

    def undelivered(self) -> int:
        return 0

    def histograms(self) -> dict[str, HistogramSnapshot]:
        return {}


@dataclass(frozen=True)
class HistogramSnapshot:
    """A `Histogram` at one moment: ``counts[i]`` observations were at most ``bounds[i]`` and
    above the bound before it; ``counts[-1]`` were above the last bound."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float  # the sum of every observation


class Histogram:
    """Observed values (durations in seconds) counted in fixed buckets, as Prometheus
    histograms are; thread-safe. One `observe` is a bisection and an increment."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)
        self._total = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)  # the first bound >= value: Prometheus's "le"
        with self._lock:
            self._counts[i] += 1
            self._total += value

    def snapshot(self) -> HistogramSnapshot:
        with self._lock:
            return HistogramSnapshot(self.bounds, tuple(self._counts), self._total)


@dataclass(frozen=True)
class SinkContext:
    """What a sink may need to know of the documents it will be given: the registry their
    elements come from (None: the default registry) and the fields the document stage writes
    (`DocumentBuilder.fields`). A sink that stores documents by type (Elasticsearch's index
    template) maps both; others ignore them. ``worker``: which of several worker processes
    opens the sink (None when the process is alone); a sink that writes a file then writes a
    file of its own (`WorkerInfo.path`)."""

    registry: Registry | None = None
    fields: Sequence[DocumentField] = ENVELOPE_FIELDS
    worker: WorkerInfo | None = None


@contextlib.contextmanager
def exclusive(fd: int, name: str) -> Iterator[None]:
    """Holds a POSIX record lock (lockf) on all of the open file ``fd`` while the block runs.
    The lock belongs to the file (pipe, terminal, device), which every worker process of
    ``--workers N`` that inherited or opened it shares, so writes made under it are whole: a pipe
    keeps a write whole only up to PIPE_BUF (4096 bytes), and a batch is tens of kilobytes.
    Raises SinkError, naming the sink ``name``, when the file cannot be locked."""
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX, 0, 0, os.SEEK_SET)  # all of it, wherever the offset is
    except OSError as exc:
        raise SinkError(f"{name}: cannot be shared by worker processes: it cannot be locked "
                        f"({exc.strerror or exc}); write a file per worker instead (jsonl:PATH)") from exc
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            fcntl.lockf(fd, fcntl.LOCK_UN, 0, 0, os.SEEK_SET)


_APPEND_NEWLINE = orjson.OPT_APPEND_NEWLINE


def serialize(docs: Sequence[dict[str, Any]]) -> bytearray:
    """A batch of documents as JSON Lines: one compact object per line, each `\\n`-terminated.

    Each document's JSON is appended to one buffer as soon as it is made, so its memory is
    reused for the next one. Joining a list of them instead holds hundreds of separately
    allocated objects at once, which costs page faults on every batch (with orjson 3.10 and
    later, serialising went from 1.4 to 4.9 µs per Flow Aggregator document that way)."""
    dumps = orjson.dumps
    out = bytearray()
    for doc in docs:
        out += dumps(doc, option=_APPEND_NEWLINE)
    return out


class StreamSink(SinkBase):
    """JSON Lines to a binary stream. ``owns_stream`` decides whether `close` closes it."""

    def __init__(self, stream: BinaryIO, *, name: str, owns_stream: bool) -> None:
        self.name = name
        self._stream = stream
        self._owns_stream = owns_stream
        self._closed = False

    def write(self, docs: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None:
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
