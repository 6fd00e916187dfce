"""`ipfix-collect`: inputs -> Session -> documents (Logstash's shape, enriched) -> sinks.

The command is glue and nothing else: it parses flags (every one also settable from an
environment variable, as containers expect), opens the inputs, transforms and sinks named on
the command line through their registries (`ipfix_antrea.inputs`, `ipfix_antrea.documents`,
`ipfix_antrea.sinks`), hands them to the `Collector` (`ipfix_antrea.service`) and turns what
happened into log lines and an exit status. It knows no input, transform or sink by name: their
own flags come from the hooks they registered, and what documents hold is declared by the
document stage (`DocumentBuilder.fields`), which --help lists.

Errors are the inputs' business to report, never a crash: an input that breaks stops with a
message on stderr, what was decoded before still goes out, and the exit status says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import difflib
import gc
import logging
import os
import shlex
import socket
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .channel import serve_as_worker
from .documents import ENVELOPE_FIELDS, make_builder, parse_enrich, transform_schemes
from .inputs import Input, InputError, Listener, input_schemes, open_input, parse_input_spec
from .inputs import add_arguments as add_input_arguments
from .inputs.allow import AllowList
from .monitor import DEFAULT_MAX_EXPORTERS, PROG, RunSummary
from .pipeline import DEFAULT_BATCH_SIZE, DEFAULT_FLUSH_INTERVAL, DEFAULT_QUEUE_RECORDS
from .service import DEFAULT_STATUS_INTERVAL, Collector, EarlySignals
from .sinks import Sink, SinkContext, SinkError, open_sink, parse_sink_spec, sink_schemes
from .sinks.es_options import add_connection_arguments, add_index_arguments
from .supervisor import WORKER_FLAG, Supervisor, WorkerLaunch, available_cpus
from .units import number
from .workers import WorkerInfo

if TYPE_CHECKING:
    from ipfix_antrea import Registry

    from .documents import TransformScheme
    from .inputs import InputScheme
    from .sinks import SinkScheme

__all__ = ["main", "command", "build_parser", "build_setup_parser", "parse_args", "apply_environment",
           "unknown_variables", "exit_status", "ENV_PREFIX"]

ENV_PREFIX = "IPFIX_COLLECT_"

EXIT_OK = 0
EXIT_INPUT_ERRORS = 1
EXIT_USAGE = 2
EXIT_SINK_FAILED = 3
EXIT_ABANDONED = 130
EXIT_SETUP_FAILED = 1  # ipfix-collect setup: a service could not be reached or refused

LOG_LEVELS = ("debug", "info", "warning", "error")
DEFAULT_ENRICH = ("antrea",)


def _epilog() -> str:
    schemes: list[InputScheme | SinkScheme] = [*input_schemes(), *sink_schemes()]
    width = max(len(s.usage) for s in schemes) + 2
    lines = ["inputs (--input, repeatable; network inputs run together, files and captures are",
             "read one after the other; every exporter connection or address has its own session):"]
    lines += [f"  {s.usage:<{width}}{s.help}" for s in input_schemes()]
    lines += ["  A network input without :PORT listens on 4739, IANA's port for IPFIX (and Antrea's default)."]
    lines += ["", "sinks (--sink, repeatable; every document goes to every sink; default stdout; a sink",
              "that fails is dropped while the others go on):"]
    lines += [f"  {s.usage:<{width}}{s.help}" for s in sink_schemes()]
    lines += ["", "output: one JSON document per IPFIX data record, shaped like the events of Antrea's",
              "Logstash flow pipeline:"]
    field_width = max(len(f.path) for f in ENVELOPE_FIELDS) + 2
    lines += [f"  {f.path:<{field_width}}{f.help}" for f in ENVELOPE_FIELDS]
    lines += [f"  {'ipfix.<element>':<{field_width}}every element of the record by name; unknown elements as",
              f"  {'':<{field_width}}en<enterprise>:id<id> (hex)",
              "", f"enrichment (--enrich NAME[,NAME...] or none; default {','.join(DEFAULT_ENRICH)}): "
              "derived fields under ipfix.,", "each only where the record has what it needs:"]
    lines += [f"  {t.name:<{width}}{t.help}" for t in transform_schemes()]
    lines += [
        "",
        "With only files and captures the run ends when they are read; with a network input it",
        "runs until SIGTERM or SIGINT, then stops accepting, drains its queue, flushes every sink",
        "and exits (a second signal gives up at once). A status line goes to stderr every",
        "--status-interval seconds and a summary at the end.",
        "",
        f"environment: every flag can be set as {ENV_PREFIX}<FLAG>, e.g. {ENV_PREFIX}INPUT,",
        f"{ENV_PREFIX}TLS_CERT, {ENV_PREFIX}UDP_RCVBUF; repeatable flags take a space-separated",
        "list (shell quoting works). Flags on the command line win. A variable that sets no flag",
        f"(of this command or of `{PROG} setup`) is warned about, naming the closest flag.",
        "",
        "exit status:",
        f"  {EXIT_OK}    the inputs were read completely without errors, or a signal stopped the",
        "       collector and every accepted record was delivered",
        f"  {EXIT_INPUT_ERRORS}    an input could not be read or opened, broke off (a message that cannot be",
        "       framed, a truncated last message) or had malformed sets; records decoded before",
        "       the error were still written. Missing templates, sequence gaps and unknown",
        "       elements are reported but do not change the status",
        f"  {EXIT_USAGE}    bad command line: unknown input/sink, bad option, unreadable --registry,",
        "       sink cannot be opened; nothing was read",
        f"  {EXIT_SINK_FAILED}    a sink failed (the others went on; the run ends when none is left);",
        "       the summary counts, per sink, what was not delivered",
        f"  {EXIT_ABANDONED}  a second signal abandoned the drain",
        "",
        "A closed standard output (`| head`) stops the run quietly; the status is as above.",
        "",
        f"Elasticsearch and Kibana: `{PROG} setup --help` installs the index template and the",
        "dashboards (Antrea's Overview, Flows, Flow Records, ...) that read these documents.",
        "",
        "examples:",
        f"  {PROG} --input udp://0.0.0.0:4739 --input tcp://0.0.0.0:4739 --sink jsonl:flows.jsonl",
        f"  {PROG} -i tls://[::]:4739 --tls-cert srv.pem --tls-key srv.key --tls-client-ca ca.pem",
        f"  {PROG} --input file:capture.ipfix --sink jsonl:flows.jsonl",
        f"  {PROG} -i file:a.ipfix -i file:b.ipfix -s jsonl:all.jsonl -s stdout --registry extra.csv",
    ]
    return "\n".join(lines)


class _Parser(argparse.ArgumentParser):
    """argparse with a short error: the problem and where to look, not a usage of sixty flags."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n"
                  f"{self.prog}: see '{self.prog} --help' for every flag\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line: the collector's own flags and every registered sink's."""
    parser = _Parser(
        prog=PROG,
        description="Collect IPFIX (RFC 7011) flow records, e.g. from Antrea's Flow Exporter or\n"
        "Flow Aggregator, into JSON documents compatible with Antrea's old Logstash/Kibana\n"
        "flow pipeline.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    io = parser.add_argument_group("inputs and sinks")
    io.add_argument("-i", "--input", dest="inputs", action="append", metavar="SPEC", required=True,
                    help="where to read IPFIX from (see inputs below); repeatable")
    io.add_argument("-s", "--sink", dest="sinks", action="append", metavar="SPEC",
                    help="where to write documents (see sinks below); repeatable; default: stdout")
    io.add_argument("--registry", dest="registries", action="append", metavar="CSV", default=[],
                    help="extra information-element definitions (CSV with columns "
                    "elementId,name,dataType[,...,enterprise]); repeatable")
    io.add_argument("--enrich", type=_enrichment, default=DEFAULT_ENRICH, metavar="NAME[,NAME...]",
                    help=f"derived fields to add, in this order, or none (default {','.join(DEFAULT_ENRICH)}; "
                    "see enrichment below)")

    io.add_argument("--allow", dest="allow", action="append", metavar="CIDR", default=[],
                    help="accept exporters from this network only, on every input (repeatable; default: any)")

    pipe = parser.add_argument_group("delivery")
    pipe.add_argument("--queue-size", type=_positive_int, default=DEFAULT_QUEUE_RECORDS, metavar="RECORDS",
                      help=f"records held between decoding and sinks (default {DEFAULT_QUEUE_RECORDS}); "
                      "when full, TCP/TLS/file reading waits and UDP datagrams are dropped and counted")
    pipe.add_argument("--batch-size", type=_positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                      help=f"documents per sink write (default {DEFAULT_BATCH_SIZE})")
    pipe.add_argument("--flush-interval", type=_positive_float, default=DEFAULT_FLUSH_INTERVAL,
                      metavar="SECONDS", help="flush sinks at least this often (default "
                      f"{DEFAULT_FLUSH_INTERVAL:g}), and whenever the queue runs dry")

    ops = parser.add_argument_group("operation")
    ops.add_argument("--status-interval", type=_non_negative_float, default=DEFAULT_STATUS_INTERVAL,
                     metavar="SECONDS", help="print a status line this often (default "
                     f"{DEFAULT_STATUS_INTERVAL:.0f}; 0: never)")
    ops.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                     help="least severe messages shown on stderr (default info)")
    ops.add_argument("-v", "--verbose", action="store_true",
                     help="same as --log-level debug: also every session event (templates, gaps...)")
    ops.add_argument("-q", "--quiet", action="store_true",
                     help="same as --log-level warning: no status lines and no summary")
    ops.add_argument("--metrics-listen", metavar="HOST:PORT",
                     help="serve Prometheus metrics (/metrics), liveness (/healthz), readiness "
                     "(/readyz) and the exporters' templates (/templates) over HTTP here, e.g. "
                     "0.0.0.0:9740 (default: off)")
    ops.add_argument("--metrics-exporters", type=_positive_int, default=DEFAULT_MAX_EXPORTERS, metavar="N",
                     help="exporters with a label of their own in the metrics; later ones count as "
                     f"exporter=\"other\" (default {DEFAULT_MAX_EXPORTERS})")
    ops.add_argument("--workers", type=_workers, default=1, metavar="N|auto",
                     help="worker processes that share the network inputs' exporters, each with its "
                     "own sinks (jsonl:NAME.EXT writes NAME-wK.EXT); auto: one per CPU this process may "
                     "use, or 1 with file or capture inputs, which one process reads (default 1)")
    ops.add_argument("--version", action="version", version=f"%(prog)s {_version()}")

    add_input_arguments(parser)
    plugins: list[TransformScheme | SinkScheme] = [*transform_schemes(), *sink_schemes()]
    for plugin in plugins:
        if plugin.add_arguments is not None:
            plugin.add_arguments(parser)
    return parser


