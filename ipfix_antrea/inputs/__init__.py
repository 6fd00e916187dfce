"""Inputs: where IPFIX bytes come from. One parser for input specs, one registry of schemes.

An input spec is URL-ish: `SCHEME:PATH` for things read from the file system (`file:capture.ipfix`,
`file:-` for standard input, later `pcap:PATH`) and `SCHEME://HOST:PORT[?k=v&...]` for network
listeners (later `udp://0.0.0.0:4739`, `tcp://`, `tls://...?cert=...`). `parse_input_spec` is the
only place that splits these strings; a factory receives the parsed `InputSpec`.

An input drives one `Session` per transport session (a file is one) and yields `Batch`es: the
records decoded from one read, the exporter they came from (when known), the session's events
since the previous batch, and an operator-readable error when the input had to stop (a file) or
drop a transport session (a network input). Batches are the unit a collector queues and fans
out; nothing in an input knows about documents or sinks.

Two kinds of input. A *finite* input (`Input`: file, pcap) is an iterator the collector runs in a
thread until it ends. A *listener* (`Listener`: udp, tcp, tls) runs on the collector's asyncio
event loop until it is stopped; it hands its batches to an `Intake` that the collector provides:
`put` waits for room in the delivery queue (stream transports: waiting stops reading, which is
TCP backpressure), `offer` does not (UDP: a refused batch is dropped and counted), and `report`
counts a problem with one exporter and logs it once per kind.

With `--workers N` a listener's sockets are bound by the supervisor (`Listener.bind`), and each
worker process serves its own (`Listener.adopt`): UDP binds one socket per worker with
SO_REUSEPORT, and the kernel keeps each exporter (address and port) on one of them, so its
templates stay where its data goes; TCP and TLS share one listening socket from which the
workers take turns accepting, and a connection stays with the worker that accepted it. Files and
captures are read by one process only.

Inputs are plugins, as sinks are: a scheme registers its factory and, when it has settings of
its own, an ``add_arguments(parser)`` hook adding its flags (prefixed with its scheme:
``--udp-rcvbuf``, ``--tls-cert``; ``--state-dir`` of udp and ``--progress`` of file and pcap are
not, the first because deployments already set IPFIX_COLLECT_STATE_DIR). Its factory reads them
from the parsed command line into a typed settings object (``UdpSettings.from_namespace``), or
takes the defaults for a library caller. What every input's sessions share -- the template
lifetime for UDP and captures, the cap on template size -- is this package's own
`SessionSettings`. The command line knows none of them by name: `add_arguments` adds them all.
"""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..units import number

if TYPE_CHECKING:
    import socket

    from ipfix_antrea import Event, Record, Registry, Session, SessionStats

    from ..workers import WorkerInfo

__all__ = [
    "Batch",
    "Input",
    "Listener",
    "Intake",
    "InputError",
    "InputSpec",
    "parse_input_spec",
    "register_input",
    "input_schemes",
    "open_input",
    "session_factory",
    "add_arguments",
    "SessionSettings",
    "DEFAULT_TEMPLATE_LIFETIME",
    "DEFAULT_MAX_TEMPLATE_FIELDS",
    "FileInput",
]

DEFAULT_TEMPLATE_LIFETIME = 1800.0  # three times Antrea's UDP template refresh
DEFAULT_MAX_TEMPLATE_FIELDS = 1024  # Antrea's largest template has about 100


class InputError(Exception):
    """An input spec is invalid, or an input cannot be opened or read."""


@dataclass(frozen=True)
class Batch:
    """What an input yields: records decoded together, with where they came from."""

    source: str  # the input (and transport session) they came from, for messages
    records: Sequence[Record]  # in decode order
    host: str | None = None  # the exporter's address, when the transport tells it
    events: Sequence[Event] = ()  # the session's events since its previous batch
    error: str | None = None  # set on the last batch of a stream that broke: why and where


@runtime_checkable
class Input(Protocol):
    """A source of batches. Iterating runs it; `stats` covers every session it has driven."""

    name: str

    def __iter__(self) -> Iterator[Batch]: ...

    def stats(self) -> list[SessionStats]: ...

    def close(self) -> None: ...


class Intake(Protocol):
    """What the collector gives a listener: where batches go, and who may send."""

    def allows(self, address: str) -> bool:
        """Whether the exporter at ``address`` may send (the ``--allow`` list)."""
        ...

    def offer(self, batch: Batch) -> bool:
        """Queue ``batch`` if there is room now; False when it was refused (and dropped)."""
        ...

    async def put(self, batch: Batch) -> None:
        """Queue ``batch``, waiting for room."""
        ...

    def report(self, exporter: str, kind: str, message: str) -> None:
        """Count a problem of ``kind`` with ``exporter``; the first of each kind is logged."""
        ...

    def session_started(self, key: str) -> None:
        """A transport session (exporter) started; for the exporter count and the log."""
        ...

    def session_ended(self, key: str, stats: SessionStats) -> None:
        """A transport session ended; its counters move into the totals."""
        ...


