"""The Antrea transform: the fields Antrea's Logstash filter (``filter.rb``) derived, corrected.

Antrea's Kibana dashboards read fields that its Logstash pipeline computed on top of the netflow
codec's events: byte and packet totals, names for the numeric codes, the flow's addresses whatever
its IP family, "N/A" for empty policy names, flow keys that name a connection, and throughput in
bytes per second. This transform writes the same fields under ``ipfix.``, with the same names and
the same strings, so both Antrea's own dashboard files and ours work on our documents
(docs/visualization.md has the table with the formulas). It applies to records whose template
carries Antrea's elements (enterprise 56506, or 55829 of Antrea v0.9-v0.10), so plain router IPFIX
is left exactly as it was, and each field appears only when the elements it needs are in the
record.

Where ``filter.rb`` was wrong, this is not:

* ``protocolIdentifier`` stays a number (Logstash overwrote 6 and 17 with "TCP"/"UDP", giving the
  field two types); the name goes to ``protocolIdentifierStr``.
* Throughput is per flow, where a flow is the flow key *and* the exporter that sent it (host and
  observation domain) and the source Pod's namespace: Logstash keyed on the flow key alone, so two
  clusters' flows, or every flow without a source Pod, shared one entry. Records without a flow key
  get no throughput at all rather than a shared one.
* The time between two records of a flow is taken from ``flowEndSeconds`` as epoch seconds (from
  Antrea v1.3 on, Logstash read the ISO timestamp as its year, so throughput was 0).
* The state is bounded: at most ``max_flows`` flows (least recently reported go first), and a flow
  silent for longer than ``idle_timeout`` seconds (the exporter's idle timeout: after it, the
  exporter has ended the flow, and a record with the same key starts a new one) is forgotten.
* The Flow Aggregator's own ``throughput`` and ``reverseThroughput`` elements (IE 145/146, bits/s,
  which the dashboards would show 8 times too high) are kept as ``exporterThroughput`` and
  ``exporterReverseThroughput``; ``throughput`` holds bytes/s as the dashboards expect.
* An unknown code gets a readable name ("Unknown (7)"), never an exception.

``throughput`` = the source Node's octet delta (``octetDeltaCountFromSourceNode``; the record's own
``octetDeltaCount`` when the exporter has no per-Node counters: an Agent, or the Flow Aggregator in
Proxy mode) over ``interval``, the seconds since the flow's previous record (its ``flowEndSeconds``),
or since its ``flowStartSeconds`` for its first record; at least 1 s. Integer bytes per second,
as Logstash wrote them. A record whose flow started after the flow's previous record ended is a
new connection with the same key (a reused port): it counts as a first record.
"""

from __future__ import annotations

import argparse
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from ..registry import ANTREA_ENTERPRISE, ANTREA_LEGACY_ENTERPRISE
from ..template import Template
from ..units import number
from .builder import RecordStep
from .fields import IP, LONG, STRING, DocumentField

__all__ = [
    "ANTREA_FIELDS",
    "AntreaSettings",
    "AntreaTransform",
    "FlowClock",
    "add_antrea_arguments",
    "open_antrea",
]

DEFAULT_MAX_FLOWS = 100_000
#: The Flow Aggregator's inactiveFlowRecordTimeout (Antrea's default): a flow with no record for
#: longer has been ended by the exporter.
DEFAULT_IDLE_TIMEOUT = 90.0


class _Codes(dict[int, str]):
    """Names of the codes of an element; an unknown code reads "Unknown (N)"."""

    def __missing__(self, code: int) -> str:
        return f"Unknown ({code})"


FLOW_TYPES = _Codes({1: "Intra-Node", 2: "Inter-Node", 3: "To External", 4: "From External"})
RULE_ACTIONS = _Codes({0: "No Action", 1: "Allow", 2: "Drop", 3: "Reject"})
POLICY_TYPES = _Codes({0: "N/A", 1: "K8s NetworkPolicy", 2: "Antrea NetworkPolicy",
                       3: "Antrea ClusterNetworkPolicy", 4: "K8s ClusterNetworkPolicy"})
#: RFC 5102 §5.11.3 (IANA flowEndReason).
FLOW_END_REASONS = _Codes({1: "idle timeout", 2: "active timeout", 3: "end of Flow detected",
                           4: "forced end", 5: "lack of resources"})


