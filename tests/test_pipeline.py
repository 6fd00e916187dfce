"""The delivery pipeline: bounded by records, backpressure for put, counted refusals for offer,
every sink written to, and every accepted record delivered or counted as undelivered, per sink."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from collector_harness import MemorySink, encoder, row

from ipfix_antrea import Session
from ipfix_antrea.inputs import Batch
from ipfix_antrea.pipeline import Pipeline
from ipfix_antrea.sinks import SinkError

pytestmark = pytest.mark.timeout(30)


def batch(n: int, start: int = 0) -> Batch:
    enc = encoder()
    data = b"".join(enc.template_messages() + enc.encode(256, [row(i) for i in range(start, start + n)]))
    return Batch("test", Session().feed(data), "10.0.0.1")


def test_offer_refuses_and_counts_records_that_do_not_fit():
    sink = MemorySink()
    sink.hold()
    p = Pipeline([sink], capacity=10)
    assert p.offer(batch(6))  # taken by the sink thread, stuck in write
    time.sleep(0.1)
    assert p.offer(batch(6))
    assert not p.offer(batch(6))
    assert p.stats().refused == 6
    sink.release()
    stats = p.close()
    assert (stats.accepted, stats.sinks[0].delivered, stats.refused) == (12, 12, 6)


def test_an_empty_queue_takes_a_batch_larger_than_its_capacity():
    p = Pipeline([MemorySink()], capacity=5)
    assert p.offer(batch(20))
    assert p.close().sinks[0].delivered == 20


def test_put_waits_for_room_instead_of_dropping():
    sink = MemorySink()
    sink.hold()
    p = Pipeline([sink], capacity=10)
    p.put(batch(8))
    time.sleep(0.1)  # the first batch is in the sink's write
    p.put(batch(8))
    blocked = threading.Thread(target=p.put, args=(batch(8),))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # no room: the producer waits
    sink.release()
    blocked.join(5)
    assert not blocked.is_alive()
    assert p.close().sinks[0].delivered == 24


def test_put_waits_at_wait_above_while_offer_still_has_the_rest_of_the_capacity():
    sink = MemorySink()
    sink.hold()
    p = Pipeline([sink], capacity=20, wait_above=10)
    p.put(batch(8))
    time.sleep(0.1)  # the first batch is in the sink's write
    p.put(batch(8))
    blocked = threading.Thread(target=p.put, args=(batch(8),))
    blocked.start()
    time.sleep(0.2)
    assert blocked.is_alive()  # 8 queued + 8 > 10: a producer that can wait, waits
    assert p.offer(batch(8))  # UDP still gets the room up to the capacity: 16 <= 20
    assert not p.offer(batch(8))  # 24 > 20
    sink.release()
    blocked.join(5)
    assert not blocked.is_alive()
    stats = p.close()
    assert (stats.sinks[0].delivered, stats.refused) == (32, 8)


def test_wait_above_defaults_to_the_smaller_of_capacity_and_ten_thousand():
    for kw, expected in (({"capacity": 100_000}, 10_000), ({"capacity": 50}, 50),
                         ({"capacity": 50, "wait_above": 1000}, 50)):
        p = Pipeline([MemorySink()], **kw)
        assert p.wait_above == expected
        p.close()


def test_put_async_waits_without_blocking_the_event_loop():
    sink = MemorySink()
    sink.hold()
    p = Pipeline([sink], capacity=10)

    async def main() -> int:
        await p.put_async(batch(8))
        await asyncio.sleep(0.1)
        await p.put_async(batch(8))
        waiting = asyncio.create_task(p.put_async(batch(8)))
        ticks = 0
        for _ in range(10):  # the loop keeps running while the put waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert not waiting.done()
        sink.release()
        await asyncio.wait_for(waiting, 5)
        return ticks

    assert asyncio.run(main()) == 10
    assert p.close().sinks[0].delivered == 24


def test_close_drains_the_queue_flushes_and_closes_the_sink():
    sink = MemorySink()
    p = Pipeline([sink], flush_interval=3600)
    for k in range(5):
        p.put(batch(10, start=10 * k))
    stats = p.close()
    assert stats.sinks[0].delivered == 50 and len(sink.docs) == 50
    assert sink.flushes >= 1 and sink.closed


class WriteSizes(MemorySink):
    """Remembers how many documents each write got."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int] = []

    def write(self, docs, ids=None):
        self.sizes.append(len(docs))
        super().write(docs)


def test_documents_are_written_in_slices_of_batch_size():
    sink = WriteSizes()
    p = Pipeline([sink], batch_size=4)
    p.put(batch(10))
    p.close()
    assert sink.sizes == [4, 4, 2]


def test_small_batches_that_come_one_after_the_other_are_written_together():
    sink = WriteSizes()
    p = Pipeline([sink], linger=0.5)
    for k in range(20):  # a UDP exporter's datagrams: a record or two each, a moment apart
        p.offer(batch(2, start=2 * k))
        time.sleep(0.005)
    p.close()
    assert sum(sink.sizes) == 40 and len(sink.sizes) < 5


def test_idle_queue_flushes_buffered_documents():
    sink = MemorySink()
    p = Pipeline([sink], flush_interval=0.05)
    p.put(batch(3))
    time.sleep(0.3)
    assert sink.flushes >= 1
    p.close()


def test_sink_that_wants_ids_gets_one_stable_id_per_document():
    got = []

    class WithIds(MemorySink):
        wants_ids = True

        def write(self, docs, ids=None):
            got.extend(ids)
            super().write(docs)

    p = Pipeline([WithIds()])
    p.put(batch(3))
    p.close()
    assert got == [f"10.0.0.1/7/1714564800/0/{i}" for i in range(3)]


