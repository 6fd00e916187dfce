"""The highest UDP sending rate that `ipfix-collect` takes into JSON Lines with zero loss.

One step: start `ipfix-collect --input udp://127.0.0.1:0 --sink jsonl:OUT [--udp-rcvbuf SIZE]`
(the port is read from its `listening on udp://...` line), send Flow-Aggregator-shaped datagrams
(`antrea_stream.py` records packed into <= 1472-octet messages, the template first) from a
separate process at a fixed rate for `--seconds`, wait for the collector to go idle, SIGTERM it
(it drains its queue and flushes), and count the lines of OUT.

* loss = records sent - lines in OUT. The collector's summary says how many of those it dropped
  because its delivery queue was full; the kernel's drop counter of the socket
  (/proc/net/udp, read just before the SIGTERM) says how many datagrams overflowed the socket's
  receive buffer.
* A step passes when loss is zero *and* the collector kept pace: the backlog left when the sender
  stops (records still in the socket buffer or the queue) must drain within
  `--max-backlog` seconds (default: 10% of the step). Without this a 100,000-record queue
  would hide a rate the collector cannot sustain for a few seconds.
* The sender paces by perf_counter: every millisecond it sends the datagrams that are due by then
  (so the average rate is exact and a burst is at most 1 ms of traffic), sleeping between ticks
  when there is time and spinning for the last part of a tick. Each datagram gets its sequence
  number, so the collector sees a clean stream. The sender reports the rate it achieved; a step
  whose sender fell more than 2% short is reported as such.
* The search doubles the rate from `--start` until a step fails (or halves it until one
  passes), then bisects between the last
  pass and the first failure until they are within `--resolution` (default 5%).

Reported with the default receive buffer and with `--udp-rcvbuf 4M` (Linux caps it at
net.core.rmem_max). For scale, the same run times `ipfix-collect` and libfixbuf's `ipfixDump`
on a file of the same 1472-octet messages (what ingesting costs without the network): the UDP
rate divided by our file rate is how much of the CPU-bound rate survives UDP's per-datagram costs
and the lack of backpressure. Nothing here asserts a time.

    python benchmarks/bench_udp_zero_loss.py --seconds 5
    python benchmarks/bench_udp_zero_loss.py --seconds 10 --rcvbuf default --rcvbuf 4M --json udp.json
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import UDP_MESSAGE_SIZE  # type: ignore[no-redef]
    from bench_decode import environment  # type: ignore[no-redef]
    from bench_file_jsonl import collect_command, run  # type: ignore[no-redef]
    from report import write_json  # type: ignore[no-redef]
    from udp_harness import datagram_pool, proc_udp, write_stream, zero_loss_search  # type: ignore[no-redef]
else:
    from .antrea_stream import UDP_MESSAGE_SIZE
    from .bench_decode import environment
    from .bench_file_jsonl import collect_command, run
    from .report import write_json
    from .udp_harness import datagram_pool, proc_udp, write_stream, zero_loss_search

_LISTENING = re.compile(r"listening on udp://127\.0\.0\.1:(\d+)")
_DROPPED = re.compile(r"(\d+) UDP records dropped")
TICK = 0.001  # the sender's pacing tick: at most 1 ms of traffic goes out in one burst


# --- the sender ------------------------------------------------------------------------------

def sender(port: int, template: bytes, messages: list[bytes], counts: list[int], rate: float,
           seconds: float, result: multiprocessing.connection.Connection) -> None:
    """Sends ``rate`` records/s for ``seconds`` (in whole datagrams), paced per TICK."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
    sock.connect(("127.0.0.1", port))
    send = sock.send
    send(template)
    time.sleep(0.05)  # the template first, alone
    bufs = [bytearray(m) for m in messages]
    per_datagram = sum(counts) / len(counts)
    dgram_rate = rate / per_datagram
    total = max(1, int(dgram_rate * seconds))
    pack_into = struct.pack_into
    perf = time.perf_counter
    k = len(bufs)
    seq = sent = records = errors = 0
    t0 = perf()
    while sent < total:
        due = min(total, int((perf() - t0) * dgram_rate) + 1)
        while sent < due:
            i = sent % k
            buf = bufs[i]
            pack_into(">I", buf, 8, seq)
            try:
                send(buf)
            except OSError:  # ENOBUFS and the like: the datagram did not leave
                errors += 1
            else:
                seq += counts[i]
                records += counts[i]
            sent += 1
        next_t = t0 + sent / dgram_rate
        if sent < total:
            left = next_t - perf()
            if left > TICK:
                time.sleep(left - TICK / 2)
            while perf() < next_t - TICK:  # spin to within a tick of the next datagram
                pass
    elapsed = perf() - t0
    sock.close()
    result.send({"datagrams": sent - errors, "records": records, "send_errors": errors,
                 "seconds": elapsed, "records_per_s": records / elapsed,
                 "datagrams_per_s": (sent - errors) / elapsed})


