"""Drive the independent IPFIX decoders that the interop tests compare us with.

Two peers, both from Debian packages that .ci/run installs:

* tshark (Wireshark's ``cflow`` dissector).  It reads packets, not files of
  messages, so each IPFIX message is wrapped in its own Ethernet/IPv4/UDP
  frame to port 4739 in a classic pcap file: tshark dissects only the first
  IPFIX message of a datagram.  Its JSON output (``-T json``) is nested per
  set and per flow; :func:`tshark_records` flattens it to one dict per data
  record, keyed by tshark's own field names (``cflow.srcaddr``,
  ``cflow.octets``, ``cflow.enterprise_private_entry``...).  A name that
  occurs several times in one record (a reverse element shares the forward
  element's name; every unknown enterprise element is
  ``cflow.enterprise_private_entry``) maps to a list in record order.
* ipfixDump (libfixbuf).  It reads a raw stream of IPFIX messages from a
  file and prints templates and records as text; :func:`ipfixdump_records`
  parses that text into one dict per data record, keyed by libfixbuf's
  element names, with elements it does not know named ``en<PEN>:id<id>``
  (the library's own form).  :func:`fixbuf_element_xml` writes the XML
  element file that teaches ipfixDump enterprise elements (``-e``).

Each record dict also carries the message context under keys that start with
an underscore: ``_template_id``, ``_observation_domain_id``,
``_sequence_number`` and ``_export_time`` (ints); ipfixDump records also have
``_scope_count``, the number of fields it marks as options scope.

:func:`require_tool` skips a test when a tool is missing, or fails it when
``IPFIX_ANTREA_REQUIRE_PEERS=1`` (set by .ci/run in CI) so that CI cannot go
green by skipping every comparison.
"""

from __future__ import annotations

import calendar
import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from xml.sax.saxutils import escape

import pytest

IPFIX_PORT = 4739  # RFC 7011 section 10.3.4
# Antrea's Flow Aggregator template has 70 fields; tshark's default limit is 60
# and templates above it are ignored without a word.
TSHARK_MAX_TEMPLATE_FIELDS = 200
# Largest IPFIX message one IPv4/UDP datagram can carry: 65535 - 20 (IPv4) - 8 (UDP).
MAX_UDP_PAYLOAD = 65535 - 20 - 8
TOOL_TIMEOUT = 120  # seconds

REQUIRE_ENV = "IPFIX_ANTREA_REQUIRE_PEERS"


def peers_required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip().lower() not in ("", "0", "false", "no")


def require_tool(name: str) -> str:
    """Return the path of ``name``; skip the test without it (fail in CI)."""
    path = shutil.which(name)
    if path is None:
        msg = f"{name} is not installed (Debian: tshark, libfixbuf-tools)"
        if peers_required():
            pytest.fail(f"{msg}, and {REQUIRE_ENV} is set", pytrace=False)
        pytest.skip(msg)
    return path


def _run(argv: Sequence[str]) -> tuple[str, str]:
    """(stdout, stderr) of a peer tool; raises when it exits non-zero."""
    env = {**os.environ, "TZ": "UTC", "LC_ALL": "C.UTF-8"}
    proc = subprocess.run(
        list(argv), check=False, capture_output=True, timeout=TOOL_TIMEOUT,
        stdin=subprocess.DEVNULL, env=env
    )
    stderr = proc.stderr.decode("utf-8", errors="replace")
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {proc.returncode}:\n{stderr}")
    return proc.stdout.decode("utf-8", errors="replace"), stderr


def split_messages(stream: bytes) -> list[bytes]:
    """Cut a raw IPFIX stream into messages by their header length (RFC 7011 3.1)."""
    out, i = [], 0
    while i < len(stream):
        if len(stream) - i < 16:
            raise ValueError(f"truncated message header at offset {i}")
        (length,) = struct.unpack_from("!H", stream, i + 2)
        if length < 16 or i + length > len(stream):
            raise ValueError(f"bad message length {length} at offset {i}")
        out.append(stream[i : i + length])
        i += length
    return out


# --------------------------------------------------------------------------- pcap


def _ipv4_checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _frame(payload: bytes, ident: int) -> bytes:
    """Ethernet II / IPv4 / UDP to IPFIX_PORT around one IPFIX message."""
    if len(payload) > MAX_UDP_PAYLOAD:
        raise ValueError(f"message of {len(payload)} bytes does not fit in a UDP datagram")
    udp = struct.pack("!HHHH", 40000, IPFIX_PORT, 8 + len(payload), 0) + payload
    src, dst = bytes([127, 0, 0, 1]), bytes([127, 0, 0, 2])
    ip = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17, 0, src, dst
    )
    ip = ip[:10] + struct.pack("!H", _ipv4_checksum(ip)) + ip[12:]
    ether = bytes.fromhex("020000000002") + bytes.fromhex("020000000001") + b"\x08\x00"
    return ether + ip + udp