def _enrichment(text: str) -> tuple[str, ...]:
    try:
        return parse_enrich(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_positive_int = number(int, minimum=1)


def _workers(text: str) -> int | str:
    if text.strip().lower() == "auto":
        return "auto"
    return int(_worker_number(text))


_worker_number = number(int, minimum=1, what="worker count")
_non_negative_float = number(float, minimum=0)
_positive_float = number(float, above=0)


def _version() -> str:
    from ipfix_antrea import __version__

    return __version__


# --------------------------------------------------------------------------------------------
# environment variables

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_name(option: str) -> str:
    """``--tls-client-ca`` -> ``IPFIX_COLLECT_TLS_CLIENT_CA``."""
    return ENV_PREFIX + option.lstrip("-").upper().replace("-", "_")


def parse_args(parser: argparse.ArgumentParser, argv: Sequence[str] | None,
               environ: Mapping[str, str]) -> argparse.Namespace:
    """Parses ``argv`` with ``IPFIX_COLLECT_<FLAG>`` variables as defaults; a repeatable flag
    given on the command line replaces its variable's list instead of adding to it."""
    from_env = apply_environment(parser, environ)
    args = parser.parse_args(argv)
    for dest, n in from_env.items():
        values = getattr(args, dest)
        if len(values) > n:  # argparse appended command-line values to the variable's list
            setattr(args, dest, values[n:])
    return args


def apply_environment(parser: argparse.ArgumentParser, environ: Mapping[str, str]) -> dict[str, int]:
    """Makes ``IPFIX_COLLECT_<FLAG>`` the default of every long flag that has one set; returns
    how many values each repeatable flag got from its variable.

    Values go through the flag's own type check; repeatable flags take a shell-quoted,
    space-separated list; switches take 1/0, true/false, yes/no, on/off. A bad value is a usage
    error naming the variable.
    """
    appended: dict[str, int] = {}
    for action in parser._actions:  # argparse has no public list of actions
        longs = [o for o in action.option_strings if o.startswith("--")]
        if not longs or isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            continue
        name = env_name(longs[0])
        if name not in environ:
            continue
        text = environ[name]
        default: object
        try:
            if isinstance(action, argparse._StoreTrueAction):
                value = text.strip().lower()
                if value not in _TRUE | _FALSE:
                    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean (1/0, true/false)")
                default = value in _TRUE
            elif isinstance(action, argparse._AppendAction):
                default = [_convert(action, item) for item in shlex.split(text)]
                appended[action.dest] = len(default)
            else:
                default = _convert(action, text)
        except (argparse.ArgumentTypeError, ValueError) as exc:
            parser.error(f"{name}: {exc}")
        action.default = default
        action.required = False
    return appended


def _variables(parser: argparse.ArgumentParser) -> dict[str, str]:
    """``IPFIX_COLLECT_<FLAG>`` -> ``--flag`` for every flag a variable can set."""
    names = {}
    for action in parser._actions:  # as in apply_environment
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs and not isinstance(action, (argparse._HelpAction, argparse._VersionAction)):
            names[env_name(longs[0])] = longs[0]
    return names


def unknown_variables(environ: Mapping[str, str], parsers: Sequence[argparse.ArgumentParser]) -> list[str]:
    """A warning for each ``IPFIX_COLLECT_*`` variable that sets no flag of any of ``parsers``
    (a misspelling would otherwise be ignored silently), naming the closest flag. The collector
    and ``setup`` are checked together: deployments set both commands' variables in one
    environment, so a variable of either is no mistake."""
    known: dict[str, str] = {}
    for parser in parsers:
        known.update(_variables(parser))
    warnings = []
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX) or name in known:
            continue
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]} ({known[close[0]]})?" if close else ""
        warnings.append(f"{name} sets no flag of {PROG} or {SETUP_PROG}, ignored{hint}")
    return warnings


