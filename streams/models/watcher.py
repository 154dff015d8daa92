"""The watcher: a background thread reading ``models.events`` into a worker's table."""

from __future__ import annotations

import contextlib
import logging
import threading
import uuid
from typing import Any

from streams.models.routing import ModelTable
from streams.models.wire import decode_event, make_codec

__all__ = ["ModelWatcher"]

log = logging.getLogger(__name__)


class ModelWatcher:
    """A background thread applying ``models.events`` to a :class:`ModelTable`, from the start.

    It assigns the topic's partitions at the beginning (no consumer group: every
    worker needs every event) and keeps applying events live.

    Against a running broker (``settings`` from :func:`streams.config.load_settings`)::

        table = ModelTable()
        with ModelWatcher(settings, table) as watcher:
            watcher.wait_caught_up(10)
            table.route("fraud", "customer-42")  # [(3, "champion")]

    ``tests/streams/models/test_control.py::test_watcher_sees_promotion`` runs exactly this.
    """

    def __init__(self, settings: Any, table: ModelTable, poll_timeout: float = 0.1) -> None:
        self.settings = settings
        self.table = table
        self.poll_timeout = poll_timeout
        self.errors = 0
        self._stop = threading.Event()
        self._caught_up = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        # No idle pause here (streams/kafka/idle.py), unlike the lanes: a model registered
        # and promoted, then scored at once, must be known before its requests are routed,
        # and a paused watcher came up to a fetch later than the scorer's lane did (its
        # requests were dead-lettered as an unknown model in tests/lastmile).

    def start(self) -> ModelWatcher:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
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

    def _partitions(self, consumer: Any) -> list[int]:
        topic = self.settings.topic_model_events
        meta = consumer.list_topics(topic, timeout=5.0).topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            return []
        return sorted(meta.partitions)

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
                partitions = self._partitions(consumer)
                if not partitions:
                    # No topic yet means no events yet: caught up, and wait for it.
                    self._caught_up.set()
                    self._stop.wait(1.0)
            if self._stop.is_set():
                return
            pending: dict[int, int] = {}
            for p in partitions:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5.0)
                if high > low:
                    pending[p] = high
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            if not pending:
                self._caught_up.set()
            while not self._stop.is_set():
                msg = consumer.poll(self.poll_timeout)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        pending.pop(msg.partition(), None)
                    else:
                        self.errors += 1
                        log.warning("models.events: %s", msg.error())
                else:
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
