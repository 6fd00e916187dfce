"""`pip install ipfix-antrea` (no extras) is the library, and a collector for files, stdout,
jsonl and the network inputs; the [collector] extra's packages (elasticsearch, dpkt,
prometheus_client, tqdm) are needed only by the input, sink, flag and progress line that use them,
which say so when they are missing.

Each test runs a fresh interpreter in which importing those packages fails, as on a machine
where they were never installed.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "ipfix_antrea" / "data" / "sample-flow-aggregator.ipfix"

WITHOUT_EXTRAS = textwrap.dedent("""
    import importlib.abc, sys

    class NotInstalled(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("elasticsearch", "elastic_transport", "dpkt", "prometheus_client", "tqdm"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, NotInstalled())
""")


def run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", WITHOUT_EXTRAS + textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_the_library_decodes_and_builds_documents_without_the_collector_extras():
    result = run(f"""
        from ipfix_antrea import Session
        from ipfix_antrea.documents import AntreaTransform, DocumentBuilder
        records = Session().feed(open({str(SAMPLE)!r}, "rb").read())
        docs = DocumentBuilder([AntreaTransform()]).build(records)
        print(len(docs), docs[0]["ipfix"]["flowKey"] != "")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["20", "True"]


def test_the_collector_runs_a_file_into_stdout_without_the_collector_extras():
    result = run(f"""
        from ipfix_antrea.cli import main
        sys.exit(main(["-q", "--input", "file:{SAMPLE}", "--sink", "stdout"]))
    """)
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == 20


def test_an_elasticsearch_sink_without_the_client_says_which_extra_to_install():
    result = run("""
        from ipfix_antrea.cli import main
        sys.exit(main(["--input", "file:-", "--sink", "elasticsearch:http://127.0.0.1:9"]))
    """)
    assert result.returncode == 2
    assert "pip install 'ipfix-antrea[collector]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_pcap_input_without_dpkt_says_which_extra_to_install():
    result = run("""
        from ipfix_antrea.cli import main
        sys.exit(main(["--input", "pcap:capture.pcap"]))
    """)
    assert result.returncode == 2
    assert "reading captures needs dpkt" in result.stderr
    assert "pip install 'ipfix-antrea[collector]'" in result.stderr


def test_setup_without_the_elasticsearch_client_says_which_extra_to_install():
    result = run("""
        from ipfix_antrea.cli import main
        sys.exit(main(["setup", "--elasticsearch", "http://127.0.0.1:9"], environ={}))
    """)
    assert result.returncode == 1
    assert "pip install 'ipfix-antrea[collector]'" in result.stderr
    assert "Traceback" not in result.stderr


def test_progress_on_without_tqdm_says_which_extra_to_install():
    result = run(f"""
        from ipfix_antrea.cli import main
        sys.exit(main(["--input", "file:{SAMPLE}", "--progress", "on"]))
    """)
    assert result.returncode == 2
    assert "--progress on needs tqdm" in result.stderr


def test_metrics_without_the_prometheus_client_say_which_extra_to_install():
    result = run("""
        from ipfix_antrea.cli import main
        sys.exit(main(["--input", "udp://127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"]))
    """)
    assert result.returncode == 2
    assert "--metrics-listen needs the Prometheus client" in result.stderr
    assert "pip install 'ipfix-antrea[collector]'" in result.stderr
