"""File -> JSON Lines end to end: `ipfix-collect` against libfixbuf's `ipfixDump` on the same file.

Both sides are the real commands, run as subprocesses on the same Flow-Aggregator-shaped IPFIX
file (`antrea_stream.py`), round after round, in alternating order:

* ipfix-collect: `ipfix-collect -q --input file:FILE --sink jsonl:OUT` (a fresh OUT every run);
* ipfixDump:     `ipfixDump --in FILE --out /dev/null` (libfixbuf-tools; it decodes every record
  and formats it as text, then throws the text away).

For each run we take the wall-clock time and the CPU time (user + system, from the child's
rusage), so that other load on the machine shows up as the gap between the two. The figure
that matters is the ratio of records/s, ours / ipfixDump, per round, and its median over the
rounds (goal: >= 1, "not slower than ipfixDump"). Nothing here asserts a time.

Before timing, the file is read once (page cache), and the first run of each side is checked:
ipfixDump's `--stats` must count every record, and OUT must hold one line per record whose first
document has the shape docs/collector.md describes.

    python benchmarks/bench_file_jsonl.py --records 100000 --rounds 7
    python benchmarks/bench_file_jsonl.py --records 100000 --rounds 7 --json file_jsonl.json
    python benchmarks/bench_file_jsonl.py --file capture.ipfix --rounds 5   # any IPFIX file
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import TCP_MESSAGE_SIZE, fa_messages  # type: ignore[no-redef]
    from report import write_json  # type: ignore[no-redef]
    from bench_decode import environment  # type: ignore[no-redef]
else:
    from .antrea_stream import TCP_MESSAGE_SIZE, fa_messages
    from .report import write_json
    from .bench_decode import environment

GOAL_RATIO = 1.0


def stream_file(records: int, seed: int, max_message_size: int, workdir: str) -> str:
    """The FA stream file for these arguments, written once and reused (the bytes are stable)."""
    path = os.path.join(workdir, f"fa-{records}-seed{seed}-{max_message_size}.ipfix")
    if not os.path.exists(path):
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.writelines(fa_messages(records, seed, max_message_size))
        os.replace(tmp, path)
    return path


def collect_command() -> list[str]:
    """`ipfix-collect` as installed, or the in-tree module when it is not on PATH."""
    exe = shutil.which("ipfix-collect")
    return [exe] if exe else [sys.executable, "-m", "ipfix_antrea.cli"]


def run(argv: list[str]) -> dict:
    """Runs ``argv`` to completion; wall seconds, the child's CPU seconds, its status and stderr."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        stderr = err.read().decode(errors="replace")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "user": usage.ru_utime,
            "sys": usage.ru_stime, "status": proc.returncode, "stderr": stderr}


def peer_record_count(path: str) -> int:
    out = subprocess.run(["ipfixDump", "--in", path, "--stats"], capture_output=True, text=True, check=True)
    # "*** File Stats: 1090 Messages, 100000 Data Records, 1 Template Records ***"
    for line in out.stdout.splitlines():
        if "Data Records" in line:
            return int(line.split("Data Records")[0].split(",")[-1].strip())
    raise RuntimeError(f"ipfixDump --stats said nothing about data records: {out.stdout[:200]!r}")