class _Numbers(dict[int, str]):
    """Names of IP protocol numbers; any other number reads as itself."""

    def __missing__(self, code: int) -> str:
        return str(code)


PROTOCOLS = _Numbers({1: "ICMP", 6: "TCP", 17: "UDP", 58: "ICMPv6", 132: "SCTP"})
#: The protocol as filter.rb put it into flow keys: only TCP and UDP had names.
KEY_PROTOCOLS = _Numbers({6: "TCP", 17: "UDP"})
_CODE_TABLES = ("FLOW_TYPES", "RULE_ACTIONS", "POLICY_TYPES", "FLOW_END_REASONS", "PROTOCOLS")

#: Policy name fields that filter.rb set to "N/A" when empty (the dashboards filter on it).
NOT_APPLICABLE_FIELDS = ("ingressNetworkPolicyName", "ingressNetworkPolicyNamespace",
                         "egressNetworkPolicyName", "egressNetworkPolicyNamespace")
NOT_APPLICABLE = "N/A"
_ANTREA_ENTERPRISES = frozenset({ANTREA_ENTERPRISE, ANTREA_LEGACY_ENTERPRISE})


def _f(name: str, mapping: Any, help: str) -> DocumentField:
    return DocumentField(f"ipfix.{name}", mapping, help)


ANTREA_FIELDS: tuple[DocumentField, ...] = (
    _f("bytes", LONG, "octetTotalCount; without it octetDeltaCount + reverseOctetDeltaCount"),
    _f("packets", LONG, "packetTotalCount; without it packetDeltaCount + reversePacketDeltaCount"),
    _f("flowTypeStr", STRING, 'flowType: "Intra-Node", "Inter-Node", "To External", "From External"'),
    _f("ingressNetworkPolicyRuleActionStr", STRING,
       'ingressNetworkPolicyRuleAction: "No Action", "Allow", "Drop", "Reject"'),
    _f("egressNetworkPolicyRuleActionStr", STRING,
       'egressNetworkPolicyRuleAction: "No Action", "Allow", "Drop", "Reject"'),
    _f("ingressNetworkPolicyTypeStr", STRING,
       'ingressNetworkPolicyType: "K8s NetworkPolicy", "Antrea NetworkPolicy", "Antrea ClusterNetworkPolicy", ...'),
    _f("egressNetworkPolicyTypeStr", STRING, "egressNetworkPolicyType, named as the ingress one"),
    _f("flowEndReasonStr", STRING, 'flowEndReason as RFC 5102 names it ("idle timeout", ...)'),
    _f("protocolIdentifierStr", STRING, '"TCP", "UDP", "ICMP", "SCTP", "ICMPv6", else the number'),
    _f("sourceIP", IP, "sourceIPv6Address when present, else sourceIPv4Address"),
    _f("destinationIP", IP, "destinationIPv6Address when present, else destinationIPv4Address"),
    _f("destinationServiceName", STRING, 'the "namespace/service" of destinationServicePortName'),
    _f("flowKey", STRING, "flowKeyPodToPod or flowKeyPodToExternal: the flow's connection"),
    _f("flowKeyPodToPod", STRING, '"srcPod:sport->dstPod:dport PROTO", unless flowType is 3'),
    _f("flowKeyPodToService", STRING, '"srcPod:sport->ns/svc:portNAMEport PROTO", for Service flows'),
    _f("flowKeyPodToExternal", STRING, '"srcPod:sport->destinationIP:dport PROTO", when flowType is 3'),
    _f("throughput", LONG, "bytes/s from the source: the octet delta over interval"),
    _f("reverseThroughput", LONG, "bytes/s back to the source: the reverse octet delta over interval"),
    _f("interval", LONG, "seconds since the flow's previous record (first record: since its start), at least 1"),
    _f("exporterThroughput", LONG, "the exporter's own throughput element (Flow Aggregator: bits/s)"),
    _f("exporterReverseThroughput", LONG, "the exporter's own reverseThroughput element (bits/s)"),
)


