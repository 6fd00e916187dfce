"""ipfix-collect against what users pick instead, on the same datagrams and files in the same run.

The peers, each built or installed from its package registry (see `build`):

* pmacct's **nfacctd** (Debian `pmacct`): print plugin writing JSON to files every second, two
  configurations: `5-tuple` (addresses, ports, protocol: the cheapest useful job) and `antrea`
  (plus every Antrea and reverse element of the template, declared in an
  `aggregate_primitives` file that this harness writes from `antrea_stream.FA_AGGREGATE_IPV4`).
  Both key on `export_proto_seqno` too, so that no two records of the stream are merged.
* **go-ipfix**'s collecting process (`github.com/vmware/go-ipfix`, pinned in
  `benchmarks/goipfix_collect/go.mod`), through our `goipfix_collect` program, which writes every
  record as JSON Lines (its example collector cannot be counted).
* **GoFlow2** (`github.com/netsampler/goflow2/v2`, `go install`ed at GOFLOW2_VERSION), JSON to a
  file, its default configuration (it has no mapping for Antrea's elements, so it drops them).
* File decoders: libfixbuf's **ipfixDump** (Debian `libfixbuf-tools`) and **python-ipfix**
  (PyPI `ipfix==0.9.7`, through `pyipfix_dump.py`).
* **ipfix-collect** itself, once per `--collector-args` value (e.g. "" and "--workers 2").

What is measured:

* **UDP zero-loss rate.** The sender is `udpsend.c` (compiled here with gcc): pre-built
  Flow-Aggregator-shaped datagrams of <= 1472 octets (`udp_harness.pool_file`), templates first
  and again every `--template-every` data messages, `--exporters` sockets with their own source
  ports and sequence numbers, sendmmsg batches paced every millisecond. A step starts the peer
  on a fresh port and output directory, sends at a fixed rate for `--seconds`, waits until the
  socket is empty and the output has stopped growing, reads the peer's CPU time and peak RSS
  from /proc (the whole process tree: nfacctd forks its plugins), stops it, and counts its
  output. It passes when every record sent is in the output and the backlog drained within
  `--max-backlog` (plus the print interval for nfacctd). The rate doubles, then bisects, as in
  bench_udp_zero_loss.py. The kernel's drop counter (/proc/net/udp) says where losses were.
* **CPU seconds per 100k records**: the process tree's user + system time over a step (startup
  and shutdown excluded) divided by the records it wrote; at the peer's zero-loss step, and at
  `--common-rate`, the same for every peer.
* **Peak RSS**: VmHWM summed over the process tree.
* **Receive buffer**: every UDP peer gets `--rcvbuf` (4 MiB): ipfix-collect `--udp-rcvbuf`,
  nfacctd `nfacctd_pipe_size`, goipfix_collect `-rcvbuf`. GoFlow2 has no option: Go's net
  package leaves the kernel default, so as root the harness raises net.core.rmem_default to what
  the others get (twice the size asked for, as the kernel doubles SO_RCVBUF) while GoFlow2 opens
  its socket, and puts it back right after. It raises
  net.core.rmem_max when that is lower, and says so. What each socket really got is read back
  with `ss -m` (the kernel doubles SO_RCVBUF) and reported.
* **Antrea elements**: the first records of the pool go to every peer at a low rate (to the
  file decoders as a file); each output record is matched to the record sent (by source
  address and ports) and each of the template's 58 non-IANA elements (54 Antrea, 4 reverse) is
  classed: named and right, named with another value (hex, say), or not there under a name.
  GoFlow2 is also run with a mapping file for those elements, to show what that gives: with
  every string rendered as text, and with the Pod labels left as hex.
* **File decoding**: the same datagrams as a file, `--file-records` records, each file decoder
  `--file-rounds` times in rotating order: wall and CPU time (rusage), peak RSS.
* **TCP** (`--tcp-exporters K`, 0 to skip): K connections each send `--tcp-records` records in
  65535-octet messages as fast as TCP takes them; the time until the collector's output stops
  growing, for each ipfix-collect variant and go-ipfix.
* **RSS over a long run** (`--rss-records N`, 0 to skip): each ipfix-collect variant takes N
  records over UDP at `--rss-rate` into `jsonl:/dev/null`; the RSS of every process of the
  tree is sampled every `--rss-interval` seconds and reported as a curve.

Nothing here asserts a time. Run, read, and put the table in docs/performance.md:

    python benchmarks/bench_peers.py --repeat 3
    python benchmarks/bench_peers.py --collector-args "" --collector-args "--workers 2" \\
        --exporters 4 --tcp-exporters 4 --rss-records 10000000 --json peers.json
"""

from __future__ import annotations

import argparse
import calendar
import contextlib
import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import FA_AGGREGATE_IPV4, TCP_MESSAGE_SIZE, fa_messages, fa_records  # type: ignore[no-redef]
    from bench_decode import environment  # type: ignore[no-redef]
    from bench_file_jsonl import collect_command, peer_record_count  # type: ignore[no-redef]
    from report import write_json  # type: ignore[no-redef]
    from udp_harness import (  # type: ignore[no-redef]
        datagram_pool,
        free_port,
        pool_file,
        proc_udp,
        receive_buffers,
        tcp_listening,
        tree,
        tree_cpu,
        tree_memory,
        write_stream,
        zero_loss_search,
    )
else:
    from .antrea_stream import FA_AGGREGATE_IPV4, TCP_MESSAGE_SIZE, fa_messages, fa_records
    from .bench_decode import environment
    from .bench_file_jsonl import collect_command, peer_record_count
    from .report import write_json
    from .udp_harness import (
        datagram_pool,
        free_port,
        pool_file,
        proc_udp,
        receive_buffers,
        tcp_listening,
        tree,
        tree_cpu,
        tree_memory,
        write_stream,
        zero_loss_search,
    )

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOFLOW2_MODULE = "github.com/netsampler/goflow2/v2/cmd/goflow2"
GOFLOW2_VERSION = "v2.2.6"
PYTHON_IPFIX = ("ipfix", "0.9.7")
DEBIAN_PACKAGES = {"nfacctd": "pmacct", "ipfixDump": "libfixbuf-tools"}
# The template's elements outside IANA's registry: what "Antrea fields" are checked on.
ANTREA_ELEMENTS = [e for e in FA_AGGREGATE_IPV4 if e.enterprise != 0]
_INT_TYPES = {"unsigned8", "unsigned16", "unsigned32", "unsigned64", "dateTimeSeconds"}


def _say(*parts: object) -> None:
    print(*parts, file=sys.stderr if _OUT.json_to_stdout else sys.stdout, flush=True)


class _OUT:  # where progress goes: stderr when the JSON goes to stdout
    json_to_stdout = False


# --- building and installing the peers --------------------------------------------------------

def _root_prefix() -> list[str]:
    return [] if os.geteuid() == 0 else ["sudo"]


