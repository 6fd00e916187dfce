"""The collector over real sockets on loopback: UDP, TCP, TLS, mTLS, allow-list, expiry,
backpressure. Each test runs the `Collector` that `ipfix-collect` runs (tests/collector_harness.py)."""

from __future__ import annotations

import os
import resource
import socket
import ssl
import struct
import threading
import time
import warnings

import pytest
import trustme
from collector_harness import MemorySink, RunningCollector, encoder, messages, row
from elasticsearch_server import wait_until

from ipfix_antrea.inputs.udp import HAND_OVER_RECORDS

pytestmark = pytest.mark.timeout(60)


class UdpExporter:
    """One exporter: one socket, so one (address, port) and one session at the collector."""

    def __init__(self, port: int, *, source: str = "127.0.0.1", family=socket.AF_INET,
                 host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))
        self.target = (host, port)

    def send(self, datagrams, *, pace: float = 0.0) -> None:
        for d in datagrams:
            self.sock.sendto(d, self.target)
            if pace:
                time.sleep(pace)


def send_udp(port: int, datagrams, *, pace: float = 0.0, **where) -> None:
    """Sends ``datagrams`` from a new exporter socket."""
    UdpExporter(port, **where).send(datagrams, pace=pace)


def send_tcp(port: int, data: bytes, *, chunk: int | None = None) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        if chunk is None:
            s.sendall(data)
        else:
            for i in range(0, len(data), chunk):
                s.sendall(data[i:i + chunk])


def pods(docs) -> list[str]:
    return sorted(d["ipfix"]["sourcePodName"] for d in docs)


# --------------------------------------------------------------------------------------------
# UDP


def test_udp_records_arrive_with_their_values_and_the_exporter_address():
    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        send_udp(c.port("udp"), messages(30))
        docs = c.sink.wait_for(30)
    first = next(d for d in docs if d["ipfix"]["sourcePodName"].endswith("-0"))
    assert first["host"] == "127.0.0.1"
    assert first["ipfix"]["sourceIPv4Address"] == "10.10.0.0"
    assert first["ipfix"]["octetDeltaCount"] == 1000
    assert first["ipfix"]["flowEndSeconds"] == "2024-05-01T11:59:59Z"


def test_udp_exporters_with_the_same_template_id_keep_their_own_templates():
    # Two exporters use template 256 for different element lists: each must decode with its own.
    a = encoder(fields=["sourceIPv4Address", "octetDeltaCount"])
    b = encoder(fields=["octetDeltaCount", "sourcePodName"])
    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        one = UdpExporter(c.port("udp"), source="127.0.0.2")
        two = UdpExporter(c.port("udp"), source="127.0.0.3")
        one.send(a.template_messages())
        two.send(b.template_messages())
        one.send(a.encode(256, [("10.0.0.1", 11)]))
        two.send(b.encode(256, [(22, "pod-b")]))
        docs = c.sink.wait_for(2)
    by_host = {d["host"]: d["ipfix"] for d in docs}
    assert by_host["127.0.0.2"]["sourceIPv4Address"] == "10.0.0.1"
    assert by_host["127.0.0.3"]["sourcePodName"] == "pod-b"


def test_udp_exporters_share_one_registry_instead_of_a_copy_each():
    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        for source in ("127.0.0.2", "127.0.0.3"):
            send_udp(c.port("udp"), messages(2), source=source)
        c.sink.wait_for(4)
        (listener,) = c.collector.listeners
        sessions = list(listener.sessions().values())
    assert len(sessions) == 2
    assert sessions[0].registry is sessions[1].registry


def test_udp_over_ipv6():
    with RunningCollector(["udp://[::1]:0"]) as c:
        send_udp(c.port("udp"), messages(5), source="::1", family=socket.AF_INET6, host="::1")
        docs = c.sink.wait_for(5)
    assert {d["host"] for d in docs} == {"::1"}


def test_udp_templates_expire_after_the_template_lifetime():
    enc = encoder()
    with RunningCollector(["udp://127.0.0.1:0"], template_lifetime=0.3) as c:
        exporter = UdpExporter(c.port("udp"))
        exporter.send(enc.template_messages())
        exporter.send(enc.encode(256, [row(1)]))
        c.sink.wait_for(1)
        time.sleep(0.6)  # longer than the lifetime: the template is gone
        exporter.send(enc.encode(256, [row(2)]))
        time.sleep(0.3)
        summary = c.stop()
    assert len(c.sink.docs) == 1
    assert summary.counters["templates_expired"] == 1
    assert summary.counters["missing_template_sets"] == 1


