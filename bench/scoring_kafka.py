"""bench/scoring.py's Kafka helpers: topics, pre-producing the requests, the readers."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from bench.scoring_job import request_encoder
from streams.config import Settings

PARTITIONS = 3


def create_topics(settings: Settings, names: list[str]) -> None:
    admin = AdminClient({**settings.kafka_config(), "log_level": 3})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=PARTITIONS, replication_factor=1) for n in names],
        request_timeout=15,
    )
    for future in futures.values():
        future.result(15)


def produce_all(settings: Settings, topic: str, records: list[dict], fmt: str = "json") -> float:
    """Produce every request (idempotent, acks=all, linger 20 ms); return the seconds taken."""
    encode = request_encoder(fmt)
    producer = Producer(settings.producer_config())
    t0 = time.perf_counter()
    for record in records:
        value, headers = encode(record)
        while True:
            try:
                producer.produce(topic, value, record["entity_id"].encode(), headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(60)
    if remaining:
        raise RuntimeError(f"{remaining} requests were not delivered to {topic}")
    return time.perf_counter() - t0


def reader_config(settings: Settings, group: str, fetch_wait_ms: int) -> dict[str, Any]:
    return settings.consumer_config(
        group,
        **{
            "isolation.level": "read_committed",
            "enable.partition.eof": False,
            "fetch.wait.max.ms": fetch_wait_ms,
        },
    )


def assign_at_end(consumer: Consumer, topic: str) -> None:
    """Assign every partition of ``topic`` at its current end (high watermark)."""
    parts = []
    for p in range(PARTITIONS):
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
        parts.append(TopicPartition(topic, p, high))
    consumer.assign(parts)
