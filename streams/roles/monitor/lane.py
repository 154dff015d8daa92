"""The monitor's Kafka lane: restores the state before consuming, seeks the inputs to
the snapshot's offsets on assignment, and tells the handler how each transaction ended."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition

from streams.config import BACKGROUND_FETCH_WAIT_MS, Settings
from streams.kafka.lane import BatchLane
from streams.roles.monitor.handler import Monitor
from streams.roles.monitor.settings import MonitorSettings
from streams.roles.monitor.snapshots import ensure_state_topic, read_snapshot

log = logging.getLogger("lastmile.monitor")

__all__ = ["MonitorLane", "lagging_partitions", "monitor_lane"]


def lagging_partitions(consumer: Consumer, settings: Settings) -> list[tuple[str, int]]:
    """The assigned predictions partitions with unread messages, or not fetched yet."""
    topic = settings.topic_predictions
    mine = [tp for tp in consumer.assignment() if tp.topic == topic]
    out = []
    for tp in consumer.position(mine):
        _low, high = consumer.get_watermark_offsets(tp, cached=True)
        if high < 0 or tp.offset < 0 or tp.offset < high:
            out.append((tp.topic, tp.partition))
    return out


class MonitorLane(BatchLane):
    """The monitor's lane: restores its state before consuming, seeks to the snapshot's
    offsets on assignment, and tells the handler whether each transaction committed."""

    def __init__(
        self,
        settings: Settings,
        options: MonitorSettings | None = None,
        monitor: Monitor | None = None,
        **lane_options: Any,
    ) -> None:
        self.options = options or settings.monitor
        self.monitor = monitor or Monitor(settings, self.options)
        topics = [settings.topic_predictions, settings.topic_outcomes, settings.topic_dlq]
        lane_options.setdefault("group_id", self.options.group_id)
        # Its outputs follow from its state and inputs: after a crash the replay skips
        # what the killed worker left visible (streams/kafka/takeover.py).
        lane_options.setdefault("skip_visible", True)
        lane_options.setdefault("fetch_wait_ms", BACKGROUND_FETCH_WAIT_MS)
        super().__init__(
            settings, "monitor", topics, self.monitor, on_assign=self._on_assign, **lane_options
        )
        self.private_topics = frozenset({self.monitor.state_topic})
        self.monitor.lagging = self._lagging

    def _lagging(self) -> list[tuple[str, int]]:
        consumer = self.consumer
        return [] if consumer is None else lagging_partitions(consumer, self.settings)

    def _clients(self) -> tuple[Consumer, Producer]:
        """The clients, then the state: only once ``init_transactions`` has fenced a
        killed predecessor is its open transaction over, and the state topic readable
        to its end (the embedded broker never times such a transaction out).

        A snapshot that cannot be restored stops the role rather than starting empty:
        empty state from the committed offsets would report partial windows."""
        consumer, producer = super()._clients()
        topic = self.monitor.state_topic
        ensure_state_topic(self.settings, topic)
        snapshot = read_snapshot(
            self.settings, topic, self.options.group_id, ignore_tags=self.unfinished_tags()
        )
        self.monitor.restore(snapshot)
        if snapshot is None:
            log.info("monitor: no state in %s; starting from the committed offsets", topic)
        else:
            log.info(
                "monitor: restored snapshot %d from %s (%d input partitions)",
                snapshot[0],
                topic,
                len(self.monitor.positions),
            )
        return consumer, producer

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        unknown = [
            TopicPartition(tp.topic, tp.partition)
            for tp in partitions
            if (tp.topic, tp.partition) not in self.monitor.positions
        ]
        starts: dict[tuple[str, int], int] = {}
        if unknown:
            for tp in consumer.committed(unknown, timeout=30.0):
                offset = tp.offset
                if offset < 0:
                    # No commit yet: auto.offset.reset=earliest, i.e. the low watermark.
                    offset, _high = consumer.get_watermark_offsets(
                        TopicPartition(tp.topic, tp.partition), timeout=30.0
                    )
                starts[(tp.topic, tp.partition)] = offset
        self.monitor.assigned(starts)
        for tp in partitions:
            tp.offset = self.monitor.positions[(tp.topic, tp.partition)]
        consumer.assign(partitions)
        ours = {tp.topic for tp in partitions}
        for topic in ours:
            meta = consumer.list_topics(topic, timeout=10.0).topics.get(topic)
            total = len(meta.partitions) if meta is not None else 0
            mine = sum(1 for tp in partitions if tp.topic == topic)
            if mine < total:
                log.warning(
                    "monitor: assigned %d of %d partitions of %s; another monitor in group "
                    "%s has the rest and windows cover part of the traffic (run one monitor, "
                    "or LASTMILE_MONITOR_PARTITIONED=true in every monitor of the group)",
                    mine,
                    total,
                    topic,
                    self.group_id,
                )

    def committed(self) -> None:
        self.monitor.committed()

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """After an aborted transaction: the state goes back to the last committed
        snapshot, and the inputs to its offsets (not just to this batch's start)."""
        positions = self.monitor.rolled_back()
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        for (topic, partition), offset in positions.items():
            if (topic, partition) in assigned:
                consumer.seek(TopicPartition(topic, partition, offset))

    def stop(self, timeout: float = 30.0) -> None:
        super().stop(timeout)
        self.monitor.close()
        # The clients outlive the thread through these references: drop them, so
        # librdkafka stops talking to a broker that may be gone.
        self.consumer = None
        self.producer = None


def monitor_lane(settings: Settings) -> BatchLane:
    """The monitor role's lane (``ROLES["monitor"]`` in :mod:`streams.app`): one monitor,
    or one worker of a partitioned group (``LASTMILE_MONITOR_PARTITIONED``)."""
    if settings.monitor.partitioned:
        from streams.roles.monitor.partitioned import PartitionedMonitorLane  # imports this

        return PartitionedMonitorLane(settings)
    return MonitorLane(settings)
