"""Time ranges: the sidebar's choices, minute alignment and the chart step."""

from __future__ import annotations

import datetime as dt

UTC = dt.UTC

RANGE_CHOICES: dict[str, dt.timedelta | None] = {
    "Last 15 minutes": dt.timedelta(minutes=15),
    "Last hour": dt.timedelta(hours=1),
    "Last 6 hours": dt.timedelta(hours=6),
    "Last 24 hours": dt.timedelta(days=1),
    "Last 7 days": dt.timedelta(days=7),
    "Last 30 days": dt.timedelta(days=30),
    "Custom": None,
}
DEFAULT_RANGE = "Last hour"
# Chart buckets: the smallest of these that keeps a range under MAX_BUCKETS points.
BUCKET_STEPS_S = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
MAX_BUCKETS = 180


def floor_minute(t: dt.datetime) -> dt.datetime:
    return t.replace(second=0, microsecond=0)


def ceil_minute(t: dt.datetime) -> dt.datetime:
    down = floor_minute(t)
    return down if down == t else down + dt.timedelta(minutes=1)


def bucket_step(seconds: float) -> int:
    """A round chart step that keeps the range under MAX_BUCKETS points."""
    for step in BUCKET_STEPS_S:
        if seconds / step <= MAX_BUCKETS:
            return step
    return BUCKET_STEPS_S[-1]


def resolve_range(
    choice: str,
    custom_from: dt.datetime | None,
    custom_to: dt.datetime | None,
    now: dt.datetime | None = None,
) -> tuple[dt.datetime, dt.datetime]:
    """The minute-aligned UTC range for a sidebar choice.

    >>> now = dt.datetime(2024, 5, 1, 12, 30, 20, tzinfo=UTC)
    >>> [t.strftime("%H:%M") for t in resolve_range("Last hour", None, None, now)]
    ['11:31', '12:31']
    """
    now = now or dt.datetime.now(UTC)
    span = RANGE_CHOICES.get(choice, RANGE_CHOICES[DEFAULT_RANGE])
    if span is None:
        start = as_utc(custom_from) if custom_from else now - dt.timedelta(hours=1)
        end = as_utc(custom_to) if custom_to else now
        if end <= start:
            end = start + dt.timedelta(minutes=1)
        return floor_minute(start), ceil_minute(end)
    end = ceil_minute(now)
    return end - span, end


def as_utc(t: dt.datetime) -> dt.datetime:
    """Naive times are UTC (what the widgets and ClickHouse give back)."""
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def parse_time(text: str | None) -> dt.datetime | None:
    """An ISO time from a query parameter (``2024-05-01T12:00:00Z``), or None."""
    if not text:
        return None
    try:
        return as_utc(dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00")))
    except ValueError:
        return None
