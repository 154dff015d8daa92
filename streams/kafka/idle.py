"""The idle pause: a consumer that has seen nothing for a while stops fetching.

The embedded broker does not wake a waiting fetch when data arrives, so its consumers
fetch with a short wait (``fetch.wait.max.ms`` 10, :meth:`Settings.consumer_config`):
about 100 fetches a second per consumer even with nothing to read, most of the idle
stack's CPU, in the broker. An :class:`IdlePause` pauses a consumer's partitions once it
has read nothing for ``after_s`` seconds (librdkafka then fetches nothing for them; the
group's heartbeats go on) and asks the broker for their ends instead, in one
ListOffsets request every ``interval_s`` seconds. As soon as an end passes what the
consumer's own fetches last saw of it, the partitions are resumed, each at the position
it was paused at. Once traffic flows nothing changes; the first record after an idle
spell waits up to one interval (0.25 s by default) longer than it would have.

The reference an end is compared with is the high watermark of the consumer's last
fetch (librdkafka's cached one), not its position: on a transactional topic the last
commit marker takes an offset no consumer is given, so an idle consumer's position
stays one short of the end for good. And the embedded broker's ListOffsets answers the
first offset of the last batch, plus one (README, "Embedded-broker quirks"): that is
still past the old end as soon as any batch landed after it.

A rebalance forgets the pause (:meth:`IdlePause.forget`, from the rebalance callbacks):
partitions newly assigned start fetching at their committed offsets, never at a
position this consumer remembered from before.

>>> from streams.kafka.idle import IdlePause
>>> pause = IdlePause(after_s=1.0, interval_s=0.25)
>>> pause.paused, pause.details()
(False, {'idle_paused': False, 'idle_pauses': 0, 'idle_resumes': 0})

In a consume loop (``tests/streams/kafka/test_idle.py`` runs this on the embedded broker)::

    while running:
        messages = consumer.consume(1000, 0.1)
        pause.update(consumer, len(messages))
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

__all__ = ["AFTER_S", "INTERVAL_S", "IdlePause"]

log = logging.getLogger("lastmile.idle")

#: Seconds without a record before a consumer pauses.
AFTER_S = 2.0
#: Seconds between two asks for the ends of a paused consumer's partitions: the most the
#: first record after an idle spell waits for (plus one ListOffsets round trip).
INTERVAL_S = 0.25

Key = tuple[str, int]


class IdlePause:
    """Pause a consumer's partitions after ``after_s`` s without records; resume them
    when the broker's end of one passes what the consumer last saw of it.

    Call :meth:`update` after every poll with the number of records (or errors) it gave;
    call :meth:`forget` from the consumer's rebalance callbacks. Not thread-safe: one
    consume loop owns it, as it owns its consumer.

    A consumer with ``enable.partition.eof`` must say where it goes on from
    (``positions``: the next offset of each partition it read a record of): librdkafka
    counts the end-of-partition event as a record, so its ``position()`` is one past
    the end after one (measured: resuming there skipped a record per partition).

    >>> pause = IdlePause(after_s=0.0)
    >>> pause.update(None, 3)  # records arrived: nothing to do, not even a consumer
    >>> pause.paused
    False
    """

    def __init__(
        self,
        after_s: float = AFTER_S,
        interval_s: float = INTERVAL_S,
        timeout_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        positions: Callable[[], Mapping[Key, int]] | None = None,
    ) -> None:
        self.after_s = after_s
        self.positions = positions
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.clock = clock
        self.pauses = 0
        self.resumes = 0
        self._last_seen = clock()
        self._next_ask = 0.0
        # Paused partitions: the end the consumer's fetches last saw, and its position.
        self._seen: dict[Key, int] = {}
        self._positions: dict[Key, int] = {}

    @property
    def paused(self) -> bool:
        return bool(self._seen)

    def details(self) -> dict[str, object]:
        """For a status page: paused now, and how often it paused and resumed."""
        return {
            "idle_paused": self.paused,
            "idle_pauses": self.pauses,
            "idle_resumes": self.resumes,
        }

    def wait_s(self, default: float) -> float:
        """How long the loop's next poll may wait: `default`, or while paused until the
        next ask for the ends (nothing can arrive before: nothing is fetched).

        >>> IdlePause().wait_s(0.02)
        0.02
        """
        if not self._seen:
            return default
        return max(default, self._next_ask - self.clock())

    def update(self, consumer: Consumer | None, got: int) -> None:
        """One poll of `consumer` gave `got` messages (records or errors)."""
        now = self.clock()
        if got:
            self._last_seen = now
            if self._seen:
                # Fetched before the pause took hold: go on from what was delivered, or
                # where the pause began for a partition whose position is not known now.
                delivered = self._starts(consumer, consumer.assignment())
                self._positions = {
                    key: offset if offset >= 0 else self._positions.get(key, offset)
                    for key, offset in delivered.items()
                }
                self.resume(consumer)
            return
        if not self._seen:
            if now - self._last_seen >= self.after_s:
                self._pause(consumer, now)
        elif now >= self._next_ask:
            self._next_ask = now + self.interval_s
            if self._arrived(consumer):
                self.resume(consumer)

    def forget(self, *_args: object) -> None:
        """A rebalance: nothing is paused any more (newly assigned partitions fetch from
        their committed offsets), and the idle time counts from now. Takes and ignores
        the rebalance callback's arguments."""
        self._seen.clear()
        self._positions.clear()
        self._last_seen = self.clock()

    def resume(self, consumer: Consumer) -> None:
        """Fetch again, each partition from the position it was paused at (librdkafka can
        otherwise resume one message past it on the embedded broker; see the sink)."""
        if not self._seen:
            return
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        parts = [TopicPartition(t, p) for t, p in self._seen if (t, p) in assigned]
        positions = dict(self._positions)
        self.forget()
        self.resumes += 1
        if not parts:
            return
        consumer.resume(parts)
        for tp in parts:
            offset = positions.get((tp.topic, tp.partition), -1)
            if offset >= 0:
                with contextlib.suppress(KafkaException):
                    consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
        # librdkafka's broker thread notices resumed partitions only when it next wakes,
        # seconds later at times (a partition never read from, measured): a request wakes it.
        with contextlib.suppress(KafkaException):
            consumer.offsets_for_times([self._end(parts[0])], timeout=self.timeout_s)

    # -- inside ------------------------------------------------------------------------

    def _pause(self, consumer: Consumer, now: float) -> None:
        assigned = consumer.assignment()
        seen: dict[Key, int] = {}
        for tp in assigned:
            _low, high = consumer.get_watermark_offsets(tp, cached=True)
            if high < 0:
                # No fetch answered for it yet: wait for one (its end is the reference).
                self._last_seen = now
                return
            seen[(tp.topic, tp.partition)] = high
        if not seen:
            self._last_seen = now  # nothing assigned: look again later
            return
        starts = self._starts(consumer, assigned)
        if any(offset < 0 for offset in starts.values()):
            # Where a partition goes on from is not known now (a broker slow to answer):
            # resumed without a seek, librdkafka may skip what a purged fetch held.
            self._last_seen = now
            return
        consumer.pause(assigned)
        self._seen = seen
        self._positions = starts
        self._next_ask = now + self.interval_s
        self.pauses += 1
        log.debug("idle for %.1f s: paused %d partitions", self.after_s, len(seen))

    def _starts(self, consumer: Consumer, assigned: list[TopicPartition]) -> dict[Key, int]:
        """Where each paused partition goes on from: its position or, where nothing was
        delivered since the assignment, where its fetches began: the committed offset,
        or with none the earliest (lastmile's consumers start there). Left to itself,
        librdkafka resumes such a partition one record late at times (measured with the
        sink: offset 0 of each partition was skipped), or seconds late."""
        if self.positions is not None:
            known = self.positions()
            starts = {
                (tp.topic, tp.partition): known.get((tp.topic, tp.partition), -1) for tp in assigned
            }
        else:
            starts = {(tp.topic, tp.partition): tp.offset for tp in consumer.position(assigned)}
        unread = [TopicPartition(t, p) for (t, p), offset in starts.items() if offset < 0]
        if not unread:
            return starts
        try:
            committed = consumer.committed(unread, timeout=self.timeout_s)
            for tp in committed:
                starts[(tp.topic, tp.partition)] = tp.offset
            earliest = [
                TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING)
                for tp in committed
                if tp.offset < 0
            ]
            if earliest:
                for tp in consumer.offsets_for_times(earliest, timeout=self.timeout_s):
                    if tp.error is None:
                        starts[(tp.topic, tp.partition)] = tp.offset
        except KafkaException as err:
            log.debug("where paused partitions go on from is not known now: %s", err)
        return starts

    @staticmethod
    def _end(tp: TopicPartition) -> TopicPartition:
        """What ``offsets_for_times`` answers with the partition's end."""
        return TopicPartition(tp.topic, tp.partition, OFFSET_END)

    def _arrived(self, consumer: Consumer) -> bool:
        """Whether the broker's end of a paused partition is past the one last fetched;
        also True when the assignment changed under the pause (resume what is left)."""
        assigned = {(tp.topic, tp.partition) for tp in consumer.assignment()}
        if assigned != set(self._seen):
            return True
        asked = [self._end(TopicPartition(t, p)) for t, p in self._seen]
        try:
            ends = consumer.offsets_for_times(asked, timeout=self.timeout_s)
        except KafkaException as err:
            log.debug("ends of paused partitions not known now: %s", err)
            return False
        return any(
            tp.error is None and tp.offset > self._seen[(tp.topic, tp.partition)] for tp in ends
        )
