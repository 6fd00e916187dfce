"""Documents per second the Elasticsearch sink gets into Elasticsearch, against a raw bulk load.

Both sides load the same documents (Flow Aggregator records from `antrea_stream`, decoded and made
documents by `ipfix_antrea.documents.to_document`) into the same daily index, deleted and created
afresh before each load (no periodic refresh, no replica: see `reset`), with the same batch size
and the same number of concurrent requests, in the same run:

* sink: `ElasticsearchSink.write()` in batches of --write-size documents, then `close()`; it
  serialises every document (orjson) and builds the bulk requests itself, as in production;
* raw: the same bulk bodies, serialised before the clock starts, sent straight to `_bulk` by
  --in-flight threads over keep-alive connections (urllib3), asking only for `errors`.

So the raw side is the most that this Elasticsearch can take in this set-up, and the ratio
sink/raw says how much of it the sink delivers (the goal is >= 0.9). The index template is
installed once before the rounds, so both sides index into the same mapping. Rounds alternate
the order of the two sides; the headline is the median of the per-round ratios.

    .ci/elasticsearch.sh setup          # or any Elasticsearch; then
    eval "$(.ci/elasticsearch.sh env)"
    python benchmarks/bench_elasticsearch.py --records 50000 --rounds 5
"""

from __future__ import annotations

import argparse
import base64
import concurrent.futures
import json
import os
import platform
import statistics
import sys
import time

import orjson
import urllib3

if __package__ in (None, ""):  # run as a script: import the stream module and the in-tree library
    _here = os.path.dirname(os.path.abspath(__file__))
    sys.path[:0] = [_here, os.path.dirname(_here)]
    from antrea_stream import fa_stream  # type: ignore[no-redef]
else:
    from .antrea_stream import fa_stream

from ipfix_antrea import Session
from ipfix_antrea.documents import to_document
from ipfix_antrea.sinks.elasticsearch import (
    ElasticsearchOptions,
    ElasticsearchSink,
    make_client,
)

GOAL_RATIO = 0.9
INDEX = "bench-flow-%Y.%m.%d"
TEMPLATE = "bench-flow"


def documents(n: int) -> list[dict]:
    records = list(Session().feed(fa_stream(n)))
    return [to_document(r, "10.0.0.1") for r in records]


