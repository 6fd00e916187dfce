"""UDP templates beyond one transport session: `--udp-template-scope address` and `--state-dir`.

Each test runs the real collector on loopback (tests/collector_harness.py) and sends from real
exporter sockets; a restart is a second collector on the same state directory, with the
exporter still on its socket (same address and port), as the Flow Aggregator keeps its own.
"""

from __future__ import annotations

import json
import os
import socket
import time

import pytest
from collector_harness import RunningCollector, encoder, row

from ipfix_antrea import SavedTemplate
from ipfix_antrea.cli import EXIT_USAGE, main
from ipfix_antrea.inputs import parse_input_spec
from ipfix_antrea.inputs.state import FORMAT, TemplateStore
from ipfix_antrea.inputs.udp import UdpListener
from ipfix_antrea.workers import WorkerInfo

pytestmark = pytest.mark.timeout(60)


class Exporter:
    """One exporting process: its socket (address and port) and its encoder (sequence numbers)."""

    def __init__(self, enc=None) -> None:
        self.enc = enc or encoder()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))

    def templates(self, port: int) -> None:
        for m in self.enc.template_messages():
            self.sock.sendto(m, ("127.0.0.1", port))

    def data(self, port: int, *rows) -> None:
        for m in self.enc.encode(256, list(rows)):
            self.sock.sendto(m, ("127.0.0.1", port))


def state_file(directory) -> dict:
    (path,) = directory.glob("udp-*.json")
    return json.loads(path.read_text())


def learn_and_stop(state_dir, exporter: Exporter, **opts):
    """A collector that hears the exporter's templates and one record, then stops (and saves)."""
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(state_dir), **opts) as c:
        exporter.templates(c.port("udp"))
        exporter.data(c.port("udp"), row(0))
        c.sink.wait_for(1)
    return c


# --------------------------------------------------------------------------------------------
# template scope


def test_by_default_an_exporter_restarting_on_a_new_port_must_send_its_templates_again():
    first = Exporter()
    with RunningCollector(["udp://127.0.0.1:0"]) as c:
        first.templates(c.port("udp"))
        first.data(c.port("udp"), row(1))
        c.sink.wait_for(1)
        Exporter().data(c.port("udp"), row(2))  # the restarted exporter: new port, no template yet
        time.sleep(0.2)
        summary = c.stop()
    assert len(c.sink.docs) == 1
    assert summary.counters["missing_template_sets"] == 1 and summary.exporters == 2


def test_address_scope_keeps_the_templates_of_an_exporter_restarting_on_a_new_port():
    first = Exporter()
    with RunningCollector(["udp://127.0.0.1:0"], udp_template_scope="address") as c:
        first.templates(c.port("udp"))
        first.data(c.port("udp"), row(1), row(2))
        Exporter().data(c.port("udp"), row(3))  # a new process: new port, sequence numbers from 0
        docs = c.sink.wait_for(3)
        summary = c.stop()
    assert [d["ipfix"]["sourcePodName"][-1] for d in docs] == ["1", "2", "3"]
    assert summary.exporters == 1 and {d["host"] for d in docs} == {"127.0.0.1"}
    assert summary.counters["sequence_gaps"] == 0 and summary.counters["out_of_order"] == 0


def test_address_scope_still_checks_sequence_numbers_within_one_port():
    exporter = Exporter()
    with RunningCollector(["udp://127.0.0.1:0"], udp_template_scope="address") as c:
        exporter.templates(c.port("udp"))
        exporter.data(c.port("udp"), row(1))
        exporter.enc.encode(256, [row(2)])  # sent into the void: one record missing
        exporter.data(c.port("udp"), row(3))
        c.sink.wait_for(2)
        summary = c.stop()
    assert summary.counters["sequence_gaps"] == 1 and summary.counters["missing_records"] == 1


# --------------------------------------------------------------------------------------------
# persistence


def test_templates_survive_a_restart_of_the_collector(tmp_path):
    exporter = Exporter()
    learn_and_stop(tmp_path, exporter)
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)) as c:
        exporter.data(c.port("udp"), row(7))  # before any template refresh
        (doc,) = c.sink.wait_for(1)
        summary = c.stop()
    assert doc["ipfix"]["sourcePodName"].endswith("-7")
    assert summary.counters["missing_template_sets"] == 0 and summary.counters["templates_added"] == 1


