"""`udp://HOST:PORT`: IPFIX over UDP (RFC 7011 §10.3), one message per datagram.

Each exporter (address, port) is a transport session with a `Session` of its own, so two
exporters that use the same template ids never see each other's templates. UDP templates are
soft state: they expire `template_lifetime` seconds after they were last sent (default 1800 s,
three times Antrea's 600 s refresh), and an exporter that has been silent that long is
forgotten (its counters move into the totals), so memory follows the live exporters.

Template scope. RFC 7011 scopes templates to the transport session, which for UDP is the
exporter's (address, port): an exporter that restarts on a new source port is a new session and
must send its templates again before its data decodes. With `--udp-template-scope address` the
session is the exporter's address alone (as nfdump, pmacct and GoFlow2 do), so a restarted
exporter's data decodes with the templates it sent before. Sequence numbers stay per transport
session: when the source port changes, the count starts over (`Session.reset_sequence_numbers`)
rather than reporting the restart as a gap. The cost: exporters behind one address (NAT, two
exporting processes on one host) share one template space.

Template persistence (`--state-dir`, `state.py`): the templates of every exporter are written to
a file on a timer (`state_interval`), soon after a template is added, changed or withdrawn, and
at shutdown; at start they are read back and given to each exporter's session when it first
sends, so data that arrives before the exporter's next refresh is decoded. A crash loses what
changed since the last write, and only until the exporters' next refresh. One of several worker
processes (`adopt`) writes a file of its own and reads every worker's (`state.py`).

Reading: when the socket is readable, up to `READ_BURST` datagrams are read and decoded in one
turn of the event loop (a turn costs about what decoding a datagram does). While datagrams come
faster than one per turn, the listener stops waking up for each and reads what came every
`POLL_INTERVAL` (1 ms; the receive buffer holds far more than that), so that a turn of the loop
reads several; when a turn finds one or none, it waits for the socket again. Decoded records are
handed over per exporter when `HAND_OVER_RECORDS` of them or `HAND_OVER_INTERVAL` (10 ms) have
built up, and whenever the socket has nothing left: a batch through the queue costs about what
decoding a datagram does, and an exporter sends only a record or two per datagram.

UDP has no backpressure. An exporter's batch whose records do not fit in the delivery queue is
dropped, and its records counted as dropped; the kernel's receive buffer is what absorbs bursts
while the collector is busy elsewhere, and it decides the highest rate taken without loss (with
the kernel's default of 208 KiB, about a third of what 4 MiB gives; docs/performance.md). So we
ask for 4 MiB unless told otherwise (`rcvbuf`, `--udp-rcvbuf`). The kernel caps it at
net.core.rmem_max: when an explicit size is capped, we say so at start. `reuseport` sets
SO_REUSEPORT so several collectors can share a port (the kernel spreads exporters between them).

Options, in the spec (`udp://0.0.0.0:4739?rcvbuf=8M&reuseport=1`) or as flags for every UDP
input (`--udp-rcvbuf`, `--udp-reuse-port`); the spec wins.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ipfix_antrea import (
    DecodeError,
    Event,
    Record,
    Registry,
    SavedTemplate,
    Session,
    SessionStats,
    TemplateAdded,
    TemplateRedefined,
    TemplateWithdrawn,
)

from ..units import parse_size
from ..workers import WorkerInfo
from . import DEFAULT_TEMPLATE_LIFETIME, Batch, InputError, InputSpec, Intake, SessionSettings, session_factory
from .options import bind_sockets, bool_option, format_address, size_option, socket_address
from .state import ExporterKey, TemplateStore, check_state_dir

__all__ = ["UdpListener", "UdpSettings", "add_udp_arguments", "open_udp", "TEMPLATE_SCOPES",
           "STATE_INTERVAL"]

DEFAULT_RCVBUF = 4 << 20  # asked for when no size is given; the kernel may give less, quietly
MAX_DATAGRAM = 65535  # the largest IPFIX message (RFC 7011 3.1)
READ_BURST = 64  # datagrams read in one turn of the event loop at most, so other inputs get theirs
POLL_INTERVAL = 0.001  # while datagrams keep coming, read them this often instead of at each one
HAND_OVER_RECORDS = 128  # decoded records are handed over once this many wait,
HAND_OVER_INTERVAL = 0.01  # or the first has waited this long (seconds), or no datagram is left
SWEEP_INTERVAL = 30.0  # how often idle exporters and stale templates are looked for
TEMPLATE_SCOPES = ("session", "address")  # what a UDP session is: (address, port), or address
STATE_INTERVAL = 60.0  # seconds between writes of the state file (with --state-dir)
STATE_SETTLE = 1.0  # after a template change, wait this long for more before writing
_TEMPLATE_CHANGES = (TemplateAdded, TemplateRedefined, TemplateWithdrawn)
_log = logging.getLogger("ipfix_antrea.inputs.udp")


class UdpListener:
    """Receives datagrams on one socket and decodes them, one `Session` per exporter.

    ``template_scope``: ``"session"`` (RFC 7011: an exporter is its address and port) or
    ``"address"``. ``state_dir``: keep the exporters' templates in a file there, written every
    ``state_interval`` seconds, soon after templates change, and at `stop`; read at `start`.
    """

    def __init__(self, spec: InputSpec, *, new_session: Callable[[], Session] | None = None,
                 template_lifetime: float = DEFAULT_TEMPLATE_LIFETIME, rcvbuf: int | None = None,
                 reuse_port: bool = False, template_scope: str = "session", state_dir: str | None = None,
                 state_interval: float = STATE_INTERVAL) -> None:
        if template_scope not in TEMPLATE_SCOPES:
            raise InputError(f"{spec}: template scope {template_scope!r} is not one of {', '.join(TEMPLATE_SCOPES)}")
        self.name = str(spec)
        self.address = self.name
        self._spec = spec
        self._host, self._port = spec.host_port()  # a bad port is the command line's error
        self._new_session = new_session or session_factory(
            None, SessionSettings(template_lifetime=template_lifetime), expiring=True)
        self.template_lifetime = template_lifetime
        self.rcvbuf = rcvbuf
        self.reuse_port = reuse_port
        self.template_scope = template_scope
        self._by_port = template_scope == "session"
        self._exporters: dict[ExporterKey, _Exporter] = {}
        self._intake: Intake | None = None
        self._reading: socket.socket | None = None  # the socket the event loop reads, after `start`
        self._decoded: list[_Exporter] = []  # exporters with records or events not handed over yet
        self._waiting = 0  # records they hold
        self._waiting_since = 0.0  # monotonic time of the first of them
        self._polling: asyncio.Handle | None = None  # the next `_poll`, while datagrams keep coming
        self._tasks: list[asyncio.Task[None]] = []
        self.state_interval = state_interval
        self._state_dir = state_dir
        self._store = TemplateStore(state_dir, self._host, self._port, template_scope) \
            if state_dir is not None else None
        self._socket: socket.socket | None = None  # given by `adopt`; else `start` binds one
        # Templates read from the state file, per exporter that has not sent since, with the
        # monotonic time each was last sent.
        self._restored: dict[ExporterKey, list[tuple[SavedTemplate, float]]] = {}
        self._templates_changed = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle

    async def start(self, intake: Intake) -> None:
        self._intake = intake
        loop = asyncio.get_running_loop()
        if self._store is not None:
            self._store.lock()
            self._load_state()
        try:
            sock = self._socket if self._socket is not None else self.bind()[0]
        except InputError:
            if self._store is not None:
                self._store.unlock()
            raise
        sock.setblocking(False)
        self._reading = sock
        self._buffer = bytearray(MAX_DATAGRAM)
        loop.add_reader(sock, self._readable)
        self._tasks.append(asyncio.create_task(self._sweep_forever()))
        if self._store is not None:
            self._tasks.append(asyncio.create_task(self._save_forever()))

    def bind(self, count: int = 1) -> list[socket.socket]:
        socks = bind_sockets(self._spec, self._host, self._port, socket.SOCK_DGRAM, count,
                             reuse_port=self.reuse_port, prepare=self._set_rcvbuf)
        self.address = socket_address("udp", socks[0])
        return socks

    def _set_rcvbuf(self, sock: socket.socket, first: bool) -> None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf or DEFAULT_RCVBUF)
        if self.rcvbuf and first:
            # Linux reports twice what it grants (bookkeeping overhead, socket(7)).
            granted = sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2
            if granted < self.rcvbuf:
                _log.warning("%s: receive buffer is %d bytes, not the %d asked for "
                             "(raise net.core.rmem_max)", self.name, granted, self.rcvbuf)

    def adopt(self, sock: socket.socket, worker: WorkerInfo) -> None:
        """Serves ``sock`` as ``worker``: with --state-dir, keeps a state file of its own and
        reads every worker's (`TemplateStore`)."""
        self._socket = sock
        self.address = socket_address("udp", sock)
        if self._state_dir is not None:
            self._store = TemplateStore(self._state_dir, self._host, self._port, self.template_scope, worker)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._reading is not None:
            if self._polling is not None:
                self._polling.cancel()
            asyncio.get_running_loop().remove_reader(self._reading)
            self._reading.close()
            self._hand_over()
        if self._store is not None:
            await self._save()  # after the last datagram: what the next start reads
            self._store.unlock()
        for key in list(self._exporters):
            self._forget(key)

    def stats(self) -> list[SessionStats]:
        return [e.session.stats for e in self._exporters.values()]

    def sessions(self) -> dict[str, Session]:
        return {e.source: e.session for e in self._exporters.values()}

    # ---------------------------------------------------------------- receiving

    def _readable(self) -> None:
        """The socket has datagrams: read them; when more than one came since the loop last
        looked, poll (`_poll`) instead of waking for each."""
        if self._read_burst() > 1:
            loop = asyncio.get_running_loop()
            assert self._reading is not None
            loop.remove_reader(self._reading)
            self._polling = loop.call_later(POLL_INTERVAL, self._poll)
        else:
            self._hand_over()

    def _poll(self) -> None:
        """Reads what came since the last turn; when at most one datagram did, waits for the
        socket again (polling costs a turn of the loop every `POLL_INTERVAL`, datagrams or not)."""
        loop = asyncio.get_running_loop()
        read = self._read_burst()
        if read == READ_BURST:  # more may be waiting: read on at the next turn
            self._polling = loop.call_soon(self._poll)
        elif read > 1:
            self._polling = loop.call_later(POLL_INTERVAL, self._poll)
        else:  # slow or quiet: nothing is left waiting
            self._hand_over()
            self._polling = None
            assert self._reading is not None
            loop.add_reader(self._reading, self._readable)

    def _read_burst(self) -> int:
        """Reads up to `READ_BURST` datagrams and decodes them; hands over what the exporters
        decoded once `HAND_OVER_RECORDS` records or `HAND_OVER_INTERVAL` seconds are waiting.
        Returns how many datagrams were read."""
        assert self._reading is not None
        receive = self._reading.recvfrom_into
        buffer = self._buffer
        view = memoryview(buffer)
        read = 0
        while read < READ_BURST:
            try:
                size, addr = receive(buffer)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.error_received(exc)
                break
            read += 1
            self.datagram_received(bytes(view[:size]), addr)
        if self._waiting >= HAND_OVER_RECORDS or (
                self._decoded and time.monotonic() - self._waiting_since >= HAND_OVER_INTERVAL):
            self._hand_over()
        return read

    def _hand_over(self) -> None:
        """Offers what each exporter decoded and has not handed over, one batch per exporter:
        all of it is queued, or all of it dropped (and counted) when the queue has no room."""
        intake = self._intake
        assert intake is not None  # given by start(), before the socket is read
        for exporter in self._decoded:
            records, events = exporter.records, exporter.events
            exporter.records, exporter.events = [], []
            if not intake.offer(Batch(exporter.source, records, exporter.host, events)):
                intake.report(exporter.source, "dropped", "delivery queue full; dropping datagrams "
                              "(sinks are slower than this exporter)")
        self._decoded.clear()
        self._waiting = 0

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """Decodes one datagram; its records and events wait for `_hand_over`."""
        intake = self._intake
        assert intake is not None  # given by start(), before the socket is read
        key = (addr[0], addr[1] if self._by_port else None)
        exporter = self._exporters.get(key)
        if exporter is None:
            if not intake.allows(key[0]):
                # Refusal is the address's: one log line whatever port the exporter sends from.
                intake.report(f"udp {format_address(key[0])}", "refused",
                              "exporter not in the --allow list; its datagrams are dropped")
                return
            exporter = self._start_session(key, addr[1])
        elif exporter.port != addr[1]:
            # Address scope: the exporter restarted (or another process on its host sends). Its
            # templates stay; its sequence numbers start over, as a new transport session's do.
            _log.debug("%s: now sending from port %d (was %d); sequence numbers start over",
                       exporter.source, addr[1], exporter.port)
            exporter.port = addr[1]
            exporter.session.reset_sequence_numbers()
        session, source = exporter.session, exporter.source
        exporter.last_seen = now = time.monotonic()
        try:
            records = session.decode_datagram(data, now)
        except DecodeError as err:
            records = err.records
            intake.report(source, "malformed message", f"datagram dropped: {err.reason}")
        events = session.take_events()
        if records or events:
            if not exporter.records and not exporter.events:
                if not self._decoded:
                    self._waiting_since = now
                self._decoded.append(exporter)
            exporter.records += records
            self._waiting += len(records)
            if events:
                exporter.events += events
                if self._store is not None and any(isinstance(e, _TEMPLATE_CHANGES) for e in events):
                    self._templates_changed.set()

    def error_received(self, exc: Exception) -> None:
        # ICMP errors and the like on an unconnected socket: nothing was lost on our side.
        _log.debug("%s: socket error: %s", self.name, exc)

    def _start_session(self, key: ExporterKey, port: int) -> _Exporter:
        intake = self._intake
        assert intake is not None
        exporter = self._exporters[key] = _Exporter(self._new_session(), _source(key), key[0], port)
        intake.session_started(exporter.source)
        restored = self._restored.pop(key, None)
        if restored:
            store = self._store
            assert store is not None  # templates are restored only from a state file
            now = time.monotonic()
            session = exporter.session
            for saved, sent in restored:  # one at a time: a bad record costs only itself
                try:
                    session.import_templates([_aged(saved, sent, now)], now)
                except DecodeError as err:
                    intake.report(self.name, "bad saved template", f"{store.read_from}: "
                                        f"{exporter.source}: a saved template is refused: {err.reason}")
            if session.templates:
                _log.info("%s: %d templates restored from %s", exporter.source, len(session.templates),
                          store.read_from)
        return exporter

    # ---------------------------------------------------------------- forgetting

    async def _sweep_forever(self) -> None:
        interval = min(SWEEP_INTERVAL, self.template_lifetime)
        while True:
            await asyncio.sleep(interval)
            self.sweep(time.monotonic())

    def sweep(self, now: float) -> None:
        """Expires stale templates and forgets exporters silent for a template lifetime."""
        intake = self._intake
        assert intake is not None
        self._hand_over()  # what they decoded goes before what ending their sessions reports
        for key, exporter in list(self._exporters.items()):
            exporter.session.expire_templates(now)
            if now - exporter.last_seen > self.template_lifetime:
                self._forget(key)
            else:
                events = exporter.session.take_events()
                if events:
                    intake.offer(Batch(exporter.source, (), key[0], events))
        for key, restored in list(self._restored.items()):  # saved templates nobody came for
            restored[:] = [(t, sent) for t, sent in restored if now - sent <= self.template_lifetime]
            if not restored:
                del self._restored[key]

    def _forget(self, key: ExporterKey) -> None:
        intake = self._intake
        assert intake is not None
        exporter = self._exporters.pop(key)
        session = exporter.session
        session.close()  # data sets still waiting for a template are dropped, and counted
        events = session.take_events()
        if events:
            intake.offer(Batch(exporter.source, (), key[0], events))
        intake.session_ended(exporter.source, session.stats)

    # ---------------------------------------------------------------- the state file

    def _load_state(self) -> None:
        store, intake = self._store, self._intake
        assert store is not None and intake is not None
        saved, problems = store.load(time.time())
        for path, exc in problems:
            intake.report(self.name, "bad state file", f"{path}: {exc}; ignored, "
                                "templates are learned from the exporters again")
        now = time.monotonic()
        count = 0
        for key, templates in saved.items():
            ages = [(t, t.age or 0.0) for t in templates]  # a state file gives every template its age
            fresh = [(t, now - age) for t, age in ages if age <= self.template_lifetime]
            if fresh:
                self._restored[key] = fresh
                count += len(fresh)
        _log.info("%s: %d templates of %d exporters read from %s", self.name, count,
                  len(self._restored), store.read_from)

    def snapshot(self, now: float) -> dict[ExporterKey, list[SavedTemplate]]:
        """Every exporter's templates as of ``now`` (monotonic), with those read from the state
        file for exporters that have not sent since (still valid: they are not lost by a second
        restart)."""
        state = {key: [_aged(t, sent, now) for t, sent in restored if now - sent <= self.template_lifetime]
                 for key, restored in self._restored.items()}
        for key, exporter in self._exporters.items():
            state[key] = exporter.session.export_templates(now)
        return state

    async def _save(self) -> None:
        store = self._store
        assert store is not None  # called only with --state-dir
        state = self.snapshot(time.monotonic())  # taken on the loop: sessions change nowhere else
        try:
            await asyncio.to_thread(store.save, state, time.time())
        except OSError as exc:
            assert self._intake is not None
            self._intake.report(self.name, "state file not written", f"{store.path}: cannot "
                                f"write: {exc.strerror or exc}; templates are not saved")

    async def _save_forever(self) -> None:
        changed = self._templates_changed
        while True:
            try:
                await asyncio.wait_for(changed.wait(), self.state_interval)
                await asyncio.sleep(STATE_SETTLE)  # an exporter sends its templates together
            except TimeoutError:
                pass
            changed.clear()
            await self._save()