def build_udpsend(build_dir: str) -> str:
    """Compiles benchmarks/udpsend.c with the machine's gcc into build_dir (when out of date)."""
    exe = os.path.join(build_dir, "udpsend")
    src = os.path.join(HERE, "udpsend.c")
    if not os.path.exists(exe) or os.path.getmtime(exe) < os.path.getmtime(src):
        os.makedirs(build_dir, exist_ok=True)
        subprocess.run(["gcc", "-O2", "-Wall", "-o", exe, src], check=True)
    return exe


def build(args) -> dict:
    """Builds/installs what is missing; returns {tool: path} and {tool: reason} for the missing."""
    os.makedirs(args.build_dir, exist_ok=True)
    tools, missing, versions = {}, {}, {}

    tools["udpsend"] = build_udpsend(args.build_dir)

    debian = [pkg for exe, pkg in DEBIAN_PACKAGES.items() if shutil.which(exe) is None]
    if debian and args.install:
        _say(f"installing {' '.join(debian)} with apt-get")
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run([*_root_prefix(), "apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run([*_root_prefix(), "env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "install", "-y",
                        "-qq", *debian], check=False, env=env)
    for exe, pkg in DEBIAN_PACKAGES.items():
        path = shutil.which(exe)
        if path:
            tools[exe] = path
            versions[exe] = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Version}", pkg],
                                           capture_output=True, text=True).stdout or "?"
        else:
            missing[exe] = f"apt-get install {pkg}"

    go = shutil.which("go")
    gobin = os.path.join(args.build_dir, "peers", "bin")
    goflow2 = os.path.join(gobin, "goflow2")
    stamp = goflow2 + ".version"
    if go and args.install and not (os.path.exists(stamp) and Path(stamp).read_text() == GOFLOW2_VERSION):
        _say(f"go install {GOFLOW2_MODULE}@{GOFLOW2_VERSION}")
        r = subprocess.run([go, "install", f"{GOFLOW2_MODULE}@{GOFLOW2_VERSION}"],
                           env={**os.environ, "GOBIN": gobin, "GOFLAGS": "-buildvcs=false"})
        if r.returncode == 0:
            with open(stamp, "w") as f:
                f.write(GOFLOW2_VERSION)
    if os.path.exists(stamp):
        tools["goflow2"] = goflow2
        versions["goflow2"] = f"GoFlow2 {Path(stamp).read_text()}"
    else:
        missing["goflow2"] = f"go install {GOFLOW2_MODULE}@{GOFLOW2_VERSION}" + ("" if go else " (no go on PATH)")

    goipfix = os.path.join(args.build_dir, "goipfix_collect")
    if go:
        r = subprocess.run([go, "build", "-o", goipfix, "."], cwd=os.path.join(HERE, "goipfix_collect"),
                           env={**os.environ, "GOFLAGS": "-buildvcs=false"})
        if r.returncode == 0:
            tools["goipfix_collect"] = goipfix
            with open(os.path.join(HERE, "goipfix_collect", "go.mod")) as f:
                found = re.search(r"github.com/vmware/go-ipfix (v\S+)", f.read())
            versions["goipfix_collect"] = f"go-ipfix {found.group(1) if found else '?'}"
    if "goipfix_collect" not in tools:
        missing["goipfix_collect"] = "go build in benchmarks/goipfix_collect" + ("" if go else " (no go on PATH)")

    name, version = PYTHON_IPFIX
    if _dist_version(name) != version and args.install:
        _say(f"pip install {name}=={version}")
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", f"{name}=={version}"], check=False)
    if _dist_version(name) == version:
        tools["python-ipfix"] = sys.executable
        versions["python-ipfix"] = f"python-ipfix {version}"
    else:
        missing["python-ipfix"] = f"pip install {name}=={version}"
    return {"tools": tools, "missing": missing, "versions": versions}


def _dist_version(name: str) -> str | None:
    out = subprocess.run([sys.executable, "-c", f"import importlib.metadata as m; print(m.version({name!r}))"],
                         capture_output=True, text=True)
    return out.stdout.strip() or None


def raise_rmem_max(size: int) -> str | None:
    """Raises net.core.rmem_max to ``size`` when lower and root; says what it did (or None)."""
    path = "/proc/sys/net/core/rmem_max"
    current = int(Path(path).read_text())
    if current >= size:
        return None
    if os.geteuid() != 0:
        return f"net.core.rmem_max is {current} and we are not root: buffers are capped at that"
    with open(path, "w") as f:
        f.write(str(size))
    return f"raised net.core.rmem_max from {current} to {size}"


@contextlib.contextmanager
def rmem_default(size: int | None) -> Iterator[None]:
    """net.core.rmem_default at ``size`` inside the block (root only), restored after."""
    path = "/proc/sys/net/core/rmem_default"
    if size is None or os.geteuid() != 0:
        yield
        return
    old = Path(path).read_text().strip()
    with open(path, "w") as f:
        f.write(str(size))
    try:
        yield
    finally:
        with open(path, "w") as f:
            f.write(old)


# --- the peers -------------------------------------------------------------------------------

def _iso_to_epoch(text: str) -> int:
    return calendar.timegm(time.strptime(text[:19], "%Y-%m-%dT%H:%M:%S"))


def _count_lines(paths: list[str]) -> int:
    n = 0
    for path in paths:
        with open(path, "rb") as f:
            n += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    return n


def _json_lines(paths: list[str]) -> Iterator[dict]:
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                with contextlib.suppress(ValueError):
                    yield json.loads(line)


class Peer:
    """A collector run as a subprocess; subclasses say how to start it, count and read its output."""

    label = ""
    transports = ("udp",)
    flush_delay = 0.0  # seconds between the peer's periodic writes of its output
    sets_rcvbuf = True  # False: no option for it; rmem_default is raised while it starts
    stop_grace = 60.0  # seconds between SIGTERM and SIGKILL

    def argv(self, transport: str, port: int, out_dir: str, rcvbuf: int) -> list[str]:
        raise NotImplementedError

    def outputs(self, out_dir: str) -> list[str]:
        return sorted(glob.glob(os.path.join(out_dir, "*")))

    def count(self, out_dir: str) -> int:
        return _count_lines(self.outputs(out_dir))

    def records(self, out_dir: str) -> Iterator[dict]:
        """Output records keyed by our element names, for the elements the peer names."""
        raise NotImplementedError


