"""The Antrea transform: the fields Antrea's Logstash filter.rb derived, corrected.

The golden table gives input records and the derived fields expected of them, written from the
formulas (docs/visualization.md), not from the code's output. Records are real: encoded with the
library's Encoder under Antrea's elements and decoded by a Session, so the transform sees what it
sees in the collector.
"""

from __future__ import annotations

import string
import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ipfix_antrea import Encoder, Session
from ipfix_antrea.documents import AntreaSettings, AntreaTransform, DocumentBuilder, FlowClock, to_document

START = 1_767_225_000  # flowStartSeconds of the flows below
END = START + 60
HOST = "10.0.0.12"

# The value of each element a record below may carry; a record names the ones it has.
DEFAULTS = {
    "flowStartSeconds": START, "flowEndSeconds": END, "flowEndReason": 2,
    "sourceTransportPort": 41234, "destinationTransportPort": 8080, "protocolIdentifier": 6,
    "packetTotalCount": 120, "octetTotalCount": 90_000, "packetDeltaCount": 20, "octetDeltaCount": 15_000,
    "sourceIPv4Address": "10.244.1.5", "destinationIPv4Address": "10.244.2.7",
    "sourceIPv6Address": "fd00:10:244:1::5", "destinationIPv6Address": "fd00:10:244:2::7",
    "reversePacketDeltaCount": 10, "reverseOctetDeltaCount": 3_000,
    "sourcePodName": "frontend-7d9f8b6c5-x2kqp", "sourcePodNamespace": "shop",
    "destinationPodName": "backend-5c8d7b9f4d-abcde", "destinationPodNamespace": "shop",
    "destinationServicePort": 8080, "destinationServicePortName": "shop/backend:http",
    "ingressNetworkPolicyName": "allow-frontend", "ingressNetworkPolicyNamespace": "shop",
    "ingressNetworkPolicyType": 1, "ingressNetworkPolicyRuleAction": 1,
    "egressNetworkPolicyName": "", "egressNetworkPolicyNamespace": "",
    "egressNetworkPolicyType": 0, "egressNetworkPolicyRuleAction": 0,
    "flowType": 2,
    "octetDeltaCountFromSourceNode": 12_000, "reverseOctetDeltaCountFromSourceNode": 2_400,
    "throughput": 1_600, "reverseThroughput": 320,
}
FA = list(DEFAULTS)  # a Flow-Aggregator-like record with all of them


def records(rows: list[dict], *, names: list[str] | None = None, domain: int = 1) -> list:
    """Decoded records of one template with ``names`` (default: the keys of the first row), each
    row's values over DEFAULTS."""
    names = names or list(rows[0])
    enc = Encoder(observation_domain_id=domain, export_time=lambda: END)
    enc.add_template(256, names)
    data = enc.template_messages()
    for row in rows:
        data += enc.encode(256, [tuple({**DEFAULTS, **row}[n] for n in names)])
    return Session().feed(b"".join(data))


def derive(rows: list[dict], names: list[str] | None = None, transform: AntreaTransform | None = None,
           host: str | None = HOST) -> list[dict]:
    builder = DocumentBuilder([transform or AntreaTransform()])
    return [d["ipfix"] for d in builder.build(records(rows, names=names), host)]


def one(names: list[str], **values) -> dict:
    (ipfix,) = derive([values], names)
    return ipfix


def added(names: list[str], **values) -> dict:
    """The fields the transform added or changed, compared with the plain document."""
    (record,) = records([values], names=names)
    plain = to_document(record, HOST)["ipfix"]
    (ipfix,) = [d["ipfix"] for d in DocumentBuilder([AntreaTransform()]).build([record], HOST)]
    return {k: v for k, v in ipfix.items() if plain.get(k, ...) != v}


POD_TO_POD = "frontend-7d9f8b6c5-x2kqp:41234->backend-5c8d7b9f4d-abcde:8080 TCP"


# --------------------------------------------------------------------------------------------
# the golden table