def check_output(out: str, records: int) -> None:
    with open(out, "rb") as f:
        first = json.loads(f.readline())
        lines = 1 + sum(1 for _ in f)
    if lines != records:
        raise RuntimeError(f"{out}: {lines} lines for {records} records")
    if set(first) < {"@timestamp", "@version", "type", "ipfix"} or "flowset_id" not in first["ipfix"]:
        raise RuntimeError(f"{out}: first document has an unexpected shape: {sorted(first)}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--max-message-size", type=int, default=TCP_MESSAGE_SIZE)
    p.add_argument("--file", help="benchmark this IPFIX file instead of generating the FA stream")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ipfix-antrea-bench"),
                   help="where the stream file is kept between runs and OUT is written (default %(default)s)")
    p.add_argument("--collect-cmd", metavar="CMD",
                   help="how to run ipfix-collect (default: the one on PATH), e.g. "
                        "'env PYTHONPATH=/tmp/old python3 -m ipfix_antrea.cli' to time another tree")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write machine-readable results to PATH (or stdout with no PATH)")
    args = p.parse_args(argv)

    if shutil.which("ipfixDump") is None:
        print("ipfixDump not found (apt-get install libfixbuf-tools)", file=sys.stderr)
        return 2
    os.makedirs(args.workdir, exist_ok=True)
    t0 = time.perf_counter()
    path = args.file or stream_file(args.records, args.seed, args.max_message_size, args.workdir)
    gen_s = time.perf_counter() - t0
    records = peer_record_count(path)
    size = os.path.getsize(path)
    out_path = os.path.join(args.workdir, f"out-{os.getpid()}.jsonl")
    collect = shlex.split(args.collect_cmd) if args.collect_cmd else collect_command()
    ours_argv = [*collect, "-q", "--input", f"file:{path}", "--sink", f"jsonl:{out_path}"]
    peer_argv = ["ipfixDump", "--in", path, "--out", os.devnull]
    env = environment()
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"python {env['python']} on {env['cpu']} ({env['nproc']} CPUs); "
          f"ipfix-antrea {env['ipfix-antrea']} ({env['git_commit']})", file=out)
    print(f"file: {path}: {records} records, {size} B; {args.rounds} rounds, alternating order", file=out)
    print(f"  ours: {' '.join(ours_argv)}\n  peer: {' '.join(peer_argv)}", file=out)

    with open(path, "rb") as f:  # page cache: neither side pays for the disk
        while f.read(1 << 20):
            pass

    def ours() -> dict:
        if os.path.exists(out_path):
            os.unlink(out_path)  # jsonl appends: every run starts from nothing
        r = run(ours_argv)
        if r["status"] != 0:
            raise RuntimeError(f"ipfix-collect exited {r['status']}: {r['stderr'][-2000:]}")
        r["out_bytes"] = os.path.getsize(out_path)
        return r

    def peer() -> dict:
        r = run(peer_argv)
        if r["status"] != 0:
            raise RuntimeError(f"ipfixDump exited {r['status']}: {r['stderr'][-2000:]}")
        return r

    try:
        ours()  # warm-up, and the output check
        check_output(out_path, records)
        peer()
        rounds = []
        for i in range(args.rounds):
            pair = {}
            for side, fn in ((("ours", ours), ("peer", peer)) if i % 2 == 0 else (("peer", peer), ("ours", ours))):
                pair[side] = fn()
            pair["ratio_wall"] = pair["peer"]["wall"] / pair["ours"]["wall"]
            pair["ratio_cpu"] = pair["peer"]["cpu"] / pair["ours"]["cpu"]
            rounds.append(pair)
            o, q = pair["ours"], pair["peer"]
            print(f"  round {i + 1}: ipfix-collect {o['wall']:.2f} s wall {o['cpu']:.2f} s CPU | "
                  f"ipfixDump {q['wall']:.2f} s wall {q['cpu']:.2f} s CPU | "
                  f"ratio {pair['ratio_wall']:.2f}x wall {pair['ratio_cpu']:.2f}x CPU", file=out)
    finally:
        if os.path.exists(out_path):
            os.unlink(out_path)

    def summary(side: str) -> dict:
        walls = [r[side]["wall"] for r in rounds]
        cpus = [r[side]["cpu"] for r in rounds]
        return {"median_wall_s": statistics.median(walls), "median_cpu_s": statistics.median(cpus),
                "best_wall_s": min(walls), "best_cpu_s": min(cpus),
                "median_records_per_s_wall": records / statistics.median(walls),
                "median_records_per_s_cpu": records / statistics.median(cpus)}

    res = {"ours": summary("ours"), "peer": summary("peer"),
           "ratio_wall_median": statistics.median(r["ratio_wall"] for r in rounds),
           "ratio_cpu_median": statistics.median(r["ratio_cpu"] for r in rounds)}
    res["goal_met"] = res["ratio_wall_median"] >= GOAL_RATIO and res["ratio_cpu_median"] >= GOAL_RATIO
    o, q = res["ours"], res["peer"]
    print(f"\n  {'':14} {'median wall':>12} {'median CPU':>11} {'rec/s (wall)':>13} {'rec/s (CPU)':>12}", file=out)
    for label, s in (("ipfix-collect", o), ("ipfixDump", q)):
        print(f"  {label:14} {s['median_wall_s']:>10.2f} s {s['median_cpu_s']:>9.2f} s "
              f"{s['median_records_per_s_wall']:>13,.0f} {s['median_records_per_s_cpu']:>12,.0f}", file=out)
    print(f"  ratio ipfix-collect / ipfixDump (records/s, median of the rounds' ratios): "
          f"{res['ratio_wall_median']:.2f}x wall, {res['ratio_cpu_median']:.2f}x CPU "
          f"(goal >= {GOAL_RATIO:g}x: {'met' if res['goal_met'] else 'NOT met'})", file=out)
    print(f"  ipfix-collect wrote {rounds[-1]['ours']['out_bytes']:,} B of JSON Lines per run", file=out)
    # The fixed cost in ours: the same command on a file of one record (interpreter, imports).
    tiny = stream_file(1, args.seed, args.max_message_size, args.workdir)
    tiny_out = out_path + ".tiny"
    startup = []
    for _ in range(3):
        if os.path.exists(tiny_out):
            os.unlink(tiny_out)
        startup.append(run([*collect, "-q", "--input", f"file:{tiny}", "--sink", f"jsonl:{tiny_out}"]))
    os.unlink(tiny_out)
    res["ours_startup"] = {"median_wall_s": statistics.median(r["wall"] for r in startup),
                           "median_cpu_s": statistics.median(r["cpu"] for r in startup)}
    print(f"  of which fixed (ipfix-collect on a 1-record file): {res['ours_startup']['median_wall_s']:.2f} s wall, "
          f"{res['ours_startup']['median_cpu_s']:.2f} s CPU", file=out)

    if args.json:
        doc = {"benchmark": "bench_file_jsonl",
               "command": "python benchmarks/bench_file_jsonl.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "environment": env, "file": path, "file_bytes": size, "records": records,
               "stream_generation_seconds": gen_s, "ours_argv": ours_argv, "peer_argv": peer_argv,
               "goal_ratio": GOAL_RATIO, "result": res,
               "rounds": [{k: ({kk: vv for kk, vv in v.items() if kk != "stderr"} if isinstance(v, dict) else v)
                           for k, v in r.items()} for r in rounds]}
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
