"""A deterministic IPFIX stream shaped like Antrea's Flow Aggregator output.

The template is the Flow Aggregator's IPv4 template at Antrea HEAD in Aggregate mode (the default)
with the default record contents (Kubernetes names on, UIDs off): 70 information elements in the
order the Flow Aggregator's IPFIX exporter writes them (antrea-io/antrea,
`pkg/flowaggregator/infoelements/elements.go` and `pkg/flowaggregator/exporter/ipfix.go`).
`FA_AGGREGATE_IPV4` below is the only place that order is written down.

Record values are made up but shaped like a real cluster's: Deployment Pods with ReplicaSet-hash
names of about 40 characters, namespaces of about 10, Node names of about 20, Services with named
ports, label JSON, policy names on some flows, a cluster UUID. They come from a seeded
`random.Random`, so a given (n_records, seed) always yields the same records and the same bytes.
The addresses are data values only: nothing here touches a network.

The FA always sends an IPv6 template too (id 257, `FA_AGGREGATE_IPV6`: the same list with the IPv6
address pair and the IPv6 trio). `fa_records(..., ipv6_share=...)` gives that share of the records
IPv6 addresses (the same cluster, numbered in fd00::/8 instead of 10.0.0.0/8).

The records are encoded with the library's own `Encoder`, packed like the Flow Aggregator's buffered
exporter (go-ipfix `BufferedIPFIXExporter`) does: one buffer per template, filled with records up to
the maximum message size (65535 for TCP; `UDP_MESSAGE_SIZE` for a 1500-byte-MTU UDP path), so every
message holds one data set. The templates come first, one message each (as go-ipfix sends them),
and, for a UDP exporter, again after every `template_every` data messages (RFC 7011 §8.4: UDP
exporters must re-send their templates; go-ipfix does it on a timer, routers every N packets).

`SHAPES` names the message shapes the benchmarks measure, from the friendliest (65535-octet
messages, templates once) to what a UDP exporter sends (messages of at most 1400 octets holding
two records, templates re-sent every few dozen messages, IPv4 and IPv6 mixed).

Importable by tests and benchmarks (`fa_template_fields()`, `fa_records()`, `fa_messages()`,
`shape_messages()`), and runnable to write a stream to a file:

    python benchmarks/antrea_stream.py --records 1000 --out fa.ipfix
    python benchmarks/antrea_stream.py --records 1000 --shape udp-mixed --out fa-udp.ipfix
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import random
import uuid
from typing import NamedTuple

__all__ = [
    "ANTREA_PEN",
    "EXPORT_TIME",
    "FA_AGGREGATE_IPV4",
    "FA_AGGREGATE_IPV6",
    "FA_TEMPLATE_ID",
    "FA_TEMPLATE_ID_IPV6",
    "FA_TEMPLATES",
    "REVERSE_PEN",
    "SHAPES",
    "TCP_MESSAGE_SIZE",
    "UDP_MESSAGE_SIZE",
    "UDP_SMALL_MESSAGE_SIZE",
    "Element",
    "Flow",
    "Shape",
    "add_shape_arguments",
    "chosen_shapes",
    "cluster_id",
    "fa_flows",
    "fa_messages",
    "fa_records",
    "fa_stream",
    "fa_template_elements",
    "fa_template_fields",
    "fnv1_32",
    "shape_messages",
]

ANTREA_PEN = 56506  # IANA-assigned to Antrea (antrea-facts 1.1)
REVERSE_PEN = 29305  # RFC 5103 reverse information elements
FA_TEMPLATE_ID = 256  # the FA's IPv4 template id (antrea-facts 2.2)
FA_TEMPLATE_ID_IPV6 = 257  # the FA's IPv6 template id: it always sends both (antrea-facts 2.2)
TCP_MESSAGE_SIZE = 65535  # RFC 7011 maximum message size; the FA's TCP cap
UDP_MESSAGE_SIZE = 1472  # 1500-byte MTU - 20 (IPv4) - 8 (UDP)
UDP_SMALL_MESSAGE_SIZE = 1400  # what UDP exporters configure to leave room for tunnels
EXPORT_TIME = 1_767_225_600  # 2026-01-01T00:00:00Z: fixed, so streams are byte-for-byte stable


class Element(NamedTuple):
    name: str
    enterprise: int
    element_id: int
    data_type: str


_E = Element
_A = ANTREA_PEN
_R = REVERSE_PEN

# Flow Aggregator HEAD, Aggregate mode, IPv4, includeK8sNames=true, includeK8sUIDs=false.
FA_AGGREGATE_IPV4: tuple[Element, ...] = (
    # 1. common IANA prefix, then the IPv4 address pair
    _E("flowStartSeconds", 0, 150, "dateTimeSeconds"),
    _E("flowEndSeconds", 0, 151, "dateTimeSeconds"),
    _E("flowEndReason", 0, 136, "unsigned8"),
    _E("sourceTransportPort", 0, 7, "unsigned16"),
    _E("destinationTransportPort", 0, 11, "unsigned16"),
    _E("protocolIdentifier", 0, 4, "unsigned8"),
    _E("packetTotalCount", 0, 86, "unsigned64"),
    _E("octetTotalCount", 0, 85, "unsigned64"),
    _E("packetDeltaCount", 0, 2, "unsigned64"),
    _E("octetDeltaCount", 0, 1, "unsigned64"),
    _E("sourceIPv4Address", 0, 8, "ipv4Address"),
    _E("destinationIPv4Address", 0, 12, "ipv4Address"),
    # the 4 RFC 5103 reverse counters Antrea sends
    _E("reversePacketTotalCount", _R, 86, "unsigned64"),
    _E("reverseOctetTotalCount", _R, 85, "unsigned64"),
    _E("reversePacketDeltaCount", _R, 2, "unsigned64"),
    _E("reverseOctetDeltaCount", _R, 1, "unsigned64"),
    # 2. Antrea elements (the Agent's HEAD list), then the FA's order of the IPv4 trio
    _E("sourcePodName", _A, 101, "string"),
    _E("sourcePodNamespace", _A, 100, "string"),
    _E("sourceNodeName", _A, 104, "string"),
    _E("destinationPodName", _A, 103, "string"),
    _E("destinationPodNamespace", _A, 102, "string"),
    _E("destinationNodeName", _A, 105, "string"),
    _E("destinationServicePort", _A, 108, "unsigned16"),
    _E("destinationServicePortName", _A, 109, "string"),
    _E("ingressNetworkPolicyName", _A, 110, "string"),
    _E("ingressNetworkPolicyNamespace", _A, 111, "string"),
    _E("ingressNetworkPolicyType", _A, 115, "unsigned8"),
    _E("ingressNetworkPolicyRuleName", _A, 141, "string"),
    _E("ingressNetworkPolicyRuleAction", _A, 139, "unsigned8"),
    _E("egressNetworkPolicyName", _A, 112, "string"),
    _E("egressNetworkPolicyNamespace", _A, 113, "string"),
    _E("egressNetworkPolicyType", _A, 118, "unsigned8"),
    _E("egressNetworkPolicyRuleName", _A, 142, "string"),
    _E("egressNetworkPolicyRuleAction", _A, 140, "unsigned8"),
    _E("tcpState", _A, 136, "string"),
    _E("flowType", _A, 137, "unsigned8"),
    _E("egressName", _A, 153, "string"),
    _E("egressIP", _A, 154, "string"),
    _E("egressNodeName", _A, 157, "string"),
    _E("proxySnatPort", _A, 172, "unsigned16"),
    _E("proxySnatIPv4", _A, 170, "ipv4Address"),
    _E("destinationClusterIPv4", _A, 106, "ipv4Address"),
    _E("destinationServiceIPv4", _A, 168, "ipv4Address"),
    # 3. Aggregate mode: the 16 per-Node counters, source/destination interleaved
    _E("octetDeltaCountFromSourceNode", _A, 123, "unsigned64"),
    _E("octetDeltaCountFromDestinationNode", _A, 131, "unsigned64"),
    _E("octetTotalCountFromSourceNode", _A, 121, "unsigned64"),
    _E("octetTotalCountFromDestinationNode", _A, 129, "unsigned64"),
    _E("packetDeltaCountFromSourceNode", _A, 122, "unsigned64"),
    _E("packetDeltaCountFromDestinationNode", _A, 130, "unsigned64"),
    _E("packetTotalCountFromSourceNode", _A, 120, "unsigned64"),
    _E("packetTotalCountFromDestinationNode", _A, 128, "unsigned64"),
    _E("reverseOctetDeltaCountFromSourceNode", _A, 127, "unsigned64"),
    _E("reverseOctetDeltaCountFromDestinationNode", _A, 135, "unsigned64"),
    _E("reverseOctetTotalCountFromSourceNode", _A, 125, "unsigned64"),
    _E("reverseOctetTotalCountFromDestinationNode", _A, 133, "unsigned64"),
    _E("reversePacketDeltaCountFromSourceNode", _A, 126, "unsigned64"),
    _E("reversePacketDeltaCountFromDestinationNode", _A, 134, "unsigned64"),
    _E("reversePacketTotalCountFromSourceNode", _A, 124, "unsigned64"),
    _E("reversePacketTotalCountFromDestinationNode", _A, 132, "unsigned64"),
    _E("flowEndSecondsFromSourceNode", _A, 151, "dateTimeSeconds"),
    _E("flowEndSecondsFromDestinationNode", _A, 152, "dateTimeSeconds"),
    _E("throughput", _A, 145, "unsigned64"),
    _E("throughputFromSourceNode", _A, 147, "unsigned64"),
    _E("throughputFromDestinationNode", _A, 148, "unsigned64"),
    _E("reverseThroughput", _A, 146, "unsigned64"),
    _E("reverseThroughputFromSourceNode", _A, 149, "unsigned64"),
    _E("reverseThroughputFromDestinationNode", _A, 150, "unsigned64"),
    # 4. always present at HEAD
    _E("sourcePodLabels", _A, 143, "string"),
    _E("destinationPodLabels", _A, 144, "string"),
    _E("clusterId", _A, 158, "string"),
)
del _E, _A, _R

assert len(FA_AGGREGATE_IPV4) == 70
assert len({e.name for e in FA_AGGREGATE_IPV4}) == 70

# The IPv6 template is the IPv4 one with each IPv4 address element replaced, in place, by its
# IPv6 counterpart (antrea-facts 1.4: the address pair after the IANA counters, the trio at the
# end of the Antrea part).
_IPV6_OF = {
    "sourceIPv4Address": Element("sourceIPv6Address", 0, 27, "ipv6Address"),
    "destinationIPv4Address": Element("destinationIPv6Address", 0, 28, "ipv6Address"),
    "proxySnatIPv4": Element("proxySnatIPv6", ANTREA_PEN, 171, "ipv6Address"),
    "destinationClusterIPv4": Element("destinationClusterIPv6", ANTREA_PEN, 107, "ipv6Address"),
    "destinationServiceIPv4": Element("destinationServiceIPv6", ANTREA_PEN, 169, "ipv6Address"),
}
FA_AGGREGATE_IPV6: tuple[Element, ...] = tuple(_IPV6_OF.get(e.name, e) for e in FA_AGGREGATE_IPV4)
assert sum(e.data_type == "ipv6Address" for e in FA_AGGREGATE_IPV6) == len(_IPV6_OF)
#: template id -> its elements, in wire order
FA_TEMPLATES: dict[int, tuple[Element, ...]] = {FA_TEMPLATE_ID: FA_AGGREGATE_IPV4,
                                                FA_TEMPLATE_ID_IPV6: FA_AGGREGATE_IPV6}


def fa_template_elements(ipv6: bool = False) -> list[Element]:
    """The 70 elements of the IPv4 (or IPv6) template, in wire order, with their numbers and types."""
    return list(FA_AGGREGATE_IPV6 if ipv6 else FA_AGGREGATE_IPV4)


def fa_template_fields(ipv6: bool = False) -> list[str]:
    """The 70 element names of the IPv4 (or IPv6) template, in wire order (what
    `Encoder.add_template` takes)."""
    return [e.name for e in fa_template_elements(ipv6)]


def fnv1_32(data: bytes) -> int:
    """32-bit FNV-1 (not 1a), as Go's hash/fnv.New32: the FA derives its ODID from the cluster UUID."""
    h = 0x811C9DC5
    for b in data:
        h = (h * 0x01000193) & 0xFFFFFFFF
        h ^= b
    return h


