"""The encoder's output, decoded by independent implementations, gives back what we encoded.

Peers (see tests/peers.py): Wireshark's tshark and libfixbuf's ipfixDump, both from Debian 12.
Locally a missing peer skips its tests; .ci/run sets IPFIX_ANTREA_REQUIRE_PEERS=1 so CI fails
instead.  The last test checks our own Session on the same bytes.

What each peer can show, and so what is compared (found on tshark 4.0.17 and ipfixDump 2.4.1):

tshark
  * IANA elements under its own field names (``TSHARK_NAME`` below), values as printed: integers
    in decimal, float64 with ``%.15g``, addresses canonical, strings as text, octet arrays as
    colon-separated hex, timestamps as ``Nov 14, 2023 22:13:21.000000000 UTC``.
  * It cannot show a false boolean: it prints any non-zero octet as true, so RFC 7011's false (2)
    reads "1" like true (1).  We check that it reads "1" (the octet was non-zero) for both.
  * NTP timestamps (micro/nanoseconds) are truncated to whole nanoseconds, e.g. a fraction of
    exactly 0.125 s prints as .124999999: compared to the microsecond, and to +-1 ns.
  * Enterprise elements it has no table for (Antrea, PEN 56506) show as raw bytes in one
    repeated field ``cflow.enterprise_private_entry``, in template order, with no element id; a
    zero-length value is left out entirely.  We compare those bytes with the value's encoding,
    which checks the framing (lengths, the 3-byte variable-length form) but not the type.
  * A reverse element (RFC 5103, PEN 29305) has the same field name as its forward element and
    comes after it in the record, e.g. ``cflow.octets`` = [forward, reverse].
  * Message header: observation domain id, sequence number, export time.

ipfixDump
  * IANA and RFC 5103 reverse elements by name, with libfixbuf's types: integers in decimal,
    float64 with ``%.8g``, booleans as the raw octet (1 true, 2 false), IPv6 not canonical
    (``2001:0db8::0001``, compared as addresses), strings as text, variable-length octet arrays
    as hex (--hexdump), timestamps as ``2023-11-14 22:13:21.123`` in UTC.
  * It drops the fraction of NTP timestamps (micro/nanoseconds print as .000000): compared to
    the second only.
  * Enterprise elements it does not know print as ``_alienInformationElement`` (named
    ``en<PEN>:id<id>`` by peers.py), fixed ones of up to 8 octets as an integer in host byte
    order.  We teach it Antrea's elements with an XML element file (``ANTREA`` below, typed from
    Antrea's published table independently of our registry) so that it decodes them by type.
  * Per record: the template id and which fields are options scope; per message: the header.
    It warns on stderr about sequence numbers that do not follow RFC 7011 section 3.1.
"""

from __future__ import annotations

import calendar
import ipaddress
import re
import struct
import time

import peers
import pytest

from ipfix_antrea import Encoder, Session

EXPORT_TIME = 1_700_000_000  # 2023-11-14 22:13:20 UTC
# Above 2**31 on purpose: a signed 32-bit reading breaks here.
OBSERVATION_DOMAIN_ID = 0x8000_0005

# ---------------------------------------------------------------------------------------------
# Element tables: the abstract type of each element used here, written independently of the
# library's registry (IANA's registry; Antrea's table for PEN 56506; RFC 5103 for reverse).

IANA_TYPES = {
    "protocolIdentifier": "unsigned8",
    "sourceTransportPort": "unsigned16",
    "destinationTransportPort": "unsigned16",
    "ingressInterface": "unsigned32",
    "octetDeltaCount": "unsigned64",
    "packetDeltaCount": "unsigned64",
    "octetTotalCount": "unsigned64",
    "packetTotalCount": "unsigned64",
    "mibObjectValueInteger": "signed32",
    "samplingProbability": "float64",
    "dataRecordsReliability": "boolean",
    "sourceMacAddress": "macAddress",
    "sourceIPv4Address": "ipv4Address",
    "destinationIPv4Address": "ipv4Address",
    "destinationIPv6Address": "ipv6Address",
    "interfaceName": "string",
    "ipHeaderPacketSection": "octetArray",
    "observationTimeSeconds": "dateTimeSeconds",
    "observationTimeMilliseconds": "dateTimeMilliseconds",
    "observationTimeMicroseconds": "dateTimeMicroseconds",
    "observationTimeNanoseconds": "dateTimeNanoseconds",
    "meteringProcessId": "unsigned32",
    "systemInitTimeMilliseconds": "dateTimeMilliseconds",
    "selectorAlgorithm": "unsigned16",
    "samplingPacketInterval": "unsigned32",
    "reverseOctetDeltaCount": "unsigned64",
    "reversePacketDeltaCount": "unsigned64",
    "reverseOctetTotalCount": "unsigned64",
    "reversePacketTotalCount": "unsigned64",
}

