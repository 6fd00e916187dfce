"""`elasticsearch:URL[,URL...]`: flow documents into Elasticsearch through the bulk API.

What it promises: every document the collector hands over is indexed, or written to the
dead-letter file with the reason Elasticsearch gave, or (when the retry budget runs out) written
there as undelivered and reported in a SinkError. Nothing is dropped silently, and every outcome
is counted (`stats()`).

How:
* write() serialises each document with orjson straight into the lines of a `_bulk` request
  (an action line naming the daily index, then the document) and collects them into a batch,
  sent when it reaches --es-batch-docs documents or --es-batch-bytes bytes, or is older than
  --es-flush-interval. Serialising in the caller's thread and sending from --es-in-flight worker
  threads keeps Elasticsearch busy while the next batch is built.
* Backpressure: when every worker is busy (Elasticsearch slow or down), write() blocks until one
  is free. The collector's bounded queue then fills and its inputs stop reading.
* Retries: a request that fails with 408, 429, a 5xx, a connection error or a timeout is sent
  again after a growing pause (0.25 s doubling to 5 s, with jitter), for --es-retry-for seconds
  from its first failure (0 = for ever). The same applies to the documents of a bulk response
  that failed on their own with 408, 429 or a 5xx. Other per-document errors (mapping
  conflicts, values the mapping refuses) are final: those documents go to the dead-letter file.
  Other whole-request errors (401, 403, 413...) fail the sink: no retry changes the answer.
* Index: the name comes from the document's `@timestamp` in UTC through a strftime pattern
  (default `flow-%Y.%m.%d`, the daily indices of Antrea's Logstash pipeline and its `flow-*`
  dashboards). The sink installs an index template for the pattern, derived from the
  information-element registry (`es_mapping`), before it sends any document.
* Start-up: the collector often starts before Elasticsearch (Kubernetes starts pods in any
  order), so opening the sink never waits for the cluster. The template is installed by a
  thread of its own, retried like a bulk request; until it is, the sink is not `ready()`, and
  batches wait for it in their request slots, so that a write blocks once every slot is taken:
  the same backpressure as a slow cluster. When the retry budget runs out, the sink fails and
  what it holds goes to the dead-letter file.
* The dead-letter file is created when the first document has to go there (in a directory
  created then too), so a sink that never refuses anything writes nothing to disk.
* Ids: by default Elasticsearch assigns them (its fastest path). With --es-ids derived, each
  document's `_id` is `ipfix_antrea.documents.document_id` and the action is `create`, so a replay
  of the same IPFIX after a crash is refused as a duplicate (409, counted) instead of stored twice.
  Without derived ids, a request whose outcome is unknown (the connection dropped mid-request) is
  sent again and may store documents twice; a refused connection or an error answer cannot.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import functools
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, BinaryIO, cast

import orjson
from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch
from elasticsearch.serializer import NdjsonSerializer, OrjsonSerializer

from ..documents.fields import ENVELOPE_FIELDS, DocumentField
from ..registry import Registry, default_registry
from ..types import data_type
from .base import Histogram, HistogramSnapshot, SinkBase, SinkContext, SinkError
from .es_mapping import index_template
from .es_options import ElasticsearchOptions, add_arguments, parse_hosts

__all__ = [
    "Abandoned",
    "ElasticsearchOptions",
    "ElasticsearchSink",
    "add_arguments",
    "describe_api_error",
    "install_index_template",
    "make_client",
    "open_elasticsearch",
    "retrying",
]

log = logging.getLogger(__name__)

_BACKOFF_FIRST = 0.25  # seconds
_BACKOFF_MAX = 5.0
# What a bulk response needs to carry: per item only the status, and the error when there is one.
_BULK_FILTER = "errors,items.*.status,items.*.error"
_MILLISECONDS = cast("Callable[[int], str]", data_type("dateTimeMilliseconds").to_json)  # as documents carry
_INDEX_CACHE_SIZE = 4096  # distinct @timestamp strings remembered -> their action line
#: Bounds (seconds) of the bulk request duration histogram: a few ms for a small batch on a local
#: cluster, to the 30 s default timeout.
BULK_SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class _Batch:
    lines: list[bytes]  # two per document: its action line, its source line (\n-terminated)
    nbytes: int
    started: float  # time.monotonic() when its first document came


class _BulkBodySerializer(NdjsonSerializer):
    """The client's NDJSON serializer, except that a body that is bytes already goes out as it
    is: the stock one copies a request body twice, which for batches of megabytes costs about
    as much CPU as serialising the documents."""

    def dumps(self, data: Any) -> bytes:
        return data if isinstance(data, bytes) else super().dumps(data)


class _DeadLetter:
    """The dead-letter file: JSON Lines, appended, one line per document that did not make it,
    written and flushed as it happens (worker threads share it). Opened, with its directory
    created, when the first document comes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None

    def _open(self) -> BinaryIO:
        if self._file is None:
            directory = os.path.dirname(self.path)
            if directory:
                os.makedirs(directory, exist_ok=True)
            self._file = open(self.path, "ab")  # noqa: SIM115 - closed by close()
        return self._file

    def write(self, entries: list[tuple[dict[str, Any], bytes]]) -> None:
        """Append (meta, document JSON) pairs as ``{...meta, "document": <document>}`` lines.
        Raises OSError when the file cannot be created or written."""
        out = []
        for meta, document in entries:
            head = orjson.dumps(meta)
            out.append(head[:-1] + b',"document":' + document + b"}\n")
        with self._lock:
            file = self._open()
            file.write(b"".join(out))
            file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()