# --- the made-up cluster -----------------------------------------------------------------------

# (namespace, Deployment/Service name, container port, Service port name or "")
_WORKLOADS = (
    ("storefront", "frontend-web-storefront", 8080, "http"),
    ("storefront", "recommendation-engine-v2", 8080, "http"),
    ("storefront", "ad-service-backend-api", 9555, "grpc"),
    ("payments", "checkout-payment-gateway", 8443, "https"),
    ("payments", "currency-converter-api", 7000, "grpc"),
    ("catalog-ns", "product-catalog-service", 3550, "grpc"),
    ("catalog-ns", "inventory-sync-consumer", 8080, ""),
    ("shipping", "shipping-quote-calculator", 50051, "grpc"),
    ("shipping", "order-processing-worker", 8080, "http"),
    ("identity", "user-session-cache-redis", 6379, "redis"),
    ("identity", "account-profile-postgres", 5432, "postgres"),
    ("monitoring", "prometheus-node-exporter", 9100, "metrics"),
    ("kube-system", "coredns-cluster-resolver", 53, "dns"),
    ("notify-svc", "notification-dispatcher", 8080, "http"),
)
_HASH_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # Kubernetes' SafeEncodeString alphabet
_N_NODES = 12
_TCP_STATES = ("ESTABLISHED", "ESTABLISHED", "ESTABLISHED", "TIME_WAIT")
# (policy name, policy namespace, type, rule name): type 1 = K8s NetworkPolicy (no rule names),
# 2 = Antrea NetworkPolicy, 3 = Antrea ClusterNetworkPolicy (no namespace)
_POLICIES = (
    ("allow-frontend-to-backends", "storefront", 1, ""),
    ("payments-ingress-allowlist", "payments", 2, "allow-checkout-https"),
    ("default-deny-cross-namespace", "", 3, "ingress-from-same-ns"),
    ("catalog-readers", "catalog-ns", 1, ""),
    ("egress-to-identity-stores", "identity", 2, "allow-db-clients"),
)


