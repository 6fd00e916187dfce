"""Progress of file and capture inputs on a terminal: bytes read of the total, records, the rates
and the time left, on one line of stderr that redraws itself (tqdm).

A conversion of a large capture can take minutes; without a sign of life a user cannot tell a
slow run from a hung one. So `--progress auto` (the default) shows a line per input while it is
read, when stderr is a terminal, unless `-q` (or a log level above info) asks for silence or
the documents themselves go to that terminal (a `stdout` sink on a terminal would be garbled by
it). Piped or redirected stderr, as in services and CI, never gets one. `--progress on|off`
decides regardless.

tqdm is imported only when a line is shown; it is in the `[collector]` extra. The inputs call
`advance` per chunk or per batch; it redraws at most five times a second, so its cost is a clock
read. While a line is up, the collector's log lines go through tqdm, which clears the line,
writes the message and draws the line again below it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import sys
import time
from dataclasses import dataclass
from typing import BinaryIO

from . import InputError

__all__ = ["Progress", "ProgressSettings", "add_progress_arguments", "progress_line", "stream_size"]

MODES = ("auto", "on", "off")
REDRAW_INTERVAL = 0.2  # seconds
NAME_WIDTH = 40  # a longer input name keeps its end: the numbers must fit on the line


@dataclass(frozen=True)
class ProgressSettings:
    """``--progress``, resolved: whether file and capture inputs show a progress line."""

    enabled: bool = False

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> ProgressSettings:
        """Off for library callers (no options); ``auto`` as the module comment says. Raises
        InputError for ``on`` without tqdm installed."""
        mode = getattr(options, "progress", "off") if options is not None else "off"
        if mode == "off":
            return cls(False)
        installed = _installed("tqdm")
        if mode == "on":
            if not installed:
                raise InputError("--progress on needs tqdm (not installed): pip install 'ipfix-antrea[collector]'")
            return cls(True)
        quiet = getattr(options, "quiet", False) or getattr(options, "log_level", "info") in ("warning", "error")
        sinks = getattr(options, "sinks", None) or ["stdout"]
        to_terminal = _isatty(sys.stdout) and any(s.split(":", 1)[0].strip().lower() == "stdout" for s in sinks)
        return cls(installed and not quiet and not to_terminal and _isatty(sys.stderr))


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def _isatty(stream: object) -> bool:
    try:
        return bool(stream.isatty())  # type: ignore[attr-defined]
    except (AttributeError, ValueError, OSError):
        return False


def add_progress_arguments(parser: argparse.ArgumentParser) -> None:
    """The file: and pcap: inputs' flag."""
    g = parser.add_argument_group("file: and pcap: inputs")
    g.add_argument("--progress", choices=MODES, default="auto",
                   help="a progress line on stderr while files and captures are read (bytes of the total, "
                   "records, rates, time left); auto (the default): when stderr is a terminal, unless -q "
                   "or documents go to that terminal")


def progress_line(enabled: bool, name: str, stream: BinaryIO) -> contextlib.AbstractContextManager[Progress | None]:
    """``with progress_line(...) as progress:`` a `Progress` for reading ``stream``, or None
    when ``enabled`` is false."""
    return Progress(name, stream_size(stream)) if enabled else contextlib.nullcontext()


def stream_size(stream: BinaryIO) -> int | None:
    """The size of a regular file, else None (a pipe, standard input from a terminal)."""
    try:
        info = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return None
    return info.st_size if info.st_mode & 0o170000 == 0o100000 else None


class Progress(contextlib.AbstractContextManager["Progress"]):
    """The progress line of one input while it is read: ``with Progress(name, total) as p:``
    then ``p.advance(position, records)``; the line stays, complete, when the block ends."""

    def __init__(self, name: str, total: int | None) -> None:
        from tqdm import tqdm
        from tqdm.contrib.logging import logging_redirect_tqdm

        if len(name) > NAME_WIDTH:
            name = "…" + name[-(NAME_WIDTH - 1):]
        self._bar = tqdm(total=total, desc=name, unit="B", unit_scale=True, unit_divisor=1024,
                         file=sys.stderr, dynamic_ncols=True, mininterval=REDRAW_INTERVAL, leave=True)
        self._redirect = logging_redirect_tqdm([logging.getLogger("ipfix_antrea")])
        self._redirect.__enter__()
        self._records = 0
        self._started = time.monotonic()
        self._next = self._started

    def advance(self, position: int, records: int = 0) -> None:
        """``position``: octets read so far; ``records``: records decoded since the last call."""
        self._records += records
        now = time.monotonic()
        if now >= self._next:
            self._next = now + REDRAW_INTERVAL
            self._draw(position, now)

    def _draw(self, position: int, now: float) -> None:
        rate = self._records / max(now - self._started, 1e-9)
        self._bar.set_postfix_str(f"{self._records} records, {rate:,.0f} records/s", refresh=False)
        self._bar.update(position - self._bar.n)

    def finish(self, position: int) -> None:
        """The last drawing, at ``position``."""
        self._draw(position, time.monotonic())
        self._bar.refresh()

    def __exit__(self, *exc: object) -> None:
        self._bar.close()
        self._redirect.__exit__(None, None, None)
