"""`pcap:PATH[?port=N,...]`: replay the IPFIX of a packet capture, each flow its own session.

A capture (classic pcap in either byte order, micro- or nanosecond; or pcapng) is read packet by
packet with dpkt's readers, so memory does not grow with the file. dpkt hands over link-layer
frames; the link, IP, UDP and TCP headers are parsed here with `struct`, because replaying needs
exact lengths that dpkt's lenient decoders hide: a packet cut by the snapshot length must not be
decoded as a whole datagram, and TCP reassembly needs the sequence space as it was sent.

Which traffic is IPFIX. With `?port=N[,M...]`, every UDP datagram and TCP connection *to* one of
those ports (what tshark calls "decode as"). Without, a UDP flow is taken when a datagram starts
with a plausible IPFIX message (version 10, a length that fits, a first set header that fits),
and a TCP connection when its first payload octets do; the rest is counted, not decoded.

One `Session` per flow, as RFC 7011 scopes templates to the transport session:
- UDP, keyed by (exporter address, port, collector address, port): each datagram goes through
  `decode_datagram` with the packet's capture time as `now`, so template expiry runs on the
  capture's clock. A malformed datagram is reported on its batch and the flow goes on.
- TCP, keyed the same way, one direction of one connection: segments are put back in sequence
  order (retransmissions and overlaps trimmed, out-of-order segments held up to a bound) and the
  in-order bytes fed to `Session.feed`. A SYN sets the initial sequence number; a capture that
  starts mid-connection starts the stream at the first segment that begins with a plausible
  message header. A framing error closes that stream (reported on a batch naming the flow), as
  does a gap the capture never fills; other flows go on. FIN or RST ends the session, and a
  message cut short by it is reported.
IPv4 and IPv6 fragments of UDP and TCP are reassembled (exporters do send UDP messages larger
than the path MTU), bounded in number and in capture time.

A capture file that is cut short or corrupt stops the replay there: the flows are finished and
a last batch carries the error; every record decoded before is still yielded.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, BinaryIO

import dpkt

from ipfix_antrea import DecodeError, Record, Registry, Session, SessionStats, default_registry

from . import DEFAULT_TEMPLATE_LIFETIME, Batch, InputError, InputSpec, SessionSettings
from .file import PCAP_MAGICS, PCAPNG_MAGIC, open_binary
from .progress import Progress, ProgressSettings, progress_line

if TYPE_CHECKING:
    import argparse

__all__ = ["COUNTERS", "FRAGMENT_TIMEOUT", "MAX_FRAGMENTED_DATAGRAMS", "MAX_STREAM_HOLD",
           "PcapInput", "open_pcap"]

MAX_STREAM_HOLD = 1 << 20  # out-of-order octets held per TCP stream before its gap counts as lost
FRAGMENT_TIMEOUT = 30.0  # seconds of capture time a datagram may take to reassemble (as Linux)
MAX_FRAGMENTED_DATAGRAMS = 64  # datagrams being reassembled at once; the oldest is dropped beyond
_MAX_BLOCK = 1 << 26  # a capture record or block longer than this is corruption, not data

# What `PcapInput.counters` counts, in packets unless said otherwise.
COUNTERS = (
    "packets",                    # read from the capture
    "skipped_packets",            # not IPv4/IPv6 carrying UDP or TCP, or headers that do not parse
    "non_ipfix_packets",          # UDP/TCP with a payload, of a flow not taken as IPFIX
    "truncated_packets",          # cut by the capture's snapshot length: not decoded
    "fragments",                  # IP fragments of UDP or TCP
    "reassembled_datagrams",      # IP datagrams rebuilt from fragments
    "fragments_dropped",          # fragments of datagrams never completed (timeout, bound, end)
    "tcp_out_of_order_segments",  # held until the gap before them was filled
    "tcp_duplicate_segments",     # retransmitted octets already passed on: dropped
    "tcp_dropped_segments",       # after their stream ended or was closed, or held behind a gap
                                  # the capture never filled
    "tcp_streams_open_at_end",    # IPFIX connections without FIN/RST when the capture ended
)


# Link types (tcpdump.org/linktypes.html). 12 and 14 are DLT_RAW as some systems wrote it into
# files before LINKTYPE_RAW (101) existed; 228 and 229 are raw IPv4 and raw IPv6.
_LINK_HEADERS = {0: "BSD loopback", 1: "Ethernet", 12: "raw IP", 14: "raw IP", 101: "raw IP",
                 108: "OpenBSD loopback", 113: "Linux cooked (SLL)", 228: "raw IPv4",
                 229: "raw IPv6", 276: "Linux cooked v2 (SLL2)"}
_IP_ETHERTYPES = (b"\x08\x00", b"\x86\xdd")
_VLAN_ETHERTYPES = (b"\x81\x00", b"\x88\xa8", b"\x91\x00")  # 802.1Q, 802.1ad, old QinQ

_UDP, _TCP = 17, 6
_IPV6_EXTENSIONS = (0, 43, 60)  # hop-by-hop, routing, destination options: skipped over
_IPV6_FRAGMENT = 44
_FIN, _SYN, _RST = 0x01, 0x02, 0x04
_SEQ = 1 << 32
_HALF = 1 << 31
# IP version, source, destination, identification (IPv4: 16 bits; IPv6: the 4 octets), protocol
_FragmentKey = tuple[int, bytes, bytes, int | bytes, int]

_U16 = struct.Struct(">H")
_UDP_HEADER = struct.Struct(">HHH")
_TCP_HEADER = struct.Struct(">HHIIBB")
_IPFIX_START = struct.Struct(">HH")


class PcapInput:
    """Iterating replays the capture once, yielding one batch per packet that decoded something.

    ``ports``: decode UDP and TCP to these ports as IPFIX, and nothing else; ``None`` decides by
    the payload. ``template_lifetime``: for UDP sessions, in seconds of capture time.
    ``max_template_fields``: the sessions refuse larger templates (a capture is untrusted input,
    like the network). ``counters`` says what was skipped and why (see ``COUNTERS``).
    ``progress``: show a progress line on stderr while reading (`progress.py`).
    """

    def __init__(
        self,
        path: str,
        *,
        registry: Registry | None = None,
        ports: Iterable[int] | None = None,
        template_lifetime: float | None = DEFAULT_TEMPLATE_LIFETIME,
        max_template_fields: int | None = None,
        stream: BinaryIO | None = None,
        progress: bool = False,
    ) -> None:
        self.path = path
        self.name = f"pcap:{path}"
        self.ports = frozenset(ports) if ports is not None else None
        self.template_lifetime = template_lifetime
        self.max_template_fields = max_template_fields
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        # One registry for every flow's session (a registry is too big to copy per flow).
        self._registry = registry if registry is not None else default_registry()
        self._stream = stream  # for tests/embedding: read this instead of opening path
        self._progress = progress
        self._stats: list[SessionStats] = []

    def stats(self) -> list[SessionStats]:
        return list(self._stats)

    def close(self) -> None:
        pass  # the file is closed when iteration ends

    def _new_session(self, *, datagrams: bool) -> Session:
        """A session for one flow; UDP ones expire templates on capture time."""
        session = Session(self._registry, template_lifetime=self.template_lifetime if datagrams
                          else None, max_template_fields=self.max_template_fields)
        self._stats.append(session.stats)
        return session

    def _reader(self, capture: _CaptureFile) -> dpkt.pcap.Reader | dpkt.pcapng.Reader:
        magic = capture.head
        try:
            if magic == PCAPNG_MAGIC:
                return dpkt.pcapng.Reader(capture)
            if magic in PCAP_MAGICS:
                return dpkt.pcap.Reader(capture)
        except (dpkt.UnpackError, ValueError, struct.error) as exc:
            raise InputError(f"{self.name}: not a readable capture: {exc}") from exc
        what = f"starts with {magic.hex()}" if magic else "is empty"
        hint = f": it begins like IPFIX messages, read it with file:{self.path}" \
            if magic[:2] == b"\x00\x0a" else ""
        raise InputError(f"{self.name}: not a pcap or pcapng capture (the file {what}){hint}")

    def __iter__(self) -> Iterator[Batch]:
        stream, owned = open_binary(self.name, self.path, self._stream)
        try:
            try:
                capture = _CaptureFile(stream, self.name)
            except OSError as exc:
                raise InputError(f"{self.name}: read failed: {exc.strerror or exc}") from exc
            reader = self._reader(capture)
            linktype = reader.datalink()
            if linktype not in _LINK_HEADERS:
                known = ", ".join(f"{k} ({v})" for k, v in _LINK_HEADERS.items())
                raise InputError(f"{self.name}: link type {linktype} is not supported; "
                                 f"supported: {known}")
            with progress_line(self._progress, self.name, stream) as progress:
                yield from self._replay(capture, reader, linktype, progress)
        finally:
            if owned:
                stream.close()

    def _replay(self, capture: _CaptureFile, reader: dpkt.pcap.Reader | dpkt.pcapng.Reader, linktype: int,
                progress: Progress | None) -> Iterator[Batch]:
        replay = _Replay(self, linktype)
        packets = iter(reader)
        error = None
        while True:
            try:
                ts, frame = next(packets)
            except StopIteration:  # pcapng: also when the file ends inside a block header
                if capture.short:
                    error = self._broken(capture, replay.number, None)
                break
            except (dpkt.UnpackError, ValueError, struct.error, OSError) as exc:
                error = self._broken(capture, replay.number, exc)
                break
            if capture.short:
                error = self._broken(capture, replay.number, None)
                break
            for batch in replay.packet(float(ts), frame):
                if progress is not None:
                    progress.advance(capture.offset, len(batch.records))
                yield batch
            if progress is not None:
                progress.advance(capture.offset)
        if progress is not None:
            progress.finish(capture.offset)
        yield from replay.finish()
        if error:
            yield Batch(self.name, (), None, (), error)

    def _broken(self, capture: _CaptureFile, done: int, exc: Exception | None) -> str:
        if capture.short:
            return (f"{self.name}: capture ends inside packet {done + 1} (file cut short); "
                    f"the {done} packets before it were replayed")
        if isinstance(exc, OSError):
            return f"{self.name}: read failed after packet {done}: {exc.strerror or exc}"
        return f"{self.name}: capture is corrupt after packet {done}: {exc}"


class _CaptureFile:
    """The capture as dpkt reads it, remembering a read that came up short.

    dpkt's classic reader hands a packet cut by the end of the file on as if it were whole; the
    flag tells the two apart. A length beyond reason (a corrupt header) raises instead of
    reading the rest of the file into memory.
    """

    def __init__(self, stream: BinaryIO, name: str) -> None:
        self.name = name  # dpkt's readers look for it
        self._stream = stream
        self.head = stream.read(4)  # the magic number, read again by the reader
        self._pushback = self.head
        self.short = False
        self.offset = len(self.head)  # octets read from the stream so far

    def read(self, size: int) -> bytes:
        if not 0 <= size <= _MAX_BLOCK:
            raise ValueError(f"a record claims {size} octets")
        data = self._pushback[:size]
        self._pushback = self._pushback[size:]
        while len(data) < size:
            more = self._stream.read(size - len(data))
            if not more:
                break
            self.offset += len(more)
            data += more
        if 0 < len(data) < size:
            self.short = True
        return data


@dataclass(eq=False)
class _UdpFlow:
    source: str
    host: str
    session: Session


@dataclass(eq=False)
class _TcpStream:
    """One direction of a TCP connection (exporter to collector) while it is replayed."""

    source: str
    host: str
    next_seq: int  # the sequence number of the next octet in order
    ipfix: bool | None  # None: decided by the first payload octets
    session: Session | None = None
    held: dict[int, bytes] = field(default_factory=dict)  # out-of-order segments by sequence
    held_octets: int = 0
    fin_seq: int | None = None
    done: bool = False  # ended or closed: later segments are not decoded


class _Replay:
    """The flows of one pass over a capture."""

    def __init__(self, owner: PcapInput, linktype: int) -> None:
        self.owner = owner
        self.name = owner.name
        self.ports = owner.ports
        self.counters = owner.counters
        self.linktype = linktype
        self.number = 0  # packets read so far; the current packet's number, 1-based
        self.udp: dict[tuple[bytes, int, bytes, int], _UdpFlow] = {}
        self.tcp: dict[tuple[bytes, int, bytes, int], _TcpStream] = {}
        self.fragments = _Reassembly(self.counters)

    # -- link and network layers -------------------------------------------------------------

    def packet(self, ts: float, frame: bytes) -> Iterator[Batch]:
        self.number += 1
        self.counters["packets"] += 1
        pos = self._ip_offset(frame)
        if pos is not None and pos < len(frame):
            version = frame[pos] >> 4
            if version == 4:
                yield from self._ipv4(ts, frame, pos)
                return
            if version == 6:
                yield from self._ipv6(ts, frame, pos)
                return
        self.counters["skipped_packets"] += 1

    def _ip_offset(self, frame: bytes) -> int | None:
        """Where the IP header starts in a frame, or None when the frame is not IP."""
        linktype = self.linktype
        if linktype == 1:
            pos, ethertype = 14, frame[12:14]
        elif linktype == 113:
            pos, ethertype = 16, frame[14:16]
        elif linktype == 276:
            return 20 if frame[0:2] in _IP_ETHERTYPES else None
        elif linktype in (0, 108):
            return 4  # the address family, in either byte order; the IP version says as much
        else:
            return 0
        while ethertype in _VLAN_ETHERTYPES:
            ethertype, pos = frame[pos + 2:pos + 4], pos + 4
        return pos if ethertype in _IP_ETHERTYPES else None

    def _ipv4(self, ts: float, frame: bytes, pos: int) -> Iterator[Batch]:
        counters = self.counters
        header = (frame[pos] & 0x0F) * 4
        if len(frame) - pos < 20 or header < 20:
            counters["skipped_packets"] += 1
            return
        total, = _U16.unpack_from(frame, pos + 2)
        total = total or len(frame) - pos  # 0: segmentation offload on the capturing host
        if total < header:
            counters["skipped_packets"] += 1
            return
        if pos + total > len(frame):
            counters["truncated_packets"] += 1
            return
        proto = frame[pos + 9]
        if proto not in (_UDP, _TCP):
            counters["skipped_packets"] += 1
            return
        src, dst = frame[pos + 12:pos + 16], frame[pos + 16:pos + 20]
        payload = frame[pos + header:pos + total]
        flags_offset, = _U16.unpack_from(frame, pos + 6)
        if flags_offset & 0x3FFF:  # more fragments, or an offset: a fragment
            ident, = _U16.unpack_from(frame, pos + 4)
            whole = self.fragments.add((4, src, dst, ident, proto), ts,
                                       (flags_offset & 0x1FFF) * 8, bool(flags_offset & 0x2000),
                                       payload)
            if whole is None:
                return
            payload = whole
        yield from self._transport(ts, proto, src, dst, payload)

    def _ipv6(self, ts: float, frame: bytes, pos: int) -> Iterator[Batch]:
        counters = self.counters
        if len(frame) - pos < 40:
            counters["skipped_packets"] += 1
            return
        length, = _U16.unpack_from(frame, pos + 4)
        end = pos + 40 + length if length else len(frame)  # 0: a jumbogram, or offload
        if end > len(frame):
            counters["truncated_packets"] += 1
            return
        src, dst = frame[pos + 8:pos + 24], frame[pos + 24:pos + 40]
        found = _skip_extensions(frame[pos + 6], frame, pos + 40, end)
        if found is not None and found[0] == _IPV6_FRAGMENT and end - found[1] >= 8:
            at = found[1]
            proto = frame[at]
            offset_more, = _U16.unpack_from(frame, at + 2)
            ident = frame[at + 4:at + 8]
            if proto in (_UDP, _TCP):
                payload = self.fragments.add((6, src, dst, ident, proto), ts, offset_more & 0xFFF8,
                                             bool(offset_more & 1), frame[at + 8:end])
                if payload is not None:
                    yield from self._transport(ts, proto, src, dst, payload)
                return
        elif found is not None and found[0] in (_UDP, _TCP):
            yield from self._transport(ts, found[0], src, dst, frame[found[1]:end])
            return
        counters["skipped_packets"] += 1

    def _transport(self, ts: float, proto: int, src: bytes, dst: bytes,
                   segment: bytes) -> Iterator[Batch]:
        if proto == _UDP:
            yield from self._udp(ts, src, dst, segment)
        else:
            yield from self._tcp(src, dst, segment)

    def _source(self, transport: str, src: bytes, sport: int, dst: bytes, dport: int) -> str:
        return f"{self.name} {transport} {_endpoint(src, sport)} > {_endpoint(dst, dport)}"

    # -- UDP -------------------------------------------------------------------------------------

    def _udp(self, ts: float, src: bytes, dst: bytes, segment: bytes) -> Iterator[Batch]:
        counters = self.counters
        if len(segment) < 8:
            counters["skipped_packets"] += 1
            return
        sport, dport, length = _UDP_HEADER.unpack_from(segment)
        if length < 8:
            counters["skipped_packets"] += 1
            return
        if length > len(segment):
            counters["truncated_packets"] += 1
            return
        payload = segment[8:length]
        key = (src, sport, dst, dport)
        flow = self.udp.get(key)
        if flow is None:
            if not (dport in self.ports if self.ports is not None
                    else _looks_like_ipfix(payload, whole=True)):
                counters["non_ipfix_packets"] += 1
                return
            flow = self.udp[key] = _UdpFlow(self._source("udp", src, sport, dst, dport),
                                            _address(src), self.owner._new_session(datagrams=True))
        session = flow.session
        error = None
        try:
            records = session.decode_datagram(payload, ts)
        except DecodeError as err:
            records = err.records
            error = (f"{flow.source}: datagram of packet {self.number} dropped{_at(err)}: "
                     f"{err.reason}")
        events = session.take_events()
        if records or events or error:
            yield Batch(flow.source, records, flow.host, events, error)

    # -- TCP -------------------------------------------------------------------------------------

    def _tcp(self, src: bytes, dst: bytes, segment: bytes) -> Iterator[Batch]:
        counters = self.counters
        if len(segment) < 20:
            counters["skipped_packets"] += 1
            return
        sport, dport, seq, _, offset, flags = _TCP_HEADER.unpack_from(segment)
        header = (offset >> 4) * 4
        if header < 20 or header > len(segment):
            counters["skipped_packets"] += 1
            return
        payload = segment[header:]
        if self.ports is not None and dport not in self.ports:
            if payload:
                counters["non_ipfix_packets"] += 1
            return
        key = (src, sport, dst, dport)
        stream = self.tcp.get(key)
        if flags & _SYN:
            seq = (seq + 1) % _SEQ  # the SYN takes one sequence number; data follows it
            if stream is None or stream.next_seq != seq:  # not a retransmitted SYN: a connection
                if stream is not None:
                    yield from self._end(stream)
                stream = self.tcp[key] = _TcpStream(
                    self._source("tcp", src, sport, dst, dport), _address(src), seq,
                    True if self.ports is not None else None)
        elif stream is None:
            if not payload:
                return
            if not _looks_like_ipfix(payload, whole=False):  # mid-connection: wait for a message
                counters["non_ipfix_packets"] += 1
                return
            stream = self.tcp[key] = _TcpStream(
                self._source("tcp", src, sport, dst, dport), _address(src), seq, True)
        if stream.done:
            if payload:
                counters["tcp_dropped_segments"] += 1
            return
        if stream.ipfix is False:
            if payload:
                counters["non_ipfix_packets"] += 1
            if flags & (_FIN | _RST):
                del self.tcp[key]
            return
        records: list[Record] = []
        error = None
        if payload:
            error = self._segment(stream, seq, payload, records)
        if error is None and flags & _FIN:
            stream.fin_seq = (seq + len(payload)) % _SEQ
        if error is None and (flags & _RST or stream.fin_seq == stream.next_seq):
            error = self._close(stream)
        if stream.session is None:  # nothing decoded: not IPFIX, or no payload yet
            # _segment may have found it is not IPFIX (mypy keeps the narrowing of the check above)
            if stream.done or (stream.ipfix is False and flags & (_FIN | _RST)):  # type: ignore[comparison-overlap]
                del self.tcp[key]
            return
        events = stream.session.take_events()
        if records or events or error:
            yield Batch(stream.source, records, stream.host, events, error)

    def _segment(self, stream: _TcpStream, seq: int, payload: bytes,
                 records: list[Record]) -> str | None:
        """Puts one segment's payload in order; feeds what is in order. Returns an error text when
        the stream had to be closed."""
        counters = self.counters
        ahead = (seq - stream.next_seq) % _SEQ
        if ahead >= _HALF:  # starts before the next octet: a retransmission, maybe with more
            seen = _SEQ - ahead
            if seen >= len(payload):
                counters["tcp_duplicate_segments"] += 1
                return None
            payload, ahead = payload[seen:], 0
        if ahead:
            held = stream.held.get(seq)
            if held is not None and len(held) >= len(payload):
                counters["tcp_duplicate_segments"] += 1
                return None
            counters["tcp_out_of_order_segments"] += 1
            stream.held[seq] = payload
            stream.held_octets += len(payload) - (len(held) if held is not None else 0)
            if stream.held_octets > MAX_STREAM_HOLD:
                return self._lost(stream)
            return None
        chunks = [payload]
        stream.next_seq = (stream.next_seq + len(payload)) % _SEQ
        progress = bool(stream.held)
        while progress:  # held segments that now follow on
            progress = False
            for start, data in list(stream.held.items()):
                late = (stream.next_seq - start) % _SEQ
                if late >= _HALF:
                    continue  # still ahead of the next octet
                del stream.held[start]
                stream.held_octets -= len(data)
                if late < len(data):
                    chunks.append(data[late:])
                    stream.next_seq = (stream.next_seq + len(data) - late) % _SEQ
                    progress = True
                else:
                    counters["tcp_duplicate_segments"] += 1
        return self._feed(stream, b"".join(chunks), records)

    def _feed(self, stream: _TcpStream, data: bytes, records: list[Record]) -> str | None:
        if stream.ipfix is None:
            stream.ipfix = _looks_like_ipfix(data, whole=False)
            if not stream.ipfix:
                self.counters["non_ipfix_packets"] += 1
                stream.held.clear()
                return None
        if stream.session is None:
            stream.session = self.owner._new_session(datagrams=False)
        try:
            records += stream.session.feed(data)
        except DecodeError as err:
            records += err.records
            stream.done = True
            stream.held.clear()
            stream.session.close()
            return f"{stream.source}: stream closed{_at(err)}: {err.reason}"
        return None

    def _close(self, stream: _TcpStream) -> str | None:
        """FIN or RST: the end of the session; a message cut short, or a gap, is reported."""
        stream.done = True
        if stream.held:
            return self._lost(stream)
        if stream.session is None:
            return None
        try:
            stream.session.end_of_stream()
        except DecodeError as err:
            return f"{stream.source}: connection closed inside an IPFIX message{_at(err)}: " \
                   f"{err.reason}"
        return None

    def _lost(self, stream: _TcpStream) -> str | None:
        """The capture lacks octets before the held segments: nothing after them can be framed."""
        stream.done = True
        first = min(stream.held, key=lambda s: (s - stream.next_seq) % _SEQ)
        missing = (first - stream.next_seq) % _SEQ
        held, segments = stream.held_octets, len(stream.held)
        self.counters["tcp_dropped_segments"] += segments
        stream.held.clear()
        if stream.session is not None:
            stream.session.close()
        if stream.ipfix is None:  # never reached its first octet: nothing was decoded
            stream.ipfix = False
            return None
        return (f"{stream.source}: stream closed: the capture lacks {missing} octets at sequence "
                f"{stream.next_seq}; {held} octets in {segments} segments after them not decoded")

    def _end(self, stream: _TcpStream) -> Iterator[Batch]:
        """A stream ended without FIN or RST (a new connection on its addresses)."""
        if stream.done or stream.ipfix is False:
            return
        error = self._close(stream)
        events = stream.session.take_events() if stream.session is not None else []
        if events or error:
            yield Batch(stream.source, (), stream.host, events, error)

    # -- end of capture ----------------------------------------------------------------------

    def finish(self) -> Iterator[Batch]:
        """After the last packet: report the gaps never filled; count connections left open;
        end every session (data sets still waiting for a template are dropped, counted)."""
        self.fragments.finish()
        for stream in self.tcp.values():
            if stream.done or not stream.ipfix:
                continue
            if stream.held:
                error = self._lost(stream)
                events = stream.session.take_events() if stream.session is not None else []
                yield Batch(stream.source, (), stream.host, events, error)
            elif stream.session is not None:
                self.counters["tcp_streams_open_at_end"] += 1
                stream.session.close()
                events = stream.session.take_events()
                if events:
                    yield Batch(stream.source, (), stream.host, events)
        for flow in self.udp.values():
            flow.session.close()
            events = flow.session.take_events()
            if events:
                yield Batch(flow.source, (), flow.host, events)


class _Reassembly:
    """IP fragments put back together (RFC 791 §3.2, RFC 8200 §4.5), bounded in datagrams and time.

    Overlapping fragments are accepted as they come (the later one wins); a datagram is complete
    when its pieces cover it from 0 to the end given by the fragment without "more fragments".
    """

    def __init__(self, counters: dict[str, int]) -> None:
        self.counters = counters
        # key -> (capture time of the first fragment, pieces (offset, octets), total length)
        self._pending: dict[_FragmentKey, tuple[float, list[tuple[int, bytes]], list[int | None]]] = {}

    def add(self, key: _FragmentKey, ts: float, offset: int, more: bool, data: bytes) -> bytes | None:
        """Adds one fragment; returns the datagram's payload when this completed it."""
        counters = self.counters
        counters["fragments"] += 1
        self._expire(ts)
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= MAX_FRAGMENTED_DATAGRAMS:
                self._drop(next(iter(self._pending)))
            entry = self._pending[key] = (ts, [], [None])
        _, pieces, total = entry
        pieces.append((offset, data))
        if not more:
            total[0] = offset + len(data)
        if offset + len(data) > 0xFFFF:  # beyond any IP datagram: a broken or hostile sender
            self._drop(key)
            return None
        if total[0] is None:
            return None
        pieces.sort(key=lambda p: p[0])
        covered = 0
        for start, octets in pieces:
            if start > covered:
                return None
            covered = max(covered, start + len(octets))
        if covered < total[0]:
            return None
        datagram = bytearray(total[0])
        for start, octets in pieces:
            datagram[start:start + len(octets)] = octets
        del datagram[total[0]:]
        del self._pending[key]
        counters["reassembled_datagrams"] += 1
        return bytes(datagram)

    def _expire(self, now: float) -> None:
        while self._pending:
            key, (first, _, _) = next(iter(self._pending.items()))
            if now - first <= FRAGMENT_TIMEOUT:
                return
            self._drop(key)

    def _drop(self, key: _FragmentKey) -> None:
        self.counters["fragments_dropped"] += len(self._pending.pop(key)[1])

    def finish(self) -> None:
        for key in list(self._pending):
            self._drop(key)


