"""Rotation for file sinks: the names of rotated files, and the housekeeping
(gzip, keep the newest N) that follows a rotation.

A live file `DIR/STEM.EXT` rotates to `DIR/STEM-YYYYmmddTHHMMSSZ.EXT` (UTC; `-1`, `-2`... on a
collision), which gzip turns into `...EXT.gz`. Only names of exactly that shape are ever
compressed, pruned or cleaned up, so other files in the directory are safe.

Compression runs in one background thread per sink, not in the sink thread: gzip of a 1 GiB
file takes tens of seconds of CPU, and a sink thread stalled that long backs up the collector's
queue until UDP datagrams are dropped. zlib releases the GIL while it compresses, so the thread
really runs alongside. One worker keeps the jobs in rotation order, so that pruning never races
a compression.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import os
import re
import shutil
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

__all__ = [
    "Housekeeper",
    "RotatedNames",
    "fsync_directory",
    "gzip_file",
    "next_boundary",
]


T = TypeVar("T")

_STAMP_FORMAT = "%Y%m%dT%H%M%SZ"
_GZ = ".gz"
_TMP = ".tmp"
GZIP_LEVEL = 6  # gzip's own default: nearly the size of level 9 at a fraction of the CPU


def next_boundary(when: float, interval: int) -> int:
    """The first multiple of ``interval`` seconds since the epoch after ``when``: intervals that
    divide a day fall on wall-clock UTC boundaries (1h on the hour, 1d at midnight UTC)."""
    return (int(when // interval) + 1) * interval


def fsync_directory(directory: str) -> None:
    """Make renames and unlinks in ``directory`` durable (a file's own fsync does not)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno != errno.EINVAL:  # EINVAL: this filesystem cannot sync a directory at all
            raise
    finally:
        os.close(fd)


def gzip_file(path: str) -> None:
    """Replace ``path`` by ``path.gz``, crash-safely.

    The gzip is written under ``path.gz.tmp``, fsynced, renamed to ``path.gz`` and the directory
    fsynced; only then is ``path`` deleted. A crash at any point leaves either the complete
    original or a complete ``.gz`` (perhaps both), never a truncated ``.gz`` under its final name.
    A ``path`` that no longer exists (pruned meanwhile) is skipped.
    """
    target = path + _GZ
    temporary = target + _TMP
    try:
        source = open(path, "rb")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return
    try:
        with source, open(temporary, "wb") as raw:
            with gzip.GzipFile(filename=os.path.basename(path), mode="wb", fileobj=raw,
                               compresslevel=GZIP_LEVEL) as compressed:
                shutil.copyfileobj(source, compressed, 1 << 20)
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):  # the original error is the one worth reporting
            os.unlink(temporary)
        raise
    fsync_directory(os.path.dirname(path))
    os.unlink(path)


class RotatedNames:
    """The rotated files of one live file: ``DIR/STEM-YYYYmmddTHHMMSSZ[-N]EXT[.gz]``."""

    def __init__(self, path: str) -> None:
        self.directory = os.path.dirname(os.path.abspath(path))
        self._stem, self._ext = os.path.splitext(os.path.basename(path))
        self._pattern = re.compile(
            re.escape(self._stem) + r"-(\d{8}T\d{6}Z)(?:-(\d+))?" + re.escape(self._ext)
            + r"(" + re.escape(_GZ) + r"(?:" + re.escape(_TMP) + r")?)?")

    def free_name(self, when: float) -> str:
        """A new rotated name stamped with ``when`` (UTC, to the second). Within one second the
        counter goes past the highest in use (``STAMP``, ``STAMP-1``, ``STAMP-2``...), never back
        to a number that pruning freed, so that a newer file never sorts before an older one."""
        stamp = time.strftime(_STAMP_FORMAT, time.gmtime(when))
        taken = [counter for (other, counter), _, _ in self._scan() if other == stamp]
        counter = max(taken) + 1 if taken else 0
        suffix = f"-{counter}" if counter else ""
        return os.path.join(self.directory, f"{self._stem}-{stamp}{suffix}{self._ext}")

    def _scan(self) -> list[tuple[tuple[str, int], str, str]]:
        """(sort key, full path, suffix) of every file of ours in the directory."""
        found = []
        for name in os.listdir(self.directory):
            match = self._pattern.fullmatch(name)
            if match:
                key = (match[1], int(match[2] or 0))
                found.append((key, os.path.join(self.directory, name), match[3] or ""))
        return sorted(found)

    def rotated(self) -> list[list[str]]:
        """Complete rotated files, oldest first; the forms of one rotation (``.EXT`` and
        ``.EXT.gz`` after a crash mid-compression) are grouped, so they count once."""
        groups: dict[tuple[str, int], list[str]] = {}
        for key, path, suffix in self._scan():
            if suffix != _GZ + _TMP:
                groups.setdefault(key, []).append(path)
        return list(groups.values())

    def uncompressed(self) -> list[str]:
        """Rotated files not yet gzipped, oldest first."""
        return [path for _, path, suffix in self._scan() if not suffix]

    def temporaries(self) -> list[str]:
        """Unfinished gzip outputs (``.gz.tmp``) of an earlier run."""
        return [path for _, path, suffix in self._scan() if suffix == _GZ + _TMP]


class Housekeeper:
    """Compresses rotated files and deletes all but the newest ``keep``, in a background thread.

    Failures never propagate in the thread: they are collected, with the file and the reason,
    and the sink reports them through `take_errors` (a failed compression leaves the rotated file
    uncompressed, so nothing is lost). `close` waits for the pending jobs.
    """

    def __init__(self, names: RotatedNames, *, compress: bool, keep: int | None) -> None:
        self._names = names
        self._compress = compress
        self._keep = keep
        self._errors: list[str] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jsonl-housekeeping")

    def recover(self) -> None:
        """Queue the work a previous run left unfinished: delete its ``.gz.tmp`` files, compress
        its uncompressed rotated files, prune."""
        self._executor.submit(self._recover)

    def rotated(self, path: str) -> None:
        """Queue the housekeeping for a file that was just rotated to ``path``."""
        self._executor.submit(self._tidy, [path])

    def take_errors(self) -> list[str]:
        """The failures since the last call, oldest first."""
        with self._lock:
            errors, self._errors = self._errors, []
        return errors

    def close(self) -> None:
        """Wait until every queued job has finished."""
        self._executor.shutdown(wait=True)

    def _recover(self) -> None:
        directory = self._names.directory
        for temporary in self._guard("cannot list", directory, self._names.temporaries) or []:
            self._guard("cannot delete", temporary, _unlink_if_present, temporary)
        leftovers = self._guard("cannot list", directory, self._names.uncompressed) if self._compress else []
        self._tidy(leftovers or [])

    def _tidy(self, paths: list[str]) -> None:
        if self._compress:
            for path in paths:
                self._guard("cannot gzip", path, gzip_file, path)
        if self._keep is not None:
            groups = self._guard("cannot list", self._names.directory, self._names.rotated) or []
            for group in groups[:-self._keep]:
                for path in group:
                    self._guard("cannot delete", path, _unlink_if_present, path)

    def _guard(self, what: str, path: str, func: Callable[..., T], *args: object) -> T | None:
        """``func(*args)``, recording an OSError as "what path: reason" instead of raising."""
        try:
            return func(*args)
        except OSError as exc:
            with self._lock:
                self._errors.append(f"{what} {path}: {exc.strerror or exc}")
            return None


def _unlink_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
