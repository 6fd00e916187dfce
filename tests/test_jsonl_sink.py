"""The jsonl sink's rotation (size, time), gzip, keep-N, failure reporting and flags."""
from __future__ import annotations

import argparse
import calendar
import errno
import gzip
import itertools
import os
import re
import shutil
import subprocess
import sys

import orjson
import pytest

from ipfix_antrea import sinks
from ipfix_antrea.sinks import JsonLinesSink, SinkError, open_sink, rotation, serialize
from ipfix_antrea.sinks import jsonl as jsonl_module
from ipfix_antrea.sinks.jsonl import add_jsonl_arguments

ROTATED = re.compile(r"flows-\d{8}T\d{6}Z(?:-\d+)?\.jsonl(?:\.gz)?")


def utc(year: int, month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> float:
    return float(calendar.timegm((year, month, day, hour, minute, second)))


class Clock:
    """A settable time source, so that time rotation is tested without sleeping."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def batch(start: int, count: int, pad: int = 40) -> list[dict]:
    return [{"batch": start, "i": start + k, "pad": "x" * pad} for k in range(count)]


def lines(path) -> list[dict]:
    data = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    return [orjson.loads(line) for line in data.splitlines()]


def rotated(directory) -> list:
    """Our rotated files, oldest first (the name sorts by stamp, then counter)."""
    found = [p for p in directory.iterdir() if ROTATED.fullmatch(p.name)]
    return sorted(found, key=lambda p: (p.name.split("-")[1][:16], _counter(p.name)))


def _counter(name: str) -> int:
    match = re.search(r"Z-(\d+)\.", name)
    return int(match[1]) if match else 0


def everything(directory) -> list[dict]:
    """Every document, rotated files first, the live file last."""
    return [doc for path in [*rotated(directory), directory / "flows.jsonl"] for doc in lines(path)]


def parser() -> argparse.ArgumentParser:
    result = argparse.ArgumentParser(prog="ipfix-collect")
    add_jsonl_arguments(result)
    return result


# --- rotation by size -------------------------------------------------------------------------


def test_size_rotation_loses_no_document_and_keeps_their_order(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1000)
    written = []
    for start in range(0, 200, 7):
        written += batch(start, 7)
        sink.write(batch(start, 7))
    sink.close()
    assert len(rotated(tmp_path)) > 1
    assert everything(tmp_path) == written


def test_size_rotation_never_splits_a_batch_across_files(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1000)
    for start in range(0, 200, 7):
        sink.write(batch(start, 7))
    sink.close()
    files = [*rotated(tmp_path), tmp_path / "flows.jsonl"]
    batches_per_file = [{doc["batch"] for doc in lines(path)} for path in files]
    for one, other in itertools.pairwise(batches_per_file):
        assert not one & other


def test_size_rotation_keeps_every_file_within_the_limit(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1000)
    for start in range(0, 200, 7):
        sink.write(batch(start, 7))
    sink.close()
    sizes = [p.stat().st_size for p in [*rotated(tmp_path), tmp_path / "flows.jsonl"]]
    assert max(sizes) <= 1000
    assert min(p.stat().st_size for p in rotated(tmp_path)) > 1000 - len(serialize(batch(0, 7)))


def test_batch_larger_than_the_limit_goes_alone_into_a_fresh_file(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=100)
    sink.write(batch(0, 1))
    sink.write(batch(1, 10))
    sink.write(batch(11, 1))
    sink.close()
    assert [lines(p) for p in rotated(tmp_path)] == [batch(0, 1), batch(1, 10)]
    assert lines(tmp_path / "flows.jsonl") == batch(11, 1)


def test_existing_file_past_the_size_limit_is_rotated_at_start(tmp_path):
    live = tmp_path / "flows.jsonl"
    live.write_bytes(serialize(batch(0, 50)))
    sink = JsonLinesSink(str(live), rotate_size=1000)
    assert [lines(p) for p in rotated(tmp_path)] == [batch(0, 50)]
    assert live.stat().st_size == 0
    sink.close()


def test_existing_file_within_the_size_limit_is_appended_to(tmp_path):
    live = tmp_path / "flows.jsonl"
    live.write_bytes(serialize(batch(0, 1)))
    sink = JsonLinesSink(str(live), rotate_size=1000)
    sink.write(batch(1, 1))
    sink.close()
    assert rotated(tmp_path) == []
    assert lines(live) == batch(0, 1) + batch(1, 1)


def test_without_rotation_options_the_file_only_grows(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"))
    for start in range(0, 2000, 100):
        sink.write(batch(start, 100))
    sink.close()
    assert [p.name for p in tmp_path.iterdir()] == ["flows.jsonl"]


# --- rotation by time -------------------------------------------------------------------------


def test_time_rotation_happens_on_flush_at_the_utc_boundary_and_is_named_for_it(tmp_path):
    clock = Clock(utc(2026, 11, 26, 10, 59, 30))
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_interval=3600, clock=clock)
    sink.write(batch(0, 2))
    clock.now = utc(2026, 11, 26, 10, 59, 59)
    sink.flush()
    assert rotated(tmp_path) == []
    clock.now = utc(2026, 11, 26, 11, 0, 0, ) + 0.4
    sink.flush()
    assert [p.name for p in rotated(tmp_path)] == ["flows-20261126T110000Z.jsonl"]
    assert lines(rotated(tmp_path)[0]) == batch(0, 2)
    assert (tmp_path / "flows.jsonl").stat().st_size == 0
    sink.close()


def test_time_rotation_on_write_puts_the_new_batch_in_the_fresh_file(tmp_path):
    clock = Clock(utc(2026, 11, 26, 10, 14))
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_interval=900, clock=clock)
    sink.write(batch(0, 1))
    clock.now = utc(2026, 11, 26, 10, 20)
    sink.write(batch(1, 1))
    sink.close()
    assert [p.name for p in rotated(tmp_path)] == ["flows-20261126T101500Z.jsonl"]
    assert lines(rotated(tmp_path)[0]) == batch(0, 1)
    assert lines(tmp_path / "flows.jsonl") == batch(1, 1)


def test_time_rotation_leaves_an_empty_file_alone_and_moves_to_the_next_period(tmp_path):
    clock = Clock(utc(2026, 11, 26, 10, 30))
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_interval=3600, clock=clock)
    clock.now = utc(2026, 11, 26, 11, 30)
    sink.flush()
    sink.write(batch(0, 1))
    clock.now = utc(2026, 11, 26, 11, 59, 59)
    sink.flush()
    assert rotated(tmp_path) == []
    clock.now = utc(2026, 11, 26, 12)
    sink.flush()
    assert [p.name for p in rotated(tmp_path)] == ["flows-20261126T120000Z.jsonl"]
    sink.close()


def test_file_left_from_an_earlier_period_is_rotated_at_start(tmp_path):
    live = tmp_path / "flows.jsonl"
    live.write_bytes(serialize(batch(0, 3)))
    last_write = utc(2026, 11, 25, 23, 10)
    os.utime(live, (last_write, last_write))
    clock = Clock(utc(2026, 11, 26, 8, 0, 5))
    sink = JsonLinesSink(str(live), rotate_interval=86400, clock=clock)
    assert [p.name for p in rotated(tmp_path)] == ["flows-20261126T000000Z.jsonl"]
    assert lines(rotated(tmp_path)[0]) == batch(0, 3)
    sink.close()


def test_file_from_the_current_period_is_appended_to_at_start(tmp_path):
    live = tmp_path / "flows.jsonl"
    live.write_bytes(serialize(batch(0, 3)))
    last_write = utc(2026, 11, 26, 7, 10)
    os.utime(live, (last_write, last_write))
    sink = JsonLinesSink(str(live), rotate_interval=86400, clock=Clock(utc(2026, 11, 26, 8)))
    sink.close()
    assert rotated(tmp_path) == []


# --- names ------------------------------------------------------------------------------------


def test_rotations_in_the_same_second_get_counter_suffixes(tmp_path):
    clock = Clock(utc(2026, 11, 26, 10, 30))
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, clock=clock)
    for start in range(4):
        sink.write(batch(start, 1))
    sink.close()
    assert sorted(p.name for p in rotated(tmp_path)) == [
        "flows-20261126T103000Z-1.jsonl",
        "flows-20261126T103000Z-2.jsonl",
        "flows-20261126T103000Z.jsonl",
    ]
    assert everything(tmp_path) == [doc for start in range(4) for doc in batch(start, 1)]


def test_rotation_counter_goes_past_the_highest_in_use_not_into_a_pruned_gap(tmp_path):
    (tmp_path / "flows-20261126T103000Z-2.jsonl").write_bytes(b"{}\n")
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, clock=Clock(utc(2026, 11, 26, 10, 30)))
    sink.write(batch(0, 1))
    sink.write(batch(1, 1))
    sink.close()
    assert lines(tmp_path / "flows-20261126T103000Z-3.jsonl") == batch(0, 1)


def test_a_compressed_file_of_the_same_name_counts_as_a_collision(tmp_path):
    (tmp_path / "flows-20261126T103000Z.jsonl.gz").write_bytes(gzip.compress(b"{}\n"))
    clock = Clock(utc(2026, 11, 26, 10, 30))
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, clock=clock)
    sink.write(batch(0, 1))
    sink.write(batch(1, 1))
    sink.close()
    assert lines(tmp_path / "flows-20261126T103000Z-1.jsonl") == batch(0, 1)
    assert lines(tmp_path / "flows-20261126T103000Z.jsonl.gz") == [{}]


def test_a_file_without_extension_rotates_to_a_name_without_one(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows"), rotate_size=1, clock=Clock(utc(2026, 1, 2, 3, 4, 5)))
    sink.write(batch(0, 1))
    sink.write(batch(1, 1))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows", "flows-20260102T030405Z"]


# --- gzip -------------------------------------------------------------------------------------


def test_gzip_turns_each_rotated_file_into_a_gzip_of_exactly_its_lines(tmp_path):
    plain, packed = tmp_path / "plain", tmp_path / "packed"
    for directory, compress in ((plain, False), (packed, True)):
        directory.mkdir()
        sink = JsonLinesSink(str(directory / "flows.jsonl"), rotate_size=1000, compress=compress,
                             clock=Clock(utc(2026, 11, 26, 10, 30)))
        for start in range(0, 140, 7):
            sink.write(batch(start, 7))
        sink.close()
    assert len(rotated(plain)) > 1
    assert [p.name for p in rotated(packed)] == [p.name + ".gz" for p in rotated(plain)]
    assert [gzip.decompress(p.read_bytes()) for p in rotated(packed)] == [p.read_bytes() for p in rotated(plain)]


def test_gzip_leaves_no_temporary_or_uncompressed_rotated_file(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, compress=True)
    for start in range(5):
        sink.write(batch(start, 1))
    sink.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 5
    assert all(name == "flows.jsonl" or name.endswith(".jsonl.gz") for name in names)


def test_gzip_finishes_what_a_crashed_run_left_at_start(tmp_path):
    left = tmp_path / "flows-20261125T100000Z.jsonl"
    left.write_bytes(serialize(batch(0, 3)))
    half = tmp_path / "flows-20261125T090000Z.jsonl.gz.tmp"
    half.write_bytes(gzip.compress(serialize(batch(9, 3)))[:10])
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=10**6, compress=True)
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flows-20261125T100000Z.jsonl.gz", "flows.jsonl"]
    assert lines(tmp_path / "flows-20261125T100000Z.jsonl.gz") == batch(0, 3)


def test_failed_compression_is_reported_and_keeps_the_rotated_file(tmp_path, monkeypatch):
    def no_space(path: str) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path + ".gz.tmp")

    monkeypatch.setattr(rotation, "gzip_file", no_space)
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, compress=True)
    sink.write(batch(0, 1))
    sink.write(batch(1, 1))
    with pytest.raises(SinkError, match=r"jsonl:.*flows\.jsonl: cannot gzip .*flows-\d{8}T\d{6}Z\.jsonl: No space"):
        sink.close()
    assert everything(tmp_path) == batch(0, 1) + batch(1, 1)


# --- keep -------------------------------------------------------------------------------------


def test_keep_deletes_only_the_oldest_of_our_own_rotated_files(tmp_path):
    foreign = ["other.jsonl", "flows-old.jsonl", "flows-20200101T000000Z.txt",
               "flows-20200101T000000Z.jsonl.bak", "xflows-20200101T000000Z.jsonl"]
    for name in foreign:
        (tmp_path / name).write_bytes(b"keep me\n")
    (tmp_path / "flows-20200101T000000Z.jsonl").write_bytes(serialize(batch(100, 1)))
    (tmp_path / "flows-20200102T000000Z.jsonl.gz").write_bytes(gzip.compress(serialize(batch(101, 1))))
    clock = Clock(utc(2026, 11, 26, 10, 30))
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, keep=2, clock=clock)
    for start in range(3):
        sink.write(batch(start, 1))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([
        *foreign, "flows.jsonl", "flows-20261126T103000Z.jsonl", "flows-20261126T103000Z-1.jsonl"])
    assert lines(tmp_path / "flows-20261126T103000Z-1.jsonl") == batch(1, 1)


def test_keep_with_gzip_keeps_the_newest_compressed_files(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), rotate_size=1, compress=True, keep=2,
                         clock=Clock(utc(2026, 11, 26, 10, 30)))
    for start in range(6):
        sink.write(batch(start, 1))
    sink.close()
    assert [lines(p) for p in rotated(tmp_path)] == [batch(3, 1), batch(4, 1)]


# --- failures ---------------------------------------------------------------------------------


def test_unopenable_path_is_a_sink_error_naming_path_and_reason(tmp_path):
    (tmp_path / "not-a-dir").write_bytes(b"")
    target = tmp_path / "not-a-dir" / "flows.jsonl"
    with pytest.raises(SinkError, match=rf"jsonl:{re.escape(str(target))}: cannot open for appending: Not a directory"):
        JsonLinesSink(str(target), rotate_size=1000)


def test_unwritable_directory_is_a_sink_error_naming_path_and_reason(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    directory.chmod(0o500)
    probe = ("import sys\nfrom ipfix_antrea.sinks import JsonLinesSink, SinkError\n"
             "try:\n    JsonLinesSink(sys.argv[1])\nexcept SinkError as exc:\n    print(exc)\n")
    command = [sys.executable, "-c", probe, str(directory / "flows.jsonl")]
    if os.geteuid() == 0:  # root writes anywhere: run the probe without that capability
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop CAP_DAC_OVERRIDE")
        command = ["setpriv", "--inh-caps=-dac_override,-dac_read_search",
                   "--bounding-set=-dac_override,-dac_read_search", *command]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    finally:
        directory.chmod(0o700)
    assert result.stdout == f"jsonl:{directory / 'flows.jsonl'}: cannot open for appending: Permission denied\n"


def test_failed_write_raises_and_leaves_no_partial_line(tmp_path, monkeypatch):
    live = tmp_path / "flows.jsonl"
    sink = JsonLinesSink(str(live))
    sink.write(batch(0, 2))
    real_write = os.write
    calls = []

    def half_then_full(fd: int, data) -> int:
        calls.append(len(data))
        if len(calls) == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(jsonl_module.os, "write", half_then_full)
    with pytest.raises(SinkError, match=r"jsonl:.*flows\.jsonl: write failed, 5 documents not written: No space"):
        sink.write(batch(2, 5))
    monkeypatch.undo()
    sink.write(batch(7, 1))
    sink.close()
    assert lines(live) == batch(0, 2) + batch(7, 1)


def test_failed_rotation_still_writes_the_batch_and_is_reported_by_flush(tmp_path, monkeypatch):
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), src)

    live = tmp_path / "flows.jsonl"
    sink = JsonLinesSink(str(live), rotate_size=1)
    sink.write(batch(0, 1))
    monkeypatch.setattr(jsonl_module.os, "rename", refuse)
    sink.write(batch(1, 1))
    with pytest.raises(SinkError, match=r"cannot rotate to .*flows-\d{8}T\d{6}Z\.jsonl: Permission denied; "
                                        r"still appending to .*flows\.jsonl"):
        sink.flush()
    assert lines(live) == batch(0, 1) + batch(1, 1)
    monkeypatch.undo()
    sink.flush()  # the cause is gone: rotates, reports nothing
    sink.close()
    assert [lines(p) for p in rotated(tmp_path)] == [batch(0, 1) + batch(1, 1)]


def test_write_after_close_is_a_sink_error(tmp_path):
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"))
    sink.close()
    with pytest.raises(SinkError, match="write after close"):
        sink.write(batch(0, 1))


# --- fsync ------------------------------------------------------------------------------------


@pytest.mark.parametrize("enabled", [True, False])
def test_fsync_option_decides_whether_flush_and_close_fsync_the_file(tmp_path, monkeypatch, enabled):
    synced = []
    monkeypatch.setattr(jsonl_module.os, "fsync", synced.append)
    sink = JsonLinesSink(str(tmp_path / "flows.jsonl"), fsync=enabled)
    sink.write(batch(0, 1))
    sink.flush()
    assert len(synced) == (1 if enabled else 0)
    sink.close()
    assert len(synced) == (2 if enabled else 0)


# --- flags ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "size"), [
    ("1048576", 1048576), ("500k", 500 * 1024), ("500K", 500 * 1024), ("100M", 100 << 20),
    ("1G", 1 << 30), ("1.5G", 3 << 29), ("2T", 2 << 40), ("100MB", 100 << 20), ("64KiB", 64 << 10),
])
def test_rotate_size_accepts_bytes_and_binary_units(text, size):
    assert parser().parse_args(["--jsonl-rotate-size", text]).jsonl_rotate_size == size


@pytest.mark.parametrize(("text", "seconds"), [
    ("86400", 86400), ("86400s", 86400), ("15m", 900), ("1h", 3600), ("1H", 3600),
    ("1h30m", 5400), ("1d", 86400),
])
def test_rotate_interval_accepts_seconds_and_units(text, seconds):
    assert parser().parse_args(["--jsonl-rotate-interval", text]).jsonl_rotate_interval == seconds


@pytest.mark.parametrize(("flag", "value", "message"), [
    ("--jsonl-rotate-size", "10Q", "invalid size '10Q': use bytes or a number with K, M, G or T"),
    ("--jsonl-rotate-size", "-5M", "invalid size '-5M'"),
    ("--jsonl-rotate-size", "0", "invalid size '0': must be at least 1 byte"),
    ("--jsonl-rotate-interval", "1w", "invalid duration '1w': use seconds or a number with s, m, h or d"),
    ("--jsonl-rotate-interval", "1.5h", "invalid duration '1.5h'"),
    ("--jsonl-rotate-interval", "0m", "invalid duration '0m': must be at least 1s"),
    ("--jsonl-keep", "0", "invalid count '0': must be at least 1"),
    ("--jsonl-keep", "many", "invalid count 'many'"),
    ("--jsonl-compress", "zip", "invalid choice: 'zip'"),
])
def test_bad_flag_values_are_rejected_with_an_argparse_error(capsys, flag, value, message):
    with pytest.raises(SystemExit) as stop:
        parser().parse_args([f"{flag}={value}"])
    assert stop.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err


def test_registered_jsonl_scheme_adds_its_flags():
    scheme = next(s for s in sinks.sink_schemes() if s.scheme == "jsonl")
    assert scheme.add_arguments is add_jsonl_arguments


def test_factory_applies_the_parsed_flags(tmp_path):
    options = parser().parse_args(["--jsonl-rotate-size", "1", "--jsonl-compress", "gzip", "--jsonl-keep", "1"])
    sink = open_sink(f"jsonl:{tmp_path / 'flows.jsonl'}", options)
    for start in range(3):
        sink.write(batch(start, 1))
    sink.close()
    assert [lines(p) for p in rotated(tmp_path)] == [batch(1, 1)]
    assert rotated(tmp_path)[0].name.endswith(".jsonl.gz")


@pytest.mark.parametrize("flags", [["--jsonl-compress", "gzip"], ["--jsonl-keep", "3"]])
def test_compress_or_keep_without_rotation_is_rejected(tmp_path, flags):
    with pytest.raises(SinkError, match="apply to rotated files; add --jsonl-rotate-size or --jsonl-rotate-interval"):
        open_sink(f"jsonl:{tmp_path / 'flows.jsonl'}", parser().parse_args(flags))
