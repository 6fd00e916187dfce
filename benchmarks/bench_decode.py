"""Decode throughput of ipfix_antrea against python-ipfix 0.9.7 on Flow-Aggregator-shaped streams.

Every shape of `antrea_stream.SHAPES` is measured, from 65535-octet messages with the template
once to what UDP exporters send (two records per message, templates re-sent every few dozen
messages, IPv4 and IPv6 templates mixed). Both decoders get the same bytes in the same process, in
alternating order, round after round:

* ipfix_antrea: `Session().feed(stream)`, then `Record.to_dict()` on every record (JSON-ready dicts);
* python-ipfix: `ipfix.reader.from_stream(BytesIO(stream)).namedict_iterator()` over every record
  (dicts keyed by element name; it leaves timestamps as `datetime` and addresses as `ipaddress`
  objects, so it does slightly less work than a JSON-ready dict).

The figure that matters is the ratio of the two in the same run, per shape, against the goal of
that shape (`GOALS`); absolute records/s depend on the machine. Nothing here asserts a time: run
it, read it.

    python benchmarks/bench_decode.py --records 20000 --rounds 5
    python benchmarks/bench_decode.py --records 20000 --rounds 5 --shape udp-refresh --template-every 20
    python benchmarks/bench_decode.py --records 20000 --rounds 5 --json bench.json
    python benchmarks/bench_decode.py --records 20000 --profile 30 --shape udp-mixed   # where our time goes
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import io
import ipaddress
import os
import platform
import statistics
import subprocess
import sys
import time
from importlib import metadata

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import (  # type: ignore[no-redef]
        FA_AGGREGATE_IPV4,
        FA_TEMPLATES,
        TCP_MESSAGE_SIZE,
        Flow,
        Shape,
        add_shape_arguments,
        chosen_shapes,
        fa_messages,
        shape_messages,
    )
    from report import write_json  # type: ignore[no-redef]
else:
    from .antrea_stream import (
        FA_AGGREGATE_IPV4,
        FA_TEMPLATES,
        TCP_MESSAGE_SIZE,
        Flow,
        Shape,
        add_shape_arguments,
        chosen_shapes,
        fa_messages,
        shape_messages,
    )
    from .report import write_json

#: ratio ipfix_antrea / python-ipfix each shape should reach (issue 11)
GOALS = {"tcp": 4.0, "udp-1472": 4.0, "udp-refresh": 3.0, "udp-mixed": 3.0}
_ISO_SECONDS = "%Y-%m-%dT%H:%M:%SZ"


# --- the two decoders --------------------------------------------------------------------------

def decode_ours(stream: bytes) -> list[dict]:
    from ipfix_antrea import Session

    return [r.to_dict() for r in Session().feed(stream)]


def _decode_ours_split(stream: bytes) -> tuple[list[dict], float, float]:
    """decode_ours, timing `feed` and the `to_dict` pass separately."""
    from ipfix_antrea import Session

    t0 = time.perf_counter()
    records = Session().feed(stream)
    t1 = time.perf_counter()
    out = [r.to_dict() for r in records]
    t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1


_peer_ready = False


def setup_peer() -> None:
    """Load python-ipfix's IANA and RFC 5103 models and teach it the Antrea elements of the template."""
    global _peer_ready
    if _peer_ready:
        return
    import ipfix.ie

    ipfix.ie.use_iana_default()
    ipfix.ie.use_5103_default()
    for e in {e for elements in FA_TEMPLATES.values() for e in elements}:
        if e.enterprise not in (0, 29305):
            ipfix.ie.for_spec(f"{e.name}({e.enterprise}/{e.element_id})<{e.data_type}>")
    _peer_ready = True


def decode_peer(stream: bytes) -> list[dict]:
    import ipfix.reader

    return list(ipfix.reader.from_stream(io.BytesIO(stream)).namedict_iterator())


# --- checks: both decoders saw every record, and agree with what was encoded ---------------------

def _expected(value, data_type):
    if data_type == "dateTimeSeconds":
        return dt.datetime.fromtimestamp(value, dt.UTC).strftime(_ISO_SECONDS)
    return value


def _peer_value(value):
    if isinstance(value, dt.datetime):  # python-ipfix: naive UTC
        return value.strftime(_ISO_SECONDS)
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address)):
        return str(value)
    return value