# Antrea's enterprise elements (PEN 56506), ids 100-159: element id, name, abstract type.
ANTREA_PEN = 56506
ANTREA_TABLE = """
        100 sourcePodNamespace string
        101 sourcePodName string
        102 destinationPodNamespace string
        103 destinationPodName string
        104 sourceNodeName string
        105 destinationNodeName string
        106 destinationClusterIPv4 ipv4Address
        107 destinationClusterIPv6 ipv6Address
        108 destinationServicePort unsigned16
        109 destinationServicePortName string
        110 ingressNetworkPolicyName string
        111 ingressNetworkPolicyNamespace string
        112 egressNetworkPolicyName string
        113 egressNetworkPolicyNamespace string
        114 ingressNetworkPolicyUID string
        115 ingressNetworkPolicyType unsigned8
        116 ingressNetworkPolicyRulePriority signed32
        117 egressNetworkPolicyUID string
        118 egressNetworkPolicyType unsigned8
        119 egressNetworkPolicyRulePriority signed32
        120 packetTotalCountFromSourceNode unsigned64
        121 octetTotalCountFromSourceNode unsigned64
        122 packetDeltaCountFromSourceNode unsigned64
        123 octetDeltaCountFromSourceNode unsigned64
        124 reversePacketTotalCountFromSourceNode unsigned64
        125 reverseOctetTotalCountFromSourceNode unsigned64
        126 reversePacketDeltaCountFromSourceNode unsigned64
        127 reverseOctetDeltaCountFromSourceNode unsigned64
        128 packetTotalCountFromDestinationNode unsigned64
        129 octetTotalCountFromDestinationNode unsigned64
        130 packetDeltaCountFromDestinationNode unsigned64
        131 octetDeltaCountFromDestinationNode unsigned64
        132 reversePacketTotalCountFromDestinationNode unsigned64
        133 reverseOctetTotalCountFromDestinationNode unsigned64
        134 reversePacketDeltaCountFromDestinationNode unsigned64
        135 reverseOctetDeltaCountFromDestinationNode unsigned64
        136 tcpState string
        137 flowType unsigned8
        138 tcpStatePrevList string
        139 ingressNetworkPolicyRuleAction unsigned8
        140 egressNetworkPolicyRuleAction unsigned8
        141 ingressNetworkPolicyRuleName string
        142 egressNetworkPolicyRuleName string
        143 sourcePodLabels string
        144 destinationPodLabels string
        145 throughput unsigned64
        146 reverseThroughput unsigned64
        147 throughputFromSourceNode unsigned64
        148 throughputFromDestinationNode unsigned64
        149 reverseThroughputFromSourceNode unsigned64
        150 reverseThroughputFromDestinationNode unsigned64
        151 flowEndSecondsFromSourceNode dateTimeSeconds
        152 flowEndSecondsFromDestinationNode dateTimeSeconds
        153 egressName string
        154 egressIP string
        155 appProtocolName string
        156 httpVals string
        157 egressNodeName string
        158 clusterId string
        159 sourcePodUUID octetArray
"""
ANTREA = [(int(i), n, t) for i, n, t in map(str.split, ANTREA_TABLE.strip().splitlines())]
ANTREA_TYPES = {name: t for _, name, t in ANTREA}
TYPES = {**IANA_TYPES, **ANTREA_TYPES}

# tshark's field for each IANA / reverse element compared with it.
TSHARK_NAME = {
    "protocolIdentifier": "cflow.protocol",
    "sourceTransportPort": "cflow.srcport",
    "destinationTransportPort": "cflow.dstport",
    "ingressInterface": "cflow.inputint",
    "octetDeltaCount": "cflow.octets",
    "packetDeltaCount": "cflow.packets",
    "reverseOctetDeltaCount": "cflow.octets",
    "reversePacketDeltaCount": "cflow.packets",
    "mibObjectValueInteger": "cflow.mib_object_value_integer",
    "samplingProbability": "cflow.sampling_probability",
    "dataRecordsReliability": "cflow.data_records_reliability",
    "sourceMacAddress": "cflow.srcmac",
    "sourceIPv4Address": "cflow.srcaddr",
    "destinationIPv4Address": "cflow.dstaddr",
    "destinationIPv6Address": "cflow.dstaddrv6",
    "interfaceName": "cflow.if_name",
    "ipHeaderPacketSection": "cflow.section_header",
    "observationTimeSeconds": "cflow.observation_time_seconds",
    "observationTimeMilliseconds": "cflow.observation_time_milliseconds",
    "observationTimeMicroseconds": "cflow.observation_time_microseconds",
    "observationTimeNanoseconds": "cflow.observation_time_nanoseconds",
    "meteringProcessId": "cflow.mp_id",
    "systemInitTimeMilliseconds": "cflow.sys_init_time",
    "selectorAlgorithm": "cflow.selector_algorithm",
    "samplingPacketInterval": "cflow.sampling_packet_interval",
}

