"""`file:PATH` and `file:-`: a file (or standard input) of concatenated IPFIX messages.

An RFC 5655 IPFIX file is exactly that: messages back to back, with no file header. We read it
in fixed-size chunks and stream them through one `Session.feed`, which frames messages across
chunk boundaries itself, so memory stays bounded by the chunk size plus one message (at most
65535 bytes, RFC 7011 §3.1) however large the file is.

A message that cannot be framed (a bad version, a length that runs past the data) means every
later byte is unaligned: the file stops there. The records of the complete messages before it
are still yielded, on a last batch that carries the error text. A message cut short by the end
of the file is reported the same way.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import BinaryIO

from ipfix_antrea import DecodeError, Registry, Session, SessionStats

from . import Batch, InputError, InputSpec
from .progress import Progress, ProgressSettings, progress_line

__all__ = ["FileInput", "open_file", "open_binary", "is_capture", "DEFAULT_CHUNK_SIZE", "PCAPNG_MAGIC",
           "PCAP_MAGICS"]

DEFAULT_CHUNK_SIZE = 1 << 16

# How captures begin (their first four octets): pcapng's section header block, and classic pcap
# in micro-, nano- and Kuznetzov's modified form, in either byte order.
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
PCAP_MAGICS = frozenset(m + n for m, n in ((b"\xa1\xb2", b"\xc3\xd4"), (b"\xa1\xb2", b"\x3c\x4d"),
                                           (b"\xa1\xb2", b"\xcd\x34")))
PCAP_MAGICS |= frozenset(m[::-1] for m in PCAP_MAGICS)  # little-endian files


def is_capture(head: bytes) -> bool:
    """Whether a file that begins with ``head`` is a pcap or pcapng capture."""
    return head[:4] == PCAPNG_MAGIC or head[:4] in PCAP_MAGICS


class FileInput:
    """Iterating reads the whole file once, with a fresh `Session`, yielding one batch per chunk."""

    def __init__(
        self,
        path: str,
        *,
        registry: Registry | None = None,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        stream: BinaryIO | None = None,
        progress: bool = False,
    ) -> None:
        """``progress``: show a progress line on stderr while reading (`progress.py`)."""
        self.path = path
        self.name = f"file:{path}"
        self._registry = registry
        self._chunk_size = chunk_size
        self._stream = stream  # for tests/embedding: read this instead of opening path
        self._progress = progress
        self._sessions: list[Session] = []
        self.bytes_read = 0

    def stats(self) -> list[SessionStats]:
        return [s.stats for s in self._sessions]

    def close(self) -> None:
        pass  # the file is closed when iteration ends

    def __iter__(self) -> Iterator[Batch]:
        session = Session(registry=self._registry) if self._registry is not None else Session()
        self._sessions.append(session)
        stream, owned = open_binary(self.name, self.path, self._stream)
        try:
            with progress_line(self._progress, self.name, stream) as progress:
                yield from self._read(stream, session, progress)
        finally:
            if owned:
                stream.close()

    def _read(self, stream: BinaryIO, session: Session, progress: Progress | None) -> Iterator[Batch]:
        # read1 returns what is available (a pipe need not fill the chunk before we decode).
        read = getattr(stream, "read1", stream.read)
        name = self.name
        while True:
            try:
                chunk = read(self._chunk_size)
            except OSError as exc:
                raise InputError(f"{name}: read failed: {exc.strerror or exc}") from exc
            if not chunk:
                break
            if not self.bytes_read and is_capture(chunk):
                raise InputError(f"{name}: this is a packet capture, not IPFIX messages: "
                                 f"read it with pcap:{self.path}")
            self.bytes_read += len(chunk)
            try:
                records = session.feed(chunk)
            except DecodeError as err:
                session.close()  # what still waits for a template never gets it
                yield Batch(name, err.records, None, session.take_events(),
                            f"{name}: stopped reading{_at(err)}: {err.reason}")
                return
            events = session.take_events()
            if progress is not None:
                progress.advance(self.bytes_read, len(records))
            if records or events:
                yield Batch(name, records, None, events)
        if progress is not None:
            progress.finish(self.bytes_read)
        try:
            session.end_of_stream()
        except DecodeError as err:
            yield Batch(name, (), None, session.take_events(),
                        f"{name}: file ends inside an IPFIX message{_at(err)}: {err.reason}")
        else:
            events = session.take_events()  # sets dropped at the end, still waiting
            if events:
                yield Batch(name, (), None, events)


def open_binary(name: str, path: str, stream: BinaryIO | None = None) -> tuple[BinaryIO, bool]:
    """What a file-like input reads: ``stream`` if given (tests, embedding), standard input for
    ``-``, else ``path`` opened; and whether the caller owns it (must close it). Raises
    InputError naming the input ``name`` when the file cannot be opened."""
    if stream is not None:
        return stream, False
    if path == "-":
        return sys.stdin.buffer, False
    try:
        return open(path, "rb"), True  # the caller closes it
    except OSError as exc:
        raise InputError(f"{name}: cannot open: {exc.strerror or exc}") from exc


def _at(err: DecodeError) -> str:
    # Session.feed reports offsets in the stream since the session began: the file's byte offset.
    return f" at byte {err.offset}" if err.offset is not None else ""


def open_file(spec: InputSpec, *, registry: Registry | None = None,
              options: argparse.Namespace | None = None) -> FileInput:
    return FileInput(spec.target, registry=registry, progress=ProgressSettings.from_namespace(options).enabled)
