"""Loaders for the real-exporter corpus in tests/data/corpus.

The corpus (see tests/data/corpus/README.md) ships one ``index.json`` per folder, each written in
its own shape.  This module turns all of them into one list of :class:`CorpusSession` objects: the
files in send order, how to feed them (one UDP datagram per file, or a byte stream), how many data
records must come out, the expected values with the naming and rendering convention they were
written in, and the anomalies the decoder must report.  Nothing here decodes IPFIX records: the only
wire parsing is the 16-octet message header (to cross-check the index) and a minimal pcap reader
that pulls UDP payloads out of Ethernet/IPv4/IPv6 frames, so the tests need no dependency.

Conventions (``Expectation.convention``) say how an expected value is written:

``logstash``
    logstash-codec-netflow: IANA names, logstash vendor names for enterprise elements (mapped to
    PEN/id by the index's ``vendor_ie_definitions``), timestamps ISO 8601 UTC (except
    systemInitTimeMilliseconds: integer ms), octetArray lowercase hex, empty/NUL-only strings "".
``golden``
    flowbeat golden JSON: IANA names, dateTime* in a local zone offset, octetArray base64.
``consensus``
    values two independent decoders agreed on, rendered like logstash (ISO UTC, hex).
``plain``
    python values as written by the upstream test (ints, dotted IPs, ms integers).
"""
from __future__ import annotations

import base64
import calendar
import ipaddress
import json
import re
import struct
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

CORPUS = Path(__file__).resolve().parent / "data" / "corpus"

IPFIX_HEADER = struct.Struct(">HHIII")  # RFC 7011 s3.1: version, length, export time, seq, ODID


# --------------------------------------------------------------------------------------------
# data classes


@dataclass(frozen=True)
class Expectation:
    record: int          # index into the session's records (options records included); -1 = last
    field: str           # name as written by the source
    value: Any           # value as written by the source
    convention: str      # logstash | golden | consensus | plain
    source: str          # where the value comes from (upstream assert, golden file, ...)
    pen: int | None = None        # enterprise number when the source names a vendor element
    element_id: int | None = None
    vendor_type: str | None = None  # logstash type of a vendor element (uint16, string, ...)


@dataclass(frozen=True)
class MessageInfo:
    file: str
    index: int           # message index within the file
    export_time: int
    sequence: int
    observation_domain_id: int
    set_ids: tuple[int, ...]


@dataclass(frozen=True)
class RecordInfo:
    """What the index says about record #i of a session."""

    file: str
    message: int
    template_id: int
    options: bool


@dataclass
class CorpusSession:
    id: str
    folder: str
    files: list[str]
    mode: str                                  # "datagram" (decode_datagram per file) or "stream"
    records: int | None                        # data records expected (options included)
    expectations: list[Expectation] = field(default_factory=list)
    record_info: list[RecordInfo] | None = None
    messages: list[MessageInfo] = field(default_factory=list)
    # messages whose sequence number is not the expected one: [(ODID, expected, received)]
    sequence_anomalies: list[tuple[int, int, int]] | None = None
    missing_templates: list[int] = field(default_factory=list)  # template ids of data sets
    #                                            whose template never arrived, one per set
    nonzero_padding: list[int] = field(default_factory=list)  # set ids ending in non-zero octets
    templates_defined: int | None = None       # distinct (ODID, template id) pairs defined
    enterprise_ies: set[tuple[int, int]] | None = None  # (PEN, id) used by the templates
    invalid_lengths: list[tuple[int, int, int]] = field(default_factory=list)  # (PEN, id, length)
    duplicate_ie: dict[int, str] = field(default_factory=dict)  # record index -> element twice
    expect_decode_error: bool = False          # every file must raise DecodeError (or report)
    after_error_files: list[str] = field(default_factory=list)  # fed after a rejected file
    payloads: list[bytes] | None = None        # datagrams when they do not come from files
    notes: list[str] = field(default_factory=list)

    def data(self) -> list[bytes]:
        if self.payloads is not None:
            return list(self.payloads)
        return [(CORPUS / self.folder / f).read_bytes() for f in self.files]


