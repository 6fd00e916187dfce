# `stdout`: JSON Lines on standard output, for pipes (`| jq`, `| head`) and debugging.
#
# Writes go to the binary buffer under sys.stdout (orjson produces bytes), looked up when the sink
# is opened so that a replaced sys.stdout (tests, embedding) is honoured. Closing the sink flushes
# but never closes the process's stdout.
from __future__ import annotations

import argparse
import sys
from typing import BinaryIO

from .base import SinkContext, SinkError, StreamSink

__all__ = ["StdoutSink", "open_stdout"]


class StdoutSink(StreamSink):
    def __init__(self, stream: BinaryIO | None = None) -> None:
        if stream is None:
            stream = getattr(sys.stdout, "buffer", None)
            if stream is None:
                raise SinkError("stdout: standard output has no binary buffer")
        super().__init__(stream, name="stdout", owns_stream=False)


def open_stdout(arg: str | None, options: argparse.Namespace | None = None,
                context: SinkContext | None = None) -> StdoutSink:
    """The ``stdout`` factory: takes no argument, no flags, nothing from ``context``."""
    if arg not in (None, "", "-"):
        raise SinkError(f"stdout takes no argument (got 'stdout:{arg}'); use jsonl:PATH for a file")
    return StdoutSink()