# --- one step --------------------------------------------------------------------------------

def step(args, pool, rate: float, rcvbuf: str | None, out_path: str) -> dict:
    template, messages, counts = pool
    if os.path.exists(out_path):
        os.unlink(out_path)
    argv = [*(shlex.split(args.collect_cmd) if args.collect_cmd else collect_command()),
            "--input", "udp://127.0.0.1:0", "--sink", f"jsonl:{out_path}"]
    if rcvbuf:
        argv += ["--udp-rcvbuf", rcvbuf]
    err = tempfile.TemporaryFile()  # noqa: SIM115 - closed below, after the collector exits
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=args.workdir)
    try:
        port = None
        deadline = time.monotonic() + 30
        while port is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                err.seek(0)
                raise RuntimeError(f"ipfix-collect did not start: {err.read().decode(errors='replace')[-2000:]}")
            time.sleep(0.05)
            err.seek(0)
            found = _LISTENING.search(err.read().decode(errors="replace"))
            port = int(found.group(1)) if found else None
        parent, child = multiprocessing.Pipe(duplex=False)
        ctx = multiprocessing.get_context("fork")
        snd = ctx.Process(target=sender, args=(port, template, messages, counts, rate, args.seconds, child))
        snd.start()
        sent = parent.recv()
        snd.join()
        ended = time.monotonic()
        # Backlog: until the socket buffer is empty and OUT has stopped growing for a while.
        size, still_since = -1, time.monotonic()
        while time.monotonic() - ended < 120:
            rx_queue = proc_udp(port).rx_queue
            now_size = os.path.getsize(out_path) if os.path.exists(out_path) else 0
            now = time.monotonic()
            if now_size != size or rx_queue:
                size, still_since = now_size, now
            elif now - still_since >= 0.3:
                break
            time.sleep(0.02)
        backlog = max(0.0, still_since - ended)
        kernel_drops = proc_udp(port).drops
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    err.seek(0)
    stderr = err.read().decode(errors="replace")
    err.close()
    with open(out_path, "rb") as f:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    os.unlink(out_path)
    dropped = _DROPPED.search(stderr)
    loss = sent["records"] - lines
    max_backlog = args.max_backlog if args.max_backlog is not None else 0.1 * args.seconds
    short = sent["records_per_s"] < 0.98 * rate
    return {"target_records_per_s": rate, "sent": sent, "lines": lines, "loss": loss,
            "queue_dropped_records": int(dropped.group(1)) if dropped else 0,
            "kernel_dropped_datagrams": kernel_drops, "backlog_seconds": backlog,
            "sender_short": short, "status": proc.returncode,
            "passed": loss == 0 and backlog <= max_backlog and not short}