class _Pod(NamedTuple):
    name: str
    namespace: str
    node: int
    ip: str
    labels: str


class _Cluster:
    def __init__(self, rng: random.Random) -> None:
        self.cluster_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        self.nodes = [f"prod-worker-pool-{'abc'[i % 3]}-{i:03d}" for i in range(_N_NODES)]
        self.services = []  # (namespace, name, cluster IP, port, port-name text, backend pods)
        self.pods: list[_Pod] = []
        host = [2] * _N_NODES
        for w, (ns, app, port, port_name) in enumerate(_WORKLOADS):
            rs_hash = "".join(rng.choice(_HASH_ALPHABET) for _ in range(rng.choice((9, 10))))
            labels = {"app": app, "pod-template-hash": rs_hash}
            if rng.random() < 0.5:
                labels["tier"] = rng.choice(("web", "backend", "data"))
            if rng.random() < 0.5:
                labels["version"] = f"v{rng.randint(1, 4)}.{rng.randint(0, 20)}.{rng.randint(0, 9)}"
            label_json = json.dumps(labels, sort_keys=True, separators=(",", ":"))
            backends = []
            for _ in range(rng.randint(2, 5)):
                node = rng.randrange(_N_NODES)
                suffix = "".join(rng.choice(_HASH_ALPHABET) for _ in range(5))
                pod = _Pod(f"{app}-{rs_hash}-{suffix}", ns, node, f"10.244.{node}.{host[node]}", label_json)
                host[node] += 1
                backends.append(pod)
                self.pods.append(pod)
            svc_port_name = f"{ns}/{app}:{port_name}" if port_name else f"{ns}/{app}"
            self.services.append((ns, app, f"10.96.{w // 8}.{10 + w * 7}", port, svc_port_name, backends))


