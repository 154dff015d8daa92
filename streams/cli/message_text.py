"""What ``lastmile produce``, ``tail`` and ``dlq`` share: topics by role, keys by
field, and JSON for people.

Topics are named by role (``requests``, ``predictions``, ``outcomes``,
``model_events``, ``metrics``, ``alerts``, ``dlq``) or by their full name; settings
come from ``load_settings()`` (``LASTMILE_*`` variables, ``lastmile.toml``) unless
the calling group put a ``Settings`` in ``ctx.obj``.

JSON output: one object per line; bytes are shown as text when they are UTF-8,
else as ``"base64:<...>"``; times stay epoch milliseconds, except in ``dlq tail``
which adds ISO-8601 renderings for people.
"""

from __future__ import annotations

import base64
import datetime as _dt
from typing import Any

import orjson

from schemas import TOPIC_SCHEMAS
from streams.config import Settings

__all__ = [
    "DEFAULT_KEY_FIELDS",
    "resolve_topic",
    "schema_name_for",
    "bytes_text",
    "dumps_json",
    "iso_millis",
]

#: Which field keys a message of each role, by default (the first one that is set).
DEFAULT_KEY_FIELDS = {
    "requests": ("entity_id", "request_id"),
    "predictions": ("request_id",),
    "outcomes": ("request_id",),
    "model_events": ("model",),
    "metrics": ("model",),
    "alerts": ("model",),
    "dlq": (),
}


def resolve_topic(settings: Settings, name: str) -> tuple[str, str | None]:
    """(topic name, role or None) for a role or a topic name."""
    topics = settings.topics
    if name in topics:
        return topics[name], name
    for role, topic in topics.items():
        if topic == name:
            return topic, role
    return name, None


def schema_name_for(role: str | None, schema: str | None) -> str | None:
    """The schema named by ``--schema``, else the one of the role's topic (None if neither)."""
    if schema:
        return schema
    return TOPIC_SCHEMAS.get(role) if role else None


def bytes_text(value: bytes | None) -> tuple[str | None, str | None]:
    """(shown, encoding): UTF-8 text when it is, else base64."""
    if value is None:
        return None, None
    try:
        return value.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(value).decode("ascii"), "base64"


def _json_default(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value)
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return "base64:" + base64.b64encode(value).decode("ascii")
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def dumps_json(obj: Any) -> str:
    """One line of JSON; bytes as text (or base64), dates as ISO-8601."""
    return orjson.dumps(obj, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


def iso_millis(millis: int | None) -> str | None:
    """Epoch milliseconds as ISO-8601 UTC (None when absent or out of range)."""
    if millis is None:
        return None
    try:
        return (
            _dt.datetime.fromtimestamp(millis / 1000, _dt.UTC)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z")
        )
    except (OverflowError, OSError, ValueError):
        return None