def search(args, pool, rcvbuf: str | None, out_path: str, out) -> dict:
    steps = []

    def attempt(rate: float) -> bool:
        r = step(args, pool, rate, rcvbuf, out_path)
        steps.append(r)
        s = r["sent"]
        why = []
        if r["loss"]:
            why.append(f"lost {r['loss']} records (queue dropped {r['queue_dropped_records']}, "
                       f"kernel dropped {r['kernel_dropped_datagrams']} datagrams)")
        if r["backlog_seconds"] > (args.max_backlog if args.max_backlog is not None else 0.1 * args.seconds):
            why.append(f"fell behind: {r['backlog_seconds']:.1f} s of backlog")
        if r["sender_short"]:
            why.append("the sender fell short")
        print(f"    {rate:>9,.0f} rec/s target: sent {s['records']:>8,} records in {s['datagrams']:>7,} datagrams "
              f"({s['records_per_s']:>9,.0f} rec/s, {s['datagrams_per_s']:>8,.0f} dgram/s), "
              f"{r['lines']:>8,} lines, backlog {r['backlog_seconds']:.2f} s: "
              f"{'pass' if r['passed'] else 'FAIL: ' + '; '.join(why)}", file=out, flush=True)
        return r["passed"]

    _, bad = zero_loss_search(attempt, args.start, args.max_rate, args.min_rate, args.resolution)
    best = max((s for s in steps if s["passed"]), key=lambda s: s["target_records_per_s"], default=None)
    return {"rcvbuf": rcvbuf or "default", "zero_loss_records_per_s": best["sent"]["records_per_s"] if best else 0.0,
            "zero_loss_datagrams_per_s": best["sent"]["datagrams_per_s"] if best else 0.0,
            "first_failing_target": bad, "steps": steps}