# ---------------------------------------------------------------------------------------------
# What we encode.  Several records per template, so that every data set holds several records.

T_IANA, T_REDUCED, T_ANTREA, T_OPTIONS, T_WIDE = 300, 301, 302, 303, 304

IANA_FIELDS = [
    "protocolIdentifier", "sourceTransportPort", "destinationTransportPort", "ingressInterface",
    "octetDeltaCount", "packetDeltaCount", "mibObjectValueInteger", "samplingProbability",
    "dataRecordsReliability", "sourceMacAddress", "sourceIPv4Address", "destinationIPv4Address",
    "destinationIPv6Address", "interfaceName", "ipHeaderPacketSection", "observationTimeSeconds",
    "observationTimeMilliseconds", "observationTimeMicroseconds", "observationTimeNanoseconds",
]
IANA_RECORDS = [
    {
        "protocolIdentifier": 6,
        "sourceTransportPort": 443,
        "destinationTransportPort": 65535,
        "ingressInterface": 4_294_967_295,
        "octetDeltaCount": 2**64 - 1,
        "packetDeltaCount": 0,
        "mibObjectValueInteger": -(2**31),
        "samplingProbability": 0.5,
        "dataRecordsReliability": True,
        "sourceMacAddress": "00:1b:21:aa:bb:cc",
        "sourceIPv4Address": "10.0.0.1",
        "destinationIPv4Address": "255.255.255.255",
        "destinationIPv6Address": "2001:db8::1",
        "interfaceName": "eth0",
        "ipHeaderPacketSection": bytes.fromhex("4500003c1c4640004006b1e6"),
        "observationTimeSeconds": 1_700_000_001,
        "observationTimeMilliseconds": 1_700_000_002_123,
        "observationTimeMicroseconds": 1_700_000_003_123_456,
        "observationTimeNanoseconds": 1_700_000_004_123_456_789,
    },
    {
        "protocolIdentifier": 17,
        "sourceTransportPort": 53,
        "destinationTransportPort": 0,
        "ingressInterface": 7,
        "octetDeltaCount": 123_456_789_012,
        "packetDeltaCount": 2**32,
        "mibObjectValueInteger": 2**31 - 1,
        "samplingProbability": 1 / 3,
        "dataRecordsReliability": False,
        "sourceMacAddress": "ff:ff:ff:ff:ff:fe",
        "sourceIPv4Address": "192.168.253.128",
        "destinationIPv4Address": "0.0.0.0",
        "destinationIPv6Address": "fe80::1:2:3:4",
        "interfaceName": "vétho-ü",  # non-ASCII: UTF-8 on the wire
        "ipHeaderPacketSection": bytes(range(256)) * 2,  # 512 octets: 3-byte length form
        "observationTimeSeconds": 0,
        "observationTimeMilliseconds": 999,
        "observationTimeMicroseconds": 1_700_000_003_000_001,
        "observationTimeNanoseconds": 1_700_000_004_000_000_001,
    },
    {
        "protocolIdentifier": 255,
        "sourceTransportPort": 1,
        "destinationTransportPort": 8080,
        "ingressInterface": 0,
        "octetDeltaCount": 1,
        "packetDeltaCount": 3,
        "mibObjectValueInteger": -1,
        "samplingProbability": -1.25e-10,
        "dataRecordsReliability": True,
        "sourceMacAddress": "02:00:00:00:00:01",
        "sourceIPv4Address": "1.2.3.4",
        "destinationIPv4Address": "224.0.0.251",
        "destinationIPv6Address": "::ffff:10.0.0.1",
        "interfaceName": "x" * 254,  # the longest value of the 1-byte length form
        "ipHeaderPacketSection": b"\x00",
        "observationTimeSeconds": 4_294_967_295,
        "observationTimeMilliseconds": 1_700_000_002_000,
        "observationTimeMicroseconds": 1_700_000_003_999_999,
        "observationTimeNanoseconds": 1_700_000_004_999_999_999,
    },
]

# Reduced-size encoding (RFC 7011 section 6.2): (element, length on the wire).
REDUCED_FIELDS = [
    ("octetDeltaCount", 4),
    ("packetDeltaCount", 2),
    ("ingressInterface", 2),
    ("sourceTransportPort", 1),
    ("mibObjectValueInteger", 2),
    ("samplingProbability", 4),  # float64 sent as float32
]
REDUCED_RECORDS = [
    {"octetDeltaCount": 4_294_967_295, "packetDeltaCount": 65535, "ingressInterface": 513,
     "sourceTransportPort": 255, "mibObjectValueInteger": -32768, "samplingProbability": 0.25},
    {"octetDeltaCount": 0, "packetDeltaCount": 1, "ingressInterface": 0,
     "sourceTransportPort": 0, "mibObjectValueInteger": 32767, "samplingProbability": -1.5},
    {"octetDeltaCount": 260, "packetDeltaCount": 5, "ingressInterface": 65535,
     "sourceTransportPort": 22, "mibObjectValueInteger": -1, "samplingProbability": 1024.0},
]