def test_udp_garbage_is_counted_and_logged_once_and_other_exporters_are_undisturbed(caplog):
    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        port = c.port("udp")
        send_udp(port, [b"\x00\x09garbage garbage garbage"] * 50, source="127.0.0.9")
        send_udp(port, messages(20), source="127.0.0.2")
        c.sink.wait_for(20)
        time.sleep(0.1)
        summary = c.stop()
    assert summary.counters["malformed_messages"] == 50
    assert summary.problems["malformed message"] == 50
    logged = [r for r in caplog.records if "127.0.0.9" in r.getMessage()
              and "malformed" not in r.getMessage() and "session" not in r.getMessage()]
    lines = [r.getMessage() for r in caplog.records if "version 9 is not IPFIX" in r.getMessage()]
    assert len(lines) == 1 and not logged


def test_udp_drops_are_counted_when_the_queue_is_full_and_nothing_grows():
    sink = MemorySink()
    sink.hold()  # the sink is stuck: the queue fills up
    with RunningCollector(["udp://127.0.0.1:0"], sink, queue_records=50) as c:
        send_udp(c.port("udp"), messages(300), pace=0.001)
        time.sleep(0.3)
        queued = c.collector.pipeline.stats().queued
        sink.release()
        summary = c.stop()
    assert queued <= 50 + HAND_OVER_RECORDS + 10  # capacity, plus at most one batch (an exporter's datagrams)
    assert summary.dropped > 0
    assert summary.records + summary.dropped == 300
    assert len(sink.docs) == summary.records  # everything accepted was delivered


# --------------------------------------------------------------------------------------------
# TCP


def test_tcp_message_split_across_many_small_writes_is_reassembled():
    data = b"".join(messages(40, max_size=65535, per_message=40))
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        send_tcp(c.port("tcp"), data, chunk=7)
        docs = c.sink.wait_for(40)
    assert len(docs) == 40


def test_tcp_several_exporters_at_once_and_one_sending_garbage():
    streams = {f"exp{k}": b"".join(messages(200, domain=k, pod=f"exp{k}")) for k in range(4)}
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        port = c.port("tcp")
        bad = socket.create_connection(("127.0.0.1", port))
        good = [threading.Thread(target=send_tcp, args=(port, s), kwargs={"chunk": 1000})
                for s in streams.values()]
        for t in good:
            t.start()
        bad.sendall(b"\x00\x0a\x00\x20" + b"\x00" * 28 + b"HTTP/1.1 200 OK\r\n\r\n" * 10)
        bad.settimeout(10)
        closed_by_collector = bad.recv(1) == b""
        for t in good:
            t.join()
        docs = c.sink.wait_for(800)
        summary = c.stop()
    assert closed_by_collector
    assert len(docs) == 800
    assert {d["ipfix"]["sourcePodName"].split("-")[0] for d in docs} == set(streams)
    assert summary.problems["stream not IPFIX"] == 1


def test_tcp_backpressure_pauses_reading_and_loses_nothing():
    sink = MemorySink()
    sink.hold()
    data = b"".join(messages(5000, max_size=65535, per_message=100))
    with RunningCollector(["tcp://127.0.0.1:0"], sink, queue_records=200) as c:
        sender = threading.Thread(target=send_tcp, args=(c.port("tcp"), data))
        sender.start()
        time.sleep(0.5)
        accepted = c.collector.pipeline.stats().accepted
        sink.release()
        sender.join(30)
        docs = sink.wait_for(5000)
        summary = c.stop()
    # While the sink was stuck the collector took the queue's worth and a read or two, then
    # stopped reading; afterwards every record arrived.
    assert accepted < 2000
    assert len(docs) == 5000 and summary.dropped == 0


def test_tcp_connection_ending_inside_a_message_is_reported_and_keeps_earlier_records():
    data = b"".join(messages(20, max_size=65535, per_message=10))
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        send_tcp(c.port("tcp"), data[:-50])  # the last message is cut short
        c.sink.wait_for(10)
        time.sleep(0.2)
        summary = c.stop()
    assert len(c.sink.docs) == 10
    assert summary.problems["truncated message"] == 1
    assert summary.counters["malformed_messages"] == 1


def test_tcp_connection_reset_by_the_exporter_is_reported():
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        s = socket.create_connection(("127.0.0.1", c.port("tcp")))
        s.sendall(b"".join(messages(10, max_size=65535)))
        c.sink.wait_for(10)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()  # linger 0: a reset, not a FIN
        time.sleep(0.2)
        summary = c.stop()
    assert len(c.sink.docs) == 10
    assert summary.problems["connection error"] == 1


