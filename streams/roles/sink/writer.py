"""The writer thread: takes rounds from the consuming thread and retries each,
with backoff, until it is written; reports to ``sink_status`` on the side."""

from __future__ import annotations

import logging
import queue
import time

from confluent_kafka import KafkaException

from streams.roles.sink.batching import Round
from streams.roles.sink.errors import WriteRetry
from streams.roles.sink.journal import SinkJournal
from streams.roles.sink.stats import one_line

__all__ = ["SinkWriter"]

log = logging.getLogger("lastmile.sink")


class SinkWriter(SinkJournal):
    """The writer thread's loop over rounds."""

    def _writer(self) -> None:
        next_status = time.monotonic() + 1.0
        while True:
            try:
                round_ = self._rounds.get(timeout=0.5)
            except queue.Empty:
                round_ = None
                if self._stop.is_set():
                    break
            else:
                if round_ is None:
                    break
                try:
                    self._write_round(round_)
                except Exception as err:  # a bug: fail the role rather than spin
                    log.exception("sink: writer failed")
                    self.stats.failed(err, clickhouse=False)
                    self.failed = True
                    self._stop.set()
                finally:
                    round_.done.set()
            if time.monotonic() >= next_status and self.stats.clickhouse_ok:
                next_status = time.monotonic() + self.options.status_every_s
                self._write_status()

    def _write_round(self, round_: Round) -> None:
        delay = 0.2
        journal = [c for c in round_.chunks if not c.replayed]
        while True:
            pending = [c for c in round_.chunks if not c.done and not c.abandoned]
            if not pending:
                return
            try:
                self._produce_dead(pending)
                if journal:
                    self._journal(journal)
                    journal = []
                self._insert_chunks([c for c in pending if not c.abandoned])
                continue
            except WriteRetry as err:
                cause = err.__cause__ or err
                self.stats.failed(cause, clickhouse=not isinstance(cause, KafkaException))
                log.warning(
                    "sink: writing a batch failed (%s); retrying in %.1f s", one_line(cause), delay
                )
            if self._stop.wait(delay):
                return  # shutting down: what is not written is not committed
            delay = min(delay * 2, self.options.max_backoff_s)

    def _write_status(self) -> None:
        s = self.stats.as_dict()
        row = {
            "group_id": self.group_id,
            "worker": self.worker,
            "ts": round(time.time(), 3),
            "lag": int(s["lag"] or 0),
            "buffered_rows": int(s["buffered_rows"]),
            "paused": bool(s["paused"]),
            "rows_written": s["rows_written"],
            "dead_letters": int(s["dead_letters"]),
            "errors": int(s["errors"]),
            "last_error": s["last_error"] or "",
            "last_error_at": round(s["last_error_at"], 3) if s["last_error_at"] else None,
        }
        try:
            self._insert_json("sink_status", [row])
        except Exception as err:  # a status row is best effort
            self._drop_client(30.0)
            log.debug("sink: status row not written: %s", err)
