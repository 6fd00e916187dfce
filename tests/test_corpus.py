"""Every session of the real-exporter corpus decodes to its expected values.

The corpus (tests/data/corpus, see its README.md for origin and licence) holds IPFIX messages from
real exporters and the values other projects' tests, or two independent decoders, expect from
them.  Each session's files are fed in send order to one :class:`Session`: one
``decode_datagram`` call per file when every file is one message (as an exporter sends them over
UDP), ``feed`` when a file holds several messages back to back (softflowd's ipfix.dat).

Per session the tests check:

* the number of data records, options records included (``test_record_count``);
* the message header facts of each record against the index: template id, options or not,
  observation domain, export time, sequence number (``test_record_headers``);
* every expected value of the index (``test_expected_values``), reading each source's
  conventions into ours (docs/library.md): see :func:`compare` for the mapping;
* the anomalies, reported as docs/library.md says: sequence numbers that do not follow RFC 7011
  s3.1, data sets without a template, non-zero padding, unknown enterprise elements, a template
  length the element's type cannot have, an element twice in one template; and nothing else
  (no malformed set, no redefinition, no padding warning for zero padding)
  (``test_anomalies``);
* the deliberately malformed messages raise ``DecodeError`` (or are reported as malformed),
  never another exception, and store no template (``test_malformed``);
* each flowbeat golden record against ours, field by field (``test_beats_golden``).

Vendor names.  logstash and flowbeat name enterprise elements by their own tables; the default
registry does not know those enterprises, so we decode them as octetArray under
``en<PEN>:id<id>``.  The logstash index quotes, per vendor element, the PEN, id and logstash type
(``vendor_ie_definitions``): a vendor value is checked by reading our octets as that type.
flowbeat's Cisco names (pcap golden) are mapped by :data:`corpus.CISCO_GOLDEN_NAMES`.
"""
from __future__ import annotations

import base64
import functools
import ipaddress
import math
import struct
from dataclasses import dataclass
from typing import Any

import corpus as C
import pytest

from ipfix_antrea import (
    DecodeError,
    InvalidFieldLength,
    MalformedSet,
    MissingTemplate,
    NonZeroPadding,
    SequenceGap,
    SequenceOutOfOrder,
    Session,
    SubTemplateMultiList,
    UnknownElement,
    default_registry,
)

REGISTRY = default_registry()

# Units of the timestamp types (docs/library.md: Python value = int in the element's own unit).
UNIT_NS = {
    "dateTimeSeconds": 1_000_000_000,
    "dateTimeMilliseconds": 1_000_000,
    "dateTimeMicroseconds": 1_000,
    "dateTimeNanoseconds": 1,
}
INT_TYPES = {f"{s}{n}" for s in ("unsigned", "signed") for n in (8, 16, 32, 64)}


# ---------------------------------------------------------------------------------------------
# decoding, once per session


@dataclass
class Decoded:
    records: list
    events: list
    stats: Any
    session: Session
    error: BaseException | None


@functools.cache
def _decode_cached(session_id: str) -> Decoded:
    cs = _BY_ID[session_id]
    s = Session()
    records: list = []
    error = None
    try:
        if cs.mode == "stream":
            for data in cs.data():
                records += s.feed(data)
            s.end_of_stream()
        else:
            for data in cs.data():
                records += s.decode_datagram(data)
    except DecodeError as exc:  # well-formed sessions must not raise; reported by the tests
        error = exc
        records += getattr(exc, "records", None) or []
    return Decoded(records, s.take_events(), s.stats, s, error)


def decode(cs: C.CorpusSession) -> Decoded:
    return _decode_cached(cs.id)


SESSIONS = C.all_sessions()
GOLDEN = C.beats_golden_cases()
_BY_ID = {s.id: s for s in SESSIONS}
_BY_ID.update({g.session.id: g.session for g in GOLDEN})
WELL_FORMED = [s for s in SESSIONS if not s.expect_decode_error]
MALFORMED = [s for s in SESSIONS if s.expect_decode_error]


def _ids(items):
    return [i.id for i in items]


# ---------------------------------------------------------------------------------------------
# value comparison


def _field_specs(record, name):
    return [f for f in record.template.fields if f.name == name]


