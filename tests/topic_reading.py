"""Reading back what a role wrote to the session broker: every committed message of a
topic, raw or decoded, once the expected number arrived and the topic went quiet."""

from __future__ import annotations

import time

from confluent_kafka import Consumer, Message, TopicPartition

from schemas import Codec
from streams.config import Settings


def read_messages(settings: Settings, topic: str, expect: int, timeout: float = 60) -> list:
    """Every committed message of ``topic`` (read_committed), from the start of each
    partition: once ``expect`` arrived and a second passed with no more, or at ``timeout``
    with what came (the caller's assertions say what was missing)."""
    consumer = Consumer(settings.consumer_config("reader", **{"isolation.level": "read_committed"}))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(settings.topic_partitions)])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        batch = consumer.consume(5000, 0.2)
        messages += [m for m in batch if m.error() is None]
        if batch:
            quiet_since = time.monotonic()
        elif len(messages) >= expect and time.monotonic() - quiet_since > 1.0:
            break
    consumer.close()
    return messages


def read_records(
    settings: Settings, topic: str, schema: str, expect: int, timeout: float = 60
) -> list[dict]:
    """:func:`read_messages`, each decoded as a ``schema`` record."""
    codec = Codec.from_settings(settings)
    return [
        codec.decode(m.value(), m.headers(), schema, topic)
        for m in read_messages(settings, topic, expect, timeout)
    ]
