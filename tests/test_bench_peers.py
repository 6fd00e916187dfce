"""The peer benchmark's own parts: the sender's datagrams, the zero-loss search, the field check.

bench_peers.py measures, it asserts no time; these tests check that what it measures with is
right: that udpsend.c numbers each exporter's messages as RFC 7011 says and refreshes its
templates, that the search converges where the threshold is, and that the Antrea-element check
tells a right value from another value and from a missing name.
"""

from __future__ import annotations

import json
import shutil
import socket
import struct
import subprocess
from collections import defaultdict

import peers
import pytest

from benchmarks.antrea_stream import FA_AGGREGATE_IPV4
from benchmarks.bench_peers import ANTREA_ELEMENTS, antrea_fields, build_udpsend, sent_records
from benchmarks.udp_harness import pool_file, zero_loss_search
from ipfix_antrea import Session


def test_search_ends_within_the_resolution_below_the_threshold():
    tried = []

    def attempt(rate: float) -> bool:
        tried.append(rate)
        return rate <= 10_000

    good, bad = zero_loss_search(attempt, start=2000, max_rate=1e6, min_rate=100, resolution=0.05)
    assert good <= 10_000 < bad
    assert (bad - good) / good <= 0.05
    assert tried[:4] == [2000, 4000, 8000, 16000]


def test_search_halves_when_the_start_rate_fails():
    good, bad = zero_loss_search(lambda rate: rate <= 700, start=4000, max_rate=1e6, min_rate=100,
                                 resolution=0.05)
    assert good <= 700 < bad
    assert (bad - good) / good <= 0.05


def test_field_check_tells_right_from_other_value_from_missing():
    sent = sent_records(5, seed=1)
    out = []
    for record in sent:
        rec = dict(record)
        rec["sourcePodName"] = rec["sourcePodName"].encode().hex()  # named, another rendering
        del rec["clusterId"]  # not there under a name
        rec["flowType"] = str(rec["flowType"])  # integers printed as text still count as right
        out.append(rec)
    result = antrea_fields(iter(out), sent)
    assert result["records_matched"] == 5
    assert set(result["named_wrong_value"]) == {"sourcePodName"}
    assert result["not_named"] == ["clusterId"]
    assert result["named_and_right"] == len(ANTREA_ELEMENTS) - 2


def test_field_check_counts_nothing_right_when_no_record_matches():
    sent = sent_records(3, seed=1)
    result = antrea_fields(iter([{"sourceIPv4Address": "192.0.2.1"}]), sent)
    assert result["records_out"] == 1 and result["records_matched"] == 0
    assert result["named_and_right"] == 0 and len(result["not_named"]) == len(ANTREA_ELEMENTS)


@pytest.fixture(scope="module")
def udpsend(tmp_path_factory) -> str:
    if shutil.which("gcc") is None:
        if peers.peers_required():
            pytest.fail(f"gcc is not installed, and {peers.REQUIRE_ENV} is set", pytrace=False)
        pytest.skip("gcc is not installed")
    return build_udpsend(str(tmp_path_factory.mktemp("build")))


def test_udpsend_numbers_each_exporter_and_refreshes_its_templates(udpsend, tmp_path):
    pool_records = 200
    pool = pool_file(pool_records, seed=1, workdir=str(tmp_path))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        out = subprocess.run([udpsend, "--pool", pool, "--pool-records", str(pool_records), "--dest",
                              f"127.0.0.1:{rx.getsockname()[1]}", "--rate", "20000", "--seconds", "0.05",
                              "--exporters", "2", "--template-every", "10"],
                             capture_output=True, text=True, check=True)
        report = json.loads(out.stdout)
        by_port: dict[int, list[bytes]] = defaultdict(list)
        with pytest.raises(socket.timeout):
            while True:
                data, (_, port) = rx.recvfrom(65535)
                by_port[port].append(data)

    assert sorted(by_port) == sorted(report["source_ports"])
    total = 0
    for port, datagrams in by_port.items():
        session = Session()
        seq = records = 0
        since_template = None
        for data in datagrams:
            assert struct.unpack_from(">I", data, 8)[0] == seq  # data records sent before it
            is_template = struct.unpack_from(">H", data, 16)[0] == 2
            if is_template:
                assert since_template in (None, 10)  # first, then every 10 data messages
                since_template = 0
            else:
                since_template += 1
            decoded = session.decode_datagram(data)
            seq += len(decoded)
            records += len(decoded)
        assert session.stats.sequence_gaps == 0
        assert records == report["per_exporter_records"][report["source_ports"].index(port)]
        total += records
    assert total == report["records"] > 0
    assert report["datagrams"] + report["template_sends"] == sum(map(len, by_port.values()))


def test_udpsend_sends_the_pool_records_in_order(udpsend, tmp_path):
    pool_records = 50
    pool = pool_file(pool_records, seed=3, workdir=str(tmp_path))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rx:
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(2)
        subprocess.run([udpsend, "--pool", pool, "--pool-records", str(pool_records), "--dest",
                        f"127.0.0.1:{rx.getsockname()[1]}", "--rate", "1000", "--seconds", "0.05"],
                       capture_output=True, check=True)
        session = Session()
        got = []
        with pytest.raises(socket.timeout):
            while True:
                got += session.decode_datagram(rx.recv(65535))
    names = [e.name for e in FA_AGGREGATE_IPV4]
    sent = sent_records(pool_records, seed=3)
    assert len(got) >= 40
    for record, want in zip(got, sent, strict=False):
        assert record["sourcePodName"] == want["sourcePodName"]
        assert record["sourceTransportPort"] == want["sourceTransportPort"]
        assert list(record.to_dict())[:len(names)] == names
