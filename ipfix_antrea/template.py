"""Templates, and the record decoder compiled for each of them.

Decoding data records field by field through ``construct`` runs at about 9k records/s, far too
slow for a collector. When a template arrives we instead generate one Python function for it:
runs of fixed-length fields become a single precompiled ``struct.unpack_from`` call, each
variable-length field a few lines that read its RFC 7011 §7 length prefix, and conversions
(addresses to text, NTP timestamps to integers) are applied once the whole record is known to
fit its set. ``to_dict`` is generated too: it copies a prototype dict of the template's keys
and stores the JSON-ready values into it. ``dict_maker(head)`` gives the same function with
other keys in front (a document's header fields), so a caller that nests or prefixes the field
dict builds one dict per record instead of two.
Compiled code is cached by field list, so the templates that every exporter re-sends (Antrea
refreshes them every 600 s over UDP) are compiled once per process.

The tests check these functions against :func:`ipfix_antrea.wire.data_record_struct`.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import DecodeError
from .registry import InformationElement
from .types import INLINE_NAMES, DataType, data_type
from .wire import VARIABLE_LENGTH

RecordDecoder = Callable[[bytes, int, int, Any], tuple[tuple[Any, ...], int]]
DictMaker = Callable[[tuple[Any, ...]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a template: an information element and its encoded length.

    ``length`` is 65535 for a variable-length field. When a template gives an element a length
    its type cannot have (an ipv4Address of 8 octets, say), the field is decoded as octets
    instead of being dropped: ``wire_type`` says which type is really used.
    """

    element: InformationElement
    length: int
    wire_type: str = field(init=False, compare=False)

    def __post_init__(self) -> None:
        dtype = data_type(self.element.data_type)
        fits = self.length == VARIABLE_LENGTH and dtype.natural_length is None
        fits = fits or (self.length != VARIABLE_LENGTH and dtype.valid_length(self.length))
        object.__setattr__(self, "wire_type", dtype.name if fits else "octetArray")

    @property
    def name(self) -> str:
        return self.element.name

    @property
    def is_variable(self) -> bool:
        return self.length == VARIABLE_LENGTH

    @property
    def length_mismatch(self) -> bool:
        """True when the template's length does not suit the element's type."""
        return self.wire_type != self.element.data_type

    @property
    def dtype(self) -> DataType:
        return data_type(self.wire_type)


class Template:
    """A (data or options) template: its fields, and the code compiled to decode its records."""

    __slots__ = ("template_id", "fields", "scope_count", "names", "min_length", "has_lists",
                 "decode", "to_dict", "_positions", "_keys", "_dict_factory", "_makers")

    def __init__(self, template_id: int, fields: Sequence[FieldSpec], scope_count: int = 0):
        self.template_id = template_id
        self.fields: tuple[FieldSpec, ...] = tuple(fields)
        self.scope_count = scope_count
        self.names: tuple[str, ...] = tuple(f.name for f in self.fields)
        #: The fewest octets one record can take (a variable-length field takes at least one).
        self.min_length = sum(1 if f.is_variable else f.length for f in self.fields)
        #: Whether records hold RFC 6313 lists (their decoding needs a context).
        self.has_lists = any(f.dtype.structured for f in self.fields)
        compiled = _compile(self.fields)
        #: ``decode(buf, offset, end, ctx) -> (values, new_offset)``; may raise DecodeError,
        #: struct.error or IndexError on truncated input (the session turns these into DecodeError).
        self.decode: RecordDecoder = compiled[0]
        self._dict_factory: Callable[[dict[str, Any]], DictMaker] = compiled[1]
        self._keys: tuple[str, ...] = compiled[2]
        #: ``to_dict(values) -> dict``: the JSON-ready field dict of one record.
        self.to_dict: DictMaker = self._dict_factory(dict.fromkeys(self._keys))
        self._makers: dict[tuple[tuple[str, Any], ...], DictMaker] = {}
        positions: dict[str, list[int]] = {}
        for index, name in enumerate(self.names):
            positions.setdefault(name, []).append(index)
        self._positions = positions

    @property
    def is_options(self) -> bool:
        return self.scope_count > 0

    def dict_maker(self, head: Mapping[str, Any]) -> DictMaker:
        """A function of a record's values that returns ``{**head, **self.to_dict(values)}``
        (same keys, same order, same values), built as one dict: a copy of a prototype that
        holds ``head`` and the field keys, then the field stores of `to_dict`.

        Makers are kept per template and ``head`` (whose values must then be hashable; an
        unhashable head gets a fresh maker each call), so asking again is a dict lookup.
        """
        try:
            key = tuple(head.items())
            maker = self._makers.get(key)
        except TypeError:  # an unhashable value in head: build one, do not cache it
            return self._dict_factory({**head, **dict.fromkeys(self._keys)})
        if maker is None:
            if len(self._makers) >= 64:
                self._makers.clear()
            # A head key that is also a field name keeps its place in front and takes the
            # field's value, exactly as {**head, **fields} does.
            maker = self._makers[key] = self._dict_factory({**head, **dict.fromkeys(self._keys)})
        return maker

    def positions(self, name: str) -> list[int]:
        """Indexes of the fields named ``name`` (several when an element repeats)."""
        return self._positions.get(name, [])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Template):
            return NotImplemented
        return (self.template_id, self.fields, self.scope_count) == (
            other.template_id, other.fields, other.scope_count)

    def __hash__(self) -> int:
        return hash((self.template_id, self.fields, self.scope_count))

    def __repr__(self) -> str:
        kind = f"options template (scope {self.scope_count})" if self.scope_count else "template"
        return f"<{kind} {self.template_id}: {len(self.fields)} fields>"


