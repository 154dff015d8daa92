"""The watcher: a background thread reading ``models.events`` into a worker's table.

On the embedded broker it pauses after a spell without events (``settings.idle_pause``,
:mod:`streams.kafka.idle`), so a model registered and promoted reaches its table up to
one ask interval (0.25 s) later, while a client may score it at once. So whatever
decides that a model is unknown, has no version or cannot learn first calls
:meth:`ModelWatcher.catch_up` (through :meth:`ModelTable.catch_up`): the watcher thread
asks the ends of the topic (one ListOffsets), fetches and applies what is before them,
and only then does the caller decide.

Catching up once per decision would cost a round trip per request of a model that is
really unknown; so the watcher remembers when it last confirmed it was at the end (the
wall-clock time its ask was sent, :attr:`ModelWatcher.confirmed_ms`), and a caller
deciding about a message created before that passes its timestamp (`since_ms`, from
:func:`created_ms`) and is answered at once: every event published before the message
was in the log when the ends were asked. That holds while producers stamp messages
when they send them (Kafka's CreateTime, the default) on clocks in step with the
worker's; a message without a timestamp always asks.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from typing import Any, Protocol

from streams.kafka.idle import IdlePause
from streams.models.routing import CATCH_UP_S, ModelTable
from streams.models.wire import decode_event, make_codec

__all__ = ["ModelWatcher", "created_ms"]

log = logging.getLogger(__name__)

#: How long the thread waits in one poll while it fetches: the most a catch-up waits
#: for the thread to notice it (while paused it is woken at once).
POLL_S = 0.02


class _Timestamped(Protocol):
    def timestamp(self) -> tuple[int, int]: ...


def created_ms(message: _Timestamped) -> int | None:
    """A message's timestamp in ms, None when it has none (it cannot skip a catch-up).

    >>> from streams.kafka.held_message import HeldMessage
    >>> created_ms(HeldMessage("t", 0, 0, None, b"", None, timestamp=1700000000000))
    1700000000000
    >>> created_ms(HeldMessage("t", 0, 0, None, b"", None)) is None
    True
    """
    kind, ms = message.timestamp()
    return ms if kind and ms >= 0 else None


def _now_ms() -> int:
    return int(time.time() * 1000)


class ModelWatcher:
    """A background thread applying ``models.events`` to a :class:`ModelTable`, from the start.

    It assigns the topic's partitions at the beginning (no consumer group: every
    worker needs every event) and keeps applying events live; :meth:`catch_up` makes
    sure it has applied every event up to the topic's end before a caller decides.

    Against a running broker (``settings`` from :func:`streams.config.load_settings`)::

        table = ModelTable()
        with ModelWatcher(settings, table) as watcher:
            watcher.wait_caught_up(10)
            table.route("fraud", "customer-42")  # [(3, "champion")]

    ``tests/streams/models/test_control.py::test_watcher_sees_promotion`` runs exactly this;
    ``tests/streams/models/test_watcher.py`` catches up a paused watcher.
    """

    def __init__(self, settings: Any, table: ModelTable, poll_timeout: float = POLL_S) -> None:
        self.settings = settings
        self.table = table
        self.poll_timeout = poll_timeout
        self.errors = 0
        #: ListOffsets requests sent for :meth:`catch_up`.
        self.asks = 0
        #: Wall-clock ms of the last ask for the ends after which everything before them
        #: was applied (0: none yet).
        self.confirmed_ms = 0
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        # Catch-ups: callers number their requests; the thread serves all those made
        # before an ask at once, and wakes from a paused wait when one is made.
        self._cond = threading.Condition()
        self._wake = threading.Event()
        self._requested = 0
        self._served = 0
        self._behind = False
        # The offset after the last event read of each partition: where a paused watcher
        # goes on from, and how far it has applied.
        self._next: dict[tuple[str, int], int] = {}
        self.idle = (
            IdlePause(positions=lambda: self._next)
            if getattr(settings, "idle_pause", False)
            else None
        )
        table.watched_by(self.catch_up)

    def start(self) -> ModelWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._wake.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> ModelWatcher:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def caught_up(self) -> bool:
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Block until every event up to the high watermark seen at start is applied.

        Returns False on timeout. Raises if the watcher thread died.
        """
        done = self._caught_up.wait(timeout)
        if self._failure is not None:
            raise RuntimeError(f"model watcher failed: {self._failure}") from self._failure
        return done

    def catch_up(self, timeout_s: float = CATCH_UP_S, since_ms: int | None = None) -> bool:
        """Return once every event up to the end of ``models.events`` now (or, with
        `since_ms`, every event published before that time) is applied; False when
        that is not sure within `timeout_s`, or the thread is not running, and at once
        after such a False until the thread has caught up again.

        With `since_ms` before :attr:`confirmed_ms` it returns at once, asking nothing.
        Otherwise the thread is woken (a paused watcher at once), asks the ends in one
        ListOffsets request and applies the events before them; callers waiting
        meanwhile share that ask.
        """
        if since_ms is not None and since_ms < self.confirmed_ms:
            return True
        thread = self._thread
        if thread is None or not thread.is_alive() or self._stop.is_set():
            return False
        if self._failure is not None:
            return False
        with self._cond:
            self._requested += 1
            wanted = self._requested
            self._wake.set()
            if self._behind:
                # A catch-up ran out of time and none succeeded since (the broker does not
                # answer): the thread goes on trying, callers decide without waiting,
                # rather than each message of a batch waiting `timeout_s`.
                return False
            self._cond.wait_for(
                lambda: self._served >= wanted or self._stop.is_set() or self._failure is not None,
                timeout_s,
            )
            self._behind = self._served < wanted
            return not self._behind

    def _partitions(self, consumer: Any) -> list[int]:
        topic = self.settings.topic_model_events
        meta = consumer.list_topics(topic, timeout=5.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        return sorted(meta.partitions)

    def _confirm(self, serving: int, asked_ms: int) -> None:
        with self._cond:
            self._served = max(self._served, serving)
            self.confirmed_ms = max(self.confirmed_ms, asked_ms)
            self._behind = False
            self._cond.notify_all()

    def _ends(self, consumer: Any, partitions: list[int]) -> dict[int, int] | None:
        """The end of each partition, in one ListOffsets request; None when not known."""
        from confluent_kafka import OFFSET_END, KafkaException, TopicPartition

        topic = self.settings.topic_model_events
        self.asks += 1
        try:
            ends = consumer.offsets_for_times(
                [TopicPartition(topic, p, OFFSET_END) for p in partitions], timeout=CATCH_UP_S
            )
        except KafkaException as err:
            log.warning("models.events: its ends are not known now: %s", err)
            return None
        if any(tp.error is not None for tp in ends):
            log.warning("models.events: its ends are not known now: %s", ends)
            return None
        return {tp.partition: tp.offset for tp in ends}

    def _applied_to(self, consumer: Any, ends: dict[int, int], starts: dict[int, int]) -> bool:
        """Whether every event before `ends` is applied. Also what the last fetch saw of
        each partition: the embedded broker's ListOffsets answers the first offset of
        the last batch plus one (README, "Embedded-broker quirks"), short of the rest of
        that batch, which the same fetch brought."""
        from confluent_kafka import TopicPartition

        topic = self.settings.topic_model_events
        for p, end in ends.items():
            applied = self._next.get((topic, p), starts.get(p, 0))
            if applied < end:
                return False
            _low, fetched = consumer.get_watermark_offsets(TopicPartition(topic, p), cached=True)
            if applied < fetched:
                return False
        return True

    def _run(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

        try:
            conf = self.settings.consumer_config(
                f"lastmile-model-watcher-{uuid.uuid4().hex[:8]}",
                **{"enable.partition.eof": True, "enable.auto.offset.store": False},
            )
            consumer = Consumer(conf)
        except BaseException as err:  # the watcher thread must report why it never started
            self._failure = err
            self._caught_up.set()
            return
        topic = self.settings.topic_model_events
        codec = make_codec(self.settings)
        try:
            partitions: list[int] = []
            while not self._stop.is_set() and not partitions:
                serving, asked_ms = self._requested, _now_ms()
                partitions = self._partitions(consumer)
                if not partitions:
                    # No topic yet means no events yet: caught up, and wait for it.
                    self._caught_up.set()
                    self._confirm(serving, asked_ms)
                    self._wake.wait(1.0)
                    self._wake.clear()
            if self._stop.is_set():
                return
            pending: dict[int, int] = {}
            starts: dict[int, int] = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)
                starts[p] = low  # nothing before it is left to apply
                if high > low:
                    pending[p] = high
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            if not pending:
                self._caught_up.set()
            idle = self.idle
            ends: dict[int, int] | None = None  # asked for a catch-up, not applied yet
            serving = asked_ms = 0
            while not self._stop.is_set():
                if ends is None and self._requested > self._served and self._caught_up.is_set():
                    serving, asked_ms = self._requested, _now_ms()
                    ends = self._ends(consumer, partitions)
                    if ends is None:
                        self._stop.wait(0.05)
                        continue
                    if idle is not None and not self._applied_to(consumer, ends, starts):
                        idle.resume(consumer)
                if ends is not None and self._applied_to(consumer, ends, starts):
                    self._confirm(serving, asked_ms)
                    ends = None
                    continue
                if idle is not None and idle.paused:
                    # Nothing is fetched while paused: wait for the next ask for the ends
                    # or a catch-up, whichever comes first.
                    msg = consumer.poll(0)
                    if msg is None and self._wake.wait(idle.wait_s(self.poll_timeout)):
                        self._wake.clear()
                else:
                    msg = consumer.poll(self.poll_timeout)
                if idle is not None:
                    idle.update(consumer, 0 if msg is None else 1)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.pop(msg.partition(), None)
                    else:
                        self.errors += 1
                        log.warning("models.events: %s", msg.error())
                else:
                    self._next[(topic, msg.partition())] = msg.offset() + 1
                    try:
                        self.table.apply(
                            decode_event(msg.value(), msg.headers(), self.settings, codec)
                        )
                    except Exception:  # one bad event is counted and skipped; the rest apply
                        self.errors += 1
                        log.exception("models.events offset %s: cannot apply event", msg.offset())
                    if pending.get(msg.partition(), 1 << 62) <= msg.offset() + 1:
                        pending.pop(msg.partition(), None)
                if not pending and not self._caught_up.is_set():
                    self._caught_up.set()
        except BaseException as err:  # pragma: no cover - surfaced via wait_caught_up
            self._failure = err
            self._caught_up.set()
            log.exception("model watcher stopped")
        finally:
            with contextlib.suppress(Exception):
                consumer.close()
            with self._cond:
                self._cond.notify_all()