class FlowClock:
    """For each flow, the ``flowEndSeconds`` of its last record: what throughput divides by.

    Bounded in both ways the module comment gives (a cap on flows, expiry after ``idle_timeout``
    seconds of silence, measured on the records' own clock so that a replayed capture expires as
    the live stream did), and safe to share between threads.

    A flow is kept under the hash of its identity, not the identity itself: two ints per flow
    instead of a tuple of strings, half the memory (18 MB for 100,000 flows instead of 33 MB,
    which also crowds the decoder's own data out of the CPU caches). Two flows whose identities
    hash alike (about one chance in 10^9 among 100,000 flows) would share a time.
    """

    def __init__(self, max_flows: int = DEFAULT_MAX_FLOWS, idle_timeout: float = DEFAULT_IDLE_TIMEOUT) -> None:
        if max_flows < 1:
            raise ValueError("max_flows must be at least 1")
        self.max_flows = max_flows
        self.idle_timeout = idle_timeout
        self._ends: OrderedDict[int, int] = OrderedDict()  # least recently reported first
        self._lock = threading.Lock()
        # Silent flows are looked for when the records' clock passes this (a quarter of the idle
        # timeout apart), not on every record.
        self._next_sweep = float("-inf")

    def interval(self, flow: Hashable, start: int, end: int) -> int:
        """The seconds a record of ``flow`` that started at ``start`` and ended at ``end``
        (epoch seconds) covers with its delta counters; at least 1. Remembers ``end``."""
        ends = self._ends
        flow = hash(flow)
        with self._lock:
            last = ends.get(flow)
            if last is None:  # a first record
                elapsed = end - start
                ends[flow] = end  # a new key goes last: no need to move it
                if len(ends) > self.max_flows:
                    ends.popitem(last=False)
            else:
                if start > last or end - last > self.idle_timeout:
                    elapsed = end - start  # a new connection with the same key: a first record
                elif end > last:
                    elapsed = end - last
                else:  # out of order, or within the same second: the flow's time does not go back
                    return 1
                ends[flow] = end
                ends.move_to_end(flow)
            if end >= self._next_sweep:
                self._sweep(end)
        return elapsed if elapsed > 1 else 1

    def _sweep(self, now: int) -> None:
        """Forgets the flows silent for longer than the idle timeout at ``now``, the newest
        record's end (the least recently reported are first in line)."""
        ends = self._ends
        horizon = now - self.idle_timeout
        while ends:
            oldest = next(iter(ends))
            if ends[oldest] >= horizon:
                break
            del ends[oldest]
        self._next_sweep = now + self.idle_timeout / 4

    def __len__(self) -> int:
        return len(self._ends)


@dataclass(frozen=True)
class AntreaSettings:
    """The transform's settings; the defaults are those of the command line."""

    max_flows: int = DEFAULT_MAX_FLOWS
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT

    @classmethod
    def from_namespace(cls, options: argparse.Namespace | None) -> AntreaSettings:
        """The settings from a parsed command line (``antrea_*`` attributes), or the defaults."""
        if options is None:
            return cls()
        return cls(max_flows=getattr(options, "antrea_max_flows", DEFAULT_MAX_FLOWS),
                   idle_timeout=getattr(options, "antrea_idle_timeout", DEFAULT_IDLE_TIMEOUT))


class _Layout:
    """Where a template holds the elements the transform reads: ``at(name, kinds)`` is the
    position of an element that occurs once and decodes as one of ``kinds``, else None (an
    element repeated, absent, or of an unexpected length counts as absent)."""

    INTEGER = ("unsigned8", "unsigned16", "unsigned32", "unsigned64",
               "signed8", "signed16", "signed32", "signed64")
    STRING = ("string",)
    ADDRESS = ("ipv4Address", "ipv6Address")
    SECONDS = ("dateTimeSeconds",)

    def __init__(self, template: Template) -> None:
        self._template = template

    def at(self, name: str, kinds: tuple[str, ...]) -> int | None:
        positions = self._template.positions(name)
        if len(positions) != 1 or self._template.fields[positions[0]].wire_type not in kinds:
            return None
        return positions[0]


