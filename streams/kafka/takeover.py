"""Taking over from a killed worker without repeating what it left visible.

A lane that dies inside a transaction leaves it open. Kafka aborts it and hides its
records from read_committed readers. The embedded broker (Tansu 0.6) does neither: the
transaction stays open until a producer with the same ``transactional.id`` fences it,
and then its records become visible while its consumed offsets are *not* committed. The
next worker replays the batch, and every record the killed one had sent would be read
twice.

So a lane that opts in (``BatchLane(skip_visible=True)``; outputs that are a function of
their input alone, as the scorer's) keeps a journal beside its transactional slot:
before a transaction sends anything, :class:`InFlight` records the transaction's tag,
start time, output topics and the last input offset of each partition; the tag rides on
every output as the ``lastmile-txn`` header. The worker that claims the slot next
fences the old producer, reads the journal, and, if that transaction never finished,
counts what it left visible (:func:`left_visible`, by topic and key). While it replays
those inputs it skips as many outputs of each topic and key: each record is read once.

A stateful role's outputs are the same on a replay but may come out in other batches
and another order (the monitor closes a window when its watermark allows, and the
watermark follows what the fetches brought). Such outputs carry their identity in the
``lastmile-id`` header (:func:`identity_header`): those are skipped by identity, wherever
the replay produces them, until the lane has caught up with its inputs.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from confluent_kafka import Consumer, KafkaError, TopicPartition

from streams.config import Settings

log = logging.getLogger("lastmile.takeover")

TAG_HEADER = "lastmile-txn"
IDENTITY_HEADER = "lastmile-id"
# Producer clocks and the broker's may disagree a little: scan from this much earlier.
CLOCK_SLACK_MS = 5_000


class OutputKey(NamedTuple):
    """What the skip list matches a replayed output on: its topic and key, and its
    identity when it has one (then the key is left out: the identity says it all)."""

    topic: str
    key: bytes | None
    identity: bytes | None = None


def identity_header(identity: str) -> tuple[str, bytes]:
    """The header that names an output whose replay may come in another batch.

    >>> identity_header("m|1|count|60.0")
    ('lastmile-id', b'm|1|count|60.0')
    """
    return (IDENTITY_HEADER, identity.encode())


def identity_of(headers: list[tuple[str, bytes]] | None) -> bytes | None:
    """The ``lastmile-id`` header's value, None without one."""
    if headers:
        for name, value in headers:
            if name == IDENTITY_HEADER:
                return value
    return None


def output_key(topic: str, key: bytes | str | None, headers: list | None) -> OutputKey:
    """The skip list's key of an output.

    >>> output_key("t", "k", None)
    OutputKey(topic='t', key=b'k', identity=None)
    >>> output_key("t", "k", [identity_header("w1")])
    OutputKey(topic='t', key=None, identity=b'w1')
    """
    identity = identity_of(headers)
    if identity is not None:
        return OutputKey(topic, None, identity)
    if isinstance(key, str):
        key = key.encode()
    return OutputKey(topic, key)


@dataclass
class Transaction:
    """What the journal says of one transaction: its tag, and the tags of unfinished
    transactions of killed predecessors whose visible records it is still replaying
    (a worker killed during a replay leaves both to skip)."""

    tags: list[str]
    begun_ms: int
    topics: list[str]
    ends: dict[str, dict[int, int]] = field(default_factory=dict)
    done: bool = False

    def last_offsets(self) -> dict[tuple[str, int], int]:
        """The last input offset of each partition the transaction consumed."""
        return {(t, int(p)): o for t, parts in self.ends.items() for p, o in parts.items()}

    def including(self, older: Transaction | None) -> Transaction:
        """This transaction, still owing what `older` (unfinished) left to skip."""
        if older is None:
            return self
        ends = {t: dict(parts) for t, parts in older.ends.items()}
        for t, parts in self.ends.items():
            for p, o in parts.items():
                mine = ends.setdefault(t, {})
                mine[p] = max(o, mine.get(p, o))
        return Transaction(
            [*older.tags, *self.tags],
            min(self.begun_ms, older.begun_ms),
            sorted({*self.topics, *older.topics}),
            ends,
        )