def file_rates(args, pool, out) -> dict:
    """ipfix-collect and ipfixDump on a file of the same datagrams (median of rounds)."""
    template, messages, counts = pool
    path = os.path.join(args.workdir, f"udp-datagrams-{args.file_records}.ipfix")
    n = write_stream(path, template, messages, counts, args.file_records)
    out_path = os.path.join(args.workdir, f"udp-file-{os.getpid()}.jsonl")
    ours_argv = [*(shlex.split(args.collect_cmd) if args.collect_cmd else collect_command()),
                 "-q", "--input", f"file:{path}", "--sink", f"jsonl:{out_path}"]
    peer_argv = ["ipfixDump", "--in", path, "--out", os.devnull]
    res: dict[str, list] = {"ours": [], "peer": []}
    for i in range(args.file_rounds):
        for side in (("ours", "peer") if i % 2 == 0 else ("peer", "ours")):
            if side == "ours" and os.path.exists(out_path):
                os.unlink(out_path)
            r = run(ours_argv if side == "ours" else peer_argv, args.workdir)
            if r["status"] != 0:
                raise RuntimeError(f"{side} exited {r['status']}: {r['stderr'][-2000:]}")
            res[side].append(r)
    if os.path.exists(out_path):
        os.unlink(out_path)
    summary = {"records": n}
    for side, rs in res.items():
        summary[side] = {"median_wall_s": statistics.median(r["wall"] for r in rs),
                         "median_cpu_s": statistics.median(r["cpu"] for r in rs)}
        summary[side]["records_per_s_wall"] = n / summary[side]["median_wall_s"]
    print(f"  file of the same 1472-octet datagrams, {n:,} records, {args.file_rounds} rounds: "
          f"ipfix-collect {summary['ours']['records_per_s_wall']:,.0f} rec/s "
          f"({summary['ours']['median_wall_s']:.2f} s wall, {summary['ours']['median_cpu_s']:.2f} s CPU), "
          f"ipfixDump {summary['peer']['records_per_s_wall']:,.0f} rec/s "
          f"({summary['peer']['median_wall_s']:.2f} s wall, {summary['peer']['median_cpu_s']:.2f} s CPU)",
          file=out, flush=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=5.0, help="sending time per step (default %(default)s)")
    p.add_argument("--start", type=float, default=2000, help="first rate, records/s (default %(default)s)")
    p.add_argument("--max-rate", type=float, default=1_000_000)
    p.add_argument("--min-rate", type=float, default=100)
    p.add_argument("--resolution", type=float, default=0.05,
                   help="stop bisecting when pass and fail are this close, relative (default %(default)s)")
    p.add_argument("--max-backlog", type=float, metavar="SECONDS",
                   help="backlog allowed when the sender stops (default: 10%% of --seconds)")
    p.add_argument("--rcvbuf", action="append", metavar="SIZE",
                   help="'default' or a --udp-rcvbuf size; repeatable (default: default and 4M)")
    p.add_argument("--pool-records", type=int, default=10_000,
                   help="distinct records cycled through by the sender (default %(default)s)")
    p.add_argument("--file-records", type=int, default=60_000,
                   help="records in the file-rate comparison; 0 skips it (default %(default)s)")
    p.add_argument("--file-rounds", type=int, default=3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--collect-cmd", metavar="CMD",
                   help="how to run ipfix-collect (default: this interpreter -m ipfix_antrea.cli)")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ipfix-antrea-bench"))
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write machine-readable results to PATH (or stdout with no PATH)")
    args = p.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)

    t0 = time.perf_counter()
    pool = datagram_pool(args.pool_records, args.seed, args.workdir)
    gen_s = time.perf_counter() - t0
    env = environment()
    out = sys.stderr if args.json == "-" else sys.stdout
    try:
        with open("/proc/sys/net/core/rmem_default") as f:
            rmem_default = int(f.read())
        with open("/proc/sys/net/core/rmem_max") as f:
            rmem_max = int(f.read())
    except OSError:
        rmem_default = rmem_max = None
    _, messages, counts = pool
    print(f"python {env['python']} on {env['cpu']} ({env['nproc']} CPUs); "
          f"ipfix-antrea {env['ipfix-antrea']} ({env['git_commit']}); "
          f"net.core.rmem_default {rmem_default}, rmem_max {rmem_max}", file=out)
    print(f"datagrams: {len(messages):,} distinct FA messages of <= {UDP_MESSAGE_SIZE} octets, "
          f"{sum(counts) / len(counts):.2f} records each, cycled; {args.seconds:g} s per step", file=out)

    results = []
    file_summary = file_rates(args, pool, out) if args.file_records else None
    out_path = os.path.join(args.workdir, f"udp-{os.getpid()}.jsonl")
    for spec in args.rcvbuf or ["default", "4M"]:
        rcvbuf = None if spec == "default" else spec
        print(f"\n  receive buffer: {'default' if rcvbuf is None else '--udp-rcvbuf ' + rcvbuf}", file=out, flush=True)
        r = search(args, pool, rcvbuf, out_path, out)
        results.append(r)
        line = (f"  => zero loss up to {r['zero_loss_records_per_s']:,.0f} records/s "
                f"({r['zero_loss_datagrams_per_s']:,.0f} datagrams/s)")
        if file_summary:
            ours, peer = file_summary["ours"], file_summary["peer"]
            rate = r["zero_loss_records_per_s"]
            line += (f" = {rate / ours['records_per_s_wall']:.0%} of ipfix-collect's file rate, "
                     f"{rate / peer['records_per_s_wall']:.0%} of ipfixDump's")
        print(line, file=out, flush=True)

    if args.json:
        doc = {"benchmark": "bench_udp_zero_loss",
               "command": "python benchmarks/bench_udp_zero_loss.py "
                          + " ".join(sys.argv[1:] if argv is None else argv),
               "environment": env, "rmem_default": rmem_default, "rmem_max": rmem_max,
               "seconds_per_step": args.seconds, "pool_generation_seconds": gen_s,
               "records_per_datagram": sum(counts) / len(counts), "file_rates": file_summary,
               "results": results}
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
