"""Reading a topic from the command line: no consumer group, explicit partition assignment."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import click

from streams.config import Settings

__all__ = ["read_topic"]


def read_topic(
    settings: Settings,
    topic: str,
    *,
    from_beginning: bool = False,
    last: int | None = None,
    follow: bool = False,
    idle_timeout: float | None = None,
    poll_timeout: float = 0.5,
    consumer: Any = None,
) -> Iterator[Any]:
    """Messages of a topic without a consumer group (explicit partition assignment).

    Starts at the beginning (``from_beginning``), about ``last`` messages before the
    end of each partition, or at the end. Yields ``None`` once every partition has
    been read to its end (the "caught up" mark); without ``follow`` it stops there,
    with ``follow`` it keeps yielding new messages. ``idle_timeout`` seconds without
    any message end it too (default without follow: 10 s, a safety net).

    The end of a partition is the fetch's high watermark (partition EOF events), not
    ListOffsets: the embedded broker can under-report the latter, so ``last`` may
    deliver more than asked (callers keep the last N).
    """
    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, TopicPartition

    if idle_timeout is None and not follow:
        idle_timeout = 10.0
    own = consumer is None
    if own:
        conf = settings.consumer_config(
            f"lastmile-cli-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
        )
        consumer = Consumer(conf)
    try:
        meta = consumer.list_topics(topic, timeout=10)
        info = meta.topics.get(topic)
        if info is None or info.error is not None:
            raise click.ClickException(
                f"topic {topic!r} does not exist (lastmile up creates lastmile's topics)"
            )
        assignment = []
        for p in sorted(info.partitions):
            if from_beginning:
                start = OFFSET_BEGINNING
            elif last is not None:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                start = max(low, high - last)
            else:
                start = OFFSET_END
            assignment.append(TopicPartition(topic, p, start))
        pending = {tp.partition for tp in assignment}
        consumer.assign(assignment)
        idle_since = time.monotonic()
        caught_up = False
        while True:
            batch = consumer.consume(num_messages=500, timeout=poll_timeout)
            if not batch:
                if idle_timeout is not None and time.monotonic() - idle_since > idle_timeout:
                    return
                continue
            idle_since = time.monotonic()
            for msg in batch:
                err = msg.error()
                if err is not None:
                    if err.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise click.ClickException(f"reading {topic}: {err}")
                yield msg
            if not pending and not caught_up:
                caught_up = True
                yield None
                if not follow:
                    return
    finally:
        if own:
            consumer.close()