def _overrun(offset: int, end: int) -> DecodeError:
    return DecodeError(f"record runs {offset - end} octets past the end of its set", end)


@functools.lru_cache(maxsize=4096)
def _compile(fields: tuple[FieldSpec, ...]) -> tuple[RecordDecoder, Callable[[dict[str, Any]], DictMaker],
                                                    tuple[str, ...]]:
    """Generates the record decoder of a field list, the factory of its to_dict functions
    (``factory(prototype)``, see `_to_dict_source`) and the keys of its field dict."""
    from .structured import decode_structured  # structured imports this module

    namespace: dict[str, Any] = {"_overrun": _overrun, "_decode_structured": decode_structured,
                                 **INLINE_NAMES}
    body: list[str] = []
    results: list[tuple[str, str]] = []  # per field: (fast, safe) expression of its value
    run: list[tuple[int, str]] = []  # (field index, struct format) of the pending fixed run

    def flush_run() -> None:
        if not run:
            return
        if len(run) == 1 and run[0][1] == "B":  # a lone octet between variable-length fields
            body.append(f"    v{run[0][0]} = buf[off]")
            body.append("    off += 1")
            run.clear()
            return
        packer = struct.Struct(">" + "".join(fmt for _, fmt in run))
        name = f"_unpack{len(namespace)}"
        namespace[name] = packer.unpack_from
        targets = ", ".join(f"v{i}" for i, _ in run)
        body.append(f"    {targets}, = {name}(buf, off)")
        body.append(f"    off += {packer.size}")
        run.clear()

    for index, spec in enumerate(fields):
        dtype = spec.dtype
        var = f"v{index}"
        if spec.is_variable or dtype.structured:
            flush_run()
            if spec.is_variable:  # RFC 7011 §7: one length octet, or 255 and two more
                body += ["    n = buf[off]",
                         "    if n < 255:",
                         "        e = off + 1 + n",
                         f"        {var} = buf[off + 1:e]",
                         "        off = e",
                         "    else:",
                         "        n = (buf[off + 1] << 8) | buf[off + 2]",
                         f"        {var} = buf[off + 3:off + 3 + n]",
                         "        off += n + 3"]
            else:
                body += [f"    {var} = buf[off:off + {spec.length}]",
                         f"    off += {spec.length}"]
        else:
            run.append((index, dtype.unpack_format(spec.length)))
        if dtype.structured:
            namespace[f"_spec{index}"] = spec
            expression = f"_decode_structured(_spec{index}, {var}, ctx)"
            results.append((expression, expression))
            continue
        convert = dtype.converter(spec.length)
        inline = dtype.inline(spec.length)
        if convert is None:
            results.append((var, var))
        elif inline is not None:
            results.append((inline[0].format(var), inline[1].format(var)))
        else:
            namespace[f"_conv{index}"] = convert
            results.append((f"_conv{index}({var})", f"_conv{index}({var})"))
    flush_run()

    def values(which: int) -> str:
        items = [r[which] for r in results]
        return f"({', '.join(items)}{',' if len(items) == 1 else ''})"

    source = ["def decode(buf, off, end, ctx):", *body,
              "    if off > end:",
              "        raise _overrun(off, end)"]
    if values(0) == values(1):
        source.append(f"    return {values(0)}, off")
    else:  # strings decode fast as strict UTF-8; invalid bytes take the replacing path
        source += ["    try:",
                   f"        return {values(0)}, off",
                   "    except UnicodeDecodeError:",
                   f"        return {values(1)}, off"]
    to_dict_source, keys = _to_dict_source(fields, namespace)
    source += ["", *to_dict_source]
    exec(compile("\n".join(source), f"<ipfix template of {len(fields)} fields>", "exec"), namespace)
    return namespace["decode"], namespace["make_to_dict"], keys


def _to_dict_source(fields: tuple[FieldSpec, ...], namespace: dict[str, Any]) -> tuple[list[str], tuple[str, ...]]:
    """The source of ``make_to_dict(prototype)``, which returns a to_dict function: the field
    dict, JSON-rendered, in a copy of ``prototype``; a repeated element gets a list. Also the
    field keys, in template order.

    Copying a prototype dict that already holds every key, then storing into it, costs half of
    building a dict of that size from scratch (keys are hashed and laid out once, at compile
    time), and keeps the keys in template order. The prototype is a parameter so that keys put
    in front of the field keys (`Template.dict_maker`) cost nothing per record either.
    """
    by_name: dict[str, list[str]] = {}
    for index, spec in enumerate(fields):
        dtype = spec.dtype
        value = f"values[{index}]"
        inline = dtype.json_inline()
        if dtype.structured:
            value = f"{value}.to_json()"
        elif inline is not None:
            value = inline.format(value)
        elif dtype.to_json is not None:
            namespace[f"_json{index}"] = dtype.to_json
            value = f"_json{index}({value})"
        by_name.setdefault(spec.name, []).append(value)
    stores = [f"        d[{name!r}] = {vals[0] if len(vals) == 1 else '[' + ', '.join(vals) + ']'}"
              for name, vals in by_name.items()]
    source = ["def make_to_dict(_prototype):",
              "    def to_dict(values):",
              "        d = _prototype.copy()", *stores, "        return d",
              "    return to_dict"]
    return source, tuple(by_name)