GOLDEN = [
    pytest.param(FA, {}, {
        "bytes": 90_000, "packets": 120,
        "flowTypeStr": "Inter-Node", "flowEndReasonStr": "active timeout", "protocolIdentifierStr": "TCP",
        "ingressNetworkPolicyRuleActionStr": "Allow", "egressNetworkPolicyRuleActionStr": "No Action",
        "ingressNetworkPolicyTypeStr": "K8s NetworkPolicy", "egressNetworkPolicyTypeStr": "N/A",
        "sourceIP": "fd00:10:244:1::5", "destinationIP": "fd00:10:244:2::7",
        "egressNetworkPolicyName": "N/A", "egressNetworkPolicyNamespace": "N/A",
        "destinationServiceName": "shop/backend",
        "flowKey": POD_TO_POD, "flowKeyPodToPod": POD_TO_POD,
        "flowKeyPodToService": "frontend-7d9f8b6c5-x2kqp:41234->shop/backend:http8080 TCP",
        "interval": 60, "throughput": 12_000 // 60, "reverseThroughput": 2_400 // 60,
        "exporterThroughput": 1_600, "exporterReverseThroughput": 320,
    }, id="flow-aggregator-record"),
    pytest.param(["octetDeltaCount", "reverseOctetDeltaCount", "packetDeltaCount", "reversePacketDeltaCount",
                  "sourcePodName"], {},
                 {"bytes": 18_000, "packets": 30}, id="older-record-deltas-forward-plus-reverse"),
    pytest.param(["octetDeltaCount", "packetDeltaCount", "sourcePodName"], {},
                 {"bytes": 15_000, "packets": 20}, id="forward-delta-only"),
    pytest.param(["flowType", "ingressNetworkPolicyRuleAction", "ingressNetworkPolicyType", "flowEndReason",
                  "protocolIdentifier", "sourcePodName"],
                 {"flowType": 9, "ingressNetworkPolicyRuleAction": 7, "ingressNetworkPolicyType": 5,
                  "flowEndReason": 0, "protocolIdentifier": 47},
                 {"flowTypeStr": "Unknown (9)", "ingressNetworkPolicyRuleActionStr": "Unknown (7)",
                  "ingressNetworkPolicyTypeStr": "Unknown (5)", "flowEndReasonStr": "Unknown (0)",
                  "protocolIdentifierStr": "47"}, id="unknown-codes-read-unknown"),
    pytest.param(["protocolIdentifier", "sourcePodName"], {"protocolIdentifier": 58},
                 {"protocolIdentifierStr": "ICMPv6"}, id="icmpv6"),
    pytest.param(["protocolIdentifier", "sourcePodName"], {"protocolIdentifier": 132},
                 {"protocolIdentifierStr": "SCTP"}, id="sctp"),
    pytest.param(["sourceIPv4Address", "destinationIPv4Address", "sourcePodName"], {},
                 {"sourceIP": "10.244.1.5", "destinationIP": "10.244.2.7"}, id="ipv4-only"),
    pytest.param(["sourceIPv4Address", "sourceIPv6Address", "sourcePodName"], {"sourceIPv6Address": "::"},
                 {"sourceIP": "10.244.1.5"}, id="unset-ipv6-next-to-ipv4"),
    pytest.param(["ingressNetworkPolicyName", "ingressNetworkPolicyNamespace", "egressNetworkPolicyName",
                  "egressNetworkPolicyNamespace"],
                 {"ingressNetworkPolicyName": "", "egressNetworkPolicyName": "deny-all",
                  "egressNetworkPolicyNamespace": "shop"},
                 {"ingressNetworkPolicyName": "N/A"}, id="empty-policy-names-only-become-na"),
    pytest.param(["destinationServicePortName", "sourcePodName"], {"destinationServicePortName": "shop/db"},
                 {"destinationServiceName": "shop/db"}, id="service-of-an-unnamed-port"),
    pytest.param(["destinationServicePortName", "sourcePodName"], {"destinationServicePortName": ""},
                 {}, id="no-service"),
    pytest.param(["sourcePodName", "sourceTransportPort", "destinationTransportPort", "protocolIdentifier",
                  "destinationIPv4Address", "flowType", "destinationPodName"],
                 {"flowType": 3, "destinationPodName": "", "destinationIPv4Address": "93.184.216.34",
                  "protocolIdentifier": 17},
                 {"flowTypeStr": "To External", "protocolIdentifierStr": "UDP", "destinationIP": "93.184.216.34",
                  "flowKey": "frontend-7d9f8b6c5-x2kqp:41234->93.184.216.34:8080 UDP",
                  "flowKeyPodToExternal": "frontend-7d9f8b6c5-x2kqp:41234->93.184.216.34:8080 UDP"},
                 id="pod-to-external"),
    pytest.param(["sourcePodName", "sourceTransportPort", "destinationTransportPort", "protocolIdentifier",
                  "destinationPodName"], {"protocolIdentifier": 1},
                 {"protocolIdentifierStr": "ICMP",
                  "flowKey": "frontend-7d9f8b6c5-x2kqp:41234->backend-5c8d7b9f4d-abcde:8080 1",
                  "flowKeyPodToPod": "frontend-7d9f8b6c5-x2kqp:41234->backend-5c8d7b9f4d-abcde:8080 1"},
                 id="flow-key-protocol-as-filter-rb-wrote-it"),
    pytest.param(FA, {"sourcePodName": "", "flowType": 4},
                 {"bytes": 90_000, "packets": 120, "flowTypeStr": "From External", "flowEndReasonStr": "active timeout",
                  "protocolIdentifierStr": "TCP", "ingressNetworkPolicyRuleActionStr": "Allow",
                  "egressNetworkPolicyRuleActionStr": "No Action", "ingressNetworkPolicyTypeStr": "K8s NetworkPolicy",
                  "egressNetworkPolicyTypeStr": "N/A", "sourceIP": "fd00:10:244:1::5",
                  "destinationIP": "fd00:10:244:2::7", "egressNetworkPolicyName": "N/A",
                  "egressNetworkPolicyNamespace": "N/A", "destinationServiceName": "shop/backend",
                  "exporterThroughput": 1_600, "exporterReverseThroughput": 320},
                 id="no-source-pod-no-keys-no-throughput"),
]


