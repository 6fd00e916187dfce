"""Information elements: what the numbers in a template mean.

A template names its fields only by (enterprise number, element id); the registry turns those into
an :class:`InformationElement` carrying a name and an RFC 7011 abstract data type, which is what
the decoder needs to turn bytes into values and what the encoder needs to turn names into field
specifiers.

Strategy:

* The data is generated, never hand-typed. ``ipfix_antrea/data/`` holds the IANA registry and the
  two Antrea tables as CSV (see its README for origin and licence); they are parsed with
  :meth:`Registry.load_csv`, the same code path users get for their own elements. The RFC 5103
  reverse elements (enterprise 29305) are derived from the IANA table.
* Lookups are two dict probes: one index keyed by ``(enterprise, element_id)`` for the decoder,
  one by name for the encoder and for users. Elements are frozen, so registries can share them
  and :meth:`Registry.copy` is a handful of dict copies.
* :func:`default_registry` builds the master registry once, on first use, and hands out copies:
  a session that adds its own elements never affects another one.
* Unknown elements never fail a lookup. :meth:`Registry.lookup` invents an ``octetArray``
  element named ``en<enterprise>:id<id>`` (the form ipfixcol2 uses) and caches it, so a template
  with elements nobody told us about still decodes, and the same object comes back every time.
* Names can repeat across enterprises (Antrea's legacy 55829 table reuses the 56506 names). The
  name index points to the element added last; load order in :func:`default_registry` makes the
  current Antrea enterprise 56506 win, while ``get(55829, id)`` still reaches the legacy one.
"""

from __future__ import annotations

import csv
import difflib
import io
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import resources
from typing import TextIO

from .types import DATA_TYPES

__all__ = [
    "ABSTRACT_TYPES",
    "ANTREA_ENTERPRISE",
    "ANTREA_LEGACY_ENTERPRISE",
    "MAX_UNKNOWN_CACHED",
    "IANA_ENTERPRISE",
    "NON_REVERSIBLE_IDS",
    "REVERSE_ENTERPRISE",
    "InformationElement",
    "Registry",
    "default_registry",
]

#: Enterprise number 0: elements assigned by IANA.
IANA_ENTERPRISE = 0
#: RFC 5103 "Reverse Information Element Private Enterprise Number".
REVERSE_ENTERPRISE = 29305
#: Antrea's IANA-assigned private enterprise number (Antrea v0.11 and later).
ANTREA_ENTERPRISE = 56506
#: The unregistered placeholder Antrea used in v0.9-v0.10.
ANTREA_LEGACY_ENTERPRISE = 55829
#: Unknown elements a registry remembers (`Registry.lookup`); more are made afresh each time.
MAX_UNKNOWN_CACHED = 4096

#: The abstract data types of RFC 7011 section 6.1 plus the structured types of RFC 6313.
ABSTRACT_TYPES: frozenset[str] = frozenset(DATA_TYPES)

# RFC 5103 section 6.1: these IANA elements describe the exporting or metering process, the
# template or the record itself rather than one direction of the traffic, so they "are not
# reversible, and MUST NOT be transmitted with the Reverse Information Element PEN". The RFC
# groups them as identifiers, process configuration, process statistics, and two others.
_NON_REVERSIBLE: dict[int, str] = {
    # identifiers
    148: "flowId",
    145: "templateId",
    149: "observationDomainId",
    137: "commonPropertiesId",
    # metering and exporting process configuration
    130: "exporterIPv4Address",
    131: "exporterIPv6Address",
    217: "exporterTransportPort",
    211: "collectorIPv4Address",
    212: "collectorIPv6Address",
    213: "exportInterface",
    214: "exportProtocolVersion",
    215: "exportTransportProtocol",
    216: "collectorTransportPort",
    173: "flowKeyIndicator",
    # metering and exporting process statistics
    41: "exportedMessageTotalCount",
    40: "exportedOctetTotalCount",
    42: "exportedFlowRecordTotalCount",
    163: "observedFlowTotalCount",
    164: "ignoredPacketTotalCount",
    165: "ignoredOctetTotalCount",
    166: "notSentFlowTotalCount",
    167: "notSentPacketTotalCount",
    168: "notSentOctetTotalCount",
    # miscellaneous
    210: "paddingOctets",
    239: "biflowDirection",
}

