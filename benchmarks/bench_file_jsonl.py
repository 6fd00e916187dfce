"""File -> JSON Lines end to end: `ipfix-collect` against libfixbuf's `ipfixDump` on the same file.

Both sides are the real commands, run as subprocesses on the same Flow-Aggregator-shaped IPFIX
file, round after round, in alternating order, for every message shape of `antrea_stream.SHAPES`
(65535-octet and 1472-octet messages with the template once; the UDP shapes: two records per
message, templates re-sent every few dozen messages, IPv4 and IPv6 templates mixed):

* ipfix-collect: `python -m ipfix_antrea.cli -q --input file:FILE --sink jsonl:OUT [EXTRA]` (the
  console script's code on this interpreter; a fresh OUT every run; EXTRA from `--collect-args`,
  e.g. `--enrich none`);
* ipfixDump:     `ipfixDump --in FILE --out /dev/null` (libfixbuf-tools; it decodes every record
  and formats it as text, then throws the text away).

For each run we take the wall-clock time and the CPU time (user + system, from the child's
rusage), so that other load on the machine shows up as the gap between the two. The figure
that matters is the ratio of records/s, ours / ipfixDump, per round, and its median over the
rounds, against the goal of the shape (`GOALS`). Nothing here asserts a time.

Before timing, the file is read once (page cache), and the first run of each side is checked:
ipfixDump's `--stats` must count every record, and OUT must hold one line per record whose first
document has the shape docs/collector.md describes.

    python benchmarks/bench_file_jsonl.py --records 100000 --rounds 7
    python benchmarks/bench_file_jsonl.py --records 100000 --rounds 7 --shape udp-refresh --json file_jsonl.json
    python benchmarks/bench_file_jsonl.py --records 100000 --rounds 7 --collect-args='--enrich none'
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
    from antrea_stream import SHAPES, Shape, add_shape_arguments, chosen_shapes, shape_messages  # type: ignore[no-redef]
    from bench_decode import environment  # type: ignore[no-redef]
    from report import write_json  # type: ignore[no-redef]
else:
    from .antrea_stream import SHAPES, Shape, add_shape_arguments, chosen_shapes, shape_messages
    from .bench_decode import environment
    from .report import write_json

#: ratio ipfix-collect / ipfixDump each shape should reach (issue 11); a file of --file: 1.0
GOALS = {"tcp": 1.3, "udp-1472": 1.3, "udp-refresh": 1.0, "udp-mixed": 1.0}
FILE_GOAL = 1.0


def stream_file(shape: Shape, records: int, seed: int, workdir: str) -> str:
    """The FA stream file of this shape, written once and reused (the bytes are stable)."""
    every = f"-every{shape.template_every}" if shape.template_every else ""
    path = os.path.join(workdir, f"fa-{shape.name}{every}-{records}-seed{seed}.ipfix")
    if not os.path.exists(path):
        tmp = path + ".part"
        with open(tmp, "wb") as f:
            f.writelines(shape_messages(shape, records, seed))
        os.replace(tmp, path)
    return path


def collect_command() -> list[str]:
    """`ipfix-collect` on this interpreter, with its packages (`python -m ipfix_antrea.cli` is
    the console script's `command()`, without a launcher such as a pyenv shim in front)."""
    return [sys.executable, "-m", "ipfix_antrea.cli"]


def run(argv: list[str], cwd: str) -> dict:
    """Runs ``argv`` in ``cwd`` to completion; wall seconds, the child's CPU seconds, its status and
    stderr. (The directory matters to `python -m`, which imports from it first.)"""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, cwd=cwd)
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