ANTREA_FIELDS = [
    "sourceIPv4Address",
    "destinationIPv4Address",
    "octetDeltaCount",
    "reverseOctetDeltaCount",
    "packetDeltaCount",
    "reversePacketDeltaCount",
    "sourcePodName",
    "sourcePodNamespace",
    "destinationClusterIPv4",
    "destinationClusterIPv6",
    "destinationServicePort",
    "ingressNetworkPolicyRulePriority",
    "flowType",
    "packetTotalCountFromSourceNode",
    "flowEndSecondsFromSourceNode",
    "sourcePodUUID",
]
ANTREA_RECORDS = [
    {
        "sourceIPv4Address": "10.10.0.5",
        "destinationIPv4Address": "10.10.1.7",
        "octetDeltaCount": 1000,
        "reverseOctetDeltaCount": 2000,
        "packetDeltaCount": 10,
        "reversePacketDeltaCount": 20,
        "sourcePodName": "frontend-" + "a" * 291,  # 300 octets: 3-byte length form
        "sourcePodNamespace": "default",
        "destinationClusterIPv4": "10.96.0.10",
        "destinationClusterIPv6": "fd00:10:96::a",
        "destinationServicePort": 53,
        "ingressNetworkPolicyRulePriority": -100,
        "flowType": 1,
        "packetTotalCountFromSourceNode": 2**63,
        "flowEndSecondsFromSourceNode": 1_700_000_100,
        "sourcePodUUID": bytes.fromhex("0123456789abcdef0123456789abcdef"),
    },
    {
        "sourceIPv4Address": "10.10.0.6",
        "destinationIPv4Address": "10.10.2.8",
        "octetDeltaCount": 0,
        "reverseOctetDeltaCount": 2**64 - 1,
        "packetDeltaCount": 1,
        "reversePacketDeltaCount": 0,
        "sourcePodName": "p" * 255,  # the shortest value that needs the 3-byte length form
        "sourcePodNamespace": "kube-système",
        "destinationClusterIPv4": "0.0.0.0",
        "destinationClusterIPv6": "::",
        "destinationServicePort": 65535,
        "ingressNetworkPolicyRulePriority": 2**31 - 1,
        "flowType": 3,
        "packetTotalCountFromSourceNode": 0,
        "flowEndSecondsFromSourceNode": 0,
        "sourcePodUUID": bytes(16),
    },
    {
        "sourceIPv4Address": "10.10.0.7",
        "destinationIPv4Address": "10.10.3.9",
        "octetDeltaCount": 5,
        "reverseOctetDeltaCount": 6,
        "packetDeltaCount": 7,
        "reversePacketDeltaCount": 8,
        "sourcePodName": "q" * 254,
        "sourcePodNamespace": "ns",
        "destinationClusterIPv4": "10.96.255.255",
        "destinationClusterIPv6": "2001:db8:ffff::ffff",
        "destinationServicePort": 0,
        "ingressNetworkPolicyRulePriority": -(2**31),
        "flowType": 2,
        "packetTotalCountFromSourceNode": 12345,
        "flowEndSecondsFromSourceNode": 4_294_967_295,
        "sourcePodUUID": b"\xff" * 16,
    },
]

OPTIONS_FIELDS = ["meteringProcessId", "systemInitTimeMilliseconds", "selectorAlgorithm",
                  "samplingPacketInterval"]
OPTIONS_SCOPE_COUNT = 1
OPTIONS_RECORDS = [
    {"meteringProcessId": 2679, "systemInitTimeMilliseconds": 1_431_516_013_506,
     "selectorAlgorithm": 1, "samplingPacketInterval": 1},
    {"meteringProcessId": 2680, "systemInitTimeMilliseconds": 1_700_000_000_001,
     "selectorAlgorithm": 2, "samplingPacketInterval": 100},
]

# 70 fields, as many as Antrea's Flow Aggregator template: over tshark's default limit of 60.
WIDE_IANA = ["sourceIPv4Address", "destinationIPv4Address", "sourceTransportPort",
             "destinationTransportPort", "protocolIdentifier", "packetTotalCount",
             "octetTotalCount", "packetDeltaCount", "octetDeltaCount",
             "reversePacketTotalCount", "reverseOctetTotalCount"]