def _skip_extensions(proto: int, packet: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """(next header, its offset) after IPv6 extension headers, or None when they do not fit."""
    while proto in _IPV6_EXTENSIONS:
        if end - pos < 8:
            return None
        proto, pos = packet[pos], pos + (packet[pos + 1] + 1) * 8
    return (proto, pos) if pos <= end else None


def _looks_like_ipfix(payload: bytes, *, whole: bool) -> bool:
    """Whether a payload starts with an IPFIX message header and, if it has one, a first set
    header that fit (RFC 7011 §3.1, §3.3.2). ``whole``: the message must fit in the payload."""
    if len(payload) < 16:
        return False
    version, length = _IPFIX_START.unpack_from(payload)
    if version != 10 or length < 16 or (whole and length > len(payload)):
        return False
    if length >= 20 and len(payload) >= 20:
        set_id, set_length = _IPFIX_START.unpack_from(payload, 16)
        return bool((set_id in (2, 3) or set_id >= 256) and 4 <= set_length <= length - 16)
    return True


@lru_cache(maxsize=4096)
def _address(packed: bytes) -> str:
    return str(ipaddress.ip_address(packed))


def _endpoint(packed: bytes, port: int) -> str:
    return f"[{_address(packed)}]:{port}" if len(packed) == 16 else f"{_address(packed)}:{port}"


def _at(err: DecodeError) -> str:
    # Offsets are in the flow's stream (TCP) or datagram (UDP), as Session reports them.
    return f" at byte {err.offset}" if err.offset is not None else ""


def open_pcap(spec: InputSpec, *, registry: Registry | None = None,
              options: argparse.Namespace | None = None) -> PcapInput:
    """``pcap:PATH`` or ``pcap:PATH?port=4739[,2055...]`` (the only option in the spec). UDP
    templates expire after ``--template-lifetime`` seconds of capture time, as on the wire."""
    path, settings = spec.target, dict(spec.options)
    head, sep, query = path.rpartition("?")
    if sep and "=" in query:  # a '?' in a file name without '=' stays part of the name
        path = head
        for item in filter(None, query.split("&")):
            key, _, value = item.partition("=")
            settings[key] = value
    unknown = sorted(set(settings) - {"port"})
    if unknown:
        raise InputError(f"input {spec}: unknown option {unknown[0]!r}; known: port")
    ports = None
    if "port" in settings:
        try:
            ports = {int(p) for p in settings["port"].split(",")}
        except ValueError:
            raise InputError(f"input {spec}: port {settings['port']!r} is not a number "
                             "(or a comma-separated list)") from None
        if not all(0 < p <= 0xFFFF for p in ports):
            raise InputError(f"input {spec}: port out of range in {settings['port']!r}")
    sessions = SessionSettings.from_namespace(options)
    return PcapInput(path, registry=registry, ports=ports, template_lifetime=sessions.template_lifetime,
                     max_template_fields=sessions.max_template_fields or None,
                     progress=ProgressSettings.from_namespace(options).enabled)
