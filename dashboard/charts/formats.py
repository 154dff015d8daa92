"""Number, time and version formats for people."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd


def fmt_rate(per_second: float) -> str:
    """A rate for a metric tile: about 3 significant digits.

    >>> [fmt_rate(x) for x in (0, 0.012345, 2.5, 123.456, 12345.6)]
    ['0', '0.0123', '2.50', '123', '12.3k']
    """
    if per_second == 0 or not math.isfinite(per_second):
        return "0" if per_second == 0 else "–"
    if per_second >= 10_000:
        return f"{per_second / 1000:.3g}k"
    if per_second >= 100:
        return f"{per_second:.0f}"
    return f"{per_second:.3g}" if per_second < 1 else f"{per_second:.2f}"


def fmt_ms(ms: float) -> str:
    """Milliseconds for people.

    >>> [fmt_ms(x) for x in (0.42, 12.345, 1530.0, float("nan"))]
    ['0.42 ms', '12.3 ms', '1.53 s', '–']
    """
    if not math.isfinite(ms):
        return "–"
    if ms >= 1000:
        return f"{ms / 1000:.3g} s"
    return f"{ms:.3g} ms"


def fmt_time(t: Any) -> str:
    if t is None or (isinstance(t, float) and math.isnan(t)) or pd.isna(t):
        return "–"
    return pd.Timestamp(t).strftime("%Y-%m-%d %H:%M UTC")


def fmt_age(seconds: float) -> str:
    """A duration for people.

    >>> [fmt_age(s) for s in (5, 125, 7300, 200000)]
    ['5 s', '2 min', '2.0 h', '2.3 d']
    """
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} d"


def version_label(version: int, aliases: Sequence[str] = (), shadow: bool = False) -> str:
    """A version with its aliases; version 0 is the monitor's "all versions".

    >>> version_label(3, ["champion"]), version_label(0)
    ('v3 (champion)', 'all versions')
    """
    if version == 0:
        return "all versions"
    tags = list(aliases) + (["shadow"] if shadow else [])
    return f"v{version}" + (f" ({', '.join(tags)})" if tags else "")
