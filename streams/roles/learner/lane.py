"""The learner's lane: both stages on one Kafka consumer, in transactions."""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, Message, Producer, TopicPartition

from streams.config import BACKGROUND_FETCH_WAIT_MS, Settings
from streams.kafka.lane import BatchLane, rewind_to_batch_start
from streams.models import ModelWatcher
from streams.roles.learner.envelope import KIND_BUNDLE, bundle_size
from streams.roles.learner.handler import Learner
from streams.roles.learner.settings import LearnerSettings
from streams.roles.learner.topics import ensure_learner_topics

log = logging.getLogger("lastmile.learner")


class LearnerLane(BatchLane):
    """The learner's lane: both stages on one consumer; restores the partitions it is
    assigned from the changelog and seeks them to their checkpoints; writes a last
    checkpoint when stopped."""

    def __init__(
        self,
        settings: Settings,
        options: LearnerSettings | None = None,
        learner: Learner | None = None,
        name: str = "learner",
        **lane_options: Any,
    ) -> None:
        self.options = options or settings.learner
        self.learner = learner or Learner(settings, self.options)
        self.watcher = ModelWatcher(settings, self.learner.table)
        topics = [self.learner.repartition_topic]
        if self.options.route:
            topics += [settings.topic_predictions, settings.topic_outcomes]
        lane_options.setdefault("group_id", self.options.group_id)
        # Learning is not latency-bound: fewer, larger transactions (each commit waits on
        # the broker) leave more time to learn.
        lane_options.setdefault("max_batch", 20_000)
        lane_options.setdefault("fetch_wait_ms", BACKGROUND_FETCH_WAIT_MS)
        super().__init__(
            settings, name, topics, self.learner, on_assign=self._on_assign, **lane_options
        )

    def run(self) -> None:
        """Create the topics, replay ``models.events``, then loop (BatchLane.run)."""
        try:
            from streams.kafka.topics import ensure_topics

            ensure_topics(self.settings)
            self.learner.partitions = ensure_learner_topics(self.settings, self.options)
        except Exception as err:  # the lane thread must record why it failed, whatever it was
            self._fail(err)
            return
        # The control plane first: routing and lines follow the models' champions.
        self.watcher.start()
        try:
            while not self.watcher.wait_caught_up(5.0):
                if self._stop.is_set():
                    return
                log.info("learner: waiting for %s to replay", self.settings.topic_model_events)
            super().run()
        finally:
            self.watcher.stop()

    def _on_assign(self, partitions: list[TopicPartition]) -> None:
        consumer = self.consumer
        assert consumer is not None
        topic = self.learner.repartition_topic
        mine = [tp.partition for tp in partitions if tp.topic == topic]
        offsets = self.learner.assign(mine)
        for tp in partitions:
            if tp.topic == topic:
                offset = offsets.get(tp.partition)
                tp.offset = OFFSET_BEGINNING if offset is None else offset
        consumer.assign(partitions)

    def on_idle(self, consumer: Consumer, producer: Producer) -> None:
        """What an idle learner must do: checkpoint what it learned, tick a partition
        whose waiting entries are due."""
        if self.learner.wants_flush():
            self._deliver(consumer, producer, [])
        else:
            producer.poll(0)

    def deliver_batch(
        self, consumer: Consumer, producer: Producer, messages: list[Message]
    ) -> None:
        for chunk in self._chunks(messages):
            if not self._deliver(consumer, producer, chunk):
                break  # the state went back to its checkpoint: read again

    def on_stop(self, consumer: Consumer, producer: Producer) -> None:
        """A last checkpoint of what was learned since the previous one."""
        if self.learner.has_uncommitted():
            self.learner.force_checkpoint = True
            try:
                self._deliver(consumer, producer, [])
            except Exception as err:  # a last checkpoint is best effort: it replays
                log.warning("learner: the last checkpoint failed (%s); it will replay", err)

    def _chunks(self, messages: list[Message]) -> list[list[Message]]:
        """A batch in transactions of about `max_batch` items: a bundle counts its items.
        The inputs all go in the first: committing the positions of input partitions
        covers them only once routed. Repartition records after the first chunk are
        read from their checkpoint again if the lane stops meanwhile."""
        topic = self.learner.repartition_topic
        inputs = [m for m in messages if m.topic() != topic]
        bundles = [m for m in messages if m.topic() == topic]
        if not bundles:
            return [messages]
        chunks: list[list[Message]] = []
        current, size = inputs, len(inputs)
        for m in bundles:
            value = m.value()
            n = bundle_size(value) if value and value[0] == KIND_BUNDLE else 1
            if current and size + n > self.max_batch:
                chunks.append(current)
                current, size = [], 0
            current.append(m)
            size += n
        chunks.append(current)
        return chunks

    def committed(self) -> None:
        self.learner.committed()

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """After an aborted transaction: inputs back to the batch's start, learned state
        back to the last committed checkpoint (read again), and its offsets."""
        topic = self.learner.repartition_topic
        rewind_to_batch_start(consumer, [m for m in messages if m.topic() != topic])
        mine = [tp.partition for tp in consumer.assignment() if tp.topic == topic]
        for p, offset in self.learner.assign(mine).items():
            if offset is None:
                offset, _high = consumer.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=30.0
                )
            consumer.seek(TopicPartition(topic, p, offset))

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the loop (it writes a last checkpoint) and the control-plane clients."""
        super().stop(timeout)
        self.watcher.stop()
        self.learner.close()
        self.consumer = None
        self.producer = None

    def details(self) -> dict[str, object]:
        """The learner's counters and model lines, for the status page."""
        return self.learner.details()


def learner_lane(settings: Settings) -> LearnerLane:
    """The learner role's lane (``ROLES["learner"]`` in :mod:`streams.app`)."""
    return LearnerLane(settings)
