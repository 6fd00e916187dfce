"""`tcp://HOST:PORT` and `tls://HOST:PORT`: IPFIX over a byte stream (RFC 7011 §10.4, §11).

Every connection is a transport session with its own `Session`: its templates live exactly as
long as the connection (TCP templates never expire, RFC 7011 §8.1). Messages are framed by the
length in their header, across reads, by `Session.feed`.

Backpressure is the stream's own: a connection hands each read's records to `Intake.put`, which
waits while the delivery queue is full; while it waits it does not read, the kernel's receive
buffer fills and TCP's window closes on the exporter. Nothing accepted is dropped.

A stream that cannot be framed (a header that is not IPFIX) cannot be resynchronised: every
later byte is unaligned. The records before the bad message are delivered, the problem is
reported, and the connection is closed (RFC 7011 §10.4.1.2 lets the collector reset it); the
exporter reconnects and resends its templates. Other connections are not disturbed.

Worker processes (`--workers N`) share one listening socket and take turns accepting from it: a
worker accepts one connection per turn of its event loop, and then leaves the next ones to the
others for `ACCEPT_TURN` (50 ms). So a busy worker, slow to come back to its loop, takes fewer
new exporters, and a handful of exporters that connect at once are shared out evenly (the
kernel's SO_REUSEPORT hashing gives 4 connections to 2 workers as 4-0 or 3-1 more often than
not). A connection's records stay with the worker that accepted it.

TLS (`tls://`) is TCP with a handshake first: certificate and key from `--tls-cert`/`--tls-key`,
TLS 1.2 at least (RFC 7011 §11.1 asks for 1.2-era TLS), and with `--tls-client-ca` exporters
must present a certificate signed by that CA (mutual TLS, as the Flow Aggregator can do). The
allow-list is checked before the handshake, so refused exporters cost nothing; a failed or slow
handshake (`handshake_timeout`) is counted and logged once per exporter.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from ipfix_antrea import DecodeError, Registry, Session, SessionStats

from ..workers import WorkerInfo
from . import Batch, InputError, InputSpec, Intake, SessionSettings, session_factory
from .options import bind_sockets, format_address, socket_address

__all__ = ["TcpListener", "TlsSettings", "add_tls_arguments", "open_tcp", "open_tls", "tls_server_context",
           "READ_SIZE"]

READ_SIZE = 1 << 16
BACKLOG = 100  # connections the kernel completes and holds until we accept them (asyncio's default)
ACCEPT_TURN = 0.05  # with other workers, seconds to leave them the next connection after accepting one
ACCEPT_RETRY = 1.0  # seconds before accepting again when the process is out of file descriptors
HANDSHAKE_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0  # how long `stop` waits for connections to hand over their last records
_log = logging.getLogger("ipfix_antrea.inputs.tcp")


class TcpListener:
    """Accepts exporters' connections (TCP, or TLS when ``tls`` is given) and decodes each."""

    def __init__(self, spec: InputSpec, *, new_session: Callable[[], Session] = Session,
                 tls: ssl.SSLContext | None = None, handshake_timeout: float = HANDSHAKE_TIMEOUT) -> None:
        self.name = str(spec)
        self.address = self.name
        self.scheme = "tls" if tls is not None else "tcp"
        self._spec = spec
        self._host, self._port = spec.host_port()  # a bad port is the command line's error
        self._new_session = new_session
        self._tls = tls
        self.handshake_timeout = handshake_timeout
        self._intake: Intake | None = None
        self._listening: socket.socket | None = None  # accepted from, after `start`
        self._resume: asyncio.TimerHandle | None = None  # accepting again after a pause
        self._turn = 0.0  # seconds to leave connections to the other workers after accepting one
        self._sessions: dict[str, Session] = {}
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._socket: socket.socket | None = None  # given by `adopt`; else `start` binds one

    def bind(self, count: int = 1) -> list[socket.socket]:
        """One listening socket, for every worker (``count`` times): they take turns accepting
        from it (see the module comment). Listening at once: connections that come before a
        worker accepts wait in the kernel's backlog."""
        (sock,) = bind_sockets(self._spec, self._host, self._port, socket.SOCK_STREAM, 1, reuse_port=False,
                               prepare=_reuse_address)
        sock.listen(BACKLOG)
        self.address = socket_address(self.scheme, sock)
        return [sock] * count

    def adopt(self, sock: socket.socket, worker: WorkerInfo) -> None:
        """Accepts from ``sock``, the listening socket every worker shares; with other workers,
        leaves the next connection to them for `ACCEPT_TURN` seconds after each it accepts."""
        self._socket = sock
        self.address = socket_address(self.scheme, sock)
        self._turn = ACCEPT_TURN if worker.count > 1 else 0.0

    async def start(self, intake: Intake) -> None:
        self._intake = intake
        sock = self._socket if self._socket is not None else self.bind()[0]
        sock.setblocking(False)
        self._listening = sock
        asyncio.get_running_loop().add_reader(sock, self._acceptable)

    def _acceptable(self) -> None:
        """A connection waits: accept it (one per turn of the loop, so that the other workers
        get theirs) and set it up in a task of its own."""
        loop = asyncio.get_running_loop()
        assert self._listening is not None and self._intake is not None
        try:
            conn, _ = self._listening.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            return  # another worker took it, or the exporter gave up
        except OSError as exc:  # out of file descriptors or memory: the backlog holds them meanwhile
            self._intake.report(self.name, "cannot accept", f"cannot accept connections: "
                                f"{exc.strerror or exc}; trying again in {ACCEPT_RETRY:g} s")
            self._pause(ACCEPT_RETRY)
            return
        conn.setblocking(False)
        task = loop.create_task(loop.connect_accepted_socket(lambda: _Accepted(self), conn))
        task.add_done_callback(_connected)
        if self._turn:
            self._pause(self._turn)

    def _pause(self, seconds: float) -> None:
        """Stops accepting for ``seconds``."""
        assert self._listening is not None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._listening)
        self._resume = loop.call_later(seconds, self._accept_again)

    def _accept_again(self) -> None:
        assert self._listening is not None
        asyncio.get_running_loop().add_reader(self._listening, self._acceptable)

    async def stop(self) -> None:
        """Stops accepting, closes every connection and waits for each to hand over the
        records of what it had already received."""
        if self._listening is not None:
            if self._resume is not None:
                self._resume.cancel()
            asyncio.get_running_loop().remove_reader(self._listening)
            self._listening.close()
        for writer in list(self._writers):
            writer.close()
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=STOP_TIMEOUT)
            for task in late:
                task.cancel()

    def stats(self) -> list[SessionStats]:
        return [s.stats for s in self._sessions.values()]

    def sessions(self) -> dict[str, Session]:
        return dict(self._sessions)

    # ---------------------------------------------------------------- one connection

    async def _accept(self, transport: asyncio.Transport) -> None:
        task = asyncio.current_task()
        assert task is not None  # a coroutine run by create_task
        self._tasks.add(task)
        writer: asyncio.StreamWriter | None = None
        try:
            opened = await self._open(transport)
            if opened is not None:
                writer, reader, source, ip = opened
                self._writers.add(writer)
                await self._serve(reader, source, ip)
        finally:
            self._writers.discard(writer)
            self._tasks.discard(task)
            if writer is not None:
                writer.close()
                with contextlib.suppress(Exception):
                    await writer.wait_closed()
            else:
                transport.abort()

    async def _open(self, transport: asyncio.Transport
                    ) -> tuple[asyncio.StreamWriter, asyncio.StreamReader, str, str] | None:
        """Checks the exporter, does the TLS handshake, and sets the connection up as a stream:
        (writer, reader, source, address); None when the connection is refused. The transport is
        still paused: nothing has been read from it, so no ClientHello can end up in a plain-text
        buffer."""
        peer = transport.get_extra_info("peername")
        ip, port = peer[0], peer[1]
        source = f"{self.scheme} {format_address(ip)}:{port}"
        # Problems before a session exists are the exporter's (its address), not the
        # connection's: an exporter retrying every few seconds is logged once, not per port.
        exporter = f"{self.scheme} {format_address(ip)}"
        intake = self._intake
        assert intake is not None
        if not intake.allows(ip):
            intake.report(exporter, "refused", "exporter not in the --allow list; connection closed")
            return None
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=READ_SIZE)
        protocol = asyncio.StreamReaderProtocol(reader)
        if self._tls is not None:
            try:
                tls = await loop.start_tls(transport, protocol, self._tls, server_side=True,
                                           ssl_handshake_timeout=self.handshake_timeout)
            except (TimeoutError, ssl.SSLError, OSError, EOFError) as exc:
                reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
                intake.report(exporter, "tls handshake failed", f"TLS handshake failed: {reason}; connection closed")
                return None
            assert tls is not None  # the TLS transport (typeshed's hint allows None)
            transport = tls
        else:
            transport.set_protocol(protocol)
        protocol.connection_made(transport)
        if self._tls is None:
            transport.resume_reading()
        return asyncio.StreamWriter(transport, protocol, reader, loop), reader, source, ip

    async def _serve(self, reader: asyncio.StreamReader, source: str, ip: str) -> None:
        intake = self._intake
        assert intake is not None
        session = self._new_session()
        self._sessions[source] = session
        intake.session_started(source)
        try:
            await self._read(reader, session, source, ip)
        finally:
            session.close()  # counts what still waits for a template, however the read ended
            del self._sessions[source]
            intake.session_ended(source, session.stats)

    async def _read(self, reader: asyncio.StreamReader, session: Session, source: str, ip: str) -> None:
        intake = self._intake
        assert intake is not None
        lost = None
        while True:
            try:
                data = await reader.read(READ_SIZE)
            except (ConnectionError, ssl.SSLError, OSError) as exc:
                intake.report(source, "connection error", f"connection broke: {exc}")
                data = b""
            if not data:
                break
            try:
                records = session.feed(data)
            except DecodeError as err:
                records, lost = err.records, err
            events = session.take_events()
            if records or events:
                await intake.put(Batch(source, records, ip, events))
            if lost is not None:
                intake.report(source, "stream not IPFIX", f"closing the connection: cannot frame the "
                              f"stream at byte {lost.offset}: {lost.reason}")
                session.close()
                break
        if lost is None:
            try:
                session.end_of_stream()
            except DecodeError as err:
                intake.report(source, "truncated message", f"connection ended inside a message: {err.reason}")
        events = session.take_events()
        if events:
            await intake.put(Batch(source, (), ip, events))