def compare(label: str, path: str, goal: float, collect: list[str], extra: list[str], rounds: int,
            workdir: str, out) -> dict:
    """Times ipfix-collect and ipfixDump on ``path``, ``rounds`` rounds in alternating order."""
    records = peer_record_count(path)
    size = os.path.getsize(path)
    out_path = os.path.join(workdir, f"out-{os.getpid()}.jsonl")
    ours_argv = [*collect, "-q", "--input", f"file:{path}", "--sink", f"jsonl:{out_path}", *extra]
    peer_argv = ["ipfixDump", "--in", path, "--out", os.devnull]
    print(f"\n[{label}] {path}: {records} records, {size} B; {rounds} rounds, alternating order", file=out)
    print(f"  ours: {' '.join(ours_argv)}\n  peer: {' '.join(peer_argv)}", file=out)

    with open(path, "rb") as f:  # page cache: neither side pays for the disk
        while f.read(1 << 20):
            pass

    def ours() -> dict:
        if os.path.exists(out_path):
            os.unlink(out_path)  # jsonl appends: every run starts from nothing
        r = run(ours_argv, workdir)
        if r["status"] != 0:
            raise RuntimeError(f"ipfix-collect exited {r['status']}: {r['stderr'][-2000:]}")
        r["out_bytes"] = os.path.getsize(out_path)
        return r

    def peer() -> dict:
        r = run(peer_argv, workdir)
        if r["status"] != 0:
            raise RuntimeError(f"ipfixDump exited {r['status']}: {r['stderr'][-2000:]}")
        return r

    try:
        ours()  # warm-up, and the output check
        check_output(out_path, records)
        peer()
        rows = []
        for i in range(rounds):
            pair = {}
            for side, fn in ((("ours", ours), ("peer", peer)) if i % 2 == 0 else (("peer", peer), ("ours", ours))):
                pair[side] = fn()
            pair["ratio_wall"] = pair["peer"]["wall"] / pair["ours"]["wall"]
            pair["ratio_cpu"] = pair["peer"]["cpu"] / pair["ours"]["cpu"]
            rows.append(pair)
            o, q = pair["ours"], pair["peer"]
            print(f"  round {i + 1}: ipfix-collect {o['wall']:.2f} s wall {o['cpu']:.2f} s CPU | "
                  f"ipfixDump {q['wall']:.2f} s wall {q['cpu']:.2f} s CPU | "
                  f"ratio {pair['ratio_wall']:.2f}x wall {pair['ratio_cpu']:.2f}x CPU", file=out)
    finally:
        if os.path.exists(out_path):
            os.unlink(out_path)

    def summary(side: str) -> dict:
        walls = [r[side]["wall"] for r in rows]
        cpus = [r[side]["cpu"] for r in rows]
        return {"median_wall_s": statistics.median(walls), "median_cpu_s": statistics.median(cpus),
                "best_wall_s": min(walls), "best_cpu_s": min(cpus),
                "median_records_per_s_wall": records / statistics.median(walls),
                "median_records_per_s_cpu": records / statistics.median(cpus)}

    res = {"label": label, "file": path, "file_bytes": size, "records": records,
           "ours_argv": ours_argv, "peer_argv": peer_argv, "goal_ratio": goal,
           "ours": summary("ours"), "peer": summary("peer"),
           "ratio_wall_median": statistics.median(r["ratio_wall"] for r in rows),
           "ratio_cpu_median": statistics.median(r["ratio_cpu"] for r in rows),
           "out_bytes": rows[-1]["ours"]["out_bytes"],
           "rounds": [{k: ({kk: vv for kk, vv in v.items() if kk != "stderr"} if isinstance(v, dict) else v)
                       for k, v in r.items()} for r in rows]}
    res["goal_met"] = res["ratio_wall_median"] >= goal and res["ratio_cpu_median"] >= goal
    o, q = res["ours"], res["peer"]
    print(f"\n  {'':14} {'median wall':>12} {'median CPU':>11} {'rec/s (wall)':>13} {'rec/s (CPU)':>12}", file=out)
    for name, s in (("ipfix-collect", o), ("ipfixDump", q)):
        print(f"  {name:14} {s['median_wall_s']:>10.2f} s {s['median_cpu_s']:>9.2f} s "
              f"{s['median_records_per_s_wall']:>13,.0f} {s['median_records_per_s_cpu']:>12,.0f}", file=out)
    print(f"  ratio ipfix-collect / ipfixDump (records/s, median of the rounds' ratios): "
          f"{res['ratio_wall_median']:.2f}x wall, {res['ratio_cpu_median']:.2f}x CPU "
          f"(goal >= {goal:g}x: {'met' if res['goal_met'] else 'NOT met'})", file=out)
    print(f"  ipfix-collect wrote {res['out_bytes']:,} B of JSON Lines per run", file=out)
    return res


