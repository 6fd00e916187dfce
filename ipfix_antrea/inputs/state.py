"""UDP templates on disk (`--state-dir DIR`), so that they survive a restart of the collector.

UDP exporters send each template once and then only every few minutes (Antrea: 600 s; some
routers: 30 min). A collector that restarts has lost them, and drops every data set until the
next refresh. So each UDP input keeps its exporters' templates in a file of its own,
`DIR/udp-<host>-<port>.json`, and reads it back at start.

What is stored is the templates' wire form, not a pickle: per exporter (address and port, or
address alone with `--udp-template-scope address`) and observation domain, the template records'
bytes as the exporter sent them (`Session.export_templates`), in hex, with their age. Loading
parses them with the same construct declaration and checks as templates that arrive
(`Session.import_templates`), so a record that is not valid is refused like one on the wire. The
file itself is checked before anything in it is used: JSON of our format and version, saved with
the same template scope, every field of the expected type. A file that is not is reported and
ignored (templates are then learned again from the exporters), never a crash.

Ages are seconds since the exporter last sent the template, at `saved_at` (wall clock): after
a restart they go on counting, so a template whose lifetime ran out while we were down is not
used, and the others expire when they would have.

Writing is atomic: a temporary file in the same directory, written, fsync'ed, renamed over the
old one, and the directory fsync'ed; a reader (or a crash) sees the old file or the new one,
never half of one. A lock file (flock) keeps two collectors from sharing one state file.

Worker processes (`--workers N`): each writes a file of its own, `udp-<host>-<port>-wK.json`.
SO_REUSEPORT may give an exporter to another worker after a restart (or with another number of
workers), so every process reads every file of its input, its own, the other workers' and the
one a collector alone writes, and of each template (exporter, domain, template id) takes the
one the exporter sent last. A file that cannot be used is reported and skipped; the others
still count.
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import json
import math
import os
import re
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from ipfix_antrea import SavedTemplate

from ..workers import WorkerInfo
from . import InputError

__all__ = ["FORMAT", "VERSION", "ExporterKey", "StateError", "TemplateStore", "check_state_dir"]

FORMAT = "ipfix-antrea udp templates"
VERSION = 1

#: An exporter as the UDP input keys it: (address, port), or (address, None) when templates are
#: scoped by address.
ExporterKey = tuple[str, "int | None"]


class StateError(Exception):
    """A state file that cannot be used: unreadable, corrupt, foreign, or of another scope."""


def check_state_dir(directory: str) -> None:
    """Creates ``directory`` if needed and checks that it is writable; InputError if not (a bad
    command line: it is found before anything starts)."""
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as exc:
        raise InputError(f"--state-dir {directory}: cannot create: {exc.strerror or exc}") from None
    if not os.access(directory, os.W_OK | os.X_OK):
        raise InputError(f"--state-dir {directory}: not writable")


class TemplateStore:
    """The state file of one UDP input: load at start, save on a timer and at shutdown.

    ``saving`` is serialised (a thread lock), so that the last snapshot taken is the last one
    written even when a timed save is still running at shutdown.
    """

    def __init__(self, directory: str, host: str, port: int, scope: str, worker: WorkerInfo | None = None) -> None:
        stem = "udp-" + re.sub(r"[^A-Za-z0-9.-]", "_", host or "any") + f"-{port}"
        alone = os.path.join(directory, stem + ".json")
        self.path = alone if worker is None else worker.path(alone)  # the file this process writes
        self.scope = scope
        self._directory = directory
        self._stem = stem
        self._lock_path = os.path.splitext(self.path)[0] + ".lock"
        self.read_from = self.path  # the files `load` read, for messages
        self._lock_fd: int | None = None
        self._writing = threading.Lock()

    # ---------------------------------------------------------------- lock

    def lock(self) -> None:
        """Takes the state file for this process; InputError when another collector has it."""
        try:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise InputError(f"{self._lock_path}: cannot open: {exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise InputError(f"{self.path} is in use by another collector (give each its own "
                             "--state-dir)") from None
        self._lock_fd = fd

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing releases the flock
            self._lock_fd = None

    # ---------------------------------------------------------------- load

    def paths(self) -> list[str]:
        """Every state file of this input that exists: a collector's alone and each worker's."""
        pattern = re.compile(re.escape(self._stem) + r"(-w\d+)?\.json")
        try:
            names = os.listdir(self._directory)
        except OSError:
            return []
        return sorted(os.path.join(self._directory, n) for n in names if pattern.fullmatch(n))

    def load(self, wall_now: float) -> tuple[dict[ExporterKey, list[SavedTemplate]], list[tuple[str, StateError]]]:
        """The templates saved per exporter in every file of the input (`paths`), with their ages
        at ``wall_now``; of each template (exporter, domain, template id) saved in several files,
        the one sent last. Also the files that cannot be used, each with why (they are skipped)."""
        newest: dict[ExporterKey, dict[tuple[int, bool, bytes], SavedTemplate]] = {}
        problems = []
        paths = self.paths()
        self.read_from = ", ".join(paths) or self.path
        for path in paths:
            try:
                saved = self.load_file(path, wall_now)
            except StateError as exc:
                problems.append((path, exc))
                continue
            for key, templates in saved.items():
                kept = newest.setdefault(key, {})
                for t in templates:
                    which = (t.observation_domain_id, t.options, t.record[:2])  # [:2]: the template id
                    if which not in kept or (t.age or 0.0) < (kept[which].age or 0.0):
                        kept[which] = t
        return {key: list(kept.values()) for key, kept in newest.items()}, problems

    def load_file(self, path: str, wall_now: float) -> dict[ExporterKey, list[SavedTemplate]]:
        """The templates saved per exporter in the file ``path``, with their ages at
        ``wall_now``; empty when there is no file. Raises StateError for a file that cannot be used."""
        try:
            with open(path, "rb") as f:
                text = f.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read: {exc.strerror or exc}") from None
        try:
            state = json.loads(text)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StateError(f"not JSON (corrupt?): {exc}") from None
        if not isinstance(state, dict) or state.get("format") != FORMAT:
            raise StateError(f"not a state file of ipfix-collect (no \"format\": \"{FORMAT}\")")
        if state.get("version") != VERSION:
            raise StateError(f"state file version {state.get('version')!r}; this collector reads {VERSION}")
        if state.get("scope") != self.scope:
            raise StateError(f"saved with --udp-template-scope {state.get('scope')}, not {self.scope}")
        saved_at = _number(state, "saved_at", "the file")
        waited = max(wall_now - saved_at, 0.0)  # a clock set back does not make templates younger
        exporters: dict[ExporterKey, list[SavedTemplate]] = {}
        for n, entry in enumerate(_list(state, "exporters", "the file")):
            where = f"exporter {n}"
            if not isinstance(entry, dict):
                raise StateError(f"{where} is not an object")
            key = (_address(entry, where), _port(entry, where, self.scope))
            exporters[key] = [_template(t, f"{where}, template {i}", waited)
                              for i, t in enumerate(_list(entry, "templates", where))]
        return exporters

    # ---------------------------------------------------------------- save

    def save(self, exporters: Mapping[ExporterKey, list[SavedTemplate]], wall_now: float) -> None:
        """Writes the templates of ``exporters`` (ages as of ``wall_now``) atomically. Raises
        OSError when the file cannot be written; the previous file is then left as it was."""
        state = {
            "format": FORMAT, "version": VERSION, "scope": self.scope, "saved_at": wall_now,
            "exporters": [
                {"address": address, "port": port,
                 "templates": [{"domain": t.observation_domain_id, "options": t.options,
                                "age": t.age, "record": t.record.hex()} for t in templates]}
                for (address, port), templates in exporters.items() if templates],
        }
        data = json.dumps(state, indent=1).encode()
        directory = os.path.dirname(self.path) or "."
        with self._writing:
            fd, temporary = tempfile.mkstemp(dir=directory, prefix=".udp-", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    # The rename is durable once the directory is on disk too.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -------------------------------------------------------------------- checking what was read


def _list(obj: dict[str, Any], name: str, where: str) -> list[Any]:
    value = obj.get(name)
    if not isinstance(value, list):
        raise StateError(f"{where}: {name!r} is not a list")
    return value


def _number(obj: dict[str, Any], name: str, where: str) -> float:
    value = obj.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StateError(f"{where}: {name!r} is not a number")
    return float(value)


def _address(entry: dict[str, Any], where: str) -> str:
    value = entry.get("address")
    try:
        # a string, as saved: ip_address would also take a number (JSON `1` -> 0.0.0.1)
        return str(ipaddress.ip_address(value if isinstance(value, str) else ""))
    except ValueError:
        raise StateError(f"{where}: address {value!r} is not an IP address") from None


def _port(entry: dict[str, Any], where: str, scope: str) -> int | None:
    value = entry.get("port")
    if scope == "address":
        if value is not None:
            raise StateError(f"{where}: a port ({value!r}) in a file of address scope")
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 0xFFFF:
        raise StateError(f"{where}: port {value!r} is not a port number")
    return value


def _template(obj: object, where: str, waited: float) -> SavedTemplate:
    if not isinstance(obj, dict):
        raise StateError(f"{where} is not an object")
    domain = obj.get("domain")
    if isinstance(domain, bool) or not isinstance(domain, int) or not 0 <= domain < 1 << 32:
        raise StateError(f"{where}: domain {domain!r} is not an observation domain id")
    options = obj.get("options")
    if not isinstance(options, bool):
        raise StateError(f"{where}: 'options' is not true or false")
    age = _number(obj, "age", where)
    if age < 0:
        raise StateError(f"{where}: age {age} is negative")
    record = obj.get("record")
    try:
        data = bytes.fromhex(record) if isinstance(record, str) else None
    except ValueError:
        data = None
    if data is None:
        raise StateError(f"{where}: record is not hex")
    return SavedTemplate(domain, data, options, age + waited)