def _resolve(record, exp: C.Expectation) -> tuple[str, str | None]:
    """Our field name for an expectation, and the vendor type to read octets with (or None)."""
    if exp.pen is not None:
        ie = REGISTRY.get(exp.pen, exp.element_id)
        if ie is not None:
            return ie.name, None
        return f"en{exp.pen}:id{exp.element_id}", exp.vendor_type
    return exp.field, None


def _vendor_value(raw: bytes, vtype: str, convention: str) -> Any:
    """Read the octets of an element our registry does not know as the type the source used."""
    if vtype.startswith("uint"):
        return int.from_bytes(raw, "big")
    if vtype.startswith("int"):
        return int.from_bytes(raw, "big", signed=True)
    if vtype == "float":
        return struct.unpack(">f" if len(raw) == 4 else ">d", raw)[0]
    if vtype in ("ip4_addr", "ip6_addr"):
        return str(ipaddress.ip_address(raw))
    if vtype == "mac_addr":
        return ":".join(f"{b:02x}" for b in raw)
    if vtype == "string":
        text = raw.decode("utf-8", "replace")
        # logstash renders strings with their trailing NULs removed ("" for NUL-only); flowbeat
        # keeps them (its golden shows "GET\u0000").
        return text.rstrip("\x00") if convention == "logstash" else text
    if vtype == "octetarray":
        return raw.hex()
    raise AssertionError(f"no reading for vendor type {vtype}")


def _same_number(got: Any, want: Any) -> bool:
    if isinstance(want, float) or isinstance(got, float):
        return isinstance(got, (int, float)) and math.isclose(got, want, rel_tol=1e-7)
    return got == want and type(got) is not bool