def write_pcap(path: str | os.PathLike, messages: Iterable[bytes]) -> None:
    """Classic libpcap file (LINKTYPE_ETHERNET), one UDP datagram per message."""
    with open(path, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        for n, msg in enumerate(messages):
            frame = _frame(bytes(msg), n)
            f.write(struct.pack("<IIII", 1_700_000_000 + n, 0, len(frame), len(frame)))
            f.write(frame)


# --------------------------------------------------------------------------- tshark


def _merge(record: dict, key: str, value) -> None:
    if key in record:
        old = record[key]
        record[key] = (old if isinstance(old, list) else [old]) + [value]
    else:
        record[key] = value


def _flatten_into(record: dict, obj: dict) -> None:
    """Fields of one tshark flow, subtrees (``*_tree``, grouping labels) inlined."""
    for key, value in obj.items():
        if key.endswith("_raw"):  # -x: [hex, offset, length, mask, type], kept whole
            record[key] = value
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                _flatten_into(record, item)
            elif key.startswith("cflow.") and not key.endswith("_tree"):
                _merge(record, key, item)


def _pairs_keep_duplicates(pairs):
    # tshark -T json may repeat a key in one object; never let json drop one.
    out: dict = {}
    for key, value in pairs:
        _merge(out, key, value)
    return out


def parse_tshark_json(text: str) -> list[dict]:
    """Data records from ``tshark -T json`` output of the cflow dissector."""
    records: list[dict] = []
    for packet in json.loads(text, object_pairs_hook=_pairs_keep_duplicates):
        cflows = packet["_source"]["layers"].get("cflow", [])
        for cflow in cflows if isinstance(cflows, list) else [cflows]:
            header = {
                "_observation_domain_id": int(cflow["cflow.od_id"]),
                "_sequence_number": int(cflow["cflow.sequence"]),
                "_export_time": int(cflow["cflow.timestamp_tree"]["cflow.exporttime"]),
            }
            for set_value in cflow.values():
                for fset in set_value if isinstance(set_value, list) else [set_value]:
                    if not (isinstance(fset, dict) and "cflow.flowset_id" in fset):
                        continue
                    set_id = int(fset["cflow.flowset_id"])
                    if set_id < 256:  # template and options template sets
                        continue
                    for flow_key, flow in fset.items():
                        if not flow_key.startswith("Flow "):
                            continue
                        for one in flow if isinstance(flow, list) else [flow]:
                            rec = {"_template_id": set_id, **header}
                            _flatten_into(rec, one)
                            records.append(rec)
    return records


def tshark_records(messages: Sequence[bytes], *extra_args: str) -> list[dict]:
    """Decode IPFIX messages with tshark; one flattened dict per data record."""
    tshark = require_tool("tshark")
    with tempfile.TemporaryDirectory(prefix="ipfix-tshark-") as tmp:
        pcap = Path(tmp) / "messages.pcap"
        write_pcap(pcap, messages)
        out, _ = _run(
            [
                tshark,
                "-n",  # no name resolution: nothing leaves the machine
                "-r", str(pcap),
                "-d", f"udp.port=={IPFIX_PORT},cflow",
                "-o", f"cflow.max_template_fields:{TSHARK_MAX_TEMPLATE_FIELDS}",
                "-T", "json",
                "--no-duplicate-keys",
                *extra_args,
            ]
        )
    return parse_tshark_json(out)


def as_list(value) -> list:
    """A tshark field value as a list (one occurrence is a bare value)."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


# --------------------------------------------------------------------------- ipfixDump

_MSG_EXPORT = re.compile(r"^export time: (.*?)\s+observation domain id: (\d+)")
_MSG_SEQ = re.compile(r"^message length: \d+\s+sequence number: (\d+)")
_TMPL_HEADER = re.compile(r"^\ttid:\s+(\d+) \(0x[0-9a-f]+\)\s+field count:\s+(\d+)")
_TMPL_FIELD = re.compile(r"^\tent:\s+(\d+)\s+id:\s+(\d+)\s+type: (\S+)\s+len:\s+(\d+)\s+(\S+)")
_DATA_HEADER = re.compile(r"^\tcount: \d+\s+tid:\s+(\d+) ")
_DATA_FIELD = re.compile(r"^\t\((?:(\d+)/)?(\d+)\)\s*(\(S\))?\s*(\S+) : ?(.*)$")
_LEN_PREFIX = re.compile(r"^\(len: (\d+)\) ?(.*)$", re.DOTALL)
_ALIEN = "_alienInformationElement"


def _export_time(text: str) -> int:
    return calendar.timegm(time.strptime(text.strip(), "%Y-%m-%d %H:%M:%S"))


def _clean_value(ftype: str | None, raw: str) -> str:
    """Strip ipfixDump's ``(len: N)`` decoration from strings and octet arrays.

    Strings become their text; octet arrays printed with --hexdump become
    lowercase hex without ``0x`` ("" when empty).  Everything else is left as
    printed (fixed octet arrays of at most 8 octets print as a host-order
    integer, see the module notes in test_interop.py).
    """
    m = _LEN_PREFIX.match(raw)
    if m is None:
        return raw
    rest = m.group(2)
    if ftype == "octet" and rest.startswith("0x"):
        return rest[2:].lower()
    return rest


def parse_ipfixdump(text: str) -> list[dict]:
    """Data records from ipfixDump's text output (libfixbuf 2.4)."""
    records: list[dict] = []
    templates: dict[int, list[tuple[int, int, str]]] = {}
    header: dict = {}
    rec: dict | None = None
    field_types: list[str] = []
    field_index = 0
    last_key: str | None = None
    tmpl_id: int | None = None
    section = None  # "template" or "data"

    for line in text.splitlines():
        if line.startswith("--- Message Header"):
            section, rec, last_key = None, None, None
            continue
        if m := _MSG_EXPORT.match(line):
            header = {"_export_time": _export_time(m.group(1)),
                      "_observation_domain_id": int(m.group(2))}
            continue
        if m := _MSG_SEQ.match(line):
            header["_sequence_number"] = int(m.group(1))
            continue
        if line.startswith(("--- template record", "--- options template record")):
            section, rec, last_key, tmpl_id = "template", None, None, None
            continue
        if line.startswith("--- data record"):
            section, rec, last_key = "data", None, None
            continue
        if line.startswith(("***", "---")):
            section, rec, last_key = None, None, None
            continue
        if section == "template":
            if m := _TMPL_HEADER.match(line):
                tmpl_id = int(m.group(1))
                templates[tmpl_id] = []
            elif (m := _TMPL_FIELD.match(line)) and tmpl_id is not None:
                templates[tmpl_id].append((int(m.group(1)), int(m.group(2)), m.group(3)))
            continue
        if section == "data":
            if m := _DATA_HEADER.match(line):
                tid = int(m.group(1))
                rec = {"_template_id": tid, **header, "_scope_count": 0}
                field_types = [t for _, _, t in templates.get(tid, [])]
                field_index = 0
                records.append(rec)
                continue
            if rec is None or line in ("header:", "fields:"):
                continue
            if m := _DATA_FIELD.match(line):
                ent, eid, scope, name, raw = m.groups()
                ent, eid = int(ent or 0), int(eid)
                if scope:
                    rec["_scope_count"] += 1
                ftype = field_types[field_index] if field_index < len(field_types) else None
                field_index += 1
                key = f"en{ent}:id{eid}" if name == _ALIEN else name
                _merge(rec, key, _clean_value(ftype, raw))
                last_key = key
            elif last_key is not None:
                # a string value that holds a newline goes on over several lines
                value = rec[last_key]
                if isinstance(value, list):
                    value[-1] += "\n" + line
                else:
                    rec[last_key] = value + "\n" + line
    return records


def ipfixdump_records(
    stream: bytes, *extra_args: str, element_files: Sequence[str | os.PathLike] = ()
) -> list[dict]:
    """Decode a raw IPFIX message stream with libfixbuf's ipfixDump."""
    return ipfixdump(stream, *extra_args, element_files=element_files)[0]


def ipfixdump(
    stream: bytes, *extra_args: str, element_files: Sequence[str | os.PathLike] = ()
) -> tuple[list[dict], list[str]]:
    """Records and warnings of ipfixDump on a raw IPFIX message stream.

    The warnings are libfixbuf's complaints on stderr (``IPFIX Message out of
    sequence``, ``Missing external template``...), one string each.
    """
    ipfixdump = require_tool("ipfixDump")
    with tempfile.TemporaryDirectory(prefix="ipfix-dump-") as tmp:
        path = Path(tmp) / "stream.ipfix"
        path.write_bytes(stream)
        argv = [ipfixdump, "--in", str(path), "--hexdump=65535"]
        for ef in element_files:
            argv += ["--element-file", str(ef)]
        out, err = _run([*argv, *extra_args])
    warnings = [m.strip() for m in re.findall(r"WARNING \*\*: [\d:.]+: (.*)", err)]
    return parse_ipfixdump(out), warnings


def fixbuf_element_xml(elements: Iterable[tuple[str, int, int, str]]) -> str:
    """An ipfixDump ``--element-file`` for (name, enterprise, element_id, data_type).

    The schema is IANA's XML registry plus ``cert:enterpriseId`` (ipfixDump(1)).
    """
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<registry xmlns="http://www.iana.org/assignments" xmlns:cert="http://www.cert.org/ipfix">',
        '  <registry id="ipfix-antrea-tests">',
    ]
    for name, enterprise, element_id, data_type in elements:
        lines.append(
            f"    <record><name>{escape(name)}</name><dataType>{escape(data_type)}</dataType>"
            f"<cert:enterpriseId>{enterprise}</cert:enterpriseId>"
            f"<elementId>{element_id}</elementId></record>"
        )
    lines += ["  </registry>", "</registry>", ""]
    return "\n".join(lines)
