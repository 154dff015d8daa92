"""How a lane makes a batch durable before it commits the batch's offsets.

Exactly once: the outputs and the consumed offsets go in one Kafka transaction,
journaled first when the lane skips what a killed predecessor left visible
(:mod:`streams.kafka.takeover`). At least once: produce, flush (acks=all), then
commit the offsets synchronously. :class:`~streams.kafka.lane.BatchLane` runs the
loop and the retries on top of this; the per-record loop (:meth:`LaneDelivery._produce_all`)
is the scorer's hot path, so it stays one plain loop over the outputs.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from streams.config import Settings
from streams.kafka.takeover import (
    TAG_HEADER,
    InFlight,
    SkipList,
    Transaction,
    left_visible,
    output_key,
)
from streams.kafka.transactional_slot import TransactionalSlot
from streams.metrics.observed import COMMIT_SECONDS, lane_timer

__all__ = ["LaneDelivery", "Output", "abortable"]

log = logging.getLogger("lastmile.lane")

_NOTHING = object()


@dataclass(slots=True)
class Output:
    """One record the handler wants produced; ``partition`` -1 lets the key choose."""

    topic: str
    value: bytes | None
    key: bytes | str | None = None
    headers: list[tuple[str, bytes]] | None = None
    partition: int = -1


class LaneDelivery:
    """The delivery half of a lane: produce a batch's outputs, then make them and its
    offsets durable (one transaction, or a flush and a commit)."""

    # Set by the lane (:class:`~streams.kafka.lane.BatchLane`) before it delivers.
    settings: Settings
    name: str
    exactly_once: bool
    slot: TransactionalSlot
    skip_visible: bool
    journal: InFlight | None
    private_topics: frozenset[str]

    def __init__(self) -> None:
        self._skip: SkipList | None = None
        self._owed: Transaction | None = None
        self._incarnation = uuid.uuid4().hex[:8]
        self._sequence = 0

    def _produce_all(
        self,
        producer: Producer,
        outputs: list[Output],
        tag: tuple[str, bytes] | None = None,
    ) -> list[KafkaError]:
        """Hand every output to the producer, each with the `tag` header when given; the
        delivery failures, when not in a transaction (in one, a record that fails makes
        ``commit_transaction`` fail, so no callback is needed)."""
        failures: list[KafkaError] = []
        tagged = [tag] if tag is not None else []

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        produce = producer.produce
        extra: dict[str, object] = {} if self.exactly_once else {"on_delivery": report}
        # Outputs of one kind share their headers object: tag it once, not per record.
        plain: object = _NOTHING
        with_tag: list[tuple[str, bytes]] | None = None
        for out in outputs:
            headers = out.headers
            if tagged:
                if headers is not plain:
                    plain, with_tag = headers, [*headers, *tagged] if headers else tagged
                headers = with_tag
            while True:
                try:
                    # Partition -1 is librdkafka's "unassigned": the key's partitioner picks.
                    produce(out.topic, out.value, out.key, out.partition, headers=headers, **extra)
                    break
                except BufferError:
                    # The local queue is full: let librdkafka send before adding more.
                    producer.poll(0.05)
        return failures

    def _produce_then_commit(
        self,
        consumer: Consumer,
        producer: Producer,
        messages: list[Message],
        outputs: list[Output],
    ) -> None:
        failures = self._produce_all(producer, outputs)
        remaining = producer.flush(60)
        if failures or remaining:
            raise KafkaException(failures[0] if failures else KafkaError(KafkaError._TIMED_OUT))
        with lane_timer(COMMIT_SECONDS, self.name):
            consumer.commit(asynchronous=False)

    def _transact(self, consumer: Consumer, producer: Producer, outputs: list[Output]) -> None:
        positions = consumer.position(consumer.assignment())
        producer.begin_transaction()
        tag = None
        if self.journal is not None:
            outputs, tag = self._journal_begin(outputs, positions)
        # No delivery callbacks in a transaction: a failed record fails the commit.
        self._produce_all(producer, outputs, tag)
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        with lane_timer(COMMIT_SECONDS, self.name):
            producer.commit_transaction(60)
        if self.journal is not None:
            self._journal_done(positions)

    def _journal_begin(
        self, outputs: list[Output], positions: list
    ) -> tuple[list[Output], tuple[str, bytes]]:
        """Record the transaction before it sends anything; its outputs less those a
        killed predecessor already made visible, and the header that tags them."""
        assert self.journal is not None
        self._sequence += 1
        tag = f"{self._incarnation}:{self._sequence}"
        ends: dict[str, dict[int, int]] = {}
        for tp in positions:
            if tp.offset >= 0:
                ends.setdefault(tp.topic, {})[tp.partition] = tp.offset - 1
        topics = sorted({out.topic for out in outputs})
        record = Transaction([tag], int(time.time() * 1000), topics, ends)
        self.journal.begin(record.including(self._owed))
        header = (TAG_HEADER, tag.encode())
        skip = self._skip
        if skip:
            private = self.private_topics
            outputs = [
                out
                for out in outputs
                if out.topic in private
                or not skip.take(output_key(out.topic, out.key, out.headers))
            ]
        return outputs, header

    def _journal_done(self, positions: list) -> None:
        assert self.journal is not None
        self.journal.finish()
        if self._skip is not None:
            owned = {(tp.topic, tp.partition): tp.offset for tp in positions}
            if not self._skip or self._skip.passed(owned):
                self._skip = None
                self._owed = None

    def _caught_up(self, consumer: Consumer) -> None:
        """Idle: once every assigned partition is read to its end, outputs the killed
        worker left that the replay did not produce again never will be."""
        if self._skip is None:
            return
        for tp in consumer.position(consumer.assignment()):
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0 or tp.offset < high:
                return
        if self._skip.caught_up():
            self._skip = None
            self._owed = None

    def unfinished_tags(self) -> list[str]:
        """Tags of the transactions a killed predecessor (or an abort) left unfinished
        and this lane is replaying: records carrying them never committed."""
        return list(self._owed.tags) if self._owed is not None else []

    def _take_over(self) -> None:
        """Find what the last holder of this slot left visible and was not finished."""
        assert self.slot.id is not None
        if self.journal is None:
            self.journal = self.slot.journal(self.slot.id)
        last = self.journal.last()
        if last is None or last.done:
            return
        began = time.monotonic()
        counts = left_visible(self.settings, last)
        log.info(
            "%s: took over an unfinished transaction; %d of its records are readable and "
            "will not be sent again (found in %.2f s)",
            self.name,
            sum(counts.values()),
            time.monotonic() - began,
        )
        self._owed = last
        self._skip = SkipList(counts, last.last_offsets())

    def _end_open_transactions(self) -> None:
        """At least once, fence what an exactly-once run of this lane left open on this
        host: the embedded broker never times a transaction out, and its read_committed
        readers would wait for it for good (:class:`TransactionalSlot`). Only slots that
        exist are touched, so a lane that never ran exactly once needs no transactions."""
        for transactional_id in self.slot.unclaimed():
            conf = self.settings.producer_config(**{"transactional.id": transactional_id})
            fencer = Producer(conf)
            fencer.init_transactions(30)
            del fencer
            # The batch is replayed at least once: the journal has nothing left to skip.
            self.slot.journal(transactional_id).settle()
            log.info("%s: fenced %s, left by an exactly-once run", self.name, transactional_id)


def abortable(err: KafkaException) -> bool:
    """Whether a failed transaction must be aborted (and its batch rewound) rather than retried."""
    error = err.args[0] if err.args else None
    return bool(
        isinstance(error, KafkaError) and (error.txn_requires_abort() or not error.retriable())
    )
