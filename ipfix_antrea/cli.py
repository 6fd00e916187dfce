# `ipfix-collect`: inputs -> Session -> Logstash-compatible documents -> sinks.
#
# The command is glue and nothing else: it parses flags, opens the inputs and sinks named by their
# specs through the two registries (`ipfix_antrea.inputs`, `ipfix_antrea.sinks`), turns each batch
# of records into documents (`ipfix_antrea.document`) and writes them to every sink, then prints a
# summary built from the sessions' counters. It knows no input or sink by name, so network inputs,
# Elasticsearch and the like arrive by registering a scheme.
#
# Errors are the inputs' business to report, never a crash: an input that breaks stops with a
# message on stderr, what was decoded before still goes out, and the exit status says so.
from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, TextIO

from .document import to_document
from .inputs import Input, InputError, input_schemes, open_input, parse_input_spec
from .sinks import FanOut, Sink, SinkError, open_sink, parse_sink_spec, sink_schemes

from .events import MalformedSet

if TYPE_CHECKING:
    from ipfix_antrea import Event, Registry, SessionStats

__all__ = ["main", "build_parser", "run", "RunSummary", "describe_event"]

PROG = "ipfix-collect"

EXIT_OK = 0
EXIT_INPUT_ERRORS = 1
EXIT_USAGE = 2
EXIT_SINK_FAILED = 3
EXIT_INTERRUPTED = 130

DEFAULT_BATCH_SIZE = 500
MAX_SET_ERRORS = 10  # malformed sets described on stderr per run; the summary counts them all


def _epilog() -> str:
    width = max(len(s.usage) for s in [*input_schemes(), *sink_schemes()]) + 2
    lines = ["inputs (--input, repeatable; read one after the other, each with its own session):"]
    lines += [f"  {s.usage:<{width}}{s.help}" for s in input_schemes()]
    lines += ["", "sinks (--sink, repeatable; every document goes to every sink; default stdout):"]
    lines += [f"  {s.usage:<{width}}{s.help}" for s in sink_schemes()]
    lines += [
        "",
        "output: one JSON document per IPFIX data record, shaped like the events of Antrea's",
        "Logstash flow pipeline: @timestamp (message export time), @version, type \"ipfix\",",
        "host (exporter, when known) and ipfix {version, flowset_id (template id), every",
        "element by name}. Unknown elements appear as en<enterprise>:id<id> (hex).",
        "",
        "A summary (records, messages, bytes, errors, unknown elements) goes to stderr at the end.",
        "",
        "exit status:",
        f"  {EXIT_OK}    every input was read completely and decoded without errors",
        f"  {EXIT_INPUT_ERRORS}    an input could not be read, broke off (a message that cannot be framed,",
        "       a truncated last message) or had malformed sets; records decoded before",
        "       the error were still written. Missing templates, sequence gaps and unknown",
        "       elements are reported but do not change the status",
        f"  {EXIT_USAGE}    bad command line: unknown input/sink, unreadable --registry, sink",
        "       cannot be opened; nothing was read",
        f"  {EXIT_SINK_FAILED}    a sink failed while writing; output is incomplete",
        f"  {EXIT_INTERRUPTED}  interrupted (Ctrl-C); what was decoded so far was flushed",
        "",
        "A closed standard output (`| head`) stops the run quietly; the status is as above.",
        "",
        "examples:",
        f"  {PROG} --input file:capture.ipfix --sink jsonl:flows.jsonl",
        f"  nc -l 4739 | {PROG} --input file:- --sink stdout | jq .ipfix.sourcePodName",
        f"  {PROG} -i file:a.ipfix -i file:b.ipfix -s jsonl:all.jsonl -s stdout --registry extra.csv",
    ]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Decode IPFIX (RFC 7011) flow records, e.g. from Antrea's Flow Exporter or\n"
        "Flow Aggregator, into JSON documents compatible with Antrea's old Logstash/Kibana\n"
        "flow pipeline.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("-i", "--input", dest="inputs", action="append", metavar="SPEC", required=True,
                        help="where to read IPFIX from (see inputs below); repeatable")
    parser.add_argument("-s", "--sink", dest="sinks", action="append", metavar="SPEC",
                        help="where to write documents (see sinks below); repeatable; default: stdout")
    parser.add_argument("--registry", dest="registries", action="append", metavar="CSV", default=[],
                        help="extra information-element definitions (CSV with columns "
                        "elementId,name,dataType[,...,enterprise]); repeatable")
    parser.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                        help=f"documents per sink write (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print session events (templates, unknown elements, gaps...) to stderr")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no summary at the end (errors are still printed)")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    return parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def _version() -> str:
    from ipfix_antrea import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# the summary

