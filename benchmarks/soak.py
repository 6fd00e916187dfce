"""A soak of `ipfix-collect`: mixed exporters for minutes into JSON Lines and Elasticsearch, with
Elasticsearch restarted twice, then every record accounted for.

The collector is the real command (`python -m ipfix_antrea.cli`, this tree), run as an operator
would:

    --input tcp://127.0.0.1:0 --input udp://127.0.0.1:0 --input tls://127.0.0.1:0
    --sink jsonl:DIR/flows.jsonl --sink elasticsearch:URL --es-ids derived
    --metrics-listen 127.0.0.1:0

(throwaway TLS certificates from `trustme`; an index prefix and template name of its own). Each
exporter is a process of its own, sending from an address of its own on the loopback network
(127.0.0.11, .12, ...), so that every document's `host` names the exporter it came from:

* well-behaved: two TCP exporters and one TLS exporter (Flow-Aggregator records from
  `antrea_stream`, encoded with the library's `Encoder`: each its own observation domain and
  sequence numbers, one message every 0.1 s), two UDP exporters (messages of at most 1400
  octets, templates re-sent every 10 s by the `Encoder`, as RFC 7011 asks of UDP exporters), and
  one that reconnects every second (a new TCP connection, a new `Encoder`: templates again,
  sequence numbers from 0, some records, close). Every record carries in `octetTotalCount` a
  number its exporter never uses twice, so that lost or doubled records are found, not guessed;
* garbage: random bytes over TCP (a new connection every 2 s) and UDP (half of the datagrams
  with a valid IPFIX header in front), which the collector must count as errors and survive;
* a template flood: a UDP exporter sending new and changed templates all the time (ids 256 to
  1255, 1 to 60 fields, now and then up to 1000, within --max-template-fields; half of the fields
  elements of no registry, with random enterprise numbers), and no data.

While they send, Elasticsearch is restarted twice through `.ci/elasticsearch.sh`: first a clean
stop, then a kill -9, each followed by a pause and a start. The collector must hold the records
back meanwhile (TCP and TLS exporters find their sends blocked; UDP records wait in the queue,
and are dropped and counted only if it fills). A kill -9 is safe here because the collector runs
with `--es-ids derived`: a bulk request whose answer was lost with the server is sent again, and
the documents that were stored before the crash come back as 409 (counted as `duplicates`)
instead of being stored twice.

Every `--sample-interval` seconds the soak reads the collector's RSS (VmRSS) and open file
descriptors from /proc, and its /metrics. At the end it stops the exporters, waits for the
collector to deliver everything, reads /metrics once more, sends SIGTERM, and checks that
records sent by the well-behaved exporters = lines in the JSON Lines file = documents in
Elasticsearch (`_count`, and per exporter by an aggregation on `host`: count, and the sum of the
`octetTotalCount` numbers), less what the collector reports as dropped; that the garbage was
counted; and that the collector exited 0. It reports RSS and descriptors (start, end, max, the
slope of RSS over the second half) and what happened around each restart. See
docs/reliability.md for the figures of a full run.

    .ci/elasticsearch.sh setup && eval "$(.ci/elasticsearch.sh env)"
    python benchmarks/soak.py --minutes 1                  # a quick run (about 2.5 minutes)
    python benchmarks/soak.py --minutes 10 --json soak.json
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import math
import multiprocessing
import os
import random
import re
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import (  # type: ignore[no-redef]
        FA_TEMPLATES,
        UDP_SMALL_MESSAGE_SIZE,
        fa_flows,
        fa_template_fields,
    )
    from bench_decode import environment  # type: ignore[no-redef]
    from report import write_json  # type: ignore[no-redef]
else:
    from .antrea_stream import (
        FA_TEMPLATES,
        UDP_SMALL_MESSAGE_SIZE,
        fa_flows,
        fa_template_fields,
    )
    from .bench_decode import environment
    from .report import write_json

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COUNTER_FIELD = "octetTotalCount"  # carries each record's number (see the module docstring)
COUNTER_AT = fa_template_fields().index(COUNTER_FIELD)
RESTART_AT = (0.25, 0.55)  # when the restarts begin, as shares of --minutes
TICK = 0.1  # seconds between the paced exporters' messages
UDP_TEMPLATE_REFRESH = 10.0  # seconds between the UDP exporters' template re-sends
FLOOD_TEMPLATE_IDS = range(256, 1256)
_LISTENING = re.compile(r"listening on (tcp|udp|tls)://127\.0\.0\.1:(\d+)")
_METRICS = re.compile(r"metrics, health and readiness on (http://\S+)")


# --- the exporters ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Exporter:
    """One exporter process: what it sends, from where, how fast."""

    name: str
    kind: str  # tcp, tls, udp, reconnect, garbage, flood
    address: str  # its source address (127.0.0.0/8): documents' `host`
    domain: int  # observation domain id
    rate: float = 0.0  # records/s (reconnect: records per connection; flood: templates/s)
    ipv6_share: float = 0.0
    pod_labels: bool = True

    @property
    def well_behaved(self) -> bool:
        return self.kind in ("tcp", "tls", "udp", "reconnect")


def exporters(args: argparse.Namespace) -> list[Exporter]:
    """The soak's exporters; those given a rate of 0 are left out."""
    every = [
        Exporter("tcp-1", "tcp", "127.0.0.11", 11, args.tcp_rate),
        Exporter("tcp-2", "tcp", "127.0.0.12", 12, args.tcp_rate, ipv6_share=0.5),
        Exporter("tls-1", "tls", "127.0.0.13", 13, args.tcp_rate),
        Exporter("udp-1", "udp", "127.0.0.14", 14, args.udp_rate, pod_labels=False),
        Exporter("udp-2", "udp", "127.0.0.15", 15, args.udp_rate, ipv6_share=0.5, pod_labels=False),
        Exporter("reconnect", "reconnect", "127.0.0.16", 16, args.reconnect_records),
        Exporter("garbage", "garbage", "127.0.0.17", 17, args.garbage_rate),
        Exporter("template-flood", "flood", "127.0.0.18", 18, args.flood_rate),
    ]
    return [e for e in every if e.rate > 0]


