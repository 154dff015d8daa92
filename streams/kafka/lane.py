"""The batch lane: consume many, process them together, produce many, commit once.

Faust's per-event stream path tops out at a few thousand events/s on these
machines (DESIGN.md, "Measured"); every lastmile role that must go fast runs one
of these loops on a thread beside the Faust app instead. A handler turns a batch
of Kafka messages into output records and dead letters; the lane owns delivery:

* ``exactly_once=True`` (the default): the outputs and the consumed offsets are
  committed in one Kafka transaction, so a crash at any point replays the batch
  and readers under ``read_committed`` see each output once. The transactional.id
  survives restarts (:class:`TransactionalSlot`), so a restarted worker fences the
  killed one's open transaction at once; on the embedded broker, which shows that
  transaction's records, ``skip_visible`` lanes also skip what it left readable
  (:mod:`streams.kafka.takeover`).
* ``exactly_once=False``: produce, flush (acks=all), then commit offsets
  synchronously; a crash can repeat a batch on the wire (at-least-once).

Either way an offset is committed only after what it produced is durable.
"""

from __future__ import annotations

import fcntl
import gc
import itertools
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from streams.config import Settings
from streams.kafka.takeover import TAG_HEADER, InFlight, SkipList, Transaction, left_visible

log = logging.getLogger("lastmile.lane")

# Messages per batch, and so per transaction, unless a role says otherwise.
MAX_BATCH = 5000

# Every batch ends in a flush (its commit), so the producer's linger only decides whether
# records leave while the batch is still being produced: 2 ms lets the broker take them
# as the lane works (+4-6% events/s against 20 ms), in batches of a few ms' records, not
# the per-record batches the embedded broker slows down on. ``kafka_client`` may change it.
LINGER_MS = 2

_NOTHING = object()


@dataclass(slots=True)
class Output:
    """One record the handler wants produced; ``partition`` -1 lets the key choose."""

    topic: str
    value: bytes | None
    key: bytes | str | None = None
    headers: list[tuple[str, bytes]] | None = None
    partition: int = -1


class BatchHandler(Protocol):
    """What a role plugs into a lane."""

    def process(self, messages: Sequence[Message]) -> list[Output]:
        """Turn a batch into outputs (predictions, dead letters, ...). Must not raise for
        bad input: bad messages become dead-letter outputs."""
        ...