def _convert(action: argparse.Action, text: str) -> object:
    value = action.type(text) if callable(action.type) else text
    if action.choices is not None and value not in action.choices:
        raise argparse.ArgumentTypeError(f"{text!r} is not one of {', '.join(map(str, action.choices))}")
    return value


# --------------------------------------------------------------------------------------------
# logging


class _Formatter(logging.Formatter):
    """``ipfix-collect: error: ...`` for problems, ``ipfix-collect: ...`` for information."""

    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            return f"{PROG}: {record.levelname.lower()}: {text}"
        return f"{PROG}: {text}"


class _WorkerFormatter(_Formatter):
    """``ipfix-collect[w1]: ...``: the lines of worker process 1 of ``--workers N``."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self._prefix = f"{PROG}[w{index}]: "

    def format(self, record: logging.LogRecord) -> str:
        return self._prefix + super().format(record)[len(PROG) + 2:]


def _setup_logging(level: str, worker: WorkerInfo | None = None) -> logging.Handler:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter() if worker is None else _WorkerFormatter(worker.index))
    logger = logging.getLogger("ipfix_antrea")
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
    return handler


# --------------------------------------------------------------------------------------------
# running


def exit_status(summary: RunSummary) -> int:
    """The documented exit status for a run that ended (see --help)."""
    if summary.sink_failed:
        return EXIT_SINK_FAILED
    if summary.worker_deaths:
        return EXIT_INPUT_ERRORS
    if summary.stopped_by_signal:
        return EXIT_OK
    c = summary.counters
    if summary.input_errors or c["malformed_messages"] or c["malformed_sets"]:
        return EXIT_INPUT_ERRORS
    return EXIT_OK


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


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Run ``ipfix-collect`` (or ``ipfix-collect setup``); returns the exit status (see
    --help). ``environ`` defaults to the process environment."""
    argv = list(sys.argv[1:] if argv is None else argv)
    environ = os.environ if environ is None else environ
    parser, setup_parser = build_parser(), build_setup_parser()
    launch = None
    if argv[:1] == [WORKER_FLAG]:  # a worker process of --workers N, started by its supervisor
        try:
            launch, argv = WorkerLaunch.parse(argv[1] if len(argv) > 1 else ""), argv[2:]
        except ValueError as exc:
            print(f"{PROG}: error: {exc}; {WORKER_FLAG} is how the supervisor of --workers N starts "
                  "its workers, not an option", file=sys.stderr)
            return EXIT_USAGE
    else:  # (the supervisor has warned already)
        for warning in unknown_variables(environ, [parser, setup_parser]):
            print(f"{PROG}: warning: {warning}", file=sys.stderr)
    if argv[:1] == ["setup"]:
        return _setup(parse_args(setup_parser, argv[1:], environ))
    args = parse_args(parser, argv, environ)
    level = "debug" if args.verbose else "warning" if args.quiet else args.log_level
    handler = _setup_logging(level, launch.info if launch else None)
    try:
        return _run(args, level, _Command(argv, environ, launch))
    finally:
        logging.getLogger("ipfix_antrea").removeHandler(handler)