#: IANA element ids that have no RFC 5103 reverse element (RFC 5103 section 6.1).
NON_REVERSIBLE_IDS: frozenset[int] = frozenset(_NON_REVERSIBLE)

_MAX_ELEMENT_ID = 0x7FFF  # 15 bits: the top bit of the field specifier is the enterprise bit
_MAX_ENTERPRISE = 0xFFFFFFFF
_MAX_LENGTH = 0xFFFF  # 65535 = variable length
_UNKNOWN_NAME = re.compile(r"en(\d+):id(\d+)")


@dataclass(frozen=True, slots=True)
class InformationElement:
    """One information element: what a (enterprise, element id) pair in a template means.

    ``data_type`` is an RFC 7011 / RFC 6313 abstract type name (see :data:`ABSTRACT_TYPES`);
    ``length`` is the element's natural encoded length (65535 = variable), or ``None`` to take it
    from the type. ``semantics``, ``units`` and ``status`` are informational, as IANA spells them.
    Raises :class:`ValueError` on an unknown type or an out-of-range number.
    """

    name: str
    element_id: int
    enterprise: int = 0
    data_type: str = "octetArray"
    semantics: str = ""
    units: str = ""
    status: str = ""
    length: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"information element name must be a non-empty string, not {self.name!r}")
        if self.data_type not in ABSTRACT_TYPES:
            raise ValueError(
                f"information element {self.name!r}: unknown data type {self.data_type!r}; "
                f"expected an RFC 7011/6313 abstract type: {', '.join(sorted(ABSTRACT_TYPES))}"
            )
        if not _is_int_in(self.element_id, _MAX_ELEMENT_ID):
            raise ValueError(
                f"information element {self.name!r}: element_id must be an integer in "
                f"0..{_MAX_ELEMENT_ID}, not {self.element_id!r}"
            )
        if not _is_int_in(self.enterprise, _MAX_ENTERPRISE):
            raise ValueError(
                f"information element {self.name!r}: enterprise must be an integer in "
                f"0..{_MAX_ENTERPRISE}, not {self.enterprise!r}"
            )
        if self.length is not None and not _is_int_in(self.length, _MAX_LENGTH):
            raise ValueError(
                f"information element {self.name!r}: length must be None or an integer in "
                f"0..{_MAX_LENGTH}, not {self.length!r}"
            )

    @property
    def key(self) -> tuple[int, int]:
        """``(enterprise, element_id)``: the element's identity on the wire."""
        return (self.enterprise, self.element_id)


