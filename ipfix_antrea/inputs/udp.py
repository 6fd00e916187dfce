# `udp://HOST:PORT`: IPFIX over UDP (RFC 7011 §10.3), one message per datagram.
#
# Each exporter (address, port) is a transport session with a `Session` of its own, so two
# exporters that use the same template ids never see each other's templates. UDP templates are
# soft state: they expire `template_lifetime` seconds after they were last sent (default 1800 s,
# three times Antrea's 600 s refresh), and an exporter that has been silent that long is
# forgotten (its counters move into the totals), so memory follows the live exporters.
#
# UDP has no backpressure. A datagram whose records do not fit in the delivery queue is dropped,
# and its records counted as dropped; the kernel's receive buffer is what absorbs bursts while
# the collector is busy elsewhere, and it decides the highest rate taken without loss (with the
# kernel's default of 208 KiB, about a third of what 4 MiB gives; docs/performance.md). So we ask
# for 4 MiB unless told otherwise (`rcvbuf`, `--udp-rcvbuf`). The kernel caps it at
# net.core.rmem_max: when an explicit size is capped, we say so at start. `reuseport` sets SO_REUSEPORT so several collectors can
# share a port (the kernel spreads exporters between them).
#
# Options, in the spec (`udp://0.0.0.0:4739?rcvbuf=8M&reuseport=1`) or as flags for every UDP
# input (`--udp-rcvbuf`, `--udp-reuse-port`); the spec wins.
from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

from ipfix_antrea import DecodeError, Registry, Session, SessionStats

from ..units import parse_size
from . import DEFAULT_TEMPLATE_LIFETIME, Batch, InputError, InputSpec, Intake, SessionSettings, session_factory
from .options import bool_option, format_address, resolve_bind, size_option

__all__ = ["UdpListener", "UdpSettings", "add_udp_arguments", "open_udp"]

DEFAULT_RCVBUF = 4 << 20  # asked for when no size is given; the kernel may give less, quietly
SWEEP_INTERVAL = 30.0  # how often idle exporters and stale templates are looked for
_log = logging.getLogger("ipfix_antrea.inputs.udp")


