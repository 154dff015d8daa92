"""The sink as a role: its lifecycle (start, run, stop) on a thread of its own."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import queue
import threading

from confluent_kafka import Consumer, Producer

from streams.config import Settings
from streams.roles.sink.consume import SinkConsumeLoop
from streams.roles.sink.stats import one_line
from streams.storage import db

__all__ = ["Sink", "sink_lane"]

log = logging.getLogger("lastmile.sink")


class Sink(SinkConsumeLoop):
    """The sink role: consume, batch, insert, commit, on a thread of its own.

    It is a :class:`~streams.roles.contract.Role`, as ``streams.app`` expects:
    :meth:`start`, :meth:`stop`, ``failed``, ``stats.as_dict()``, ``group_id``. It is
    built as :class:`~streams.roles.sink.state.SinkState` is (settings, options, roles,
    worker, migrate), and each layer below adds one part of the work.
    """

    name = "sink"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name="lane-sink", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_assigned(self, timeout: float = 30.0) -> bool:
        """Block until the consumer group gave this sink its partitions."""
        return self._assigned.wait(timeout)

    def run(self) -> None:
        """Migrate, then loop until :meth:`stop`. ClickHouse or Kafka being away is
        waited out; anything else marks the sink ``failed`` (the worker then exits and
        is restarted; the journal makes the restart harmless)."""
        writer: threading.Thread | None = None
        try:
            if self.migrate and not self._ensure_schema():
                return
            self._pool = concurrent.futures.ThreadPoolExecutor(
                max(1, self.options.insert_threads), thread_name_prefix="sink-insert"
            )
            self._producer = Producer(self.settings.producer_config())
            self._consumer = Consumer(self._consumer_config())
            self._consumer.subscribe(
                list(self.readers),
                on_assign=self._on_assign,
                on_revoke=self._on_revoke,
                on_lost=self._on_lost,
            )
            writer = threading.Thread(target=self._writer, name="sink-writer", daemon=True)
            writer.start()
            while not self._stop.is_set():
                self._step(self._consumer)
            self._shutdown(self._consumer)
        except Exception as err:  # the sink thread must record why it failed, whatever it was
            log.exception("sink failed")
            self.stats.failed(err, clickhouse=False)
            self.failed = True
        finally:
            self._stop.set()
            with contextlib.suppress(queue.Full):
                self._rounds.put_nowait(None)
            if writer is not None:
                writer.join(10)
            if self._consumer is not None:
                with contextlib.suppress(Exception):
                    self._consumer.close()
            if self._producer is not None:
                self._producer.flush(5)
            if self._pool is not None:
                self._pool.shutdown(wait=False, cancel_futures=True)

    def _ensure_schema(self) -> bool:
        delay = 0.2
        while not self._stop.is_set():
            try:
                db.ensure_schema(self.settings, strict=False)
                return True
            except db.MigrationError:
                raise
            except Exception as err:  # ClickHouse not up yet, in any form: retry
                self.stats.failed(err)
                log.warning("sink: cannot migrate ClickHouse yet (%s); retrying", one_line(err))
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.max_backoff_s)
        return False


def sink_lane(settings: Settings) -> Sink:
    """The sink role for ``streams.app.ROLES``."""
    return Sink(settings)
