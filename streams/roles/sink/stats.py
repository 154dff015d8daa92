"""What the sink reports about itself: counters, lag, buffer, the last error."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

__all__ = ["SinkStats", "one_line"]


@dataclass
class SinkStats:
    """What the sink reports on ``/lastmile/status`` and in ``sink_status``."""

    consumed: int = 0
    rows_written: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    dead_letters: int = 0
    errors: int = 0
    last_error: str | None = None
    last_error_at: float | None = None
    last_batch_at: float = 0.0
    lag: int | None = None
    buffered_rows: int = 0
    buffered_bytes: int = 0
    in_flight_rows: int = 0
    paused: bool = False
    idle_paused: bool = False
    assigned: int = 0
    clickhouse_ok: bool | None = None
    started_at: float = field(default_factory=time.time)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wrote(self, table: str, rows: int) -> None:
        with self._lock:
            self.rows_written[table] = self.rows_written.get(table, 0) + rows
            self.batches += 1
            self.last_batch_at = time.time()
            self.clickhouse_ok = True

    def dead_lettered(self, count: int) -> None:
        with self._lock:
            self.dead_letters += count

    def failed(self, err: BaseException, clickhouse: bool = True) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = one_line(err)
            self.last_error_at = time.time()
            if clickhouse:
                self.clickhouse_ok = False

    def as_dict(self) -> dict[str, object]:
        with self._lock:
            return {
                "consumed": self.consumed,
                "rows_written": dict(self.rows_written),
                "batches": self.batches,
                "dead_letters": self.dead_letters,
                "lag": self.lag,
                "buffered_rows": self.buffered_rows,
                "buffered_bytes": self.buffered_bytes,
                "in_flight_rows": self.in_flight_rows,
                "paused": self.paused,
                "idle_paused": self.idle_paused,
                "assigned_partitions": self.assigned,
                "clickhouse_ok": self.clickhouse_ok,
                "errors": self.errors,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "last_batch_at": self.last_batch_at,
                "uptime_s": round(time.time() - self.started_at, 1),
            }


def one_line(err: BaseException) -> str:
    """The first line of an error, with its type, short enough for a status row."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:500]