def startup(collect: list[str], extra: list[str], seed: int, workdir: str) -> dict:
    """The fixed cost in ours: the same command on a file of one record (interpreter, imports)."""
    tiny = stream_file(SHAPES["tcp"], 1, seed, workdir)
    tiny_out = os.path.join(workdir, f"out-{os.getpid()}.tiny.jsonl")
    runs = []
    for _ in range(3):
        if os.path.exists(tiny_out):
            os.unlink(tiny_out)
        runs.append(run([*collect, "-q", "--input", f"file:{tiny}", "--sink", f"jsonl:{tiny_out}", *extra], workdir))
    os.unlink(tiny_out)
    return {"median_wall_s": statistics.median(r["wall"] for r in runs),
            "median_cpu_s": statistics.median(r["cpu"] for r in runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=100_000)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--seed", type=int, default=1)
    add_shape_arguments(p)
    p.add_argument("--file", help="benchmark this IPFIX file instead of generating the FA streams")
    p.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "ipfix-antrea-bench"),
                   help="where the stream files are kept between runs and OUT is written (default %(default)s)")
    p.add_argument("--collect-cmd", metavar="CMD",
                   help="how to run ipfix-collect (default: this interpreter -m ipfix_antrea.cli), e.g. "
                        "'env PYTHONPATH=/tmp/old python3 -m ipfix_antrea.cli' to time another tree")
    p.add_argument("--collect-args", metavar="ARGS", default="",
                   help="more flags for ipfix-collect, e.g. --collect-args='--enrich none'")
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write machine-readable results to PATH (or stdout with no PATH)")
    args = p.parse_args(argv)

    if shutil.which("ipfixDump") is None:
        print("ipfixDump not found (apt-get install libfixbuf-tools)", file=sys.stderr)
        return 2
    os.makedirs(args.workdir, exist_ok=True)
    collect = shlex.split(args.collect_cmd) if args.collect_cmd else collect_command()
    extra = shlex.split(args.collect_args)
    shapes = chosen_shapes(args)
    env = environment()
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"python {env['python']} on {env['cpu']} ({env['nproc']} CPUs); "
          f"ipfix-antrea {env['ipfix-antrea']} ({env['git_commit']}), orjson {env['orjson']}; load average "
          f"{os.getloadavg()[0]:.2f} at the start", file=out)

    if args.file:
        targets = [("file", args.file, FILE_GOAL)]
    else:
        targets = []
        for shape in shapes:
            t0 = time.perf_counter()
            path = stream_file(shape, args.records, args.seed, args.workdir)
            print(f"{shape.name}: {shape.description} ({path}, ready in {time.perf_counter() - t0:.1f} s)", file=out)
            targets.append((shape.name, path, GOALS[shape.name]))
    results = [compare(label, path, goal, collect, extra, args.rounds, args.workdir, out)
               for label, path, goal in targets]
    fixed = startup(collect, extra, args.seed, args.workdir)
    print(f"\n  fixed cost (ipfix-collect on a 1-record file): {fixed['median_wall_s']:.2f} s wall, "
          f"{fixed['median_cpu_s']:.2f} s CPU", file=out)
    if len(results) > 1:
        print("\n  shape          wall    CPU     goal", file=out)
        for r in results:
            print(f"  {r['label']:<13} {r['ratio_wall_median']:>5.2f}x  {r['ratio_cpu_median']:>5.2f}x  "
                  f">= {r['goal_ratio']:g}x  {'met' if r['goal_met'] else 'NOT met'}", file=out)

    if args.json:
        doc = {"benchmark": "bench_file_jsonl",
               "command": "python benchmarks/bench_file_jsonl.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "environment": env, "load_average": os.getloadavg(), "rounds": args.rounds,
               "results": results, "ours_startup": fixed}
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