def _connected(task: asyncio.Task[Any]) -> None:
    # Setting up the transport of an accepted connection failed (it was reset at once): the
    # connection is gone, and nothing was received from it.
    if not task.cancelled():
        task.exception()


def _reuse_address(sock: socket.socket, first: bool) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)


class _Accepted(asyncio.Protocol):
    """A new connection: paused at once, then handed to the listener's `_accept` task."""

    def __init__(self, listener: TcpListener) -> None:
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        stream = cast(asyncio.Transport, transport)  # a stream server's connections are Transports
        stream.pause_reading()
        asyncio.get_running_loop().create_task(self._listener._accept(stream))

    def connection_lost(self, exc: Exception | None) -> None:
        pass  # before the stream is set up there is nothing to hand over


def tls_server_context(cert: str | None, key: str | None, client_ca: str | None) -> ssl.SSLContext:
    """The server side of ``tls://``: TLS 1.2 or newer, our certificate, and client
    certificates required and verified against ``client_ca`` when it is given. Raises InputError
    when a file is missing or does not hold what it should."""
    if not cert:
        raise InputError("tls:// inputs need --tls-cert (and --tls-key unless the key is in the cert file)")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # No TLS 1.3 session tickets. They would be the only bytes we ever send, and exporters never
    # read: an exporter that closes with them unread makes its kernel send a reset instead of a
    # FIN, and a reset makes ours discard the records still in our receive buffer.
    context.num_tickets = 0
    try:
        context.load_cert_chain(cert, key or None)
    except (OSError, ssl.SSLError) as exc:
        raise InputError(f"--tls-cert {cert} / --tls-key {key}: cannot load: {exc}") from None
    if client_ca:
        try:
            context.load_verify_locations(cafile=client_ca)
        except (OSError, ssl.SSLError) as exc:
            raise InputError(f"--tls-client-ca {client_ca}: cannot load: {exc}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _no_options(spec: InputSpec) -> None:
    if spec.options:
        raise InputError(f"{spec}: unknown option(s) {', '.join(sorted(spec.options))}; "
                         f"{spec.scheme} inputs take none (TLS files are flags)")


@dataclass(frozen=True)
class TlsSettings:
    """The ``--tls-*`` flags, for every tls:// input."""

    cert: str | None = None
    key: str | None = None
    client_ca: str | None = None

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> TlsSettings:
        return cls(getattr(options, "tls_cert", None), getattr(options, "tls_key", None),
                   getattr(options, "tls_client_ca", None))


def add_tls_arguments(parser: argparse.ArgumentParser) -> None:
    """The tls:// inputs' flags."""
    g = parser.add_argument_group("tls:// inputs")
    g.add_argument("--tls-cert", metavar="PEM", help="server certificate (chain) for tls:// inputs")
    g.add_argument("--tls-key", metavar="PEM", help="private key of --tls-cert")
    g.add_argument("--tls-client-ca", metavar="PEM",
                   help="require client certificates signed by this CA (mutual TLS)")


def open_tcp(spec: InputSpec, *, registry: Registry | None = None,
             options: argparse.Namespace | None = None) -> TcpListener:
    _no_options(spec)
    return TcpListener(spec, new_session=session_factory(registry, SessionSettings.from_namespace(options)))


def open_tls(spec: InputSpec, *, registry: Registry | None = None,
             options: argparse.Namespace | None = None) -> TcpListener:
    _no_options(spec)
    tls = TlsSettings.from_namespace(options)
    context = tls_server_context(tls.cert, tls.key, tls.client_ca)
    return TcpListener(spec, new_session=session_factory(registry, SessionSettings.from_namespace(options)),
                       tls=context)