class AntreaTransform:
    """Antrea's derived fields (see the module comment); ``clock`` holds the throughput state."""

    name = "antrea"
    fields = ANTREA_FIELDS

    def __init__(self, settings: AntreaSettings | None = None) -> None:
        settings = settings or AntreaSettings()
        self.settings = settings
        self.clock = FlowClock(settings.max_flows, settings.idle_timeout)

    def compile(self, template: Template) -> RecordStep | None:
        if not any(f.element.enterprise in _ANTREA_ENTERPRISES for f in template.fields):
            return None  # not an Antrea exporter's record
        at = _Layout(template).at
        integer, string, address, seconds = _Layout.INTEGER, _Layout.STRING, _Layout.ADDRESS, _Layout.SECONDS
        # bytes and packets: the totals, else forward + reverse deltas
        totals = [(name, at(total, integer), [p for p in (at(delta, integer), at(reverse, integer))
                                               if p is not None])
                  for name, total, delta, reverse in (
                      ("bytes", "octetTotalCount", "octetDeltaCount", "reverseOctetDeltaCount"),
                      ("packets", "packetTotalCount", "packetDeltaCount", "reversePacketDeltaCount"))]
        totals = [(name, total, deltas) for name, total, deltas in totals if total is not None or deltas]
        # codes -> names
        codes = [(name + "Str", p, table) for name, table in (
            ("flowType", "FLOW_TYPES"), ("flowEndReason", "FLOW_END_REASONS"),
            ("protocolIdentifier", "PROTOCOLS"),
            ("ingressNetworkPolicyRuleAction", "RULE_ACTIONS"), ("egressNetworkPolicyRuleAction", "RULE_ACTIONS"),
            ("ingressNetworkPolicyType", "POLICY_TYPES"), ("egressNetworkPolicyType", "POLICY_TYPES"))
            if (p := at(name, integer)) is not None]
        # the addresses, whatever the family
        addresses = [(name, v6, v4) for name, v6, v4 in (
            ("sourceIP", at("sourceIPv6Address", address), at("sourceIPv4Address", address)),
            ("destinationIP", at("destinationIPv6Address", address), at("destinationIPv4Address", address)))
            if v6 is not None or v4 is not None]
        empty_names = [(name, p) for name in NOT_APPLICABLE_FIELDS if (p := at(name, string)) is not None]
        service = at("destinationServicePortName", string)
        service_port = at("destinationServicePort", integer)
        # flow keys (filter.rb: built only from a source Pod, with ports and protocol)
        pod, sport, dport = at("sourcePodName", string), at("sourceTransportPort", integer), \
            at("destinationTransportPort", integer)
        proto, flow_type = at("protocolIdentifier", integer), at("flowType", integer)
        keyed = pod is not None and sport is not None and dport is not None and proto is not None
        dst_pod = at("destinationPodName", string)
        external_ip = next((a for a in addresses if a[0] == "destinationIP"), None)
        to_service = keyed and service is not None and service_port is not None
        # throughput: the source Node's deltas, else the record's own
        delta = at("octetDeltaCountFromSourceNode", integer)
        delta = delta if delta is not None else at("octetDeltaCount", integer)
        reverse = at("reverseOctetDeltaCountFromSourceNode", integer)
        reverse = reverse if reverse is not None else at("reverseOctetDeltaCount", integer)
        start, end = at("flowStartSeconds", seconds), at("flowEndSeconds", seconds)
        namespace = at("sourcePodNamespace", string)
        timed = start is not None and end is not None and (delta is not None or reverse is not None)
        exporter_rates = [(name, kept, p) for name, kept in (
            ("throughput", "exporterThroughput"), ("reverseThroughput", "exporterReverseThroughput"))
            if (p := at(name, integer)) is not None]

        # The step is generated as straight-line code for this template (as the record decoders
        # are, `ipfix_antrea.template`): what the template lacks is left out here, once, instead
        # of being tested for every record. Constants are positions in the record's values.
        body: list[str] = []
        for name, total, deltas in totals:
            body.append(f"d[{name!r}] = " + (f"v[{total}]" if total is not None
                                               else " + ".join(f"v[{p}]" for p in deltas)))
        for name, p, table in codes:
            body.append(f"d[{name!r}] = {table}[v[{p}]]")
        for name, v6, v4 in addresses:
            # an unset IPv6 address ("::") next to an IPv4 one is not the flow's address
            value = f"v[{v4}]" if v6 is None else f"v[{v6}]" if v4 is None else \
                f"v[{v4}] if v[{v6}] == '::' else v[{v6}]"
            body.append(f"d[{name!r}] = {value}")
        for name, p in empty_names:
            body.append(f"if not v[{p}]: d[{name!r}] = {NOT_APPLICABLE!r}")
        if service is not None:
            body += [f"service = v[{service}]",
                     "if service: d['destinationServiceName'] = service.partition(':')[0]"]
        # The exporter's rates (bits/s) are kept aside; throughput is recomputed below, and where
        # it cannot be, the exporter's value must not stay under its name.
        recomputed = {"throughput": keyed and timed and delta is not None,
                      "reverseThroughput": keyed and timed and reverse is not None}
        clear = "; ".join(f"del d[{name!r}]" for name, _, _ in exporter_rates)
        body += [f"d[{kept!r}] = v[{p}]" for _, kept, p in exporter_rates]
        leave = f"{clear}; return" if clear else "return"
        if keyed:
            body += [f"pod = v[{pod}]",
                     f"if not pod: {leave}",
                     f"protocol = KEY_PROTOCOLS[v[{proto}]]"]
            if to_service:
                body.append("if service: d['flowKeyPodToService'] = "
                            f"f'{{pod}}:{{v[{sport}]}}->{{service}}{{v[{service_port}]}} {{protocol}}'")
            pod_to_pod = ("key = d['flowKey'] = d['flowKeyPodToPod'] = "
                          f"f'{{pod}}:{{v[{sport}]}}->{{v[{dst_pod}]}}:{{v[{dport}]}} {{protocol}}'"
                          if dst_pod is not None else leave)
            to_external = ("key = d['flowKey'] = d['flowKeyPodToExternal'] = "
                           f"f'{{pod}}:{{v[{sport}]}}->{{d[\"destinationIP\"]}}:{{v[{dport}]}} {{protocol}}'"
                           if external_ip is not None else leave)
            if flow_type is None:
                body.append(pod_to_pod)
            else:
                body += [f"if v[{flow_type}] != 3: {pod_to_pod}", f"else: {to_external}"]
            if timed:
                source_namespace = "''" if namespace is None else f"v[{namespace}]"
                body.append("seconds = d['interval'] = interval((host, record.observation_domain_id, "
                            f"{source_namespace}, key), v[{start}], v[{end}])")
                if delta is not None:
                    body.append(f"d['throughput'] = v[{delta}] // seconds")
                if reverse is not None:
                    body.append(f"d['reverseThroughput'] = v[{reverse}] // seconds")
        body += [f"del d[{name!r}]" for name, _, _ in exporter_rates if not recomputed[name]]
        if not body:
            return None
        return _compile_step(body, self.clock)


