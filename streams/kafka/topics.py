"""lastmile's topics: declared once here, from the settings; created and read to the end."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Iterator

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings

# The control plane is a compacted log keyed by model name: a worker replaying it
# from the start sees each model's latest state without the full history.
COMPACTED = {"model_events"}


def topic_specs(settings: Settings) -> list[NewTopic]:
    """The topics lastmile needs, with their partitions and cleanup policy."""
    specs = []
    for role, name in settings.topics.items():
        config = {"cleanup.policy": "compact"} if role in COMPACTED else {}
        partitions = 1 if role in COMPACTED else settings.topic_partitions
        specs.append(
            NewTopic(
                name,
                num_partitions=partitions,
                replication_factor=settings.topic_replication,
                config=config,
            )
        )
    return specs


def ensure_topics(settings: Settings, timeout: float = 15.0) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    return create_missing(settings, topic_specs(settings), timeout)


def compacted_topic(settings: Settings, name: str) -> NewTopic:
    """A one-partition compacted topic: a role's state, keyed, latest value wins."""
    return NewTopic(
        name,
        num_partitions=1,
        replication_factor=settings.topic_replication,
        config={"cleanup.policy": "compact"},
    )


def create_missing(settings: Settings, specs: list[NewTopic], timeout: float = 15.0) -> list[str]:
    """Create those of ``specs`` that do not exist yet; return the names created."""
    admin = AdminClient(settings.kafka_config())
    existing = set(admin.list_topics(timeout=timeout).topics)
    missing = [spec for spec in specs if spec.topic not in existing]
    if not missing:
        return []
    created = []
    for topic, future in admin.create_topics(missing, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise
    return created


def read_to_end(
    settings: Settings,
    topic: str,
    group_id: str | None = None,
    timeout: float = 60.0,
    partitions: Iterable[int] | None = None,
) -> Iterator[Message]:
    """Every committed message in ``topic`` now (in `partitions`, default all), each
    partition in offset order, ending at the end each had when reading began. Under
    ``read_committed``: records of an open transaction are never seen (nor, on Kafka,
    those of an aborted one).

    Raises :class:`TimeoutError` when the topic is not read within ``timeout`` seconds.
    """
    consumer = Consumer(
        settings.consumer_config(
            group_id or f"lastmile-reader-{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True, "isolation.level": "read_committed"},
        )
    )
    try:
        meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
        if meta is None or meta.error is not None:
            return
        wanted = meta.partitions if partitions is None else set(partitions)
        parts = []
        for p in sorted(wanted):
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10.0)
            if high > low:
                parts.append(TopicPartition(topic, p, low))
        if not parts:
            return
        consumer.assign(parts)
        pending = {tp.partition for tp in parts}
        deadline = time.monotonic() + timeout
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took more than {timeout:.0f} s")
            for message in consumer.consume(5000, 0.2):
                error = message.error()
                if error is None:
                    yield message
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                else:
                    raise KafkaException(error)
    finally:
        consumer.close()
