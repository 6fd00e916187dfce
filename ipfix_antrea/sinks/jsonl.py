"""`jsonl:PATH`: append JSON Lines to a file, optionally rotated by size and/or time, with the
rotated files optionally gzipped and pruned (see `rotation` and docs/jsonl.md).

Appending (never truncating) lets repeated runs add to one file, the way Logstash's file output
does. Each batch goes to the operating system in one write as soon as `write` is called, with no
buffer of our own: a document that `write` accepted is in the file even if the collector is
killed a moment later, a file tailer (Filebeat, Vector) sees it at once, and a failed write is
the failure of exactly that batch, which is then removed again so that no half line remains.
`flush` adds durability on request (`--jsonl-fsync`) and the time-based rotation check, which
must run even while no documents arrive.

Errors that lose no document (a rotation or compression that failed while the documents still
went to the live file) do not fail the `write` that met them, since the collector would then
count delivered documents as lost; they are raised by the next `flush` or `close` instead.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import time
from collections.abc import Callable, Sequence
from typing import Any

from ..units import parse_duration, parse_keep, parse_size
from .base import SinkBase, SinkContext, SinkError, exclusive, serialize
from .rotation import Housekeeper, RotatedNames, fsync_directory, next_boundary

__all__ = ["JsonLinesSink", "add_jsonl_arguments", "open_jsonl"]

_OPEN_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)


class JsonLinesSink(SinkBase):
    """One JSON document per line, appended to ``path`` (created if missing).

    ``rotate_size`` (bytes) rotates the file before a batch would take it past that size;
    ``rotate_interval`` (seconds) rotates it at every multiple of the interval since the epoch
    (UTC wall-clock boundaries). A batch is never split: a batch larger than ``rotate_size`` goes
    alone into a fresh file. A file that is empty is never rotated. ``compress`` gzips rotated
    files and ``keep`` deletes all but the newest ``keep`` of them, both in a background thread
    that `close` waits for. ``fsync`` makes every `flush`, rotation and `close` durable.
    ``clock`` is the time source (seconds since the epoch), for tests.

    One writer per file: rotation and the cleanup of a failed write assume that nobody else
    appends to ``path``. ``shared``: other processes write to ``path`` too (a pipe or a device
    that worker processes share), so each batch is written under a lock (`exclusive`). Raises
    `SinkError` when ``path`` cannot be opened (or, shared, cannot be locked).
    """

    def __init__(self, path: str, *, rotate_size: int | None = None,
                 rotate_interval: int | None = None, compress: bool = False,
                 keep: int | None = None, fsync: bool = False,
                 clock: Callable[[], float] = time.time, shared: bool = False) -> None:
        for label, value in (("rotate_size", rotate_size), ("rotate_interval", rotate_interval),
                             ("keep", keep)):
            if value is not None and value < 1:
                raise ValueError(f"{label} must be at least 1, got {value}")
        rotating = rotate_size is not None or rotate_interval is not None
        if (compress or keep is not None) and not rotating:
            raise ValueError("compress and keep apply to rotated files: set rotate_size or rotate_interval")
        self.name = f"jsonl:{path}"
        self.path = path
        self._rotate_size = rotate_size
        self._rotate_interval = rotate_interval
        self._fsync = fsync
        self._clock = clock
        self._names = RotatedNames(path) if rotating else None
        self._deferred: list[str] = []
        self._closed = False
        self._fd: int | None = None
        self._size = 0
        self._open()
        self.shared = shared
        if shared:
            assert self._fd is not None
            with exclusive(self._fd, self.name):  # refused now, not at the first write
                pass
        self._next_rotation = math.inf
        if rotate_interval is not None:
            # A file left by an earlier run belongs to the period of its last write, so a file
            # from a period that is over rotates now instead of mixing with this period's.
            since = os.path.getmtime(path) if self._size else clock()
            self._next_rotation = next_boundary(since, rotate_interval)
        self._housekeeper: Housekeeper | None = None
        if self._names is not None and (compress or keep is not None):
            self._housekeeper = Housekeeper(self._names, compress=compress, keep=keep)
            self._housekeeper.recover()
        if rotating:
            self._rotate_if_due(0)

    def write(self, docs: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None:
        """Append a batch, rotating first if it is due. Either the whole batch is in the file
        when this returns, or it raises `SinkError` and none of the batch is."""
        if self._closed:
            raise SinkError(f"{self.name}: write after close")
        if not docs:
            return
        data = serialize(docs)
        if self._names is not None:
            self._rotate_if_due(len(data))
        if self._fd is None:
            self._open()
        if self.shared:
            assert self._fd is not None
            with exclusive(self._fd, self.name):
                self._append(data, len(docs))
        else:
            self._append(data, len(docs))

    def flush(self) -> None:
        """Rotate if a time boundary passed, fsync if asked to, and raise what went wrong in the
        background or without losing documents since the last flush."""
        if self._closed:
            return
        if self._names is not None:
            self._rotate_if_due(0)
        if self._fsync and self._fd is not None:
            try:
                os.fsync(self._fd)
            except OSError as exc:
                self._deferred.append(f"fsync failed: {exc.strerror or exc}")
        self._raise_deferred()

    def close(self) -> None:
        """Close the file (fsynced if asked to) and wait for pending compressions. The live file
        is not rotated: the next run appends to it. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._fd is not None:
            try:
                self._close_fd()
            except OSError as exc:
                self._deferred.append(f"close failed: {exc.strerror or exc}")
        if self._housekeeper is not None:
            self._housekeeper.close()
        self._raise_deferred()

    def _open(self) -> None:
        try:
            self._fd = os.open(self.path, _OPEN_FLAGS, 0o666)
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None
            raise SinkError(f"{self.name}: cannot open for appending: {exc.strerror or exc}") from exc

    def _close_fd(self) -> None:
        """Close the live file, fsyncing it first if asked to; the descriptor is gone either way."""
        assert self._fd is not None
        fd, self._fd = self._fd, None
        self._size = 0  # unknown until reopened; nothing to rotate meanwhile
        try:
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)

    def _append(self, data: bytes | bytearray, count: int) -> None:
        """Write all of ``data``; on failure cut the file back to where the batch began, so that
        the next batch does not continue a half line."""
        assert self._fd is not None
        view = memoryview(data)
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, view[done:])
        except OSError as exc:
            message = f"{self.name}: write failed, {count} documents not written: {exc.strerror or exc}"
            if done:  # the part that made it is the file's last ``done`` bytes: cut them off
                try:
                    os.ftruncate(self._fd, os.fstat(self._fd).st_size - done)
                except OSError as cut:
                    message += f"; a partial line of {done} bytes remains at the end: {cut.strerror or cut}"
            raise SinkError(message) from exc
        self._size += len(data)

    def _rotate_if_due(self, incoming: int) -> None:
        """Rotate when a time boundary has passed or ``incoming`` more bytes would pass the size
        limit, as long as the live file holds anything. Time rotations are stamped with their
        boundary (so an hourly file's name is exact), size rotations with the current time."""
        now = self._clock()
        stamp: float | None = None
        interval = self._rotate_interval
        if interval is not None and now >= self._next_rotation:
            if self._size:
                stamp = self._next_rotation
            self._next_rotation = next_boundary(now, interval)
        if (stamp is None and self._size and self._rotate_size is not None
                and self._size + incoming > self._rotate_size):
            stamp = now
        if stamp is not None:
            self._rotate(stamp)

    def _rotate(self, stamp: float) -> None:
        """Close the live file, rename it to its rotated name, open a fresh one.

        If the rename fails the same file is reopened and keeps growing; the error is deferred
        to the next flush, since no document is lost. Raises `SinkError` only when the live file
        cannot be reopened, which the next write retries.
        """
        assert self._names is not None
        target: str | None = None
        try:
            target = self._names.free_name(stamp)
            if self._fd is not None:
                self._close_fd()
            os.rename(self.path, target)
        except OSError as exc:
            where = f" to {target}" if target else f" (cannot list {self._names.directory})"
            self._deferred.append(f"cannot rotate{where}: {exc.strerror or exc}; "
                                  f"still appending to {self.path}")
            if self._fd is None:
                self._open()
            return
        self._open()
        if self._fsync:
            try:
                fsync_directory(self._names.directory)
            except OSError as exc:
                self._deferred.append(f"fsync of {self._names.directory} failed: {exc.strerror or exc}")
        if self._housekeeper is not None:
            self._housekeeper.rotated(target)

    def _raise_deferred(self) -> None:
        errors = self._deferred
        if self._housekeeper is not None:
            errors += self._housekeeper.take_errors()
        self._deferred = []
        if errors:
            more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
            raise SinkError(f"{self.name}: {errors[0]}{more}")