def check(flows: list[Flow], ours: list[dict], peer: list[dict]) -> int:
    """Both sides decoded every record; spot-checked records agree field by field. Returns fields checked.

    The FA's exporter buffers each template's records apart, so records of different templates
    may reach the wire in another order than `flows`; within a template the order holds.
    """
    n = len(flows)
    if len(ours) != n or len(peer) != n:
        raise AssertionError(f"record counts differ: encoded {n}, ipfix_antrea {len(ours)}, python-ipfix {len(peer)}")
    checked = 0
    for template_id, elements in FA_TEMPLATES.items():
        address = elements[10].name  # the address pair tells IPv4 from IPv6
        sent = [f.values for f in flows if f.template_id == template_id]
        ours_t, peer_t = [r for r in ours if address in r], [r for r in peer if address in r]
        if not len(sent) == len(ours_t) == len(peer_t):
            raise AssertionError(f"template {template_id}: encoded {len(sent)} records, ipfix_antrea "
                                 f"{len(ours_t)}, python-ipfix {len(peer_t)}")
        k = len(sent)
        for i in sorted({0, 1, k // 3, k // 2, k - 1} & set(range(k))):
            for j, e in enumerate(elements):
                want = _expected(sent[i][j], e.data_type)
                got_ours, got_peer = ours_t[i][e.name], _peer_value(peer_t[i][e.name])
                if not (want == got_ours == got_peer):
                    raise AssertionError(f"template {template_id} record {i} {e.name}: encoded {want!r}, "
                                         f"ipfix_antrea {got_ours!r}, python-ipfix {got_peer!r}")
                checked += 1
    return checked


# --- timing ------------------------------------------------------------------------------------

def _time(fn, stream):
    gc.collect()
    t0 = time.perf_counter()
    out = fn(stream)
    return time.perf_counter() - t0, out


def shape_stream(shape: Shape, records: int, seed: int) -> tuple[list[Flow], list[bytes]]:
    flows = shape.flows(records, seed)
    return flows, shape_messages(shape, records, seed, flows)


def run_shape(shape: Shape, records: int, seed: int, rounds: int) -> dict:
    flows, msgs = shape_stream(shape, records, seed)
    n = len(flows)
    stream = b"".join(msgs)
    setup_peer()

    ours_out = decode_ours(stream)  # warm-up, and the outputs for the checks
    peer_out = decode_peer(stream)
    fields_checked = check(flows, ours_out, peer_out)
    del ours_out, peer_out

    ours_t, ours_feed, ours_dict, peer_t = [], [], [], []
    for r in range(rounds):
        order = ("ours", "peer") if r % 2 == 0 else ("peer", "ours")
        for side in order:
            if side == "ours":
                gc.collect()
                t0 = time.perf_counter()
                out, t_feed, t_dict = _decode_ours_split(stream)
                ours_t.append(time.perf_counter() - t0)
                ours_feed.append(t_feed)
                ours_dict.append(t_dict)
            else:
                t, out = _time(decode_peer, stream)
                peer_t.append(t)
            if len(out) != n:
                raise AssertionError(f"{side}: {len(out)} records, expected {n}")
            del out

    def rate(t):
        return n / t

    data_messages = sum(1 for m in msgs if int.from_bytes(m[16:18], "big") >= 256)
    res = {
        "shape": shape.name,
        "description": shape.description,
        "max_message_size": shape.max_message_size,
        "template_every": shape.template_every,
        "ipv6_share": shape.ipv6_share,
        "messages": len(msgs),
        "template_messages": len(msgs) - data_messages,
        "records_per_data_message": n / data_messages,
        "stream_bytes": len(stream),
        "bytes_per_record": round(len(stream) / n, 1),
        "records": n,
        "fields_spot_checked": fields_checked,
        "ipfix_antrea": {
            "seconds": ours_t,
            "best_records_per_s": rate(min(ours_t)),
            "median_records_per_s": rate(statistics.median(ours_t)),
            "feed_median_records_per_s": rate(statistics.median(ours_feed)),
            "to_dict_median_records_per_s": rate(statistics.median(ours_dict)),
            "feed_share_of_median": statistics.median(ours_feed) / statistics.median(ours_t),
        },
        "python_ipfix": {
            "seconds": peer_t,
            "best_records_per_s": rate(min(peer_t)),
            "median_records_per_s": rate(statistics.median(peer_t)),
        },
    }
    res["ratio_best"] = res["ipfix_antrea"]["best_records_per_s"] / res["python_ipfix"]["best_records_per_s"]
    res["ratio_median"] = res["ipfix_antrea"]["median_records_per_s"] / res["python_ipfix"]["median_records_per_s"]
    # Each round times both sides back to back, so a round's ratio is the least exposed to other
    # load on the machine; the median of those is the headline figure.
    res["ratio_per_round"] = [p / o for o, p in zip(ours_t, peer_t, strict=True)]
    res["ratio_paired_median"] = statistics.median(res["ratio_per_round"])
    res["goal_ratio"] = GOALS[shape.name]
    res["goal_met"] = res["ratio_paired_median"] >= res["goal_ratio"]
    return res


# --- the construct-declared path against the compiled per-template decoder --------------------

def _data_set_bodies(stream: bytes) -> list[tuple[int, bytes]]:
    """(set id, body) of every data set in a stream of messages (RFC 7011 3.1 and 3.3.2 framing)."""
    out = []
    pos = 0
    while pos < len(stream):
        msg_len = int.from_bytes(stream[pos + 2:pos + 4], "big")
        set_pos, msg_end = pos + 16, pos + msg_len
        while set_pos + 4 <= msg_end:
            set_id = int.from_bytes(stream[set_pos:set_pos + 2], "big")
            set_len = int.from_bytes(stream[set_pos + 2:set_pos + 4], "big")
            if set_id >= 256:
                out.append((set_id, stream[set_pos + 4:set_pos + set_len]))
            set_pos += set_len
        pos = msg_end
    return out


def micro_construct_vs_compiled(stream: bytes, rounds: int) -> dict | None:
    """Records/s of decoding the data sets of `stream` record by record along the two paths the
    core has: the construct declaration `wire.data_record_struct(template)` (raw wire values) and
    the compiled `Template.decode` (values converted: addresses to text and so on).

    Skipped (None) when the core does not expose them.
    """
    try:
        from ipfix_antrea import default_registry
        from ipfix_antrea.template import FieldSpec, Template
        from ipfix_antrea.types import data_type
        from ipfix_antrea.wire import VARIABLE_LENGTH, data_record_struct
    except ImportError:
        return None
    reg = default_registry()

    def spec(e):  # the field as the encoder writes it: the element's natural length
        ie = reg.get(e.enterprise, e.element_id)
        n = ie.length if ie.length is not None else data_type(ie.data_type).natural_length
        return FieldSpec(ie, VARIABLE_LENGTH if n is None else n)

    template = Template(256, [spec(e) for e in FA_AGGREGATE_IPV4])
    declared = data_record_struct(template)
    bodies = [body for set_id, body in _data_set_bodies(stream) if set_id == 256]

    def via_construct():
        n = 0
        for body in bodies:
            bio = io.BytesIO(body)
            while bio.tell() < len(body):
                declared.parse_stream(bio)
                n += 1
        return n

    decode = template.decode

    def via_compiled():
        n = 0
        for body in bodies:
            off, end = 0, len(body)
            while off < end:
                _, off = decode(body, off, end, None)
                n += 1
        return n

    out = {}
    for label, fn in (("construct", via_construct), ("compiled", via_compiled)):
        fn()
        ts = []
        n = 0
        for _ in range(rounds):
            t, n = _time(lambda _s, fn=fn: fn(), None)
            ts.append(t)
        out[label] = {"records": n, "best_records_per_s": n / min(ts)}
    out["speedup"] = out["compiled"]["best_records_per_s"] / out["construct"]["best_records_per_s"]
    return out


# --- environment -------------------------------------------------------------------------------

def environment() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(dist):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    try:
        import ipfix_antrea
    except ImportError:
        ipfix_antrea = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5, check=False,
            cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        commit = None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "cpu": cpu,
        "nproc": os.cpu_count(),
        "platform": platform.platform(),
        "ipfix (python-ipfix)": version("ipfix"),
        "ipfix-antrea": getattr(ipfix_antrea, "__version__", None) if ipfix_antrea else None,
        "construct": version("construct"),
        "orjson": version("orjson"),
        "git_commit": commit,
    }


def _profile(stream: bytes, top: int) -> None:
    import cProfile
    import pstats

    decode_ours(stream)
    prof = cProfile.Profile()
    prof.enable()
    decode_ours(stream)
    prof.disable()
    st = pstats.Stats(prof, stream=sys.stdout)
    st.sort_stats("tottime").print_stats(top)
    st.sort_stats("cumulative").print_stats(top)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--records", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seed", type=int, default=1)
    add_shape_arguments(p)
    p.add_argument("--json", nargs="?", const="-", metavar="PATH",
                   help="write machine-readable results to PATH (or stdout with no PATH)")
    p.add_argument("--profile", type=int, metavar="N",
                   help="instead of timing, cProfile ipfix_antrea on the (first) shape and print the top N")
    p.add_argument("--micro-records", type=int, default=2000, metavar="N",
                   help="records for the construct-vs-compiled micro-benchmark (0 skips it)")
    args = p.parse_args(argv)

    shapes = chosen_shapes(args)
    env = environment()

    if args.profile:
        _profile(b"".join(shape_stream(shapes[0], args.records, args.seed)[1]), args.profile)
        return 0

    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"python {env['python']} on {env['cpu']} ({env['nproc']} CPUs); "
          f"ipfix-antrea {env['ipfix-antrea']} ({env['git_commit']}), "
          f"python-ipfix {env['ipfix (python-ipfix)']}", file=out)
    print(f"stream: Flow Aggregator Aggregate-mode templates, {len(FA_AGGREGATE_IPV4)} IEs; "
          f"{args.records} records (seed {args.seed}); {args.rounds} rounds per side; load average "
          f"{os.getloadavg()[0]:.2f} at the start", file=out)

    results = []
    for shape in shapes:
        r = run_shape(shape, args.records, args.seed, args.rounds)
        results.append(r)
        o, q = r["ipfix_antrea"], r["python_ipfix"]
        print(f"\n[{shape.name}] {shape.description}:\n  {r['messages']} messages "
              f"({r['template_messages']} of templates), {r['records_per_data_message']:.2f} records per "
              f"data message, {r['stream_bytes']} B, {r['bytes_per_record']} B/record; "
              f"{r['fields_spot_checked']} values spot-checked equal", file=out)
        print(f"  ipfix_antrea  feed + to_dict()   best {o['best_records_per_s']:>10,.0f} rec/s   "
              f"median {o['median_records_per_s']:>10,.0f} rec/s", file=out)
        print(f"                (feed alone {o['feed_median_records_per_s']:,.0f} rec/s, "
              f"to_dict alone {o['to_dict_median_records_per_s']:,.0f} rec/s; "
              f"feed = {o['feed_share_of_median']:.0%} of the time)", file=out)
        print(f"  python-ipfix  namedict_iterator  best {q['best_records_per_s']:>10,.0f} rec/s   "
              f"median {q['median_records_per_s']:>10,.0f} rec/s", file=out)
        print(f"  ratio ipfix_antrea / python-ipfix: {r['ratio_paired_median']:.2f}x "
              f"(median of the rounds' ratios; best/best {r['ratio_best']:.2f}x, median/median "
              f"{r['ratio_median']:.2f}x; goal >= {r['goal_ratio']:g}x: {'met' if r['goal_met'] else 'NOT met'})",
              file=out)

    if len(results) > 1:
        print("\n  shape          ratio   goal", file=out)
        for r in results:
            print(f"  {r['shape']:<13} {r['ratio_paired_median']:>5.2f}x  >= {r['goal_ratio']:g}x  "
                  f"{'met' if r['goal_met'] else 'NOT met'}", file=out)

    micro = None
    if args.micro_records:
        n_micro = min(args.micro_records, args.records)
        micro = micro_construct_vs_compiled(b"".join(fa_messages(n_micro, args.seed, TCP_MESSAGE_SIZE)), args.rounds)
    if micro:
        c, k = micro["construct"], micro["compiled"]
        print(f"\n[micro] one data record at a time, {c['records']} records, data set bodies only:", file=out)
        print(f"  wire.data_record_struct (construct, raw values)  best {c['best_records_per_s']:>10,.0f} rec/s",
              file=out)
        print(f"  Template.decode (compiled, converted values)     best {k['best_records_per_s']:>10,.0f} rec/s"
              f"   ({micro['speedup']:.1f}x)", file=out)

    if args.json:
        doc = {
            "benchmark": "bench_decode",
            "command": "python benchmarks/bench_decode.py " + " ".join(sys.argv[1:] if argv is None else argv),
            "environment": env,
            "load_average": os.getloadavg(),
            "records": args.records,
            "rounds": args.rounds,
            "seed": args.seed,
            "goals": GOALS,
            "shapes": results,
            "construct_vs_compiled": micro,
        }
        write_json(doc, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
