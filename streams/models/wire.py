"""The wire format of ``models.events``: a control event as Avro (``schemas/ModelEvent.avsc``,
through ``schemas.codec``), or JSON where the codec is missing. One pair of functions, and
the codec lives here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from streams.models.state import epoch_ms
from streams.records import model_event_to_avro

__all__ = ["JSON_HEADERS", "decode_event", "encode_event", "make_codec"]

JSON_HEADERS = [("content-type", b"application/json")]


def make_codec(settings: Any = None) -> Any:
    """The Avro codec for ``models.events`` (``schemas.codec``), or None where it is missing."""
    try:
        from schemas import Codec
    except ImportError:
        return None
    return Codec.from_settings(settings) if settings is not None else Codec()


def encode_event(
    event: Mapping[str, Any], settings: Any = None, codec: Any = None
) -> tuple[bytes, list]:
    """A control event as ``(value, headers)`` for ``models.events``.

    Avro (``ModelEvent``, through ``schemas.codec``) when the codec is installed,
    else JSON marked by a ``content-type: application/json`` header.
    """
    codec = codec or make_codec(settings)
    if codec is None:
        return orjson.dumps(event), list(JSON_HEADERS)
    topic = getattr(settings, "topic_model_events", None)
    return codec.encode("ModelEvent", model_event_to_avro(event), topic=topic)


def decode_event(
    value: bytes | None, headers: Any = None, settings: Any = None, codec: Any = None
) -> dict | None:
    """The event dict from a ``models.events`` message (Avro or JSON); None for a tombstone."""
    if value is None:
        return None
    content_type = None
    for key, val in headers or ():
        if key == "content-type":
            content_type = val
    if content_type == b"application/json" or value[:1] == b"{":
        event = orjson.loads(value)
    else:
        codec = codec or make_codec(settings)
        if codec is None:
            raise ValueError("an Avro models.events message, and schemas.codec is not installed")
        topic = getattr(settings, "topic_model_events", None)
        event = dict(codec.decode(value, headers, "ModelEvent", topic))
    # Avro carries no state.model / updated_at: they are the event's model and ts.
    state = dict(event.get("state") or {})
    state.setdefault("model", event.get("model"))
    state.setdefault("updated_at", epoch_ms(event.get("ts")))
    event["state"] = state
    event["ts"] = epoch_ms(event.get("ts"))
    event.setdefault("seq", state.get("seq", 0))
    event.setdefault("detail", {})
    return event