def add_jsonl_arguments(parser: argparse.ArgumentParser) -> None:
    """The jsonl sink's flags; they apply to every ``jsonl:`` sink on the command line."""
    group = parser.add_argument_group("jsonl sink (jsonl:PATH)")
    group.add_argument("--jsonl-rotate-size", type=parse_size, metavar="SIZE",
                       help="rotate the file before a write would take it past SIZE: bytes, or "
                            "with K, M, G, T (powers of 1024), e.g. 100M")
    group.add_argument("--jsonl-rotate-interval", type=parse_duration, metavar="DURATION",
                       help="rotate at every multiple of DURATION in UTC, e.g. 15m, 1h (on the "
                            "hour), 1d (at midnight UTC)")
    group.add_argument("--jsonl-compress", choices=("none", "gzip"), default="none",
                       help="compress rotated files, in the background (default none)")
    group.add_argument("--jsonl-keep", type=parse_keep, metavar="N",
                       help="delete all but the N newest rotated files (default: keep all)")
    group.add_argument("--jsonl-fsync", action="store_true",
                       help="fsync the file at every flush (--flush-interval), rotation and "
                            "close, so that flushed documents survive a power loss")


def open_jsonl(arg: str | None, options: argparse.Namespace | None = None,
               context: SinkContext | None = None) -> JsonLinesSink:
    """The ``jsonl:PATH`` factory: reads the ``--jsonl-*`` flags from ``options`` (defaults when
    None or absent). One of several worker processes (``context.worker``) writes a file of its
    own, ``PATH`` with ``-wK`` before the extension: a file has one writer (see `JsonLinesSink`);
    a path that is not a regular file (/dev/null, a named pipe) is shared, batch by batch."""
    if not arg:
        raise SinkError("jsonl needs a file name: jsonl:PATH")
    shared = False
    if context is not None and context.worker is not None:
        if _regular_or_missing(arg):
            arg = context.worker.path(arg)
        else:  # /dev/null, a named pipe, /dev/stdout: one for every worker, written under a lock
            shared = True
    rotate_size = getattr(options, "jsonl_rotate_size", None)
    rotate_interval = getattr(options, "jsonl_rotate_interval", None)
    compress = getattr(options, "jsonl_compress", "none") == "gzip"
    keep = getattr(options, "jsonl_keep", None)
    if (compress or keep is not None) and rotate_size is None and rotate_interval is None:
        raise SinkError(f"jsonl:{arg}: --jsonl-compress and --jsonl-keep apply to rotated files; "
                        "add --jsonl-rotate-size or --jsonl-rotate-interval")
    return JsonLinesSink(arg, rotate_size=rotate_size, rotate_interval=rotate_interval,
                         compress=compress, keep=keep, fsync=getattr(options, "jsonl_fsync", False), shared=shared)


def _regular_or_missing(path: str) -> bool:
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except OSError:
        return True  # created as a regular file