class Flow(NamedTuple):
    """One record and the template it goes out with."""

    template_id: int
    values: tuple


def fa_flows(n_records: int, seed: int = 1, *, ipv6_share: float = 0.0,
             pod_labels: bool = True) -> list[Flow]:
    """`n_records` Flow Aggregator records with their template ids.

    ``ipv6_share`` of them (drawn from a random stream of their own, so the IPv4 records stay
    those of `fa_records`) carry IPv6 addresses and go out with the IPv6 template.
    ``pod_labels=False`` empties the two label strings, as the FA's default record contents do
    (`recordContents.podLabels: false`).
    """
    records = fa_records(n_records, seed)
    if not pod_labels:
        at = [i for i, e in enumerate(FA_AGGREGATE_IPV4) if e.name.endswith("PodLabels")]
        records = [tuple("" if i in at else v for i, v in enumerate(r)) for r in records]
    if not ipv6_share:
        return [Flow(FA_TEMPLATE_ID, r) for r in records]
    family = random.Random(f"ipv6-{seed}")
    return [Flow(FA_TEMPLATE_ID_IPV6, _as_ipv6(r)) if family.random() < ipv6_share
            else Flow(FA_TEMPLATE_ID, r) for r in records]


# The fields whose values become IPv6 addresses in an IPv6 record: the template's addresses and
# the egress IP (a string element).
_IPV6_AT = tuple(i for i, e in enumerate(FA_AGGREGATE_IPV4) if e.name in _IPV6_OF or e.name == "egressIP")


