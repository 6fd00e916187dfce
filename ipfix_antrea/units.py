"""Flag value types shared by inputs and sinks: sizes (`8M`, `1.5G`), durations (`15m`, `1h30m`)
and counts, as argparse `type=` functions that raise ArgumentTypeError with a clear message.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from decimal import Decimal

__all__ = ["parse_size", "parse_duration", "parse_keep", "number"]

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_DURATION = re.compile(r"(?:\d+[smhd])+|\d+", re.IGNORECASE)
_DURATION_PART = re.compile(r"(\d+)([smhd])", re.IGNORECASE)
_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(text: str) -> int:
    """A size: bytes, or a number with K, M, G or T (powers of 1024, as logrotate
    counts; an optional ``B``/``iB`` is accepted). ``100M``, ``1.5G``, ``500k``, ``1048576``."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid size {text!r}: use bytes or a number with K, M, G or T, e.g. 100M")
    size = int(Decimal(match[1]) * _SIZE_UNITS[match[2].lower()])
    if size < 1:
        raise argparse.ArgumentTypeError(f"invalid size {text!r}: must be at least 1 byte")
    return size


def parse_duration(text: str) -> int:
    """A duration: whole seconds, or parts with s, m, h, d: ``15m``, ``1h30m``,
    ``86400s``, ``1d``. Returns seconds."""
    text = text.strip()
    if _DURATION.fullmatch(text) is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with s, m, h or d, e.g. 1h")
    if text.isdigit():
        seconds = int(text)
    else:
        seconds = sum(int(n) * _DURATION_UNITS[unit.lower()] for n, unit in _DURATION_PART.findall(text))
    if seconds < 1:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be at least 1s")
    return seconds


def number(convert: Callable[[str], float] = int, *, minimum: float | None = None,
           above: float | None = None, what: str = "number") -> Callable[[str], float]:
    """An argparse type: ``convert(text)``, at least ``minimum`` and/or more than ``above``.
    The messages say ``invalid <what> 'TEXT': ...``."""

    def parse(text: str) -> float:
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: not a number") from None
        if minimum is not None and not value >= minimum:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: must be at least {minimum}")
        if above is not None and not value > above:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: must be more than {above}")
        return value

    parse.__name__ = what.replace(" ", "_")  # argparse names the type in its own messages
    return parse


#: ``--jsonl-keep``: how many rotated files to keep, at least 1 (no flag keeps them all).
parse_keep = number(int, minimum=1, what="count")