@dataclass(frozen=True)
class _Command:
    """How this process was started: the command line and the environment its flags came
    from (a supervisor starts its workers with them), and, in a worker, its `WorkerLaunch`."""

    argv: list[str]
    environ: Mapping[str, str]
    launch: WorkerLaunch | None

    def worker_environment(self) -> dict[str, str]:
        """The process environment, with the flag variables this process was given."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
        return env | {k: v for k, v in self.environ.items() if k.startswith(ENV_PREFIX)}


def _run(args: argparse.Namespace, level: str, command: _Command) -> int:
    """One run: alone, as the supervisor of --workers N, or as one of its workers."""
    log = logging.getLogger("ipfix_antrea.collector")
    sinks: list[Sink] = []
    signals = EarlySignals()
    launch = command.launch
    status_interval = 0 if level in ("warning", "error") or launch else args.status_interval
    try:
        input_specs = [parse_input_spec(s) for s in args.inputs]
        sink_specs = [parse_sink_spec(s) for s in (args.sinks or ["stdout"])]
        allow = AllowList(args.allow)
        registry = _load_registry(args.registries)
        documents = make_builder(args.enrich, args)
        inputs = [open_input(spec, registry=registry, options=args) for spec in input_specs]
        listeners = [i for i in inputs if isinstance(i, Listener)]
        workers = launch.count if launch else _worker_count(args.workers, inputs)
        runner: Collector | Supervisor
        if workers > 1 and not launch:
            # The supervisor: its workers open the sinks (each its own) and run the inputs.
            runner = Supervisor(command.argv, workers, listeners, [str(spec) for spec in sink_specs],
                                environ=command.worker_environment(), status_interval=status_interval,
                                metrics_listen=args.metrics_listen, max_exporters=args.metrics_exporters)
        else:
            if launch:  # a worker: the supervisor bound the listeners' sockets, in --input order
                for listener, fd in zip(listeners, launch.sockets, strict=True):
                    listener.adopt(socket.socket(fileno=fd), launch.info)
            context = SinkContext(registry, documents.fields, launch.info if launch else None)
            for spec in sink_specs:
                sinks.append(open_sink(spec, args, context))
            runner = Collector(inputs, sinks, documents=documents, allow=allow, queue_records=args.queue_size,
                               batch_size=args.batch_size, flush_interval=args.flush_interval,
                               status_interval=status_interval,
                               metrics_listen=None if launch else args.metrics_listen,
                               max_exporters=args.metrics_exporters, announce=not launch)
    except (InputError, SinkError, _UsageError, ValueError) as exc:
        log.error("%s", exc)
        _close_quietly(sinks)
        signals.restore()
        return EXIT_USAGE

    if allow and not launch:
        log.info("accepting exporters from %s only", allow)
    signals.hand_over(runner)
    if launch and isinstance(runner, Collector):  # the supervisor gets the numbers and says what happened
        return exit_status(asyncio.run(serve_as_worker(runner, socket.socket(fileno=launch.channel))))
    summary = runner.run()  # its loop's handlers replace ours, and reset them at the end
    if isinstance(runner, Supervisor) and runner.failed_start is not None:
        return runner.failed_start  # a worker could not start, and said why
    if summary.output_closed:
        _silence_stdout()
    if level in ("debug", "info"):
        for line in summary.lines():
            print(line, file=sys.stderr)
    return exit_status(summary)


def _worker_count(workers: int | str, inputs: Sequence[Input | Listener]) -> int:
    """--workers as a number of processes. Files and captures are read by one process: with
    them, ``auto`` is 1 and a number above 1 is refused."""
    finite = [i for i in inputs if not isinstance(i, Listener)]
    if isinstance(workers, str):  # auto
        return 1 if finite else available_cpus()
    if workers > 1 and finite:
        raise _UsageError(f"--workers {workers}: {finite[0].name}: files and captures are read by one "
                          "process; read them without --workers (it applies to network inputs)")
    return workers


# --------------------------------------------------------------------------------------------
# ipfix-collect setup

SETUP_PROG = f"{PROG} setup"


def build_setup_parser() -> argparse.ArgumentParser:
    """``ipfix-collect setup``: the index template into Elasticsearch, the dashboards into Kibana."""
    parser = _Parser(
        prog=SETUP_PROG,
        description="Install the index template for flow documents into Elasticsearch and, with\n"
        "--kibana, import the data view and dashboards that ship with ipfix-collect into Kibana.\n"
        "Safe to run again (an upgrade updates both). The collector's Elasticsearch sink installs\n"
        "the same template itself at start; setup is for Kibana, and for running it once ahead.",
        epilog="every flag can be set as IPFIX_COLLECT_<FLAG> (e.g. IPFIX_COLLECT_ES_PASSWORD).\n"
        "exit status: 0 done; 1 Elasticsearch or Kibana could not be reached in time or refused\n"
        "(the message says which and why); 2 bad command line.\n\n"
        f"example:\n  {SETUP_PROG} --elasticsearch https://es:9200 --es-user elastic --es-ca ca.pem \\\n"
        f"      --kibana http://kibana:5601 --wait 300",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--elasticsearch", required=True, metavar="URL[,URL...]",
                        help="the Elasticsearch cluster the collector writes to")
    parser.add_argument("--kibana", metavar="URL", help="Kibana to import the dashboards into (default: "
                        "none, only the index template is installed)")
    parser.add_argument("--kibana-space", metavar="ID", help="Kibana space to import into (default: the default space)")
    parser.add_argument("--kibana-ca", metavar="PEM", help="CA certificate(s) for Kibana's TLS certificate")
    parser.add_argument("--kibana-insecure", action="store_true", help="do not verify Kibana's TLS certificate")
    parser.add_argument("--dashboards", metavar="NDJSON", help="saved objects to import instead of the "
                        "packaged ones (a Kibana export file)")
    parser.add_argument("--wait", type=_non_negative_float, default=0.0, metavar="SECONDS",
                        help="keep trying this long while Elasticsearch or Kibana is not up yet "
                        "(default 0: fail at once); credentials or objects refused fail at once")
    parser.add_argument("--registry", dest="registries", action="append", metavar="CSV", default=[],
                        help="extra information-element definitions, as for the collector: their "
                        "fields are mapped by type; repeatable")
    parser.add_argument("--enrich", type=_enrichment, default=DEFAULT_ENRICH, metavar="NAME[,NAME...]",
                        help=f"the collector's --enrich: whose derived fields to map (default "
                        f"{','.join(DEFAULT_ENRICH)})")
    parser.add_argument("--log-level", choices=LOG_LEVELS, default="info",
                        help="least severe messages shown on stderr (default info)")
    es = parser.add_argument_group("Elasticsearch connection and index (as for the collector's sink; "
                                   "the same credentials log in to Kibana)")
    add_index_arguments(es)
    add_connection_arguments(es)
    return parser


def _setup(args: argparse.Namespace) -> int:
    from .kibana import KibanaClient, KibanaError
    from .provision import import_dashboards, install_template, read_dashboards
    from .sinks.es_mapping import index_patterns_for
    from .sinks.es_options import ElasticsearchOptions, parse_hosts

    handler = _setup_logging(args.log_level)
    log = logging.getLogger("ipfix_antrea.setup")
    try:
        try:
            registry = _load_registry(args.registries) or _default_registry()
            settings = ElasticsearchOptions.from_namespace(args)
            settings.check("elasticsearch")
            hosts = parse_hosts(args.elasticsearch)
            dashboards = read_dashboards(args.dashboards) if args.kibana else b""
            kibana = KibanaClient(args.kibana, user=settings.user, password=settings.password,
                                  api_key=settings.api_key, ca=args.kibana_ca, insecure=args.kibana_insecure,
                                  timeout=settings.timeout, space=args.kibana_space) if args.kibana else None
        except (_UsageError, SinkError, KibanaError, ValueError) as exc:
            log.error("%s", exc)
            return EXIT_USAGE
        except OSError as exc:
            log.error("--dashboards %s: cannot read: %s", args.dashboards, exc.strerror or exc)
            return EXIT_USAGE
        try:
            install_template(hosts, settings, registry, make_builder(args.enrich).fields, wait=args.wait)
            patterns = index_patterns_for(settings.index)
            log.info("index template %r installed for %s", settings.template_name, ", ".join(patterns))
            if kibana is not None:
                result = import_dashboards(kibana, dashboards, wait=args.wait, index_patterns=patterns)
                log.info("%d saved objects imported into Kibana at %s", result.success_count, kibana.url)
        except (SinkError, KibanaError) as exc:
            log.error("%s", exc)
            return EXIT_SETUP_FAILED
        return EXIT_OK
    finally:
        logging.getLogger("ipfix_antrea").removeHandler(handler)


def _default_registry() -> Registry:
    from ipfix_antrea import default_registry

    return default_registry()


def _silence_stdout() -> None:
    # The reader of our stdout went away (`| head`): point fd 1 at /dev/null so the interpreter's
    # final flush does not raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def _close_quietly(sinks: Sequence[Sink]) -> None:
    for s in sinks:
        with contextlib.suppress(Exception):
            s.close()


def command() -> None:
    """The ``ipfix-collect`` console script: `main`, as a process."""
    # What exists now (modules, the registry) lives as long as the process: keep it out of the
    # garbage collector's scans, which otherwise cost about 5% of a file's run.
    gc.freeze()
    sys.exit(main())


if __name__ == "__main__":
    command()
