"""Half an hour of a small Antrea cluster, as its Flow Aggregator exports it: the data the dashboards
are checked on.

`antrea_stream.py` makes many unrelated records at one instant (for speed measurements). The
dashboards need something else: flows that live over time, so that throughput, time series and
record counts have data, and a cluster shaped so that every panel has something to show. This
module simulates that, deterministically (no randomness at all: every number follows from the
flow table below), and encodes it with the same 70-element Flow Aggregator templates
(`antrea_stream.FA_AGGREGATE_IPV4` and its IPv6 twin) and the library's `Encoder`.

The cluster (`FLOWS` lists every connection):

* 5 Nodes; Pods in storefront, payments, catalog, identity, kube-system and antreaflow (where
  the collector itself runs, fed by the Flow Aggregator in flow-aggregator);
* intra-Node, inter-Node, to-external and from-external flows, Pod-to-Service flows with named
  ports, a Pod-to-Pod flow that bypasses Services, DNS lookups over UDP;
* flows allowed by ingress and egress policies of each kind (K8s NetworkPolicy, Antrea
  NetworkPolicy, Antrea ClusterNetworkPolicy), and connections dropped or rejected by ingress and
  egress rules, retried once a minute (a new source port each time, as clients do);
* IPv4 and, for the dual-stack identity workloads and one external peer, IPv6 (template 257).

How the Flow Aggregator reports them (antrea-facts 2.4): a record per connection every
`ACTIVE_TIMEOUT` (60) seconds while it is active, and a last one when it ends (end of flow for
TCP, idle timeout for UDP); delta counters since the previous record, totals since the start,
the per-Node counters of the Nodes that saw the flow (none from the source side for traffic
from outside the cluster, none from the destination side for traffic leaving it), and the FA's
own throughput in bits/s. Records are buffered and sent a second after their flowEndSeconds,
many per message, so the message export time (the documents' ``@timestamp``) is
flowEndSeconds + 1.

Importable (`cluster_messages()`, `cluster_stream()`, `FLOWS`, `WINDOW`) and runnable:

    python benchmarks/antrea_cluster.py --out cluster.ipfix
"""

from __future__ import annotations

import argparse
import math
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass

if __package__ in (None, ""):  # run as a script: the sibling module and the in-tree library
    import os
    import sys

    sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    from antrea_stream import (  # type: ignore[no-redef]
        EXPORT_TIME,
        FA_TEMPLATE_ID,
        FA_TEMPLATE_ID_IPV6,
        fa_template_fields,
        fnv1_32,
    )
else:
    from .antrea_stream import EXPORT_TIME, FA_TEMPLATE_ID, FA_TEMPLATE_ID_IPV6, fa_template_fields, fnv1_32

__all__ = [
    "ACTIVE_TIMEOUT",
    "CLUSTER_ID",
    "FLOWS",
    "PODS",
    "POLICIES",
    "WINDOW",
    "Flow",
    "Pod",
    "cluster_messages",
    "cluster_records",
    "cluster_stream",
    "connections",
]

ACTIVE_TIMEOUT = 60  # the Flow Aggregator's activeFlowRecordTimeout (seconds)
START = EXPORT_TIME  # 2026-01-01T00:00:00Z
DURATION = 30 * 60
#: (first, last) second a flow of the simulation may be active in; records are exported until
#: WINDOW[1] + 1.
WINDOW = (START, START + DURATION)
CLUSTER_ID = "6f1c2a4e-9b7d-4c3e-8a51-2d0f7e9b3c60"
NODES = ("control-plane", "worker-1", "worker-2", "worker-3", "worker-4")


@dataclass(frozen=True)
class Pod:
    name: str
    namespace: str
    node: str
    ipv4: str
    ipv6: str


def _pod(name: str, namespace: str, node: int, host: int) -> Pod:
    return Pod(name, namespace, NODES[node], f"10.244.{node}.{host}", f"fd00:10:244:{node}::{host:x}")