class _Exporter:
    """What the listener keeps per exporter: its session, its name in logs and batches (made
    once, not per datagram), the source port it last sent from, when it last sent, and what it
    decoded in this turn of the event loop."""

    __slots__ = ("session", "source", "host", "port", "last_seen", "records", "events")

    def __init__(self, session: Session, source: str, host: str, port: int) -> None:
        self.session = session
        self.source = source
        self.host = host
        self.port = port
        self.last_seen = 0.0
        self.records: list[Record] = []  # decoded in this turn of the event loop, not handed over yet
        self.events: list[Event] = []


def _source(key: ExporterKey) -> str:
    address, port = key
    return f"udp {format_address(address)}" if port is None else f"udp {format_address(address)}:{port}"


def _aged(saved: SavedTemplate, sent: float, now: float) -> SavedTemplate:
    return SavedTemplate(saved.observation_domain_id, saved.record, saved.options, max(now - sent, 0.0))


@dataclass(frozen=True)
class UdpSettings:
    """The ``--udp-*`` flags and ``--state-dir``, for every UDP input; a spec's own options win."""

    rcvbuf: int | None = None  # None: ask for DEFAULT_RCVBUF
    reuse_port: bool = False
    template_scope: str = "session"  # one of TEMPLATE_SCOPES
    state_dir: str | None = None  # where templates persist; None: nowhere

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> UdpSettings:
        d = cls()
        return cls(getattr(options, "udp_rcvbuf", d.rcvbuf), bool(getattr(options, "udp_reuse_port", d.reuse_port)),
                   getattr(options, "udp_template_scope", d.template_scope), getattr(options, "state_dir", d.state_dir))


