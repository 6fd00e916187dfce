"""The one exception the decoder raises on bad input.

Every malformed-input path in the library ends in :class:`DecodeError`, so a collector needs a
single ``except`` clause to keep running, and an operator gets the byte offset and a reason.
"""

from __future__ import annotations

from typing import Any


class DecodeError(ValueError):
    """Input that is not valid IPFIX.

    ``offset`` is the byte offset of the problem in the data handed to the call that raised (for
    :meth:`Session.feed`, in the stream since the session began), or ``None`` where it has none.
    ``records`` holds the records decoded from complete messages before the problem in the same
    call, so that raising never loses good data.
    """

    def __init__(self, reason: str, offset: int | None = None, records: list[Any] | None = None):
        self.reason = reason
        self.offset = offset
        self.records: list[Any] = records if records is not None else []
        where = f" at offset {offset}" if offset is not None else ""
        super().__init__(f"{reason}{where}")