@dataclass
class Sent:
    """What one exporter did, reported back to the soak."""

    records: int = 0
    counter_sum: int = 0  # the sum of the numbers the sent records carried
    messages: int = 0
    connections: int = 0
    templates: int = 0
    garbage_tcp: int = 0
    garbage_udp: int = 0
    send_errors: int = 0
    errors: list[str] = field(default_factory=list)
    max_send_blocked: float = 0.0  # longest single send (TCP, TLS: backpressure)
    late_ticks: int = 0  # ticks that started late because a send blocked


class _Numbered:
    """The exporter's records, cycled from a pool, each with a number of its own in
    `octetTotalCount`."""

    def __init__(self, spec: Exporter) -> None:
        self.pool = fa_flows(1000, seed=spec.domain, ipv6_share=spec.ipv6_share, pod_labels=spec.pod_labels)
        self.next = 0

    def take(self, n: int) -> tuple[dict[int, list[tuple]], int]:
        """``n`` records grouped by template id, and the sum of their numbers."""
        by_template: dict[int, list[tuple]] = defaultdict(list)
        total = 0
        for _ in range(n):
            flow = self.pool[self.next % len(self.pool)]
            values = list(flow.values)
            values[COUNTER_AT] = self.next
            total += self.next
            by_template[flow.template_id].append(tuple(values))
            self.next += 1
        return by_template, total


def _encoder(spec: Exporter, max_message_size: int, refresh: float):
    from ipfix_antrea import Encoder

    enc = Encoder(observation_domain_id=spec.domain, max_message_size=max_message_size,
                  export_time=lambda: int(time.time()), template_refresh=refresh)
    for template_id, elements in FA_TEMPLATES.items():
        enc.add_template(template_id, [e.name for e in elements])
    return enc


def _connect(spec: Exporter, port: int, tls: ssl.SSLContext | None) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((spec.address, 0))
    sock.connect(("127.0.0.1", port))
    if tls is not None:
        sock = tls.wrap_socket(sock, server_hostname="127.0.0.1")
    return sock