_PAGE = 4096


class InFlight:
    """The journal of a lane's transactions, one small file per transactional slot.

    >>> import tempfile, pathlib
    >>> journal = InFlight(pathlib.Path(tempfile.mkdtemp()) / "slot.journal")
    >>> journal.begin(Transaction(["a1:1"], 1000, ["out"], {"in": {0: 41}}))
    >>> journal.last().done, journal.last().last_offsets()
    (False, {('in', 0): 41})
    >>> journal.finish()
    >>> journal.last().done
    True
    >>> wide = Transaction(["a1:2"], 1001, ["out"], {"in": {p: 10**9 for p in range(400)}})
    >>> journal.begin(wide)  # over a page: written, then renamed into place
    >>> journal.last().ends["in"][399]
    1000000000
    >>> journal.begin(Transaction(["a1:3"], 1002, ["out"], {"in": {0: 42}}))
    >>> journal.last().tags, journal.last().last_offsets()
    (['a1:3'], {('in', 0): 42})
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._open: Transaction | None = None

    def begin(self, transaction: Transaction) -> None:
        """Record `transaction` as open; call before it sends anything."""
        self._open = transaction
        self._write(transaction)

    def finish(self) -> None:
        """The open transaction committed or aborted: nothing of it is left to skip."""
        if self._open is not None:
            self._open.done = True
            self._write(self._open)
            self._open = None

    def settle(self) -> None:
        """Mark the last transaction finished although nobody took it over: a lane at
        least once replayed its batch, duplicates allowed, so nothing is left to skip."""
        last = self.last()
        if last is not None and not last.done:
            last.done = True
            self._write(last)

    def last(self) -> Transaction | None:
        """The last transaction recorded, None if there is none (or the file is torn)."""
        try:
            data = json.loads(self.path.read_bytes())
            ends = data["ends"]  # JSON made the partition numbers strings
            data["ends"] = {t: {int(p): o for p, o in ps.items()} for t, ps in ends.items()}
            return Transaction(**data)
        except (OSError, ValueError, TypeError, KeyError):
            return None

    def _write(self, transaction: Transaction) -> None:
        # One pwrite over the previous record, padded with spaces to the file's length
        # (JSON ignores them): twice per transaction, 9 us against write-then-rename's
        # 156 us. A killed worker's write within one page happened whole or not at all
        # (Linux may cut a write short between pages when the process is being killed),
        # so a longer record (hundreds of partitions) is written then renamed.
        data = json.dumps(transaction.__dict__).encode()
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            padded = data.ljust(os.fstat(fd).st_size)
            if len(padded) <= _PAGE:
                os.pwrite(fd, padded, 0)
                return
        finally:
            os.close(fd)
        spare = self.path.with_suffix(".tmp")
        spare.write_bytes(data)
        os.replace(spare, self.path)


def left_visible(
    settings: Settings, transaction: Transaction, timeout: float = 60.0
) -> collections.Counter[OutputKey]:
    """How many records of each :class:`OutputKey` the unfinished `transaction` left readable.

    Scans each output partition from the transaction's start time (``offsets_for_times``)
    to its end for records carrying the transaction's tag.
    """
    found: collections.Counter[OutputKey] = collections.Counter()
    since = transaction.begun_ms - CLOCK_SLACK_MS
    consumer = Consumer(
        settings.consumer_config(
            "lastmile-takeover",
            **{"enable.partition.eof": True, "isolation.level": "read_committed"},
        )
    )
    try:
        starts = _starts(consumer, transaction.topics, since, timeout)
        if not starts:
            return found
        consumer.assign(starts)
        todo = {(tp.topic, tp.partition) for tp in starts}
        # Tansu answers offsets_for_times with 0 when no record is as new as asked: a
        # partition whose first record read is older than the transaction has none of it.
        from_zero = {(tp.topic, tp.partition) for tp in starts if tp.offset == 0}
        tags = {t.encode() for t in transaction.tags}
        deadline = time.monotonic() + timeout
        while todo:
            if time.monotonic() > deadline:
                raise TimeoutError(f"scanning {transaction.topics} took over {timeout:.0f} s")
            for message in consumer.consume(5000, 0.5):
                where = (message.topic(), message.partition())
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        todo.discard(where)
                    continue
                if where in from_zero:
                    from_zero.discard(where)
                    if message.timestamp()[1] < since:
                        todo.discard(where)
                        consumer.incremental_unassign([TopicPartition(*where)])
                        continue
                headers = message.headers()
                if where in todo and tagged_with(headers, tags):
                    found[output_key(message.topic(), message.key(), headers)] += 1
    finally:
        consumer.close()
    return found


def _starts(
    consumer: Consumer, topics: Iterable[str], since_ms: int, timeout: float
) -> list[TopicPartition]:
    wanted = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout).topics.get(topic)
        if metadata is None or metadata.error is not None:
            continue
        wanted += [TopicPartition(topic, p, since_ms) for p in metadata.partitions]
    if not wanted:
        return []
    starts = []
    for tp in consumer.offsets_for_times(wanted, timeout=timeout):
        if tp.offset >= 0:  # -1: nothing that new in the partition
            starts.append(TopicPartition(tp.topic, tp.partition, tp.offset))
    return starts


def tagged_with(headers: list[tuple[str, bytes]] | None, tags: set[bytes]) -> bool:
    """Whether a record with `headers` was sent by a transaction of `tags` (encoded)."""
    return bool(headers) and any(k == TAG_HEADER and v in tags for k, v in headers)


class SkipList:
    """The outputs a replay must not send again, used up as the replay produces them.

    Outputs without identity are matched by topic and key in the order the replay
    produces them, and forgotten once the replay passed the killed transaction's last
    inputs (:meth:`passed`). Outputs with identity are matched by it, wherever they come,
    and forgotten only once the lane has caught up with its inputs (:meth:`caught_up`).

    >>> skip = SkipList(collections.Counter({OutputKey("p", b"k"): 1}), {("in", 0): 9})
    >>> skip.take(OutputKey("p", b"k")), skip.take(OutputKey("p", b"k"))
    (True, False)
    >>> skip.passed({("in", 0): 10}), bool(skip)
    (True, False)
    >>> late = OutputKey("m", None, b"window-2")
    >>> skip = SkipList(collections.Counter({late: 1}), {("in", 0): 9})
    >>> skip.passed({("in", 0): 10}), bool(skip)  # the replay may still produce it
    (False, True)
    >>> skip.take(late), bool(skip)
    (True, False)
    """

    def __init__(
        self, counts: collections.Counter[OutputKey], last_offsets: Mapping[tuple[str, int], int]
    ) -> None:
        self.counts = +counts
        self.last_offsets = dict(last_offsets)
        self.inputs_passed = False

    def __bool__(self) -> bool:
        return bool(self.counts)

    def take(self, key: OutputKey) -> bool:
        """True (and one fewer to skip) if an output of `key` is to be skipped."""
        n = self.counts.get(key, 0)
        if not n:
            return False
        if n == 1:
            del self.counts[key]
        else:
            self.counts[key] = n - 1
        return True

    def passed(self, positions: Mapping[tuple[str, int], int]) -> bool:
        """Whether the list is done with, now the replay reads from `positions` (next
        offset per owned partition): once past every input of the killed transaction
        it owns, outputs without identity are forgotten; True when nothing is left."""
        owned = [(tp, last) for tp, last in self.last_offsets.items() if tp in positions]
        if not self.inputs_passed and all(positions[tp] > last for tp, last in owned):
            self.inputs_passed = True
            anonymous = [k for k in self.counts if k.identity is None]
            self._forget(anonymous, "its inputs went to another worker, or a model changed")
        return not self.counts

    def caught_up(self) -> bool:
        """The lane read all its inputs after passing the killed transaction's: what was
        not met again never will be. True when the list is done with."""
        if self.inputs_passed:
            self._forget(list(self.counts), "the replay caught up without producing them")
        return not self.counts

    def _forget(self, keys: list[OutputKey], why: str) -> None:
        left = sum(self.counts.pop(k) for k in keys)
        if left:
            log.warning(
                "takeover: %d records the killed worker left were not met again in the replay (%s)",
                left,
                why,
            )
