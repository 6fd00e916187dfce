"""`stdout`: JSON Lines on standard output, for pipes (`| jq`, `| head`) and debugging.

Writes go to the binary buffer under sys.stdout (orjson produces bytes), looked up when the sink
is opened so that a replaced sys.stdout (tests, embedding) is honoured. Closing the sink flushes
but never closes the process's stdout.

Worker processes (`--workers N`) share one standard output. A pipe keeps a write whole only up
to PIPE_BUF (4096 bytes), and a batch is tens of kilobytes, so writes of several processes
would interleave inside lines. So each worker writes every batch, and flushes it, while it
holds a lock on standard output (`exclusive`): one batch is written at a time, whole. Lines of
different workers come in no particular order; each line is whole. Standard output that cannot
be locked is refused when the sink opens.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, BinaryIO

from .base import SinkContext, SinkError, StreamSink, exclusive

__all__ = ["StdoutSink", "open_stdout"]


class StdoutSink(StreamSink):
    """``shared``: several processes write to this standard output; each batch is written under
    a lock (see the module comment). Raises SinkError when it cannot be locked."""

    def __init__(self, stream: BinaryIO | None = None, *, shared: bool = False) -> None:
        if stream is None:
            stream = getattr(sys.stdout, "buffer", None)
            if stream is None:
                raise SinkError("stdout: standard output has no binary buffer")
        super().__init__(stream, name="stdout", owns_stream=False)
        self.shared = shared
        if shared:
            with self._exclusive():  # refused now, not at the first write
                pass

    def write(self, docs: Sequence[dict[str, Any]], ids: Sequence[str] | None = None) -> None:
        if not self.shared:
            super().write(docs, ids)
            return
        if docs:
            with self._exclusive():
                super().write(docs, ids)
                super().flush()  # nothing of this batch may be written after the lock is gone

    def _exclusive(self) -> contextlib.AbstractContextManager[None]:
        try:
            fd = self._stream.fileno()
        except (OSError, ValueError) as exc:
            raise SinkError(f"stdout: cannot be shared by worker processes: it has no file descriptor "
                            f"({exc}); write a file per worker instead (jsonl:PATH)") from exc
        return exclusive(fd, self.name)


def open_stdout(arg: str | None, options: argparse.Namespace | None = None,
                context: SinkContext | None = None) -> StdoutSink:
    """The ``stdout`` factory: takes no argument and no flags; shared (locked batches) when
    ``context`` says the process is one of several workers."""
    if arg not in (None, "", "-"):
        raise SinkError(f"stdout takes no argument (got 'stdout:{arg}'); use jsonl:PATH for a file")
    return StdoutSink(shared=context is not None and context.worker is not None)
