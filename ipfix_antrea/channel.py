"""The pipe between a worker process of `ipfix-collect --workers N` and its supervisor.

One Unix socket pair per worker, its end inherited by the worker. Messages are pickled tuples,
each framed by its length (4 octets): both ends are this program, and the pair is private to
them. A worker sends:

  ("report", WorkerReport)          every `REPORT_INTERVAL` seconds once its listeners listen
  ("templates", id, [session...])   the answer to a request of the templates its sessions hold
  ("final", WorkerReport)           once, when its run is over (drained, flushed, closed)

and obeys ("stop",) -- stop accepting, drain, flush, exit: what SIGTERM does to a collector
alone -- and ("templates", id). Its supervisor going away (end of file: it was killed) stops it
the same way, so no worker outlives its supervisor.

A report carries what the collector's own operations endpoints read (`Collector.snapshot`,
`readiness`, `liveness`), its summary so far and its open sessions: the supervisor sums them
(`ipfix_antrea.totals`) for the status line, the metrics and the summary. Reports are read on
the worker's event loop, where its sessions live, so a report that comes is also proof that the
loop runs: the supervisor's liveness check. The templates, which can be large, travel only when
asked for (`/templates`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import socket
import struct
from dataclasses import dataclass
from typing import Any

from .monitor import RunSummary
from .service import Collector, ServiceSnapshot

__all__ = ["WorkerReport", "REPORT_INTERVAL", "send", "receive", "report", "serve_as_worker"]

REPORT_INTERVAL = 1.0  # seconds between a worker's reports
_FRAME = struct.Struct(">I")
log = logging.getLogger("ipfix_antrea.collector")


@dataclass
class WorkerReport:
    """A worker's numbers at one moment (see the module comment)."""

    snapshot: ServiceSnapshot
    summary: RunSummary
    readiness: tuple[bool, list[str]]
    liveness: tuple[bool, str]
    open_sessions: int  # transport sessions open now (the status line's exporters)


async def send(writer: asyncio.StreamWriter, message: tuple[Any, ...]) -> None:
    """Sends one message (one write: messages from several tasks never interleave)."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    writer.write(_FRAME.pack(len(data)) + data)
    await writer.drain()


async def receive(reader: asyncio.StreamReader) -> tuple[Any, ...] | None:
    """The next message; None when the other end has closed."""
    try:
        size = _FRAME.unpack(await reader.readexactly(_FRAME.size))[0]
        message: tuple[Any, ...] = pickle.loads(await reader.readexactly(size))
        return message
    except (asyncio.IncompleteReadError, ConnectionError):
        return None


def report(collector: Collector, summary: RunSummary | None = None) -> WorkerReport:
    """The collector's numbers now (on its event loop); ``summary`` once its run has ended."""
    return WorkerReport(collector.snapshot(), summary or collector.summary(), collector.readiness(),
                        collector.liveness(), collector.monitor.exporters)


async def serve_as_worker(collector: Collector, channel: socket.socket,
                          interval: float = REPORT_INTERVAL) -> RunSummary:
    """Runs ``collector`` (`Collector.serve`) as a worker of the supervisor at the other end of
    ``channel``: reports, answers, obeys (see the module comment); returns its summary."""
    reader, writer = await asyncio.open_unix_connection(sock=channel)
    serving = asyncio.create_task(collector.serve())
    helpers = [asyncio.create_task(_obey(collector, reader, writer)),
               asyncio.create_task(_report_forever(collector, writer, interval))]
    try:
        summary = await serving
    finally:
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
    with contextlib.suppress(ConnectionError):
        await send(writer, ("final", report(collector, summary)))
        writer.close()
        await writer.wait_closed()
    return summary


async def _obey(collector: Collector, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        message = await receive(reader)
        if message is None:
            log.error("the supervisor has gone away: stopping")
            collector.stop()
            return
        if message[0] == "stop":
            collector.stop()
        elif message[0] == "templates":
            await send(writer, ("templates", message[1], collector.templates()))


async def _report_forever(collector: Collector, writer: asyncio.StreamWriter, interval: float) -> None:
    while not collector.started.is_set():  # set by serve() once every listener listens
        await asyncio.sleep(0.01)
    while True:
        await send(writer, ("report", report(collector)))
        await asyncio.sleep(interval)