@pytest.mark.parametrize(("names", "values", "expected"), GOLDEN)
def test_golden_derived_fields(names, values, expected):
    assert added(names, **values) == expected


def test_the_exporters_bits_per_second_leave_throughput_when_there_is_no_flow_key():
    ipfix = one(FA, sourcePodName="")
    assert "throughput" not in ipfix and "reverseThroughput" not in ipfix
    assert (ipfix["exporterThroughput"], ipfix["exporterReverseThroughput"]) == (1_600, 320)


def test_protocol_identifier_stays_numeric():
    assert one(FA)["protocolIdentifier"] == 6


def test_router_ipfix_without_antrea_elements_is_left_exactly_as_it_was():
    names = ["sourceIPv4Address", "destinationIPv4Address", "sourceTransportPort", "destinationTransportPort",
             "protocolIdentifier", "octetDeltaCount", "packetDeltaCount", "flowStartSeconds", "flowEndSeconds"]
    (record,) = records([{}], names=names)
    assert DocumentBuilder([AntreaTransform()]).build([record], HOST) == [to_document(record, HOST)]


def test_legacy_55829_records_are_enriched_too():
    from ipfix_antrea import default_registry

    registry = default_registry()
    legacy_pod = registry.get(55829, 101)
    enc = Encoder(observation_domain_id=1, export_time=lambda: END, registry=registry)
    enc.add_template(256, ["octetTotalCount", legacy_pod])
    (record,) = Session().feed(b"".join(enc.template_messages() + enc.encode(256, [(5, "pod-a")])))
    (doc,) = DocumentBuilder([AntreaTransform()]).build([record])
    assert doc["ipfix"]["bytes"] == 5


def test_an_element_of_an_unexpected_length_counts_as_absent():
    from ipfix_antrea import default_registry

    enc = Encoder(observation_domain_id=1, export_time=lambda: END)
    enc.add_template(256, ["sourcePodName", ("flowType", 3)])  # unsigned8 in three octets: octets
    data = b"".join(enc.template_messages()) + _data_message(b"\x05pod-a" + b"\x00\x00\x02")
    (record,) = Session(registry=default_registry()).feed(data)
    (doc,) = DocumentBuilder([AntreaTransform()]).build([record])
    assert "flowTypeStr" not in doc["ipfix"]


