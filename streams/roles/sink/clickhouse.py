"""The ClickHouse insert of a chunk, under its deduplication token.

A refused chunk is re-checked message by message with the codec and, for
refused values, by bisection, so exactly the messages at fault are dead-lettered.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from typing import Any

from schemas import DecodeError
from streams.metrics.observed import clickhouse_insert
from streams.roles.sink.batching import Chunk
from streams.roles.sink.deadletters import SinkDeadLetters
from streams.roles.sink.errors import WriteRetry
from streams.roles.sink.stats import one_line

__all__ = ["ClickHouseInserts"]

log = logging.getLogger("lastmile.sink")

# ClickHouse error codes that mean "these bytes are not what the table takes".
_PARSE_CODES = frozenset({6, 25, 26, 27, 32, 33, 38, 41, 72, 117, 128, 131})
# ... and "this value is refused" (throwIf in a view, out of range): found by bisection.
_VALUE_CODES = frozenset({69, 70, 321, 395, 407})


def _error_kind(err: BaseException) -> str:
    """ "parse", "value" or "retry" for an exception of an insert."""
    from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError

    if isinstance(err, OperationalError) or not isinstance(err, DatabaseError):
        return "retry"
    code = getattr(err, "code", None)
    if code in _VALUE_CODES:
        return "value"
    if code in _PARSE_CODES or (code == 1001 and "avro" in str(err).lower()):
        return "parse"
    return "retry"


class ClickHouseInserts(SinkDeadLetters):
    """Inserts of chunks (a few at once, one client per thread) and small JSON rows."""

    def _insert_chunks(self, chunks: list[Chunk]) -> None:
        if len(chunks) == 1 or self._pool is None:
            results = [self._write_chunk_safely(c) for c in chunks]
        else:
            results = list(self._pool.map(self._write_chunk_safely, chunks))
        for err in results:
            if err is not None:
                raise err

    def _write_chunk_safely(self, chunk: Chunk) -> WriteRetry | None:
        try:
            self._write_chunk(chunk)
            return None
        except WriteRetry as err:
            return err
        except Exception as err:  # anything unexpected from a client: retry, visibly
            self._drop_client()
            retry = WriteRetry(str(err))
            retry.__cause__ = err
            return retry

    def _write_chunk(self, chunk: Chunk) -> None:
        if chunk.abandoned:
            return
        if chunk.dead_pending:
            self._produce_dead([chunk])
        if chunk.rows == 0:
            chunk.done = True
            return
        route = chunk.reader.route
        try:
            self._insert(chunk, None, chunk.token)
        except Exception as err:  # _error_kind sorts every client error
            kind = _error_kind(err)
            if kind == "retry" or (kind == "parse" and chunk.slow):
                self._drop_client()
                raise WriteRetry(one_line(err)) from err
            if not chunk.slow:
                # Bytes that looked like the current schema but are not: check every
                # message with the codec, dead-letter what it rejects, insert the rest.
                log.warning(
                    "sink: ClickHouse refused %s (%s); checking it message by message",
                    chunk.token,
                    one_line(err),
                )
                self._recheck(chunk)
                self._produce_dead([chunk])
                if chunk.rows:
                    try:
                        self._insert(chunk, None, chunk.token)
                    except Exception as again:  # _error_kind sorts every client error
                        if _error_kind(again) != "value":
                            raise WriteRetry(one_line(again)) from again
                        self._bisect(chunk, list(range(len(chunk.items))))
            else:
                self._bisect(chunk, list(range(len(chunk.items))))
            self._produce_dead([chunk])
        chunk.done = True
        self.stats.wrote(route.table, chunk.rows)

    def _recheck(self, chunk: Chunk) -> None:
        reader = chunk.reader
        for i, item in enumerate(chunk.items):
            if not isinstance(item, bytes):
                continue
            message = chunk.messages[i]
            try:
                chunk.items[i] = reader.reencode(item, reader.fast_headers)
            except DecodeError as err:
                dead = self._dead(message, err.stage, err.reason)
                chunk.items[i] = dead
                chunk.dead_pending.append(dead)
        chunk.slow = True
        chunk.data = None
        chunk.rows = sum(1 for i in chunk.items if isinstance(i, bytes))

    def _bisect(self, chunk: Chunk, indexes: list[int]) -> None:
        """Insert halves until the refused messages are single ones; dead-letter those.
        Deterministic, so a replay re-runs the same inserts under the same tokens."""
        if not indexes:
            return
        token = f"{chunk.token}/{indexes[0]}-{indexes[-1]}"
        try:
            self._insert(chunk, indexes, token)
            return
        except Exception as err:  # _error_kind sorts every client error
            kind = _error_kind(err)
            if kind != "value":
                raise WriteRetry(one_line(err)) from err
            if len(indexes) == 1:
                i = indexes[0]
                reason = f"ClickHouse refused the row: {one_line(err)}"
                dead = self._dead(chunk.messages[i], "sink", reason, "clickhouse_rejected")
                chunk.items[i] = dead
                chunk.dead_pending.append(dead)
                chunk.rows -= 1
                return
        half = len(indexes) // 2
        self._bisect(chunk, indexes[:half])
        self._bisect(chunk, indexes[half:])

    def _insert(self, chunk: Chunk, indexes: Sequence[int] | None, token: str) -> None:
        data = chunk.frame(self.database, indexes)
        if data is None:
            return
        with clickhouse_insert(chunk.reader.route.table):
            summary = self._client().raw_insert(
                None,
                insert_block=data,
                settings={
                    "insert_deduplication_token": token,
                    "insert_deduplicate": 1,
                    "deduplicate_blocks_in_dependent_materialized_views": 1,
                    # A replay of old outcomes can span many months: one part each is fine.
                    "max_partitions_per_insert_block": 1000,
                },
            )
        self._check_stored(chunk, indexes, summary)

    def _check_stored(self, chunk: Chunk, indexes: Sequence[int] | None, summary: Any) -> None:
        """Make sure an acknowledged insert stored its rows.

        chDB's streaming insert (what the embedded store uses) swallows an exception
        raised while the rows go through the views and reports success having
        stored nothing (chdb 4.4: ``send_insert().finish()``). Its summary still
        tells: ``written_rows`` counts the landing table's rows and, only when they
        got through, the table's. A replayed (deduplicated) batch may also count
        short on a ClickHouse server, so a short count is settled by reading back.
        """
        route = chunk.reader.route
        offsets, _bodies = chunk.rows_of(indexes)
        written = getattr(summary, "written_rows", None)
        if not route.checkable or written is None or written >= 2 * len(offsets):
            return
        where = "kafka_partition = {p:UInt16} AND "
        if indexes is None:  # the chunk's whole range holds its rows and no others
            where += "kafka_offset BETWEEN {lo:UInt64} AND {hi:UInt64}"
        else:
            where += "has({o:Array(UInt64)}, kafka_offset)"
        stored = (
            self._client()
            .query(
                f"SELECT count() FROM `{self.database}`.{route.table} WHERE {where}",
                parameters={
                    "p": chunk.partition,
                    "lo": offsets[0],
                    "hi": offsets[-1],
                    "o": offsets,
                },
            )
            .result_rows[0][0]
        )
        if stored < len(offsets):
            raise WriteRetry(
                f"ClickHouse acknowledged {chunk.token} but stored {stored} of its "
                f"{len(offsets)} rows; inserting it again"
            )

    def _insert_json(
        self, table: str, rows: list[dict[str, Any]], token: str | None = None
    ) -> None:
        """A small insert as JSONEachRow: no column-type lookup first, unlike a
        clickhouse-connect ``insert`` (which costs a round trip, >1 s on a cold chDB)."""
        body = b"\n".join(json.dumps(r, default=str).encode() for r in rows)
        statement = f"INSERT INTO `{self.database}`.{table} FORMAT JSONEachRow\n".encode()
        settings = {"insert_deduplication_token": token} if token else None
        self._client(timeout=30.0).raw_insert(
            None, insert_block=statement + body, settings=settings
        )