PODS = {p.name: p for p in (
    _pod("frontend-7d9c8b6f5-x2k4p", "storefront", 1, 11),
    _pod("frontend-7d9c8b6f5-q8w7e", "storefront", 2, 12),
    _pod("cart-5f6d7c8b9-mz3nt", "storefront", 3, 13),
    _pod("checkout-6b8f9d7c4-h5j2k", "payments", 2, 14),
    _pod("checkout-6b8f9d7c4-p9r4s", "payments", 4, 15),
    _pod("products-84c5d9f6b-t7v2w", "catalog", 1, 16),
    _pod("products-84c5d9f6b-k3l8m", "catalog", 1, 17),
    _pod("redis-0", "identity", 3, 18),
    _pod("accounts-db-0", "identity", 4, 19),
    _pod("coredns-76f75df574-9xq2z", "kube-system", 0, 20),
    _pod("flow-aggregator-6c9b7d8f5-zw4xk", "flow-aggregator", 0, 21),
    _pod("ipfix-collect-7b6c5d4f3-r2t8y", "antreaflow", 4, 22),
)}

# Services: name -> (namespace/service:port-name, cluster IPv4, IPv6, service port, target port, protocol)
SERVICES = {
    "frontend": ("storefront/frontend:http", "10.96.0.80", "fd00:10:96::50", 80, 8080, 6),
    "checkout": ("payments/checkout:https", "10.96.0.43", "fd00:10:96::2b", 443, 8443, 6),
    "products": ("catalog/products:grpc", "10.96.1.35", "fd00:10:96::123", 3550, 3550, 6),
    "redis": ("identity/redis:redis", "10.96.2.63", "fd00:10:96::3f", 6379, 6379, 6),
    "accounts-db": ("identity/accounts-db:postgres", "10.96.2.54", "fd00:10:96::36", 5432, 5432, 6),
    "kube-dns": ("kube-system/kube-dns:dns", "10.96.0.10", "fd00:10:96::a", 53, 53, 17),
    "ipfix-collect": ("antreaflow/ipfix-collect:ipfix", "10.96.3.47", "fd00:10:96::12f", 4739, 4739, 6),
}

# Network policies: name -> (namespace, type): 1 K8s NetworkPolicy, 2 Antrea NetworkPolicy,
# 3 Antrea ClusterNetworkPolicy (cluster-scoped: no namespace). Antrea names the rules of its
# own policies; a K8s NetworkPolicy's rules have no names.
POLICIES = {
    "checkout-allow-frontend": ("payments", 1, ""),
    "products-allow-storefront": ("catalog", 2, "allow-grpc"),
    "redis-allow-clients": ("identity", 1, ""),
    "allow-db-clients": ("", 3, "allow-identity-stores"),
    "allow-egress-https": ("", 3, "allow-443"),
    "payments-deny-cart": ("payments", 2, "drop-cart"),
    "deny-smtp-egress": ("", 3, "reject-smtp"),
    "accounts-db-isolate": ("identity", 1, ""),
    "allow-flow-export": ("antreaflow", 2, "allow-ipfix"),
}
ALLOW, DROP, REJECT = 1, 2, 3
INTRA_NODE, INTER_NODE, TO_EXTERNAL, FROM_EXTERNAL = 1, 2, 3, 4


@dataclass(frozen=True)
class Flow:
    """One connection: who talks to whom, how much, when, and what the policies said.

    ``src``/``dst`` are Pod names or external addresses; ``service`` a key of SERVICES (the
    destination is then one of its Pods); ``rate``/``reverse_rate`` bytes per second each way;
    ``start``/``end`` seconds after START (end None: still open when the window ends); a flow
    with ``retry`` is a connection attempt repeated every that many seconds, each attempt a
    new flow with the next source port.
    """

    src: str
    dst: str
    sport: int
    dport: int
    proto: int = 6
    service: str = ""
    rate: int = 0
    reverse_rate: int = 0
    start: int = 0
    end: int | None = None
    ipv6: bool = False
    ingress: tuple[str, int] = ("", 0)  # (policy name, rule action)
    egress: tuple[str, int] = ("", 0)
    egress_gateway: str = ""  # Egress name for traffic leaving through an Egress IP
    retry: int = 0