def _is_int_in(value: object, maximum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= maximum


class Registry:
    """A mutable set of information elements, indexed by ``(enterprise, id)`` and by name.

    Adding an element whose ``(enterprise, element_id)`` is already present replaces it. Several
    elements may share a name (in different enterprises); :meth:`by_name` returns the one added
    last.
    """

    __slots__ = ("_by_key", "_by_name", "_unknown", "_changes")

    def __init__(self, elements: Iterable[InformationElement] = ()) -> None:
        self._changes = 0
        self._by_key: dict[tuple[int, int], InformationElement] = {}
        # name -> the element of that name added last. Insertion order of _by_key is add order,
        # which is what add() falls back on when a name's element is replaced.
        self._by_name: dict[str, InformationElement] = {}
        # (enterprise, id) -> the synthetic element lookup() invented for an unknown key.
        self._unknown: dict[tuple[int, int], InformationElement] = {}
        for ie in elements:
            self.add(ie)

    # -- mutation ---------------------------------------------------------------------------

    def add(self, ie: InformationElement) -> None:
        """Add ``ie``, replacing any element with the same ``(enterprise, element_id)``.

        Afterwards :meth:`by_name` of ``ie.name`` returns ``ie``. If the replaced element had
        another name, that name falls back to the most recently added element still bearing it.
        """
        if not isinstance(ie, InformationElement):
            raise TypeError(f"Registry.add() takes an InformationElement, not {type(ie).__name__}")
        key = (ie.enterprise, ie.element_id)
        self._changes += 1
        # pop then insert: iteration order stays "order added", replacements count as new.
        old = self._by_key.pop(key, None)
        self._by_key[key] = ie
        if old is not None and old.name != ie.name and self._by_name.get(old.name) is old:
            # Rare (a run-time replacement under a new name): rescan for a shadowed namesake.
            heir = next((e for e in reversed(self._by_key.values()) if e.name == old.name), None)
            if heir is None:
                del self._by_name[old.name]
            else:
                self._by_name[old.name] = heir
        self._by_name[ie.name] = ie
        self._unknown.pop(key, None)

    def load_csv(self, source: str | os.PathLike[str] | TextIO, enterprise: int | None = None) -> int:
        """Add the elements described by a CSV file; return how many were added.

        ``source`` is a path or an open text stream. The header must name the columns
        ``elementId``, ``name`` and ``dataType``; ``dataTypeSemantics``, ``units``, ``status``,
        ``length`` and ``enterprise`` are optional and other columns are ignored. ``enterprise``,
        when given, overrides (or stands in for) the ``enterprise`` column; without either,
        elements are IANA's (0). Empty ``length`` means "from the type".

        The file is checked whole before anything is added: a bad row raises :class:`ValueError`
        naming the source and line, and leaves the registry unchanged.
        """
        if isinstance(source, (str, os.PathLike)):
            label = os.fspath(source)
            with open(source, encoding="utf-8-sig", newline="") as stream:
                elements = _parse_csv(stream, label, enterprise)
        else:
            label = str(getattr(source, "name", "<stream>"))
            elements = _parse_csv(source, label, enterprise)
        for ie in elements:
            self.add(ie)
        return len(elements)

    def copy(self) -> Registry:
        """An independent registry with the same elements (elements are shared: they are frozen)."""
        new = Registry.__new__(Registry)
        new._changes = 0
        new._by_key = self._by_key.copy()
        new._by_name = self._by_name.copy()
        new._unknown = self._unknown.copy()
        return new

    # -- queries ----------------------------------------------------------------------------

    @property
    def changes(self) -> int:
        """How many times an element was added: a session that keeps what it resolved through
        this registry (templates) knows by this number whether its resolution still holds."""
        return self._changes

    def get(self, enterprise: int, element_id: int) -> InformationElement | None:
        """The element registered under ``(enterprise, element_id)``, or ``None``."""
        return self._by_key.get((enterprise, element_id))

    def lookup(self, enterprise: int, element_id: int) -> InformationElement:
        """Like :meth:`get`, but never fails (for any number a field specifier can carry).

        An unknown element comes back as an ``octetArray`` element named
        ``en<enterprise>:id<element_id>``; it is not added: it does not appear in iteration,
        ``len()`` or ``in``. The first `MAX_UNKNOWN_CACHED` unknown elements are cached (the same
        object every time); past that, each lookup makes an equal one, so that an exporter
        sending ever new numbers cannot grow the registry without bound.
        """
        key = (enterprise, element_id)
        ie = self._by_key.get(key)
        if ie is not None:
            return ie
        ie = self._unknown.get(key)
        if ie is None:
            ie = InformationElement(f"en{enterprise}:id{element_id}", element_id, enterprise)
            if len(self._unknown) < MAX_UNKNOWN_CACHED:
                self._unknown[key] = ie
        return ie

    def by_name(self, name: str) -> InformationElement:
        """The element called ``name`` (the one added last if several share it).

        Also accepts ``en<enterprise>:id<id>``, resolved through :meth:`lookup`: the registered
        element if there is one, else the synthetic ``octetArray`` element. Raises
        :class:`KeyError` with close matches when the name is unknown.
        """
        ie = self._by_name.get(name)
        if ie is not None:
            return ie
        if isinstance(name, str):
            m = _UNKNOWN_NAME.fullmatch(name)
            if m is not None:
                enterprise, element_id = int(m[1]), int(m[2])
                if enterprise <= _MAX_ENTERPRISE and element_id <= _MAX_ELEMENT_ID:
                    return self.lookup(enterprise, element_id)
                raise KeyError(
                    f"{name!r}: enterprise must be in 0..{_MAX_ENTERPRISE} and id in 0..{_MAX_ELEMENT_ID}"
                )
        close = difflib.get_close_matches(str(name), self._by_name, n=3)
        hint = f"; did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise KeyError(
            f"no information element named {name!r} in this registry{hint} "
            "(use 'en<enterprise>:id<id>' to name an element by number)"
        )

    def __contains__(self, item: object) -> bool:
        """``(enterprise, id) in reg``, ``name in reg`` (including ``en<E>:id<N>`` of a
        registered element) and ``ie in reg`` (that very element is registered under its key)."""
        if isinstance(item, tuple):
            return item in self._by_key
        if isinstance(item, str):
            if item in self._by_name:
                return True
            m = _UNKNOWN_NAME.fullmatch(item)
            return m is not None and (int(m[1]), int(m[2])) in self._by_key
        if isinstance(item, InformationElement):
            return self._by_key.get((item.enterprise, item.element_id)) == item
        return False

    def __iter__(self) -> Iterator[InformationElement]:
        """The registered elements (not the synthetic unknown ones) in the order added; a
        replacement counts as newly added."""
        return iter(self._by_key.values())

    def __len__(self) -> int:
        return len(self._by_key)

    def __repr__(self) -> str:
        return f"<Registry of {len(self._by_key)} information elements>"