WIDE_FIELDS = WIDE_IANA + [name for eid, name, _ in ANTREA if eid <= 158]
assert len(WIDE_FIELDS) == 70


def _wide_value(name: str, k: int):
    t = TYPES[name]
    if t == "string":
        return f"{name}-{k}"
    if t == "ipv4Address":
        return f"10.{k}.0.{len(name)}"
    if t == "ipv6Address":
        return f"fd00::{k}:{len(name)}"
    if t == "signed32":
        return -len(name) * (k + 1)
    if t == "dateTimeSeconds":
        return EXPORT_TIME - len(name) - k
    return (len(name) * (k + 7)) % 250  # fits every unsigned width


WIDE_RECORDS = [{name: _wide_value(name, k) for name in WIDE_FIELDS} for k in range(2)]

TEMPLATES = {
    T_IANA: (IANA_FIELDS, 0, IANA_RECORDS),
    T_REDUCED: (REDUCED_FIELDS, 0, REDUCED_RECORDS),
    T_ANTREA: (ANTREA_FIELDS, 0, ANTREA_RECORDS),
    T_OPTIONS: (OPTIONS_FIELDS, OPTIONS_SCOPE_COUNT, OPTIONS_RECORDS),
    T_WIDE: (WIDE_FIELDS, 0, WIDE_RECORDS),
}


def _field_names(fields) -> list[str]:
    return [f[0] if isinstance(f, tuple) else f for f in fields]


class Exported:
    """The messages of one encoder: templates first, then one data message per template."""

    def __init__(self):
        enc = Encoder(observation_domain_id=OBSERVATION_DOMAIN_ID, export_time=lambda: EXPORT_TIME)
        for tid, (fields, scope_count, _) in TEMPLATES.items():
            enc.add_template(tid, fields, scope_count=scope_count)
        self.messages: list[bytes] = list(enc.template_messages())
        # (template id, record as dict, sequence number of its message), in stream order
        self.records: list[tuple[int, dict, int]] = []
        for tid, (fields, _, records) in TEMPLATES.items():
            names = _field_names(fields)
            # half by name (dicts), half positionally (tuples): both forms of the contract
            rows = [r if i % 2 else tuple(r[n] for n in names) for i, r in enumerate(records)]
            for msg in enc.encode(tid, rows):
                seq = struct.unpack_from("!I", msg, 8)[0]
                self.messages.append(msg)
                count = _data_record_count(msg)
                for r in records[:count]:
                    self.records.append((tid, r, seq))
                records = records[count:]
            assert not records, "every record went into a message"
        self.stream = b"".join(self.messages)

    def expected(self, tid: int) -> list[dict]:
        return [r for t, r, _ in self.records if t == tid]


def _data_record_count(msg: bytes) -> int:
    """Records in a message's data sets, counted by walking the sets with our tables."""
    return sum(_count_in_set(set_id, msg[i + 4 : i + length])
               for set_id, length, i in _sets(msg) if set_id >= 256)


def _sets(msg: bytes):
    """(set id, set length, offset) of each set of a message (RFC 7011 section 3.3.1)."""
    i = 16
    while i < len(msg):
        set_id, length = struct.unpack_from("!HH", msg, i)
        yield set_id, length, i
        i += length


def _count_in_set(tid: int, body: bytes) -> int:
    """Walk a data set's records using the field lengths we asked for."""
    fields, _, _ = TEMPLATES[tid]
    lengths = [_wire_length(f) for f in fields]
    pos, count = 0, 0
    while pos < len(body):
        start = pos
        for length in lengths:
            if length is None:
                size = body[pos]
                pos += 1
                if size == 255:
                    size = struct.unpack_from("!H", body, pos)[0]
                    pos += 2
                pos += size
            else:
                pos += length
            if pos > len(body):
                return count  # padding
        if pos == start:
            break
        count += 1
    return count


_NATURAL = {"unsigned8": 1, "unsigned16": 2, "unsigned32": 4, "unsigned64": 8, "signed32": 4,
            "float64": 8, "boolean": 1, "macAddress": 6, "ipv4Address": 4, "ipv6Address": 16,
            "dateTimeSeconds": 4, "dateTimeMilliseconds": 8, "dateTimeMicroseconds": 8,
            "dateTimeNanoseconds": 8}


def _wire_length(field) -> int | None:
    if isinstance(field, tuple):
        return field[1]
    if field == "sourcePodUUID":
        return 16
    return _NATURAL.get(TYPES[field])  # None: variable length


@pytest.fixture(scope="module")
def exported() -> Exported:
    return Exported()


