"""The progress line of file: and pcap: inputs, on a real terminal.

`ipfix-collect` runs as a process whose stderr is the slave side of a pseudo-terminal (`pty`), so
that it decides for itself that stderr is a terminal, as for a user; the test reads what the
terminal would show from the master side.
"""

from __future__ import annotations

import fcntl
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest
from collector_harness import messages

pytestmark = pytest.mark.timeout(120)
REPO = Path(__file__).resolve().parent.parent
RECORDS = 20_000


def run_on_terminal(*argv: str, stdout_too: bool = False) -> tuple[int, str]:
    """Runs ipfix-collect with stderr (and stdout, with ``stdout_too``) on a terminal of 120
    columns; returns its status and everything the terminal received."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("COLUMNS", None)
    proc = subprocess.Popen([sys.executable, "-m", "ipfix_antrea.cli", *argv], cwd=REPO, env=env,
                            stdin=subprocess.DEVNULL, stderr=slave,
                            stdout=slave if stdout_too else subprocess.DEVNULL)
    os.close(slave)
    received = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the process closed its side
            break
        if not data:
            break
        received.append(data)
    os.close(master)
    return proc.wait(60), b"".join(received).decode(errors="replace")


@pytest.fixture(scope="module")
def big_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("progress") / "flows.ipfix"
    path.write_bytes(b"".join(messages(RECORDS, max_size=65535, per_message=200)))
    return path


def test_a_file_read_on_a_terminal_shows_bytes_of_the_total_records_and_rates(big_file, tmp_path):
    status, screen = run_on_terminal("-i", f"file:{big_file}", "-s", f"jsonl:{tmp_path / 'out.jsonl'}")
    assert status == 0, screen
    last = screen.replace("\r", "\n").split("\n")
    line = next(x for x in reversed(last) if "/flows.ipfix: 100%" in x)
    size = big_file.stat().st_size / 1024 / 1024
    assert f"{size:.2f}M/{size:.2f}M" in line  # bytes read of the total
    assert f"{RECORDS} records" in line and "records/s" in line and "B/s" in line
    assert f"{RECORDS} records, " in screen.split(line)[-1]  # then the summary, as always


def test_a_capture_read_on_a_terminal_shows_its_progress(tmp_path):
    import dpkt
    from test_pcap import udp_frame

    path = tmp_path / "flows.pcap"
    with open(path, "wb") as f:
        writer = dpkt.pcap.Writer(f, snaplen=65535)
        for n, m in enumerate(messages(2000, max_size=1400)):
            writer.writepkt(udp_frame("10.0.0.1", 50000, m), ts=n)
    status, screen = run_on_terminal("-i", f"pcap:{path}", "-s", f"jsonl:{tmp_path / 'out.jsonl'}")
    assert status == 0, screen
    assert "/flows.pcap: 100%" in screen and "2000 records" in screen


def test_quiet_means_no_progress_line(big_file, tmp_path):
    status, screen = run_on_terminal("-q", "-i", f"file:{big_file}", "-s", f"jsonl:{tmp_path / 'out.jsonl'}")
    assert status == 0 and screen == ""


def test_no_progress_line_when_the_documents_go_to_the_same_terminal(tmp_path):
    src = tmp_path / "small.ipfix"
    src.write_bytes(b"".join(messages(5)))
    status, screen = run_on_terminal("-i", f"file:{src}", stdout_too=True)
    assert status == 0
    assert screen.count('"@timestamp"') == 5 and "records/s" not in screen


def test_no_progress_line_when_stderr_is_not_a_terminal(big_file, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "ipfix_antrea.cli", "-i", f"file:{big_file}", "-s",
                           f"jsonl:{tmp_path / 'out.jsonl'}"], cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=60)
    assert proc.returncode == 0
    assert "records/s" not in proc.stderr and f"{RECORDS} records" in proc.stderr


def test_progress_off_on_a_terminal(big_file, tmp_path):
    status, screen = run_on_terminal("--progress", "off", "-i", f"file:{big_file}", "-s",
                                     f"jsonl:{tmp_path / 'out.jsonl'}")
    assert status == 0 and "records/s" not in screen and f"{RECORDS} records" in screen
