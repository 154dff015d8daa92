"""Times as lastmile's messages carry them: int epoch milliseconds.

:func:`to_millis` takes what a caller may give for a time (an int, a datetime, an
ISO-8601 string **with** a time zone: a naive one would silently shift every window)
and :func:`now_millis` is now.

>>> to_millis("2024-05-01T12:00:00Z")
1714564800000
"""

from __future__ import annotations

import datetime as _dt
import time

from schemas.errors import shorten

__all__ = ["now_millis", "to_millis", "parse_iso"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def now_millis() -> int:
    """Now, in milliseconds since the Unix epoch."""
    return time.time_ns() // 1_000_000


def to_millis(value: int | _dt.datetime | str) -> int:
    """Epoch milliseconds from an int (returned as is), a datetime (naive = UTC) or an
    ISO-8601 string with a time zone.

    >>> to_millis("1970-01-01T00:00:01Z"), to_millis(_dt.datetime(1970, 1, 1, 0, 0, 2))
    (1000, 2000)
    """
    if isinstance(value, bool):
        raise TypeError(
            "a time is epoch milliseconds, a datetime or an ISO-8601 string, not a bool"
        )
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = parse_iso(value)
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.UTC)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    raise TypeError(f"cannot turn {type(value).__name__} into epoch milliseconds")


def parse_iso(text: str) -> _dt.datetime:
    try:
        parsed = _dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{shorten(text)!r} is not an ISO-8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError(
            f"{shorten(text)!r} has no time zone: add 'Z' for UTC or an offset such as +02:00"
        )
    return parsed