def _as_ipv6(record: tuple) -> tuple:
    values = list(record)
    for i in _IPV6_AT:
        values[i] = _ipv6_of(values[i])
    return tuple(values)


def _ipv6_of(address: str) -> str:
    """The cluster's IPv6 address for one of its IPv4 addresses: 10.244.3.7 -> fd00:10:244:3::7
    (canonical text); the unset 0.0.0.0 -> ::, as the FA sends it; an empty string stays empty."""
    if not address:
        return address
    if address == "0.0.0.0":
        return "::"
    a, b, c, d = address.split(".")
    return str(ipaddress.IPv6Address(f"fd00:{a}:{b}:{c}::{d}"))


def fa_records(n_records: int, seed: int = 1) -> list[tuple]:
    """`n_records` Flow Aggregator records as tuples in template order (`fa_template_fields()`).

    Values are Python values as the library's `Encoder` takes them: ints (timestamps as seconds
    since 1970), str for addresses and strings.
    """
    rng = random.Random(seed)
    cluster = _Cluster(rng)
    nodes = cluster.nodes
    pods = cluster.pods
    services = cluster.services
    records = []
    for _ in range(n_records):
        src = rng.choice(pods)
        kind = rng.random()
        if kind < 0.6:  # Pod to Service
            _ns, _app, cluster_ip, port, port_name, backends = rng.choice(services)
            dst = rng.choice(backends)
            dst_ip, dst_port, svc_port, svc_port_name, svc_ip = dst.ip, port, port, port_name, cluster_ip
            dst_name, dst_ns, dst_node, dst_labels = dst.name, dst.namespace, nodes[dst.node], dst.labels
            flow_type = 1 if dst.node == src.node else 2
            proto = 17 if port == 53 else 6
        elif kind < 0.85:  # Pod to Pod
            dst = rng.choice(pods)
            dst_ip, dst_port, svc_port, svc_port_name, svc_ip = dst.ip, rng.choice((8080, 9090, 443)), 0, "", "0.0.0.0"
            dst_name, dst_ns, dst_node, dst_labels = dst.name, dst.namespace, nodes[dst.node], dst.labels
            flow_type = 1 if dst.node == src.node else 2
            proto = 6
        else:  # Pod to external
            dst_ip = f"10.{rng.randint(100, 120)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
            dst_port, svc_port, svc_port_name, svc_ip = rng.choice((443, 443, 80, 5432)), 0, "", "0.0.0.0"
            dst_name = dst_ns = dst_node = dst_labels = ""
            flow_type = 3
            proto = 6
        if rng.random() < 0.55:
            in_pol, in_ns, in_type, in_rule = rng.choice(_POLICIES)
            in_action = 1
        else:
            in_pol, in_ns, in_type, in_rule, in_action = "", "", 0, "", 0
        if rng.random() < 0.3:
            eg_pol, eg_ns, eg_type, eg_rule = rng.choice(_POLICIES)
            eg_action = 1
        else:
            eg_pol, eg_ns, eg_type, eg_rule, eg_action = "", "", 0, "", 0
        if flow_type == 3 and rng.random() < 0.5:
            egress_name, egress_ip, egress_node = "egress-prod-static", "10.10.0.5", nodes[0]
        else:
            egress_name = egress_ip = egress_node = ""

        end = EXPORT_TIME - rng.randint(0, 59)
        start = end - rng.randint(1, 3600)
        interval = rng.randint(1, 60)
        pkts = rng.randint(10, 2_000_000)
        octs = pkts * rng.randint(60, 1400)
        rpkts = rng.randint(5, 2_000_000)
        rocts = rpkts * rng.randint(60, 1400)
        dpkts = rng.randint(0, min(pkts, 50_000))
        docts = dpkts * rng.randint(60, 1400)
        rdpkts = rng.randint(0, min(rpkts, 50_000))
        rdocts = rdpkts * rng.randint(60, 1400)
        if proto == 6:
            tcp_state = rng.choice(_TCP_STATES)
            flow_end_reason = 3 if tcp_state == "TIME_WAIT" else 2
        else:
            tcp_state, flow_end_reason = "", rng.choice((1, 2))
        thr = docts * 8 // interval
        rthr = rdocts * 8 // interval
        records.append((
            start, end, flow_end_reason, rng.randint(32768, 60999), dst_port, proto,
            pkts, octs, dpkts, docts, src.ip, dst_ip,
            rpkts, rocts, rdpkts, rdocts,
            src.name, src.namespace, nodes[src.node], dst_name, dst_ns, dst_node,
            svc_port, svc_port_name,
            in_pol, in_ns, in_type, in_rule, in_action,
            eg_pol, eg_ns, eg_type, eg_rule, eg_action,
            tcp_state, flow_type, egress_name, egress_ip, egress_node,
            0, "0.0.0.0", svc_ip, svc_ip,
            docts, docts, octs, octs, dpkts, dpkts, pkts, pkts,
            rdocts, rdocts, rocts, rocts, rdpkts, rdpkts, rpkts, rpkts,
            end, end - rng.randint(0, 1),
            thr, thr, thr, rthr, rthr, rthr,
            src.labels, dst_labels, cluster.cluster_id,
        ))
    return records


