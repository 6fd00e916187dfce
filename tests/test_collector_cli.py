"""`ipfix-collect` as a service: signals, environment variables, status lines, exit codes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from collector_harness import MemorySink, messages

from ipfix_antrea import sinks
from ipfix_antrea.cli import EXIT_INPUT_ERRORS, EXIT_OK, EXIT_SINK_FAILED, EXIT_USAGE, main

pytestmark = pytest.mark.timeout(60)
REPO = Path(__file__).resolve().parent.parent


class Process:
    """``ipfix-collect`` in a subprocess; reads its stderr line by line."""

    def __init__(self, *argv: str, env: dict | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "ipfix_antrea.cli", *argv], cwd=REPO,
                                     stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
                                     env=dict(os.environ, PYTHONPATH=str(REPO), **(env or {})))
        self.lines: list[str] = []

    def wait_for_line(self, text: str) -> str:
        for line in self.proc.stderr:
            self.lines.append(line)
            if text in line:
                return line
        raise AssertionError(f"no {text!r} on stderr; got: {''.join(self.lines)}")

    def port(self) -> int:
        return int(self.wait_for_line("listening on").rsplit(":", 1)[1])

    def finish(self, sig: int | None = None) -> tuple[int, str]:
        if sig is not None:
            self.proc.send_signal(sig)
        rest = self.proc.stderr.read()
        return self.proc.wait(30), "".join(self.lines) + rest


def lines(path: Path) -> list[dict]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_drains_flushes_and_exits_0(tmp_path, sig):
    out = tmp_path / "out.jsonl"
    p = Process("-i", "tcp://127.0.0.1:0", "-s", f"jsonl:{out}", "--flush-interval", "3600")
    with socket.create_connection(("127.0.0.1", p.port())) as s:
        s.sendall(b"".join(messages(300, max_size=65535)))
    p.wait_for_line("session ended (300 records)")
    status, err = p.finish(sig)
    assert status == EXIT_OK
    assert len(lines(out)) == 300
    assert "stopping" in err and "300 records" in err


def test_a_signal_while_the_sinks_are_being_opened_stops_the_run_as_it_starts(monkeypatch, capsys):
    monkeypatch.setattr(sinks, "_SCHEMES", dict(sinks._SCHEMES))

    def slow_to_open(arg, options, context):
        os.kill(os.getpid(), signal.SIGTERM)  # the pod is deleted while the collector starts
        return MemorySink()

    sinks.register_sink("slow", slow_to_open, usage="slow", help="a sink that takes its time")
    status = main(["-i", "tcp://127.0.0.1:0", "-s", "slow"])
    err = capsys.readouterr().err
    assert status == EXIT_OK
    assert "SIGTERM: stopping" in err and "listening on" not in err
    assert "1 input: 0 records" in err and "memory: 0 records delivered" in err


def test_status_line_is_printed_periodically(tmp_path):
    p = Process("-i", "udp://127.0.0.1:0", "-s", f"jsonl:{tmp_path / 'o'}", "--status-interval", "0.2")
    p.port()
    line = p.wait_for_line("status:")
    p.finish(signal.SIGTERM)
    for part in ("records (", "/s)", "exporters", "sequence gaps", "dropped", "errors", "queue 0/100000"):
        assert part in line


def test_flags_can_come_from_the_environment(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(7)))
    out = tmp_path / "out.jsonl"
    status = main([], environ={"IPFIX_COLLECT_INPUT": f"file:{src}", "IPFIX_COLLECT_SINK": f"jsonl:{out}",
                               "IPFIX_COLLECT_QUIET": "true"})
    assert status == EXIT_OK
    assert len(lines(out)) == 7
    assert capsys.readouterr().err == ""  # quiet came from the environment too


def test_repeatable_flags_from_the_environment_are_space_separated_with_quoting(tmp_path):
    one, two = tmp_path / "a b.ipfix", tmp_path / "c.ipfix"
    one.write_bytes(b"".join(messages(2)))
    two.write_bytes(b"".join(messages(3)))
    out = tmp_path / "out.jsonl"
    status = main(["-s", f"jsonl:{out}", "-q"],
                  environ={"IPFIX_COLLECT_INPUT": f"'file:{one}' file:{two}"})
    assert status == EXIT_OK
    assert len(lines(out)) == 5


def test_command_line_flags_win_over_the_environment(tmp_path):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(4)))
    used, unused = tmp_path / "used.jsonl", tmp_path / "unused.jsonl"
    main(["-i", f"file:{src}", "-s", f"jsonl:{used}", "-q"],
         environ={"IPFIX_COLLECT_SINK": f"jsonl:{unused}"})
    assert len(lines(used)) == 4 and not unused.exists()


def test_a_bad_environment_value_is_a_usage_error_naming_the_variable(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["-i", "file:x"], environ={"IPFIX_COLLECT_QUEUE_SIZE": "lots"})
    assert exit_.value.code == EXIT_USAGE
    assert "IPFIX_COLLECT_QUEUE_SIZE" in capsys.readouterr().err


def test_a_sink_that_fails_while_writing_exits_3_and_counts_what_was_not_delivered(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(2000, max_size=65535)))
    status = main(["-i", f"file:{src}", "-s", "jsonl:/dev/full"])
    err = capsys.readouterr().err
    assert status == EXIT_SINK_FAILED
    assert "jsonl:/dev/full" in err and "NOT delivered" in err


def test_a_port_in_use_is_reported_and_exits_1(capsys):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = main(["-i", f"tcp://127.0.0.1:{port}", "-q"])
    assert status == EXIT_INPUT_ERRORS
    assert "cannot listen" in capsys.readouterr().err


def test_tls_input_without_a_certificate_is_a_usage_error(capsys):
    assert main(["-i", "tls://127.0.0.1:0"]) == EXIT_USAGE
    assert "--tls-cert" in capsys.readouterr().err


def test_unknown_udp_option_is_a_usage_error(capsys):
    assert main(["-i", "udp://127.0.0.1:0?buffer=1"]) == EXIT_USAGE
    assert "unknown option(s) buffer" in capsys.readouterr().err


def test_allow_with_a_bad_network_is_a_usage_error(capsys):
    assert main(["-i", "udp://127.0.0.1:0", "--allow", "10.0.0.0/33"]) == EXIT_USAGE
    assert "--allow '10.0.0.0/33'" in capsys.readouterr().err


def test_udp_receive_buffer_and_reuse_port_options_are_applied():
    from collector_harness import RunningCollector

    with RunningCollector(["udp://127.0.0.1:0?rcvbuf=64k&reuseport=1"]) as c:
        listener = c.collector.listeners[0]
        sock = listener._reading
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) >= 64 * 1024


@pytest.mark.parametrize("spec", ["udp://127.0.0.1:99999", "tcp://127.0.0.1:99999", "udp://127.0.0.1:http"])
def test_a_port_out_of_range_or_not_a_number_is_a_usage_error(spec, capsys):
    assert main(["-i", spec]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert spec in err and "port" in err


@pytest.mark.parametrize("argv", [["-i", "file:x", "--queue-size", "lots"], ["-i", "file:x", "--no-such-flag"], []])
def test_an_argument_error_is_one_line_and_a_hint_not_the_usage(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(argv, environ={})
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_USAGE
    assert err.splitlines()[0].startswith("ipfix-collect: error: ")
    assert err.splitlines()[1:] == ["ipfix-collect: see 'ipfix-collect --help' for every flag"]


def test_a_setup_argument_error_is_one_line_and_a_hint(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["setup", "--wait", "soon"], environ={})
    err = capsys.readouterr().err
    assert exit_.value.code == EXIT_USAGE
    assert len(err.splitlines()) == 2 and "ipfix-collect setup --help" in err


def test_a_misspelled_environment_variable_is_warned_about_naming_the_closest_flag(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(3)))
    status = main(["-i", f"file:{src}", "-s", f"jsonl:{tmp_path / 'o.jsonl'}"],
                  environ={"IPFIX_COLLECT_QUEUE_SIZ": "10", "IPFIX_COLLECT_STATUS_INTERVAL": "5"})
    err = capsys.readouterr().err
    assert status == EXIT_OK
    assert "warning: IPFIX_COLLECT_QUEUE_SIZ sets no flag" in err
    assert "did you mean IPFIX_COLLECT_QUEUE_SIZE (--queue-size)?" in err
    assert "STATUS_INTERVAL" not in err


def test_variables_of_setup_are_not_misspellings_for_the_collector_and_the_other_way_round(tmp_path, capsys):
    src = tmp_path / "in.ipfix"
    src.write_bytes(b"".join(messages(3)))
    both = {"IPFIX_COLLECT_ELASTICSEARCH": "http://127.0.0.1:1", "IPFIX_COLLECT_KIBANA": "http://127.0.0.1:2",
            "IPFIX_COLLECT_INPUT": f"file:{src}", "IPFIX_COLLECT_SINK": f"jsonl:{tmp_path / 'o.jsonl'}"}
    assert main([], environ=both) == EXIT_OK
    assert "warning" not in capsys.readouterr().err
    main(["setup", "--kibana-space", "bad space?"], environ=both)  # fails later; no warning first
    assert "sets no flag" not in capsys.readouterr().err