def _data_message(record: bytes) -> bytes:
    body = (256).to_bytes(2, "big") + (4 + len(record)).to_bytes(2, "big") + record
    return (10).to_bytes(2, "big") + (16 + len(body)).to_bytes(2, "big") + END.to_bytes(4, "big") \
        + (0).to_bytes(4, "big") + (1).to_bytes(4, "big") + body


# --------------------------------------------------------------------------------------------
# throughput over time

FLOW = ["flowStartSeconds", "flowEndSeconds", "sourcePodName", "sourcePodNamespace", "sourceTransportPort",
        "destinationTransportPort", "protocolIdentifier", "destinationPodName", "flowType",
        "octetDeltaCountFromSourceNode", "reverseOctetDeltaCountFromSourceNode"]


def rates(rows: list[dict], **kwargs) -> list[tuple[int, int, int]]:
    return [(d["interval"], d["throughput"], d["reverseThroughput"]) for d in derive(rows, FLOW, **kwargs)]


def test_first_record_rate_is_over_the_time_since_the_flow_started():
    assert rates([{"flowEndSeconds": START + 30, "octetDeltaCountFromSourceNode": 3_000}])[0][:2] == (30, 100)


def test_later_records_rate_is_over_the_time_since_the_flows_previous_record():
    got = rates([{"flowEndSeconds": START + 60, "octetDeltaCountFromSourceNode": 6_000},
                 {"flowEndSeconds": START + 120, "octetDeltaCountFromSourceNode": 1_200},
                 {"flowEndSeconds": START + 150, "octetDeltaCountFromSourceNode": 900}])
    assert [(i, t) for i, t, _ in got] == [(60, 100), (60, 20), (30, 30)]


def test_interval_is_at_least_one_second():
    got = rates([{"flowEndSeconds": START, "octetDeltaCountFromSourceNode": 500},
                 {"flowEndSeconds": START, "octetDeltaCountFromSourceNode": 700}])
    assert [(i, t) for i, t, _ in got] == [(1, 500), (1, 700)]


def test_reverse_throughput_uses_the_reverse_delta():
    assert rates([{"reverseOctetDeltaCountFromSourceNode": 6_000}])[0][2] == 100


def test_a_record_out_of_order_does_not_move_the_flows_time_back():
    got = rates([{"flowEndSeconds": START + 100}, {"flowEndSeconds": START + 50},
                 {"flowEndSeconds": START + 130}])
    assert [i for i, _, _ in got] == [100, 1, 30]


def test_a_new_connection_with_the_same_key_counts_from_its_own_start():
    got = rates([{"flowEndSeconds": START + 60},
                 {"flowStartSeconds": START + 70, "flowEndSeconds": START + 80}])
    assert [i for i, _, _ in got] == [60, 10]


def test_a_flow_silent_longer_than_the_idle_timeout_starts_over():
    transform = AntreaTransform(AntreaSettings(idle_timeout=90))
    got = rates([{"flowEndSeconds": START + 60}, {"flowEndSeconds": START + 200}], transform=transform)
    assert [i for i, _, _ in got] == [60, 200]


def test_exporters_keep_separate_state_for_the_same_flow_key():
    transform = AntreaTransform()
    builder = DocumentBuilder([transform])
    first = records([{"flowEndSeconds": START + 60}], names=FLOW)
    second = records([{"flowEndSeconds": START + 90}], names=FLOW)
    builder.build(first, "10.0.0.1")
    (doc,) = builder.build(second, "10.0.0.2")
    assert doc["ipfix"]["interval"] == 90  # a first record for the second exporter


def test_observation_domains_keep_separate_state_for_the_same_flow_key():
    builder = DocumentBuilder([AntreaTransform()])
    builder.build(records([{"flowEndSeconds": START + 60}], names=FLOW, domain=1), HOST)
    (doc,) = builder.build(records([{"flowEndSeconds": START + 90}], names=FLOW, domain=2), HOST)
    assert doc["ipfix"]["interval"] == 90


def test_records_without_a_source_pod_keep_no_state():
    transform = AntreaTransform()
    derive([{"sourcePodName": ""}] * 3, FLOW, transform=transform)
    assert len(transform.clock) == 0


# --------------------------------------------------------------------------------------------
# the flow clock


