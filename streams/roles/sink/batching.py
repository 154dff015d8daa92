"""Batching: the buffered messages of a partition, the chunks cut from them, rounds.

A chunk is one insert; its boundaries, once journaled, never change, so its
deduplication token is the same on every attempt and every replay.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Sequence
from typing import Any

from confluent_kafka import Message

from streams.roles.sink.reader import DeadOut, RouteReader

__all__ = ["Chunk", "PartitionBuffer", "Round"]


class Chunk:
    """One insert: the messages of one topic-partition in ``[first, last]``.

    Its boundaries are fixed before its first insert (and journaled), so every
    attempt, and every replay after a crash, carries the same deduplication token.
    ``items`` holds, per message, its Avro body (bytes), None (nothing to store) or
    a :class:`DeadOut`.
    """

    __slots__ = (
        "reader",
        "partition",
        "first",
        "last",
        "messages",
        "offsets",
        "items",
        "replayed",
        "done",
        "abandoned",
        "slow",
        "dead_pending",
        "rows",
        "data",
    )

    def __init__(
        self,
        reader: RouteReader,
        partition: int,
        first: int,
        last: int,
        messages: list[Message],
        offsets: list[int],
        items: list[Any],
        replayed: bool,
    ) -> None:
        self.reader = reader
        self.partition = partition
        self.first = first
        self.last = last
        self.messages = messages
        self.offsets = offsets
        self.items = items
        self.replayed = replayed
        self.done = False
        self.abandoned = False
        self.slow = False  # re-checked with the codec after ClickHouse refused it
        self.dead_pending: list[DeadOut] = [i for i in items if isinstance(i, DeadOut)]
        self.rows = sum(1 for i in items if isinstance(i, bytes))
        self.data: bytes | None = None  # the framed insert, kept for retries

    def frame(self, database: str, indexes: Sequence[int] | None = None) -> bytes | None:
        """The INSERT statement and Avro container of the rows (all, or at ``indexes``);
        None when there are none. Framing all of them is done once and kept."""
        if indexes is None and self.data is not None and not self.slow:
            return self.data
        offsets, bodies = self.rows_of(indexes)
        if not bodies:
            return None
        landing = self.reader.route.landing
        statement = f"INSERT INTO `{database}`.{landing} FORMAT Avro\n".encode()
        data = self.reader.framer.frame(self.partition, offsets, bodies, prefix=statement)
        if indexes is None and not self.slow:
            self.data = data
        return data

    @property
    def topic(self) -> str:
        return self.reader.topic

    @property
    def token(self) -> str:
        return f"{self.reader.topic}:{self.partition}:{self.first}-{self.last}"

    def rows_of(self, indexes: Sequence[int] | None = None) -> tuple[list[int], list[bytes]]:
        """(offsets, bodies) of the rows, or of the rows at ``indexes`` into ``items``."""
        items = self.items
        picked = range(len(items)) if indexes is None else indexes
        offsets, bodies = [], []
        for i in picked:
            body = items[i]
            if isinstance(body, bytes):
                offsets.append(self.offsets[i])
                bodies.append(body)
        return offsets, bodies


class PartitionBuffer:
    """Buffered messages of one assigned topic-partition."""

    __slots__ = (
        "reader",
        "partition",
        "messages",
        "offsets",
        "items",
        "nbytes",
        "since",
        "first_seen",
        "replay",
        "eof",
        "committed",
        "next_offset",
    )

    def __init__(self, reader: RouteReader, partition: int) -> None:
        self.reader = reader
        self.partition = partition
        self.messages: list[Message] = []
        self.offsets: list[int] = []
        self.items: list[Any] = []
        self.nbytes = 0
        self.since = 0.0
        self.first_seen: int | None = None
        # Journaled ranges still to reproduce; None until the journal has been read.
        self.replay: list[tuple[int, int]] | None = None
        self.eof: int | None = None  # high watermark at the last end-of-partition event
        self.committed: int | None = None
        self.next_offset: int | None = None  # after the last message received

    def take(self, limit: int) -> Chunk | None:
        """The next chunk to write, or None (nothing buffered, or an unfinished
        journaled range is still being re-read)."""
        while self.offsets:
            if self.replay:
                first, last = self.replay[0]
                k = _count_upto(self.offsets, last)
                complete = k < len(self.offsets) or (k and self.offsets[k - 1] >= last)
                complete = complete or (self.eof is not None and self.eof > last)
                if self.offsets[0] < first:
                    # Offsets below a journaled range were never written: a free chunk
                    # that stops short of the range.
                    k = _count_upto(self.offsets, first - 1)
                    return self._cut(min(k, limit), None)
                if not complete:
                    return None
                self.replay.pop(0)
                if k == 0:
                    continue  # the range's messages are gone (compaction): nothing to redo
                return self._cut(k, (first, last))
            return self._cut(min(len(self.offsets), limit), None)
        return None

    def _cut(self, k: int, bounds: tuple[int, int] | None) -> Chunk:
        messages, offsets, items = self.messages[:k], self.offsets[:k], self.items[:k]
        del self.messages[:k], self.offsets[:k], self.items[:k]
        first, last = bounds if bounds else (offsets[0], offsets[-1])
        self.since = time.monotonic() if self.offsets else 0.0
        return Chunk(
            self.reader, self.partition, first, last, messages, offsets, items, bounds is not None
        )


def _count_upto(offsets: list[int], bound: int) -> int:
    """How many leading offsets are <= bound (offsets ascend)."""
    return bisect.bisect_right(offsets, bound)


class Round:
    """The chunks written together; the writer thread retries them until written."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self.done = threading.Event()
        self.rows = sum(c.rows for c in chunks)