def _parse_csv(stream: TextIO, label: str, enterprise: int | None) -> list[InformationElement]:
    reader = csv.DictReader(stream)
    columns = reader.fieldnames or []
    missing = [c for c in ("elementId", "name", "dataType") if c not in columns]
    if missing:
        raise ValueError(
            f"{label}: CSV header lacks required column(s) {', '.join(missing)} "
            f"(found: {', '.join(columns) or 'no header'})"
        )
    elements: list[InformationElement] = []
    for row in reader:
        line = reader.line_num
        try:
            if None in row:
                raise ValueError(f"{len(columns) + len(row[None])} cells for {len(columns)} columns")
            if any(row[c] is None for c in ("elementId", "name", "dataType")):
                raise ValueError(f"fewer cells than the {len(columns)} columns of the header")
            element_id = _int_cell(row, "elementId")
            if element_id is None:
                raise ValueError("elementId is empty")
            ent = enterprise if enterprise is not None else _int_cell(row, "enterprise")
            elements.append(
                InformationElement(
                    name=row["name"].strip(),
                    element_id=element_id,
                    enterprise=IANA_ENTERPRISE if ent is None else ent,
                    data_type=row["dataType"].strip(),
                    semantics=(row.get("dataTypeSemantics") or "").strip(),
                    units=(row.get("units") or "").strip(),
                    status=(row.get("status") or "").strip(),
                    length=_int_cell(row, "length"),
                )
            )
        except ValueError as exc:
            raise ValueError(f"{label}, line {line}: {exc}") from None
    return elements


def _int_cell(row: dict[str, str], column: str) -> int | None:
    """The integer in ``row[column]``; ``None`` when the cell is empty or the column absent."""
    text = (row.get(column) or "").strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not an integer") from None


def _reverse_name(name: str) -> str:
    return "reverse" + name[:1].upper() + name[1:]


def _reverse_elements(iana: Iterable[InformationElement]) -> list[InformationElement]:
    """The RFC 5103 reverse counterpart of every reversible IANA element."""
    return [
        InformationElement(
            name=_reverse_name(ie.name),
            element_id=ie.element_id,
            enterprise=REVERSE_ENTERPRISE,
            data_type=ie.data_type,
            semantics=ie.semantics,
            units=ie.units,
            status=ie.status,
            length=ie.length,
        )
        for ie in iana
        if ie.enterprise == IANA_ENTERPRISE and ie.element_id not in NON_REVERSIBLE_IDS
    ]


def _load_packaged(registry: Registry, filename: str, enterprise: int) -> int:
    # One name per joinpath(): namespace-package paths take no more (Python 3.11).
    data = resources.files(__package__ or "ipfix_antrea").joinpath("data").joinpath(filename)
    with io.TextIOWrapper(data.open("rb"), encoding="utf-8-sig", newline="") as stream:
        return registry.load_csv(stream, enterprise=enterprise)


def _build_master() -> Registry:
    reg = Registry()
    _load_packaged(reg, "iana.csv", IANA_ENTERPRISE)
    for ie in _reverse_elements(list(reg)):
        reg.add(ie)
    # Legacy before current, so that names shared by both resolve to 56506.
    _load_packaged(reg, "antrea_55829_legacy.csv", ANTREA_LEGACY_ENTERPRISE)
    _load_packaged(reg, "antrea_56506.csv", ANTREA_ENTERPRISE)
    return reg


_master: Registry | None = None
_master_lock = threading.Lock()


def default_registry() -> Registry:
    """A fresh, independent registry of the IANA, RFC 5103 reverse, Antrea 56506 and legacy
    Antrea 55829 elements. Changing it affects nobody else."""
    global _master
    if _master is None:
        with _master_lock:
            if _master is None:
                _master = _build_master()
    return _master.copy()