FLOWS: tuple[Flow, ...] = (
    # storefront -> payments through the Service, inter-Node, allowed by a K8s NetworkPolicy
    Flow("frontend-7d9c8b6f5-x2k4p", "checkout-6b8f9d7c4-h5j2k", 41234, 8443, service="checkout",
         rate=180_000, reverse_rate=520_000, ingress=("checkout-allow-frontend", ALLOW)),
    Flow("frontend-7d9c8b6f5-q8w7e", "checkout-6b8f9d7c4-p9r4s", 38012, 8443, service="checkout",
         rate=95_000, reverse_rate=240_000, start=300, ingress=("checkout-allow-frontend", ALLOW)),
    # storefront -> catalog: intra-Node (both on worker-1) and inter-Node, Antrea NetworkPolicy
    Flow("frontend-7d9c8b6f5-x2k4p", "products-84c5d9f6b-t7v2w", 45100, 3550, service="products",
         rate=60_000, reverse_rate=1_400_000, ingress=("products-allow-storefront", ALLOW)),
    Flow("frontend-7d9c8b6f5-q8w7e", "products-84c5d9f6b-k3l8m", 45210, 3550, service="products",
         rate=40_000, reverse_rate=900_000, start=120, end=1500,
         ingress=("products-allow-storefront", ALLOW)),
    # catalog replicas sync directly, Pod to Pod (no Service), intra-Node
    Flow("products-84c5d9f6b-t7v2w", "products-84c5d9f6b-k3l8m", 51000, 7946,
         rate=25_000, reverse_rate=25_000),
    # storefront -> identity over IPv6 (dual-stack), egress ACNP and ingress K8s NetworkPolicy
    Flow("cart-5f6d7c8b9-mz3nt", "redis-0", 36001, 6379, service="redis", rate=30_000,
         reverse_rate=75_000, ipv6=True, ingress=("redis-allow-clients", ALLOW),
         egress=("allow-db-clients", ALLOW)),
    Flow("checkout-6b8f9d7c4-h5j2k", "accounts-db-0", 50432, 5432, service="accounts-db",
         rate=22_000, reverse_rate=64_000, ipv6=True, egress=("allow-db-clients", ALLOW)),
    Flow("checkout-6b8f9d7c4-p9r4s", "redis-0", 36770, 6379, service="redis", rate=12_000,
         reverse_rate=30_000, start=600, ingress=("redis-allow-clients", ALLOW),
         egress=("allow-db-clients", ALLOW)),
    # DNS: every app Pod asks kube-dns now and then; short UDP flows that end by idle timeout
    *(Flow(pod, "coredns-76f75df574-9xq2z", 53000 + i, 53, proto=17, service="kube-dns",
           rate=400, reverse_rate=900, start=30 + 97 * i, end=30 + 97 * i + 5, retry=600)
      for i, pod in enumerate(("frontend-7d9c8b6f5-x2k4p", "cart-5f6d7c8b9-mz3nt",
                               "checkout-6b8f9d7c4-h5j2k", "products-84c5d9f6b-t7v2w"))),
    # kube-dns forwards what it cannot answer to the upstream resolver outside the cluster
    Flow("coredns-76f75df574-9xq2z", "192.0.2.53", 54000, 53, proto=17, rate=300, reverse_rate=700,
         start=60, end=64, retry=300),
    # the Flow Aggregator feeds the collector (infrastructure, hidden by the Home filter)
    Flow("flow-aggregator-6c9b7d8f5-zw4xk", "ipfix-collect-7b6c5d4f3-r2t8y", 47390, 4739,
         service="ipfix-collect", rate=350_000, reverse_rate=2_000,
         ingress=("allow-flow-export", ALLOW)),
    # Pods reaching out of the cluster, one through an Egress gateway, one over IPv6
    Flow("products-84c5d9f6b-t7v2w", "203.0.113.10", 49152, 443, rate=8_000, reverse_rate=150_000,
         egress=("allow-egress-https", ALLOW), egress_gateway="egress-prod-static"),
    Flow("checkout-6b8f9d7c4-h5j2k", "2001:db8:ca7e::443", 49800, 443, rate=15_000,
         reverse_rate=45_000, start=200, end=1400, ipv6=True, egress=("allow-egress-https", ALLOW)),
    # clients outside the cluster reach the storefront (From External: no source Pod)
    Flow("198.51.100.7", "frontend-7d9c8b6f5-x2k4p", 60123, 8080, service="frontend",
         rate=45_000, reverse_rate=610_000),
    Flow("198.51.100.23", "frontend-7d9c8b6f5-q8w7e", 61022, 8080, service="frontend",
         rate=20_000, reverse_rate=300_000, start=400, end=1300),
    # denied: cart may not call checkout (Antrea NetworkPolicy drops, ingress), retried each minute
    Flow("cart-5f6d7c8b9-mz3nt", "checkout-6b8f9d7c4-h5j2k", 40000, 8443, rate=60,
         ingress=("payments-deny-cart", DROP), start=45, end=47, retry=60),
    # denied: nobody may send mail out (Antrea ClusterNetworkPolicy rejects, egress)
    Flow("frontend-7d9c8b6f5-q8w7e", "192.0.2.50", 42000, 25, rate=80,
         egress=("deny-smtp-egress", REJECT), start=100, end=101, retry=120),
    # denied: the storefront may not reach the accounts database (K8s NetworkPolicy, ingress)
    Flow("frontend-7d9c8b6f5-x2k4p", "accounts-db-0", 43000, 5432, service="accounts-db", rate=60,
         ingress=("accounts-db-isolate", DROP), start=20, end=22, retry=180),
)


