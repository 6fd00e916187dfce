"""ipfix-collect: file inputs to JSON-lines/stdout sinks, the summary and the exit status.

The CLI runs in-process (`main([...])`) and, where the process boundary matters (stdin, the
module entry point), as a subprocess. Streams are made with the library's Encoder; the softflowd
capture from the Logstash codec's test corpus is used when tests/data/corpus holds it.
"""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
import threading
from pathlib import Path

import orjson
import pytest

from ipfix_antrea import Encoder, Registry, default_registry
from ipfix_antrea.cli import EXIT_INPUT_ERRORS, EXIT_OK, EXIT_USAGE, main
from ipfix_antrea.inputs import FileInput, InputError, open_input, parse_input_spec

REPO = Path(__file__).resolve().parent.parent
CORPUS_SOFTFLOWD = REPO / "tests" / "data" / "corpus" / "logstash" / "ipfix.dat"

EXPORT_TIME = 1714564800  # 2024-05-01T12:00:00Z
FIELDS = ["flowStartSeconds", "flowEndSeconds", "sourceIPv4Address", "destinationIPv4Address",
          "sourceTransportPort", "destinationTransportPort", "protocolIdentifier",
          "octetDeltaCount", "sourcePodName", "sourcePodNamespace", "destinationPodName"]
ROWS = [
    (EXPORT_TIME - 30, EXPORT_TIME - 1, "10.10.0.5", "10.10.1.6", 41234, 8080, 6, 1500,
     "pod-a", "default", "pod-b"),
    (EXPORT_TIME - 20, EXPORT_TIME - 2, "10.10.0.7", "10.96.0.10", 53000, 53, 17, 80,
     "pod-c", "kube-system", ""),
    (EXPORT_TIME - 10, EXPORT_TIME - 3, "10.10.0.8", "8.8.8.8", 40000, 443, 6, 9000,
     "pod-é", "default", ""),
]


def encoder(registry: Registry | None = None) -> Encoder:
    kwargs = {"registry": registry} if registry is not None else {}
    enc = Encoder(observation_domain_id=7, export_time=lambda: EXPORT_TIME, **kwargs)
    enc.add_template(256, FIELDS)
    return enc