@dataclass
class GoldenCase:
    """One flowbeat golden file: the events it lists and the records of ours they describe."""

    id: str
    golden: str
    session: CorpusSession        # what to feed
    selected: list[int]           # indexes of our records the golden events describe, in order
    events: list[dict]            # golden ``Fields.netflow`` dicts
    created: list[str]            # golden ``Fields.event.created`` (message export time)
    corrections: dict[tuple[int, str], Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# small helpers


@cache
def load_index(folder: str) -> dict:
    return json.loads((CORPUS / folder / "index.json").read_text())


def split_messages(data: bytes) -> list[bytes]:
    """Split a stream of IPFIX messages by their header length (no validation beyond that)."""
    out, off = [], 0
    while off + IPFIX_HEADER.size <= len(data):
        length = IPFIX_HEADER.unpack_from(data, off)[1]
        if length < IPFIX_HEADER.size:
            break
        out.append(data[off:off + length])
        off += length
    return out


def message_headers(data: bytes) -> list[tuple[int, int, int, int, int]]:
    return [IPFIX_HEADER.unpack_from(m) for m in split_messages(data)]


_ISO = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:?\d{2})?$")


def iso_to_ns(text: str) -> int:
    """ISO 8601 (any number of fraction digits, Z or +hh:mm) -> integer ns since 1970, exact."""
    m = _ISO.match(text)
    if not m:
        raise ValueError(f"not an ISO 8601 timestamp: {text!r}")
    y, mo, d, h, mi, s, frac, zone = m.groups()
    secs = calendar.timegm((int(y), int(mo), int(d), int(h), int(mi), int(s)))  # exact, any year
    ns = int((frac or "0").ljust(9, "0")[:9])
    if len(frac or "") > 9 and int(frac[9:]) != 0:
        raise ValueError(f"sub-nanosecond digits in {text!r}")
    offset = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        hh, mm = int(zone[1:3]), int(zone[-2:])
        offset = sign * (hh * 3600 + mm * 60)
    return (secs - offset) * 1_000_000_000 + ns


def b64(text: str) -> bytes:
    return base64.b64decode(text)


def canonical_ip(text: str) -> str:
    return str(ipaddress.ip_address(text))


# --------------------------------------------------------------------------------------------
# pcap


def read_pcap_udp(path: Path) -> list[tuple[str, str, bytes]]:
    """UDP payloads of a classic libpcap file: [(src "ip:port", dst "ip:port", payload)].

    Supports both byte orders, micro- and nanosecond magic, link types 1 (Ethernet, with 802.1Q
    tags), 101/228/229 (raw IP) and 113 (Linux cooked).  Non-UDP frames are skipped; IPv4
    fragments are not reassembled (an IPFIX exporter does not fragment in this corpus).
    """
    data = path.read_bytes()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise ValueError(f"{path}: not a classic pcap file (pcapng is not supported)")
    linktype = struct.unpack_from(endian + "I", data, 20)[0]
    out, off = [], 24
    rec = struct.Struct(endian + "IIII")
    while off + rec.size <= len(data):
        _, _, incl, _ = rec.unpack_from(data, off)
        off += rec.size
        frame = data[off:off + incl]
        off += incl
        if linktype == 1:
            ethertype, pos = struct.unpack_from(">H", frame, 12)[0], 14
            while ethertype in (0x8100, 0x88A8):
                ethertype, pos = struct.unpack_from(">H", frame, pos + 2)[0], pos + 4
        elif linktype == 113:
            ethertype, pos = struct.unpack_from(">H", frame, 14)[0], 16
        elif linktype in (101, 228, 229):
            ethertype = 0x0800 if frame[0] >> 4 == 4 else 0x86DD
            pos = 0
        else:
            raise ValueError(f"{path}: unsupported link type {linktype}")
        if ethertype == 0x0800:
            ihl = (frame[pos] & 0x0F) * 4
            proto = frame[pos + 9]
            total = struct.unpack_from(">H", frame, pos + 2)[0]
            src = str(ipaddress.IPv4Address(frame[pos + 12:pos + 16]))
            dst = str(ipaddress.IPv4Address(frame[pos + 16:pos + 20]))
            end = pos + total
            pos += ihl
        elif ethertype == 0x86DD:
            proto = frame[pos + 6]
            end = pos + 40 + struct.unpack_from(">H", frame, pos + 4)[0]
            src = str(ipaddress.IPv6Address(frame[pos + 8:pos + 24]))
            dst = str(ipaddress.IPv6Address(frame[pos + 24:pos + 40]))
            pos += 40
        else:
            continue
        if proto != 17:
            continue
        sport, dport, ulen = struct.unpack_from(">HHH", frame, pos)
        payload = frame[pos + 8:min(pos + ulen, end)]
        out.append((f"{src}:{sport}", f"{dst}:{dport}", bytes(payload)))
    return out


