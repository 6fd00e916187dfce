"""The RFC 7011 §6 abstract data types: wire encoding, Python values and JSON rendering.

Each type is one :class:`DataType` object that knows which field lengths are valid (RFC 7011
§6.2 reduced-size encoding included), how to unpack its bytes with :mod:`struct` (the compiled
record decoders splice these formats together), how to turn the unpacked value into the Python
value, how to encode a Python value, and how to render that value as JSON. Keeping all of this in
one table means the decoder, the encoder and the JSON output cannot disagree about a type.

Python values: integers, floats, ``bool``, ``str`` for addresses and strings, ``bytes`` for octet
arrays, and timestamps as integers in the unit of their type (seconds, milliseconds,
microseconds, nanoseconds since 1970), which keeps decoding cheap and loses no precision.
"""

from __future__ import annotations

import ipaddress
import math
import socket
import struct
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

# RFC 7011 §6.1.9-10: dateTimeMicroseconds/Nanoseconds use the NTP timestamp format (RFC 5905),
# seconds since 1900-01-01; this is the offset between the NTP and the Unix epoch.
NTP_EPOCH_OFFSET = 2_208_988_800

Converter = Callable[[Any], Any]


class DataType:
    """One abstract data type; subclasses override what differs."""

    #: RFC 7011 name of the type.
    name: str = ""
    #: Encoded length without reduced-size encoding; ``None`` for types of any length.
    natural_length: int | None = None
    #: True for the RFC 6313 structured types, which need the session's templates to decode.
    structured: bool = False

    def valid_length(self, length: int) -> bool:
        """Whether a template may give this type ``length`` octets (65535 = variable)."""
        return length == self.natural_length

    def unpack_format(self, length: int) -> str:
        """The :mod:`struct` format (without byte order) that reads ``length`` octets."""
        return f"{length}s"

    def converter(self, length: int) -> Converter | None:
        """Turns the unpacked value into the Python value; ``None`` means identity."""
        return None

    def inline(self, length: int) -> tuple[str, str] | None:
        """The converter as Python expressions of ``{}`` for compiled decoders to inline (saves
        a function call per field): a fast form, and a safe form that the decoder falls back to
        when the fast one raises UnicodeDecodeError. Names they use are in ``INLINE_NAMES``.
        ``None``: call :meth:`converter` instead."""
        return None

    def json_inline(self) -> str | None:
        """``to_json`` as an inline expression of ``{}`` (names in ``INLINE_NAMES``), or None."""
        return None

    def encode(self, value: Any, length: int) -> bytes:
        """The wire bytes of ``value`` in exactly ``length`` octets (never the varlen prefix)."""
        raise NotImplementedError

    #: Renders a Python value as JSON; ``None`` means the value is JSON already.
    to_json: Converter | None = None

    def decode(self, raw: bytes, field_length: int | None = None) -> Any:
        """The Python value of one field's content octets (slow path: lists, tests, tools).

        ``field_length`` is the template's length for the field (65535 for variable length);
        by default the length of ``raw``.
        """
        (value,) = struct.unpack(">" + self.unpack_format(len(raw)), raw)
        convert = self.converter(len(raw) if field_length is None else field_length)
        return convert(value) if convert is not None else value

    def __repr__(self) -> str:
        return f"<DataType {self.name}>"


_INT_FORMATS = {1: "b", 2: "h", 4: "i", 8: "q"}


class _Integer(DataType):
    def __init__(self, name: str, length: int, signed: bool):
        self.name = name
        self.natural_length = length
        self.signed = signed

    def valid_length(self, length: int) -> bool:
        # RFC 7011 §6.2: integers may be sent in fewer octets than their natural length.
        return 1 <= length <= (self.natural_length or 0)

    def unpack_format(self, length: int) -> str:
        fmt = _INT_FORMATS.get(length)
        if fmt is None:
            return f"{length}s"
        return fmt if self.signed else fmt.upper()

    def converter(self, length: int) -> Converter | None:
        if length in _INT_FORMATS:
            return None
        signed = self.signed
        return lambda raw: int.from_bytes(raw, "big", signed=signed)

    def encode(self, value: Any, length: int) -> bytes:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.name} needs an int, got {value!r}")
        try:
            return value.to_bytes(length, "big", signed=self.signed)
        except OverflowError:
            raise ValueError(f"{value} does not fit {self.name} in {length} octets") from None


def _json_float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


class _Float(DataType):
    def __init__(self, name: str, length: int):
        self.name = name
        self.natural_length = length

    def valid_length(self, length: int) -> bool:
        # RFC 7011 §6.2: float64 may be reduced to float32.
        return length == 4 or length == (self.natural_length or 0)

    def unpack_format(self, length: int) -> str:
        return "f" if length == 4 else "d"

    def encode(self, value: Any, length: int) -> bytes:
        return struct.pack(">f" if length == 4 else ">d", value)

    to_json = staticmethod(_json_float)