def test_the_state_file_holds_each_template_record_as_the_exporter_sent_it(tmp_path):
    exporter = Exporter()
    learn_and_stop(tmp_path, exporter)  # stopped: the file is final
    (message,) = exporter.enc.template_messages()
    state = state_file(tmp_path)
    (entry,) = state["exporters"]
    (template,) = entry["templates"]
    assert state["format"] == FORMAT and state["scope"] == "session"
    assert (entry["address"], entry["port"]) == ("127.0.0.1", exporter.sock.getsockname()[1])
    assert template["record"] == message[20:].hex() and template["domain"] == 7
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_a_template_that_expired_while_the_collector_was_down_is_not_used(tmp_path):
    exporter = Exporter()
    learn_and_stop(tmp_path, exporter, template_lifetime=0.5)
    time.sleep(0.7)  # longer than the lifetime
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path), template_lifetime=0.5) as c:
        exporter.data(c.port("udp"), row(1))
        time.sleep(0.2)
        summary = c.stop()
    assert c.sink.docs == []
    assert summary.counters["templates_added"] == 0 and summary.counters["missing_template_sets"] == 1


def test_templates_of_exporters_that_did_not_send_since_are_kept_by_the_next_save(tmp_path):
    exporter = Exporter()
    learn_and_stop(tmp_path, exporter)
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)):
        pass  # restarted, and stopped again before the exporter sent anything
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)) as c:
        exporter.data(c.port("udp"), row(1))
        c.sink.wait_for(1)


@pytest.mark.parametrize("content", [b"{\"format\": \"ipfix-antr", b"\x00\xff garbage", b"[1, 2, 3]",
                                     json.dumps({"format": "something else", "version": 1}).encode(),
                                     json.dumps({"format": FORMAT, "version": 99}).encode(),
                                     # 127.0.0.1 as a number, which ipaddress would take
                                     json.dumps({"format": FORMAT, "version": 1, "scope": "session", "saved_at": 0,
                                                 "exporters": [{"address": 2130706433, "port": 4739,
                                                                "templates": []}]}).encode()],
                         ids=["cut", "binary", "not-an-object", "foreign", "future-version", "numeric-address"])
def test_a_corrupt_or_foreign_state_file_is_reported_and_ignored(tmp_path, content, caplog):
    (tmp_path / "udp-127.0.0.1-0.json").write_bytes(content)
    exporter = Exporter()
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)) as c:
        exporter.templates(c.port("udp"))
        exporter.data(c.port("udp"), row(1))
        c.sink.wait_for(1)  # the collector runs as without a state file
        summary = c.stop()
    assert summary.problems["bad state file"] == 1
    assert any("udp-127.0.0.1-0.json" in r.getMessage() and "ignored" in r.getMessage()
               for r in caplog.records)
    assert state_file(tmp_path)["format"] == FORMAT  # replaced by a good one at exit


def test_a_state_file_of_the_other_template_scope_is_not_used(tmp_path):
    exporter = Exporter()
    learn_and_stop(tmp_path, exporter)
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path), udp_template_scope="address") as c:
        exporter.data(c.port("udp"), row(1))
        time.sleep(0.2)
        summary = c.stop()
    assert c.sink.docs == [] and summary.problems["bad state file"] == 1


def test_a_saved_record_that_is_not_a_valid_template_is_refused_and_the_others_restored(tmp_path):
    exporter = Exporter()
    learn_and_stop(tmp_path, exporter)
    path = next(tmp_path.glob("udp-*.json"))
    state = json.loads(path.read_text())
    templates = state["exporters"][0]["templates"]
    templates.append(dict(templates[0], domain=8, record="0010000100080004"))  # reserved id 16
    path.write_text(json.dumps(state))
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)) as c:
        exporter.data(c.port("udp"), row(1))
        c.sink.wait_for(1)
        summary = c.stop()
    assert summary.problems["bad saved template"] == 1 and summary.counters["templates_added"] == 1


def test_the_state_file_is_written_on_a_timer_soon_after_a_template_arrives(tmp_path):
    listener = UdpListener(parse_input_spec("udp://127.0.0.1:0"), state_dir=str(tmp_path), state_interval=0.2)
    exporter = Exporter()
    with RunningCollector([listener]) as c:
        exporter.templates(c.port("udp"))
        deadline = time.monotonic() + 10
        while not list(tmp_path.glob("udp-*.json")) or not state_file(tmp_path)["exporters"]:
            assert time.monotonic() < deadline, "no state file written while running"
            time.sleep(0.05)
        (entry,) = state_file(tmp_path)["exporters"]
    assert len(entry["templates"]) == 1