def compare(record, exp: C.Expectation, value_override: Any = None) -> str | None:
    """None when the record holds the expected value, else a one-line description of the miss.

    Convention mapping (source -> ours, docs/library.md):
    * ``version``: the IPFIX message version; a Session only yields records of version-10
      messages, so the expected value must be 10.
    * ``@timestamp`` (logstash) / ``event.created`` (flowbeat): the message export time,
      ``record.export_time`` in seconds.
    * timestamps: ISO strings (any zone, any precision) or integer ms are compared with our
      integer in the element's unit; an expectation finer than our unit (the NTP-format
      dateTimeMicroseconds shown to the nanosecond) must be within one unit.  ``to_dict()`` must
      render the same instant.
    * IP addresses: compared as addresses; ``to_dict()`` gives the canonical text.
    * octetArray: logstash hex, flowbeat base64 -> compared as octets; ``to_dict()`` is hex.
    * strings: logstash strips trailing NULs; others compare exactly.
    * an element twice in one template: the source kept the last occurrence (a hash).
    * vendor elements unknown to our registry: octets read as the source's type.
    """
    want = exp.value if value_override is None else value_override
    if exp.field == "version":
        return None if want == 10 else f"version {want!r} is not IPFIX"
    if exp.field == "@timestamp":
        got = record.export_time
        return None if got * 10**9 == C.iso_to_ns(want) else \
            f"export_time {got} != {want}"
    name, vtype = _resolve(record, exp)
    if name not in record:
        return f"field {name!r} missing (record of template {record.template_id} has " \
               f"{sorted(set(record.template.names))})"
    if exp.pen is not None and exp.vendor_type is None and exp.field != name and \
            not exp.field.startswith(f"{exp.pen}/"):
        return f"{exp.pen}/{exp.element_id} is named {name!r} by our registry, " \
               f"the index says {exp.field!r}"
    specs = _field_specs(record, name)
    got = record[name]
    js = record.to_dict()[name]
    if len(specs) > 1:
        got, js = got[-1], js[-1]
    spec = specs[-1]
    wire = spec.wire_type
    where = f"{name} ({wire})"

    if exp.convention == "stml":
        if not isinstance(got, SubTemplateMultiList):
            return f"{where}: {got!r} is not a SubTemplateMultiList"
        rows = [r for r in js if isinstance(r, dict)]
        return None if any(all(r.get(k) == v for k, v in want.items()) for r in rows) else \
            f"{where}: no entry with {want} in {js!r}"

    if wire == "octetArray":
        if not isinstance(got, bytes):
            return f"{where}: python value {got!r} is not bytes"
        if js != got.hex():
            return f"{where}: to_dict {js!r} != hex {got.hex()}"
        if isinstance(want, bytes):
            return None if got == want else f"{where}: {got.hex()} != {want.hex()}"
        if vtype is not None and not (exp.convention == "golden" and isinstance(want, str)
                                      and vtype != "string"):
            try:
                mine = _vendor_value(got, vtype, exp.convention)
            except (struct.error, ValueError) as e:
                return f"{where}: octets {got.hex()} are not a {vtype}: {e}"
            if isinstance(want, (int, float)) and not isinstance(want, bool):
                return None if _same_number(mine, want) else \
                    f"{where} as {vtype}: {mine!r} != {want!r} (octets {got.hex()})"
            return None if mine == want else \
                f"{where} as {vtype}: {mine!r} != {want!r} (octets {got.hex()})"
        raw = base64.b64decode(want) if exp.convention == "golden" else bytes.fromhex(want)
        return None if got == raw else f"{where}: {got.hex()} != {raw.hex()} ({want!r})"

    if wire in UNIT_NS:
        unit = UNIT_NS[wire]
        if not isinstance(got, int):
            return f"{where}: python value {got!r} is not an int"
        try:
            rendered = C.iso_to_ns(js)
        except (TypeError, ValueError):
            return f"{where}: to_dict {js!r} is not ISO 8601"
        if rendered != got * unit:
            return f"{where}: to_dict {js!r} != python value {got}"
        # an int: systemInitTimeMilliseconds in logstash; ms in upstream tests
        want_ns = want * UNIT_NS["dateTimeMilliseconds"] if isinstance(want, int) else C.iso_to_ns(want)
        return None if abs(got * unit - want_ns) < unit else \
            f"{where}: {got} ({js}) != {want!r}"

    if wire in INT_TYPES:
        return None if _same_number(got, want) and js == got else \
            f"{where}: {got!r} (json {js!r}) != {want!r}"
    if wire in ("float32", "float64"):
        return None if _same_number(got, want) else f"{where}: {got!r} != {want!r}"
    if wire == "boolean":
        return None if got == want else f"{where}: {got!r} != {want!r}"
    if wire in ("ipv4Address", "ipv6Address"):
        try:
            ok = ipaddress.ip_address(got) == ipaddress.ip_address(want) and js == got == \
                C.canonical_ip(got)
        except ValueError:
            ok = False
        return None if ok else f"{where}: {got!r} (json {js!r}) != {want!r}"
    if wire == "macAddress":
        return None if got == js == want.lower() else f"{where}: {got!r} != {want!r}"
    if wire == "string":
        mine = got.rstrip("\x00") if exp.convention == "logstash" else got
        return None if mine == want and js == got else \
            f"{where}: {got!r} (json {js!r}) != {want!r}"
    return f"{where}: no comparison for type {wire} (value {got!r}, expected {want!r})"


def _record_at(records, index):
    return records[index] if -len(records) <= index < len(records) else None


# ---------------------------------------------------------------------------------------------
# tests


@pytest.mark.parametrize("cs", WELL_FORMED, ids=_ids(WELL_FORMED))
def test_record_count(cs):
    d = decode(cs)
    assert d.error is None, f"DecodeError on a well-formed session: {d.error!r}"
    assert len(d.records) == cs.records
    if cs.record_info is not None:
        assert d.stats.options_records == sum(r.options for r in cs.record_info)
    assert d.stats.records == len(d.records)


@pytest.mark.parametrize("cs", [s for s in WELL_FORMED if s.record_info],
                         ids=_ids([s for s in WELL_FORMED if s.record_info]))
def test_record_headers(cs):
    d = decode(cs)
    msgs = {(m.file, m.index): m for m in cs.messages}
    problems = []
    for i, (rec, info) in enumerate(zip(d.records, cs.record_info, strict=True)):
        m = msgs[(info.file, info.message)]
        got = (rec.template_id, rec.is_options, rec.observation_domain_id, rec.export_time,
               rec.sequence_number)
        want = (info.template_id, info.options, m.observation_domain_id, m.export_time,
                m.sequence)
        if got != want:
            problems.append(f"record {i}: (template, options, domain, export, seq) {got} != {want}")
    assert not problems, "\n".join(problems)
    assert len(d.records) == len(cs.record_info)