@pytest.fixture(scope="module")
def antrea_xml(tmp_path_factory):
    path = tmp_path_factory.mktemp("fixbuf") / "antrea.xml"
    path.write_text(
        peers.fixbuf_element_xml((name, ANTREA_PEN, eid, t) for eid, name, t in ANTREA),
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def tshark_out(exported):
    return peers.tshark_records(exported.messages)


@pytest.fixture(scope="module")
def ipfixdump_out(exported, antrea_xml):
    return peers.ipfixdump(exported.stream, element_files=[antrea_xml])


def _of(records: list[dict], tid: int) -> list[dict]:
    return [r for r in records if r["_template_id"] == tid]


# ---------------------------------------------------------------------------------------------
# Turning each peer's text into something comparable with what we encoded.

_TSHARK_TIME = re.compile(r"^(\w{3}) +(\d+), (\d+) (\d\d):(\d\d):(\d\d)\.(\d{9}) UTC$")
_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def _tshark_ns(text: str) -> int:
    m = _TSHARK_TIME.match(text)
    assert m, f"not a tshark time: {text!r}"
    mon, day, year, hh, mm, ss, frac = m.groups()
    secs = calendar.timegm((int(year), _MONTHS[mon], int(day), int(hh), int(mm), int(ss)))
    return secs * 10**9 + int(frac)


def _fixbuf_time(text: str) -> tuple[int, str]:
    """ipfixDump's UTC time: (seconds since 1970, digits after the point)."""
    whole, _, frac = text.partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%d %H:%M:%S")), frac


def tshark_view(dtype: str, value, shown: str):
    """(what tshark shows, what it should show) for one field, both comparable."""
    if dtype.startswith(("unsigned", "signed")):
        return int(shown), value
    if dtype == "float64":
        return shown, f"{value:.15g}"
    if dtype == "boolean":
        # tshark prints any non-zero octet as true; RFC 7011 false (2) is non-zero too.
        return shown, "1"
    if dtype == "macAddress":
        return shown.lower(), value.lower()
    if dtype in ("ipv4Address", "ipv6Address"):
        return ipaddress.ip_address(shown), ipaddress.ip_address(value)
    if dtype == "string":
        return shown, value
    if dtype == "octetArray":
        return shown.replace(":", ""), value.hex()
    ns = _tshark_ns(shown)
    if dtype == "dateTimeSeconds":
        return ns, value * 10**9
    if dtype == "dateTimeMilliseconds":
        return ns, value * 10**6
    if dtype == "dateTimeMicroseconds":  # tshark truncates; the encoder rounds up for that
        return ns // 1000, value
    if dtype == "dateTimeNanoseconds":  # NTP resolution is 0.23 ns; tshark truncates
        return (value if abs(ns - value) <= 1 else ns), value
    raise AssertionError(f"no tshark view for {dtype}")


def ipfixdump_view(dtype: str, value, shown: str):
    """(what ipfixDump shows, what it should show) for one field, both comparable."""
    if dtype.startswith(("unsigned", "signed")):
        return int(shown), value
    if dtype == "float64":
        return shown, f"{value:.8g}"
    if dtype == "boolean":
        return shown, "1" if value else "2"  # the octet, RFC 7011 section 6.1.5
    if dtype == "macAddress":
        return shown.lower(), value.lower()
    if dtype in ("ipv4Address", "ipv6Address"):
        return ipaddress.ip_address(shown), ipaddress.ip_address(value)
    if dtype == "string":
        return shown, value
    if dtype == "octetArray":
        return shown, value.hex()
    secs, frac = _fixbuf_time(shown)
    if dtype == "dateTimeSeconds":
        return secs, value
    if dtype == "dateTimeMilliseconds":
        return secs * 1000 + int(frac), value
    if dtype == "dateTimeMicroseconds":  # ipfixDump 2.4.1 prints the fraction as zeros
        return secs, value // 10**6
    if dtype == "dateTimeNanoseconds":
        return secs, value // 10**9
    raise AssertionError(f"no ipfixDump view for {dtype}")


def _compare(view, records: list[dict], expected: list[dict], names) -> None:
    """Each decoded record against the one we encoded, field by field, through ``view``."""
    assert len(records) == len(expected), "records decoded vs encoded"
    for i, (got, want) in enumerate(zip(records, expected, strict=True)):
        shown, should = {}, {}
        for name in names:
            if name not in got:
                shown[name] = "<missing>"
                should[name] = want[name]
                continue
            shown[name], should[name] = view(TYPES[name], want[name], got[name])
        assert shown == should, f"record {i}"


def _tshark_single(records: list[dict], names) -> list[dict]:
    """tshark records with repeated field names (forward, reverse) split by position."""
    out = []
    for rec in records:
        seen: dict[str, int] = {}
        flat = {}
        for name in names:
            field = TSHARK_NAME[name]
            k = seen.get(field, 0)
            seen[field] = k + 1
            values = peers.as_list(rec.get(field))
            if k < len(values):
                flat[name] = values[k]
        out.append(flat)
    return out


# ---------------------------------------------------------------------------------------------
# Message framing and record counts


def test_tshark_decodes_every_record_of_every_template(exported, tshark_out):
    assert [r["_template_id"] for r in tshark_out] == [t for t, _, _ in exported.records]


def test_ipfixdump_decodes_every_record_of_every_template(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    assert [r["_template_id"] for r in records] == [t for t, _, _ in exported.records]


def test_tshark_reads_the_message_headers(exported, tshark_out):
    shown = [(r["_observation_domain_id"], r["_export_time"], r["_sequence_number"])
             for r in tshark_out]
    assert shown == [(OBSERVATION_DOMAIN_ID, EXPORT_TIME, seq) for _, _, seq in exported.records]


def test_ipfixdump_reads_the_message_headers(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    shown = [(r["_observation_domain_id"], r["_export_time"], r["_sequence_number"])
             for r in records]
    assert shown == [(OBSERVATION_DOMAIN_ID, EXPORT_TIME, seq) for _, _, seq in exported.records]


def test_sequence_numbers_count_the_data_records_before_each_message(exported):
    # RFC 7011 section 3.1, checked on the bytes; ipfixDump checks it independently below.
    sent = 0
    for msg in exported.messages:
        assert struct.unpack_from("!I", msg, 8)[0] == sent
        sent += _data_record_count(msg)
    assert sent == len(exported.records)


def test_ipfixdump_reports_no_warning_on_the_stream(ipfixdump_out):
    # libfixbuf warns about sequence numbers out of order, sets without template, bad lengths.
    _, warnings = ipfixdump_out
    assert warnings == []


# ---------------------------------------------------------------------------------------------
# IANA elements of every abstract type, natural lengths


def test_tshark_decodes_iana_elements_of_every_type(exported, tshark_out):
    _compare(tshark_view, _tshark_single(_of(tshark_out, T_IANA), IANA_FIELDS),
             exported.expected(T_IANA), IANA_FIELDS)


def test_ipfixdump_decodes_iana_elements_of_every_type(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    _compare(ipfixdump_view, _of(records, T_IANA), exported.expected(T_IANA), IANA_FIELDS)


# ---------------------------------------------------------------------------------------------
# Reduced-size encoding


def test_tshark_decodes_reduced_size_fields(exported, tshark_out):
    # float64 sent in 4 octets: tshark prints the float32 with %g, so compare it as a number.
    names = [n for n, _ in REDUCED_FIELDS if n != "samplingProbability"]
    got = _of(tshark_out, T_REDUCED)
    _compare(tshark_view, _tshark_single(got, names), exported.expected(T_REDUCED), names)
    floats = [float(r["cflow.sampling_probability"]) for r in got]
    assert floats == [r["samplingProbability"] for r in exported.expected(T_REDUCED)]


def test_ipfixdump_decodes_reduced_size_fields(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    names = [n for n, _ in REDUCED_FIELDS]
    _compare(ipfixdump_view, _of(records, T_REDUCED), exported.expected(T_REDUCED), names)


# ---------------------------------------------------------------------------------------------
# Antrea enterprise elements (PEN 56506) and RFC 5103 reverse elements (PEN 29305)

ANTREA_ONLY = [n for n in ANTREA_FIELDS if n in ANTREA_TYPES]


def _raw(dtype: str, value) -> bytes:
    """The value's encoding at its natural length: what tshark shows for enterprise fields."""
    if dtype == "string":
        return value.encode("utf-8")
    if dtype == "octetArray":
        return value
    if dtype in ("ipv4Address", "ipv6Address"):
        return ipaddress.ip_address(value).packed
    if dtype == "signed32":
        return struct.pack("!i", value)
    fmt = {"unsigned8": "!B", "unsigned16": "!H", "unsigned32": "!I", "unsigned64": "!Q",
           "dateTimeSeconds": "!I"}[dtype]
    return struct.pack(fmt, value)


def test_tshark_shows_antrea_elements_as_their_encoded_bytes(exported, tshark_out):
    # tshark 4.0 knows the PEN's name ("Project Antrea") but none of its elements.
    got = [[v.replace(":", "") for v in peers.as_list(r.get("cflow.enterprise_private_entry"))]
           for r in _of(tshark_out, T_ANTREA)]
    want = [[_raw(ANTREA_TYPES[n], r[n]).hex() for n in ANTREA_ONLY]
            for r in exported.expected(T_ANTREA)]
    assert got == want


def test_tshark_sees_the_three_byte_length_form_from_255_octets(exported, tshark_out):
    # RFC 7011 section 7: 255 then a 2-byte length.  tshark shows both length fields.
    got = [peers.as_list(r.get("cflow.string_len_long")) for r in _of(tshark_out, T_ANTREA)]
    want = [[str(len(r["sourcePodName"].encode()))] if len(r["sourcePodName"].encode()) >= 255
            else [] for r in exported.expected(T_ANTREA)]
    assert got == want
    assert want[0] and want[1] and not want[2]  # 300, 255 and 254 octets


def test_tshark_decodes_reverse_elements_after_their_forward_ones(exported, tshark_out):
    names = ["octetDeltaCount", "reverseOctetDeltaCount", "packetDeltaCount",
             "reversePacketDeltaCount", "sourceIPv4Address", "destinationIPv4Address"]
    # the template puts each reverse element right after its forward one
    _compare(tshark_view, _tshark_single(_of(tshark_out, T_ANTREA), names),
             exported.expected(T_ANTREA), names)


def test_ipfixdump_decodes_antrea_elements_by_type(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    _compare(ipfixdump_view, _of(records, T_ANTREA), exported.expected(T_ANTREA), ANTREA_ONLY)


def test_ipfixdump_decodes_reverse_elements_by_name(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    names = ["octetDeltaCount", "reverseOctetDeltaCount", "packetDeltaCount",
             "reversePacketDeltaCount"]
    _compare(ipfixdump_view, _of(records, T_ANTREA), exported.expected(T_ANTREA), names)


def test_ipfixdump_without_antrea_elements_still_frames_them(exported):
    # Without the element file, Antrea's fields are opaque: the variable-length ones come out as
    # their bytes, which checks the framing against libfixbuf's own reader.
    records = _of(peers.ipfixdump_records(exported.stream), T_ANTREA)
    got = [(r["en56506:id101"], r["en56506:id100"], r["en56506:id159"]) for r in records]
    want = [(r["sourcePodName"].encode().hex(), r["sourcePodNamespace"].encode().hex(),
             r["sourcePodUUID"].hex()) for r in exported.expected(T_ANTREA)]
    assert got == want


# ---------------------------------------------------------------------------------------------
# Options template


def test_tshark_decodes_options_records(exported, tshark_out):
    _compare(tshark_view, _tshark_single(_of(tshark_out, T_OPTIONS), OPTIONS_FIELDS),
             exported.expected(T_OPTIONS), OPTIONS_FIELDS)


def test_ipfixdump_decodes_options_records_with_their_scope(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    got = _of(records, T_OPTIONS)
    _compare(ipfixdump_view, got, exported.expected(T_OPTIONS), OPTIONS_FIELDS)
    assert [r["_scope_count"] for r in got] == [OPTIONS_SCOPE_COUNT] * len(got)


# ---------------------------------------------------------------------------------------------
# A template as wide as Antrea's Flow Aggregator's (70 fields)


def test_tshark_decodes_a_70_field_template(exported, tshark_out):
    got = _of(tshark_out, T_WIDE)
    names = ["sourceIPv4Address", "destinationIPv4Address", "sourceTransportPort",
             "destinationTransportPort", "protocolIdentifier"]
    _compare(tshark_view, _tshark_single(got, names), exported.expected(T_WIDE), names)
    antrea = [n for n in WIDE_FIELDS if n in ANTREA_TYPES]
    assert [[v.replace(":", "") for v in peers.as_list(r.get("cflow.enterprise_private_entry"))]
            for r in got] == [[_raw(ANTREA_TYPES[n], r[n]).hex() for n in antrea]
                              for r in exported.expected(T_WIDE)]


def test_ipfixdump_decodes_a_70_field_template(exported, ipfixdump_out):
    records, _ = ipfixdump_out
    _compare(ipfixdump_view, _of(records, T_WIDE), exported.expected(T_WIDE), WIDE_FIELDS)


# ---------------------------------------------------------------------------------------------
# Our own decoder on the same bytes


def _ours(dtype: str, value):
    """What the library's Session gives for a value we encoded (docs/library.md)."""
    if dtype in ("ipv4Address", "ipv6Address"):
        address = ipaddress.ip_address(value)
        mapped = getattr(address, "ipv4_mapped", None)
        # RFC 5952 section 5: IPv4-mapped addresses keep the dotted quad
        return f"::ffff:{mapped}" if mapped else str(address)
    if dtype == "macAddress":
        return value.lower()
    return value


def test_session_decodes_the_encoder_output_to_the_same_values(exported):
    session = Session()
    records = session.feed(exported.stream)
    assert [r.template_id for r in records] == [t for t, _, _ in exported.records]
    for r, (tid, want, seq) in zip(records, exported.records, strict=True):
        names = _field_names(TEMPLATES[tid][0])
        got = {n: r[n] for n in names}
        assert got == {n: _ours(TYPES[n], want[n]) for n in names}, f"template {tid}"
        assert (r.observation_domain_id, r.export_time, r.sequence_number) == (
            OBSERVATION_DOMAIN_ID, EXPORT_TIME, seq)
