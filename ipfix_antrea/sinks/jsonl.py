# `jsonl:PATH`: append JSON Lines to a file.
#
# Appending (never truncating) lets repeated runs and several collectors add to one file, the way
# Logstash's file output does. Writes are buffered by the file object; `flush` makes them visible.
from __future__ import annotations

import argparse

from .base import SinkError, StreamSink

__all__ = ["JsonLinesSink", "open_jsonl"]


class JsonLinesSink(StreamSink):
    """One JSON document per line, appended to ``path`` (created if missing)."""

    def __init__(self, path: str) -> None:
        try:
            stream = open(path, "ab")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise SinkError(f"jsonl:{path}: cannot open for appending: {exc.strerror or exc}") from exc
        super().__init__(stream, name=f"jsonl:{path}", owns_stream=True)
        self.path = path


def open_jsonl(arg: str | None, options: argparse.Namespace | None = None) -> JsonLinesSink:
    if not arg:
        raise SinkError("jsonl needs a file name: jsonl:PATH")
    return JsonLinesSink(arg)
