"""Runs a real `Collector` (real sockets on loopback) in a background thread for tests.

The collector is the one `ipfix-collect` runs; only the sink may be a `MemorySink`, so a test can
wait for documents and hold the sink back to exercise backpressure.
"""

from __future__ import annotations

import argparse
import asyncio
import threading
import time
from collections.abc import Sequence

from ipfix_antrea import Encoder
from ipfix_antrea.inputs import open_input
from ipfix_antrea.inputs.allow import AllowList
from ipfix_antrea.monitor import RunSummary
from ipfix_antrea.service import Collector
from ipfix_antrea.sinks import SinkBase

EXPORT_TIME = 1714564800  # 2024-05-01T12:00:00Z
FIELDS = ["flowStartSeconds", "flowEndSeconds", "sourceIPv4Address", "destinationIPv4Address",
          "sourceTransportPort", "destinationTransportPort", "protocolIdentifier",
          "octetDeltaCount", "sourcePodName", "sourcePodNamespace"]


def row(i: int, pod: str = "frontend-7d9f8b6c5-x2kqp") -> tuple:
    return (EXPORT_TIME - 60, EXPORT_TIME - 1, f"10.10.{i // 250}.{i % 250}", "10.96.0.10",
            40000 + i % 20000, 8080, 6, 1000 + i, f"{pod}-{i}", "default")


def encoder(domain: int = 7, fields: Sequence[str] = FIELDS, template_id: int = 256,
            max_size: int = 65535) -> Encoder:
    enc = Encoder(observation_domain_id=domain, export_time=lambda: EXPORT_TIME, max_message_size=max_size)
    enc.add_template(template_id, fields)
    return enc


def messages(n: int, *, domain: int = 7, per_message: int = 10, max_size: int = 1400,
             pod: str = "frontend-7d9f8b6c5-x2kqp") -> list[bytes]:
    """A template message, then ``n`` records in messages of ``per_message`` records."""
    enc = encoder(domain, max_size=max_size)
    out = enc.template_messages()
    for start in range(0, n, per_message):
        out += enc.encode(256, [row(i, pod) for i in range(start, min(n, start + per_message))])
    return out


class MemorySink(SinkBase):
    """Keeps documents in memory; `hold()` makes writes wait until `release()`."""

    name = "memory"

    def __init__(self) -> None:
        self.docs: list[dict] = []
        self.flushes = 0
        self.closed = False
        self._open = threading.Event()
        self._open.set()
        self._changed = threading.Condition()

    def hold(self) -> None:
        self._open.clear()

    def release(self) -> None:
        self._open.set()

    def write(self, docs, ids=None) -> None:
        self._open.wait()
        with self._changed:
            self.docs.extend(docs)
            self._changed.notify_all()

    def flush(self) -> None:
        self.flushes += 1

    def close(self) -> None:
        self.closed = True

    def wait_for(self, n: int, timeout: float = 20.0) -> list[dict]:
        """Waits until at least ``n`` documents arrived; returns them (asserts on timeout)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self.docs) < n:
                left = deadline - time.monotonic()
                assert left > 0, f"only {len(self.docs)} of {n} documents arrived"
                self._changed.wait(left)
            return list(self.docs)


def options(**kw) -> argparse.Namespace:
    base = {"template_lifetime": 1800.0, "udp_rcvbuf": None, "udp_reuse_port": False, "tls_cert": None,
            "tls_key": None, "tls_client_ca": None}
    base.update(kw)
    return argparse.Namespace(**base)


class RunningCollector:
    """``with RunningCollector(["udp://127.0.0.1:0"]) as c:`` -> send to ``c.port("udp")``."""

    def __init__(self, specs: Sequence, sink=None, *, allow: Sequence[str] = (),
                 queue_records: int = 100_000, flush_interval: float = 0.05, sinks: Sequence = (),
                 metrics_listen: str | None = None, max_exporters: int = 50, **opts) -> None:
        """``specs``: input specs, or inputs already built (to set what the command line cannot).
        ``sink`` is the first sink (default: a `MemorySink`), ``sinks`` more after it."""
        self.sink = sink if sink is not None else MemorySink()
        inputs = [open_input(s, options=options(**opts)) if isinstance(s, str) else s for s in specs]
        self.collector = Collector(inputs, [self.sink, *sinks], allow=AllowList(allow),
                                   queue_records=queue_records, flush_interval=flush_interval,
                                   status_interval=0, metrics_listen=metrics_listen,
                                   max_exporters=max_exporters)
        self.summary: RunSummary | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def _main(self) -> None:
        async def serve() -> RunSummary:
            self._loop = asyncio.get_running_loop()
            return await self.collector.serve()

        self.summary = asyncio.run(serve())

    def __enter__(self) -> RunningCollector:
        self._thread.start()
        assert self.collector.started.wait(10), "collector did not start"
        return self

    def port(self, scheme: str) -> int:
        for listener in self.collector.listeners:
            if listener.address.startswith(f"{scheme}://"):
                return int(listener.address.rsplit(":", 1)[1])
        raise KeyError(scheme)

    def stop(self) -> RunSummary:
        if self.summary is None:
            self._loop.call_soon_threadsafe(self.collector.stop)
            self._thread.join(30)
            assert not self._thread.is_alive(), "collector did not stop"
        return self.summary

    def __exit__(self, *exc) -> None:
        if self._thread.is_alive():
            self.stop()