def _boolean(raw: int) -> bool | int:
    # RFC 7011 §6.1.5: 1 is true, 2 is false; anything else is kept as the octet's value.
    return True if raw == 1 else False if raw == 2 else raw


class _Boolean(DataType):
    name = "boolean"
    natural_length = 1

    def unpack_format(self, length: int) -> str:
        return "B"

    def converter(self, length: int) -> Converter | None:
        return _boolean

    def encode(self, value: Any, length: int) -> bytes:
        if isinstance(value, bool):
            return b"\x01" if value else b"\x02"
        return bytes([value])


def _mac(raw: bytes) -> str:
    return raw.hex(":")


class _MacAddress(DataType):
    name = "macAddress"
    natural_length = 6

    def converter(self, length: int) -> Converter | None:
        return _mac

    def encode(self, value: Any, length: int) -> bytes:
        raw = value if isinstance(value, bytes) else bytes.fromhex(str(value).replace(":", "").replace("-", ""))
        if len(raw) != 6:
            raise ValueError(f"not a MAC address: {value!r}")
        return raw


def _ipv6(raw: bytes) -> str:
    return socket.inet_ntop(socket.AF_INET6, raw)


# Flow records repeat the same few addresses (pods, nodes, services): remember their text.
_IPV4_TEXT: dict[bytes, str] = {}


def _ipv4(raw: bytes) -> str:
    text = _IPV4_TEXT.get(raw)
    if text is None:
        if len(_IPV4_TEXT) >= 65536:
            _IPV4_TEXT.clear()
        text = _IPV4_TEXT[raw] = socket.inet_ntoa(raw)
    return text


class _Address(DataType):
    def __init__(self, name: str, length: int):
        self.name = name
        self.natural_length = length
        self._convert: Converter = _ipv4 if length == 4 else _ipv6
        self._parse = ipaddress.IPv4Address if length == 4 else ipaddress.IPv6Address

    def converter(self, length: int) -> Converter | None:
        return self._convert

    def inline(self, length: int) -> tuple[str, str] | None:
        if length != 4:
            return None
        expression = "(_ipv4_text({0}) or _ipv4({0}))"
        return expression, expression

    def encode(self, value: Any, length: int) -> bytes:
        if isinstance(value, bytes) and len(value) == length:
            return value
        return self._parse(value).packed


def _utf8(raw: bytes) -> str:
    return str(raw, "utf-8", "replace")


def _utf8_fixed(raw: bytes) -> str:
    # A fixed-length string shorter than its field is padded with NUL octets by exporters.
    return str(raw.rstrip(b"\x00"), "utf-8", "replace")


class _String(DataType):
    name = "string"

    def valid_length(self, length: int) -> bool:
        return True

    def converter(self, length: int) -> Converter | None:
        return _utf8 if length == 65535 else _utf8_fixed

    def inline(self, length: int) -> tuple[str, str] | None:
        if length != 65535:
            return None
        return "{}.decode()", "str({}, 'utf-8', 'replace')"

    def encode(self, value: Any, length: int) -> bytes:
        raw = value.encode("utf-8") if isinstance(value, str) else bytes(value)
        if length == 65535:
            return raw
        if len(raw) > length:
            raise ValueError(f"string of {len(raw)} octets does not fit a {length}-octet field")
        return raw.ljust(length, b"\x00")


class _OctetArray(DataType):
    name = "octetArray"

    def valid_length(self, length: int) -> bool:
        return True

    def encode(self, value: Any, length: int) -> bytes:
        raw = bytes.fromhex(value) if isinstance(value, str) else bytes(value)
        if length != 65535 and len(raw) != length:
            raise ValueError(f"octetArray of {len(raw)} octets in a {length}-octet field")
        return raw

    to_json = staticmethod(bytes.hex)


_ISO_CACHE: dict[int, str] = {}
_ISO_SECONDS: dict[int, str] = {}  # complete dateTimeSeconds renderings, "Z" included


def _iso(seconds: int, fraction: str) -> str:
    # Records of one export carry the same few seconds over and over: remember recent ones.
    text = _ISO_CACHE.get(seconds)
    if text is None:
        if len(_ISO_CACHE) >= 4096:
            _ISO_CACHE.clear()
        t = time.gmtime(seconds)
        if not 1 <= t[0] <= 9999:
            raise ValueError(f"year {t[0]} has no ISO 8601 form")
        text = _ISO_CACHE[seconds] = "%04d-%02d-%02dT%02d:%02d:%02d" % t[:6]  # noqa: UP031 - the struct_time's six fields at once
    return text + fraction + "Z"


def _render_seconds(value: int) -> str | int:
    try:
        text = _iso(value, "")
    except (OverflowError, OSError, ValueError):
        return value
    if len(_ISO_SECONDS) >= 4096:
        _ISO_SECONDS.clear()
    _ISO_SECONDS[value] = text
    return text