class UdpListener(asyncio.DatagramProtocol):
    """Receives datagrams on one socket and decodes them, one `Session` per exporter."""

    def __init__(self, spec: InputSpec, *, new_session: Callable[[], Session] | None = None,
                 template_lifetime: float = DEFAULT_TEMPLATE_LIFETIME, rcvbuf: int | None = None,
                 reuse_port: bool = False) -> None:
        self.name = str(spec)
        self.address = self.name
        self._spec = spec
        self._new_session = new_session or session_factory(
            None, SessionSettings(template_lifetime=template_lifetime), expiring=True)
        self.template_lifetime = template_lifetime
        self.rcvbuf = rcvbuf
        self.reuse_port = reuse_port
        self._exporters: dict[tuple[str, int], _Exporter] = {}
        self._intake: Intake | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._sweeper: asyncio.Task | None = None

    # ---------------------------------------------------------------- lifecycle

    async def start(self, intake: Intake) -> None:
        self._intake = intake
        loop = asyncio.get_running_loop()
        sock = self._bind()
        self._transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=sock)
        self._sweeper = asyncio.create_task(self._sweep_forever())

    def _bind(self) -> socket.socket:
        host, port = self._spec.host_port()
        family, sockaddr = resolve_bind(self._spec, host, port, socket.SOCK_DGRAM)
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            if self.reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            asked = self.rcvbuf or DEFAULT_RCVBUF
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, asked)
            if self.rcvbuf:
                # Linux reports twice what it grants (bookkeeping overhead, socket(7)).
                granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
                if granted < self.rcvbuf:
                    _log.warning("%s: receive buffer is %d bytes, not the %d asked for "
                                 "(raise net.core.rmem_max)", self.name, granted, self.rcvbuf)
            sock.bind(sockaddr)
        except OSError as exc:
            sock.close()
            raise InputError(f"{self.name}: cannot listen: {exc.strerror or exc}") from exc
        sock.setblocking(False)
        bound = sock.getsockname()
        self.address = f"udp://{format_address(bound[0])}:{bound[1]}"
        return sock

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self._transport is not None:
            self._transport.close()
        for key in list(self._exporters):
            self._forget(key)

    def stats(self) -> list[SessionStats]:
        return [e.session.stats for e in self._exporters.values()]

    # ---------------------------------------------------------------- receiving

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        intake = self._intake
        key = (addr[0], addr[1])
        exporter = self._exporters.get(key)
        if exporter is None:
            if not intake.allows(key[0]):
                intake.report(_source(key), "refused",
                              "exporter not in the --allow list; its datagrams are dropped")
                return
            exporter = self._exporters[key] = _Exporter(self._new_session(), _source(key))
            intake.session_started(exporter.source)
        session, source = exporter.session, exporter.source
        exporter.last_seen = now = time.monotonic()
        try:
            records = session.decode_datagram(data, now)
        except DecodeError as err:
            records = err.records
            intake.report(source, "malformed message", f"datagram dropped: {err.reason}")
        events = session.take_events()
        if records or events:
            if not intake.offer(Batch(source, records, key[0], events)):
                intake.report(source, "dropped", "delivery queue full; dropping datagrams "
                              "(sinks are slower than this exporter)")

    def error_received(self, exc: Exception) -> None:
        # ICMP errors and the like on an unconnected socket: nothing was lost on our side.
        _log.debug("%s: socket error: %s", self.name, exc)

    # ---------------------------------------------------------------- forgetting

    async def _sweep_forever(self) -> None:
        interval = min(SWEEP_INTERVAL, self.template_lifetime)
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Expires stale templates and forgets exporters silent for a template lifetime."""
        for key, exporter in list(self._exporters.items()):
            exporter.session.expire_templates(now)
            if now - exporter.last_seen > self.template_lifetime:
                self._forget(key)
            else:
                events = exporter.session.take_events()
                if events:
                    self._intake.offer(Batch(exporter.source, (), key[0], events))

    def _forget(self, key: tuple[str, int]) -> None:
        exporter = self._exporters.pop(key)
        self._intake.session_ended(exporter.source, exporter.session.stats)


class _Exporter:
    """What the listener keeps per exporter (address, port): its session, its name in logs and
    batches (made once, not per datagram), and when it last sent."""

    __slots__ = ("session", "source", "last_seen")

    def __init__(self, session: Session, source: str) -> None:
        self.session = session
        self.source = source
        self.last_seen = 0.0


def _source(key: tuple[str, int]) -> str:
    return f"udp {format_address(key[0])}:{key[1]}"


@dataclass(frozen=True)
class UdpSettings:
    """The ``--udp-*`` flags, for every UDP input; a spec's own options win."""

    rcvbuf: int | None = None  # None: ask for DEFAULT_RCVBUF
    reuse_port: bool = False

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> UdpSettings:
        return cls(getattr(options, "udp_rcvbuf", None), bool(getattr(options, "udp_reuse_port", False)))


def add_udp_arguments(parser: argparse.ArgumentParser) -> None:
    """The udp:// inputs' flags."""
    g = parser.add_argument_group("udp:// inputs (a spec's ?rcvbuf= and ?reuseport= win)")
    g.add_argument("--udp-rcvbuf", type=parse_size, metavar="SIZE",
                   help="UDP socket receive buffer, e.g. 8M (default: 4M, or as much as "
                   "net.core.rmem_max allows); it absorbs bursts, so it sets the highest loss-free rate")
    g.add_argument("--udp-reuse-port", action="store_true",
                   help="set SO_REUSEPORT so several collectors can share a UDP port")


def open_udp(spec: InputSpec, *, registry: Registry | None = None,
             options: argparse.Namespace | None = None) -> UdpListener:
    flags = UdpSettings.from_namespace(options)
    sessions = SessionSettings.from_namespace(options)
    rcvbuf = size_option(spec, "rcvbuf", flags.rcvbuf)
    reuse_port = bool_option(spec, "reuseport", flags.reuse_port)
    unknown = set(spec.options) - {"rcvbuf", "reuseport"}
    if unknown:
        raise InputError(f"{spec}: unknown option(s) {', '.join(sorted(unknown))}; udp takes rcvbuf, reuseport")
    return UdpListener(spec, new_session=session_factory(registry, sessions, expiring=True),
                       template_lifetime=sessions.template_lifetime, rcvbuf=rcvbuf, reuse_port=reuse_port)