@runtime_checkable
class Listener(Protocol):
    """A network input: binds in `start` (or is given a socket bound elsewhere, `adopt`), feeds
    an `Intake` until `stop`."""

    name: str
    address: str  # what it is bound to, as a spec (``udp://127.0.0.1:4739``), after `start`

    def bind(self, count: int = 1) -> list[socket.socket]:
        """A socket for each of ``count`` worker processes, bound to the input's address (and
        listening, for streams): one each, bound with SO_REUSEPORT, when the kernel must keep
        each exporter on one socket (datagrams), or the same one for all, when the workers
        can take turns accepting (streams). With port 0 they all get one free port. Sets
        `address`. Raises InputError when it cannot listen. `start` binds one itself; a
        supervisor binds for every worker and hands each its socket (`adopt`)."""
        ...

    def adopt(self, sock: socket.socket, worker: WorkerInfo) -> None:
        """Makes `start` use ``sock``, one of the sockets `bind` made (in the supervisor), instead
        of binding: the listener serves its share of the exporters as ``worker``."""
        ...

    async def start(self, intake: Intake) -> None: ...

    async def stop(self) -> None:
        """Stops receiving, ends every transport session and hands over what was decoded."""
        ...

    def stats(self) -> list[SessionStats]:
        """The counters of the sessions still open."""
        ...

    def sessions(self) -> dict[str, Session]:
        """The sessions open now, by the key `Intake.session_started` was given (for the
        metrics and the templates view; called on the event loop)."""
        ...


@dataclass(frozen=True)
class InputSpec:
    """A parsed input spec: ``file:PATH`` or ``udp://HOST:PORT?opt=value``."""

    scheme: str
    target: str  # PATH, or HOST:PORT for network schemes
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    def __str__(self) -> str:
        return self.text or f"{self.scheme}:{self.target}"

    def host_port(self, default_port: int = 4739) -> tuple[str, int]:
        """Split ``HOST:PORT`` / ``[V6]:PORT`` / ``HOST`` (IANA port 4739, RFC 7011 §10.3)."""
        target = self.target
        if target.startswith("["):
            host, sep, rest = target[1:].partition("]")
            if not sep:
                raise InputError(f"{self}: unterminated '[' in address")
            port_text = rest[1:] if rest.startswith(":") else rest
        elif target.count(":") == 1:
            host, _, port_text = target.partition(":")
        else:
            host, port_text = target, ""
        if not port_text:
            return host, default_port
        try:
            port = int(port_text)
        except ValueError:
            raise InputError(f"{self}: port {port_text!r} is not a number") from None
        if not 0 <= port <= 65535:
            raise InputError(f"{self}: port {port} out of range")
        return host, port


InputFactory = Callable[..., "Input | Listener"]  # factory(spec, *, registry, options)
AddArguments = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class InputScheme:
    scheme: str
    factory: InputFactory
    network: bool  # True: SCHEME://HOST:PORT; False: SCHEME:PATH
    usage: str
    help: str
    add_arguments: AddArguments | None = None  # adds the input's own flags to the command line


_SCHEMES: dict[str, InputScheme] = {}


def register_input(scheme: str, factory: InputFactory, *, network: bool, usage: str, help: str,
                   add_arguments: AddArguments | None = None) -> None:
    """Make specs with ``scheme`` open ``factory(spec, registry=..., options=...)``; ``options``
    is the parsed command line (None for library callers). Re-registering replaces; schemes
    that share flags (tcp and tls) give the hook once."""
    _SCHEMES[scheme.lower()] = InputScheme(scheme.lower(), factory, network, usage, help, add_arguments)


def input_schemes() -> list[InputScheme]:
    """The registered schemes, in registration order (for --help)."""
    return list(_SCHEMES.values())


def parse_input_spec(text: str) -> InputSpec:
    """Split an input spec. Raises InputError naming the known forms when it does not fit."""
    scheme, sep, rest = text.partition(":")
    scheme = scheme.strip().lower()
    known = ", ".join(s.usage for s in _SCHEMES.values())
    if not sep or scheme not in _SCHEMES:
        raise InputError(f"unknown input {text!r}; known inputs: {known}")
    entry = _SCHEMES[scheme]
    options: dict[str, str] = {}
    if entry.network:
        if not rest.startswith("//"):
            raise InputError(f"input {text!r}: expected {entry.usage}")
        rest, _, query = rest[2:].partition("?")
        for item in filter(None, query.split("&")):
            key, _, value = item.partition("=")
            options[key] = value
    if not rest:
        raise InputError(f"input {text!r}: expected {entry.usage}")
    return InputSpec(scheme, rest, options, text)