class IpfixCollect(Peer):
    transports = ("udp", "tcp")

    def __init__(self, collect: list[str], extra: str, sink: str | None = None) -> None:
        self.collect, self.extra, self.sink = collect, shlex.split(extra), sink
        self.label = " ".join(["ipfix-collect", *self.extra])

    def argv(self, transport, port, out_dir, rcvbuf):
        argv = [*self.collect, *self.extra, "--input", f"{transport}://127.0.0.1:{port}",
                "--sink", self.sink or f"jsonl:{os.path.join(out_dir, 'out.jsonl')}"]
        return [*argv, "--udp-rcvbuf", str(rcvbuf)] if transport == "udp" else argv

    def records(self, out_dir):
        for doc in _json_lines(self.outputs(out_dir)):
            rec = dict(doc.get("ipfix", {}))
            for e in FA_AGGREGATE_IPV4:
                if e.data_type == "dateTimeSeconds" and isinstance(rec.get(e.name), str):
                    rec[e.name] = _iso_to_epoch(rec[e.name])
            yield rec


class GoIpfix(Peer):
    label = "go-ipfix collector"
    transports = ("udp", "tcp")

    def __init__(self, exe: str) -> None:
        self.exe = exe

    def argv(self, transport, port, out_dir, rcvbuf):
        argv = [self.exe, "-addr", f"127.0.0.1:{port}", "-transport", transport,
                "-out", os.path.join(out_dir, "out.jsonl")]
        return [*argv, "-rcvbuf", str(rcvbuf)] if transport == "udp" else argv

    def records(self, out_dir):
        return _json_lines(self.outputs(out_dir))


class Nfacctd(Peer):
    """nfacctd with the print plugin; ``antrea`` adds every non-IANA element as a primitive."""

    flush_delay = 1.0  # print_refresh_time
    stop_grace = 3.0  # it sometimes ignores SIGTERM (signals blocked in the core); output is on disk by then

    _SEMANTICS: ClassVar[dict[str, tuple[str, str]]] = {
        "string": ("vlen", "str"), "unsigned8": ("1", "u_int"), "unsigned16": ("2", "u_int"),
        "unsigned64": ("8", "u_int"), "ipv4Address": ("4", "ip"), "dateTimeSeconds": ("4", "u_int")}
    _IANA: ClassVar[dict[str, str]] = {"ip_src": "sourceIPv4Address", "ip_dst": "destinationIPv4Address",
                                       "port_src": "sourceTransportPort", "port_dst": "destinationTransportPort"}

    def __init__(self, exe: str, antrea: bool, workdir: str) -> None:
        self.exe, self.antrea, self.workdir = exe, antrea, workdir
        self.label = f"nfacctd ({'Antrea primitives' if antrea else '5-tuple'})"

    def argv(self, transport, port, out_dir, rcvbuf):
        keys = ["src_host", "dst_host", "src_port", "dst_port", "proto", "export_proto_seqno"]
        conf = [
            "daemonize: false",
            "nfacctd_ip: 127.0.0.1",
            f"nfacctd_port: {port}",
            f"nfacctd_pipe_size: {rcvbuf}",
            "nfacctd_time_new: true",
            "plugins: print[out]",
            "print_output[out]: json",
            f"print_output_file[out]: {os.path.join(out_dir, 'nf-%s.json')}",
            "print_output_file_append[out]: true",
            f"print_refresh_time[out]: {int(self.flush_delay)}",
        ]
        if self.antrea:
            prim = os.path.join(self.workdir, "nfacctd-antrea-primitives.lst")
            with open(prim, "w") as f:
                for e in ANTREA_ELEMENTS:
                    length, semantics = self._SEMANTICS[e.data_type]
                    f.write(f"name={e.name} field_type={e.enterprise}:{e.element_id} len={length} "
                            f"semantics={semantics}\n")
            conf.append(f"aggregate_primitives: {prim}")
            keys += [e.name for e in ANTREA_ELEMENTS]
        conf.append(f"aggregate[out]: {', '.join(keys)}")
        path = os.path.join(self.workdir, f"nfacctd-{port}.conf")
        with open(path, "w") as f:
            f.write("\n".join(conf) + "\n")
        return [self.exe, "-f", path]

    def records(self, out_dir):
        names = {e.name.lower(): e.name for e in ANTREA_ELEMENTS} | self._IANA
        for rec in _json_lines(self.outputs(out_dir)):
            yield {names.get(k, k): v for k, v in rec.items()}


class GoFlow2(Peer):
    """GoFlow2, JSON to a file. ``mapping``: None (its defaults), "text" (a mapping file for every
    non-IANA element, strings rendered as text) or "labels-hex" (the same, but the two Pod-label
    elements left in GoFlow2's default rendering of bytes, hex)."""

    sets_rcvbuf = False
    _IANA: ClassVar[dict[str, str]] = {"src_addr": "sourceIPv4Address", "dst_addr": "destinationIPv4Address",
                                       "src_port": "sourceTransportPort", "dst_port": "destinationTransportPort"}
    _LABELS: ClassVar[dict[str, str]] = {"text": "mapping file, strings as text",
                                         "labels-hex": "mapping file, Pod labels as hex"}

    def __init__(self, exe: str, mapping: str | None, workdir: str) -> None:
        self.exe, self.mapping, self.workdir = exe, mapping, workdir
        self.label = "GoFlow2" + (f" ({self._LABELS[mapping]})" if mapping else "")

    def mapping_file(self) -> str:
        """The mapping a user writes to get Antrea's elements: each to its own protobuf field
        (1000 up), strings rendered as text, addresses as addresses."""
        path = os.path.join(self.workdir, f"goflow2-antrea-mapping-{self.mapping}.yaml")
        lines = ["formatter:", "  fields: [type, sequence_num, sampler_address, time_flow_start_ns, "
                 "time_flow_end_ns, bytes, packets, src_addr, dst_addr, proto, src_port, dst_port, "
                 + ", ".join(e.name for e in ANTREA_ELEMENTS) + "]", "  protobuf:"]
        for i, e in enumerate(ANTREA_ELEMENTS):
            kind = "string" if e.data_type in ("string", "ipv4Address") else "varint"
            lines += [f"    - name: {e.name}", f"      index: {1000 + i}", f"      type: {kind}"]
        lines.append("  render:")
        for e in ANTREA_ELEMENTS:
            if e.data_type == "ipv4Address":
                lines.append(f"    {e.name}: ip")
            elif e.data_type == "string" and not (self.mapping == "labels-hex" and e.name.endswith("PodLabels")):
                lines.append(f"    {e.name}: string")
        lines += ["ipfix:", "  mapping:"]
        for e in ANTREA_ELEMENTS:
            lines += [f"    - field: {e.element_id}", "      penprovided: true", f"      pen: {e.enterprise}",
                      f"      destination: {e.name}"]
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def argv(self, transport, port, out_dir, rcvbuf):
        argv = [self.exe, "-listen", f"netflow://127.0.0.1:{port}",
                "-addr", f"127.0.0.1:{free_port(socket.SOCK_STREAM)}",
                "-format", "json", "-transport.file", os.path.join(out_dir, "out.json")]
        return [*argv, "-mapping", self.mapping_file()] if self.mapping else argv

    def count(self, out_dir):
        # Its file transport can write two records on one line (seen with 2 workers): count objects.
        n = 0
        for path in self.outputs(out_dir):
            with open(path, "rb") as f:
                n += f.read().count(b'{"type":')
        return n

    def records(self, out_dir):
        for rec in _json_lines(self.outputs(out_dir)):
            yield {self._IANA.get(k, k): v for k, v in rec.items()}