def add_udp_arguments(parser: argparse.ArgumentParser) -> None:
    """The udp:// inputs' flags."""
    g = parser.add_argument_group("udp:// inputs (a spec's ?rcvbuf= and ?reuseport= win)")
    g.add_argument("--udp-rcvbuf", type=parse_size, metavar="SIZE",
                   help="UDP socket receive buffer, e.g. 8M (default: 4M, or as much as "
                   "net.core.rmem_max allows); it absorbs bursts, so it sets the highest loss-free rate")
    g.add_argument("--udp-reuse-port", action="store_true",
                   help="set SO_REUSEPORT so several collectors can share a UDP port")
    g.add_argument("--udp-template-scope", choices=TEMPLATE_SCOPES, default="session",
                   help="what owns UDP templates: 'session', the exporter's address and port (RFC 7011, "
                   "the default), or 'address', so that an exporter restarting on a new source port "
                   "keeps its templates (as nfdump, pmacct and GoFlow2 do); sequence numbers stay per port")
    g.add_argument("--state-dir", metavar="DIR",
                   help="keep UDP exporters' templates in DIR (created if missing), written every "
                   f"{STATE_INTERVAL:.0f} s, soon after a template changes and at exit, and read at start, "
                   "so that a restarted collector decodes data sent before the exporters' next template refresh")


def open_udp(spec: InputSpec, *, registry: Registry | None = None,
             options: argparse.Namespace | None = None) -> UdpListener:
    flags = UdpSettings.from_namespace(options)
    sessions = SessionSettings.from_namespace(options)
    rcvbuf = size_option(spec, "rcvbuf", flags.rcvbuf)
    reuse_port = bool_option(spec, "reuseport", flags.reuse_port)
    unknown = set(spec.options) - {"rcvbuf", "reuseport"}
    if unknown:
        raise InputError(f"{spec}: unknown option(s) {', '.join(sorted(unknown))}; udp takes rcvbuf, reuseport")
    if flags.state_dir is not None:
        check_state_dir(flags.state_dir)
    return UdpListener(spec, new_session=session_factory(registry, sessions, expiring=True),
                       template_lifetime=sessions.template_lifetime, rcvbuf=rcvbuf, reuse_port=reuse_port,
                       template_scope=flags.template_scope, state_dir=flags.state_dir)