def test_a_connection_that_cannot_be_accepted_for_want_of_descriptors_waits_and_is_counted():
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        exporter = socket.socket()  # made before the limit: it needs a descriptor of its own
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        lowest_free = os.dup(0)
        os.close(lowest_free)
        resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))  # no new descriptor now
        try:
            exporter.connect(("127.0.0.1", c.port("tcp")))  # the kernel completes it; accept fails
            refused = wait_until(lambda: c.collector.monitor.problems["cannot accept"] == 1)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        exporter.sendall(b"".join(messages(10, max_size=65535)))
        exporter.close()
        docs = c.sink.wait_for(10)  # accepted when the collector tried again
        summary = c.stop()
    assert refused and len(docs) == 10
    assert summary.problems["cannot accept"] == 1


def test_tcp_templates_belong_to_their_connection():
    enc = encoder()
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        port = c.port("tcp")
        send_tcp(port, b"".join(enc.template_messages() + enc.encode(256, [row(1)])))
        c.sink.wait_for(1)
        send_tcp(port, b"".join(enc.encode(256, [row(2)])))  # a new connection without a template
        time.sleep(0.3)
        summary = c.stop()
    assert len(c.sink.docs) == 1
    assert summary.counters["missing_template_sets"] == 1


# --------------------------------------------------------------------------------------------
# TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_files(ca, tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(d / "server.pem"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return d