def cluster_id(seed: int = 1) -> str:
    """The cluster UUID text carried in `clusterId` by the records of `fa_records(n, seed)`."""
    return _Cluster(random.Random(seed)).cluster_id


def fa_messages(
    n_records: int,
    seed: int = 1,
    max_message_size: int = TCP_MESSAGE_SIZE,
    records: list[tuple] | list[Flow] | None = None,
    *,
    template_every: int | None = None,
) -> list[bytes]:
    """The messages of `n_records` records (`records`, or `fa_records(n_records, seed)`).

    ``records`` are `Flow`s, or value tuples of the IPv4 template. The templates the records use
    come first, one message each; then data messages, packed as the FA's buffered exporter does
    (a buffer per template, sent when the next record would take it past ``max_message_size``);
    with ``template_every``, the templates again after every that many data messages.
    """
    from ipfix_antrea import Encoder

    if records is None:
        records = fa_records(n_records, seed)
    flows = [r if isinstance(r, Flow) else Flow(FA_TEMPLATE_ID, r) for r in records]
    odid = fnv1_32(uuid.UUID(cluster_id(seed)).bytes)
    enc = Encoder(
        observation_domain_id=odid,
        max_message_size=max_message_size,
        export_time=lambda: EXPORT_TIME,
    )
    template_ids = sorted({f.template_id for f in flows})
    for template_id in template_ids:
        enc.add_template(template_id, [e.name for e in FA_TEMPLATES[template_id]])

    def templates() -> list[bytes]:
        return [m for template_id in template_ids for m in enc.template_messages([template_id])]

    messages = templates()
    room = max_message_size - 16 - 4  # RFC 7011: message header, set header
    pending: dict[int, list[tuple]] = {}
    used: dict[int, int] = {}
    data_messages = 0

    def send(template_id: int) -> None:
        nonlocal data_messages
        (message,) = enc.encode(template_id, pending.pop(template_id))
        del used[template_id]
        messages.append(message)
        data_messages += 1
        if template_every and data_messages % template_every == 0:
            messages.extend(templates())

    for template_id, values in flows:
        size = len(enc.encode_record(template_id, values))
        if template_id in pending and used[template_id] + size > room:
            send(template_id)
        pending.setdefault(template_id, []).append(values)
        used[template_id] = used.get(template_id, 0) + size
    for template_id in list(pending):
        send(template_id)
    return messages