def test_a_state_file_that_cannot_be_written_is_reported_and_the_collector_goes_on(tmp_path):
    (tmp_path / "udp-127.0.0.1-0.json").mkdir()  # in the way of the rename
    exporter = Exporter()
    with RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)) as c:
        exporter.templates(c.port("udp"))
        exporter.data(c.port("udp"), row(1))
        c.sink.wait_for(1)
        summary = c.stop()
    assert summary.problems["state file not written"] == 1
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_a_failed_save_leaves_the_previous_file_as_it_was(tmp_path, monkeypatch):
    store = TemplateStore(str(tmp_path), "127.0.0.1", 4739, "session")
    store.save({}, 1.0)
    before = (tmp_path / "udp-127.0.0.1-4739.json").read_bytes()

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError):
        store.save({("10.0.0.1", 4739): []}, 2.0)
    assert (tmp_path / "udp-127.0.0.1-4739.json").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_two_collectors_cannot_share_one_state_file(tmp_path):
    with (RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)),
          RunningCollector(["udp://127.0.0.1:0"], state_dir=str(tmp_path)) as second):
        summary = second.stop()
    assert summary.input_errors and "in use by another collector" in summary.input_errors[0]


def test_a_state_dir_that_cannot_be_created_is_a_usage_error(tmp_path, capsys):
    (tmp_path / "file").write_text("")
    assert main(["-i", "udp://127.0.0.1:0", "--state-dir", str(tmp_path / "file" / "state")]) == EXIT_USAGE
    assert "--state-dir" in capsys.readouterr().err


def test_state_dir_comes_from_the_environment_as_the_manifests_set_it(tmp_path):
    from ipfix_antrea.cli import build_parser, parse_args
    from ipfix_antrea.inputs import open_input

    args = parse_args(build_parser(), ["-i", "udp://127.0.0.1:4739"],
                      {"IPFIX_COLLECT_STATE_DIR": str(tmp_path / "state"),
                       "IPFIX_COLLECT_UDP_TEMPLATE_SCOPE": "address"})
    listener = open_input(args.inputs[0], options=args)
    assert listener._store.path == str(tmp_path / "state" / "udp-127.0.0.1-4739.json")
    assert listener.template_scope == "address"


# --------------------------------------------------------------------------------------------
# worker processes (--workers N): a file each, every file read


def saved(fields, age: float):
    """Template 256 of domain 7 with ``fields``, as a state file keeps it, sent ``age`` s ago."""
    (message,) = encoder(fields=fields).template_messages()
    return SavedTemplate(7, message[20:], False, age)


def test_a_worker_writes_its_own_state_file(tmp_path):
    TemplateStore(str(tmp_path), "0.0.0.0", 4739, "session", WorkerInfo(1, 2)).save({}, 1.0)
    assert [p.name for p in tmp_path.glob("*.json")] == ["udp-0.0.0.0-4739-w1.json"]


def test_every_workers_file_is_read_and_of_one_template_the_one_sent_last_wins(tmp_path):
    exporter = ("10.0.0.1", 40000)
    old, new = saved(["sourceIPv4Address"], age=500), saved(["destinationIPv4Address"], age=5)
    other = ("10.0.0.2", 40000)
    TemplateStore(str(tmp_path), "0.0.0.0", 4739, "session", WorkerInfo(0, 2)).save({exporter: [old]}, 100.0)
    TemplateStore(str(tmp_path), "0.0.0.0", 4739, "session", WorkerInfo(1, 2)).save(
        {exporter: [new], other: [old]}, 100.0)
    loaded, problems = TemplateStore(str(tmp_path), "0.0.0.0", 4739, "session", WorkerInfo(0, 2)).load(100.0)
    assert problems == []
    assert [t.record for t in loaded[exporter]] == [new.record]
    assert [t.record for t in loaded[other]] == [old.record]


def test_a_bad_file_of_another_worker_is_reported_and_the_others_still_count(tmp_path):
    exporter = ("10.0.0.1", 40000)
    template = saved(["sourceIPv4Address"], age=5)
    TemplateStore(str(tmp_path), "0.0.0.0", 4739, "session", WorkerInfo(0, 2)).save({exporter: [template]}, 100.0)
    (tmp_path / "udp-0.0.0.0-4739-w1.json").write_bytes(b"\x00 garbage")
    loaded, problems = TemplateStore(str(tmp_path), "0.0.0.0", 4739, "session").load(100.0)
    assert [t.record for t in loaded[exporter]] == [template.record]
    ((path, error),) = problems
    assert path.endswith("udp-0.0.0.0-4739-w1.json") and "not JSON" in str(error)