def _renderer(per_second: int, digits: int) -> Converter:
    if per_second == 1:
        return _render_seconds

    def render(value: int) -> str | int:
        try:
            seconds, sub = divmod(value, per_second)
            return _iso(seconds, "." + str(sub).zfill(digits))
        except (OverflowError, OSError, ValueError):
            return value  # beyond what a calendar date can show: keep the number
    return render


class _DateTime(DataType):
    """A timestamp; the Python value is an integer count of ``per_second`` units since 1970."""

    def __init__(self, name: str, per_second: int, digits: int, ntp: bool):
        self.name = name
        self.natural_length = 4 if per_second == 1 else 8
        self.per_second = per_second
        self.ntp = ntp
        # RFC 7011 §6.1.9: the 11 lowest bits of a dateTimeMicroseconds fraction are ignored.
        self.fraction_mask = 0xFFFFF800 if per_second == 1_000_000 else 0xFFFFFFFF
        self.to_json = _renderer(per_second, digits)

    def unpack_format(self, length: int) -> str:
        return "I" if length == 4 else "Q"

    def json_inline(self) -> str | None:
        if self.per_second != 1:
            return None
        return "(_iso_seconds({0}) or _render_seconds({0}))"

    def converter(self, length: int) -> Converter | None:
        if not self.ntp:
            return None
        unit = self.per_second
        mask = self.fraction_mask

        def from_ntp(raw: int) -> int:
            seconds = (raw >> 32) - NTP_EPOCH_OFFSET
            return seconds * unit + (((raw & mask) * unit + 0x80000000) >> 32)
        return from_ntp

    def to_units(self, value: Any) -> int:
        """An int in this type's unit, from an int or an aware (or UTC-naive) datetime."""
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            delta = value - datetime(1970, 1, 1, tzinfo=UTC)
            micros = (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds
            units: int = micros * self.per_second // 1_000_000
            return units
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{self.name} needs an int or a datetime, got {value!r}")
        return value

    def encode(self, value: Any, length: int) -> bytes:
        units = self.to_units(value)
        if self.ntp:
            seconds, sub = divmod(units, self.per_second)
            # Round up, to the resolution the type keeps: decoders that truncate and decoders
            # that round both read back the same value.
            fraction = -(-(sub << 32) // self.per_second)
            step = (~self.fraction_mask & 0xFFFFFFFF) + 1
            fraction = -(-fraction // step) * step
            ntp_seconds = seconds + NTP_EPOCH_OFFSET
            if not 0 <= ntp_seconds < (1 << 32):
                raise ValueError(f"{value!r} is outside the NTP era 0 (1900-2036)")
            return ((ntp_seconds << 32) | fraction).to_bytes(8, "big")
        try:
            return units.to_bytes(length, "big")
        except OverflowError:
            raise ValueError(f"{value!r} does not fit {self.name}") from None


class _Structured(DataType):
    """RFC 6313 lists; decoding and encoding live in :mod:`ipfix_antrea.structured`."""

    structured = True

    def __init__(self, name: str):
        self.name = name

    def valid_length(self, length: int) -> bool:
        return True


DATA_TYPES: dict[str, DataType] = {
    t.name: t
    for t in (
        _Integer("unsigned8", 1, False),
        _Integer("unsigned16", 2, False),
        _Integer("unsigned32", 4, False),
        _Integer("unsigned64", 8, False),
        _Integer("signed8", 1, True),
        _Integer("signed16", 2, True),
        _Integer("signed32", 4, True),
        _Integer("signed64", 8, True),
        _Float("float32", 4),
        _Float("float64", 8),
        _Boolean(),
        _MacAddress(),
        _OctetArray(),
        _String(),
        _DateTime("dateTimeSeconds", 1, 0, ntp=False),
        _DateTime("dateTimeMilliseconds", 1000, 3, ntp=False),
        _DateTime("dateTimeMicroseconds", 1_000_000, 6, ntp=True),
        _DateTime("dateTimeNanoseconds", 1_000_000_000, 9, ntp=True),
        _Address("ipv4Address", 4),
        _Address("ipv6Address", 16),
        _Structured("basicList"),
        _Structured("subTemplateList"),
        _Structured("subTemplateMultiList"),
    )
}


#: The names that the inline expressions of DataType.inline and json_inline refer to.
INLINE_NAMES: dict[str, Any] = {
    "_ipv4_text": _IPV4_TEXT.get,
    "_ipv4": _ipv4,
    "_iso_seconds": _ISO_SECONDS.get,
    "_render_seconds": _render_seconds,
}


def data_type(name: str) -> DataType:
    """The :class:`DataType` called ``name`` (an RFC 7011 abstract type name)."""
    try:
        return DATA_TYPES[name]
    except KeyError:
        raise ValueError(f"unknown abstract data type {name!r}") from None