@dataclass(frozen=True)
class SessionSettings:
    """What the sessions of every input share; the defaults are those of the command line."""

    #: UDP (and captured UDP) templates expire this long after they were last sent.
    template_lifetime: float = DEFAULT_TEMPLATE_LIFETIME
    #: Templates with more fields are refused as malformed (0: no limit).
    max_template_fields: int = DEFAULT_MAX_TEMPLATE_FIELDS

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> SessionSettings:
        """The settings from a parsed command line, or the defaults (None, or flags absent)."""
        return cls(getattr(options, "template_lifetime", DEFAULT_TEMPLATE_LIFETIME),
                   getattr(options, "max_template_fields", DEFAULT_MAX_TEMPLATE_FIELDS))


def _add_session_arguments(parser: argparse.ArgumentParser) -> None:
    d = SessionSettings()
    g = parser.add_argument_group("sessions (every input)")
    g.add_argument("--template-lifetime", type=number(float, above=0), default=d.template_lifetime,
                   metavar="SECONDS", help="UDP templates expire this long after they were last "
                   f"sent (default {d.template_lifetime:.0f}: three times Antrea's refresh)")
    g.add_argument("--max-template-fields", type=number(int, minimum=0), default=d.max_template_fields,
                   metavar="N", help="refuse templates with more fields than this from network "
                   f"exporters and captures (default {d.max_template_fields}; 0: no limit); compiling a "
                   "new template costs about 50 µs per field")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Every input's flags: the sessions' own, then each scheme's."""
    _add_session_arguments(parser)
    for scheme in _SCHEMES.values():
        if scheme.add_arguments is not None:
            scheme.add_arguments(parser)


def session_factory(registry: Registry | None, settings: SessionSettings, *,
                    expiring: bool = False) -> Callable[[], Session]:
    """How an input makes the `Session` of each new exporter: the registry, the template
    lifetime when the transport's templates expire (UDP), and the template size cap. Every
    session of the input shares one registry (the default one when ``registry`` is None): a
    registry holds over a thousand elements, too much to copy for every exporter."""
    from ipfix_antrea import Session, default_registry

    return functools.partial(Session, registry=registry if registry is not None else default_registry(),
                             template_lifetime=settings.template_lifetime if expiring else None,
                             max_template_fields=settings.max_template_fields or None)


def open_input(spec: str | InputSpec, *, registry: Registry | None = None,
               options: argparse.Namespace | None = None) -> Input | Listener:
    """Parse (if needed) and create one input; nothing is opened until it is iterated (an
    `Input`) or started (a `Listener`). Raises InputError for bad options."""
    if isinstance(spec, str):
        spec = parse_input_spec(spec)
    return _SCHEMES[spec.scheme].factory(spec, registry=registry, options=options)


from .file import FileInput, open_file  # noqa: E402 - registers after the registry exists


def _open_pcap(spec: InputSpec, *, registry: Registry | None = None,
               options: argparse.Namespace | None = None) -> Input:
    # dpkt, which reads captures, is a collector extra: only runs with a pcap: input need it.
    try:
        from .pcap import open_pcap
    except ImportError as exc:
        raise InputError(f"{spec}: reading captures needs dpkt ({exc.name} is not installed): "
                         "pip install 'ipfix-antrea[collector]'") from None
    return open_pcap(spec, registry=registry, options=options)


from .progress import add_progress_arguments  # noqa: E402

register_input("file", open_file, network=False, usage="file:PATH", add_arguments=add_progress_arguments,
               help="a file of concatenated IPFIX messages (RFC 5655 files too); file:- reads stdin")
register_input("pcap", _open_pcap, network=False, usage="pcap:PATH",
               help="IPFIX over UDP and TCP replayed from a pcap or pcapng capture, one session per "
               "flow; pcap:PATH?port=4739 takes only that port")

from .tcp import add_tls_arguments, open_tcp, open_tls  # noqa: E402
from .udp import add_udp_arguments, open_udp  # noqa: E402

register_input("udp", open_udp, network=True, usage="udp://HOST:PORT", add_arguments=add_udp_arguments,
               help="listen for IPFIX over UDP (one session per exporter; options ?rcvbuf=8M&reuseport=1)")
register_input("tcp", open_tcp, network=True, usage="tcp://HOST:PORT",
               help="accept IPFIX over TCP (one session per connection)")
register_input("tls", open_tls, network=True, usage="tls://HOST:PORT", add_arguments=add_tls_arguments,
               help="accept IPFIX over TLS (TCP); needs --tls-cert/--tls-key, --tls-client-ca for mTLS")