def _udp(spec: Exporter, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((spec.address, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def _close(sock: socket.socket) -> None:
    """Closes a TCP (or TLS) connection so that the collector gets everything before the FIN."""
    try:
        if isinstance(sock, ssl.SSLSocket):
            sock = sock.unwrap()  # close_notify; the collector sends nothing back but its own
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    sock.close()


def _every(interval: float, stop, sent: Sent, tick: Callable[[], bool]) -> None:
    """Calls ``tick()`` every ``interval`` seconds until ``stop`` is set or ``tick`` returns
    False. A tick that comes late (a send blocked) is counted in ``sent.late_ticks``, and the
    ticks missed meanwhile are not made up for. Errors of the sockets end the exporter, noted
    in ``sent.errors``."""
    next_t = time.monotonic()
    try:
        while not stop.is_set() and tick():
            next_t += interval
            now = time.monotonic()
            if next_t < now:
                sent.late_ticks += 1
                next_t = now
            else:
                stop.wait(next_t - now)
    except OSError as exc:
        sent.errors.append(f"{type(exc).__name__}: {exc}")


def run_stream(spec: Exporter, port: int, ca_path: str | None, stop, result) -> None:
    """A well-behaved TCP, TLS or UDP exporter: ``spec.rate`` records a second, a message (or
    the datagrams they take) every TICK."""
    sent = Sent()
    numbered = _Numbered(spec)
    udp = spec.kind == "udp"
    if udp:
        enc = _encoder(spec, UDP_SMALL_MESSAGE_SIZE, UDP_TEMPLATE_REFRESH)
        sock = _udp(spec, port)
    else:
        enc = _encoder(spec, 65535, math.inf)
        sock = _connect(spec, port, ssl.create_default_context(cafile=ca_path) if spec.kind == "tls" else None)
        sent.connections += 1
    owed = 0.0

    def tick() -> bool:
        nonlocal owed
        owed += spec.rate * TICK
        k = int(owed)
        owed -= k
        if not k:
            return True
        by_template, total = numbered.take(k)
        messages = [m for tid, values in by_template.items() for m in enc.encode(tid, values)]
        started = time.monotonic()
        if udp:
            for m in messages:
                try:
                    sock.send(m)
                except OSError:
                    sent.send_errors += 1
            if sent.send_errors:
                sent.errors.append(f"{sent.send_errors} datagrams could not be sent")
                return False  # the numbers no longer say which records went out
        else:
            sock.sendall(b"".join(messages))
        sent.max_send_blocked = max(sent.max_send_blocked, time.monotonic() - started)
        sent.records += k
        sent.counter_sum += total
        sent.messages += len(messages)
        return True

    try:
        _every(TICK, stop, sent, tick)
    finally:
        _close(sock)
        result.send(sent)


def run_reconnecting(spec: Exporter, port: int, stop, result) -> None:
    """Every second: a new connection and a new `Encoder` (templates first, sequence numbers
    from 0), ``rate`` records, close. Each connection's export times are in a later second than
    the last one of the connection before (see docs/reliability.md: derived ids)."""
    sent = Sent()
    numbered = _Numbered(spec)
    last_second = 0

    def tick() -> bool:
        nonlocal last_second
        while int(time.time()) <= last_second:  # (only if the previous connection ran late)
            stop.wait(0.01)
        enc = _encoder(spec, 65535, math.inf)
        by_template, total = numbered.take(int(spec.rate))
        messages = [m for tid, values in by_template.items() for m in enc.encode(tid, values)]
        sock = _connect(spec, port, None)
        sent.connections += 1
        try:
            sock.sendall(b"".join(messages))
        finally:
            _close(sock)
        last_second = int(time.time())
        sent.records += int(spec.rate)
        sent.counter_sum += total
        sent.messages += len(messages)
        return True

    try:
        _every(1.0, stop, sent, tick)
    finally:
        result.send(sent)


def run_garbage(spec: Exporter, tcp_port: int, udp_port: int, stop, result) -> None:
    """Random bytes: ``rate`` datagrams a second (every other one behind a valid IPFIX header),
    and a TCP connection every 2 s."""
    sent = Sent()
    rng = random.Random(spec.domain)
    udp = _udp(spec, udp_port)
    next_tcp = time.monotonic()

    def tick() -> bool:
        nonlocal next_tcp
        body = rng.randbytes(rng.randint(1, 1400))
        if sent.garbage_udp % 2:
            header = (10, 16 + len(body), int(time.time()), rng.getrandbits(32), spec.domain)
            body = struct.pack(">HHIII", *header) + body
        udp.send(body)
        sent.garbage_udp += 1
        if time.monotonic() >= next_tcp:
            next_tcp += 2.0
            sock = _connect(spec, tcp_port, None)
            sent.connections += 1
            try:
                sock.sendall(rng.randbytes(rng.randint(16, 4096)))
                sock.settimeout(2.0)
                sock.recv(1)  # the collector closes a stream that is not IPFIX
            except OSError:
                pass
            finally:
                sock.close()
            sent.garbage_tcp += 1
        return True

    try:
        _every(1.0 / spec.rate, stop, sent, tick)
    finally:
        udp.close()
        result.send(sent)


def run_flood(spec: Exporter, port: int, stop, result) -> None:
    """New and changed templates, ``rate`` a second, and no data (see the module docstring)."""
    from ipfix_antrea import Encoder, InformationElement, default_registry
    from ipfix_antrea.template import FieldSpec

    sent = Sent()
    rng = random.Random(spec.domain)
    enc = Encoder(observation_domain_id=spec.domain, max_message_size=65000)
    known = [enc.field(e.name) for e in default_registry()
             if e.enterprise == 0 and e.data_type.startswith(("unsigned", "signed", "float", "ipv4"))]
    sock = _udp(spec, port)

    def new_field() -> FieldSpec:
        if rng.random() < 0.5:
            return rng.choice(known)
        enterprise, element_id = rng.randint(1, 2**32 - 1), rng.randint(1, 2**15 - 1)
        return FieldSpec(InformationElement(f"en{enterprise}:id{element_id}", element_id, enterprise),
                         rng.choice((1, 2, 4, 8, 16)))

    def tick() -> bool:
        ids = rng.sample(FLOOD_TEMPLATE_IDS, max(1, round(spec.rate * TICK)))
        for template_id in ids:
            n = rng.randint(1, 60) if rng.random() > 0.01 else rng.randint(300, 1000)
            enc.add_template(template_id, [new_field() for _ in range(n)])
        for m in enc.template_messages(ids):
            sock.send(m)
            sent.messages += 1
        sent.templates += len(ids)
        return True

    try:
        _every(TICK, stop, sent, tick)
    finally:
        sock.close()
        result.send(sent)


# --- the collector and what it says ----------------------------------------------------------

def proc_status(pid: int) -> tuple[int | None, int | None]:
    """(VmRSS in KiB, open file descriptors) of ``pid``, or (None, None) once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))
        return rss, len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, StopIteration):
        return None, None


def fd_kinds(pid: int) -> Counter[str]:
    """What ``pid``'s open descriptors are: files by path, sockets by protocol and what they
    listen on or are connected to (from /proc/PID/net), so that a difference can be named."""
    sockets: dict[str, str] = {}
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        with contextlib.suppress(OSError), open(f"/proc/{pid}/net/{proto}") as f:
            for row in list(f)[1:]:
                cols = row.split()
                local, remote, inode = cols[1].split(":")[1], cols[2].split(":")[1], cols[9]
                sockets[f"socket:[{inode}]"] = (f"{proto[:3]} on port {int(local, 16)}" if int(remote, 16) == 0
                                                else f"{proto[:3]} to port {int(remote, 16)}")
    kinds: Counter[str] = Counter()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                kinds[sockets.get(target, target)] += 1
    return kinds


def scrape(url: str) -> tuple[str, dict[str, list[tuple[dict, float]]]]:
    """The /metrics text and its samples by name."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name].append((s.labels, s.value))
    return text, samples


def metric(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(v for lab, v in samples.get(name, ()) if all(lab.get(k) == w for k, w in labels.items()))


@dataclass
class Sample:
    t: float  # seconds since the exporters started
    rss_kib: int
    fds: int
    accepted: float = 0
    queued: float = 0
    dropped: float = 0
    jsonl_delivered: float = 0
    es_delivered: float = 0
    es_in_flight: float = 0
    es_retried: float = 0
    es_duplicates: float = 0
    templates_active: float = 0


class Sampler(threading.Thread):
    """Reads /proc and /metrics every ``interval`` seconds until the collector is gone."""

    def __init__(self, pid: int, metrics_url: str, jsonl_sink: str, es_sink: str, interval: float,
                 t0: float) -> None:
        super().__init__(name="sampler", daemon=True)
        self.pid, self.url, self.interval, self.t0 = pid, metrics_url, interval, t0
        self.jsonl_sink, self.es_sink = jsonl_sink, es_sink
        self.samples: list[Sample] = []
        self.scrape_errors = 0
        self.stop = threading.Event()

    def take(self) -> Sample | None:
        rss, fds = proc_status(self.pid)
        if rss is None:
            return None
        s = Sample(round(time.monotonic() - self.t0, 2), rss, fds)
        try:
            _, m = scrape(self.url)
        except OSError:
            self.scrape_errors += 1
            return s
        s.accepted = metric(m, "ipfix_collect_records_accepted_total")
        s.queued = metric(m, "ipfix_collect_queue_records")
        s.dropped = metric(m, "ipfix_collect_records_dropped_total")
        s.jsonl_delivered = metric(m, "ipfix_collect_sink_delivered_records_total", sink=self.jsonl_sink)
        s.es_delivered = metric(m, "ipfix_collect_sink_delivered_records_total", sink=self.es_sink)
        s.es_in_flight = metric(m, "ipfix_collect_sink_in_flight", sink=self.es_sink)
        s.es_retried = metric(m, "ipfix_collect_sink_retried_total", sink=self.es_sink)
        s.es_duplicates = metric(m, "ipfix_collect_sink_duplicates_total", sink=self.es_sink)
        s.templates_active = metric(m, "ipfix_collect_templates_active")
        return s

    def caught_up(self, since: float) -> bool:
        """Whether, after ``since``, Elasticsearch got records again and the backlog is gone."""
        after = [s for s in self.samples if s.t > since]
        return (len(after) >= 2 and after[-1].es_delivered > after[0].es_delivered
                and after[-1].queued <= 1000 and after[-1].es_in_flight <= 2000)

    def run(self) -> None:
        while not self.stop.is_set():
            s = self.take()
            if s is None:
                return
            self.samples.append(s)
            self.stop.wait(self.interval)


class Collector:
    """`ipfix-collect` as a subprocess, its stderr in a log file."""

    def __init__(self, argv: list[str], workdir: str, env: dict[str, str]) -> None:
        self.log_path = os.path.join(workdir, "collector.log")
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=self._log,
                                     cwd=workdir, env=env)
        self.ports: dict[str, int] = {}
        self.metrics_url = ""

    def log(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while len(self.ports) < 3 or not self.metrics_url:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"ipfix-collect did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)
            text = self.log()
            self.ports = {scheme: int(port) for scheme, port in _LISTENING.findall(text)}
            found = _METRICS.search(text)
            self.metrics_url = found.group(1) if found else ""

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.metrics_url + "/readyz", timeout=5):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ipfix-collect did not become ready:\n{self.log()[-3000:]}") from None
                time.sleep(0.5)

    def terminate(self, timeout: float) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


# --- Elasticsearch ---------------------------------------------------------------------------

@dataclass
class Restart:
    """One restart of Elasticsearch, in seconds since the exporters started."""

    how: str  # "stop" (SIGTERM, a clean shutdown) or "kill" (SIGKILL)
    stop_issued: float = 0.0
    down: float = 0.0  # the process is gone
    start_issued: float = 0.0
    up: float = 0.0  # the cluster answers yellow or green
    error: str | None = None


class Restarter(threading.Thread):
    """Restarts Elasticsearch at the given times: stop (or kill), ``down`` seconds, start; then
    waits until ``caught_up(since)`` says the collector has delivered its backlog, so that no
    restart begins while the previous one is still being recovered from."""

    def __init__(self, control: str, plan: list[tuple[float, str]], down: float, t0: float,
                 caught_up) -> None:
        super().__init__(name="restarter", daemon=True)
        self.control, self.plan, self.down_for, self.t0 = control, plan, down, t0
        self.caught_up = caught_up
        self.restarts: list[Restart] = []
        self.settled: float | None = None  # when the collector had caught up after the last restart

    def _now(self) -> float:
        return round(time.monotonic() - self.t0, 2)

    def _run(self, command: str) -> None:
        subprocess.run(["bash", self.control, command], check=True, timeout=300, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run(self) -> None:
        for at, how in self.plan:
            time.sleep(max(0.0, at - (time.monotonic() - self.t0)))
            r = Restart(how, stop_issued=self._now())
            self.restarts.append(r)
            try:
                self._run(how)
                r.down = self._now()
                time.sleep(self.down_for)
                r.start_issued = self._now()
                self._run("start")
                r.up = self._now()
            except (subprocess.SubprocessError, OSError) as exc:
                r.error = str(exc)
                return
            deadline = time.monotonic() + 600
            while not self.caught_up(r.up) and time.monotonic() < deadline:
                time.sleep(1)
            self.settled = self._now()


def es_client(url: str, user: str | None, password: str | None):
    from elasticsearch import Elasticsearch

    return Elasticsearch(url, basic_auth=(user, password or "") if user else None, request_timeout=120)


def es_counts(es, prefix: str) -> tuple[int, dict[str, dict]]:
    """`_count` of the soak's indices, and per exporter address: documents and the sum of the
    records' numbers."""
    es.indices.refresh(index=f"{prefix}-*")
    total = es.count(index=f"{prefix}-*")["count"]
    body = es.search(index=f"{prefix}-*", size=0, aggs={
        "by_host": {"terms": {"field": "host", "size": 100},
                    "aggs": {"n": {"stats": {"field": f"ipfix.{COUNTER_FIELD}"}}}}})
    buckets = body.get("aggregations", {}).get("by_host", {}).get("buckets", [])  # none if no index
    per_host = {b["key"]: {"count": b["doc_count"], "sum": int(b["n"]["sum"] or 0)} for b in buckets}
    return total, per_host


def jsonl_counts(path: str) -> tuple[int, dict[str, dict]]:
    """Lines of the JSON Lines file, and per exporter address: lines, distinct record numbers
    and their sum."""
    import orjson

    lines = 0
    numbers: dict[str, list[int]] = defaultdict(list)
    with open(path, "rb") as f:
        for line in f:
            lines += 1
            doc = orjson.loads(line)
            numbers[doc.get("host", "-")].append(doc["ipfix"].get(COUNTER_FIELD, -1))
    return lines, {host: {"count": len(ns), "distinct": len(set(ns)), "sum": sum(n for n in ns if n >= 0)}
                   for host, ns in numbers.items()}


# --- analysis --------------------------------------------------------------------------------

def slope_mib_per_min(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over ``samples``, MiB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [s.t / 60 for s in samples]
    ys = [s.rss_kib / 1024 for s in samples]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0


def by_minute(samples: list[Sample]) -> list[dict]:
    """RSS, descriptors and queue at the first sample of every minute (the curve, in short)."""
    out, minute = [], 0
    for s in samples:
        if s.t >= minute * 60:
            out.append({"minute": minute, "t": s.t, "rss_mib": round(s.rss_kib / 1024, 1), "fds": s.fds,
                        "queued": s.queued})
            minute = int(s.t // 60) + 1
    return out


def restart_effects(r: Restart, samples: list[Sample]) -> dict:
    """What the samples show around one restart: when delivery to Elasticsearch stalled and
    resumed, how many records were held (queue), retried and dropped meanwhile, and when the
    backlog was gone."""
    before = [s for s in samples if s.t <= r.stop_issued]
    base = before[-1] if before else samples[0]
    after = [s for s in samples if s.t > r.stop_issued]
    stalled = resumed = caught_up = None
    for prev, s in itertools.pairwise([base, *after]):
        if stalled is None and s.es_delivered == prev.es_delivered:
            stalled = prev.t
        if stalled is not None and resumed is None and s.t > r.up and s.es_delivered > prev.es_delivered:
            resumed = s.t
        if resumed is not None and s.queued <= 1000 and s.es_in_flight <= 2000:
            caught_up = s.t
            break
    window = [s for s in after if caught_up is None or s.t <= caught_up]
    end = window[-1] if window else base
    return {
        "how": r.how, "stop_issued": r.stop_issued, "down": r.down, "start_issued": r.start_issued, "up": r.up,
        "es_unavailable_s": round(r.up - r.stop_issued, 1),
        "delivery_stalled_at": stalled, "delivery_resumed_at": resumed,
        "held_back_s": round(resumed - stalled, 1) if stalled is not None and resumed is not None else None,
        "caught_up_at": caught_up,
        "max_queued_records": max((s.queued for s in window), default=0),
        "max_es_in_flight": max((s.es_in_flight for s in window), default=0),
        "retried_documents": end.es_retried - base.es_retried,
        "duplicates": end.es_duplicates - base.es_duplicates,
        "udp_dropped": end.dropped - base.dropped,
        "error": r.error,
    }


# --- the run ---------------------------------------------------------------------------------

def make_certificates(workdir: str) -> tuple[str, str, str]:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    paths = [os.path.join(workdir, name) for name in ("ca.pem", "server.pem", "server.key")]
    ca.cert_pem.write_to_path(paths[0])
    cert.private_key_pem.write_to_path(paths[2])
    with open(paths[1], "wb") as f:
        f.writelines(blob.bytes() for blob in cert.cert_chain_pems)
    return tuple(paths)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=10.0, help="how long the exporters send (default %(default)s)")
    p.add_argument("--tcp-rate", type=float, default=300,
                   help="records/s of each TCP and TLS exporter (here and below, 0 leaves the exporter out)")
    p.add_argument("--udp-rate", type=float, default=200, help="records/s of each UDP exporter")
    p.add_argument("--reconnect-records", type=int, default=20,
                   help="records per connection of the reconnecting exporter")
    p.add_argument("--garbage-rate", type=float, default=20, help="garbage datagrams/s")
    p.add_argument("--flood-rate", type=float, default=50, help="templates/s of the template flood")
    p.add_argument("--restarts", default="stop,kill", help="Elasticsearch restarts, in order: stop (SIGTERM) "
                   "or kill (SIGKILL), comma-separated; '' for none (default %(default)s)")
    p.add_argument("--es-down", type=float, default=15.0, help="seconds Elasticsearch stays down (default %(default)s)")
    p.add_argument("--sample-interval", type=float, default=2.0)
    p.add_argument("--url", default=os.environ.get("IPFIX_ANTREA_ES_URL"))
    p.add_argument("--user", default=os.environ.get("IPFIX_ANTREA_ES_USER"))
    p.add_argument("--password", default=os.environ.get("IPFIX_ANTREA_ES_PASSWORD"))
    p.add_argument("--control", default=os.environ.get("IPFIX_ANTREA_ES_CONTROL",
                                                        os.path.join(REPO, ".ci", "elasticsearch.sh")))
    p.add_argument("--workdir", help="where the collector's files go (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the indices, the index template and the JSON Lines file")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH", help="write the results as JSON to PATH (or stdout)")
    args = p.parse_args(argv)
    if not args.url:
        p.error("no Elasticsearch: set IPFIX_ANTREA_ES_URL (eval \"$(.ci/elasticsearch.sh env)\") or give --url")
    out = sys.stderr if args.json == "-" else sys.stdout

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    workdir = args.workdir or tempfile.mkdtemp(prefix="ipfix-soak-")
    os.makedirs(workdir, exist_ok=True)
    prefix = f"soak-{uuid.uuid4().hex[:8]}"
    jsonl_path = os.path.join(workdir, "flows.jsonl")
    dead_letter = os.path.join(workdir, "es-dead-letter.jsonl")
    ca, cert, key = make_certificates(workdir)
    argv_ = [sys.executable, "-m", "ipfix_antrea.cli",
             "--input", "tcp://127.0.0.1:0", "--input", "udp://127.0.0.1:0", "--input", "tls://127.0.0.1:0",
             "--tls-cert", cert, "--tls-key", key,
             "--sink", f"jsonl:{jsonl_path}", "--sink", f"elasticsearch:{args.url}",
             "--es-index", f"{prefix}-%Y.%m.%d", "--es-template-name", prefix, "--es-ids", "derived",
             "--es-dead-letter", dead_letter, "--metrics-listen", "127.0.0.1:0", "--status-interval", "10"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")]))}
    if args.user:
        env["IPFIX_COLLECT_ES_USER"] = args.user
        env["IPFIX_COLLECT_ES_PASSWORD"] = args.password or ""
    specs = exporters(args)
    plan_kinds = [k for k in args.restarts.split(",") if k]
    if any(k not in ("stop", "kill") for k in plan_kinds) or len(plan_kinds) > len(RESTART_AT):
        p.error(f"--restarts takes up to {len(RESTART_AT)} of stop and kill")
    env_info = environment()
    say(f"soak: {args.minutes:g} min, python {env_info['python']} on {env_info['cpu']} ({env_info['nproc']} CPUs), "
        f"ipfix-antrea {env_info['ipfix-antrea']} ({env_info['git_commit']}); work directory {workdir}")

    collector = Collector(argv_, workdir, env)
    processes = []
    try:
        collector.wait_listening()
        collector.wait_ready()
        ports = collector.ports
        jsonl_sink, es_sink = f"jsonl:{jsonl_path}", f"elasticsearch:{args.url}"
        rss0, fds0 = proc_status(collector.proc.pid)
        fd_kinds0 = fd_kinds(collector.proc.pid)
        say(f"collector pid {collector.proc.pid} ready: tcp {ports['tcp']}, udp {ports['udp']}, tls {ports['tls']}, "
            f"{collector.metrics_url}; RSS {rss0 / 1024:.1f} MiB, {fds0} fds; index {prefix}-*")

        # The exporters first (forked before this process starts any thread).
        ctx = multiprocessing.get_context("fork")
        stop = ctx.Event()
        pipes = {}
        for spec in specs:
            parent, child = ctx.Pipe(duplex=False)
            if spec.kind in ("tcp", "tls", "udp"):
                target, pargs = run_stream, (spec, ports[spec.kind], ca, stop, child)
            elif spec.kind == "reconnect":
                target, pargs = run_reconnecting, (spec, ports["tcp"], stop, child)
            elif spec.kind == "garbage":
                target, pargs = run_garbage, (spec, ports["tcp"], ports["udp"], stop, child)
            else:
                target, pargs = run_flood, (spec, ports["udp"], stop, child)
            proc = ctx.Process(target=target, args=pargs, name=spec.name, daemon=True)
            processes.append(proc)
            pipes[spec.name] = parent
        t0 = time.monotonic()
        for proc in processes:
            proc.start()
        sampler = Sampler(collector.proc.pid, collector.metrics_url, jsonl_sink, es_sink, args.sample_interval, t0)
        sampler.start()
        seconds = args.minutes * 60
        plan = [(seconds * at, how) for at, how in zip(RESTART_AT, plan_kinds, strict=False)]
        restarter = Restarter(args.control, plan, args.es_down, t0, sampler.caught_up)
        restarter.start()
        say(f"exporters: {', '.join(f'{s.name} ({s.kind}, {s.address})' for s in specs)}")
        say(f"Elasticsearch restarts planned at {', '.join(f'{at:.0f} s ({how})' for at, how in plan) or 'none'}")

        # Drive: at least --minutes, and until 20 s after the collector caught up from the last
        # restart, so that records keep coming through every restart and its recovery.
        while True:
            elapsed = time.monotonic() - t0
            if elapsed >= seconds and not restarter.is_alive() and elapsed >= (restarter.settled or 0) + 20:
                break
            if collector.proc.poll() is not None:
                raise RuntimeError(f"ipfix-collect exited early ({collector.proc.returncode}):\n"
                                   f"{collector.log()[-3000:]}")
            time.sleep(1)
        drive_s = time.monotonic() - t0
        stop.set()
        sent = {name: pipe.recv() for name, pipe in pipes.items()}
        for proc in processes:
            proc.join(30)
        say(f"exporters stopped after {drive_s:.0f} s")

        # Everything the exporters sent is in; wait until the collector has delivered it.
        drained_by = time.monotonic() + 300
        steady = 0
        while time.monotonic() < drained_by and steady < 3:
            _, m = scrape(collector.metrics_url)
            accepted = metric(m, "ipfix_collect_records_accepted_total")
            left = (metric(m, "ipfix_collect_queue_records") + metric(m, "ipfix_collect_sink_in_flight")
                    + accepted - metric(m, "ipfix_collect_sink_delivered_records_total", sink=jsonl_sink)
                    + accepted - metric(m, "ipfix_collect_sink_delivered_records_total", sink=es_sink))
            steady = steady + 1 if left == 0 else 0
            time.sleep(1)
        final_text, final = scrape(collector.metrics_url)
        rss_idle, fds_idle = proc_status(collector.proc.pid)
        fd_kinds_idle = fd_kinds(collector.proc.pid)
        sampler.stop.set()
        sampler.join()
        status = collector.terminate(300)
    except BaseException:
        collector.kill()
        for proc in processes:
            if proc.is_alive():
                proc.kill()
        raise
    log = collector.log()
    with open(os.path.join(workdir, "metrics-final.txt"), "w") as f:
        f.write(final_text)

    # --- what arrived where ---
    jsonl_lines, jsonl_by_host = jsonl_counts(jsonl_path)
    with es_client(args.url, args.user, args.password) as es:
        es_total, es_by_host = es_counts(es, prefix)
        if not args.keep:
            es.options(ignore_status=404).indices.delete(index=f"{prefix}-*")
            es.options(ignore_status=404).indices.delete_index_template(name=prefix)
    dead_lines = 0
    if os.path.exists(dead_letter):
        with open(dead_letter, "rb") as f:
            dead_lines = sum(1 for _ in f)

    rows = []
    problems: list[str] = []
    for spec in specs:
        s = sent[spec.name]
        j = jsonl_by_host.get(spec.address, {"count": 0, "distinct": 0, "sum": 0})
        e = es_by_host.get(spec.address, {"count": 0, "sum": 0})
        row = {"exporter": spec.name, "kind": spec.kind, "address": spec.address, "domain": spec.domain,
               "sent": s.records, "jsonl": j["count"], "jsonl_distinct": j["distinct"], "elasticsearch": e["count"],
               "numbers_match": s.counter_sum == j["sum"] == e["sum"], **asdict(s)}
        rows.append(row)
        if s.errors:
            problems.append(f"{spec.name}: {'; '.join(s.errors)}")
        if spec.well_behaved and not (s.records == j["count"] == j["distinct"] == e["count"]
                                      and row["numbers_match"]):
            problems.append(f"{spec.name}: sent {s.records}, JSON lines {j['count']} ({j['distinct']} distinct), "
                            f"Elasticsearch {e['count']}, numbers {'match' if row['numbers_match'] else 'DIFFER'}")
    sent_total = sum(sent[spec.name].records for spec in specs if spec.well_behaved)
    good_hosts = {s.address for s in specs if s.well_behaved}
    jsonl_good = sum(v["count"] for h, v in jsonl_by_host.items() if h in good_hosts)
    es_good = sum(v["count"] for h, v in es_by_host.items() if h in good_hosts)
    dropped = metric(final, "ipfix_collect_records_dropped_total")
    undelivered = {sink: metric(final, "ipfix_collect_sink_undelivered_records_total", sink=sink)
                   for sink in (jsonl_sink, es_sink)}
    es_counters = {k: metric(final, f"ipfix_collect_sink_{k}_total", sink=es_sink)
                   for k in ("indexed", "duplicates", "retried", "rejected", "failed")}
    buckets = [(lab["le"], v) for lab, v in final.get("ipfix_collect_sink_bulk_request_seconds_bucket", ())
               if lab.get("sink") == es_sink]
    bulk_count = metric(final, "ipfix_collect_sink_bulk_request_seconds_count", sink=es_sink)
    bulk_sum = metric(final, "ipfix_collect_sink_bulk_request_seconds_sum", sink=es_sink)
    problem_kinds = {lab["kind"]: v for lab, v in final.get("ipfix_collect_problems_total", ())}
    malformed = {(lab["input"], lab["exporter"]): v
                 for lab, v in final.get("ipfix_collect_malformed_messages_total", ()) if v}
    garbage = sent.get("garbage")
    if dropped:
        problems.append(f"the collector dropped {dropped:.0f} UDP records (queue full)")
    if any(undelivered.values()):
        problems.append(f"undelivered: {undelivered}")
    if status != 0:
        problems.append(f"ipfix-collect exited {status}")
    if not (sent_total == jsonl_good == es_good == es_counters["indexed"]):
        problems.append(f"well-behaved total: sent {sent_total}, JSON lines {jsonl_good}, Elasticsearch {es_good}, "
                        f"indexed {es_counters['indexed']:.0f}")
    if es_total != jsonl_lines:
        problems.append(f"_count {es_total} != {jsonl_lines} JSON lines")
    if garbage is not None and not (problem_kinds.get("malformed message") and garbage.garbage_udp):
        problems.append("the garbage was not counted as malformed messages")
    if dead_lines:
        problems.append(f"{dead_lines} documents in the dead-letter file")

    samples = sampler.samples
    second_half = [s for s in samples if s.t >= samples[-1].t / 2]
    settled = restarter.settled
    steady = [s for s in samples if settled is not None and s.t >= settled]
    rss = [s.rss_kib for s in samples]
    fds = [s.fds for s in samples]
    memory = {"rss_start_mib": rss[0] / 1024, "rss_end_mib": rss[-1] / 1024, "rss_max_mib": max(rss) / 1024,
              "rss_idle_after_mib": (rss_idle or 0) / 1024, "rss_before_exporters_mib": rss0 / 1024,
              "slope_second_half_mib_per_min": slope_mib_per_min(second_half),
              "after_last_restart_from_s": settled,
              "slope_after_last_restart_mib_per_min": slope_mib_per_min(steady),
              "rss_after_last_restart_mib": steady[0].rss_kib / 1024 if steady else None,
              "fds_before_exporters": fds0, "fds_start": fds[0], "fds_end": fds[-1], "fds_max": max(fds),
              "fds_idle_after": fds_idle, "fd_kinds_before_exporters": fd_kinds0, "fd_kinds_idle_after": fd_kinds_idle,
              "by_minute": by_minute(samples)}
    restarts = [restart_effects(r, samples) for r in restarter.restarts]
    summary_lines = [line for line in log.splitlines() if not line.startswith("ipfix-collect: status:")][-40:]

    # --- the report ---
    say("")
    say(f"{'exporter':<15} {'kind':<9} {'sent':>9} {'JSON lines':>10} {'ES docs':>9}  numbers  longest send  notes")
    for r in rows:
        if r["kind"] in ("garbage", "flood"):
            note = (f"{r['garbage_udp']} garbage datagrams, {r['garbage_tcp']} garbage connections"
                    if r["kind"] == "garbage" else f"{r['templates']} templates in {r['messages']} datagrams")
            say(f"{r['exporter']:<15} {r['kind']:<9} {'-':>9} {r['jsonl']:>10} {r['elasticsearch']:>9}  {'':7}  "
                f"{'':12}  {note}")
            continue
        say(f"{r['exporter']:<15} {r['kind']:<9} {r['sent']:>9,} {r['jsonl']:>10,} {r['elasticsearch']:>9,}  "
            f"{'match' if r['numbers_match'] else 'DIFFER':<7}  {r['max_send_blocked']:>10.2f} s  "
            f"{r['connections']} connection(s), {r['late_ticks']} late ticks")
    say(f"well-behaved: sent {sent_total:,}, JSON lines {jsonl_good:,}, Elasticsearch {es_good:,} "
        f"(_count {es_total:,} of {jsonl_lines:,} lines in all); collector dropped {dropped:.0f}, "
        f"undelivered {sum(undelivered.values()):.0f}, dead-letter lines {dead_lines}")
    say(f"Elasticsearch sink: {', '.join(f'{k} {v:.0f}' for k, v in es_counters.items())}; "
        f"{bulk_count:.0f} bulk requests, mean {bulk_sum / bulk_count if bulk_count else 0:.3f} s; "
        f"buckets (le: cumulative) " + " ".join(f"{le}:{v:.0f}" for le, v in buckets))
    say(f"problems counted: {dict(problem_kinds)}; malformed messages by input: "
        f"{ {f'{i} {e}': v for (i, e), v in malformed.items()} }")
    for r in restarts:
        say(f"restart ({r['how']}) at {r['stop_issued']:.0f} s: Elasticsearch unavailable {r['es_unavailable_s']} s "
            f"(down at {r['down']:.0f} s, start at {r['start_issued']:.0f} s, up at {r['up']:.0f} s); delivery "
            f"stalled at {r['delivery_stalled_at']} s, resumed at {r['delivery_resumed_at']} s (held back "
            f"{r['held_back_s']} s), caught up at {r['caught_up_at']} s; queue max {r['max_queued_records']:.0f}, "
            f"retried {r['retried_documents']:.0f}, duplicates {r['duplicates']:.0f}, "
            f"UDP dropped {r['udp_dropped']:.0f}"
            + (f"; ERROR {r['error']}" if r["error"] else ""))
    say(f"RSS: before exporters {memory['rss_before_exporters_mib']:.1f} MiB, first sample "
        f"{memory['rss_start_mib']:.1f}, end {memory['rss_end_mib']:.1f}, max {memory['rss_max_mib']:.1f}, idle after "
        f"{memory['rss_idle_after_mib']:.1f}; slope over the second half "
        f"{memory['slope_second_half_mib_per_min']:+.2f} MiB/min"
        + (f"; from {settled:.0f} s (caught up after the last restart, {memory['rss_after_last_restart_mib']:.1f} "
           f"MiB) to the end {memory['slope_after_last_restart_mib_per_min']:+.2f} MiB/min" if steady else ""))
    say("RSS MiB / fds / queued records at each minute: " + ", ".join(
        f"{m['minute']}: {m['rss_mib']:.0f}/{m['fds']}/{m['queued']:.0f}" for m in memory["by_minute"]))
    say(f"fds: before exporters {fds0}, first sample {memory['fds_start']}, end {memory['fds_end']}, "
        f"max {memory['fds_max']}, idle after {fds_idle}; idle after less before: "
        f"{dict(fd_kinds_idle - fd_kinds0) or 'none'}, "
        f"before less idle after: {dict(fd_kinds0 - fd_kinds_idle) or 'none'}")
    say(f"ipfix-collect exit status {status}")
    say("RESULT: " + ("PASS" if not problems else "FAIL: " + " | ".join(problems)))

    if args.json:
        write_json({"benchmark": "soak",
                    "command": "python benchmarks/soak.py " + " ".join(sys.argv[1:] if argv is None else argv),
                    "environment": env_info, "minutes": args.minutes, "drive_seconds": drive_s,
                    "collector_argv": argv_[1:], "exporters": rows, "sent_well_behaved": sent_total,
                    "jsonl_lines": jsonl_lines, "jsonl_well_behaved": jsonl_good, "es_count": es_total,
                    "es_well_behaved": es_good, "dropped": dropped, "undelivered": undelivered,
                    "dead_letter_lines": dead_lines, "es_sink": es_counters,
                    "bulk_request_seconds": {"buckets": buckets, "count": bulk_count, "sum": bulk_sum},
                    "problems_counted": problem_kinds, "restarts": restarts, "memory": memory,
                    "exit_status": status, "problems": problems, "passed": not problems,
                    "collector_log_tail": summary_lines,
                    "samples": [asdict(s) for s in samples]}, args.json)
    if not args.keep:
        with contextlib.suppress(OSError):
            os.unlink(jsonl_path)  # a gigabyte or more; the logs and metrics stay
    return 0 if not problems else 1



if __name__ == "__main__":
    sys.exit(main())