# --- running a peer --------------------------------------------------------------------------

class Running:
    """A peer's process from start (listening) to stop, observed from /proc."""

    def __init__(self, peer: Peer, transport: str, out_dir: str, rcvbuf: int) -> None:
        self.peer, self.transport, self.out_dir = peer, transport, out_dir
        shutil.rmtree(out_dir, ignore_errors=True)
        os.makedirs(out_dir)
        self.port = free_port(socket.SOCK_DGRAM if transport == "udp" else socket.SOCK_STREAM)
        self.err = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        argv = peer.argv(transport, self.port, out_dir, rcvbuf)
        # The kernel doubles what SO_RCVBUF asks for and takes rmem_default as it is.
        with rmem_default(2 * rcvbuf if transport == "udp" and not peer.sets_rcvbuf else None):
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=self.err, start_new_session=True)
            deadline = time.monotonic() + 30
            while not self.sockets():
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{peer.label} did not start: {' '.join(argv)}\n{self.stderr[-2000:]}")
                time.sleep(0.05)
        self.settle()
        self.rb = receive_buffers(self.port) if transport == "udp" else []
        self.stderr = ""

    def sockets(self) -> int:
        """How many sockets the peer has on its port (workers may each have one)."""
        return proc_udp(self.port).sockets if self.transport == "udp" else tcp_listening(self.port)

    def settle(self, quiet: float = 0.5, limit: float = 15.0) -> None:
        """Waits until the peer has started: its sockets and processes no longer change and it
        used at most 50 ms of CPU over ``quiet`` seconds (plugins, workers, imports)."""
        end = time.monotonic() + limit
        state, cpu, since = None, self.cpu(), time.monotonic()
        while time.monotonic() < end:
            time.sleep(0.1)
            now_state, now_cpu, now = (self.sockets(), len(tree(self.proc.pid))), self.cpu(), time.monotonic()
            if now_state != state or now_cpu - cpu > 0.05:
                state, cpu, since = now_state, now_cpu, now
            elif now - since >= quiet:
                return

    def output_size(self) -> int:
        return sum(os.path.getsize(p) for p in self.peer.outputs(self.out_dir) if os.path.exists(p))

    def wait_idle(self, since: float, settle: float, busy=lambda: False, limit: float = 300) -> float:
        """Waits until the senders are done (``busy()`` false), the socket is empty and the output
        has not grown for ``settle`` s; returns the seconds from ``since`` to the last growth."""
        size, still_since = -1, time.monotonic()
        while time.monotonic() - since < limit:
            rx = proc_udp(self.port).rx_queue if self.transport == "udp" else 0
            now_size = self.output_size()
            now = time.monotonic()
            if now_size != size or rx or busy():
                size, still_since = now_size, now
            elif now - still_since >= settle:
                break
            time.sleep(0.02)
        return max(0.0, still_since - since)

    def cpu(self) -> float:
        return tree_cpu(self.proc.pid)

    def peak_rss(self) -> int:
        return sum(tree_memory(self.proc.pid, "VmHWM").values())

    def stop(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(self.peer.stop_grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.err.seek(0)
        self.stderr = self.err.read().decode(errors="replace")
        self.err.close()


def udpsend(args, tools, pool: str, port: int, rate: float, seconds: float) -> dict:
    out = subprocess.run([tools["udpsend"], "--pool", pool, "--pool-records", str(args.pool_records),
                          "--dest", f"127.0.0.1:{port}", "--rate", str(rate), "--seconds", str(seconds),
                          "--exporters", str(args.exporters), "--template-every", str(args.template_every),
                          "--sndbuf", str(args.rcvbuf)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def udp_step(args, tools, pool: str, peer: Peer, rate: float, seconds: float | None = None) -> dict:
    """One fixed-rate step: sent, written, lost, backlog, CPU per 100k, peak RSS."""
    seconds = seconds or args.seconds
    running = Running(peer, "udp", os.path.join(args.workdir, "out"), args.rcvbuf)
    try:
        cpu0 = running.cpu()
        drops0 = proc_udp(running.port).drops or 0
        sent = udpsend(args, tools, pool, running.port, rate, seconds)
        backlog = running.wait_idle(time.monotonic(), settle=0.3 + peer.flush_delay)
        cpu = running.cpu() - cpu0
        drops = (proc_udp(running.port).drops or 0) - drops0
        peak = running.peak_rss()
    finally:
        running.stop()
    written = peer.count(running.out_dir)
    shutil.rmtree(running.out_dir, ignore_errors=True)
    loss = sent["records"] - written
    allowed = (args.max_backlog if args.max_backlog is not None else 0.1 * seconds) + peer.flush_delay
    short = sent["records_per_s"] < 0.98 * rate
    return {"target_records_per_s": rate, "sent": sent, "written": written, "loss": loss,
            "kernel_dropped_datagrams": drops, "backlog_seconds": backlog, "sender_short": short,
            "cpu_seconds": cpu, "cpu_per_100k": cpu / written * 1e5 if written else None,
            "peak_rss_bytes": peak, "receive_buffers": running.rb, "status": running.proc.returncode,
            "passed": loss == 0 and backlog <= allowed and not short}


def udp_search(args, tools, pool: str, peer: Peer) -> dict:
    steps: list[dict] = []

    def attempt(rate: float) -> bool:
        r = udp_step(args, tools, pool, peer, rate)
        steps.append(r)
        s = r["sent"]
        why = []
        if r["loss"]:
            why.append(f"lost {r['loss']:,} records (kernel dropped {r['kernel_dropped_datagrams']:,} datagrams)")
        if not r["passed"] and r["backlog_seconds"] > 0.1 * args.seconds:
            why.append(f"{r['backlog_seconds']:.1f} s of backlog")
        if r["sender_short"]:
            why.append("the sender fell short")
        cpu = f"{r['cpu_per_100k']:.2f}" if r["cpu_per_100k"] is not None else "-"
        _say(f"    {rate:>9,.0f} rec/s: sent {s['records']:>8,} in {s['datagrams']:>7,} datagrams, "
             f"wrote {r['written']:>8,}, backlog {r['backlog_seconds']:.2f} s, CPU {cpu} s/100k, "
             f"peak RSS {r['peak_rss_bytes'] / 2**20:.0f} MiB: {'pass' if r['passed'] else 'FAIL: ' + '; '.join(why)}")
        return r["passed"]

    _, bad = zero_loss_search(attempt, args.start, args.max_rate, args.min_rate, args.resolution)
    best = max((s for s in steps if s["passed"]), key=lambda s: s["target_records_per_s"], default=None)
    return {"zero_loss_records_per_s": best["sent"]["records_per_s"] if best else 0.0,
            "zero_loss_datagrams_per_s": best["sent"]["datagrams_per_s"] if best else 0.0,
            "cpu_per_100k_at_zero_loss": best["cpu_per_100k"] if best else None,
            "peak_rss_bytes": max(s["peak_rss_bytes"] for s in steps),
            "receive_buffers": steps[0]["receive_buffers"], "first_failing_target": bad, "steps": steps}


# --- the Antrea elements ---------------------------------------------------------------------

def _key(rec: dict) -> tuple | None:
    try:
        return (str(rec["sourceIPv4Address"]), int(rec["sourceTransportPort"]), int(rec["destinationTransportPort"]))
    except (KeyError, TypeError, ValueError):
        return None


def _same(element, got: object, want: object) -> bool:
    if element.data_type in _INT_TYPES:
        try:
            return int(got) == want  # nfacctd prints its u_int primitives as text
        except (TypeError, ValueError):
            return False
    return got == want


def antrea_fields(peer_records: Iterator[dict], sent: list[dict]) -> dict:
    """Classes each non-IANA element of the template by what the peer's output holds for it."""
    expected = {_key(r): r for r in sent}
    matched = []
    out = 0
    for rec in peer_records:
        out += 1
        want = expected.get(_key(rec))
        if want is not None:
            matched.append((rec, want))
    right, wrong, absent = [], {}, []
    for e in ANTREA_ELEMENTS:
        present = [(rec[e.name], want[e.name]) for rec, want in matched if e.name in rec]
        if not matched or not present:
            absent.append(e.name)
        elif len(present) == len(matched) and all(_same(e, g, w) for g, w in present):
            right.append(e.name)
        else:
            g, w = next(((g, w) for g, w in present if not _same(e, g, w)), present[0])
            wrong[e.name] = {"got": str(g)[:80], "sent": str(w)[:80], "present_in": len(present)}
    return {"records_sent": len(sent), "records_out": out, "records_matched": len(matched),
            "elements": len(ANTREA_ELEMENTS), "named_and_right": len(right), "named_wrong_value": wrong,
            "not_named": absent}


def sent_records(n: int, seed: int) -> list[dict]:
    names = [e.name for e in FA_AGGREGATE_IPV4]
    return [dict(zip(names, r, strict=True)) for r in fa_records(n, seed)]


def udp_antrea_check(args, tools, pool: str, peer: Peer) -> dict:
    """The first records of the pool at a low rate (one exporter), then the field classes."""
    running = Running(peer, "udp", os.path.join(args.workdir, "out"), args.rcvbuf)
    try:
        sent = subprocess.run([tools["udpsend"], "--pool", pool, "--pool-records", str(args.pool_records),
                               "--dest", f"127.0.0.1:{running.port}", "--rate", "2000", "--seconds",
                               str(args.check_records / 2000)], capture_output=True, text=True, check=True)
        n = json.loads(sent.stdout)["records"]
        running.wait_idle(time.monotonic(), settle=0.3 + peer.flush_delay)
    finally:
        running.stop()
    result = antrea_fields(peer.records(running.out_dir), sent_records(args.pool_records, args.seed)[:n])
    result["unparseable_lines"] = _unparseable(peer.outputs(running.out_dir))
    errors = [line for line in running.stderr.splitlines() if _ERROR_LINE.search(line)]
    result["errors_logged"] = len(errors)
    result["first_error"] = errors[0][errors[0].find("error="):][:400] if errors else None
    shutil.rmtree(running.out_dir, ignore_errors=True)
    return result


_ERROR_LINE = re.compile(r"ERROR|Traceback|^E\d{4} |\berror:")  # GoFlow2, nfacctd, Python, klog, ours


def _unparseable(paths: list[str]) -> int:
    bad = 0
    for path in paths:
        with open(path, "rb") as f:
            for line in f:
                try:
                    json.loads(line)
                except ValueError:
                    bad += 1
    return bad


_DUMP_FIELD = re.compile(r"^\s*\((?:(\d+)/)?(\d+)\)\s+(\S+) : (.*)$")


def ipfixdump_fields(exe: str, path: str, sent: list[dict]) -> dict:
    """ipfixDump's text of the file, parsed into records keyed by our names where it names them."""
    text = subprocess.run([exe, "--in", path], capture_output=True, text=True, check=True).stdout
    by_number = {(e.enterprise, e.element_id): e.name for e in FA_AGGREGATE_IPV4}
    records: list[dict] = []
    for line in text.splitlines():
        if line.startswith("--- data record"):
            records.append({})
            continue
        m = _DUMP_FIELD.match(line)
        if m and records:
            pen, num, name, value = int(m.group(1) or 0), int(m.group(2)), m.group(3), m.group(4).strip()
            ours = by_number.get((pen, num))
            if ours and (pen == 0 or name == ours):  # a name it knows (IANA, RFC 5103 reverse)
                records[-1][ours] = int(value) if value.isdigit() else value
    return antrea_fields(iter(records), sent)


def pyipfix_fields(path: str, out: str, sent: list[dict]) -> dict:
    subprocess.run([sys.executable, os.path.join(HERE, "pyipfix_dump.py"), path, "--out", out],
                   check=True, capture_output=True)
    return antrea_fields(_json_lines([out]), sent)


# --- file decoding ---------------------------------------------------------------------------

def file_decoders(args, tools, path: str, records: int) -> dict:
    out = os.path.join(args.workdir, "file-out.jsonl")
    sides = {"ipfix-collect": [*collect_command_for(args), "-q", "--input", f"file:{path}", "--sink", f"jsonl:{out}"]}
    if "ipfixDump" in tools:
        sides["ipfixDump"] = [tools["ipfixDump"], "--in", path, "--out", os.devnull]
    if "python-ipfix" in tools:
        sides["python-ipfix"] = [sys.executable, os.path.join(HERE, "pyipfix_dump.py"), path, "--out", out]
    runs: dict[str, list[dict]] = {k: [] for k in sides}
    names = list(sides)
    for i in range(args.file_rounds):
        for name in names[i % len(names):] + names[:i % len(names)]:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
            r = run_measured(sides[name])
            if r["status"] != 0:
                raise RuntimeError(f"{name} exited {r['status']}: {r['stderr'][-2000:]}")
            if name != "ipfixDump":
                r["written"] = _count_lines([out])
            runs[name].append(r)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(out)
    result = {}
    for name, rs in runs.items():
        wall = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        result[name] = {"records": records, "median_wall_s": wall, "median_cpu_s": cpu,
                        "records_per_s_wall": records / wall, "cpu_per_100k": cpu / records * 1e5,
                        "wall_range_s": [min(r["wall"] for r in rs), max(r["wall"] for r in rs)],
                        "peak_rss_bytes": max(r["peak_rss"] for r in rs),
                        "written": rs[0].get("written"), "argv": sides[name]}
        _say(f"  {name:14} {records / wall:>9,.0f} rec/s (median wall {wall:.2f} s, CPU {cpu:.2f} s, "
             f"{cpu / records * 1e5:.2f} CPU s/100k, peak RSS {result[name]['peak_rss_bytes'] / 2**20:.0f} MiB)")
    return result


def run_measured(argv: list[str]) -> dict:
    """Runs ``argv`` to completion: wall seconds, the child's CPU seconds, peak RSS and status.

    The peak RSS is VmHWM polled every 10 ms until the child exits: rusage's ru_maxrss would
    count the parent's pages that the child had before exec.
    """
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        hwm = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            hwm = tree_memory(proc.pid, "VmHWM").get(proc.pid, hwm)
            time.sleep(0.01)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_rss": hwm,
                "status": proc.returncode, "stderr": err.read().decode(errors="replace")}


# --- TCP -------------------------------------------------------------------------------------

def tcp_run(args, peer: Peer, stream: bytes, records_each: int) -> dict:
    """K connections each send the stream at once; seconds until the output stops growing."""
    running = Running(peer, "tcp", os.path.join(args.workdir, "out"), args.rcvbuf)
    try:
        cpu0 = running.cpu()
        errors: list[BaseException] = []
        handed_over = threading.Semaphore(0)

        def send() -> None:
            try:
                with socket.create_connection(("127.0.0.1", running.port)) as s:
                    s.sendall(stream)
                    s.shutdown(socket.SHUT_WR)
                    handed_over.release()
                    s.recv(1)  # until the collector closes or we are stopped
            except OSError as exc:
                errors.append(exc)
                handed_over.release()

        t0 = time.monotonic()
        threads = [threading.Thread(target=send, daemon=True) for _ in range(args.tcp_exporters)]
        for t in threads:
            t.start()
        # Done when every sender has handed its bytes over and the output has stopped growing.
        done = [0]

        def busy() -> bool:
            while handed_over.acquire(blocking=False):
                done[0] += 1
            return done[0] < len(threads)

        elapsed = running.wait_idle(t0, settle=1.0, busy=busy)
        cpu = running.cpu() - cpu0
        peak = running.peak_rss()
    finally:
        running.stop()
    written = peer.count(running.out_dir)
    shutil.rmtree(running.out_dir, ignore_errors=True)
    total = records_each * args.tcp_exporters
    return {"seconds": elapsed, "records": total, "written": written, "records_per_s": written / elapsed,
            "cpu_seconds": cpu, "cpu_per_100k": cpu / written * 1e5 if written else None,
            "peak_rss_bytes": peak, "errors": [str(e) for e in errors], "complete": written == total}


# --- RSS over a long run ---------------------------------------------------------------------

def rss_curve(args, tools, pool: str, peer: IpfixCollect) -> dict:
    """N records over UDP at a fixed rate into jsonl:/dev/null, RSS of each process sampled."""
    quiet = IpfixCollect(peer.collect, shlex.join(peer.extra), sink="jsonl:/dev/null")
    running = Running(quiet, "udp", os.path.join(args.workdir, "out"), args.rcvbuf)
    try:
        seconds = args.rss_records / args.rss_rate
        sender = subprocess.Popen([tools["udpsend"], "--pool", pool, "--pool-records", str(args.pool_records),
                                   "--dest", f"127.0.0.1:{running.port}", "--rate", str(args.rss_rate),
                                   "--seconds", str(seconds), "--exporters", str(args.exporters),
                                   "--template-every", str(args.template_every)], stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        samples = []

        def sample(records: int) -> None:
            rss = tree_memory(running.proc.pid, "VmRSS")
            samples.append({"seconds": round(time.monotonic() - t0, 1), "records_sent": records,
                            "rss_bytes": {str(p): v for p, v in sorted(rss.items())}})

        while sender.poll() is None:
            sample(int(min(time.monotonic() - t0, seconds) * args.rss_rate))
            time.sleep(args.rss_interval)
        sent = json.loads(sender.stdout.read())
        running.wait_idle(time.monotonic(), settle=1.0)
        sample(sent["records"])
        drops = proc_udp(running.port).drops
    finally:
        running.stop()
    found = re.search(r"(\d+) records, \d+ messages", running.stderr)
    return {"collector": peer.label, "rate": args.rss_rate, "sent": sent, "kernel_dropped_datagrams": drops,
            "written": int(found.group(1)) if found else None, "samples": samples}


# --- the run ---------------------------------------------------------------------------------

def collect_command_for(args) -> list[str]:
    return shlex.split(args.collect_cmd) if args.collect_cmd else collect_command()


def _median_spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "runs": values}


def _fmt_spread(s: dict, digits: int = 0) -> str:
    if len(s["runs"]) == 1:
        return f"{s['median']:,.{digits}f}"
    return f"{s['median']:,.{digits}f} ({s['min']:,.{digits}f}–{s['max']:,.{digits}f})"


def _mib(n: int | None) -> str:
    return f"{n / 2**20:,.0f}" if n else "-"


def tables(doc: dict) -> str:
    """The Markdown tables for docs/performance.md."""
    lines = []
    udp = doc.get("udp") or {}
    if udp:
        lines += [f"UDP, {doc['exporters']} exporter(s), {doc['seconds_per_step']:g} s per step, "
                  f"{len(next(iter(udp.values()))['zero_loss_records_per_s']['runs'])} run(s): median (min–max)", "",
                  "| collector | zero-loss records/s | datagrams/s | CPU s per 100k at that rate | "
                  f"CPU s per 100k at {doc['common_rate']:,.0f} rec/s | peak RSS MiB | receive buffer (rb) |",
                  "|---|---|---|---|---|---|---|"]
        for label, r in udp.items():
            rb = ", ".join(sorted({f"{b / 2**20:g} MiB" for b in r["receive_buffers"]})) or "?"
            common = r.get("common_rate_step")
            common_cpu = f"{common['cpu_per_100k']:.2f}" if common and common["cpu_per_100k"] else "-"
            if common and common["loss"]:
                common_cpu += f" (lost {common['loss']:,})"
            lines.append(f"| {label} | {_fmt_spread(r['zero_loss_records_per_s'])} | "
                         f"{_fmt_spread(r['zero_loss_datagrams_per_s'])} | "
                         f"{_fmt_spread(r['cpu_per_100k_at_zero_loss'], 2)} | "
                         f"{common_cpu} | {_mib(r['peak_rss_bytes'])} | {rb} |")
        lines.append("")
    files = doc.get("file") or {}
    if files:
        lines += [f"File of the same datagrams, {doc['file_records']:,} records, median of "
                  f"{doc['file_rounds']} rounds", "",
                  "| decoder | records/s (wall) | CPU s per 100k | peak RSS MiB |", "|---|---|---|---|"]
        for name, r in files.items():
            lines.append(f"| {name} | {r['records_per_s_wall']:,.0f} | {r['cpu_per_100k']:.2f} | "
                         f"{_mib(r['peak_rss_bytes'])} |")
        lines.append("")
    fields = doc.get("antrea_fields") or {}
    if fields:
        lines += [f"Antrea's elements ({len(ANTREA_ELEMENTS)} outside IANA's registry: 54 Antrea, 4 reverse), "
                  "first records of the stream", "",
                  "| peer | named and right | named, other value | not named | records out / sent | note |",
                  "|---|---|---|---|---|---|"]
        for label, r in fields.items():
            if "error" in r:
                lines.append(f"| {label} | - | - | - | - | {r['error']} |")
                continue
            notes = []
            if r.get("errors_logged"):
                notes.append(f"{r['errors_logged']} errors logged, e.g. `{r['first_error'][:160]}`")
            if r.get("unparseable_lines"):
                notes.append(f"{r['unparseable_lines']} lines not JSON")
            if r["named_wrong_value"]:
                name, ex = next(iter(r["named_wrong_value"].items()))
                notes.append(f"e.g. {name}: `{ex['got'][:40]}` for `{ex['sent'][:40]}`")
            lines.append(f"| {label} | {r['named_and_right']} | {len(r['named_wrong_value'])} | "
                         f"{len(r['not_named'])} | {r['records_out']:,} / {r['records_sent']:,} | {'; '.join(notes)} |")
        lines.append("")
    tcp = doc.get("tcp") or {}
    if tcp:
        lines += [f"TCP, {doc['tcp_exporters']} exporters × {doc['tcp_records']:,} records in 65535-octet messages, "
                  f"median of {doc['tcp_rounds']} rounds", "",
                  "| collector | seconds | records/s | CPU s per 100k | peak RSS MiB |", "|---|---|---|---|---|"]
        for label, r in tcp.items():
            lines.append(f"| {label} | {_fmt_spread(r['seconds'], 2)} | {_fmt_spread(r['records_per_s'])} | "
                         f"{_fmt_spread(r['cpu_per_100k'], 2)} | {_mib(r['peak_rss_bytes'])} |")
        lines.append("")
    for curve in doc.get("rss") or []:
        lines += [f"RSS of `{curve['collector']}` over {curve['sent']['records']:,} records at "
                  f"{curve['rate']:,.0f} rec/s (written {curve['written'] or 0:,}); MiB per process", "",
                  "| records sent | RSS MiB per process |", "|---|---|"]
        samples = curve["samples"]
        step = max(1, len(samples) // 10)
        for s in samples[::step] + ([samples[-1]] if (len(samples) - 1) % step else []):
            lines.append(f"| {s['records_sent']:,} | {', '.join(_mib(v) for v in s['rss_bytes'].values())} |")
        lines.append("")
    return "\n".join(lines)


def _loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--collector-args", action="append", metavar="ARGS",
                   help="extra ipfix-collect flags, one row each; repeatable (default: one row, none)")
    p.add_argument("--collect-cmd", metavar="CMD", help="how to run ipfix-collect (default: the one on PATH)")
    p.add_argument("--peers", default="nfacctd,nfacctd-antrea,go-ipfix,goflow2",
                   help="UDP peers besides ipfix-collect (default %(default)s; '' for none)")
    p.add_argument("--seconds", type=float, default=5.0, help="sending time per UDP step (default %(default)s)")
    p.add_argument("--start", type=float, default=4000, help="first rate, records/s (default %(default)s)")
    p.add_argument("--max-rate", type=float, default=1_000_000)
    p.add_argument("--min-rate", type=float, default=500)
    p.add_argument("--resolution", type=float, default=0.05)
    p.add_argument("--max-backlog", type=float, metavar="SECONDS",
                   help="backlog allowed when the sender stops (default: 10%% of --seconds)")
    p.add_argument("--common-rate", type=float, default=5000,
                   help="the rate at which every peer's CPU per 100k records is also measured (default %(default)s)")
    p.add_argument("--repeat", type=int, default=1, help="UDP searches per peer, interleaved (default %(default)s)")
    p.add_argument("--exporters", type=int, default=1, help="UDP exporters: source sockets (default %(default)s)")
    p.add_argument("--template-every", type=int, default=1000,
                   help="data messages between template refreshes, per exporter (default %(default)s)")
    p.add_argument("--rcvbuf", type=int, default=4 << 20, help="receive buffer for every peer, bytes (default 4 MiB)")
    p.add_argument("--pool-records", type=int, default=10_000,
                   help="distinct records cycled through by the sender (default %(default)s)")
    p.add_argument("--check-records", type=int, default=300, help="records for the Antrea-element check")
    p.add_argument("--file-records", type=int, default=100_000, help="0 skips the file decoders")
    p.add_argument("--file-rounds", type=int, default=3)
    p.add_argument("--tcp-exporters", type=int, default=4, help="0 skips TCP (default %(default)s)")
    p.add_argument("--tcp-records", type=int, default=50_000, help="records per TCP exporter")
    p.add_argument("--tcp-rounds", type=int, default=3)
    p.add_argument("--rss-records", type=int, default=0, help="records of the RSS run; 0 skips it (default)")
    p.add_argument("--rss-rate", type=float, default=20_000)
    p.add_argument("--rss-interval", type=float, default=5.0)
    p.add_argument("--skip-udp", action="store_true", help="no zero-loss searches")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--no-install", dest="install", action="store_false",
                   help="use what is there; build nothing from registries")
    p.add_argument("--build-dir", default=os.path.join(ROOT, "build"))
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ipfix-antrea-bench-peers"))
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write machine-readable results to PATH (or stdout with no PATH)")
    args = p.parse_args(argv)
    _OUT.json_to_stdout = args.json == "-"
    os.makedirs(args.workdir, exist_ok=True)

    built = build(args)
    tools = built["tools"]
    for tool, how in built["missing"].items():
        _say(f"{tool}: not available ({how}); left out")
    notes = [n for n in [raise_rmem_max(args.rcvbuf)] if n]
    env = environment()
    load_before = _loadavg()
    _say(f"python {env['python']} on {env['cpu']} ({env['nproc']} CPUs); ipfix-antrea {env['ipfix-antrea']} "
         f"({env['git_commit']}); load average {load_before}")
    for n in notes:
        _say(n)

    pool = pool_file(args.pool_records, args.seed, args.workdir)
    template, messages, counts = datagram_pool(args.pool_records, args.seed, args.workdir)
    collect = collect_command_for(args)
    ours = [IpfixCollect(collect, extra) for extra in (args.collector_args or [""])]
    wanted = [w for w in args.peers.split(",") if w]
    peers: list[Peer] = list(ours)
    for w in wanted:
        if w in ("nfacctd", "nfacctd-antrea") and "nfacctd" in tools:
            peers.append(Nfacctd(tools["nfacctd"], w == "nfacctd-antrea", args.workdir))
        elif w == "go-ipfix" and "goipfix_collect" in tools:
            peers.append(GoIpfix(tools["goipfix_collect"]))
        elif w == "goflow2" and "goflow2" in tools:
            peers.append(GoFlow2(tools["goflow2"], None, args.workdir))
    versions = {**built["versions"], "ipfix-collect": f"ipfix-antrea {env['ipfix-antrea']} ({env['git_commit']})"}
    doc: dict = {"benchmark": "bench_peers",
                 "command": "python benchmarks/bench_peers.py " + shlex.join(sys.argv[1:] if argv is None else argv),
                 "environment": env, "versions": versions, "missing": built["missing"], "notes": notes,
                 "load_average_before": load_before, "exporters": args.exporters,
                 "seconds_per_step": args.seconds, "common_rate": args.common_rate,
                 "records_per_datagram": sum(counts) / len(counts), "rcvbuf": args.rcvbuf}
    _say(f"datagrams: {len(messages):,} distinct FA messages, {doc['records_per_datagram']:.2f} records each, "
         f"cycled by udpsend; {args.exporters} exporter(s), templates every {args.template_every} messages")

    # Antrea elements: every UDP peer (GoFlow2 also with a mapping file), then the file decoders.
    _say("\nAntrea elements")
    fields = {}
    # ours twice: as run (--enrich antrea rewrites some Antrea values on purpose, as Logstash
    # did) and with --enrich none (the decoded values)
    check_peers = [ours[0], IpfixCollect(collect, "--enrich none"), *peers[len(ours):]]
    if "goflow2" in tools:
        check_peers += [GoFlow2(tools["goflow2"], mapping, args.workdir) for mapping in ("text", "labels-hex")]
    for peer in check_peers:
        try:
            fields[peer.label] = udp_antrea_check(args, tools, pool, peer)
        except (RuntimeError, subprocess.CalledProcessError) as exc:
            fields[peer.label] = {"error": str(exc)[:300]}
    sent = sent_records(args.pool_records, args.seed)[:args.check_records]
    small = os.path.join(args.workdir, "check.ipfix")
    with open(small, "wb") as f:
        f.writelines(fa_messages(args.check_records, args.seed, 1472))
    if "ipfixDump" in tools:
        fields["ipfixDump"] = ipfixdump_fields(tools["ipfixDump"], small, sent)
    if "python-ipfix" in tools:
        fields["python-ipfix"] = pyipfix_fields(small, os.path.join(args.workdir, "check.jsonl"), sent)
    for label, r in fields.items():
        if "error" in r:
            _say(f"  {label}: {r['error']}")
        else:
            _say(f"  {label}: {r['named_and_right']}/{r['elements']} named and right, "
                 f"{len(r['named_wrong_value'])} named with another value, {len(r['not_named'])} not named; "
                 f"{r['records_out']}/{r['records_sent']} records out" +
                 (f"; {r['errors_logged']} errors logged" if r.get("errors_logged") else ""))
    doc["antrea_fields"] = fields

    if args.file_records:
        path = os.path.join(args.workdir, f"udp-datagrams-{args.file_records}.ipfix")
        n = write_stream(path, template, messages, counts, args.file_records)
        if "ipfixDump" in tools and peer_record_count(path) != n:
            raise RuntimeError(f"{path}: ipfixDump counts other than {n} records")
        _say(f"\nfile decoders: {n:,} records in the same datagrams, {args.file_rounds} rounds")
        doc.update(file=file_decoders(args, tools, path, n), file_records=n, file_rounds=args.file_rounds)

    if not args.skip_udp:
        runs: dict[str, list[dict]] = {p.label: [] for p in peers}
        for i in range(args.repeat):
            for peer in peers[i % len(peers):] + peers[:i % len(peers)]:
                _say(f"\nUDP zero-loss search {i + 1}/{args.repeat}: {peer.label}")
                r = udp_search(args, tools, pool, peer)
                runs[peer.label].append(r)
                _say(f"  => {r['zero_loss_records_per_s']:,.0f} records/s with zero loss")
        udp = {}
        for peer in peers:
            rs = runs[peer.label]
            _say(f"\n{peer.label} at the common rate, {args.common_rate:,.0f} records/s")
            common = udp_step(args, tools, pool, peer, args.common_rate)
            udp[peer.label] = {
                "zero_loss_records_per_s": _median_spread([r["zero_loss_records_per_s"] for r in rs]),
                "zero_loss_datagrams_per_s": _median_spread([r["zero_loss_datagrams_per_s"] for r in rs]),
                "cpu_per_100k_at_zero_loss": _median_spread([r["cpu_per_100k_at_zero_loss"] or 0 for r in rs]),
                "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rs),
                "receive_buffers": rs[0]["receive_buffers"], "common_rate_step": common, "searches": rs}
        doc["udp"] = udp

    if args.tcp_exporters:
        stream = b"".join(fa_messages(args.tcp_records, args.seed, TCP_MESSAGE_SIZE))
        tcp_peers = [*ours, *(q for q in peers if isinstance(q, GoIpfix))]
        tcp_runs: dict[str, list[dict]] = {q.label: [] for q in tcp_peers}
        for i in range(args.tcp_rounds):
            for peer in tcp_peers[i % len(tcp_peers):] + tcp_peers[:i % len(tcp_peers)]:
                r = tcp_run(args, peer, stream, args.tcp_records)
                tcp_runs[peer.label].append(r)
                _say(f"  TCP {i + 1}/{args.tcp_rounds} {peer.label}: {r['written']:,}/{r['records']:,} records in "
                     f"{r['seconds']:.2f} s ({r['records_per_s']:,.0f} rec/s), CPU {r['cpu_seconds']:.2f} s")
        doc["tcp"] = {label: {"seconds": _median_spread([r["seconds"] for r in rs]),
                              "records_per_s": _median_spread([r["records_per_s"] for r in rs]),
                              "cpu_per_100k": _median_spread([r["cpu_per_100k"] or 0 for r in rs]),
                              "peak_rss_bytes": max(r["peak_rss_bytes"] for r in rs), "runs": rs}
                      for label, rs in tcp_runs.items()}
        doc.update(tcp_exporters=args.tcp_exporters, tcp_records=args.tcp_records, tcp_rounds=args.tcp_rounds)

    if args.rss_records:
        doc["rss"] = []
        for peer in ours:
            _say(f"\nRSS of {peer.label} over {args.rss_records:,} records at {args.rss_rate:,.0f} rec/s")
            doc["rss"].append(rss_curve(args, tools, pool, peer))

    doc["load_average_after"] = _loadavg()
    _say(f"\nload average {doc['load_average_after']} (before: {load_before})\n")
    _say(tables(doc))
    if args.json:
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