def _now_iso() -> str:
    return _MILLISECONDS(time.time_ns() // 1_000_000)


def _split(action: bytes, source: bytes) -> tuple[dict[str, Any], bytes]:
    """A document's two bulk lines -> (its action's target, its JSON without the newline)."""
    ((_, target),) = orjson.loads(action).items()
    return target, source[:-1]


def _describe(error: Any) -> str:
    """Elasticsearch's error object (or anything else) as one line."""
    if isinstance(error, dict):
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, dict):
            text += f" (caused by {cause.get('type')}: {cause.get('reason')})"
        return text
    return str(error)


class ElasticsearchSink(SinkBase):
    """Bulk-loads documents into Elasticsearch; see the module comment for the guarantees.

    ``client`` is an `elasticsearch.Elasticsearch`; the sink owns it and closes it. The index
    template is installed (or updated) in the background unless ``options.template`` is "skip"
    (see the module comment): mappings for the elements of ``registry`` and for ``fields``, what
    the document stage writes (`DocumentBuilder.fields`). Raises SinkError for settings that
    cannot work; a template that cannot be installed fails the sink later, like a bulk request.
    """

    def __init__(self, client: Elasticsearch, options: ElasticsearchOptions, *,
                 registry: Registry | None = None, fields: Sequence[DocumentField] = ENVELOPE_FIELDS,
                 name: str = "elasticsearch") -> None:
        try:
            options.check(name)
        except SinkError:
            client.close()
            raise
        self._dead = _DeadLetter(options.dead_letter)
        self.name = name
        self.wants_ids = options.ids == "derived"
        self.options = options
        self.unsigned_long: bool | None = None  # known once the template is installed
        self._client = client
        self._registry = registry if registry is not None else default_registry()
        self._fields = tuple(fields)
        self._actions: dict[Any, bytes] = {}  # @timestamp -> action line (auto ids)
        self._indices: dict[Any, str] = {}  # @timestamp -> index name (derived ids)
        self._pending: _Batch | None = None
        self._slots = threading.BoundedSemaphore(options.in_flight)
        self._pool = concurrent.futures.ThreadPoolExecutor(options.in_flight, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._counts = {"indexed": 0, "duplicates": 0, "retried": 0, "rejected": 0, "failed": 0,
                        "in_flight": 0}
        self._fatal: str | None = None
        self._closed = False
        self._latency = Histogram(BULK_SECONDS_BUCKETS)
        self._ready = threading.Event()  # the template is installed (or skipped)
        self._settled = threading.Event()  # ready, or failed getting ready
        self._closing = threading.Event()  # close() has sent everything: stop retrying the set-up
        self._setup: threading.Thread | None = None
        if options.template == "install":
            self._setup = threading.Thread(target=self._install_template, name=f"{name} setup", daemon=True)
            self._setup.start()
        else:
            self._ready.set()
            self._settled.set()

    # -- the Sink protocol ------------------------------------------------------------------

    def write(self, docs: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None:
        """Queue ``docs`` (with their ``ids`` when derived ids are on); sends full batches and
        blocks while every request slot is busy. Raises SinkError once delivery has failed."""
        self._raise_if_failed()
        if not docs:
            return
        if not self.wants_ids:
            ids = None
        elif ids is None or len(ids) != len(docs):
            raise SinkError(f"{self.name}: derived ids are on, but write() got "
                            f"{'no ids' if ids is None else f'{len(ids)} ids for {len(docs)} documents'}")
        with self._lock:
            self._counts["in_flight"] += len(docs)
        batch = self._pending
        if batch is None:
            batch = self._pending = _Batch([], 0, time.monotonic())
        lines = batch.lines
        nbytes = batch.nbytes
        limit_lines = 2 * self.options.batch_docs
        limit_bytes = self.options.batch_bytes
        dumps = orjson.dumps
        newline = orjson.OPT_APPEND_NEWLINE
        actions = self._actions
        for i, doc in enumerate(docs):
            try:
                if ids is not None:
                    action = self._action_with_id(doc, ids[i])
                else:
                    timestamp = doc.get("@timestamp") if type(doc) is dict else None
                    cached = actions.get(timestamp) if type(timestamp) is str else None
                    action = cached if cached is not None else self._action_for(doc)
                source = dumps(doc, option=newline)
            except _Unusable as exc:
                self._reject_local(doc, None if ids is None else ids[i], exc.reason)
                continue
            except TypeError as exc:  # orjson.JSONEncodeError: not JSON-ready
                self._reject_local(doc, None if ids is None else ids[i],
                                   f"document cannot be serialised as JSON: {exc}")
                continue
            lines.append(action)
            lines.append(source)
            nbytes += len(action) + len(source)
            if len(lines) >= limit_lines or nbytes >= limit_bytes:
                batch.nbytes = nbytes
                self._submit(batch)
                batch = self._pending = _Batch([], 0, time.monotonic())
                lines = batch.lines
                nbytes = 0
        batch.nbytes = nbytes
        if lines and time.monotonic() - batch.started >= self.options.flush_interval:
            self._submit(batch)
            self._pending = None

    def flush(self) -> None:
        """Send what is queued and wait until every document written so far is indexed or
        dead-lettered. Raises SinkError when documents could not be delivered."""
        self._raise_if_failed()
        if self._pending is not None and self._pending.lines:
            self._submit(self._pending)
        self._pending = None
        self._wait_idle()
        self._raise_if_failed()

    def close(self) -> None:
        """Deliver (or dead-letter) everything accepted, then release the connection and the
        dead-letter file. Raises SinkError saying how many documents were not delivered."""
        if self._closed:
            return
        try:
            if self._fatal is None:
                self.flush()
        except SinkError:
            pass  # raised below, after the rest is accounted for
        finally:
            self._closed = True
            self._wait_idle()
            if self._pending is not None and self._pending.lines:
                self._give_up(self._pending.lines, f"not sent: the sink had failed ({self._fatal})")
            self._pending = None
            self._release()
        self._raise_if_failed()

    def stats(self) -> dict[str, int]:
        """Counters: ``indexed``; ``duplicates`` (derived ids already stored); ``retried``
        (document sends repeated); ``rejected`` (refused by Elasticsearch or unusable, in the
        dead-letter file); ``failed`` (not delivered when the retry budget ran out, also in the
        dead-letter file); ``in_flight`` (accepted, outcome not known yet)."""
        with self._lock:
            return dict(self._counts)

    def ready(self) -> bool:
        """The index template is installed (or skipped) and the sink has not failed."""
        return self._ready.is_set() and self._fatal is None

    def undelivered(self) -> int:
        """Documents accepted and then not delivered (``failed``: in the dead-letter file)."""
        with self._lock:
            return self._counts["failed"]

    def histograms(self) -> dict[str, HistogramSnapshot]:
        """``bulk_request``: the duration of every bulk request sent, answered or not."""
        return {"bulk_request": self._latency.snapshot()}

    # -- building requests -------------------------------------------------------------------

    def _index_of(self, doc: dict[str, Any]) -> str:
        timestamp = doc.get("@timestamp") if isinstance(doc, dict) else None
        if not isinstance(timestamp, str):
            raise _Unusable("no @timestamp string to name the index by")
        try:
            moment = datetime.fromisoformat(timestamp)
        except ValueError:
            raise _Unusable(f"@timestamp {timestamp!r} is not ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC).strftime(self.options.index)

    def _action_for(self, doc: dict[str, Any]) -> bytes:
        index = self._index_of(doc)
        action = b'{"create":{"_index":%s}}\n' % orjson.dumps(index)
        if len(self._actions) >= _INDEX_CACHE_SIZE:
            self._actions.clear()
        self._actions[doc["@timestamp"]] = action
        return action

    def _action_with_id(self, doc: dict[str, Any], doc_id: str) -> bytes:
        timestamp = doc.get("@timestamp") if type(doc) is dict else None
        index = self._indices.get(timestamp) if type(timestamp) is str else None
        if index is None:
            index = self._index_of(doc)
            if len(self._indices) >= _INDEX_CACHE_SIZE:
                self._indices.clear()
            self._indices[timestamp] = index
        return b'{"create":{"_index":%s,"_id":%s}}\n' % (orjson.dumps(index), orjson.dumps(doc_id))

    def _reject_local(self, doc: Any, doc_id: str | None, reason: str) -> None:
        try:
            document = orjson.dumps(doc, default=repr, option=orjson.OPT_NON_STR_KEYS)
        except TypeError:
            document = orjson.dumps(repr(doc))
        meta = {"time": _now_iso(), "sink": self.name, "index": None, "id": doc_id,
                "status": None, "reason": reason}
        self._dead_letter([(meta, document)], "rejected")

    # -- sending -----------------------------------------------------------------------------

    def _submit(self, batch: _Batch) -> None:
        self._slots.acquire()  # blocks while every worker is busy: backpressure
        try:
            self._pool.submit(self._deliver, batch.lines)
        except BaseException:
            self._slots.release()
            raise

    def _wait_idle(self) -> None:
        """Until no request is in flight: hold every slot, then give them back."""
        for _ in range(self.options.in_flight):
            self._slots.acquire()
        for _ in range(self.options.in_flight):
            self._slots.release()

    def _deliver(self, lines: list[bytes]) -> None:
        """One batch, in a worker thread: send, sort the answers, retry what may be retried,
        until nothing is left or the retry budget is spent."""
        try:
            self._deliver_batch(lines)
        except Exception as exc:  # a bug must not leave documents unaccounted
            log.exception("%s: unexpected error while sending", self.name)
            reason = f"unexpected error: {exc!r}"
            self._fail(reason)
            self._give_up(lines, reason)
        finally:
            self._slots.release()

    def _deliver_batch(self, lines: list[bytes]) -> None:
        self._settled.wait()  # the index template first (see the module comment)
        deadline: float | None = None
        failed_at = 0.0  # when the first attempt failed (deadline is set then)
        attempts = 0
        pause = _BACKOFF_FIRST
        while lines:
            attempts += 1
            if self._fatal is not None:
                self._give_up(lines, f"not sent: the sink had already failed ({self._fatal})")
                return
            started = time.monotonic()
            try:
                # The client sends bytes as they are (the NDJSON is built already); its hint names
                # only the sequence of dicts it would serialise itself.
                response = self._client.bulk(operations=b"".join(lines),  # type: ignore[arg-type]
                                             filter_path=_BULK_FILTER)
            except ApiError as exc:
                self._latency.observe(time.monotonic() - started)
                status = exc.meta.status
                if status not in (408, 429) and status < 500:
                    # Authentication, a malformed request...: no retry will change the answer.
                    reason = f"Elasticsearch refused the request: {describe_api_error(exc)}"
                    self._give_up(lines, reason)
                    self._fail(reason)
                    return
                problem = describe_api_error(exc)
            except TransportError as exc:
                self._latency.observe(time.monotonic() - started)
                problem = f"{type(exc).__name__}: {exc.message}"
            else:
                self._latency.observe(time.monotonic() - started)
                lines = self._sort_answers(lines, response.body)
                if not lines:
                    if deadline is not None:  # the warning said "retrying": say that it worked
                        log.info("%s: delivered after retrying for %.1f s (%d attempts)", self.name,
                                 time.monotonic() - failed_at, attempts)
                    return
                problem = "some documents were refused for now (429/5xx)"
            now = time.monotonic()
            if deadline is None:
                failed_at = now
                deadline = now + self.options.retry_for if self.options.retry_for else float("inf")
                log.warning("%s: %d document(s) not delivered yet (%s); retrying", self.name,
                            len(lines) // 2, problem)
            if now >= deadline:
                reason = f"not delivered after retrying for {self.options.retry_for:g} s: {problem}"
                self._give_up(lines, reason)
                self._fail(reason)
                return
            with self._lock:
                self._counts["retried"] += len(lines) // 2
            time.sleep(min(pause * (0.5 + random.random() / 2), deadline - now))
            pause = min(pause * 2, _BACKOFF_MAX)

    def _sort_answers(self, lines: list[bytes], body: dict[str, Any]) -> list[bytes]:
        """Count the bulk response's outcomes; dead-letter final refusals; return the lines of
        the documents to send again."""
        n = len(lines) // 2
        if not body.get("errors"):
            with self._lock:
                self._counts["indexed"] += n
                self._counts["in_flight"] -= n
            return []
        items = body.get("items") or []
        if len(items) != n:
            raise ValueError(f"the bulk response has {len(items)} items for {n} documents")
        again: list[bytes] = []
        refused: list[tuple[dict[str, Any], bytes]] = []
        indexed = duplicates = 0
        for i, item in enumerate(items):
            ((_, result),) = item.items()
            status = result.get("status", 0)
            if status < 300:
                indexed += 1
            elif status == 409 and self.wants_ids:
                duplicates += 1  # the same record, stored by an earlier run or attempt
            elif status in (408, 429) or status >= 500:
                again += lines[2 * i:2 * i + 2]
            else:
                target, document = _split(lines[2 * i], lines[2 * i + 1])
                error = result.get("error")
                refused.append(({"time": _now_iso(), "sink": self.name, "index": target.get("_index"),
                                 "id": target.get("_id"), "status": status,
                                 "reason": _describe(error), "error": error}, document))
        with self._lock:
            self._counts["indexed"] += indexed
            self._counts["duplicates"] += duplicates
            self._counts["in_flight"] -= indexed + duplicates
        if refused:
            self._dead_letter(refused, "rejected")
        return again

    def _give_up(self, lines: list[bytes], reason: str) -> None:
        """Documents that will not be delivered: into the dead-letter file as ``failed``."""
        entries = []
        for i in range(0, len(lines), 2):
            target, document = _split(lines[i], lines[i + 1])
            entries.append(({"time": _now_iso(), "sink": self.name, "index": target.get("_index"),
                             "id": target.get("_id"), "status": None, "reason": reason}, document))
        self._dead_letter(entries, "failed")

    def _dead_letter(self, entries: list[tuple[dict[str, Any], bytes]], outcome: str) -> None:
        """Documents into the dead-letter file, counted as ``outcome`` ("rejected" or "failed").
        When the file cannot take them they are lost: counted as failed, and the sink fails."""
        try:
            self._dead.write(entries)
        except OSError as exc:
            outcome = "failed"
            self._fail(f"cannot write dead-letter file {self._dead.path}: {exc.strerror or exc}; "
                       f"{len(entries)} document(s) lost")
        with self._lock:
            self._counts[outcome] += len(entries)
            self._counts["in_flight"] -= len(entries)

    def _fail(self, reason: str) -> None:
        with self._lock:
            if self._fatal is None:
                self._fatal = reason

    def _raise_if_failed(self) -> None:
        if self._fatal is None:
            return
        with self._lock:
            failed, pending = self._counts["failed"], self._counts["in_flight"]
        lost = ""
        if failed or pending:
            lost = (f"{failed} document(s) not delivered (dead-letter file {self._dead.path})"
                    f"{f', {pending} still pending' if pending else ''}: ")
        raise SinkError(f"{self.name}: {lost}{self._fatal}")

    # -- setup and teardown ------------------------------------------------------------------

    def _install_template(self) -> None:
        """The set-up thread: the template, retried; then the sink is ready, or has failed."""
        try:
            self.unsigned_long = install_index_template(
                self._client, self.options, self._registry, self._fields,
                retry_for=self.options.retry_for or math.inf, name=self.name, stop=self._closing)
        except Abandoned:
            pass  # closed before Elasticsearch came, with nothing to send: not a failure
        except SinkError as exc:
            self._fail(str(exc).removeprefix(f"{self.name}: "))
        except Exception as exc:  # a bug must not leave the sink waiting for ever
            log.exception("%s: unexpected error while installing the index template", self.name)
            self._fail(f"unexpected error while installing the index template: {exc!r}")
        else:
            self._ready.set()
            log.info("%s: index template %r installed; ready", self.name, self.options.template_name)
        finally:
            self._settled.set()

    def _release(self) -> None:
        self._closing.set()
        if self._setup is not None:
            self._setup.join()
        self._pool.shutdown(wait=True)
        self._client.close()
        self._dead.close()


def install_index_template(client: Elasticsearch, options: ElasticsearchOptions, registry: Registry,
                           fields: Sequence[DocumentField], *, retry_for: float,
                           name: str = "elasticsearch", stop: threading.Event | None = None) -> bool:
    """PUT the index template for ``options.index`` (`es_mapping.index_template` of ``registry``
    and ``fields``) as ``options.template_name``, retrying like a bulk request for ``retry_for``
    seconds, or until ``stop`` is set (`retrying`). A cluster without the `unsigned_long` field
    type (a minimal distribution) gets unsigned64 as long. Returns whether unsigned_long is used.
    Raises SinkError when Elasticsearch refuses the template or cannot be reached in time."""
    for unsigned_long in (True, False):
        body = index_template(registry, options.index, fields, unsigned_long=unsigned_long)
        try:
            retrying(functools.partial(client.indices.put_index_template, name=options.template_name, **body),
                     "installing the index template", retry_for=retry_for, name=name, stop=stop)
        except ApiError as exc:
            if unsigned_long and exc.meta.status == 400 and "unsigned_long" in str(exc.body):
                log.warning("%s: this cluster has no unsigned_long field type; unsigned64 "
                            "elements are mapped as long", name)
                continue
            raise SinkError(f"{name}: cannot install index template {options.template_name!r}: "
                            f"{describe_api_error(exc)}") from exc
        return unsigned_long
    raise AssertionError("unreachable: the long mapping has no unsigned_long to refuse")


def retrying(call: Callable[[], Any], what: str, *, retry_for: float, name: str = "elasticsearch",
             stop: threading.Event | None = None) -> Any:
    """``call()`` until it does not fail with 408, 429, a 5xx or a connection error, for
    ``retry_for`` seconds (``math.inf``: for ever; 0: no retry), with the bulk requests' backoff.
    Other API errors are raised to the caller; running out of time raises SinkError saying what
    failed, and ``stop`` being set while waiting to try again raises `Abandoned`."""
    deadline: float | None = None
    pause = _BACKOFF_FIRST
    while True:
        try:
            return call()
        except ApiError as exc:
            if exc.meta.status not in (408, 429) and exc.meta.status < 500:
                raise
            problem = describe_api_error(exc)
        except TransportError as exc:
            problem = f"{type(exc).__name__}: {exc.message}"
        now = time.monotonic()
        if deadline is None:
            if retry_for <= 0:
                raise SinkError(f"{name}: {what} failed: {problem}")
            deadline = now + retry_for
            log.warning("%s: %s failed (%s); retrying", name, what, problem)
        if now >= deadline:
            raise SinkError(f"{name}: {what} failed after retrying for {retry_for:g} s: {problem}")
        delay = min(pause * (0.5 + random.random() / 2), deadline - now)
        if stop is None:
            time.sleep(delay)
        elif stop.wait(delay):
            raise Abandoned(f"{name}: {what} abandoned: stopping ({problem})")
        pause = min(pause * 2, _BACKOFF_MAX)


def describe_api_error(exc: ApiError) -> str:
    """An Elasticsearch error answer as one line: ``HTTP 401 security_exception: ...``."""
    return f"HTTP {exc.meta.status} {_describe(_error_of(exc))}"


class Abandoned(SinkError):
    """`retrying` gave up because it was told to stop, not because the service failed."""


class _Unusable(Exception):
    """A document that cannot be sent at all (no index name for it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _error_of(exc: ApiError) -> Any:
    body = exc.body
    return body.get("error", body) if isinstance(body, dict) else body


def open_elasticsearch(arg: str | None, options: argparse.Namespace | None = None,
                       context: SinkContext | None = None) -> ElasticsearchSink:
    """The factory for ``elasticsearch:URL[,URL...]``: settings from ``options`` (the parsed
    command line, see `add_arguments`) or the defaults; the index template maps the registry
    and document fields of ``context`` (so that --registry elements and derived fields map by
    their type). Each worker process (``context.worker``) has its own client and its own
    dead-letter file (``-wK`` before the extension)."""
    hosts = parse_hosts(arg)
    settings = ElasticsearchOptions.from_namespace(options)
    context = context or SinkContext()
    if context.worker is not None:  # one of several worker processes: a dead-letter file of its own
        settings.dead_letter = context.worker.path(settings.dead_letter)
    name = f"elasticsearch:{','.join(hosts)}"
    client = make_client(hosts, settings)
    return ElasticsearchSink(client, settings, name=name, registry=context.registry, fields=context.fields)


def make_client(hosts: Sequence[str], settings: ElasticsearchOptions) -> Elasticsearch:
    """The client for ``hosts``: retries off (the sink retries with backoff and a budget), one
    connection per request slot per node, orjson for responses. Raises SinkError on bad
    settings (e.g. a CA file that does not exist)."""
    kwargs: dict[str, Any] = {
        "request_timeout": settings.timeout,
        "max_retries": 0,
        "retry_on_timeout": False,
        "connections_per_node": settings.in_flight + 1,
        # orjson for the answers; bulk bodies go out as the sink built them
        "serializers": {"application/json": OrjsonSerializer(),
                        "application/x-ndjson": _BulkBodySerializer(),
                        "application/vnd.elasticsearch+x-ndjson": _BulkBodySerializer()},
    }
    if settings.api_key:
        key_id, colon, key = settings.api_key.partition(":")
        kwargs["api_key"] = (key_id, key) if colon else settings.api_key
    elif settings.user is not None:
        kwargs["basic_auth"] = (settings.user, settings.password or "")
    if settings.ca:
        if not os.path.isfile(settings.ca):
            raise SinkError(f"elasticsearch: CA file {settings.ca} does not exist")
        kwargs["ca_certs"] = settings.ca
    if settings.insecure:
        kwargs["verify_certs"] = False
        kwargs["ssl_show_warn"] = False
    try:
        return Elasticsearch(list(hosts), **kwargs)
    except (ValueError, TypeError) as exc:
        raise SinkError(f"elasticsearch: {exc}") from exc
