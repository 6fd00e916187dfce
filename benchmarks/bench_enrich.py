"""What the Antrea enrichment costs: `ipfix-collect` file -> JSON Lines with `--enrich antrea` (the
default) against the same command with `--enrich none`, on the same Flow-Aggregator-shaped file.

Both sides are the real command (`python -m ipfix_antrea.cli -q --input file:FILE --sink
jsonl:OUT --enrich ...`, as `bench_file_jsonl.py` runs it), round after round in alternating
order, for each message shape of `antrea_stream.SHAPES`. The figure is records/s with the
enrichment over records/s without it, from CPU time (user + system of the child), per round, and
its median over the rounds, against the goal (>= 0.85, issue 8). Nothing here asserts a time.

`--stages` adds an in-process breakdown per record of the tcp file, in batches of 128 records as
the collector's pipeline takes them: decoding (`Session.feed`), documents
(`DocumentBuilder.build`), serialising (`sinks.base.serialize`), with and without the transform,
and the transform's flow clock replaced by a constant to show its share.

    python benchmarks/bench_enrich.py --records 100000 --rounds 7
    python benchmarks/bench_enrich.py --records 100000 --rounds 7 --shape tcp --stages --json enrich.json
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import add_shape_arguments, chosen_shapes  # type: ignore[no-redef]
    from bench_decode import environment  # type: ignore[no-redef]
    from bench_file_jsonl import check_output, collect_command, run, stream_file  # type: ignore[no-redef]
    from report import write_json  # type: ignore[no-redef]
else:
    from .antrea_stream import add_shape_arguments, chosen_shapes
    from .bench_decode import environment
    from .bench_file_jsonl import check_output, collect_command, run, stream_file
    from .report import write_json

GOAL = 0.85  # records/s with --enrich antrea over records/s with --enrich none
BATCH = 128  # records per document batch, as the pipeline coalesces them (pipeline.COALESCE_RECORDS)


def compare(path: str, records: int, rounds: int, workdir: str, out) -> dict:
    """Runs the collector with and without the enrichment on ``path``, alternating."""
    out_path = os.path.join(workdir, f"out-{os.getpid()}.jsonl")
    argv = {mode: [*collect_command(), "-q", "--input", f"file:{path}", "--sink", f"jsonl:{out_path}",
                   "--enrich", mode] for mode in ("none", "antrea")}
    print(f"  {' '.join(argv['antrea'])}   (and --enrich none)", file=out)
    with open(path, "rb") as f:  # page cache: neither side pays for the disk
        while f.read(1 << 20):
            pass
    times: dict[str, list[dict]] = {"none": [], "antrea": []}
    sizes: dict[str, int] = {}
    for i in range(rounds + 1):  # round 0 warms up and checks the output
        order = ("none", "antrea") if i % 2 else ("antrea", "none")
        for mode in order:
            if os.path.exists(out_path):
                os.unlink(out_path)
            r = run(argv[mode], workdir)
            if r["status"] != 0:
                raise RuntimeError(f"ipfix-collect --enrich {mode} exited {r['status']}: {r['stderr'][-2000:]}")
            if i == 0:
                check_output(out_path, records)
                sizes[mode] = os.path.getsize(out_path)
            else:
                times[mode].append(r)
    ratios = [n["cpu"] / a["cpu"] for n, a in zip(times["none"], times["antrea"], strict=True)]
    wall = [n["wall"] / a["wall"] for n, a in zip(times["none"], times["antrea"], strict=True)]
    result = {
        "records": records,
        "ratio_cpu_median": statistics.median(ratios), "ratio_cpu_range": [min(ratios), max(ratios)],
        "ratio_wall_median": statistics.median(wall),
        "cpu_seconds_median": {m: statistics.median(r["cpu"] for r in times[m]) for m in times},
        "json_bytes_per_record": {m: sizes[m] / records for m in sizes},
        "goal": GOAL,
    }
    med = result["cpu_seconds_median"]
    print(f"  CPU s (median): none {med['none']:.2f}, antrea {med['antrea']:.2f}; JSON per record: "
          f"{sizes['none'] / records:.0f} / {sizes['antrea'] / records:.0f} octets", file=out)
    print(f"  ratio antrea/none: {result['ratio_cpu_median']:.2f}x CPU (range {min(ratios):.2f}-"
          f"{max(ratios):.2f}), {result['ratio_wall_median']:.2f}x wall; goal >= {GOAL}x: "
          f"{'met' if result['ratio_cpu_median'] >= GOAL else 'NOT met'}", file=out)
    return result


def stages(path: str, rounds: int, out) -> dict:
    """Per-record CPU of each stage, in-process, in batches of `BATCH` records (best of rounds)."""
    from ipfix_antrea import Session
    from ipfix_antrea.documents import AntreaTransform, DocumentBuilder
    from ipfix_antrea.sinks.base import serialize

    with open(path, "rb") as f:
        data = f.read()

    class ConstantClock:  # the flow clock's share: a transform whose clock costs nothing
        def interval(self, flow, start, end):
            return 60

    def without_clock() -> AntreaTransform:
        transform = AntreaTransform()
        transform.clock = ConstantClock()  # type: ignore[assignment]
        return transform

    builders = {"none": lambda: DocumentBuilder(), "antrea": lambda: DocumentBuilder([AntreaTransform()]),
                "antrea, constant clock": lambda: DocumentBuilder([without_clock()])}
    best: dict[str, dict[str, float]] = {}
    for _ in range(rounds):
        for name, make in builders.items():
            builder = make()
            gc.collect()
            t0 = time.process_time()
            records = Session().feed(data)
            decode = time.process_time() - t0
            build = write = 0.0
            for i in range(0, len(records), BATCH):
                batch = records[i:i + BATCH]
                t1 = time.process_time()
                docs = builder.build(batch, "10.0.0.1")
                t2 = time.process_time()
                serialize(docs)
                write += time.process_time() - t2
                build += t2 - t1
            n = len(records)
            now = {"decode": decode / n * 1e6, "documents": build / n * 1e6, "serialise": write / n * 1e6}
            best[name] = {k: min(v, best.get(name, now)[k]) for k, v in now.items()}
    print("  in-process, µs per record (best of rounds):", file=out)
    for name, parts in best.items():
        print(f"    {name:24s} " + "  ".join(f"{k} {v:.2f}" for k, v in parts.items())
              + f"  total {sum(parts.values()):.2f}", file=out)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--stages", action="store_true", help="add the in-process breakdown (tcp file)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    add_shape_arguments(parser)
    args = parser.parse_args(argv)
    workdir = os.path.join(tempfile.gettempdir(), "ipfix-antrea-bench")
    os.makedirs(workdir, exist_ok=True)
    results: dict = {"environment": environment(), "shapes": {}}
    for shape in chosen_shapes(args):
        path = stream_file(shape, args.records, args.seed, workdir)
        print(f"\n[{shape.name}] {path}: {args.records} records; {args.rounds} rounds", file=sys.stdout)
        results["shapes"][shape.name] = compare(path, args.records, args.rounds, workdir, sys.stdout)
        if args.stages and shape.name == "tcp":
            results["stages"] = stages(path, max(3, args.rounds // 2), sys.stdout)
    if args.json:
        write_json(results, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
