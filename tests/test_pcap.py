"""`pcap:PATH`: IPFIX replayed from packet captures, one session per flow.

Captures are written in tmp_path with dpkt's writers (classic pcap and pcapng; a big-endian
classic file by hand, since dpkt writes the host's byte order). The link, IP, UDP and TCP headers
are packed here with struct, so that each test says exactly which bytes are on the wire; messages
come from the library's `Encoder`. The real capture of the corpus (Cisco IOS-XE AVC over UDP,
tests/data/corpus/beats) must decode to flowbeat's golden records.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
from pathlib import Path

import corpus as C
import dpkt
import orjson
import pytest

from ipfix_antrea import Encoder, MissingTemplate, PendingSetDropped, Session, TemplateExpired
from ipfix_antrea.cli import EXIT_INPUT_ERRORS, EXIT_OK, main
from ipfix_antrea.inputs import InputError, open_input
from ipfix_antrea.inputs.pcap import MAX_STREAM_HOLD, PcapInput

EXPORT_TIME = 1_700_000_000
EXPORTER_A, EXPORTER_B, COLLECTOR = "10.0.0.1", "10.0.0.2", "10.0.0.9"
V6_EXPORTER, V6_COLLECTOR = "2001:db8::1", "2001:db8::9"
PORT = 4739
SYN, FIN, ACK, RST = 0x02, 0x01, 0x10, 0x04

FIELDS_A = ["sourceIPv4Address", "destinationIPv4Address", "octetDeltaCount"]
FIELDS_B = ["sourcePodName", "packetDeltaCount"]


# --------------------------------------------------------------------------- messages


def messages(fields: list, rows: list, *, domain: int = 1, template_id: int = 256,
             max_size: int = 65535) -> list[bytes]:
    """The template message, then the data messages."""
    enc = Encoder(domain, export_time=lambda: EXPORT_TIME, max_message_size=max_size)
    enc.add_template(template_id, fields)
    return enc.template_messages() + enc.encode(template_id, rows)


def rows_a(n: int, start: int = 0) -> list[tuple]:
    return [("192.168.0.1", "192.168.0.2", start + i) for i in range(n)]


def rows_b(n: int) -> list[tuple]:
    return [(f"pod-{i}", i) for i in range(n)]


def stream_records(data: bytes) -> list[dict]:
    """What one Session makes of a whole stream: the reference for reassembly."""
    return [r.to_dict() for r in Session().feed(data)]


# --------------------------------------------------------------------------- packets


def ip_bytes(address: str) -> bytes:
    import ipaddress
    return ipaddress.ip_address(address).packed


def ipv4(src: str, dst: str, proto: int, payload: bytes, *, ident: int = 1,
         flags_offset: int = 0x4000) -> bytes:
    return struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, flags_offset, 64, proto,
                       0, ip_bytes(src), ip_bytes(dst)) + payload


def ipv6(src: str, dst: str, next_header: int, payload: bytes) -> bytes:
    return struct.pack(">IHBB16s16s", 6 << 28, len(payload), next_header, 64, ip_bytes(src),
                       ip_bytes(dst)) + payload


def udp(sport: int, dport: int, payload: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def tcp(sport: int, dport: int, seq: int, flags: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHIIBBHHH", sport, dport, seq % 2**32, 0, 5 << 4, flags | ACK, 65535, 0,
                       0) + payload


def ether(packet: bytes, ethertype: int = 0x0800, vlans: tuple[int, ...] = ()) -> bytes:
    tags = b"".join(struct.pack(">HH", tpid, 100) for tpid in vlans)
    return bytes.fromhex("020000000009020000000001") + tags + struct.pack(">H", ethertype) + packet


def udp_frame(src: str, sport: int, payload: bytes, *, dst: str = COLLECTOR,
              dport: int = PORT) -> bytes:
    return ether(ipv4(src, dst, 17, udp(sport, dport, payload)))


def tcp_frame(src: str, sport: int, seq: int, flags: int, payload: bytes = b"", *,
              dst: str = COLLECTOR, dport: int = PORT) -> bytes:
    return ether(ipv4(src, dst, 6, tcp(sport, dport, seq, flags, payload)))


# --------------------------------------------------------------------------- captures


def write_pcap(path: Path, frames: list, *, linktype: int = 1, nano: bool = False) -> Path:
    """``frames``: bytes (timestamps 1, 2, 3...) or (timestamp, bytes)."""
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535, linktype=linktype, nano=nano)
        for n, item in enumerate(frames):
            ts, frame = item if isinstance(item, tuple) else (n + 1, item)
            writer.writepkt(frame, ts=ts)
    return path


def write_pcapng(path: Path, frames: list[bytes]) -> Path:
    with open(path, "wb") as f:
        writer = dpkt.pcapng.Writer(f, snaplen=65535, linktype=1)
        for n, frame in enumerate(frames):
            writer.writepkt(frame, ts=n + 1)
    return path


def replay(path: Path, **kwargs) -> tuple[list, PcapInput]:
    inp = PcapInput(str(path), **kwargs)
    return list(inp), inp


def records_of(batches: list, host: str | None = None) -> list[dict]:
    return [r.to_dict() for b in batches if host is None or b.host == host for r in b.records]


def errors_of(batches: list) -> list[str]:
    return [b.error for b in batches if b.error]


# --------------------------------------------------------------------------- UDP


def test_udp_exporters_keep_their_own_templates(tmp_path):
    a = messages(FIELDS_A, rows_a(2))
    b = messages(FIELDS_B, rows_b(3))  # the same template id 256, another definition
    path = write_pcap(tmp_path / "two.pcap", [
        udp_frame(EXPORTER_A, 50000, a[0]), udp_frame(EXPORTER_B, 50000, b[0]),
        udp_frame(EXPORTER_A, 50000, a[1]), udp_frame(EXPORTER_B, 50000, b[1])])
    batches, inp = replay(path)
    assert records_of(batches, EXPORTER_A) == [
        {"sourceIPv4Address": "192.168.0.1", "destinationIPv4Address": "192.168.0.2",
         "octetDeltaCount": i} for i in range(2)]
    assert records_of(batches, EXPORTER_B) == [
        {"sourcePodName": f"pod-{i}", "packetDeltaCount": i} for i in range(3)]
    assert [s.records for s in inp.stats()] == [2, 3]
    assert {b.source for b in batches} == {
        f"pcap:{path} udp {EXPORTER_A}:50000 > {COLLECTOR}:{PORT}",
        f"pcap:{path} udp {EXPORTER_B}:50000 > {COLLECTOR}:{PORT}"}
    assert errors_of(batches) == []


def test_udp_template_expiry_runs_on_capture_time(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1)) + messages(FIELDS_A, rows_a(1))[1:]
    path = write_pcap(tmp_path / "expiry.pcap", [
        (5000.0, udp_frame(EXPORTER_A, 50000, msgs[0])),
        (5100.0, udp_frame(EXPORTER_A, 50000, msgs[1])),          # in time: decoded
        (5000.0 + 1801, udp_frame(EXPORTER_A, 50000, msgs[2]))])  # 1801 s later: expired
    batches, inp = replay(path, template_lifetime=1800)
    assert len(records_of(batches)) == 1
    events = [e for b in batches for e in b.events]
    assert [type(e) for e in events if isinstance(e, (TemplateExpired, MissingTemplate))] == \
        [TemplateExpired, MissingTemplate]
    assert inp.stats()[0].templates_expired == 1


def test_template_lifetime_comes_from_the_command_line_options(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    path = write_pcap(tmp_path / "lifetime.pcap", [(100.0, udp_frame(EXPORTER_A, 50000, msgs[0])),
                                                   (161.0, udp_frame(EXPORTER_A, 50000, msgs[1]))])
    inp = open_input(f"pcap:{path}", options=argparse.Namespace(template_lifetime=60.0))
    assert records_of(list(inp)) == []
    assert inp.stats()[0].templates_expired == 1


def test_max_template_fields_comes_from_the_command_line_options(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))  # a template of 3 fields
    path = write_pcap(tmp_path / "big.pcap", [udp_frame(EXPORTER_A, 50000, m) for m in msgs])
    inp = open_input(f"pcap:{path}", options=argparse.Namespace(max_template_fields=2))
    assert records_of(list(inp)) == []
    assert inp.stats()[0].malformed_sets == 1 and inp.stats()[0].templates_added == 0


def test_nanosecond_pcap_timestamps_are_read_exactly(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1)) + messages(FIELDS_A, rows_a(1))[1:]
    path = write_pcap(tmp_path / "nano.pcap", [
        (1000.0, udp_frame(EXPORTER_A, 50000, msgs[0])),
        (1009.999999, udp_frame(EXPORTER_A, 50000, msgs[1])),    # 1 us inside the lifetime
        (1010.0000004, udp_frame(EXPORTER_A, 50000, msgs[2]))],  # 400 ns past it
        nano=True)
    batches, inp = replay(path, template_lifetime=10)
    assert len(records_of(batches)) == 1
    assert inp.stats()[0].templates_expired == 1


def test_udp_sets_still_waiting_for_their_template_at_the_end_of_the_capture_are_dropped(tmp_path):
    data = messages(FIELDS_A, rows_a(2))[1:]  # no template
    batches, inp = replay(write_pcap(tmp_path / "c.pcap", [udp_frame(EXPORTER_A, 50000, m) for m in data]))
    (stats,) = inp.stats()
    assert stats.pending_dropped_sets == 1
    assert PendingSetDropped(1, 256, session_ended=True) in [e for b in batches for e in b.events]


def test_malformed_udp_datagram_is_reported_and_its_flow_goes_on(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1)) + messages(FIELDS_A, rows_a(1, start=7))[1:]
    cut = msgs[1][:-3]  # the header's length says 3 octets more than the datagram has
    path = write_pcap(tmp_path / "bad.pcap", [udp_frame(EXPORTER_A, 50000, m)
                                              for m in (msgs[0], msgs[1], cut, msgs[2])])
    batches, inp = replay(path)
    assert [r["octetDeltaCount"] for r in records_of(batches)] == [0, 7]
    (error,) = errors_of(batches)
    assert error.startswith(f"pcap:{path} udp {EXPORTER_A}:50000 > ") and "packet 3" in error
    assert inp.stats()[0].malformed_messages == 1


def test_non_ipfix_traffic_is_skipped_and_counted(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    arp = ether(bytes(28), ethertype=0x0806)
    icmp = ether(ipv4(EXPORTER_A, COLLECTOR, 1, bytes(8)))
    dns = udp_frame(EXPORTER_A, 53000, bytes.fromhex("000a0100000100000000000003777777") + bytes(20),
                    dport=53)
    path = write_pcap(tmp_path / "mixed.pcap", [arp, udp_frame(EXPORTER_A, 50000, msgs[0]), icmp,
                                                dns, udp_frame(EXPORTER_A, 50000, msgs[1])])
    batches, inp = replay(path)
    assert len(records_of(batches)) == 1
    assert inp.counters["packets"] == 5
    assert inp.counters["skipped_packets"] == 2
    assert inp.counters["non_ipfix_packets"] == 1
    assert len(inp.stats()) == 1


def test_port_option_takes_only_that_port(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    path = write_pcap(tmp_path / "ports.pcap", [
        udp_frame(EXPORTER_A, 50000, msgs[0], dport=2055), udp_frame(EXPORTER_A, 50000, msgs[1],
                                                                      dport=2055),
        udp_frame(EXPORTER_B, 50000, msgs[0]), udp_frame(EXPORTER_B, 50000, msgs[1])])
    inp = open_input(f"pcap:{path}?port={PORT}")
    batches = list(inp)
    assert {b.host for b in batches} == {EXPORTER_B}
    assert len(records_of(batches)) == 1
    assert inp.counters["non_ipfix_packets"] == 2


def test_unknown_spec_option_is_refused(tmp_path):
    with pytest.raises(InputError, match="unknown option 'prot'; known: port"):
        open_input(f"pcap:{tmp_path / 'x.pcap'}?prot=4739")


def test_snaplen_cut_packet_is_counted_not_decoded(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    path = write_pcap(tmp_path / "snap.pcap", [udp_frame(EXPORTER_A, 50000, msgs[0]),
                                               udp_frame(EXPORTER_A, 50000, msgs[1])[:60]])
    batches, inp = replay(path)
    assert records_of(batches) == [] and errors_of(batches) == []
    assert inp.counters["truncated_packets"] == 1
    assert inp.stats()[0].malformed_messages == 0


# --------------------------------------------------------------------------- IP layer


def test_ipv6_exporter(tmp_path):
    msgs = messages(FIELDS_A, rows_a(2))
    path = write_pcap(tmp_path / "v6.pcap", [
        ether(ipv6(V6_EXPORTER, V6_COLLECTOR, 17, udp(50000, PORT, m)), ethertype=0x86DD)
        for m in msgs])
    batches, _ = replay(path)
    assert len(records_of(batches, V6_EXPORTER)) == 2
    assert batches[0].source == f"pcap:{path} udp [{V6_EXPORTER}]:50000 > [{V6_COLLECTOR}]:{PORT}"


def test_ipv4_fragments_are_reassembled_in_any_order(tmp_path):
    msgs = messages(FIELDS_A, rows_a(100))  # one data message of about 1.3 kB
    datagram = udp(50000, PORT, msgs[1])
    pieces = [datagram[i:i + 400] for i in range(0, len(datagram), 400)]
    frames = [ether(ipv4(EXPORTER_A, COLLECTOR, 17, piece, ident=7,
                         flags_offset=(0x2000 if n < len(pieces) - 1 else 0) | n * 50))
              for n, piece in enumerate(pieces)]
    path = write_pcap(tmp_path / "frag.pcap",
                      [udp_frame(EXPORTER_A, 50000, msgs[0]), *frames[::-1]])
    batches, inp = replay(path)
    assert len(records_of(batches)) == 100
    assert inp.counters["fragments"] == len(pieces) > 1
    assert inp.counters["reassembled_datagrams"] == 1


def test_ipv6_fragments_are_reassembled(tmp_path):
    msgs = messages(FIELDS_A, rows_a(100))
    datagram = udp(50000, PORT, msgs[1])
    pieces = [datagram[i:i + 600] for i in range(0, len(datagram), 600)]
    frames = [ether(ipv6(V6_EXPORTER, V6_COLLECTOR, 44,
                         struct.pack(">BBHI", 17, 0, n * 600 | (n < len(pieces) - 1), 99) + piece),
                    ethertype=0x86DD) for n, piece in enumerate(pieces)]
    first = ether(ipv6(V6_EXPORTER, V6_COLLECTOR, 17, udp(50000, PORT, msgs[0])), ethertype=0x86DD)
    batches, inp = replay(write_pcap(tmp_path / "frag6.pcap", [first, *frames]))
    assert len(records_of(batches)) == 100
    assert inp.counters["reassembled_datagrams"] == 1


def test_incomplete_fragments_are_dropped_and_counted(tmp_path):
    msgs = messages(FIELDS_A, rows_a(100))
    datagram = udp(50000, PORT, msgs[1])
    first = ether(ipv4(EXPORTER_A, COLLECTOR, 17, datagram[:800], ident=9, flags_offset=0x2000))
    path = write_pcap(tmp_path / "lost.pcap", [udp_frame(EXPORTER_A, 50000, msgs[0]), first])
    batches, inp = replay(path)
    assert records_of(batches) == []
    assert inp.counters["fragments_dropped"] == 1 and inp.counters["reassembled_datagrams"] == 0


# --------------------------------------------------------------------------- link layers


@pytest.mark.parametrize("vlans", [(0x8100,), (0x88A8, 0x8100)], ids=["802.1Q", "QinQ"])
def test_vlan_tagged_ethernet(tmp_path, vlans):
    msgs = messages(FIELDS_A, rows_a(1))
    frames = [ether(ipv4(EXPORTER_A, COLLECTOR, 17, udp(50000, PORT, m)), vlans=vlans)
              for m in msgs]
    batches, _ = replay(write_pcap(tmp_path / "vlan.pcap", frames))
    assert len(records_of(batches, EXPORTER_A)) == 1


def sll(packet: bytes) -> bytes:
    return struct.pack(">HHH8sH", 0, 1, 6, bytes(8), 0x0800) + packet


def sll2(packet: bytes) -> bytes:
    return struct.pack(">HHiHBB8s", 0x0800, 0, 2, 1, 0, 6, bytes(8)) + packet


def loopback_host_order(packet: bytes) -> bytes:
    return struct.pack("<I", 2) + packet


def loopback_network_order(packet: bytes) -> bytes:
    return struct.pack(">I", 2) + packet


def raw(packet: bytes) -> bytes:
    return packet


@pytest.mark.parametrize("linktype, frame", [
    (113, sll), (276, sll2), (0, loopback_host_order), (108, loopback_network_order),
    (101, raw), (12, raw), (14, raw), (228, raw),
], ids=["SLL", "SLL2", "null", "loop", "raw-101", "raw-12", "raw-14", "ipv4-228"])
def test_link_types(tmp_path, linktype, frame):
    msgs = messages(FIELDS_A, rows_a(1))
    frames = [frame(ipv4(EXPORTER_A, COLLECTOR, 17, udp(50000, PORT, m))) for m in msgs]
    batches, _ = replay(write_pcap(tmp_path / "link.pcap", frames, linktype=linktype))
    assert len(records_of(batches, EXPORTER_A)) == 1


def test_unsupported_link_type_is_an_input_error(tmp_path):
    path = write_pcap(tmp_path / "wifi.pcap", [bytes(40)], linktype=127)
    with pytest.raises(InputError, match="link type 127 is not supported"):
        list(PcapInput(str(path)))


# --------------------------------------------------------------------------- file formats


def test_pcapng(tmp_path):
    msgs = messages(FIELDS_A, rows_a(3))
    batches, _ = replay(write_pcapng(tmp_path / "c.pcapng",
                                     [udp_frame(EXPORTER_A, 50000, m) for m in msgs]))
    assert len(records_of(batches, EXPORTER_A)) == 3


def test_big_endian_pcap(tmp_path):
    msgs = messages(FIELDS_A, rows_a(2))
    path = tmp_path / "be.pcap"
    with open(path, "wb") as f:
        f.write(struct.pack(">IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for n, m in enumerate(msgs):
            frame = udp_frame(EXPORTER_A, 50000, m)
            f.write(struct.pack(">IIII", 1000 + n, 0, len(frame), len(frame)) + frame)
    batches, _ = replay(path)
    assert len(records_of(batches)) == 2


def cut_inside_last_packet(path: Path, last: bytes) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:data.rindex(last) + len(last) // 2])


def cut_inside_last_header(path: Path, last: bytes) -> None:
    data = path.read_bytes()
    header = 16 if path.suffix == ".pcap" else 28  # pcap record header / pcapng EPB up to data
    path.write_bytes(data[:data.rindex(last) - header + 5])


@pytest.mark.parametrize("write", [write_pcap, write_pcapng], ids=["pcap", "pcapng"])
@pytest.mark.parametrize("cut", [cut_inside_last_packet, cut_inside_last_header],
                         ids=["in-data", "in-header"])
def test_truncated_capture_keeps_earlier_records_and_reports(tmp_path, write, cut):
    msgs = messages(FIELDS_A, rows_a(1)) + messages(FIELDS_A, rows_a(1, start=5))[1:]
    frames = [udp_frame(EXPORTER_A, 50000, m) for m in msgs]
    path = write(tmp_path / f"cut{'.pcap' if write is write_pcap else '.pcapng'}", frames)
    cut(path, frames[-1])
    batches, inp = replay(path)
    assert [r["octetDeltaCount"] for r in records_of(batches)] == [0]
    assert batches[-1].error == (f"pcap:{path}: capture ends inside packet 3 (file cut short); "
                                 "the 2 packets before it were replayed")
    assert inp.counters["packets"] == 2


def test_corrupt_record_length_stops_with_an_error(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    path = write_pcap(tmp_path / "corrupt.pcap", [udp_frame(EXPORTER_A, 50000, m) for m in msgs])
    data = bytearray(path.read_bytes())
    second = 24 + 16 + len(udp_frame(EXPORTER_A, 50000, msgs[0]))
    order = "<" if sys.byteorder == "little" else ">"  # dpkt writes the host's byte order
    struct.pack_into(order + "I", data, second + 8, 0xFFFFFFF0)  # its captured length: 4 GiB
    path.write_bytes(bytes(data))
    batches, _ = replay(path)
    assert batches[-1].error == f"pcap:{path}: capture is corrupt after packet 1: a record " \
        f"claims {0xFFFFFFF0} octets"


@pytest.mark.parametrize("content", [b"", b"\x00\x0a\x00\x10" + bytes(12)], ids=["empty", "ipfix"])
def test_not_a_capture_is_an_input_error(tmp_path, content):
    path = tmp_path / "not.pcap"
    path.write_bytes(content)
    with pytest.raises(InputError, match="not a pcap or pcapng capture"):
        list(PcapInput(str(path)))


def test_missing_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="cannot open"):
        list(PcapInput(str(tmp_path / "absent.pcap")))


# --------------------------------------------------------------------------- TCP


def tcp_stream_frames(src: str, sport: int, data: bytes, *, isn: int, size: int) -> list:
    """SYN, then the stream in segments of ``size`` octets (the sequence numbers as sent)."""
    segments = [(isn + 1 + off, data[off:off + size]) for off in range(0, len(data), size)]
    return [tcp_frame(src, sport, isn, SYN)], segments


def test_tcp_stream_is_reassembled_from_out_of_order_and_retransmitted_segments(tmp_path):
    data = b"".join(messages(FIELDS_A, rows_a(40), max_size=300))  # messages span segments
    isn = 2**32 - 200
    (syn,), segs = tcp_stream_frames(EXPORTER_A, 40000, data, isn=isn, size=97)
    order = [0, 2, 1, 1, 3]  # 2 before 1, then 1 again
    frames = [syn] + [tcp_frame(EXPORTER_A, 40000, segs[i][0], 0, segs[i][1]) for i in order]
    assert segs[0][0] < 2**32 < segs[-1][0]  # the sequence numbers wrap inside the stream
    seq4 = segs[4][0]
    # 3 again with the start of 4: only the new octets count
    frames.append(tcp_frame(EXPORTER_A, 40000, segs[3][0], 0, segs[3][1] + segs[4][1][:50]))
    frames += [tcp_frame(EXPORTER_A, 40000, seq, 0, payload) for seq, payload in segs[4:]]
    frames.append(tcp_frame(EXPORTER_A, 40000, seq4, 0, segs[4][1]))  # a late duplicate
    frames.append(tcp_frame(EXPORTER_A, 40000, segs[-1][0] + len(segs[-1][1]), FIN))
    frames.append(tcp_frame(COLLECTOR, PORT, 1, 0, dst=EXPORTER_A, dport=40000))  # an ACK back
    batches, inp = replay(write_pcap(tmp_path / "tcp.pcap", frames))
    assert records_of(batches, EXPORTER_A) == stream_records(data)
    assert len(records_of(batches)) == 40
    assert errors_of(batches) == []
    assert inp.counters["tcp_out_of_order_segments"] == 1
    assert inp.counters["tcp_duplicate_segments"] == 2  # segment 1 again, segment 4 late
    assert len(inp.stats()) == 1 and inp.stats()[0].malformed_messages == 0


def test_tcp_flow_with_garbage_is_closed_while_another_flow_goes_on(tmp_path):
    good = messages(FIELDS_A, rows_a(2))
    more = messages(FIELDS_A, rows_a(3, start=10))[1:]
    garbage = b"\x00\x05\x00\x40" + bytes(60)  # NetFlow v5 header, not IPFIX
    frames = [tcp_frame(EXPORTER_A, 40000, 100, SYN), tcp_frame(EXPORTER_B, 40001, 500, SYN)]
    seq_a, seq_b = 101, 501
    for a_payload, b_payload in [(good[0], good[0]), (good[1], good[1]), (garbage, more[0]),
                                 (more[0], more[0])]:
        frames.append(tcp_frame(EXPORTER_A, 40000, seq_a, 0, a_payload))
        frames.append(tcp_frame(EXPORTER_B, 40001, seq_b, 0, b_payload))
        seq_a, seq_b = seq_a + len(a_payload), seq_b + len(b_payload)
    frames += [tcp_frame(EXPORTER_A, 40000, seq_a, FIN), tcp_frame(EXPORTER_B, 40001, seq_b, FIN)]
    batches, inp = replay(write_pcap(tmp_path / "garbage.pcap", frames))
    assert len(records_of(batches, EXPORTER_A)) == 2
    assert len(records_of(batches, EXPORTER_B)) == 2 + 3 + 3
    (error,) = errors_of(batches)
    assert error.startswith(f"pcap:{tmp_path / 'garbage.pcap'} tcp {EXPORTER_A}:40000 > ")
    assert "stream closed at byte" in error and "version 5 is not IPFIX" in error
    assert inp.counters["tcp_dropped_segments"] == 1
    assert [s.malformed_messages for s in inp.stats()] == [1, 0]


def test_tcp_fin_inside_a_message_is_reported(tmp_path):
    msgs = messages(FIELDS_A, rows_a(2))
    frames = [tcp_frame(EXPORTER_A, 40000, 0, SYN),
              tcp_frame(EXPORTER_A, 40000, 1, 0, msgs[0]),
              tcp_frame(EXPORTER_A, 40000, 1 + len(msgs[0]), FIN, msgs[1][:20])]
    batches, inp = replay(write_pcap(tmp_path / "fin.pcap", frames))
    (error,) = errors_of(batches)
    assert "connection closed inside an IPFIX message" in error and "20 octets left over" in error
    assert inp.stats()[0].templates_added == 1


def test_tcp_capture_starting_mid_connection_starts_at_a_message_header(tmp_path):
    msgs = messages(FIELDS_A, rows_a(2))
    tail = msgs[1][30:]  # the end of a message whose start the capture missed
    frames = [tcp_frame(EXPORTER_A, 40000, 5000, 0, tail),
              tcp_frame(EXPORTER_A, 40000, 5000 + len(tail), 0, msgs[0]),
              tcp_frame(EXPORTER_A, 40000, 5000 + len(tail) + len(msgs[0]), 0, msgs[1])]
    batches, inp = replay(write_pcap(tmp_path / "mid.pcap", frames))
    assert len(records_of(batches)) == 2 and errors_of(batches) == []
    assert inp.counters["non_ipfix_packets"] == 1


def test_tcp_gap_the_capture_never_fills_is_reported(tmp_path):
    msgs = messages(FIELDS_A, rows_a(2)) + messages(FIELDS_A, rows_a(1, start=9))[1:]
    seq = 1
    frames = [tcp_frame(EXPORTER_A, 40000, 0, SYN)]
    for n, m in enumerate(msgs):
        if n != 1:  # the capture lost the first data message
            frames.append(tcp_frame(EXPORTER_A, 40000, seq, 0, m))
        seq += len(m)
    batches, inp = replay(write_pcap(tmp_path / "gap.pcap", frames))
    assert records_of(batches) == []
    (error,) = errors_of(batches)
    assert error.endswith(f"the capture lacks {len(msgs[1])} octets at sequence "
                          f"{1 + len(msgs[0])}; {len(msgs[2])} octets in 1 segments after them "
                          "not decoded")
    assert inp.counters["tcp_dropped_segments"] == 1


def test_tcp_gap_beyond_the_hold_bound_closes_the_stream_at_once(tmp_path):
    template, data = messages(FIELDS_A, rows_a(1))
    frames = [tcp_frame(EXPORTER_A, 40000, 0, SYN), tcp_frame(EXPORTER_A, 40000, 1, 0, template)]
    seq = 1 + len(template) + len(data)  # the first data message is not in the capture
    while seq < MAX_STREAM_HOLD + 2 * 60000:
        frames.append(tcp_frame(EXPORTER_A, 40000, seq, 0, bytes(60000)))
        seq += 60000
    batches, inp = replay(write_pcap(tmp_path / "hold.pcap", frames))
    (error,) = errors_of(batches)
    assert f"lacks {len(data)} octets" in error
    assert inp.counters["tcp_dropped_segments"] > 0


def test_tcp_connection_open_at_end_of_capture_is_counted_not_an_error(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    frames = [tcp_frame(EXPORTER_A, 40000, 0, SYN), tcp_frame(EXPORTER_A, 40000, 1, 0, msgs[0]),
              tcp_frame(EXPORTER_A, 40000, 1 + len(msgs[0]), 0, msgs[1][:10])]
    batches, inp = replay(write_pcap(tmp_path / "open.pcap", frames))
    assert errors_of(batches) == [] and inp.counters["tcp_streams_open_at_end"] == 1
    assert inp.stats()[0].malformed_messages == 0


def test_tcp_connection_that_is_not_ipfix_is_counted(tmp_path):
    http = b"GET / HTTP/1.1\r\nHost: example\r\n\r\n"
    msgs = messages(FIELDS_A, rows_a(1))
    frames = [tcp_frame(EXPORTER_A, 40000, 0, SYN, dport=80),
              tcp_frame(EXPORTER_A, 40000, 1, 0, http, dport=80),
              # octets of the same connection that look like IPFIX are not taken
              tcp_frame(EXPORTER_A, 40000, 1 + len(http), 0, msgs[0], dport=80)]
    batches, inp = replay(write_pcap(tmp_path / "http.pcap", frames))
    assert batches == [] and inp.stats() == []
    assert inp.counters["non_ipfix_packets"] == 2


def test_tcp_new_connection_on_the_same_ports_is_a_new_session(tmp_path):
    msgs = messages(FIELDS_A, rows_a(1))
    frames = []
    for isn in (1000, 900000):
        frames += [tcp_frame(EXPORTER_A, 40000, isn, SYN),
                   tcp_frame(EXPORTER_A, 40000, isn + 1, 0, msgs[0]),
                   tcp_frame(EXPORTER_A, 40000, isn + 1 + len(msgs[0]), FIN, msgs[1])]
    batches, inp = replay(write_pcap(tmp_path / "again.pcap", frames))
    assert len(records_of(batches)) == 2 and errors_of(batches) == []
    assert [s.templates_added for s in inp.stats()] == [1, 1]


# --------------------------------------------------------------------------- real capture, CLI


def test_cisco_capture_decodes_to_the_flowbeat_golden():
    path = C.CORPUS / "beats" / "pcap" / "ipfix_cisco.pcap"
    batches, _ = replay(path)
    records = [r for b in batches for r in b.records]
    assert errors_of(batches) == [] and {b.host for b in batches} == {"10.101.255.2"}
    # the same records as the payloads through one Session (which test_corpus checks field by
    # field against the golden, vendor elements included) ...
    reference = Session()
    expected = [r for p in C.beats_pcap_session().payloads for r in reference.decode_datagram(p)]
    assert [r.to_dict() for r in records] == [r.to_dict() for r in expected]
    # ... and, directly, every golden value that needs no vendor table or rendering convention
    golden = json.loads((C.CORPUS / "beats" / "golden" / "ipfix_cisco.pcap.golden.json")
                        .read_text())["events"]
    assert len(records) == len(golden) == 29
    checked = 0
    for record, event in zip(records, golden, strict=True):
        fields = event["Fields"]["netflow"]
        assert record.template_id == fields["template_id"]
        assert record.observation_domain_id == fields["observation_domain_id"]
        assert record.export_time * 10**9 == C.iso_to_ns(event["Fields"]["event"]["created"])
        for name, value in fields.items():
            if name in record and isinstance(value, int):
                assert record[name] == value, (name, record[name], value)
                checked += 1
    assert checked == 29 * 16  # the 16 IANA integer elements of template 267


def test_cli_replays_a_capture_to_jsonl(tmp_path, capsys):
    a = messages(FIELDS_A, rows_a(2))
    tcp_data = b"".join(messages(FIELDS_B, rows_b(3)))
    frames = [udp_frame(EXPORTER_A, 50000, m) for m in a]
    frames += [tcp_frame(EXPORTER_B, 40000, 0, SYN), tcp_frame(EXPORTER_B, 40000, 1, 0, tcp_data),
               tcp_frame(EXPORTER_B, 40000, 1 + len(tcp_data), FIN)]
    path = write_pcap(tmp_path / "cli.pcap", frames)
    out = tmp_path / "out.jsonl"
    status = main(["--input", f"pcap:{path}", "--sink", f"jsonl:{out}"])
    assert status == EXIT_OK, capsys.readouterr().err
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert sorted((d["host"], d["ipfix"].get("octetDeltaCount", d["ipfix"].get("packetDeltaCount")))
                  for d in docs) == [(EXPORTER_A, 0), (EXPORTER_A, 1), (EXPORTER_B, 0),
                                     (EXPORTER_B, 1), (EXPORTER_B, 2)]


def test_stdin_capture(tmp_path, monkeypatch):
    msgs = messages(FIELDS_A, rows_a(1))
    path = write_pcap(tmp_path / "in.pcap", [udp_frame(EXPORTER_A, 50000, m) for m in msgs])
    with open(path, "rb") as f:
        monkeypatch.setattr(sys, "stdin", type("Stdin", (), {"buffer": f})())
        batches = list(open_input("pcap:-"))
    assert len(records_of(batches)) == 1


def test_allow_list_applies_to_the_exporters_of_a_capture(tmp_path, capsys):
    frames = [udp_frame(EXPORTER_A, 50000, m) for m in messages(FIELDS_A, rows_a(2))]
    frames += [udp_frame(EXPORTER_B, 50000, m) for m in messages(FIELDS_A, rows_a(3))]
    path = write_pcap(tmp_path / "two.pcap", frames)
    out = tmp_path / "out.jsonl"
    status = main(["--input", f"pcap:{path}", "--sink", f"jsonl:{out}", "--allow", f"{EXPORTER_B}/32"])
    err = capsys.readouterr().err
    docs = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert status == EXIT_OK
    assert {d["host"] for d in docs} == {EXPORTER_B} and len(docs) == 3
    assert "refused" in err and EXPORTER_A in err


@pytest.mark.parametrize("writer", [write_pcap, write_pcapng])
def test_a_capture_given_as_file_input_suggests_pcap(tmp_path, capsys, writer):
    path = writer(tmp_path / "flows.cap", [udp_frame(EXPORTER_A, 50000, m) for m in messages(FIELDS_A, rows_a(1))])
    status = main(["--input", f"file:{path}", "--sink", f"jsonl:{tmp_path / 'out.jsonl'}"])
    assert status == EXIT_INPUT_ERRORS
    assert f"file:{path}: this is a packet capture, not IPFIX messages: read it with pcap:{path}" \
        in capsys.readouterr().err


def test_an_ipfix_file_given_as_pcap_input_suggests_file(tmp_path, capsys):
    path = tmp_path / "flows.ipfix"
    path.write_bytes(b"".join(messages(FIELDS_A, rows_a(1))))
    status = main(["--input", f"pcap:{path}", "--sink", f"jsonl:{tmp_path / 'out.jsonl'}"])
    assert status == EXIT_INPUT_ERRORS
    assert f"it begins like IPFIX messages, read it with file:{path}" in capsys.readouterr().err
