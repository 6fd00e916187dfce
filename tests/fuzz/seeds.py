"""The seed corpus of the fuzz targets, built from what the repository already has.

- every session of the real-exporter corpus (``tests/data/corpus``: softflowd, pflow, MikroTik,
  Juniper, NetScaler, YAF, Cisco AVC, go-ipfix's valid and malformed vectors...), its files in
  send order;
- the bundled Flow Aggregator sample (``ipfix_antrea/data/sample-flow-aggregator.ipfix``);
- encoder output: a template of every abstract type with reduced sizes and long variable-length
  values, RFC 6313 lists (nested, a template that carries itself, and once deeper than the
  decoder allows), an options template, two observation domains, a redefinition, a withdrawal,
  and templates refreshed in front of data, in 512-octet messages.

Each seed is ``CONTROL`` zero octets and the octets. Run as a script to write them::

    python3 tests/fuzz/seeds.py DIRECTORY
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # tests/: corpus

from corpus import all_sessions
from targets import CONTROL

from ipfix_antrea import BasicList, Encoder, SubTemplateList, SubTemplateMultiList
from ipfix_antrea.structured import MAX_NESTING

SAMPLE = Path(__file__).resolve().parents[2] / "ipfix_antrea" / "data" / \
    "sample-flow-aggregator.ipfix"

EVERY_TYPE = [  # (field, value): one element of each abstract type
    ("octetDeltaCount", 1 << 40), (("packetDeltaCount", 2), 513), ("protocolIdentifier", 6),
    ("tcpControlBits", 0x12), ("ingressInterface", 7), ("mibObjectValueInteger", -5),
    ("samplingProbability", 0.25), (("samplingProbability", 4), 0.5),
    ("dataRecordsReliability", True), ("sourceMacAddress", "00:1b:21:aa:bb:cc"),
    ("sourceIPv4Address", "10.0.0.1"), ("sourceIPv6Address", "2001:db8::1"),
    ("flowStartSeconds", 1_700_000_000), ("flowStartMilliseconds", 1_700_000_000_123),
    ("flowStartMicroseconds", 1_700_000_000_123_456),
    ("flowStartNanoseconds", 1_700_000_000_123_456_789), ("interfaceName", "eth0"),
    ("sourcePodName", "p" * 300), ("mplsTopLabelStackSection", b"\x01\x02\x03"),
    (("en99:id7", 4), b"\xde\xad\xbe\xef"),
]


def encoder_stream() -> bytes:
    """Messages of the encoder exercising every type, lists, options and template changes."""
    now = [0.0]
    enc = Encoder(1, max_message_size=512, export_time=lambda: 1_700_000_000,
                  template_refresh=600, clock=lambda: now[0])
    enc.add_template(256, [f for f, _ in EVERY_TYPE])
    enc.add_template(257, ["sourceIPv4Address", ("destinationTransportPort", 2)])
    enc.add_template(258, ["basicList", "subTemplateList", "subTemplateMultiList"])
    enc.add_template(259, ["templateId", "exportingProcessId", "exportedMessageTotalCount"],
                     scope_count=2)
    enc.add_template(260, ["subTemplateList", ("octetDeltaCount", 1)])  # carries itself
    enc.add_template(261, ["basicList", "subTemplateMultiList"])
    ports = BasicList(enc.registry.by_name("destinationTransportPort"), [80, 443], 3, 2)
    lists = (ports, SubTemplateList(257, [("10.0.0.2", 53)], 4),
             SubTemplateMultiList([SubTemplateList(257, [("10.0.0.3", 80)])], 1))
    messages = enc.encode(256, [tuple(v for _, v in EVERY_TYPE)] * 2)
    messages += enc.encode(258, [lists])
    messages += enc.encode(259, [(256, 9, 1234)])
    stl = enc.registry.by_name("subTemplateList")
    messages += enc.encode(260, [(nested(3), 1), (nested(MAX_NESTING + 1), 2)])
    messages += enc.encode(261, [(BasicList(stl, [SubTemplateList(257, [("10.0.0.6", 8)])], 3),
                                  SubTemplateMultiList([SubTemplateList(260, [(nested(1), 7)])],
                                                       1))])
    other = Encoder(2, export_time=lambda: 1_700_000_001)
    other.add_template(256, ["sourceIPv4Address", "octetDeltaCount"])
    messages += other.template_messages() + other.encode(256, [("10.0.0.9", 1)])
    enc.add_template(257, ["destinationIPv4Address"])  # redefined
    messages += enc.encode(257, [("10.0.0.4",)])
    messages.append(enc.withdraw(258))
    now[0] = 600.0
    messages += enc.encode(257, [("10.0.0.5",)] * 3)  # refreshed in front of the data
    return b"".join(messages)


def nested(depth: int) -> SubTemplateList:
    """A subTemplateList of template 260 with ``depth`` more lists of 260 inside it."""
    value = SubTemplateList(257, [("10.0.0.1", 1)])
    for i in range(depth):
        value = SubTemplateList(260, [(value, i)])
    return value


def seeds() -> dict[str, bytes]:
    """Name -> seed (control octets, then IPFIX octets)."""
    streams = {f"corpus-{s.id}": b"".join(s.data()) for s in all_sessions()}
    streams["sample-flow-aggregator"] = SAMPLE.read_bytes()
    streams["encoder"] = encoder_stream()
    return {name: bytes(CONTROL) + octets for name, octets in streams.items()}


def main(directory: str) -> None:
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    for name, seed in seeds().items():
        digest = hashlib.sha1(seed).hexdigest()[:12]
        (out / f"{name.replace('/', '_')}-{digest}").write_bytes(seed)


if __name__ == "__main__":
    main(sys.argv[1])
