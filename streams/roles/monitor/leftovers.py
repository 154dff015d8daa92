"""What an owner taking a partition over must not emit again: the metrics and alerts of
its models newer than its snapshot.

Every batch of an owner that emits anything writes its snapshot in the same
transaction, so no committed metric of a partition is newer than the partition's last
committed snapshot. What is newer was left readable by a worker killed inside a
transaction (the embedded broker shows such records once the killed worker's slot is
fenced; Apache Kafka never does), and the replay from the snapshot emits the same
records again, wherever the partition went: the lane of the killed worker's slot skips
what *it* replays (:mod:`streams.kafka.takeover`), but another worker may own the
partition now. So an owner skips, by identity (``lastmile-id``), what it finds there.
Identities found that the replay never emits again (records of the few seconds before
the snapshot, read for the clocks' sake) cost nothing: an identity names one window.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.config import Settings
from streams.kafka.takeover import CLOCK_SLACK_MS, identity_of

__all__ = ["identities_since"]


def identities_since(
    settings: Settings,
    topics: Iterable[str],
    since_ms: int,
    keep: Callable[[bytes | None], bool],
    timeout: float = 60.0,
) -> set[bytes]:
    """The identities of the records of `topics` stamped at `since_ms` (less the clock
    slack) or later whose key `keep` says are ours, read under ``read_committed``."""
    since = since_ms - CLOCK_SLACK_MS
    consumer = Consumer(
        settings.consumer_config(
            f"lastmile-monitor-leftovers-{uuid.uuid4().hex[:8]}",
            **{"enable.partition.eof": True, "isolation.level": "read_committed"},
        )
    )
    found: set[bytes] = set()
    try:
        wanted = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
            if meta is not None and meta.error is None:
                wanted += [TopicPartition(topic, p, since) for p in meta.partitions]
        starts = [
            TopicPartition(tp.topic, tp.partition, tp.offset)
            for tp in (consumer.offsets_for_times(wanted, timeout=timeout) if wanted else [])
            if tp.offset >= 0  # -1: nothing that new
        ]
        if not starts:
            return found
        consumer.assign(starts)
        todo = {(tp.topic, tp.partition) for tp in starts}
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {sorted(todo)} took over {timeout:.0f} s")
            for message in consumer.consume(5000, 0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        todo.discard((message.topic(), message.partition()))
                    continue
                # Tansu answers offsets_for_times with 0 when nothing is that new.
                if message.timestamp()[1] < since or not keep(message.key()):
                    continue
                identity = identity_of(message.headers())
                if identity is not None:
                    found.add(identity)
    finally:
        consumer.close()
    return found
