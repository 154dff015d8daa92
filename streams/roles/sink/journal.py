"""The journal ``sink_batches``: a batch's range goes there before its first insert, so
whoever consumes the partition next re-forms unfinished ranges exactly."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from streams.roles.sink.batching import Chunk
from streams.roles.sink.clickhouse import ClickHouseInserts
from streams.roles.sink.errors import WriteRetry

__all__ = ["SinkJournal", "non_overlapping"]

log = logging.getLogger("lastmile.sink")


class SinkJournal(ClickHouseInserts):
    """Writes batch ranges to the journal and reads them back for new partitions."""

    def _journal(self, chunks: Sequence[Chunk]) -> None:
        with self._journal_lock:
            live = [c for c in chunks if not c.abandoned]
            if not live:
                return
            rows = [
                {
                    "group_id": self.group_id,
                    "topic": c.topic,
                    "partition": c.partition,
                    "first_offset": c.first,
                    "last_offset": c.last,
                    "rows": len(c.offsets),
                    "worker": self.worker,
                }
                for c in live
            ]
            token = "journal:" + ",".join(c.token for c in live)
            try:
                self._insert_json("sink_batches", rows, token[:4096])
            except Exception as err:  # any client error: the batch is retried
                self._drop_client(30.0)
                raise WriteRetry("journal write failed") from err

    def _lookup_journals(self) -> None:
        """Read the journaled ranges of partitions seen for the first time since
        their assignment: ranges at or beyond the first offset consumed are batches
        that may be (partly) written and must be re-formed exactly."""
        waiting = [p for p in self._parts.values() if p.replay is None and p.first_seen is not None]
        if not waiting or time.monotonic() < self._next_lookup:
            return
        try:
            client = self._client(timeout=15.0)
            result = client.query(
                f"SELECT topic, partition, first_offset, last_offset, created_at"
                f" FROM `{self.database}`.sink_batches"
                " WHERE group_id = {g:String} AND topic IN {t:Array(String)}"
                " AND last_offset >= {o:UInt64}",
                parameters={
                    "g": self.group_id,
                    "t": sorted({p.reader.topic for p in waiting}),
                    "o": min(p.first_seen or 0 for p in waiting),
                },
            )
        except Exception as err:  # any client error: the lookup backs off and is retried
            self._drop_client(15.0)
            self.stats.failed(err)
            self._next_lookup = time.monotonic() + self._lookup_backoff
            self._lookup_backoff = min(self._lookup_backoff * 2, self.options.max_backoff_s)
            return
        self._lookup_backoff = 0.2
        found: dict[tuple[str, int], list[tuple[int, int, Any]]] = {}
        for topic, partition, first, last, created in result.result_rows:
            found.setdefault((topic, int(partition)), []).append((int(first), int(last), created))
        for part in waiting:
            ranges = [
                r
                for r in found.get((part.reader.topic, part.partition), [])
                if r[1] >= (part.first_seen or 0)
            ]
            part.replay = non_overlapping(ranges)
            if part.replay:
                log.warning(
                    "sink: %s[%d]: re-forming journaled range(s) %s, written but not"
                    " committed before; ClickHouse drops what it already has",
                    part.reader.topic,
                    part.partition,
                    part.replay,
                )


def non_overlapping(ranges: list[tuple[int, int, Any]]) -> list[tuple[int, int]]:
    """Journaled ranges in offset order; of two that overlap (a journal write that
    landed after a rebalance), the later one wins."""
    chosen: list[tuple[int, int]] = []
    for first, last, _created in sorted(ranges, key=lambda r: r[2], reverse=True):
        if all(last < f or first > lst for f, lst in chosen):
            chosen.append((first, last))
    return sorted(set(chosen))
