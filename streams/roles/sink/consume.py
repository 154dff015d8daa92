"""The Kafka side of the sink: the consume loop, dispatch of rounds, commits in order,
flow control (pause/resume), lag, and rebalances."""

from __future__ import annotations

import contextlib
import logging
import queue
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from schemas import DecodeError
from streams.config import BACKGROUND_FETCH_WAIT_MS
from streams.roles.sink.batching import PartitionBuffer, Round
from streams.roles.sink.writer import SinkWriter

__all__ = ["PIPELINE", "SinkConsumeLoop"]

log = logging.getLogger("lastmile.sink")

PIPELINE = 2  # rounds in flight at once


class SinkConsumeLoop(SinkWriter):
    """What the consuming thread does each step, and its rebalance callbacks."""

    def _consumer_config(self) -> dict[str, Any]:
        return self.settings.consumer_config(
            self.group_id,
            BACKGROUND_FETCH_WAIT_MS,  # rows land in batches anyway; the broker's CPU counts
            **{
                "isolation.level": "read_committed",  # never store an aborted prediction
                "enable.partition.eof": True,  # tells when a journaled range is complete
                # librdkafka's own prefetch queue is part of the memory bound.
                "queued.max.messages.kbytes": 32768,
                "fetch.max.bytes": 16 << 20,
            },
        )

    def _step(self, consumer: Consumer) -> None:
        busy = bool(self._inflight) or self.stats.buffered_rows > 0
        wait = 0.02 if busy else 0.1
        if self._idle is not None and not busy:
            wait = self._idle.wait_s(wait)  # paused: nothing is fetched until the next ask
        messages = consumer.consume(10_000, wait)
        if messages:
            self._add(messages)
        self._idle_step(consumer, len(messages))  # after _add: it may resume at next offsets
        self._finish_round(consumer)
        self._lookup_journals()
        self._flow_control(consumer)
        self._dispatch()
        now = time.monotonic()
        if now >= self._next_lag:
            # The watermarks of fetch responses are free; a paused consumer fetches
            # nothing, so then ask the broker (every 5 s).
            self._next_lag = now + (5.0 if self._paused else 1.0)
            self._update_lag(consumer, cached=not self._paused)

    def _idle_step(self, consumer: Consumer, got: int) -> None:
        """The idle pause (:mod:`streams.kafka.idle`), when flow control holds nothing."""
        idle = self._idle
        if idle is None:
            return
        if self._paused:
            idle.forget()  # flow control's pause, not idleness: idle time counts from now
            return
        idle.update(consumer, got)  # resumes at the sink's own next offsets (_next_offsets)
        self.stats.idle_paused = idle.paused

    def _add(self, messages: list[Message]) -> None:
        # The hot loop (~2 us a message): consume() returns runs of one partition, so
        # the partition's state is looked up once per run.
        parts = self._parts
        rows = nbytes = 0
        now = time.monotonic()
        key: tuple[str, int] | None = None
        part: PartitionBuffer | None = None
        body: Callable[[Any, Any], Any] | None = None
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof_part = parts.get((m.topic(), m.partition()))
                    if eof_part is not None:
                        eof_part.eof = m.offset()
                else:
                    log.warning("sink: consume error: %s", err)
                continue
            k = (m.topic(), m.partition())
            if k != key:
                key, part = k, parts.get(k)
                body = part.reader.body if part is not None else None
            if part is None or body is None:
                continue  # a partition revoked a moment ago
            offset = m.offset()
            value = m.value()
            try:
                item: Any = body(value, m.headers())
            except DecodeError as exc:
                item = self._dead(m, exc.stage, exc.reason)
            if part.first_seen is None:
                part.first_seen = offset
            if not part.offsets:
                part.since = now
            part.next_offset = offset + 1
            part.messages.append(m)
            part.offsets.append(offset)
            part.items.append(item)
            size = (len(value) if value else 0) + 200
            part.nbytes += size
            nbytes += size
            rows += 1
        self.stats.consumed += rows
        self.stats.buffered_rows += rows
        self.stats.buffered_bytes += nbytes

    def _dispatch(self) -> None:
        """Hand the writer the next round when a batch is due.

        Up to :data:`PIPELINE` rounds are in flight: the next one is framed here while
        the writer waits on ClickHouse for the previous one, so the server never
        idles while the sink prepares data. A partition may then have two
        uncommitted ranges in the journal; a replay re-forms each of them.
        """
        if len(self._inflight) >= PIPELINE or self._to_commit or not self.stats.buffered_rows:
            return
        now = time.monotonic()
        ready = [p for p in self._parts.values() if p.offsets and p.replay is not None]
        if not ready:
            return
        due = self.stats.buffered_rows >= self.options.batch_rows or any(
            now - p.since >= self.options.batch_seconds for p in ready
        )
        if not due:
            return
        chunks = []
        for part in ready:
            before, nbytes = len(part.offsets), part.nbytes
            chunk = part.take(self.options.batch_rows)
            if chunk is None:
                continue
            taken = before - len(part.offsets)
            # Bytes are accounted per partition, not per message: take the average.
            size = nbytes if not part.offsets else nbytes * taken // before
            part.nbytes -= size
            self.stats.buffered_rows -= taken
            self.stats.buffered_bytes -= size
            chunk.frame(self.database)
            chunks.append(chunk)
        if not chunks:
            return
        round_ = Round(chunks)
        self._inflight.append(round_)
        self.stats.in_flight_rows = sum(r.rows for r in self._inflight)
        self._rounds.put(round_)

    def _finish_round(self, consumer: Consumer) -> None:
        """Queue the offsets of written rounds, oldest first, and commit them."""
        while self._inflight and self._inflight[0].done.is_set():
            round_ = self._inflight.popleft()
            for c in round_.chunks:
                if c.done and not c.abandoned and (c.topic, c.partition) in self._parts:
                    self._to_commit.append(TopicPartition(c.topic, c.partition, c.last + 1))
            self.stats.in_flight_rows = sum(r.rows for r in self._inflight)
        if self._to_commit:
            self._commit(consumer)

    def _commit(self, consumer: Consumer) -> None:
        latest: dict[tuple[str, int], TopicPartition] = {}
        for tp in self._to_commit:
            if (tp.topic, tp.partition) in self._parts:
                latest[(tp.topic, tp.partition)] = tp  # queued in order: the last one wins
        offsets = list(latest.values())
        if not offsets:
            self._to_commit = []
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as err:
            # Retried on the next step; no new batch forms meanwhile, so the journal
            # never holds two unfinished ranges of one partition.
            self.stats.failed(err, clickhouse=False)
            log.warning("sink: commit failed (%s); retrying", err)
            return
        for tp in offsets:
            part = self._parts.get((tp.topic, tp.partition))
            if part is not None:
                part.committed = tp.offset
        self._to_commit = []

    def _flow_control(self, consumer: Consumer) -> None:
        opts = self.options
        rows, nbytes = self.stats.buffered_rows, self.stats.buffered_bytes
        if not self._paused and (rows >= opts.buffer_rows or nbytes >= opts.buffer_bytes):
            self._paused = self._repause = True
            log.info("sink: buffer full (%d messages, %d MB): pausing", rows, nbytes >> 20)
        elif self._paused and rows <= opts.buffer_rows // 2 and nbytes <= opts.buffer_bytes // 2:
            self._paused = False
            with contextlib.suppress(KafkaException):
                consumer.resume(consumer.assignment())
            self._seek_to_next(consumer)
            log.info("sink: buffer drained: resuming")
        if self._paused and self._repause:
            # Also after a rebalance: new partitions arrive unpaused.
            with contextlib.suppress(KafkaException):
                consumer.pause(consumer.assignment())
            self._repause = False
        self.stats.paused = self._paused

    def _seek_to_next(self, consumer: Consumer) -> None:
        """Point every partition at the message after the last one received.

        librdkafka (2.12, against the embedded broker) sometimes skips one message
        per partition on resume after a long pause: its own position() is already
        one past what it delivered. The sink knows what it received, so it says
        where to go on (nothing received yet: the committed offset).
        """
        for (topic, partition), part in self._parts.items():
            target = part.next_offset if part.next_offset is not None else part.committed
            if target is None:
                continue
            try:
                consumer.seek(TopicPartition(topic, partition, target))
            except KafkaException as err:
                log.warning("sink: cannot seek %s[%d] to %d: %s", topic, partition, target, err)

    def _update_lag(self, consumer: Consumer, cached: bool) -> None:
        """Messages in the assigned partitions not yet written (committed) by this sink."""
        try:
            unknown = [p for p in self._parts.values() if p.committed is None]
            if unknown:
                # Nothing committed by this sink yet: the group's offset is the base.
                found = consumer.committed(
                    [TopicPartition(p.reader.topic, p.partition) for p in unknown], timeout=2.0
                )
                for tp in found:
                    part = self._parts.get((tp.topic, tp.partition))
                    if part is not None and part.committed is None and tp.offset >= 0:
                        part.committed = tp.offset
            lag = 0
            for (topic, partition), part in list(self._parts.items()):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=1.0, cached=cached
                )
                if high < 0:
                    continue  # not known yet
                base = part.committed if part.committed is not None else low
                lag += max(0, high - base)
        except KafkaException:
            return
        self.stats.lag = lag

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._idle is not None:
            self._idle.forget()
        for tp in partitions:
            reader = self.readers.get(tp.topic)
            if reader is not None:
                self._parts[(tp.topic, tp.partition)] = PartitionBuffer(reader, tp.partition)
        self.stats.assigned = len(self._parts)
        self._repause = self._paused
        self._assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, commit=True)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, commit=False)

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], commit: bool) -> None:
        if self._idle is not None:
            self._idle.forget()
        keys = {(tp.topic, tp.partition) for tp in partitions}
        if commit:
            # Rounds about to finish are worth waiting for: committed now rather than
            # replayed by the next owner.
            deadline = time.monotonic() + 5.0
            for round_ in list(self._inflight):
                round_.done.wait(max(0.0, deadline - time.monotonic()))
        unfinished = [r for r in self._inflight if not r.done.is_set()]
        for round_ in unfinished:
            for c in round_.chunks:
                if (c.topic, c.partition) in keys:
                    c.abandoned = True
        # No journal write for these partitions may land after the next owner has
        # read the journal: wait out one in progress.
        if unfinished and self._journal_lock.acquire(timeout=60):
            self._journal_lock.release()
        if commit:
            self._finish_round(consumer)
        self._to_commit = [tp for tp in self._to_commit if (tp.topic, tp.partition) not in keys]
        for key in keys:
            part = self._parts.pop(key, None)
            if part is not None:
                self.stats.buffered_rows -= len(part.offsets)
                self.stats.buffered_bytes -= part.nbytes
        self.stats.assigned = len(self._parts)

    def _shutdown(self, consumer: Consumer) -> None:
        deadline = time.monotonic() + 10.0
        for round_ in list(self._inflight):
            round_.done.wait(max(0.0, deadline - time.monotonic()))
        self._finish_round(consumer)
        with contextlib.suppress(queue.Full):
            self._rounds.put_nowait(None)