@pytest.mark.parametrize("cs", [s for s in WELL_FORMED if s.expectations],
                         ids=_ids([s for s in WELL_FORMED if s.expectations]))
def test_expected_values(cs):
    d = decode(cs)
    problems = []
    for exp in cs.expectations:
        rec = _record_at(d.records, exp.record)
        if rec is None:
            problems.append(f"record {exp.record}: absent ({len(d.records)} decoded)")
            continue
        miss = compare(rec, exp)
        if miss:
            problems.append(f"record {exp.record} [{exp.source}] {exp.field}: {miss}")
    assert not problems, f"{len(problems)} of {len(cs.expectations)} values differ:\n" + \
        "\n".join(problems)


def _of(events, kind):
    return [e for e in events if isinstance(e, kind)]


@pytest.mark.parametrize("cs", WELL_FORMED + [g.session for g in GOLDEN if not g.selected
                                              and g.session.records == 0],
                         ids=_ids(WELL_FORMED + [g.session for g in GOLDEN if not g.selected
                                                 and g.session.records == 0]))
def test_anomalies(cs):
    d = decode(cs)
    st, events = d.stats, d.events
    problems = []

    def check(what, got, want):
        if got != want:
            problems.append(f"{what}: got {got!r}, want {want!r}")

    # RFC 7011 s3.1: forward jumps are gaps, backward ones reordering (serial arithmetic)
    if cs.sequence_anomalies is not None:
        want_gaps = [(o, e, r) for o, e, r in cs.sequence_anomalies if (r - e) % 2**32 < 2**31]
        want_ooo = [(o, e, r) for o, e, r in cs.sequence_anomalies if (r - e) % 2**32 >= 2**31]
        check("SequenceGap events", [(e.observation_domain_id, e.expected, e.received)
                                     for e in _of(events, SequenceGap)], want_gaps)
        check("SequenceOutOfOrder events", [(e.observation_domain_id, e.expected, e.received)
                                            for e in _of(events, SequenceOutOfOrder)], want_ooo)
        check("stats.sequence_gaps", st.sequence_gaps, len(want_gaps))
        check("stats.out_of_order", st.out_of_order, len(want_ooo))
    check("MissingTemplate events", [e.template_id for e in _of(events, MissingTemplate)],
          cs.missing_templates)
    check("stats.missing_template_sets", st.missing_template_sets, len(cs.missing_templates))
    check("NonZeroPadding events", [e.set_id for e in _of(events, NonZeroPadding)],
          cs.nonzero_padding)
    check("stats.nonzero_padding", st.nonzero_padding, len(cs.nonzero_padding))
    check("MalformedSet events", [(e.set_id, e.error.reason) for e in _of(events, MalformedSet)],
          [])
    check("stats.malformed_sets/messages", (st.malformed_sets, st.malformed_messages), (0, 0))
    if cs.templates_defined is not None:
        check("stats.templates_added", st.templates_added, cs.templates_defined)
    check("stats.templates_redefined/withdrawn/expired",
          (st.templates_redefined, st.templates_withdrawn, st.templates_expired), (0, 0, 0))
    if cs.enterprise_ies is not None:
        want_unknown = {k for k in cs.enterprise_ies if REGISTRY.get(*k) is None}
        got_unknown = {(e.enterprise, e.element_id) for e in _of(events, UnknownElement)
                       if e.enterprise != 0}
        check("UnknownElement (PEN, id)", sorted(got_unknown), sorted(want_unknown))
        names = {e.name for e in _of(events, UnknownElement)}
        check("UnknownElement names", sorted(n for n in names if not n.startswith("en0:")),
              sorted(f"en{p}:id{i}" for p, i in want_unknown))
    want_invalid = [(REGISTRY.get(p, i).name, n) for p, i, n in cs.invalid_lengths]
    check("InvalidFieldLength events", sorted({(e.name, e.length)
                                               for e in _of(events, InvalidFieldLength)}),
          sorted(want_invalid))
    for i, name in cs.duplicate_ie.items():
        rec = _record_at(d.records, i)
        if rec is None:
            problems.append(f"record {i} absent")
            continue
        check(f"record {i} {name} (element twice) in to_dict", type(rec.to_dict()[name]), list)
        check(f"record {i} {name} values", len(rec[name]), 2)
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("cs", MALFORMED, ids=_ids(MALFORMED))
def test_malformed(cs):
    for data in cs.data():
        s = Session()
        try:
            records = s.decode_datagram(data)
        except DecodeError as exc:
            assert isinstance(exc, ValueError)
            assert isinstance(exc.reason, str) and exc.reason
            assert exc.offset is None or isinstance(exc.offset, int)
            records = []
        else:  # not raised: it must have been reported as malformed
            st = s.stats
            assert st.malformed_sets + st.malformed_messages > 0 or \
                _of(s.take_events(), MalformedSet), "malformed message neither raised nor reported"
        assert records == []
        assert s.templates == {}, "a template was stored from a malformed message"
        for after in cs.after_error_files:
            got = s.decode_datagram((C.CORPUS / cs.folder / after).read_bytes())
            assert got == [], f"{after} decoded against a template from the malformed message"
            assert s.stats.missing_template_sets == 1

        # the same bytes as a stream: DecodeError at feed() or at end_of_stream(), nothing else
        s = Session()
        with pytest.raises(DecodeError):
            assert s.feed(data) == []
            s.end_of_stream()