def _attempts(flow: Flow) -> Iterator[Flow]:
    """The connections a flow table entry stands for: itself, or one per retry in the window."""
    if not flow.retry:
        yield flow
        return
    length = (flow.end if flow.end is not None else flow.start + 1) - flow.start
    for n, start in enumerate(range(flow.start, DURATION - length, flow.retry)):
        yield Flow(**{**flow.__dict__, "sport": flow.sport + n, "start": start, "end": start + length,
                      "retry": 0})


def _endpoint(name: str, ipv6: bool) -> tuple[str, Pod | None]:
    pod = PODS.get(name)
    if pod is None:
        return name, None
    return (pod.ipv6 if ipv6 else pod.ipv4), pod


def _flow_type(src: Pod | None, dst: Pod | None) -> int:
    if src is None:
        return FROM_EXTERNAL
    if dst is None:
        return TO_EXTERNAL
    return INTRA_NODE if src.node == dst.node else INTER_NODE


def _exports(flow: Flow) -> list[int]:
    """The flowEndSeconds of the flow's records: every ACTIVE_TIMEOUT while it is active (its
    own phase), and its end."""
    first = START + flow.start
    last = START + (flow.end if flow.end is not None else DURATION)
    times = list(range(first + ACTIVE_TIMEOUT, last, ACTIVE_TIMEOUT))
    return [*times, last]


def _policy(name_action: tuple[str, int]) -> dict:
    name, action = name_action
    if not name:
        return {"Name": "", "Namespace": "", "Type": 0, "RuleName": "", "RuleAction": 0}
    namespace, kind, rule = POLICIES[name]
    return {"Name": name, "Namespace": namespace, "Type": kind, "RuleName": rule, "RuleAction": action}