def _compile_step(body: list[str], clock: FlowClock) -> RecordStep:
    """``def step(d, record, host)`` with ``body``, the names it uses bound."""
    namespace: dict[str, Any] = {"interval": clock.interval, "KEY_PROTOCOLS": KEY_PROTOCOLS,
                                 **{name: globals()[name] for name in _CODE_TABLES}}
    source = "\n".join(["def step(d, record, host):", "    v = record.values",
                         *(f"    {line}" for line in body)])
    exec(compile(source, "<antrea transform step>", "exec"), namespace)
    step: RecordStep = namespace["step"]
    return step


def add_antrea_arguments(parser: argparse.ArgumentParser) -> None:
    """The transform's ``--antrea-*`` flags (each also ``IPFIX_COLLECT_<FLAG>``)."""
    d = AntreaSettings()
    g = parser.add_argument_group("Antrea enrichment (--enrich antrea, the default)")
    g.add_argument("--antrea-max-flows", type=number(int, minimum=1), metavar="N", default=d.max_flows,
                   help="flows whose last record time is kept for throughput (default %(default)s); "
                   "the least recently reported are forgotten first")
    g.add_argument("--antrea-idle-timeout", type=number(float, above=0), metavar="SECONDS",
                   default=d.idle_timeout,
                   help="forget a flow silent for longer than this: the exporter's idle timeout "
                   "(default %(default)g, the Flow Aggregator's inactiveFlowRecordTimeout)")


def open_antrea(options: argparse.Namespace | None = None) -> AntreaTransform:
    """The factory ``--enrich antrea`` calls: settings from the parsed command line, if any."""
    return AntreaTransform(AntreaSettings.from_namespace(options))