# --------------------------------------------------------------------------------------------
# sequence numbers


def sequence_anomalies(messages: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """[(odid, sequence, data records in message)] -> [(odid, expected, received)] for each
    message whose sequence number is not the previous one in the same observation domain plus
    that message's record count (RFC 7011 s3.1: the sequence number counts data records, options
    data records included, modulo 2^32)."""
    expected: dict[int, int] = {}
    out = []
    for odid, seq, n in messages:
        if odid in expected and expected[odid] != seq:
            out.append((odid, expected[odid], seq))
        expected[odid] = (seq + n) % 2**32
    return out


_IPFIXDUMP_SEQ = re.compile(
    r"out of sequence \(in domain ([0-9a-fA-F]+), expected 0x([0-9a-f]+), got 0x([0-9a-f]+)\)")


def ipfixdump_sequence_warnings(stderr: str) -> list[tuple[int, int, int]]:
    """ipfixDump's "IPFIX Message out of sequence" warnings as [(odid, expected, received)]."""
    return [(int(d, 16), int(e, 16), int(g, 16)) for d, e, g in _IPFIXDUMP_SEQ.findall(stderr)]


def _pen_ids(items) -> set[tuple[int, int]]:
    return {(int(x.split("/")[0]), int(x.split("/")[1])) for x in items}


# --------------------------------------------------------------------------------------------
# logstash


def logstash_vendor_ies() -> dict[str, tuple[int, int, str]]:
    """logstash vendor name -> (PEN, element id, logstash type), from the index's quotes of
    logstash-codec-netflow ipfix.yaml (``vendor_ie_definitions``)."""
    out: dict[str, tuple[int, int, str]] = {}
    for f in load_index("logstash")["files"]:
        for v in f.get("vendor_ie_definitions") or []:
            out[v["logstash_name"]] = (v["pen"], v["id"], v["logstash_type"])
    return out


def _logstash_files() -> dict[str, dict]:
    return {f["file"]: f for f in load_index("logstash")["files"]}


def _expectation(record, name, value, convention, source, vendor) -> Expectation:
    pen = eid = vtype = None
    if name in vendor:
        pen, eid, vtype = vendor[name]
    return Expectation(record, name, value, convention, source, pen, eid, vtype)


# index note of the yaf session: "derived expectation (ipfixDump and our own walk agree): data45841
# STML -> sourceMacAddress 00:0c:29:70:86:09, destinationMacAddress 00:0c:29:8d:af:c3;
# data45873 STML -> 00:0c:29:8d:af:c3 / 00:0c:29:a8:6e:2f" (records 0 and 1 of the session).
YAF_STML = {
    0: {"sourceMacAddress": "00:0c:29:70:86:09", "destinationMacAddress": "00:0c:29:8d:af:c3"},
    1: {"sourceMacAddress": "00:0c:29:8d:af:c3", "destinationMacAddress": "00:0c:29:a8:6e:2f"},
}


def logstash_sessions() -> list[CorpusSession]:
    idx = load_index("logstash")
    files = _logstash_files()
    vendor = logstash_vendor_ies()
    sessions = []
    for s in idx["sessions"]:
        msgs: list[MessageInfo] = []
        seq_input = []
        missing: list[int] = []
        nonzero: list[int] = []
        defined: set[tuple[int, int]] = set()
        ent: set[tuple[int, int]] = set()
        multi = False
        for fn in s["files_in_order"]:
            f = files[fn]
            ft = f["features"]
            multi |= len(f["messages"]) > 1
            for i, m in enumerate(f["messages"]):
                odid = m["observation_domain_id"]
                msgs.append(MessageInfo(fn, i, m["export_time"], m["sequence"], odid,
                                        tuple(st["set_id"] for st in m["sets"])))
                seq_input.append((odid, m["sequence"],
                                  sum(st.get("records", 0) for st in m["sets"])))
                missing += [st["set_id"] for st in m["sets"] if st.get("no_template")]
                defined |= {(odid, t) for st in m["sets"] for t in st.get("template_ids", [])}
            nonzero += [p["set_id"] for p in ft.get("padding", []) if p.get("all_zero") is False]
            ent |= _pen_ids(ft.get("enterprise_ies", []))
        rinfo = [RecordInfo(r["file"], r["message"], r["set_id"], r["options_record"])
                 for r in s["record_index_map"]]
        exps: list[Expectation] = []
        e = s["expected"]
        if e:
            for a in e["asserts"]:
                exps.append(_expectation(a["record"], a["field"], a["value"], "logstash",
                                         f"logstash spec assert ({a['source']})", vendor))
            for j in e["json_events_compared"]:
                ev = j["event"]
                for k, v in ev["netflow"].items():
                    exps.append(_expectation(j["record"], k, v, "logstash",
                                             "logstash spec json event", vendor))
                if "@timestamp" in ev:
                    exps.append(Expectation(j["record"], "@timestamp", ev["@timestamp"],
                                            "logstash", "logstash spec json event"))
            # json_events_not_compared (vmware_vds) are informative only per the index: skipped.
        dup: dict[int, str] = {}
        if s["session"] == "nokia_bras":
            # index note: "Template 256 contains paddingOctets(210) TWICE"
            dup = {i: "paddingOctets" for i, r in enumerate(rinfo) if r.template_id == 256}
        if s["session"] == "yaf":
            for rec, macs in YAF_STML.items():
                exps.append(Expectation(rec, "subTemplateMultiList", macs, "stml",
                                        "index note (ipfixDump + independent walk agree)"))
        sessions.append(CorpusSession(
            id=f"logstash-{s['session']}",
            folder="logstash",
            files=list(s["files_in_order"]),
            mode="stream" if multi else "datagram",
            records=s["records_in_stream"],
            expectations=exps,
            record_info=rinfo,
            messages=msgs,
            sequence_anomalies=sequence_anomalies(seq_input),
            missing_templates=missing,
            nonzero_padding=nonzero,
            templates_defined=len(defined),
            enterprise_ies=ent,
            duplicate_ie=dup,
            notes=list(s["notes"]),
        ))
    return sessions


# --------------------------------------------------------------------------------------------
# python-netflow


def python_netflow_sessions() -> list[CorpusSession]:
    idx = load_index("python-netflow")
    out = []
    for s in idx["sessions"]:
        exps: list[Expectation] = []
        for fn, x in s["upstream"]["expectations"].items():
            for a in x.get("asserts", []):
                exps.append(Expectation(a["record"], a["field"], a["value"], "plain",
                                        f"python-netflow upstream assert ({fn})"))
        cons = s["consensus_records"]
        for i, rec in enumerate(cons["records"]):
            for k, v in rec.items():
                exps.append(Expectation(i, k, v, "consensus",
                                        "ipfixDump+python-ipfix consensus (derived)"))
        total = s["tools"]["ipfixDump"]["records"]
        assert total == len(cons["records"]) == cons["records_compared"], s["session"]
        seq = ipfixdump_sequence_warnings(s["tools"]["ipfixDump"]["stderr"])
        assert len(seq) == s["tools"]["tshark"]["sequence_warnings"], s["session"]
        ft = s["features"]
        assert ft["nonzero_padding"] == 0 and not ft["anomalies"], s["session"]
        out.append(CorpusSession(
            id="python-netflow-" + s["session"].replace(".bin", "").replace("+", "-then-"),
            folder="python-netflow",
            files=list(s["files_in_order"]),
            mode="datagram",
            records=total,
            expectations=exps,
            sequence_anomalies=seq,
            missing_templates=[int(x.split("/")[-1]) for x in ft["missing_templates"]],
            templates_defined=ft["templates_defined_count"] + len(
                ft["options_template_ids_defined_unique"]),
            enterprise_ies=_pen_ids(ft["enterprise_ies"]),
            notes=list(idx["notes"]),
        ))
    return out


# --------------------------------------------------------------------------------------------
# go-ipfix synthetic

_PEN_KEY = re.compile(r"^(\d+)/(\d+)(?:\s+(\w+))?")


def _go_value(key: str, value: Any):
    """go-ipfix index values are mostly plain; "0x1283 = 4739" / "0x0000" are raw octets."""
    if isinstance(value, str) and value.startswith("0x"):
        return bytes.fromhex(value.split()[0][2:])
    return value


def go_ipfix_sessions() -> list[CorpusSession]:
    idx = load_index("go-ipfix-synthetic")
    out = []
    for s in idx["sessions"]:
        files = list(s["files_in_order"])
        stem = files[0].replace(".bin", "")
        exp = s["expected"]
        if isinstance(exp, str):  # "reject: ..."
            sid = "go-ipfix-" + stem
            after = []
            if stem == "malformed_truncated_template":
                # "no template may be stored": the good data packet for that template must then
                # find no template.
                after = ["collector_data_55829.bin"]
            out.append(CorpusSession(
                id=sid, folder="go-ipfix-synthetic", files=files, mode="datagram", records=0,
                expect_decode_error=True, after_error_files=after, notes=[exp]))
            continue
        values = exp["values"]
        if isinstance(values, dict):
            values = [values]
        exps = []
        ent: set[tuple[int, int]] = set()
        invalid: set[tuple[int, int, int]] = set()
        for i, rec in enumerate(values):
            for k, v in rec.items():
                m = _PEN_KEY.match(k)
                if m:
                    pen, eid, name = int(m[1]), int(m[2]), m[3]
                    ent.add((pen, eid))
                    exps.append(Expectation(i, name or k, _go_value(k, v), "plain",
                                            "go-ipfix index", pen, eid, None))
                    octets = re.search(r"\((\d+) octets\)", k)
                    if octets:
                        # edge case: "56506/107 is sent with length 2 ... in the current 56506
                        # registry 107 is destinationClusterIPv6 (16 octets). A decoder must
                        # follow the template length and must not assume the registry length."
                        invalid.add((pen, eid, int(octets[1])))
                else:
                    exps.append(Expectation(i, k, v, "plain", "go-ipfix index"))
        hdrs = [message_headers((CORPUS / "go-ipfix-synthetic" / f).read_bytes())[0]
                for f in files]
        # records per message: templates carry none, data files one each (index structure)
        seq_input = [(h[4], h[3], 0 if "template" in f else 1) for h, f in zip(hdrs, files, strict=True)]
        gaps = sequence_anomalies(seq_input)
        if stem.startswith("intermediate"):
            # index: "all three messages carry sequence number 0 (ipfixDump warns on the third)"
            assert gaps == [(1, 1, 0)], gaps
        sid = "go-ipfix-" + stem.replace("_template", "")
        out.append(CorpusSession(
            id=sid, folder="go-ipfix-synthetic", files=files, mode="datagram",
            records=exp["records"], expectations=exps, sequence_anomalies=gaps,
            templates_defined=1, enterprise_ies=ent, invalid_lengths=sorted(invalid),
            notes=[s.get("structure", ""), *s.get("edge_cases", []), s.get("note", "")]))
    return out


# --------------------------------------------------------------------------------------------
# beats / flowbeat

# Names flowbeat used for Cisco PEN 9 elements in ipfix_cisco.pcap.golden.json (with its trailing
# spaces), mapped to (PEN, id, type).  Source: the Cisco AVC table of the beats netflow decoder,
# elastic/beats x-pack/filebeat/input/netflow/decoder/fields/zfields_cisco.go (commit 0073692d;
# flowbeat's 2018 copy has the same ids with the trailing-space names).  The template ids are
# consistent with beats/index.json pcap_tests[0].features.template_fields / template_lengths.
CISCO_GOLDEN_NAMES: dict[str, tuple[int, int, str]] = {
    "waas optimizationSegment": (9, 9252, "uint8"),
    "artResponseTimeSum ": (9, 9303, "uint32"),
    "artCountResponses ": (9, 9292, "uint32"),
    "artCountLateResponses ": (9, 9300, "uint32"),
    "artServerNetworkTimeSum ": (9, 9319, "uint32"),
    "artClientNetworkTimeSum ": (9, 9316, "uint32"),
    "artCountRetransmissions ": (9, 9268, "uint32"),
    "artNetworkTimeSum ": (9, 9313, "uint32"),
    "artServerResponseTimeSum ": (9, 9306, "uint32"),
    "artServerResponseTimeMaximum ": (9, 9307, "uint32"),
    "artTotalResponseTimeSum ": (9, 9309, "uint32"),
    "artTotalTransactionTimeSum ": (9, 9273, "uint32"),
    "artCountTransactions ": (9, 9272, "uint32"),
}

# beats/index.json, "IPFIX Netscaler with variable length fields", note: the flowbeat golden
# flowStart/EndMicroseconds ("1762-11-10T12:59:40.464785856Z") are KNOWN-WRONG; the correct values
# (logstash spec, tshark, current beats golden) per record:
NETSCALER_MICROSECONDS_FIX = {
    0: "2016-11-11T12:09:19.000127768Z",
    1: "2016-11-11T12:09:19.00009951Z",
    2: "2016-11-11T12:09:19.000128468Z",
}


# A golden value the beats index does not flag but that is wrong, with the evidence:
# "IPFIX YAF basic with applabel", event 0 (template 45841), silkAppLabel (CERT 6871/33) is 0 in
# the golden.  The template gives the element 2 octets and the record carries 0x0035; flowbeat's
# table declares 6871/33 unsigned8 and read the first octet.  The logstash index asserts 53 for
# the same record (spec assert and json event), and ipfixDump --yaf agrees (logstash index,
# tools_extra "all_named_fields_check": 60/60 match).
YAF_GOLDEN_FIX = {(0, "silkAppLabel"): 53}


def beats_pcap_session() -> CorpusSession:
    idx = load_index("beats")
    t = idx["pcap_tests"][0]
    path = CORPUS / "beats" / t["file"]
    udp = read_pcap_udp(path)
    assert [len(p) for _, _, p in udp] == [p["udp_payload"] for p in t["packets"]]
    msgs, seq_input, rinfo = [], [], []
    for i, ((_, _, payload), p) in enumerate(zip(udp, t["packets"], strict=True)):
        _, _, export, seq, odid = IPFIX_HEADER.unpack_from(payload)
        assert (seq, [odid]) == (p["sequence"], p["odid"])
        msgs.append(MessageInfo(f"{t['file']}#{i}", 0, export, seq, odid, ()))
        seq_input.append((odid, seq, p["data_records"]))
        rinfo += [RecordInfo(f"{t['file']}#{i}", 0, t["features"]["template_id"], False)
                  for _ in range(p["data_records"])]
    return CorpusSession(
        id="beats-ipfix_cisco.pcap",
        folder="beats",
        files=[t["file"]],
        mode="datagram",
        records=sum(p["data_records"] for p in t["packets"]),
        record_info=rinfo,
        messages=msgs,
        sequence_anomalies=sequence_anomalies(seq_input),
        templates_defined=len({tid for p in t["packets"] for tid in p["templates"]}),
        enterprise_ies={(int(a), int(b)) for a, b in (x.split("/") for x in
                        t["features"]["template_fields"] if "/" in x)},
        payloads=[p for _, _, p in udp],
        notes=list(t.get("golden_notes", [])) + list(t.get("crosscheck_notes", [])),
    )


def _golden_events(path: Path) -> tuple[list[dict], list[str]]:
    g = json.loads(path.read_text())
    evs = g.get("events") or []
    return ([e["Fields"]["netflow"] for e in evs],
            [e["Fields"]["event"]["created"] for e in evs])


def beats_golden_cases() -> list[GoldenCase]:
    idx = load_index("beats")
    ls = {tuple(s.files): s for s in logstash_sessions()}
    files = _logstash_files()
    cases = []
    for t in idx["dat_tests"]:
        inputs = [i["file"].replace("../logstash/", "") for i in t["inputs"]]
        events, created = _golden_events(CORPUS / "beats" / t["golden"])
        base = ls.get(tuple(inputs))
        if base is None:
            # only "missing templates": the netscaler data file alone, no templates at all
            missing = [st["set_id"] for fn in inputs for m in files[fn]["messages"]
                       for st in m["sets"] if st["set_id"] >= 256]
            session = CorpusSession(
                id="beats-netscaler-data-without-templates", folder="logstash", files=inputs,
                mode="datagram", records=0, missing_templates=missing, templates_defined=0,
                enterprise_ies=set(), sequence_anomalies=[], notes=list(t["notes"]))
            selected: list[int] = []
        else:
            session = base
            # golden_format: only flow (non-options) records of the FIRST message of each file
            selected = [i for i, r in enumerate(base.record_info)
                        if r.message == 0 and not r.options]
        assert len(selected) == len(events) == t["golden_events"], t["test_name"]
        corrections = {}
        if "netscaler" in inputs[-1] and events:
            for gi in range(len(selected)):
                for name in ("flowStartMicroseconds", "flowEndMicroseconds"):
                    if str(events[gi].get(name, "")).startswith("1762-"):
                        corrections[(gi, name)] = NETSCALER_MICROSECONDS_FIX[gi]
        if t["test_name"] == "IPFIX YAF basic with applabel":
            assert events[0]["silkAppLabel"] == 0  # the wrong golden value being corrected
            corrections.update(YAF_GOLDEN_FIX)
        cases.append(GoldenCase(
            id="beats-" + re.sub(r"[^A-Za-z0-9.]+", "_", t["test_name"]).strip("_"),
            golden=t["golden"], session=session, selected=selected, events=events,
            created=created, corrections=corrections, notes=list(t["notes"])))
    pcap = beats_pcap_session()
    t = idx["pcap_tests"][0]
    events, created = _golden_events(CORPUS / "beats" / t["golden"])
    assert len(events) == t["golden_events"] == pcap.records
    cases.append(GoldenCase(id="beats-ipfix_cisco.pcap", golden=t["golden"], session=pcap,
                            selected=list(range(pcap.records)), events=events, created=created,
                            notes=pcap.notes))
    return cases


def all_sessions() -> list[CorpusSession]:
    return [*logstash_sessions(), *python_netflow_sessions(), *go_ipfix_sessions(),
            beats_pcap_session()]
