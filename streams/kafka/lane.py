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

import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer

from streams.config import FETCH_WAIT_MS, Settings
from streams.kafka.delivery import LaneDelivery, Output, abortable
from streams.kafka.idle import IdlePause
from streams.kafka.takeover import InFlight
from streams.kafka.transactional_slot import TransactionalSlot
from streams.metrics.observed import BATCH_SECONDS, TRANSACTION_SECONDS, batch_done, lane_timer

# Output is the lane's vocabulary too: roles import it with BatchLane from here.
__all__ = [
    "LINGER_MS",
    "MAX_BATCH",
    "BatchHandler",
    "BatchLane",
    "LaneStats",
    "Output",
    "rewind_to_batch_start",
]

log = logging.getLogger("lastmile.lane")

# Messages per batch, and so per transaction, unless a role says otherwise.
MAX_BATCH = 5000

# Every batch ends in a flush (its commit), so the producer's linger only decides whether
# records leave while the batch is still being produced: 2 ms lets the broker take them
# as the lane works (+4-6% events/s against 20 ms), in batches of a few ms' records, not
# the per-record batches the embedded broker slows down on. ``kafka_client`` may change it.
LINGER_MS = 2


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
    # The lane's idle pause, when it has one: its state shows beside the counters.
    idle: IdlePause | None = None

    def as_dict(self) -> dict[str, object]:
        return {
            **(self.idle.details() if self.idle is not None else {}),
            "consumed": self.consumed,
            "produced": self.produced,
            "batches": self.batches,
            "last_batch_at": self.last_batch_at,
            "last_error": self.last_error,
            "errors": self.errors,
            "uptime_s": round(time.time() - self.started_at, 1),
        }


class BatchLane(LaneDelivery):
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
        fetch_wait_ms: int = FETCH_WAIT_MS,
    ) -> None:
        self.settings = settings
        self.name = name
        self.fetch_wait_ms = fetch_wait_ms
        self.topics = list(topics)
        self.handler = handler
        self.group_id = group_id or f"lastmile-{name}"
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.exactly_once = exactly_once
        self.on_assign = on_assign
        # Stop fetching after a spell without records (the embedded broker's default).
        self.idle = IdlePause() if settings.idle_pause else None
        self.stats = LaneStats(idle=self.idle)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.consumer: Consumer | None = None
        self.producer: Producer | None = None
        self.failed = False
        self.slot = TransactionalSlot(settings.data_dir / "transactions", f"{self.group_id}-{name}")
        # Outputs a function of their input alone: after taking over from a killed
        # worker, skip what it left visible (streams/kafka/takeover.py).
        self.skip_visible = skip_visible and exactly_once
        self.journal: InFlight | None = None
        super().__init__()  # the delivery's own state: skip list, owed transaction, tags
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
            if not self._thread.is_alive():
                # Closed clients outlive the thread through these references, and
                # librdkafka goes on calling a broker that may be gone: let them go.
                self.consumer = None
                self.producer = None

    def details(self) -> dict[str, object]:
        """What the role adds to the lane's counters on the status page (the idle pause's
        state is among the counters already, :meth:`LaneStats.as_dict`)."""
        return {}

    def wait_assigned(self, timeout: float = 30.0) -> bool:
        """Block until the consumer group gave this lane its partitions."""
        return self._ready.wait(timeout)

    # -- the loop ----------------------------------------------------------------------

    def _clients(self) -> tuple[Consumer, Producer]:
        consumer_conf = self.settings.consumer_config(
            self.group_id,
            self.fetch_wait_ms,
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
            if self.idle is not None:
                self.idle.forget()
            self._ready.set()
            if self.on_assign:
                self.on_assign(partitions)

        def revoked(_consumer: Consumer, _partitions: list) -> None:
            # librdkafka unassigns them after this returns (the client does, as without it).
            if self.idle is not None:
                self.idle.forget()

        consumer.subscribe(self.topics, on_assign=assigned, on_revoke=revoked)
        return consumer, producer

    def run(self) -> None:
        """Loop until :meth:`stop`. Delivery errors are retried; anything else marks the
        lane ``failed`` (the worker then exits and is restarted, replaying the batch)."""
        try:
            consumer, producer = self._clients()
        except Exception as err:  # the lane thread must record why it failed, whatever it was
            self.slot.release()
            self._fail(err)
            return
        self.consumer, self.producer = consumer, producer
        try:
            self._loop(consumer, producer)
        except Exception as err:  # the lane thread must record why it failed, whatever it was
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
            wait = self.idle.wait_s(self.max_wait_s) if self.idle else self.max_wait_s
            first = consumer.poll(wait)
            if first is None:
                if self.idle is not None:
                    self.idle.update(consumer, 0)
                self._caught_up(consumer)
                self.on_idle(consumer, producer)
                continue
            messages = [first, *consumer.consume(self.max_batch - 1, 0)]
            if self.idle is not None:
                self.idle.update(consumer, len(messages))
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
        with lane_timer(BATCH_SECONDS, self.name):
            outputs = self.handler.process(messages)
        delay = 0.1
        while True:
            try:
                with lane_timer(TRANSACTION_SECONDS, self.name):
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
                if self.exactly_once and abortable(err):
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
        batch_done(self.name, len(messages))
        self.committed()
        return True

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