def antrea_stream(rows=ROWS) -> bytes:
    """A template message, then one data message per row (as the Antrea Agent sends them)."""
    enc = encoder()
    msgs = enc.template_messages()
    for row in rows:
        msgs += enc.encode(256, [row])
    return b"".join(msgs)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def run_cli(capsys, *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    return status, capsys.readouterr().err


# --------------------------------------------------------------------------------------------
# documents


def test_file_to_jsonl_writes_one_logstash_document_per_record(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "flows.jsonl"

    status, _ = run_cli(capsys, "--input", f"file:{src}", "--sink", f"jsonl:{out}", "--enrich", "none")

    assert status == EXIT_OK
    docs = read_jsonl(out)
    assert len(docs) == len(ROWS)
    first = docs[0]
    assert first["@timestamp"] == "2024-05-01T12:00:00.000Z"
    assert first["@version"] == "1"
    assert first["type"] == "ipfix"
    assert "host" not in first  # a file does not know its exporter
    assert first["ipfix"] == {
        "version": 10,
        "flowset_id": 256,
        "flowStartSeconds": "2024-05-01T11:59:30Z",
        "flowEndSeconds": "2024-05-01T11:59:59Z",
        "sourceIPv4Address": "10.10.0.5",
        "destinationIPv4Address": "10.10.1.6",
        "sourceTransportPort": 41234,
        "destinationTransportPort": 8080,
        "protocolIdentifier": 6,
        "octetDeltaCount": 1500,
        "sourcePodName": "pod-a",
        "sourcePodNamespace": "default",
        "destinationPodName": "pod-b",
    }


def test_documents_get_antrea_derived_fields_by_default(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "flows.jsonl"

    run_cli(capsys, "--input", f"file:{src}", "--sink", f"jsonl:{out}")

    ipfix = read_jsonl(out)[0]["ipfix"]
    assert ipfix["flowKey"] == "pod-a:41234->pod-b:8080 TCP"
    assert ipfix["protocolIdentifierStr"] == "TCP" and ipfix["protocolIdentifier"] == 6
    assert (ipfix["sourceIP"], ipfix["destinationIP"]) == ("10.10.0.5", "10.10.1.6")
    assert (ipfix["bytes"], ipfix["interval"], ipfix["throughput"]) == (1500, 29, 1500 // 29)


def test_enrich_none_writes_only_the_decoded_elements(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "flows.jsonl"

    run_cli(capsys, "--input", f"file:{src}", "--sink", f"jsonl:{out}", "--enrich", "none")

    assert "bytes" not in read_jsonl(out)[0]["ipfix"]


def test_enrich_names_an_unknown_transform_as_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--input", "file:-", "--enrich", "geoip"])
    assert exit_.value.code == 2
    assert "unknown enrichment 'geoip'; known: antrea, none" in capsys.readouterr().err


def test_enrich_can_come_from_the_environment(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "flows.jsonl"

    main(["--input", f"file:{src}", "--sink", f"jsonl:{out}"], environ={"IPFIX_COLLECT_ENRICH": "none"})

    assert "bytes" not in read_jsonl(out)[0]["ipfix"]


def test_documents_keep_record_order_and_values(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "flows.jsonl"
    run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")
    got = [(d["ipfix"]["sourcePodName"], d["ipfix"]["protocolIdentifier"], d["ipfix"]["octetDeltaCount"])
           for d in read_jsonl(out)]
    assert got == [(r[8], r[6], r[7]) for r in ROWS]


def test_jsonl_sink_appends_across_runs(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "flows.jsonl"
    run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")
    run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")
    assert len(read_jsonl(out)) == 2 * len(ROWS)


def test_stdout_sink_is_the_default(tmp_path, capsysbinary):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    status = main(["-i", f"file:{src}"])
    out = capsysbinary.readouterr().out
    assert status == EXIT_OK
    assert [orjson.loads(line)["ipfix"]["sourcePodName"] for line in out.splitlines()] == \
        [r[8] for r in ROWS]


def test_fan_out_writes_the_same_documents_to_two_sinks(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    status, _ = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{a}", "-s", f"jsonl:{b}")
    assert status == EXIT_OK
    assert a.read_bytes() == b.read_bytes()
    assert len(read_jsonl(a)) == len(ROWS)


def test_several_inputs_are_read_in_order(tmp_path, capsys):
    one = write(tmp_path, "one.ipfix", antrea_stream(ROWS[:1]))
    two = write(tmp_path, "two.ipfix", antrea_stream(ROWS[1:]))
    out = tmp_path / "out.jsonl"
    status, err = run_cli(capsys, "-i", f"file:{one}", "-i", f"file:{two}", "-s", f"jsonl:{out}")
    assert status == EXIT_OK
    assert [d["ipfix"]["sourcePodName"] for d in read_jsonl(out)] == [r[8] for r in ROWS]
    assert "2 inputs" in err


def test_each_input_has_its_own_session(tmp_path, capsys):
    # Templates of the first file must not decode the second file's data.
    enc = encoder()
    templates = b"".join(enc.template_messages())
    data = b"".join(enc.encode(256, [ROWS[0]]))
    one = write(tmp_path, "templates.ipfix", templates)
    two = write(tmp_path, "data-only.ipfix", data)
    out = tmp_path / "out.jsonl"
    status, err = run_cli(capsys, "-i", f"file:{one}", "-i", f"file:{two}", "-s", f"jsonl:{out}")
    assert read_jsonl(out) == []
    assert "1 missing-template sets" in err
    assert status == EXIT_OK  # a missing template is reported, not an error


def test_unknown_elements_are_decoded_as_hex_and_listed_in_the_summary(tmp_path, capsys):
    enc = Encoder(observation_domain_id=1, export_time=lambda: EXPORT_TIME)
    enc.add_template(300, ["sourcePodName", "en56506:id999"])
    src = write(tmp_path, "unknown.ipfix",
                b"".join(enc.template_messages() + enc.encode(300, [("pod-a", b"\xca\xfe")])))
    out = tmp_path / "out.jsonl"
    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")
    (doc,) = read_jsonl(out)
    assert doc["ipfix"]["en56506:id999"] == "cafe"
    assert "unknown element(s)" in err and "en56506:id999" in err
    assert status == EXIT_OK


def test_registry_csv_names_extra_elements(tmp_path, capsys):
    csv = write(tmp_path, "extra.csv",
                b"elementId,name,dataType,length,enterprise\n7,myCounter,unsigned32,4,99999\n")
    known = default_registry()
    known.load_csv(str(csv))
    enc = Encoder(observation_domain_id=1, export_time=lambda: EXPORT_TIME, registry=known)
    enc.add_template(300, ["sourcePodName", "myCounter"])
    src = write(tmp_path, "extra.ipfix",
                b"".join(enc.template_messages() + enc.encode(300, [("pod-a", 77)])))
    out = tmp_path / "out.jsonl"

    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}", "--registry", str(csv))

    assert status == EXIT_OK
    (doc,) = read_jsonl(out)
    assert doc["ipfix"]["myCounter"] == 77
    assert "unknown element" not in err


def test_softflowd_corpus_file_decodes_all_thirteen_records(tmp_path, capsys):
    # Three messages back to back; Logstash's own spec only decoded the first (7 records).
    out = tmp_path / "out.jsonl"
    status, err = run_cli(capsys, "-i", f"file:{CORPUS_SOFTFLOWD}", "-s", f"jsonl:{out}")
    docs = read_jsonl(out)
    assert len(docs) == 13
    assert docs[0]["@timestamp"] == "2015-05-13T11:20:26.000Z"
    assert docs[0]["ipfix"]["flowset_id"] == 256  # the options record (softflowd's system init time)
    assert docs[0]["ipfix"]["systemInitTimeMilliseconds"] == "2015-05-13T11:20:13.506Z"
    flow = docs[1]["ipfix"]
    assert flow["version"] == 10
    assert flow["flowset_id"] == 1024
    assert (flow["sourceIPv4Address"], flow["destinationIPv4Address"]) == ("192.168.253.1", "192.168.253.128")
    assert (flow["sourceTransportPort"], flow["destinationTransportPort"]) == (60560, 22)
    assert (flow["protocolIdentifier"], flow["tcpControlBits"]) == (6, 16)
    assert (flow["octetDeltaCount"], flow["packetDeltaCount"]) == (260, 5)  # reduced-size fields
    assert "13 records" in err and "3 messages" in err and "788 bytes" in err
    assert status == EXIT_OK  # sequence gaps are reported, not errors


# --------------------------------------------------------------------------------------------
# summary and exit status


def test_summary_on_stderr_counts_records_messages_and_bytes(tmp_path, capsys):
    stream = antrea_stream()
    src = write(tmp_path, "flows.ipfix", stream)
    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{tmp_path / 'o.jsonl'}")
    assert status == EXIT_OK
    assert "1 input:" in err
    assert f"{len(ROWS)} records" in err
    assert f"{1 + len(ROWS)} messages" in err
    assert f"{len(stream)} bytes" in err
    for label in ("decode errors", "malformed sets", "missing-template sets", "sequence gaps"):
        assert f"0 {label}" in err


def test_quiet_suppresses_the_summary(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    status, err = run_cli(capsys, "-q", "-i", f"file:{src}", "-s", f"jsonl:{tmp_path / 'o.jsonl'}")
    assert status == EXIT_OK
    assert err == ""


def test_garbage_after_good_messages_stops_the_file_with_a_clear_error(tmp_path, capsys):
    good = antrea_stream()
    garbage = b"\x00\x09\x00\x20" + b"\xff" * 28  # a NetFlow v9 header, then noise
    src = write(tmp_path, "broken.ipfix", good + garbage)
    out = tmp_path / "out.jsonl"

    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")

    assert status == EXIT_INPUT_ERRORS
    assert f"error: file:{src}: stopped reading at byte {len(good)}" in err
    assert len(read_jsonl(out)) == len(ROWS)  # the records before the error were written


def test_file_cut_inside_a_message_is_an_error_and_keeps_earlier_records(tmp_path, capsys):
    good = antrea_stream()
    last = b"".join(encoder().encode(256, [ROWS[0]]))
    src = write(tmp_path, "cut.ipfix", good + last[: len(last) // 2])
    out = tmp_path / "out.jsonl"

    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")

    assert status == EXIT_INPUT_ERRORS
    assert f"file:{src}: file ends inside an IPFIX message" in err
    assert len(read_jsonl(out)) == len(ROWS)


def test_an_error_in_one_input_does_not_stop_the_next(tmp_path, capsys):
    bad = write(tmp_path, "bad.ipfix", b"\x00\x09" + b"\x00" * 30)
    good = write(tmp_path, "good.ipfix", antrea_stream())
    out = tmp_path / "out.jsonl"
    status, err = run_cli(capsys, "-i", f"file:{bad}", "-i", f"file:{good}", "-s", f"jsonl:{out}")
    assert status == EXIT_INPUT_ERRORS
    assert len(read_jsonl(out)) == len(ROWS)
    assert "1 input(s) with errors" in err


def test_missing_input_file_is_reported_and_exits_1(tmp_path, capsys):
    status, err = run_cli(capsys, "-i", f"file:{tmp_path / 'nope.ipfix'}", "-s", f"jsonl:{tmp_path / 'o'}")
    assert status == EXIT_INPUT_ERRORS
    assert "nope.ipfix: cannot open" in err


def test_unknown_input_scheme_is_a_usage_error(tmp_path, capsys):
    status, err = run_cli(capsys, "-i", "ftp://host/x", "-s", f"jsonl:{tmp_path / 'o'}")
    assert status == EXIT_USAGE
    assert "unknown input 'ftp://host/x'" in err and "file:PATH" in err


def test_unknown_sink_is_a_usage_error_and_reads_nothing(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", "kafka:topic")
    assert status == EXIT_USAGE
    assert "unknown sink 'kafka:topic'" in err
    assert "records" not in err  # no summary: nothing ran


def test_unreadable_registry_csv_is_a_usage_error(tmp_path, capsys):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    status, err = run_cli(capsys, "-i", f"file:{src}", "--registry", str(tmp_path / "missing.csv"))
    assert status == EXIT_USAGE
    assert "--registry" in err


def test_input_is_required(capsys):
    with pytest.raises(SystemExit) as exc:
        main([])
    assert exc.value.code == EXIT_USAGE


def test_help_lists_inputs_sinks_and_exit_codes(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    out = capsys.readouterr().out
    assert exc.value.code == 0
    for text in ("file:PATH", "file:-", "jsonl:PATH", "stdout", "exit status", "--registry"):
        assert text in out


# --------------------------------------------------------------------------------------------
# as a process


def run_process(*argv: str, stdin: bytes = b"") -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.run([sys.executable, "-m", "ipfix_antrea.cli", *argv], input=stdin,
                          capture_output=True, env=env, cwd=REPO, timeout=120, check=False)


def test_module_entry_point_writes_jsonl(tmp_path):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    out = tmp_path / "out.jsonl"
    proc = run_process("--input", f"file:{src}", "--sink", f"jsonl:{out}")
    assert proc.returncode == 0, proc.stderr
    assert [d["ipfix"]["destinationTransportPort"] for d in read_jsonl(out)] == [r[5] for r in ROWS]
    assert b"3 records" in proc.stderr


def test_stdin_input_to_stdout_sink():
    proc = run_process("--input", "file:-", "--sink", "stdout", stdin=antrea_stream())
    assert proc.returncode == 0, proc.stderr
    docs = [orjson.loads(line) for line in proc.stdout.splitlines()]
    assert [d["ipfix"]["sourcePodName"] for d in docs] == [r[8] for r in ROWS]
    assert b"file:-" not in proc.stdout  # the summary goes to stderr only
    assert b"3 records" in proc.stderr


def test_process_exits_1_on_garbage_and_still_writes_good_records():
    proc = run_process("-i", "file:-", stdin=antrea_stream() + b"\xde\xad\xbe\xef" * 8)
    assert proc.returncode == 1
    assert len(proc.stdout.splitlines()) == len(ROWS)
    assert b"error: file:-: stopped reading" in proc.stderr
    assert b"Traceback" not in proc.stderr


@pytest.mark.parametrize("lines", [0, 1])
def test_a_reader_that_goes_away_stops_the_run_quietly_with_the_normal_exit_status(lines):
    # `ipfix-collect ... | head -LINES`: the reader takes LINES lines, then closes the pipe.
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "ipfix_antrea.cli", "-i", "file:-", "--batch-size", "1"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, cwd=REPO)

    def feed() -> None:
        with contextlib.suppress(BrokenPipeError):  # the collector stops reading early
            proc.stdin.write(antrea_stream(ROWS * 2000))
            proc.stdin.close()

    threading.Thread(target=feed, daemon=True).start()
    taken = [proc.stdout.readline() for _ in range(lines)]
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(120) == EXIT_OK
    assert [orjson.loads(line)["ipfix"]["sourcePodName"] for line in taken] == ["pod-a"][:lines]
    assert b"Traceback" not in err and b"NOT delivered" not in err and b"error:" not in err
    assert b"stdout was closed by its reader after" in err


# --------------------------------------------------------------------------------------------
# input specs and the file input


def test_file_spec_keeps_the_path_as_given():
    spec = parse_input_spec("file:/data/x:y.ipfix")
    assert (spec.scheme, spec.target) == ("file", "/data/x:y.ipfix")


def test_file_dash_means_standard_input():
    assert parse_input_spec("file:-").target == "-"


def test_empty_file_spec_is_rejected():
    with pytest.raises(InputError, match="file:PATH"):
        parse_input_spec("file:")


def test_network_style_spec_splits_host_port_and_options(monkeypatch):
    from ipfix_antrea import inputs

    monkeypatch.setattr(inputs, "_SCHEMES", dict(inputs._SCHEMES))
    inputs.register_input("udp", lambda spec, registry=None: spec, network=True,
                          usage="udp://HOST:PORT", help="test")
    spec = parse_input_spec("udp://[::1]:4740?buffer=1024")
    assert spec.host_port() == ("::1", 4740)
    assert spec.options == {"buffer": "1024"}
    assert parse_input_spec("udp://0.0.0.0").host_port() == ("0.0.0.0", 4739)
    with pytest.raises(InputError, match="udp://HOST:PORT"):
        parse_input_spec("udp:0.0.0.0:4739")


def test_file_input_frames_messages_across_tiny_chunks():
    stream = antrea_stream()
    whole = [r.to_dict() for b in FileInput("x", stream=io.BytesIO(stream)) for r in b.records]
    tiny = [r.to_dict() for b in FileInput("x", stream=io.BytesIO(stream), chunk_size=7) for r in b.records]
    assert len(whole) == len(ROWS)
    assert tiny == whole


def test_file_input_reports_stats_of_its_session(tmp_path):
    src = write(tmp_path, "flows.ipfix", antrea_stream())
    inp = open_input(f"file:{src}")
    batches = list(inp)
    assert sum(len(b.records) for b in batches) == len(ROWS)
    (stats,) = inp.stats()
    assert stats.messages == 1 + len(ROWS)


def test_malformed_set_is_described_on_stderr_and_good_sets_still_written(tmp_path, capsys):
    # One message: a good data set, a set with a reserved id (4), a good data set.
    enc = encoder()
    good = enc.encode(256, ROWS[:1])[0]
    data_set = good[16:]
    body = data_set + b"\x00\x04\x00\x04" + data_set
    message = good[:2] + (16 + len(body)).to_bytes(2, "big") + good[4:16] + body
    src = write(tmp_path, "bad-set.ipfix", b"".join(enc.template_messages()) + message)
    out = tmp_path / "out.jsonl"

    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{out}")

    assert status == EXIT_INPUT_ERRORS
    assert len(read_jsonl(out)) == 2
    assert "error: file:" in err and "set 4 of domain 7: set id 4 is reserved" in err
    assert "1 malformed sets" in err


def test_sets_whose_template_never_came_are_reported_as_never_decoded(tmp_path, capsys):
    enc = encoder()
    src = write(tmp_path, "data-only.ipfix", b"".join(enc.encode(256, [ROWS[0]]) + enc.encode(256, [ROWS[1]])))
    status, err = run_cli(capsys, "-i", f"file:{src}", "-s", f"jsonl:{tmp_path / 'o.jsonl'}")
    assert status == EXIT_OK
    assert "2 missing-template sets (2 never decoded)" in err