def _records_of(flow: Flow) -> Iterator[tuple[int, dict]]:
    """(template id, record dict) for each export of one connection."""
    src_ip, src = _endpoint(flow.src, flow.ipv6)
    dst_ip, dst = _endpoint(flow.dst, flow.ipv6)
    flow_type = _flow_type(src, dst)
    denied = DROP in (flow.ingress[1], flow.egress[1]) or REJECT in (flow.ingress[1], flow.egress[1])
    svc_name, cluster_v4, cluster_v6, svc_port, _target, _proto = SERVICES.get(
        flow.service, ("", "0.0.0.0", "::", 0, 0, 0))
    v = "IPv6" if flow.ipv6 else "IPv4"
    zero_ip = "::" if flow.ipv6 else "0.0.0.0"
    ingress, egress = _policy(flow.ingress), _policy(flow.egress)
    start = START + flow.start
    seen_by_source = src is not None
    seen_by_destination = dst is not None and not denied
    totals = [0, 0, 0, 0]  # octets, packets, reverse octets, reverse packets
    previous = start
    exports = _exports(flow)
    for n, end in enumerate(exports):
        last = n == len(exports) - 1
        seconds = max(end - previous, 1)
        # a gentle wave, so that lines are not flat: +-20% over a 10-minute period
        wave = 1.0 + 0.2 * math.sin(2 * math.pi * (end - START) / 600)
        octets = max(int(flow.rate * seconds * wave), 60)
        reverse = int(flow.reverse_rate * seconds * wave) if not denied else 0
        delta = [octets, max(octets // 900, 1), reverse, (reverse + 1199) // 1200]
        totals = [t + d for t, d in zip(totals, delta, strict=True)]
        if flow.proto == 6:
            tcp_state = "TIME_WAIT" if last and flow.end is not None else "ESTABLISHED"
            if denied:
                tcp_state = "SYN_SENT"
            reason = 3 if last and flow.end is not None else 2
        else:
            tcp_state, reason = "", 1 if last and flow.end is not None else 2
        src_delta = delta if seen_by_source else [0, 0, 0, 0]
        src_total = totals if seen_by_source else [0, 0, 0, 0]
        dst_delta = delta if seen_by_destination else [0, 0, 0, 0]
        dst_total = totals if seen_by_destination else [0, 0, 0, 0]
        bits = [d * 8 // seconds for d in (delta[0], delta[2])]
        record = {
            "flowStartSeconds": start, "flowEndSeconds": end, "flowEndReason": reason,
            "sourceTransportPort": flow.sport, "destinationTransportPort": flow.dport,
            "protocolIdentifier": flow.proto,
            "packetTotalCount": totals[1], "octetTotalCount": totals[0],
            "packetDeltaCount": delta[1], "octetDeltaCount": delta[0],
            f"source{v}Address": src_ip, f"destination{v}Address": dst_ip,
            "reversePacketTotalCount": totals[3], "reverseOctetTotalCount": totals[2],
            "reversePacketDeltaCount": delta[3], "reverseOctetDeltaCount": delta[2],
            "sourcePodName": src.name if src else "", "sourcePodNamespace": src.namespace if src else "",
            "sourceNodeName": src.node if src else "",
            "destinationPodName": dst.name if dst else "",
            "destinationPodNamespace": dst.namespace if dst else "",
            "destinationNodeName": dst.node if dst else "",
            "destinationServicePort": svc_port, "destinationServicePortName": svc_name,
            **{f"ingressNetworkPolicy{k}": value for k, value in ingress.items()},
            **{f"egressNetworkPolicy{k}": value for k, value in egress.items()},
            "tcpState": tcp_state, "flowType": flow_type,
            "egressName": flow.egress_gateway, "egressIP": "172.18.0.100" if flow.egress_gateway else "",
            "egressNodeName": NODES[1] if flow.egress_gateway else "",
            "proxySnatPort": 0, f"proxySnat{v}": zero_ip,
            f"destinationCluster{v}": (cluster_v6 if flow.ipv6 else cluster_v4),
            f"destinationService{v}": (cluster_v6 if flow.ipv6 else cluster_v4),
            "octetDeltaCountFromSourceNode": src_delta[0], "octetDeltaCountFromDestinationNode": dst_delta[0],
            "octetTotalCountFromSourceNode": src_total[0], "octetTotalCountFromDestinationNode": dst_total[0],
            "packetDeltaCountFromSourceNode": src_delta[1], "packetDeltaCountFromDestinationNode": dst_delta[1],
            "packetTotalCountFromSourceNode": src_total[1], "packetTotalCountFromDestinationNode": dst_total[1],
            "reverseOctetDeltaCountFromSourceNode": src_delta[2],
            "reverseOctetDeltaCountFromDestinationNode": dst_delta[2],
            "reverseOctetTotalCountFromSourceNode": src_total[2],
            "reverseOctetTotalCountFromDestinationNode": dst_total[2],
            "reversePacketDeltaCountFromSourceNode": src_delta[3],
            "reversePacketDeltaCountFromDestinationNode": dst_delta[3],
            "reversePacketTotalCountFromSourceNode": src_total[3],
            "reversePacketTotalCountFromDestinationNode": dst_total[3],
            "flowEndSecondsFromSourceNode": end if seen_by_source else 0,
            "flowEndSecondsFromDestinationNode": end if seen_by_destination else 0,
            "throughput": bits[0], "throughputFromSourceNode": bits[0] if seen_by_source else 0,
            "throughputFromDestinationNode": bits[0] if seen_by_destination else 0,
            "reverseThroughput": bits[1], "reverseThroughputFromSourceNode": bits[1] if seen_by_source else 0,
            "reverseThroughputFromDestinationNode": bits[1] if seen_by_destination else 0,
            "sourcePodLabels": "", "destinationPodLabels": "", "clusterId": CLUSTER_ID,
        }
        yield (FA_TEMPLATE_ID_IPV6 if flow.ipv6 else FA_TEMPLATE_ID), record
        previous = end


def connections() -> list[Flow]:
    """Every connection of the simulation (retried attempts expanded), in FLOWS order."""
    return [attempt for flow in FLOWS for attempt in _attempts(flow)]


def cluster_records() -> list[tuple[int, int, dict]]:
    """(export time, template id, record) for every record of the simulation, in export order."""
    out = [(record["flowEndSeconds"] + 1, template_id, record)
           for flow in connections() for template_id, record in _records_of(flow)]
    out.sort(key=lambda r: (r[0], r[1], r[2]["flowStartSeconds"], r[2]["sourceTransportPort"]))
    return out


def cluster_messages() -> list[bytes]:
    """The Flow Aggregator's TCP stream as messages: both templates, then for each export second
    the records exported then, packed as the buffered exporter does (one template per set)."""
    from ipfix_antrea import Encoder

    now = START
    enc = Encoder(observation_domain_id=fnv1_32(bytes.fromhex(CLUSTER_ID.replace("-", ""))),
                  export_time=lambda: now)
    enc.add_template(FA_TEMPLATE_ID, fa_template_fields())
    enc.add_template(FA_TEMPLATE_ID_IPV6, fa_template_fields(ipv6=True))
    messages = enc.template_messages()
    batches: dict[tuple[int, int], list[dict]] = defaultdict(list)
    for export_time, template_id, record in cluster_records():
        batches[(export_time, template_id)].append(record)
    for (export_time, template_id), records in sorted(batches.items()):
        now = export_time
        messages += enc.encode(template_id, records)
    return messages


def cluster_stream() -> bytes:
    """`cluster_messages()` concatenated: an IPFIX file (RFC 5655 style) or a TCP stream."""
    return b"".join(cluster_messages())


def _main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description="Write the simulated cluster's Flow Aggregator stream to a file.")
    p.add_argument("--out", required=True, help="output file (concatenated IPFIX messages)")
    args = p.parse_args(argv)
    messages = cluster_messages()
    with open(args.out, "wb") as f:
        f.writelines(messages)
    print(f"{args.out}: {len(cluster_records())} records of {len(connections())} connections "
          f"in {len(messages)} messages")


if __name__ == "__main__":
    _main()