@dataclass
class LaneStats:
    """Counters a lane keeps for ``lastmile status`` and the dashboard."""

    consumed: int = 0
    produced: int = 0
    batches: int = 0
    last_batch_at: float = 0.0
    last_error: str | None = None
    errors: int = 0
    started_at: float = field(default_factory=time.time)

    def as_dict(self) -> dict[str, object]:
        return {
            "consumed": self.consumed,
            "produced": self.produced,
            "batches": self.batches,
            "last_batch_at": self.last_batch_at,
            "last_error": self.last_error,
            "errors": self.errors,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


class TransactionalSlot:
    """A ``transactional.id`` that a restarted worker takes over but two live lanes never
    share.

    A producer killed inside a transaction leaves it open. Kafka aborts it after
    ``transaction.timeout.ms``; the embedded broker (Tansu) never does, and its
    read_committed readers stop at the open transaction for good, until a producer with
    the *same* id calls ``init_transactions`` and so fences the dead one. So each lane
    claims the lowest free slot of its group: an ``flock`` on a file under
    ``<data_dir>/transactions``, which the OS releases when the process dies. The
    worker restarted in its place claims the same slot, and the same id.

    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> first = TransactionalSlot(folder, "lastmile-scorer")
    >>> second = TransactionalSlot(folder, "lastmile-scorer")
    >>> first.claim()[-2:], second.claim()[-2:]
    ('-0', '-1')
    >>> first.release()
    >>> TransactionalSlot(folder, "lastmile-scorer").claim()[-2:]
    '-0'
    """

    def __init__(self, folder: Path, name: str) -> None:
        self.folder = folder
        self.name = name
        self._file: IO[bytes] | None = None
        self.id: str | None = None

    def claim(self) -> str:
        """Lock the lowest free slot and return its transactional.id."""
        if self.id is not None:
            return self.id
        self.folder.mkdir(parents=True, exist_ok=True)
        for slot in itertools.count():
            transactional_id = f"{self._prefix}{slot}"
            handle = self._lock(transactional_id)
            if handle is not None:
                self._file, self.id = handle, transactional_id
                return transactional_id
        raise AssertionError("unreachable")

    def unclaimed(self) -> Iterator[str]:
        """The ids of this name's slots on this host that no live lane holds, each locked
        while the caller handles it."""
        if not self.folder.is_dir():
            return
        prefix = self._prefix
        for path in sorted(self.folder.glob(f"{prefix}*.lock")):
            if not path.stem[len(prefix):].isdigit():
                continue  # another lane whose name starts like this one
            handle = self._lock(path.stem)
            if handle is not None:
                with handle:
                    yield path.stem

    def journal(self, transactional_id: str) -> InFlight:
        """The journal of the transactions sent with `transactional_id`."""
        return InFlight(self.folder / f"{transactional_id}.journal")

    @property
    def _prefix(self) -> str:
        return f"{self.name}-{socket.gethostname()}-"

    def _lock(self, transactional_id: str) -> IO[bytes] | None:
        """The slot's lock file, locked; None when a live lane holds it."""
        handle = (self.folder / f"{transactional_id}.lock").open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    def release(self) -> None:
        """Free the slot (the lane's producer is closed by now)."""
        if self._file is not None:
            self._file.close()  # closing drops the flock
            self._file = None
            self.id = None


class BatchLane:
    """A consume-process-produce-commit loop on its own thread.

    >>> # lane = BatchLane(settings, "scorer", [settings.topic_requests], handler)
    >>> # lane.start(); ...; lane.stop()
    """

    def __init__(
        self,
        settings: Settings,
        name: str,
        topics: Sequence[str],
        handler: BatchHandler,
        group_id: str | None = None,
        max_batch: int = MAX_BATCH,
        max_wait_s: float = 0.02,
        exactly_once: bool = True,
        on_assign: Callable[[list], None] | None = None,
        skip_visible: bool = False,
    ) -> None:
        self.settings = settings
        self.name = name
        self.topics = list(topics)
        self.handler = handler
        self.group_id = group_id or f"lastmile-{name}"
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.exactly_once = exactly_once
        self.on_assign = on_assign
        self.stats = LaneStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.failed = False
        self.slot = TransactionalSlot(
            settings.data_dir / "transactions", f"{self.group_id}-{name}"
        )
        # Outputs a function of their input alone: after taking over from a killed
        # worker, skip what it left visible (streams/kafka/takeover.py).
        self.skip_visible = skip_visible and exactly_once
        self.journal: InFlight | None = None
        self._skip: SkipList | None = None
        self._owed: Transaction | None = None
        self._incarnation = uuid.uuid4().hex[:8]
        self._sequence = 0
        # Topics the skip list leaves alone: a role's own state, which it reads back.
        self.private_topics: frozenset[str] = frozenset()

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=f"lane-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def details(self) -> dict[str, object]:
        """What the role adds to the lane's counters on the status page."""
        return {}

    def wait_assigned(self, timeout: float = 30.0) -> bool:
        """Block until the consumer group gave this lane its partitions."""
        return self._ready.wait(timeout)

    # -- the loop ----------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        consumer_conf = self.settings.consumer_config(
            self.group_id,
            **{"isolation.level": "read_committed", "enable.partition.eof": False},
        )
        # Reports only for failed records: at least once, the callback exists for those;
        # in a transaction none is used. A report per record costs 0.2-0.3 us of CPU.
        producer_conf = self.settings.producer_config(
            linger_ms=LINGER_MS, **{"delivery.report.only.error": True}
        )
        if self.exactly_once:
            producer_conf["transactional.id"] = self.slot.claim()
        else:
            self._end_open_transactions()
        consumer = Consumer(consumer_conf)
        producer = Producer(producer_conf)
        if self.exactly_once:
            # Fences a killed predecessor that held this slot: its transaction ends here.
            producer.init_transactions(30)
            if self.skip_visible:
                self._take_over()

        def assigned(_consumer: Consumer, partitions: list) -> None:
            self._ready.set()
            if self.on_assign:
                self.on_assign(partitions)

        consumer.subscribe(self.topics, on_assign=assigned)
        return consumer, producer

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

    def run(self) -> None:
        """Loop until :meth:`stop`. Delivery errors are retried; anything else marks the
        lane ``failed`` (the worker then exits and is restarted, replaying the batch)."""
        try:
            consumer, producer = self._clients()
        except Exception as err:
            self.slot.release()
            self._fail(err)
            return
        self.consumer, self.producer = consumer, producer
        try:
            self._loop(consumer, producer)
        except Exception as err:
            self._fail(err)
        finally:
            self._close(consumer, producer)

    def _fail(self, err: Exception) -> None:
        log.exception("%s: lane failed", self.name)
        self.stats.last_error = f"{type(err).__name__}: {err}"
        self.failed = True

    def _loop(self, consumer: Consumer, producer: Producer) -> None:
        frozen = False
        while not self._stop.is_set():
            # Wait for the first message only, then take what is already queued: a
            # batch never waits for more input once there is some (latency at low rates).
            first = consumer.poll(self.max_wait_s)
            if first is None:
                self.on_idle(consumer, producer)
                continue
            messages = [first, *consumer.consume(self.max_batch - 1, 0)]
            self._ready.set()
            good = []
            for message in messages:
                error = message.error()
                if error is None:
                    good.append(message)
                elif error.code() != KafkaError._PARTITION_EOF:
                    log.warning("%s: consume error: %s", self.name, error)
            if good:
                self.deliver_batch(consumer, producer, good)
                if not frozen:
                    # Models, pandas and the clients are loaded by now: move them out of
                    # the collector's sight so full collections stay short (p99 latency).
                    gc.freeze()
                    frozen = True
        self.on_stop(consumer, producer)

    # -- what a role may change ----------------------------------------------------------

    def on_idle(self, consumer: Consumer, producer: Producer) -> None:
        """Nothing arrived within ``max_wait_s``: serve the producer's callbacks."""
        producer.poll(0)

    def deliver_batch(
        self, consumer: Consumer, producer: Producer, messages: list[Message]
    ) -> None:
        """Deliver one batch of good messages (a role may cut it into transactions)."""
        self._deliver(consumer, producer, messages)

    def committed(self) -> None:
        """A batch's transaction (or its offsets' commit) succeeded."""

    def rewind(self, consumer: Consumer, messages: list[Message]) -> None:
        """A batch's transaction aborted: read the batch again from its first offsets (a
        stateful role also returns its state to what was committed)."""
        rewind_to_batch_start(consumer, messages)

    def on_stop(self, consumer: Consumer, producer: Producer) -> None:
        """The loop ended (:meth:`stop`); the clients are still open."""

    def _deliver(self, consumer: Consumer, producer: Producer, messages: list[Message]) -> bool:
        """Process one batch and make it durable; retried until it is, or the lane stops.
        False when its transaction aborted and the batch was rewound (:meth:`rewind`)."""
        outputs = self.handler.process(messages)
        delay = 0.1
        while True:
            try:
                if self.exactly_once:
                    self._transact(consumer, producer, outputs)
                else:
                    self._produce_then_commit(consumer, producer, messages, outputs)
                break
            except KafkaException as err:
                self.stats.errors += 1
                self.stats.last_error = f"{type(err).__name__}: {err}"
                log.warning("%s: delivering a batch failed (%s); retrying", self.name, err)
                if self._stop.is_set():
                    raise
                if self.exactly_once and _abortable(err):
                    producer.abort_transaction(30)
                    if self.journal is not None:
                        # The embedded broker shows an aborted transaction's records too.
                        self._take_over()
                    self.rewind(consumer, messages)
                    return False
                time.sleep(delay)
                delay = min(delay * 2, 5.0)
        self.stats.consumed += len(messages)
        self.stats.produced += len(outputs)
        self.stats.batches += 1
        self.stats.last_batch_at = time.time()
        self.committed()
        return True

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

    def _transact(self, consumer: Consumer, producer: Producer, outputs: list[Output]) -> None:
        positions = consumer.position(consumer.assignment())
        producer.begin_transaction()
        tag = None
        if self.journal is not None:
            outputs, tag = self._journal_begin(outputs, positions)
        # No delivery callbacks in a transaction: a failed record fails the commit.
        self._produce_all(producer, outputs, tag)
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
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
                out for out in outputs if out.topic in private or not skip.take(out.topic, out.key)
            ]
        return outputs, header

    def unfinished_tags(self) -> list[str]:
        """Tags of the transactions a killed predecessor (or an abort) left unfinished
        and this lane is replaying: records carrying them never committed."""
        return list(self._owed.tags) if self._owed is not None else []

    def _journal_done(self, positions: list) -> None:
        assert self.journal is not None
        self.journal.finish()
        if self._skip is not None:
            owned = {(tp.topic, tp.partition): tp.offset for tp in positions}
            if not self._skip or self._skip.passed(owned):
                self._skip = None
                self._owed = None

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
        consumer.commit(asynchronous=False)

    def _close(self, consumer: Consumer, producer: Producer) -> None:
        try:
            producer.flush(10)
        finally:
            consumer.close()
            self.slot.release()


def rewind_to_batch_start(consumer: Consumer, messages: Sequence[Message]) -> None:
    """Seek each partition of `messages` back to its first offset among them."""
    from confluent_kafka import TopicPartition

    first: dict[tuple[str, int], int] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        first[key] = min(first.get(key, m.offset()), m.offset())
    for (topic, partition), offset in first.items():
        consumer.seek(TopicPartition(topic, partition, offset))


def _abortable(err: KafkaException) -> bool:
    error = err.args[0] if err.args else None
    return bool(
        isinstance(error, KafkaError) and (error.txn_requires_abort() or not error.retriable())
    )
