"""What an input or a sink knows of being one of several worker processes (`--workers N`).

With `--workers N` the collector runs N worker processes (`ipfix_antrea.supervisor`), each with
its own listeners' share of the exporters and its own sinks. Plugins are told which worker they
are in by a `WorkerInfo`, and decide what that changes for them: a file-writing sink writes a
file of its own (`NAME-wK.EXT`, `per_worker_path`), standard output is shared under a lock, a
UDP input keeps its own state file and reads every worker's. `None` means the process is the
only one, and nothing changes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

__all__ = ["WorkerInfo", "per_worker_path"]


@dataclass(frozen=True)
class WorkerInfo:
    """Worker ``index`` (from 0) of ``count`` worker processes."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"worker {self.index} of {self.count}"

    def path(self, path: str) -> str:
        """This worker's own file in place of ``path`` (see `per_worker_path`)."""
        return per_worker_path(path, self.index)


def per_worker_path(path: str, index: int) -> str:
    """``/var/log/flows.jsonl`` -> ``/var/log/flows-w0.jsonl`` for worker 0: the worker number
    goes before the extension, so that each worker writes a file of its own and globs such as
    ``flows-w*.jsonl`` find them all."""
    directory, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    return os.path.join(directory, f"{stem}-w{index}{ext}")