def fa_stream(
    n_records: int,
    seed: int = 1,
    max_message_size: int = TCP_MESSAGE_SIZE,
    records: list[tuple] | list[Flow] | None = None,
) -> bytes:
    """`fa_messages(...)` concatenated: the bytes a collector reads from one TCP connection."""
    return b"".join(fa_messages(n_records, seed, max_message_size, records))


# --- the shapes of the streams exporters send ------------------------------------------------------

class Shape(NamedTuple):
    """How the records of a stream are cut into messages."""

    name: str
    max_message_size: int
    #: data messages between template re-sends; None: the templates once, at the start
    template_every: int | None
    #: share of IPv6 records (IPv6 template) among the IPv4 ones
    ipv6_share: float
    #: whether the label strings are filled (recordContents.podLabels)
    pod_labels: bool
    description: str

    def flows(self, n_records: int, seed: int = 1) -> list[Flow]:
        return fa_flows(n_records, seed, ipv6_share=self.ipv6_share, pod_labels=self.pod_labels)


SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("tcp", TCP_MESSAGE_SIZE, None, 0.0, True,
          "65535-octet messages (TCP, the FA's default transport), template once"),
    Shape("udp-1472", UDP_MESSAGE_SIZE, None, 0.0, True,
          "1472-octet messages (one Ethernet frame), template once"),
    Shape("udp-refresh", UDP_SMALL_MESSAGE_SIZE, 50, 0.0, False,
          "messages of at most 1400 octets (two records without labels, the FA's default record "
          "contents), template re-sent every 50 messages"),
    Shape("udp-mixed", UDP_SMALL_MESSAGE_SIZE, 20, 0.5, False,
          "as udp-refresh, but half the records IPv6 (templates 256 and 257, the FA sends both), "
          "both templates re-sent every 20 messages"),
)}


def add_shape_arguments(parser: argparse.ArgumentParser) -> None:
    """``--shape`` (repeatable) and ``--template-every``, for the benchmarks; `chosen_shapes`
    reads them."""
    parser.add_argument("--shape", choices=SHAPES, action="append",
                        help="measure this shape (repeatable; default: all). "
                             + "; ".join(f"{s.name}: {s.description}" for s in SHAPES.values()))
    parser.add_argument("--template-every", type=int, metavar="N",
                        help="re-send the templates every N data messages in the shapes that re-send them")


def chosen_shapes(args: argparse.Namespace) -> list[Shape]:
    """The shapes `add_shape_arguments` asked for (all by default), with their re-send interval."""
    shapes = [SHAPES[name] for name in (args.shape or SHAPES)]
    if args.template_every:
        shapes = [s._replace(template_every=args.template_every) if s.template_every else s for s in shapes]
    return shapes


def shape_messages(shape: Shape, n_records: int, seed: int = 1,
                   flows: list[Flow] | None = None) -> list[bytes]:
    """The messages of `n_records` records (``flows``, or ``shape.flows(n_records, seed)``) cut
    the way ``shape`` says."""
    if flows is None:
        flows = shape.flows(n_records, seed)
    return fa_messages(n_records, seed, shape.max_message_size, flows,
                       template_every=shape.template_every)


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write a Flow-Aggregator-shaped IPFIX stream to a file.")
    p.add_argument("--records", type=int, default=1000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--shape", choices=SHAPES, default="tcp",
                   help="; ".join(f"{s.name}: {s.description}" for s in SHAPES.values()))
    p.add_argument("--max-message-size", type=int, help="instead of the shape's")
    p.add_argument("--out", required=True, help="output file (concatenated IPFIX messages, RFC 5655 style)")
    args = p.parse_args(argv)
    shape = SHAPES[args.shape]
    if args.max_message_size:
        shape = shape._replace(max_message_size=args.max_message_size)
    msgs = shape_messages(shape, args.records, args.seed)
    with open(args.out, "wb") as f:
        f.writelines(msgs)
    print(f"{args.out}: {args.records} records in {len(msgs)} messages, {sum(map(len, msgs))} bytes")


if __name__ == "__main__":
    import os
    import sys

    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the in-tree library
    _main()