def raw_bodies(docs: list[dict], batch_docs: int) -> list[bytes]:
    """The bulk bodies of ``docs``, ``batch_docs`` per request, serialised ahead of time."""
    bodies = []
    for start in range(0, len(docs), batch_docs):
        lines = []
        for doc in docs[start:start + batch_docs]:
            index = time.strftime(INDEX, time.strptime(doc["@timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
            lines.append(b'{"create":{"_index":"%s"}}\n' % index.encode())
            lines.append(orjson.dumps(doc, option=orjson.OPT_APPEND_NEWLINE))
        bodies.append(b"".join(lines))
    return bodies


class Raw:
    """POST pre-built bodies to _bulk from ``in_flight`` threads."""

    def __init__(self, url: str, user: str | None, password: str | None, in_flight: int) -> None:
        self.url = url.rstrip("/") + "/_bulk?filter_path=errors"
        self.headers = {"Content-Type": "application/x-ndjson"}
        if user:
            self.headers["Authorization"] = "Basic " + base64.b64encode(
                f"{user}:{password or ''}".encode()).decode()
        self.pool = urllib3.PoolManager(maxsize=in_flight, block=True)
        self.in_flight = in_flight

    def load(self, bodies: list[bytes]) -> None:
        def post(body: bytes) -> None:
            response = self.pool.request("POST", self.url, body=body, headers=self.headers,
                                         timeout=120, retries=False)
            if response.status != 200 or orjson.loads(response.data).get("errors"):
                raise RuntimeError(f"raw bulk failed: HTTP {response.status} {response.data[:300]!r}")

        with concurrent.futures.ThreadPoolExecutor(self.in_flight) as pool:
            list(pool.map(post, bodies))


def options(args: argparse.Namespace) -> ElasticsearchOptions:
    return ElasticsearchOptions(
        index=INDEX, template_name=TEMPLATE, user=args.user, password=args.password,
        dead_letter=os.devnull, batch_docs=args.batch_docs, batch_bytes=args.batch_bytes,
        in_flight=args.in_flight, retry_for=60)


def reset(es, docs: list[dict]) -> None:
    """Delete the benchmark's index and create it afresh (the template gives the mapping) with
    no periodic refresh and no replica: refreshes and merges on a timer are most of the noise
    between runs, and they are the server's cost, the same for both sides."""
    es.options(ignore_status=404).indices.delete(index="bench-flow-*")
    index = time.strftime(INDEX, time.strptime(docs[0]["@timestamp"][:19], "%Y-%m-%dT%H:%M:%S"))
    es.indices.create(index=index, settings={"refresh_interval": "-1", "number_of_replicas": 0})
    es.cluster.health(index=index, wait_for_status="green", timeout="60s")


def count(es) -> int:
    es.indices.refresh(index="bench-flow-*")
    return es.count(index="bench-flow-*")["count"]


def run_sink(args, docs: list[dict]) -> float:
    opts = options(args)
    sink = ElasticsearchSink(make_client([args.url], opts), opts, name="bench")
    step = args.write_size
    start = time.perf_counter()
    for i in range(0, len(docs), step):
        sink.write(docs[i:i + step])
    sink.close()
    elapsed = time.perf_counter() - start
    stats = sink.stats()
    if stats["indexed"] != len(docs):
        raise RuntimeError(f"the sink did not index everything: {stats}")
    return elapsed


def run_raw(raw: Raw, bodies: list[bytes]) -> float:
    start = time.perf_counter()
    raw.load(bodies)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", default=os.environ.get("IPFIX_ANTREA_ES_URL", "http://127.0.0.1:9200"))
    p.add_argument("--user", default=os.environ.get("IPFIX_ANTREA_ES_USER"))
    p.add_argument("--password", default=os.environ.get("IPFIX_ANTREA_ES_PASSWORD"))
    p.add_argument("--records", type=int, default=50000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch-docs", type=int, default=ElasticsearchOptions.batch_docs)
    p.add_argument("--batch-bytes", type=int, default=ElasticsearchOptions.batch_bytes)
    p.add_argument("--in-flight", type=int, default=ElasticsearchOptions.in_flight)
    p.add_argument("--write-size", type=int, default=500,
                   help="documents per write() call (the collector's --batch-size)")
    p.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    args = p.parse_args(argv)

    docs = documents(args.records)
    bodies = raw_bodies(docs, args.batch_docs)
    size = sum(map(len, bodies))
    raw = Raw(args.url, args.user, args.password, args.in_flight)
    opts = options(args)
    es = make_client([args.url], opts)
    ElasticsearchSink(make_client([args.url], opts), opts, name="bench").close()  # the template
    # (not GET /: minimal distributions such as the integ-test zip lack that endpoint)
    node = next(iter(es.nodes.info(metric="jvm")["nodes"].values()))
    version, jvm = node["version"], node["jvm"]
    heap_mib = jvm["mem"]["heap_max_in_bytes"] // 2**20
    print(f"Elasticsearch {version} (JVM {jvm['version']}, heap {heap_mib} MiB) "
          f"at {args.url}; python {platform.python_version()}, {os.cpu_count()} CPUs")
    print(f"{len(docs)} documents, {size / len(docs):.0f} bytes each as JSON; batches of "
          f"{args.batch_docs}, {args.in_flight} in flight, write() of {args.write_size}")

    rounds = []
    for n in range(args.rounds):
        order = ("raw", "sink") if n % 2 == 0 else ("sink", "raw")
        times = {}
        for side in order:
            reset(es, docs)
            times[side] = run_sink(args, docs) if side == "sink" else run_raw(raw, bodies)
            if count(es) != len(docs):
                raise RuntimeError(f"{side}: {count(es)} documents stored, not {len(docs)}")
        ratio = times["raw"] / times["sink"]
        rounds.append({"raw_docs_per_s": len(docs) / times["raw"],
                       "sink_docs_per_s": len(docs) / times["sink"], "ratio": ratio})
        print(f"round {n + 1}: raw {len(docs) / times['raw']:,.0f} docs/s, "
              f"sink {len(docs) / times['sink']:,.0f} docs/s, ratio {ratio:.3f}")
    es.options(ignore_status=404).indices.delete(index="bench-flow-*")

    median = statistics.median(r["ratio"] for r in rounds)
    best = max(r["sink_docs_per_s"] for r in rounds) / max(r["raw_docs_per_s"] for r in rounds)
    overall = (statistics.fmean(1 / r["raw_docs_per_s"] for r in rounds)
               / statistics.fmean(1 / r["sink_docs_per_s"] for r in rounds))
    print(f"sink / raw: median of {len(rounds)} per-round ratios {median:.3f} (goal >= {GOAL_RATIO}: "
          f"{'met' if median >= GOAL_RATIO else 'NOT met'}); all rounds' time {overall:.3f}; "
          f"best / best {best:.3f}")
    if args.json:
        result = {"elasticsearch": version, "jvm": jvm["version"],
                  "heap_mib": heap_mib, "records": len(docs), "bytes_per_doc": size / len(docs),
                  "batch_docs": args.batch_docs, "in_flight": args.in_flight,
                  "write_size": args.write_size, "rounds": rounds, "median_ratio": median, "total_time_ratio": overall,
                  "best_ratio": best,
                  "python": platform.python_version(), "nproc": os.cpu_count()}
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    es.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