def tls_client(ca: trustme.CA, client_cert: trustme.LeafCert | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if client_cert is not None:
        client_cert.configure_cert(ctx)
    return ctx


def send_tls(port: int, ctx: ssl.SSLContext, data: bytes) -> None:
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.sendall(data)


def tls_collector(server_files, *, mutual: bool, **kw) -> RunningCollector:
    return RunningCollector(["tls://127.0.0.1:0"], tls_cert=str(server_files / "server.pem"), **kw,
                            tls_client_ca=str(server_files / "ca.pem") if mutual else None)


def test_tls_records_arrive(ca, server_files):
    with tls_collector(server_files, mutual=False) as c:
        send_tls(c.port("tls"), tls_client(ca), b"".join(messages(50, max_size=65535)))
        docs = c.sink.wait_for(50)
    assert len(docs) == 50


def test_tls_exporter_that_never_reads_and_closes_at_once_loses_nothing(ca, server_files):
    # Exporters never read. If the server sent anything after the handshake (TLS 1.3 session
    # tickets), the exporter's close would become a reset and records in flight would be lost.
    data = b"".join(messages(3000, max_size=65535))
    with tls_collector(server_files, mutual=False, queue_records=100) as c:
        c.sink.hold()  # the collector stops reading: the records wait in its receive buffer
        raw = socket.create_connection(("127.0.0.1", c.port("tls")))
        s = tls_client(ca).wrap_socket(raw, server_hostname="127.0.0.1")
        s.sendall(data)
        s.close()
        time.sleep(0.3)
        c.sink.release()
        docs = c.sink.wait_for(3000)
    assert len(docs) == 3000


def test_tls_refuses_tls_1_1(ca, server_files):
    ctx = tls_client(ca)
    ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # let this client offer TLS 1.1 at all
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with tls_collector(server_files, mutual=False) as c:
        with pytest.raises((ssl.SSLError, ConnectionError)):
            send_tls(c.port("tls"), ctx, b"".join(messages(5)))
        time.sleep(0.2)
        summary = c.stop()
    assert summary.problems["tls handshake failed"] == 1  # the server refused it, not the client


def test_mtls_accepts_a_client_certificate_from_the_ca(ca, server_files):
    with tls_collector(server_files, mutual=True) as c:
        send_tls(c.port("tls"), tls_client(ca, ca.issue_cert("flow-aggregator")), b"".join(messages(20)))
        docs = c.sink.wait_for(20)
    assert len(docs) == 20


def _refused(c: RunningCollector, ctx: ssl.SSLContext) -> None:
    # TLS 1.3 finishes the client's side of the handshake before the server checks its
    # certificate: the refusal shows as a closed connection on the first read.
    with socket.create_connection(("127.0.0.1", c.port("tls"))) as raw, \
            ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
        s.settimeout(10)
        with pytest.raises((ssl.SSLError, ConnectionError)):
            s.sendall(b"".join(messages(5)))
            if s.recv(1) == b"":
                raise ConnectionResetError("closed")


def test_tls_handshake_that_never_comes_times_out_and_is_counted(server_files):
    from ipfix_antrea.inputs import parse_input_spec
    from ipfix_antrea.inputs.tcp import TcpListener, tls_server_context

    context = tls_server_context(str(server_files / "server.pem"), None, None)
    listener = TcpListener(parse_input_spec("tls://127.0.0.1:0"), tls=context, handshake_timeout=0.3)
    with RunningCollector([listener]) as c:
        with socket.create_connection(("127.0.0.1", c.port("tls"))) as silent:
            silent.settimeout(10)
            assert silent.recv(1) == b""  # closed by the collector after the timeout
        summary = c.stop()
    assert summary.problems["tls handshake failed"] == 1


def test_mtls_refuses_a_client_without_a_certificate(ca, server_files):
    with tls_collector(server_files, mutual=True) as c:
        _refused(c, tls_client(ca))
        time.sleep(0.2)
        summary = c.stop()
    assert c.sink.docs == []
    assert summary.problems["tls handshake failed"] == 1


def test_mtls_refuses_a_certificate_from_another_ca(ca, server_files):
    stranger = trustme.CA().issue_cert("intruder")
    with tls_collector(server_files, mutual=True) as c:
        _refused(c, tls_client(ca, stranger))
        time.sleep(0.2)
        summary = c.stop()
    assert c.sink.docs == []
    assert summary.problems["tls handshake failed"] == 1


# --------------------------------------------------------------------------------------------
# allow-list


def test_allow_list_drops_udp_from_other_exporters():
    with RunningCollector(["udp://127.0.0.1:0"], allow=["127.0.0.2/32"]) as c:
        port = c.port("udp")
        send_udp(port, messages(10, pod="stranger"), source="127.0.0.3")
        send_udp(port, messages(10, pod="friend"), source="127.0.0.2")
        docs = c.sink.wait_for(10)
        time.sleep(0.2)
        summary = c.stop()
    assert {d["host"] for d in docs} == {"127.0.0.2"} and len(c.sink.docs) == 10
    assert summary.problems["refused"] == 2  # the template message and the data message


def test_allow_list_closes_tcp_connections_from_other_exporters():
    with RunningCollector(["tcp://127.0.0.1:0"], allow=["10.0.0.0/8"]) as c:
        with socket.create_connection(("127.0.0.1", c.port("tcp"))) as s:
            s.settimeout(10)
            assert s.recv(1) == b""  # closed at once
        summary = c.stop()
    assert summary.problems["refused"] == 1 and c.sink.docs == []


# --------------------------------------------------------------------------------------------
# stopping


def test_stop_hands_over_what_connections_already_received():
    sink = MemorySink()
    with (RunningCollector(["tcp://127.0.0.1:0"], sink, flush_interval=3600) as c,
          socket.create_connection(("127.0.0.1", c.port("tcp"))) as s):
        s.sendall(b"".join(messages(100, max_size=65535)))
        time.sleep(0.3)
        summary = c.stop()  # the exporter is still connected
    assert len(sink.docs) == 100 and summary.sinks[0].delivered == 100
    assert sink.closed and sink.flushes >= 1


def test_a_refused_exporter_is_logged_once_however_often_it_reconnects(caplog):
    with RunningCollector(["tcp://127.0.0.1:0"], allow=["10.0.0.0/8"]) as c:
        for _ in range(3):  # each connection comes from a new source port
            with socket.create_connection(("127.0.0.1", c.port("tcp"))) as s:
                s.settimeout(10)
                assert s.recv(1) == b""
        summary = c.stop()
    warnings_ = [r.getMessage() for r in caplog.records if "--allow" in r.getMessage()]
    assert summary.problems["refused"] == 3
    assert len(warnings_) == 1 and warnings_[0].startswith("tcp 127.0.0.1: ")


def test_a_refused_udp_exporter_is_logged_once_from_any_source_port(caplog):
    with RunningCollector(["udp://127.0.0.1:0"], allow=["10.0.0.0/8"]) as c:
        for _ in range(3):  # three sockets: three source ports
            send_udp(c.port("udp"), messages(1)[:1])
        time.sleep(0.2)
        summary = c.stop()
    warnings_ = [r.getMessage() for r in caplog.records if "--allow" in r.getMessage()]
    assert summary.problems["refused"] == 3
    assert len(warnings_) == 1 and warnings_[0].startswith("udp 127.0.0.1: ")


def test_status_line_says_1_exporter_in_the_singular():
    from ipfix_antrea.monitor import StatusLine

    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        send_udp(c.port("udp"), messages(1))
        c.sink.wait_for(1)
        line = c.collector.status_line(StatusLine())
    assert "1 records" not in line and ", 1 exporter," in line


def test_udp_sets_still_waiting_for_their_template_at_stop_are_counted_as_dropped():
    enc = encoder()
    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        send_udp(c.port("udp"), enc.encode(256, [row(1)]))
        time.sleep(0.2)
        summary = c.stop()
    assert summary.counters["missing_template_sets"] == 1
    assert summary.counters["pending_dropped_sets"] == 1


def test_tcp_sets_still_waiting_for_their_template_at_the_end_of_the_connection_are_counted():
    enc = encoder()
    with RunningCollector(["tcp://127.0.0.1:0"]) as c:
        send_tcp(c.port("tcp"), b"".join(enc.encode(256, [row(1)])))
        time.sleep(0.2)
        summary = c.stop()
    assert summary.counters["pending_dropped_sets"] == 1