def test_clock_forgets_the_least_recently_reported_flow_over_its_cap():
    clock = FlowClock(max_flows=2, idle_timeout=1e9)
    clock.interval("a", 0, 10)
    clock.interval("b", 0, 20)
    clock.interval("a", 0, 30)  # a reported again: b is now the oldest
    clock.interval("c", 0, 40)
    assert len(clock) == 2
    assert clock.interval("a", 0, 50) == 20  # a remembered
    assert clock.interval("b", 0, 60) == 60  # b forgotten: first record again


def test_clock_expires_flows_silent_for_longer_than_the_idle_timeout():
    clock = FlowClock(max_flows=100, idle_timeout=60)
    clock.interval("old", 0, 100)
    clock.interval("new", 0, 161)
    assert len(clock) == 1


def test_clock_refuses_a_cap_below_one():
    with pytest.raises(ValueError):
        FlowClock(max_flows=0)


def test_clock_is_consistent_when_threads_share_it():
    clock = FlowClock(max_flows=10_000, idle_timeout=1e9)
    errors: list[BaseException] = []

    def report(worker: int) -> None:
        try:
            for t in range(1, 2_001):
                clock.interval(("shared", t % 50), 0, t)
                clock.interval((worker, t % 50), 0, t)
        except BaseException as exc:  # noqa: BLE001 - the assertion below reports it
            errors.append(exc)

    threads = [threading.Thread(target=report, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(clock) == 50 + 4 * 50
    assert clock.interval(("shared", 0), 0, 3_000) == 3_000 - 2_000  # its last end was 2000


# --------------------------------------------------------------------------------------------
# properties

names = st.text(string.ascii_lowercase + string.digits + "-.", min_size=0, max_size=30)
counters = st.integers(min_value=0, max_value=2**64 - 1)


@given(st.lists(st.fixed_dictionaries({
    "sourcePodName": names, "destinationPodName": names, "destinationServicePortName": names,
    "sourceTransportPort": st.integers(0, 65535), "destinationTransportPort": st.integers(0, 65535),
    "protocolIdentifier": st.integers(0, 255), "flowType": st.integers(0, 255),
    "octetTotalCount": counters, "packetTotalCount": counters,
    "octetDeltaCountFromSourceNode": counters, "reverseOctetDeltaCountFromSourceNode": counters,
    "flowStartSeconds": st.integers(START - 10_000, START),
    "flowEndSeconds": st.integers(START - 10_000, START + 10_000),
}), min_size=1, max_size=20))
@settings(deadline=None, max_examples=100)
def test_derived_values_are_well_formed_for_any_record(rows):
    fields = [*rows[0], "destinationIPv4Address", "destinationServicePort", "sourcePodNamespace"]
    for row, ipfix in zip(rows, derive(rows, fields), strict=True):
        assert ipfix["bytes"] >= 0 and ipfix["packets"] >= 0
        proto = {6: "TCP", 17: "UDP"}.get(row["protocolIdentifier"], str(row["protocolIdentifier"]))
        head = f"{row['sourcePodName']}:{row['sourceTransportPort']}->"
        if not row["sourcePodName"]:
            assert not {"flowKey", "flowKeyPodToPod", "flowKeyPodToExternal", "throughput"} & set(ipfix)
            continue
        dest = "10.244.2.7" if row["flowType"] == 3 else row["destinationPodName"]
        assert ipfix["flowKey"] == f"{head}{dest}:{row['destinationTransportPort']} {proto}"
        if row["destinationServicePortName"]:
            assert ipfix["flowKeyPodToService"] == f"{head}{row['destinationServicePortName']}8080 {proto}"
        assert ipfix["interval"] >= 1 and ipfix["throughput"] >= 0 and ipfix["reverseThroughput"] >= 0


@given(st.integers(1, 8), st.lists(st.tuples(st.integers(0, 30), st.integers(0, 500)), max_size=200))
@settings(deadline=None, max_examples=100)
def test_clock_state_never_exceeds_its_cap(cap, reports):
    clock = FlowClock(max_flows=cap, idle_timeout=100)
    for flow, end in reports:
        assert clock.interval(flow, 0, end) >= 1
        assert len(clock) <= cap