class Failing(MemorySink):
    """Fails every write once it holds ``after`` documents."""

    def __init__(self, after: int, name: str = "failing") -> None:
        super().__init__()
        self.after = after
        self.name = name

    def write(self, docs, ids=None):
        if len(self.docs) >= self.after:
            raise SinkError(f"{self.name}: disk full")
        super().write(docs)


def test_every_sink_gets_every_document():
    one, two = MemorySink(), MemorySink()
    p = Pipeline([one, two])
    p.put(batch(7))
    stats = p.close()
    assert one.docs == two.docs and len(one.docs) == 7
    assert [s.delivered for s in stats.sinks] == [7, 7]


def test_a_failed_sink_counts_what_it_did_not_deliver_and_keeps_draining():
    failures = []
    p = Pipeline([Failing(5)], batch_size=5, on_sink_failed=lambda sink, e: failures.append(str(e)))
    for k in range(4):
        p.put(batch(5, start=5 * k))  # never blocks behind the dead sink
    stats = p.close()
    (sink,) = stats.sinks
    assert (stats.accepted, sink.delivered, sink.undelivered) == (20, 5, 15)
    assert failures == ["failing: disk full"]
    assert sink.error == "failing: disk full" and sink.failed and not sink.ready


def test_a_failed_sink_is_dropped_while_the_others_go_on():
    archive = MemorySink()
    failures = []
    p = Pipeline([Failing(5, "es"), archive], batch_size=5,
                 on_sink_failed=lambda sink, e: failures.append((sink.name, [s.name for s in p.working()])))
    for k in range(4):
        p.put(batch(5, start=5 * k))
    stats = p.close()
    es, kept = stats.sinks
    assert failures == [("es", ["memory"])]
    assert (es.delivered, es.undelivered) == (5, 15)
    assert (kept.delivered, kept.undelivered, kept.error) == (20, 0, None)
    assert len(archive.docs) == 20


def test_a_sink_that_raises_something_unexpected_fails_alone():
    class Buggy(MemorySink):
        name = "buggy"

        def write(self, docs, ids=None):
            raise KeyError("oops")

    other = MemorySink()
    p = Pipeline([Buggy(), other])
    p.put(batch(3))
    buggy, kept = p.close().sinks
    assert buggy.error == "buggy: unexpected error: KeyError('oops')" and buggy.undelivered == 3
    assert kept.delivered == 3


def test_records_a_sink_took_but_reports_undelivered_are_not_counted_delivered():
    class LosesAtClose(MemorySink):
        """Like the Elasticsearch sink when its retries run out: write returned, close fails."""

        def undelivered(self):
            return len(self.docs) if self.closed else 0

        def close(self):
            super().close()
            raise SinkError(f"memory: {len(self.docs)} document(s) not delivered")

    p = Pipeline([LosesAtClose()], threaded=False)
    p.put(batch(4))
    assert p.stats().sinks[0].delivered == 4
    (sink,) = p.close().sinks
    assert (sink.delivered, sink.undelivered) == (0, 4)
    assert sink.error == "memory: 4 document(s) not delivered"


def test_close_closes_every_sink_even_when_one_fails_to_close():
    class FailingClose(MemorySink):
        name = "failing"

        def close(self):
            raise SinkError("failing: close failed")

    kept = MemorySink()
    p = Pipeline([FailingClose(), kept])
    p.put(batch(2))
    first, second = p.close().sinks
    assert first.error == "failing: close failed"
    assert kept.closed and second.error is None


def test_ids_are_made_for_the_sinks_that_want_them_only():
    got = {}

    class Recording(MemorySink):
        def write(self, docs, ids=None):
            got[self.name] = ids
            super().write(docs)

    plain, wanting = Recording(), Recording()
    plain.name, wanting.name, wanting.wants_ids = "plain", "wanting", True
    p = Pipeline([plain, wanting])
    p.put(batch(2))
    p.close()
    assert got == {"plain": None, "wanting": ["10.0.0.1/7/1714564800/0/0", "10.0.0.1/7/1714564800/0/1"]}


def test_a_sink_failing_in_the_background_is_noticed_while_nothing_arrives():
    class FailsLater(MemorySink):
        broken = False

        def flush(self):
            super().flush()
            if self.broken:
                raise SinkError("memory: gave up in the background")

    sink = FailsLater()
    failed = threading.Event()
    p = Pipeline([sink], flush_interval=0.05, on_sink_failed=lambda s, e: failed.set())
    sink.broken = True  # nothing is written: only the idle flush can tell
    assert failed.wait(10)
    assert p.working() == []
    p.close()


def test_a_pipeline_needs_a_sink():
    with pytest.raises(ValueError):
        Pipeline([])


def test_offer_after_close_is_an_error():
    p = Pipeline([MemorySink()])
    p.close()
    with pytest.raises(RuntimeError):
        p.offer(batch(1))


def test_without_a_sink_thread_put_writes_in_the_callers_thread():
    writers = []

    class Recording(MemorySink):
        def write(self, docs, ids=None):
            writers.append(threading.current_thread())
            super().write(docs)

    p = Pipeline([Recording()], threaded=False)
    p.put(batch(3))
    assert writers == [threading.current_thread()]
    stats = p.close()
    assert (stats.accepted, stats.sinks[0].delivered) == (3, 3) and p.sinks[0].closed


def test_without_a_sink_thread_offer_is_refused():
    p = Pipeline([MemorySink()], threaded=False)
    with pytest.raises(RuntimeError):
        p.offer(batch(1))
    p.close()