def _add_stats(total: Counter, names: set[str], stats: SessionStats) -> None:
    """Add one SessionStats: every integer counter, and the unknown element names."""
    for f in fields(stats):
        value = getattr(stats, f.name)
        if isinstance(value, int) and not isinstance(value, bool):
            total[f.name] += value
    names.update(stats.unknown_element_names)


@dataclass
class RunSummary:
    """What the run did, across all inputs; `exit_status` follows the documented codes.

    ``counters`` sums the `SessionStats` fields of every session the inputs drove.
    """

    inputs: int = 0
    records: int = 0
    counters: Counter = field(default_factory=Counter)
    unknown_elements: set[str] = field(default_factory=set)
    input_errors: list[str] = field(default_factory=list)
    sink_error: str | None = None
    interrupted: bool = False
    output_closed: bool = False
    reported_sets: int = 0  # malformed sets shown on stderr (at most MAX_SET_ERRORS)

    def add_stats(self, stats: Iterable[SessionStats]) -> None:
        for one in stats:
            _add_stats(self.counters, self.unknown_elements, one)

    @property
    def exit_status(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        if self.sink_error:
            return EXIT_SINK_FAILED
        c = self.counters
        if self.input_errors or c["malformed_messages"] or c["malformed_sets"]:
            return EXIT_INPUT_ERRORS
        return EXIT_OK

    def lines(self) -> list[str]:
        c = self.counters
        inputs = f"{self.inputs} input" + ("" if self.inputs == 1 else "s")
        gaps = f"{c['sequence_gaps']} sequence gaps"
        if c["missing_records"]:
            gaps += f" ({c['missing_records']} records missing)"
        if c["out_of_order"]:
            gaps += f", {c['out_of_order']} out of order"
        out = [
            f"{PROG}: {inputs}: {self.records} records, {c['messages']} messages, {c['octets']} bytes",
            f"{PROG}: {c['malformed_messages']} decode errors, {c['malformed_sets']} malformed sets, "
            f"{c['missing_template_sets']} missing-template sets, {gaps}",
        ]
        if self.unknown_elements:
            names = sorted(self.unknown_elements)
            out.append(f"{PROG}: {len(names)} unknown element(s), decoded as octetArray: " + ", ".join(names))
        if self.input_errors:
            out.append(f"{PROG}: {len(self.input_errors)} input(s) with errors (see above)")
        if self.output_closed:
            out.append(f"{PROG}: standard output was closed; stopped early")
        return out


def describe_event(event: Event) -> str:
    """One line for an event: its class and fields, a template by its id."""
    parts = []
    for f in fields(event):
        value = getattr(event, f.name)
        if hasattr(value, "template_id") and not isinstance(value, int):
            value = value.template_id
        parts.append(f"{f.name}={value}")
    return f"{type(event).__name__}({', '.join(parts)})"


# --------------------------------------------------------------------------------------------
# running


def run(inputs: Sequence[Input], sink: Sink, *, batch_size: int = DEFAULT_BATCH_SIZE,
        verbose: bool = False, err: TextIO | None = None) -> RunSummary:
    """Read every input in turn and write its documents to ``sink``; never raises for bad data.

    Sink failures end the run (``sink_error``); the sink is flushed but not closed.
    """
    err = err if err is not None else sys.stderr
    summary = RunSummary()
    try:
        for inp in inputs:
            summary.inputs += 1
            try:
                for batch in inp:
                    records = batch.records
                    if records:
                        host = batch.host
                        docs = [to_document(r, host) for r in records]
                        for i in range(0, len(docs), batch_size):
                            sink.write(docs[i:i + batch_size])
                        summary.records += len(docs)
                    for ev in batch.events:
                        if verbose:
                            print(f"{PROG}: {batch.source}: {describe_event(ev)}", file=err)
                        elif isinstance(ev, MalformedSet) and summary.reported_sets < MAX_SET_ERRORS:
                            # Errors are shown without -v, but a flood of them is not.
                            summary.reported_sets += 1
                            print(f"{PROG}: error: {batch.source}: set {ev.set_id} of domain "
                                  f"{ev.observation_domain_id}: {ev.error}", file=err)
                    if batch.error:
                        summary.input_errors.append(batch.error)
                        print(f"{PROG}: error: {batch.error}", file=err)
            except InputError as exc:
                summary.input_errors.append(str(exc))
                print(f"{PROG}: error: {exc}", file=err)
            finally:
                summary.add_stats(inp.stats())
                inp.close()
        sink.flush()
    except SinkError as exc:
        summary.sink_error = str(exc)
        print(f"{PROG}: error: {exc}", file=err)
    except BrokenPipeError:
        summary.output_closed = True
        _silence_stdout()
    except KeyboardInterrupt:
        summary.interrupted = True
        with contextlib.suppress(SinkError, OSError):
            sink.flush()
    return summary


def _silence_stdout() -> None:
    # The reader of our stdout went away (`| head`): point fd 1 at /dev/null so the interpreter's
    # final flush does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _load_registry(paths: Sequence[str]) -> Registry | None:
    if not paths:
        return None  # each Session takes its own default_registry()
    from ipfix_antrea import default_registry

    registry = default_registry()
    for path in paths:
        try:
            registry.load_csv(path)
        except OSError as exc:
            raise _UsageError(f"--registry {path}: cannot read: {exc.strerror or exc}") from exc
        except (ValueError, KeyError) as exc:
            raise _UsageError(f"--registry {path}: {exc}") from exc
    return registry


class _UsageError(Exception):
    pass


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ipfix-collect``; returns the exit status (see --help)."""
    args = build_parser().parse_args(argv)
    err = sys.stderr
    sinks: list[Sink] = []
    try:
        input_specs = [parse_input_spec(s) for s in args.inputs]
        sink_specs = [parse_sink_spec(s) for s in (args.sinks or ["stdout"])]
        registry = _load_registry(args.registries)
        inputs = [open_input(spec, registry=registry) for spec in input_specs]
        for spec in sink_specs:
            sinks.append(open_sink(spec))
    except (InputError, SinkError, _UsageError) as exc:
        print(f"{PROG}: error: {exc}", file=err)
        _close_quietly(sinks)
        return EXIT_USAGE

    sink: Sink = sinks[0] if len(sinks) == 1 else FanOut(sinks)
    summary = run(inputs, sink, batch_size=args.batch_size, verbose=args.verbose, err=err)
    try:
        sink.close()
    except SinkError as exc:
        if not summary.sink_error:
            summary.sink_error = str(exc)
            print(f"{PROG}: error: {exc}", file=err)
    except BrokenPipeError:
        summary.output_closed = True
        _silence_stdout()
    if not args.quiet:
        for line in summary.lines():
            print(line, file=err)
    return summary.exit_status


def _close_quietly(sinks: Sequence[Sink]) -> None:
    for s in sinks:
        with contextlib.suppress(Exception):
            s.close()


if __name__ == "__main__":
    sys.exit(main())