@pytest.mark.parametrize("case", GOLDEN, ids=_ids(GOLDEN))
def test_beats_golden(case):
    d = decode(case.session)
    assert d.error is None, f"DecodeError: {d.error!r}"
    assert len(d.records) == case.session.records
    problems = []
    checked = 0
    vendor = C.logstash_vendor_ies()
    for gi, (ri, event, created) in enumerate(zip(case.selected, case.events, case.created, strict=True)):
        rec = _record_at(d.records, ri)
        if rec is None:
            problems.append(f"golden {gi}: our record {ri} absent")
            continue
        if rec.export_time * 10**9 != C.iso_to_ns(created):
            problems.append(f"golden {gi}: export_time {rec.export_time} != {created}")
        checked += 1
        for name, value in event.items():
            if name == "template_id":
                got = rec.template_id
            elif name == "observation_domain_id":
                got = rec.observation_domain_id
            else:
                got = None
            if got is not None:
                checked += 1
                if got != value:
                    problems.append(f"golden {gi} (record {ri}) {name}: {got} != {value}")
                continue
            if name in C.CISCO_GOLDEN_NAMES:
                pen, eid, vtype = C.CISCO_GOLDEN_NAMES[name]
            elif name in vendor:
                pen, eid, vtype = vendor[name]
            else:
                pen = eid = vtype = None
            exp = C.Expectation(ri, name, value, "golden", case.golden, pen, eid, vtype)
            if name == "subTemplateMultiList":
                miss = _compare_stml_octets(rec, value)
            else:
                miss = compare(rec, exp, case.corrections.get((gi, name)))
            checked += 1
            if miss:
                problems.append(f"golden {gi} (record {ri}) {name}: {miss}")
    assert not problems, f"{len(problems)} of {checked} golden values differ:\n" + \
        "\n".join(problems)
    assert len(case.selected) == len(case.events)


def _compare_stml_octets(record, b64: str) -> str | None:
    """flowbeat does not decode RFC 6313 lists: its golden holds the raw list content (base64).
    Walk that content (semantic, then entries of template id, length, records) and compare the
    template ids and the octets of the records with ours re-encoded field by field."""
    raw = base64.b64decode(b64)
    got = record["subTemplateMultiList"]
    if not isinstance(got, SubTemplateMultiList):
        return f"{got!r} is not a SubTemplateMultiList"
    semantic, pos, entries = raw[0], 1, []
    while pos + 4 <= len(raw):
        tid, length = struct.unpack_from(">HH", raw, pos)
        entries.append((tid, raw[pos + 4:pos + length]))
        pos += length
    if getattr(got, "semantic", semantic) != semantic:
        return f"semantic {got.semantic} != {semantic}"
    mine = []
    for entry in got.entries:
        tpl = entry.template
        if tpl is None:
            return f"entry of template {entry.template_id} was not decoded"
        body = b"".join(f.dtype.encode(v, f.length) for r in entry.records
                        for f, v in zip(tpl.fields, r, strict=True))
        mine.append((entry.template_id, body))
    return None if mine == entries else \
        f"entries {[(t, b.hex()) for t, b in mine]} != {[(t, b.hex()) for t, b in entries]}"
