"""Consumer lag per topic and partition: the group's committed offset against the
partition's last stable offset, asked of the broker at scrape time.

A :class:`LagProbe` has a consumer of its own that never subscribes, polls or commits:
it only asks (OffsetFetch, ListOffsets, Metadata), so the role's lane is neither
blocked nor touched. Answers are kept ``ttl_s`` seconds, so Prometheus scraping every
second costs the broker one round of questions every few seconds.

The lag is the group's, over every partition of its topics, the way Kafka's own tools
and KEDA's Kafka scaler count it: every worker of a group reports the same series, so
sum them with ``max by (group, topic, partition)`` first. On a topic written in
transactions an idle group lags by 1 a partition: the commit marker takes an offset no
consumer is given (``kafka-consumer-groups`` shows the same).

The end of a partition is the larger of ListOffsets' answer and, where the role's own
consumer fetched the partition, the high watermark of its last fetch (``local_high``, a
local read): the embedded broker's ListOffsets can answer short of the end after an
idempotent producer's batch (README, "Embedded-broker quirks"), its fetches do not.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from streams.config import Settings

__all__ = ["LagProbe", "PartitionLag"]

log = logging.getLogger("lastmile.metrics")

PartitionLag = tuple[str, int, int]  # topic, partition, messages behind
LocalHigh = Callable[[str, int], int]  # topic, partition -> high watermark, or < 0


class LagProbe:
    """The lag of consumer group `group_id` on `topics`, cached for ``ttl_s`` seconds.

    >>> # LagProbe(settings, "lastmile-scorer", ["scoring.requests"]).lag()
    >>> # [('scoring.requests', 0, 12), ('scoring.requests', 1, 0), ...]
    """

    def __init__(
        self,
        settings: Settings,
        group_id: str,
        topics: Sequence[str],
        ttl_s: float = 2.0,
        timeout_s: float = 2.0,
        local_high: LocalHigh | None = None,
    ) -> None:
        self.settings = settings
        self.group_id = group_id
        self.topics = list(topics)
        self.ttl_s = ttl_s
        self.timeout_s = timeout_s
        self.local_high = local_high
        self._consumer: Consumer | None = None
        self._cached: list[PartitionLag] = []
        self._at = 0.0
        self._lock = threading.Lock()

    def lag(self) -> list[PartitionLag]:
        """``(topic, partition, lag)`` of every partition; the last answer when the
        broker does not answer now (and nothing before the first answer)."""
        with self._lock:
            if time.monotonic() - self._at >= self.ttl_s:
                try:
                    self._cached = self._ask()
                except KafkaException as err:
                    log.debug("lag of %s not known now: %s", self.group_id, err)
                self._at = time.monotonic()
            return list(self._cached)

    def _ask(self) -> list[PartitionLag]:
        consumer = self._client()
        partitions = []
        metadata = consumer.list_topics(timeout=self.timeout_s).topics
        for topic in self.topics:
            meta = metadata.get(topic)
            if meta is not None and meta.error is None:
                partitions += [TopicPartition(topic, p) for p in sorted(meta.partitions)]
        if not partitions:
            return []
        committed = consumer.committed(partitions, timeout=self.timeout_s)
        out = []
        for tp in committed:
            low, high = consumer.get_watermark_offsets(
                TopicPartition(tp.topic, tp.partition), timeout=self.timeout_s
            )
            if self.local_high is not None:
                high = max(high, self.local_high(tp.topic, tp.partition))
            # No commit yet: the group starts from the earliest offset (auto.offset.reset).
            start = tp.offset if tp.offset >= 0 else low
            out.append((tp.topic, tp.partition, max(0, high - start)))
        return out

    def _client(self) -> Consumer:
        if self._consumer is None:
            # read_committed: the end offset is the last stable one, so an open
            # transaction's records (not readable yet) are not counted as lag.
            conf = self.settings.consumer_config(
                self.group_id, **{"isolation.level": "read_committed", "enable.auto.commit": False}
            )
            self._consumer = Consumer(conf)
        return self._consumer

    def close(self) -> None:
        with self._lock:
            if self._consumer is not None:
                self._consumer.close()
                self._consumer = None
