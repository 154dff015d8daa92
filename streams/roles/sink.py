"""The sink role: every topic into ClickHouse, exactly once in effect, without stalling.

The sink consumes predictions, outcomes, metrics, alerts, model events and dead
letters, batches them per topic-partition (default up to 50,000 rows or 1 s), writes
each batch with one insert, and commits the batch's offsets only once ClickHouse has
acknowledged it.

**No Avro decoding in Python.** A value written with the current schema (the header
format with the current fingerprint, or a Schema Registry id of the current schema)
goes to ClickHouse as it came from Kafka: the sink frames a batch of them as an Avro
object container file (one Avro block per record, behind a header it builds once
per schema, with ``kafka_partition``/``kafka_offset`` prepended to every record) and
inserts it into the table's Null-engine landing table, whose materialized view
shapes the rows (``streams/storage/migrations/001_tables.sql``). Framing costs under 1 us a
message; decoding with the codec and building columns for a clickhouse-connect
columnar insert costs ~14 us, so one 50,000-row batch goes in at ~240k rows/s
framed against ~54k rows/s columnar (``bench/sink.py``). Anything else (JSON
outcomes, older writer schemas, other registry ids) is decoded by the codec and
re-encoded with the current schema first, and outcomes are always read by the codec
(its NaN check is the contract); what the codec rejects is dead-lettered. When
ClickHouse refuses a batch (bytes that only look like the current schema), the sink
re-checks it message by message with the codec and, for value errors, by
bisection, and dead-letters exactly the messages at fault.

**Idempotent writes.** Every insert carries ``insert_deduplication_token =
"<topic>:<partition>:<first>-<last>"`` (the tables keep a deduplication window), so a
batch inserted twice is stored once, rollups included. That needs a replayed batch
to have exactly the same boundaries, which a time bound alone would not give. So,
before a batch's first insert, its range goes to the journal table
``sink_batches``; whoever consumes the partition next (this sink restarted after a
crash, or another replica after a rebalance) first reads the journal and re-forms the
unfinished ranges exactly, then batches freely again. A batch's boundaries are
frozen once journaled: retries never grow it. An acknowledged insert is also
checked to have stored its rows (chDB can report success for an insert whose views
failed, see :meth:`Sink._check_stored`).

**Throughput.** Up to two rounds of batches are in flight: the consuming thread
frames the next one while a writer thread waits on ClickHouse for the current one
(inserts of one round run on a few threads, one clickhouse-connect client each).

**Backpressure.** While ClickHouse fails, the round is retried with exponential
backoff (0.2 s up to ``max_backoff_s``); consuming goes on into the buffer until it
holds ``buffer_rows`` messages or ``buffer_bytes``, then every partition is paused
(polling goes on, so the group membership survives) and resumed, at the offset
after the last message received, when half is written. Nothing uncommitted is
lost, nothing unwritten is committed, and the sink catches up by itself.
``stats.as_dict()`` (the worker's ``/lastmile/status``) shows lag, buffer, pause,
rows per table and the last error; every ``status_every_s`` a row goes to
``sink_status`` too (``sink_status_current`` has each worker's latest).

Run it: :func:`sink_lane` gives the role for ``lastmile worker``;
``python -m streams.roles.sink`` runs it alone.

>>> frame = AvroFramer({"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]})
>>> data = frame.frame(1, [7], [b"\\x04"])
>>> import fastavro, io
>>> list(fastavro.reader(io.BytesIO(data)))
[{'kafka_partition': 1, 'kafka_offset': 7, 'x': 2}]
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import contextlib
import copy
import json
import logging
import os
import queue
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from schemas import (
    FINITE_SCHEMAS,
    Codec,
    DecodeError,
    EncodeError,
    schema_fingerprint,
)
from streams.config import Settings, load_settings
from streams.kafka.deadletters import dead_letter, encode_dead_letter
from streams.storage import db

log = logging.getLogger("lastmile.sink")

# ----------------------------------------------------------------------- routes


@dataclass(frozen=True)
class Route:
    """How one topic reaches ClickHouse: its schema, landing table and final table."""

    role: str  # key in Settings.topics
    schema: str  # Avro record name in schemas/
    landing: str  # Null-engine table the Avro rows are inserted into
    table: str  # the table its materialized view fills
    # One row in ``table`` per message, at (kafka_partition, kafka_offset): an insert
    # can be checked by counting them (model events fan out, dead letters collapse).
    checkable: bool = True


ROUTES: tuple[Route, ...] = (
    Route("predictions", "Prediction", "predictions_in", "predictions"),
    Route("outcomes", "Outcome", "outcomes_in", "outcomes"),
    Route("metrics", "MonitorMetric", "metrics_in", "metrics"),
    Route("alerts", "Alert", "alerts_in", "alerts"),
    Route("model_events", "ModelEvent", "model_events_in", "model_versions", checkable=False),
    Route("dlq", "DeadLetter", "dead_letters_in", "dead_letters", checkable=False),
)

# ------------------------------------------------------------------------ options

_ENV = "LASTMILE_SINK_"


@dataclass(frozen=True)
class SinkOptions:
    """Knobs of the sink. :meth:`from_settings` reads ``settings.sink_<name>`` when
    Settings has it, else ``LASTMILE_SINK_<NAME>``, else the default.

    >>> SinkOptions.from_settings(None, env={"LASTMILE_SINK_BATCH_ROWS": "1000"}).batch_rows
    1000
    """

    batch_rows: int = 50_000  # most messages one insert takes from one partition
    batch_seconds: float = 1.0  # oldest buffered message waits at most this long
    buffer_rows: int = 200_000  # pause consuming at this many buffered messages...
    buffer_bytes: int = 128 << 20  # ...or this many buffered bytes
    insert_threads: int = 4  # concurrent inserts (one ClickHouse client each)
    max_backoff_s: float = 5.0  # longest wait between two attempts of a failed batch
    status_every_s: float = 10.0  # how often a row goes to sink_status
    group_id: str = "lastmile-sink"

    @classmethod
    def from_settings(
        cls, settings: Settings | None, env: Mapping[str, str] | None = None, **overrides: Any
    ) -> SinkOptions:
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = getattr(settings, f"sink_{f.name}", None) if settings is not None else None
            if raw is None:
                raw = env.get(f"{_ENV}{f.name.upper()}")
            if raw is None or raw == "":
                continue
            kind = type(f.default)
            try:
                values[f.name] = kind(raw)
            except (TypeError, ValueError):
                problem = f"{raw!r} is not a {kind.__name__}"
                raise ValueError(f"sink setting {f.name}: {problem}") from None
        values.update(overrides)
        return cls(**values)


# ------------------------------------------------------------------------- stats


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

    def failed(self, err: BaseException, clickhouse: bool = True) -> None:
        with self._lock:
            self.errors += 1
            self.last_error = _one_line(err)
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
                "assigned_partitions": self.assigned,
                "clickhouse_ok": self.clickhouse_ok,
                "errors": self.errors,
                "last_error": self.last_error,
                "last_error_at": self.last_error_at,
                "last_batch_at": self.last_batch_at,
                "uptime_s": round(time.time() - self.started_at, 1),
            }


def _one_line(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"{type(err).__name__}: {text}"[:500]


# ------------------------------------------------------------------ Avro framing

# Sync marker of every container the sink writes; any 16 bytes do, and a constant
# one makes the framing a pure function of the batch.
SYNC = b"lastmile.sink.v1"
assert len(SYNC) == 16


def avro_long(n: int) -> bytes:
    """Avro's zig-zag varint of ``n``.

    >>> avro_long(0), avro_long(-1), avro_long(64)
    (b'\\x00', b'\\x01', b'\\x80\\x01')
    """
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL = [avro_long(i) for i in range(1 << 13)]  # block sizes and small offsets


def _avro_count(n: int) -> bytes:
    """avro_long for 0 <= n: the framing encodes an offset per record, so this one
    is written out for the common lengths (a loop costs twice as much).

    >>> checked = (*range(0, 20000, 7), 2**20 - 1, 2**20, 2**27 - 1, 2**27, 2**40)
    >>> all(_avro_count(n) == avro_long(n) for n in checked)
    True
    """
    if n < 8192:
        return _SMALL[n]
    z = n << 1  # >= 0x4000: three bytes at least
    if z < 0x200000:
        return bytes((z & 0x7F | 0x80, (z >> 7) & 0x7F | 0x80, z >> 14))
    if z < 0x10000000:
        return bytes((z & 0x7F | 0x80, (z >> 7) & 0x7F | 0x80, (z >> 14) & 0x7F | 0x80, z >> 21))
    return avro_long(n)


def _avro_bytes(b: bytes) -> bytes:
    return avro_long(len(b)) + b


class AvroFramer:
    """Frames Avro bodies of one record schema as an object container file.

    The container's schema is the record with two fields put first,
    ``kafka_partition`` (int) and ``kafka_offset`` (long); since a record's binary
    form is its fields' forms in order, a framed record is just those two varints
    followed by the Kafka value, unchanged. Each record gets an Avro block of its
    own: ClickHouse reads a block's records from that block's bytes, so a malformed
    value fails on its own instead of shifting every record after it.
    """

    def __init__(self, record_schema: Mapping[str, Any]) -> None:
        schema = copy.deepcopy(dict(record_schema))
        schema["fields"] = [
            {"name": "kafka_partition", "type": "int"},
            {"name": "kafka_offset", "type": "long"},
            *schema["fields"],
        ]
        meta = {"avro.schema": json.dumps(schema).encode(), "avro.codec": b"null"}
        self.header = (
            b"Obj\x01"
            + avro_long(len(meta))
            + b"".join(_avro_bytes(k.encode()) + _avro_bytes(v) for k, v in meta.items())
            + b"\x00"
            + SYNC
        )

    def frame(
        self, partition: int, offsets: Sequence[int], bodies: Sequence[bytes], prefix: bytes = b""
    ) -> bytes:
        """``prefix`` (e.g. the INSERT statement), the header, then one block per record."""
        pre = avro_long(partition)
        count = _avro_count
        parts = [prefix, self.header]
        append = parts.append
        for offset, body in zip(offsets, bodies, strict=True):
            head = pre + count(offset)
            append(b"\x02" + count(len(head) + len(body)) + head)
            append(body)
            append(SYNC)
        return b"".join(parts)


# -------------------------------------------------------------- reading messages


@dataclass(slots=True)
class DeadOut:
    """A dead letter to produce before the offsets of its message are committed."""

    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]


class RouteReader:
    """Turns one topic's message values into current-schema Avro bodies."""

    def __init__(self, codec: Codec, route: Route, topic: str) -> None:
        self.codec = codec
        self.route = route
        self.topic = topic
        info = codec.schema(route.schema)
        self.fast_headers = codec.headers_for(route.schema)
        self.fingerprint = info.fingerprint.encode()
        self.full_name = info.full_name.encode()
        self.max_bytes = codec.max_bytes
        self.framer = AvroFramer(info.raw)
        # Schemas whose doubles must be finite (outcomes) are read with the codec even
        # on the fast path: its check is the contract, and ClickHouse cannot refuse
        # a row for us (chDB would drop the whole batch silently, see _insert).
        self.validate = route.schema in FINITE_SCHEMAS
        self._registry_ids: dict[int, bool] = {}

    def body(self, value: bytes | None, headers: list[tuple[str, bytes]] | None) -> bytes | None:
        """The value as a current-schema Avro body; None for a tombstone of the compacted
        model events topic (a deleted model: nothing to store). Raises DecodeError."""
        if value is None and self.route.role == "model_events":
            return None
        if value and len(value) <= self.max_bytes:
            if headers == self.fast_headers:
                if self.validate:
                    self.codec.decode(value, headers, self.route.schema, self.topic)
                return value  # the steady state: written by lastmile's codec, as is
            fp = name = None
            for k, v in headers or ():
                if k == "lastmile.fingerprint":
                    fp = v
                elif k == "lastmile.schema":
                    name = v
            if fp is not None or name is not None:
                if fp == self.fingerprint and name in (None, self.full_name):
                    if self.validate:
                        self.codec.decode(value, headers, self.route.schema, self.topic)
                    return value
            elif value[0] == 0 and len(value) > 5 and self._registry_current(value):
                if self.validate:
                    self.codec.decode(value, headers, self.route.schema, self.topic)
                return value[5:]
        return self.reencode(value, headers)

    def reencode(self, value: bytes | None, headers: list[tuple[str, bytes]] | None) -> bytes:
        """Decode with the codec (JSON, older schemas, any registry id) and write the
        record with the current schema. Raises DecodeError for what the codec rejects."""
        record = self.codec.decode(value, headers, self.route.schema, self.topic)
        try:
            return self.codec.encode(self.route.schema, record)[0]
        except EncodeError as err:
            raise DecodeError(str(err), stage="validate", schema=self.route.schema) from None

    def _registry_current(self, value: bytes) -> bool:
        registry = self.codec.registry
        if registry is None:
            return False
        sid = int.from_bytes(value[1:5], "big")
        known = self._registry_ids.get(sid)
        if known is None:
            try:
                schema = registry.get_schema(sid)
                writer = schema_fingerprint(json.loads(schema.schema_str))
                known = writer == self.fingerprint.decode()
            except Exception:
                return False  # let the codec decide (and say why) on the slow path
            self._registry_ids[sid] = known
        return known


def _as_bytes(value: Any) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode() if not isinstance(value, bytearray | memoryview) else bytes(value)


# ---------------------------------------------------------------- batch units


class Chunk:
    """One insert: the messages of one topic-partition in ``[first, last]``.

    Its boundaries are fixed before its first insert (and journaled), so every
    attempt, and every replay after a crash, carries the same deduplication token.
    ``items`` holds, per message, its Avro body (bytes), None (nothing to store) or
    a :class:`DeadOut`.
    """

    __slots__ = (
        "reader",
        "partition",
        "first",
        "last",
        "messages",
        "offsets",
        "items",
        "replayed",
        "done",
        "abandoned",
        "slow",
        "dead_pending",
        "rows",
        "data",
    )

    def __init__(
        self,
        reader: RouteReader,
        partition: int,
        first: int,
        last: int,
        messages: list[Message],
        offsets: list[int],
        items: list[Any],
        replayed: bool,
    ) -> None:
        self.reader = reader
        self.partition = partition
        self.first = first
        self.last = last
        self.messages = messages
        self.offsets = offsets
        self.items = items
        self.replayed = replayed
        self.done = False
        self.abandoned = False
        self.slow = False  # re-checked with the codec after ClickHouse refused it
        self.dead_pending: list[DeadOut] = [i for i in items if isinstance(i, DeadOut)]
        self.rows = sum(1 for i in items if isinstance(i, bytes))
        self.data: bytes | None = None  # the framed insert, kept for retries

    def frame(self, database: str, indexes: Sequence[int] | None = None) -> bytes | None:
        """The INSERT statement and Avro container of the rows (all, or at ``indexes``);
        None when there are none. Framing all of them is done once and kept."""
        if indexes is None and self.data is not None and not self.slow:
            return self.data
        offsets, bodies = self.rows_of(indexes)
        if not bodies:
            return None
        landing = self.reader.route.landing
        statement = f"INSERT INTO `{database}`.{landing} FORMAT Avro\n".encode()
        data = self.reader.framer.frame(self.partition, offsets, bodies, prefix=statement)
        if indexes is None and not self.slow:
            self.data = data
        return data

    @property
    def topic(self) -> str:
        return self.reader.topic

    @property
    def token(self) -> str:
        return f"{self.reader.topic}:{self.partition}:{self.first}-{self.last}"

    def rows_of(self, indexes: Sequence[int] | None = None) -> tuple[list[int], list[bytes]]:
        """(offsets, bodies) of the rows, or of the rows at ``indexes`` into ``items``."""
        items = self.items
        picked = range(len(items)) if indexes is None else indexes
        offsets, bodies = [], []
        for i in picked:
            body = items[i]
            if isinstance(body, bytes):
                offsets.append(self.offsets[i])
                bodies.append(body)
        return offsets, bodies


class _Partition:
    """Buffered messages of one assigned topic-partition."""

    __slots__ = (
        "reader",
        "partition",
        "messages",
        "offsets",
        "items",
        "nbytes",
        "since",
        "first_seen",
        "replay",
        "eof",
        "committed",
        "next_offset",
    )

    def __init__(self, reader: RouteReader, partition: int) -> None:
        self.reader = reader
        self.partition = partition
        self.messages: list[Message] = []
        self.offsets: list[int] = []
        self.items: list[Any] = []
        self.nbytes = 0
        self.since = 0.0
        self.first_seen: int | None = None
        # Journaled ranges still to reproduce; None until the journal has been read.
        self.replay: list[tuple[int, int]] | None = None
        self.eof: int | None = None  # high watermark at the last end-of-partition event
        self.committed: int | None = None
        self.next_offset: int | None = None  # after the last message received

    def take(self, limit: int) -> Chunk | None:
        """The next chunk to write, or None (nothing buffered, or an unfinished
        journaled range is still being re-read)."""
        while self.offsets:
            if self.replay:
                first, last = self.replay[0]
                k = _count_upto(self.offsets, last)
                complete = k < len(self.offsets) or (k and self.offsets[k - 1] >= last)
                complete = complete or (self.eof is not None and self.eof > last)
                if self.offsets[0] < first:
                    # Offsets below a journaled range were never written: a free chunk
                    # that stops short of the range.
                    k = _count_upto(self.offsets, first - 1)
                    return self._cut(min(k, limit), None)
                if not complete:
                    return None
                self.replay.pop(0)
                if k == 0:
                    continue  # the range's messages are gone (compaction): nothing to redo
                return self._cut(k, (first, last))
            return self._cut(min(len(self.offsets), limit), None)
        return None

    def _cut(self, k: int, bounds: tuple[int, int] | None) -> Chunk:
        messages, offsets, items = self.messages[:k], self.offsets[:k], self.items[:k]
        del self.messages[:k], self.offsets[:k], self.items[:k]
        first, last = bounds if bounds else (offsets[0], offsets[-1])
        self.since = time.monotonic() if self.offsets else 0.0
        return Chunk(
            self.reader, self.partition, first, last, messages, offsets, items, bounds is not None
        )


def _count_upto(offsets: list[int], bound: int) -> int:
    """How many leading offsets are <= bound (offsets ascend)."""
    import bisect

    return bisect.bisect_right(offsets, bound)


class _Round:
    """The chunks written together; the writer thread retries them until written."""

    def __init__(self, chunks: list[Chunk]) -> None:
        self.chunks = chunks
        self.done = threading.Event()
        self.rows = sum(c.rows for c in chunks)


class _Retry(Exception):
    """A write that failed for a reason that passes (ClickHouse or Kafka unavailable)."""


# ClickHouse error codes that mean "these bytes are not what the table takes".
_PARSE_CODES = frozenset({6, 25, 26, 27, 32, 33, 38, 41, 72, 117, 128, 131})
# ... and "this value is refused" (throwIf in a view, out of range): found by bisection.
_VALUE_CODES = frozenset({69, 70, 321, 395, 407})
_DLQ_FLUSH_S = 30.0
PIPELINE = 2  # rounds in flight at once


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


# ------------------------------------------------------------------------ the sink


class Sink:
    """The sink role: consume, batch, insert, commit, on a thread of its own.

    It has what ``streams.app`` expects of a role: :meth:`start`, :meth:`stop`,
    ``failed``, ``stats.as_dict()``, ``group_id``.
    """

    name = "sink"

    def __init__(
        self,
        settings: Settings,
        options: SinkOptions | None = None,
        roles: Sequence[str] | None = None,
        worker: str | None = None,
        migrate: bool = True,
    ) -> None:
        self.settings = settings
        self.options = options or SinkOptions.from_settings(settings)
        self.group_id = self.options.group_id
        self.database = db.database_name(settings)
        self.worker = worker or f"{socket.gethostname()}:{os.getpid()}"
        self.migrate = migrate
        self.codec = Codec.from_settings(settings)
        wanted = set(roles) if roles else {r.role for r in ROUTES}
        self.readers: dict[str, RouteReader] = {}
        for route in ROUTES:
            if route.role in wanted:
                topic = settings.topics[route.role]
                self.readers[topic] = RouteReader(self.codec, route, topic)
        self.stats = SinkStats()
        self.failed = False
        self._stop = threading.Event()
        self._assigned = threading.Event()
        self._thread: threading.Thread | None = None
        self._parts: dict[tuple[str, int], _Partition] = {}
        # Rounds handed to the writer, oldest first; committed in this order.
        self._inflight: collections.deque[_Round] = collections.deque()
        self._rounds: queue.Queue[_Round | None] = queue.Queue()
        self._to_commit: list[TopicPartition] = []
        self._paused = False
        self._repause = False
        self._local = threading.local()
        self._journal_lock = threading.Lock()
        self._consumer: Consumer | None = None
        self._producer: Producer | None = None
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._next_lookup = 0.0
        self._lookup_backoff = 0.2
        self._next_lag = 0.0

    # -- lifecycle ---------------------------------------------------------------------

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
        except Exception as err:
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

    def _consumer_config(self) -> dict[str, Any]:
        return self.settings.consumer_config(
            self.group_id,
            **{
                "isolation.level": "read_committed",  # never store an aborted prediction
                "enable.partition.eof": True,  # tells when a journaled range is complete
                # librdkafka's own prefetch queue is part of the memory bound.
                "queued.max.messages.kbytes": 32768,
                "fetch.max.bytes": 16 << 20,
            },
        )

    def _ensure_schema(self) -> bool:
        delay = 0.2
        while not self._stop.is_set():
            try:
                db.ensure_schema(self.settings, strict=False)
                return True
            except db.MigrationError:
                raise
            except Exception as err:
                self.stats.failed(err)
                log.warning("sink: cannot migrate ClickHouse yet (%s); retrying", _one_line(err))
                self._stop.wait(delay)
                delay = min(delay * 2, self.options.max_backoff_s)
        return False

    def _client(self, timeout: float = 120.0) -> Any:
        """This thread's ClickHouse client (clients are not shared between threads)."""
        key = f"client_{int(timeout)}"
        client = getattr(self._local, key, None)
        if client is None:
            client = db.connect(self.settings, send_receive_timeout=timeout)
            setattr(self._local, key, client)
        return client

    def _drop_client(self, timeout: float = 120.0) -> None:
        key = f"client_{int(timeout)}"
        client = getattr(self._local, key, None)
        if client is not None:
            setattr(self._local, key, None)
            with contextlib.suppress(Exception):
                client.close()

    # -- the consuming thread ------------------------------------------------------------

    def _step(self, consumer: Consumer) -> None:
        busy = bool(self._inflight) or self.stats.buffered_rows > 0
        messages = consumer.consume(10_000, 0.02 if busy else 0.1)
        if messages:
            self._add(messages)
        self._finish_round(consumer)
        self._lookup_journals()
        self._flow_control(consumer)
        self._dispatch()
        now = time.monotonic()
        if now >= self._next_lag:
            # The watermarks of fetch responses are free; a paused consumer fetches
            # nothing, so then ask the broker (every 5 s).
            self._next_lag = now + (5.0 if self._paused else 1.0)
            self._update_lag(consumer, cached=not self._paused)

    def _add(self, messages: list[Message]) -> None:
        # The hot loop (~2 us a message): consume() returns runs of one partition, so
        # the partition's state is looked up once per run.
        parts = self._parts
        rows = nbytes = 0
        now = time.monotonic()
        key: tuple[str, int] | None = None
        part: _Partition | None = None
        body: Callable[[Any, Any], Any] | None = None
        for m in messages:
            err = m.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    eof_part = parts.get((m.topic(), m.partition()))
                    if eof_part is not None:
                        eof_part.eof = m.offset()
                else:
                    log.warning("sink: consume error: %s", err)
                continue
            k = (m.topic(), m.partition())
            if k != key:
                key, part = k, parts.get(k)
                body = part.reader.body if part is not None else None
            if part is None or body is None:
                continue  # a partition revoked a moment ago
            offset = m.offset()
            value = m.value()
            try:
                item: Any = body(value, m.headers())
            except DecodeError as exc:
                item = self._dead(m, exc.stage, exc.reason)
            if part.first_seen is None:
                part.first_seen = offset
            if not part.offsets:
                part.since = now
            part.next_offset = offset + 1
            part.messages.append(m)
            part.offsets.append(offset)
            part.items.append(item)
            size = (len(value) if value else 0) + 200
            part.nbytes += size
            nbytes += size
            rows += 1
        self.stats.consumed += rows
        self.stats.buffered_rows += rows
        self.stats.buffered_bytes += nbytes

    def _dead(
        self, message: Message, stage: str, reason: str, error_type: str | None = None
    ) -> DeadOut:
        record = dead_letter(message, stage, reason, error_type, worker=self.worker)
        value, headers = encode_dead_letter(self.codec, record, self.settings.topic_dlq)
        return DeadOut(_as_bytes(message.key()), value, headers)

    def _dispatch(self) -> None:
        """Hand the writer the next round when a batch is due.

        Up to :data:`PIPELINE` rounds are in flight: the next one is framed here while
        the writer waits on ClickHouse for the previous one, so the server never
        idles while the sink prepares data. A partition may then have two
        uncommitted ranges in the journal; a replay re-forms each of them.
        """
        if len(self._inflight) >= PIPELINE or self._to_commit or not self.stats.buffered_rows:
            return
        now = time.monotonic()
        ready = [p for p in self._parts.values() if p.offsets and p.replay is not None]
        if not ready:
            return
        due = self.stats.buffered_rows >= self.options.batch_rows or any(
            now - p.since >= self.options.batch_seconds for p in ready
        )
        if not due:
            return
        chunks = []
        for part in ready:
            before, nbytes = len(part.offsets), part.nbytes
            chunk = part.take(self.options.batch_rows)
            if chunk is None:
                continue
            taken = before - len(part.offsets)
            # Bytes are accounted per partition, not per message: take the average.
            size = nbytes if not part.offsets else nbytes * taken // before
            part.nbytes -= size
            self.stats.buffered_rows -= taken
            self.stats.buffered_bytes -= size
            chunk.frame(self.database)
            chunks.append(chunk)
        if not chunks:
            return
        round_ = _Round(chunks)
        self._inflight.append(round_)
        self.stats.in_flight_rows = sum(r.rows for r in self._inflight)
        self._rounds.put(round_)

    def _finish_round(self, consumer: Consumer) -> None:
        """Queue the offsets of written rounds, oldest first, and commit them."""
        while self._inflight and self._inflight[0].done.is_set():
            round_ = self._inflight.popleft()
            for c in round_.chunks:
                if c.done and not c.abandoned and (c.topic, c.partition) in self._parts:
                    self._to_commit.append(TopicPartition(c.topic, c.partition, c.last + 1))
            self.stats.in_flight_rows = sum(r.rows for r in self._inflight)
        if self._to_commit:
            self._commit(consumer)

    def _commit(self, consumer: Consumer) -> None:
        latest: dict[tuple[str, int], TopicPartition] = {}
        for tp in self._to_commit:
            if (tp.topic, tp.partition) in self._parts:
                latest[(tp.topic, tp.partition)] = tp  # queued in order: the last one wins
        offsets = list(latest.values())
        if not offsets:
            self._to_commit = []
            return
        try:
            consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as err:
            # Retried on the next step; no new batch forms meanwhile, so the journal
            # never holds two unfinished ranges of one partition.
            self.stats.failed(err, clickhouse=False)
            log.warning("sink: commit failed (%s); retrying", err)
            return
        for tp in offsets:
            part = self._parts.get((tp.topic, tp.partition))
            if part is not None:
                part.committed = tp.offset
        self._to_commit = []

    def _flow_control(self, consumer: Consumer) -> None:
        opts = self.options
        rows, nbytes = self.stats.buffered_rows, self.stats.buffered_bytes
        if not self._paused and (rows >= opts.buffer_rows or nbytes >= opts.buffer_bytes):
            self._paused = self._repause = True
            log.info("sink: buffer full (%d messages, %d MB): pausing", rows, nbytes >> 20)
        elif self._paused and rows <= opts.buffer_rows // 2 and nbytes <= opts.buffer_bytes // 2:
            self._paused = False
            with contextlib.suppress(KafkaException):
                consumer.resume(consumer.assignment())
            self._seek_to_next(consumer)
            log.info("sink: buffer drained: resuming")
        if self._paused and self._repause:
            # Also after a rebalance: new partitions arrive unpaused.
            with contextlib.suppress(KafkaException):
                consumer.pause(consumer.assignment())
            self._repause = False
        self.stats.paused = self._paused

    def _seek_to_next(self, consumer: Consumer) -> None:
        """Point every partition at the message after the last one received.

        librdkafka (2.12, against the embedded broker) sometimes skips one message
        per partition on resume after a long pause: its own position() is already
        one past what it delivered. The sink knows what it received, so it says
        where to go on (nothing received yet: the committed offset).
        """
        for (topic, partition), part in self._parts.items():
            target = part.next_offset if part.next_offset is not None else part.committed
            if target is None:
                continue
            try:
                consumer.seek(TopicPartition(topic, partition, target))
            except KafkaException as err:
                log.warning("sink: cannot seek %s[%d] to %d: %s", topic, partition, target, err)

    def _update_lag(self, consumer: Consumer, cached: bool) -> None:
        """Messages in the assigned partitions not yet written (committed) by this sink."""
        try:
            unknown = [p for p in self._parts.values() if p.committed is None]
            if unknown:
                # Nothing committed by this sink yet: the group's offset is the base.
                found = consumer.committed(
                    [TopicPartition(p.reader.topic, p.partition) for p in unknown], timeout=2.0
                )
                for tp in found:
                    part = self._parts.get((tp.topic, tp.partition))
                    if part is not None and part.committed is None and tp.offset >= 0:
                        part.committed = tp.offset
            lag = 0
            for (topic, partition), part in list(self._parts.items()):
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=1.0, cached=cached
                )
                if high < 0:
                    continue  # not known yet
                base = part.committed if part.committed is not None else low
                lag += max(0, high - base)
        except KafkaException:
            return
        self.stats.lag = lag

    # -- the journal -----------------------------------------------------------------

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
        except Exception as err:
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
            part.replay = _non_overlapping(ranges)
            if part.replay:
                log.warning(
                    "sink: %s[%d]: re-forming journaled range(s) %s, written but not"
                    " committed before; ClickHouse drops what it already has",
                    part.reader.topic,
                    part.partition,
                    part.replay,
                )

    # -- rebalances (called inside consume()) --------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            reader = self.readers.get(tp.topic)
            if reader is not None:
                self._parts[(tp.topic, tp.partition)] = _Partition(reader, tp.partition)
        self.stats.assigned = len(self._parts)
        self._repause = self._paused
        self._assigned.set()

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, commit=True)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, commit=False)

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], commit: bool) -> None:
        keys = {(tp.topic, tp.partition) for tp in partitions}
        if commit:
            # Rounds about to finish are worth waiting for: committed now rather than
            # replayed by the next owner.
            deadline = time.monotonic() + 5.0
            for round_ in list(self._inflight):
                round_.done.wait(max(0.0, deadline - time.monotonic()))
        unfinished = [r for r in self._inflight if not r.done.is_set()]
        for round_ in unfinished:
            for c in round_.chunks:
                if (c.topic, c.partition) in keys:
                    c.abandoned = True
        # No journal write for these partitions may land after the next owner has
        # read the journal: wait out one in progress.
        if unfinished and self._journal_lock.acquire(timeout=60):
            self._journal_lock.release()
        if commit:
            self._finish_round(consumer)
        self._to_commit = [tp for tp in self._to_commit if (tp.topic, tp.partition) not in keys]
        for key in keys:
            part = self._parts.pop(key, None)
            if part is not None:
                self.stats.buffered_rows -= len(part.offsets)
                self.stats.buffered_bytes -= part.nbytes
        self.stats.assigned = len(self._parts)

    # -- the writer thread -------------------------------------------------------------

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

    def _write_round(self, round_: _Round) -> None:
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
            except _Retry as err:
                cause = err.__cause__ or err
                self.stats.failed(cause, clickhouse=not isinstance(cause, KafkaException))
                log.warning(
                    "sink: writing a batch failed (%s); retrying in %.1f s", _one_line(cause), delay
                )
            if self._stop.wait(delay):
                return  # shutting down: what is not written is not committed
            delay = min(delay * 2, self.options.max_backoff_s)

    def _produce_dead(self, chunks: Sequence[Chunk]) -> None:
        outs = [(c, d) for c in chunks for d in c.dead_pending]
        if not outs:
            return
        producer = self._producer
        assert producer is not None
        failures: list[KafkaError] = []

        def report(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failures.append(err)

        for _chunk, d in outs:
            while True:
                try:
                    producer.produce(
                        self.settings.topic_dlq,
                        d.value,
                        d.key,
                        headers=d.headers,
                        on_delivery=report,
                    )
                    break
                except BufferError:
                    producer.poll(0.05)
        remaining = producer.flush(_DLQ_FLUSH_S)
        if failures or remaining:
            err = failures[0] if failures else KafkaError(KafkaError._TIMED_OUT)
            raise _Retry("dead letters not delivered") from KafkaException(err)
        for chunk, _d in outs:
            chunk.dead_pending = []
        with self.stats._lock:
            self.stats.dead_letters += len(outs)

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
            except Exception as err:
                self._drop_client(30.0)
                raise _Retry("journal write failed") from err

    def _insert_chunks(self, chunks: list[Chunk]) -> None:
        if len(chunks) == 1 or self._pool is None:
            results = [self._write_chunk_safely(c) for c in chunks]
        else:
            results = list(self._pool.map(self._write_chunk_safely, chunks))
        for err in results:
            if err is not None:
                raise err

    def _write_chunk_safely(self, chunk: Chunk) -> _Retry | None:
        try:
            self._write_chunk(chunk)
            return None
        except _Retry as err:
            return err
        except Exception as err:  # anything unexpected from a client: retry, visibly
            self._drop_client()
            retry = _Retry(str(err))
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
        except Exception as err:
            kind = _error_kind(err)
            if kind == "retry" or (kind == "parse" and chunk.slow):
                self._drop_client()
                raise _Retry(_one_line(err)) from err
            if not chunk.slow:
                # Bytes that looked like the current schema but are not: check every
                # message with the codec, dead-letter what it rejects, insert the rest.
                log.warning(
                    "sink: ClickHouse refused %s (%s); checking it message by message",
                    chunk.token,
                    _one_line(err),
                )
                self._recheck(chunk)
                self._produce_dead([chunk])
                if chunk.rows:
                    try:
                        self._insert(chunk, None, chunk.token)
                    except Exception as again:
                        if _error_kind(again) != "value":
                            raise _Retry(_one_line(again)) from again
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
        except Exception as err:
            kind = _error_kind(err)
            if kind != "value":
                raise _Retry(_one_line(err)) from err
            if len(indexes) == 1:
                i = indexes[0]
                reason = f"ClickHouse refused the row: {_one_line(err)}"
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
            raise _Retry(
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
        except Exception as err:
            self._drop_client(30.0)
            log.debug("sink: status row not written: %s", err)

    # -- shutdown ------------------------------------------------------------------------

    def _shutdown(self, consumer: Consumer) -> None:
        deadline = time.monotonic() + 10.0
        for round_ in list(self._inflight):
            round_.done.wait(max(0.0, deadline - time.monotonic()))
        self._finish_round(consumer)
        with contextlib.suppress(queue.Full):
            self._rounds.put_nowait(None)


def _non_overlapping(ranges: list[tuple[int, int, Any]]) -> list[tuple[int, int]]:
    """Journaled ranges in offset order; of two that overlap (a journal write that
    landed after a rebalance), the later one wins."""
    chosen: list[tuple[int, int]] = []
    for first, last, _created in sorted(ranges, key=lambda r: r[2], reverse=True):
        if all(last < f or first > lst for f, lst in chosen):
            chosen.append((first, last))
    return sorted(set(chosen))


def sink_lane(settings: Settings) -> Sink:
    """The sink role for ``streams.app.ROLES``."""
    return Sink(settings)


# ---------------------------------------------------------------------------- main


def _rss_kb() -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m streams.roles.sink``: run the sink alone until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m streams.roles.sink",
        description=(
            "Run lastmile's sink role on its own: consume every lastmile topic and write "
            "it to ClickHouse (settings from LASTMILE_* / lastmile.toml). Stops on SIGTERM."
        ),
    )
    parser.add_argument("--group-id", default=None, help="consumer group (default lastmile-sink)")
    parser.add_argument("--batch-rows", type=int, default=None, help="rows per insert (50000)")
    parser.add_argument("--batch-seconds", type=float, default=None, help="batch age bound (1.0)")
    parser.add_argument("--buffer-rows", type=int, default=None, help="pause at (200000)")
    parser.add_argument(
        "--stats-file",
        type=Path,
        default=None,
        help="write stats (and RSS) as JSON to this file 5 times a second",
    )
    parser.add_argument("--no-migrate", action="store_true", help="do not migrate on start")
    args = parser.parse_args(argv)
    settings = load_settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    overrides = {
        k: v
        for k, v in {
            "group_id": args.group_id,
            "batch_rows": args.batch_rows,
            "batch_seconds": args.batch_seconds,
            "buffer_rows": args.buffer_rows,
        }.items()
        if v is not None
    }
    sink = Sink(
        settings, SinkOptions.from_settings(settings, **overrides), migrate=not args.no_migrate
    )
    stop = threading.Event()

    def request_stop(signum: int, _frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    sink.start()
    write_stats: Callable[[], None] = lambda: None  # noqa: E731
    if args.stats_file is not None:
        path: Path = args.stats_file

        def write_stats() -> None:
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({**sink.stats.as_dict(), "rss_kb": _rss_kb()}))
            tmp.replace(path)

    while not stop.wait(0.2):
        write_stats()
        if sink.failed or (sink._thread is not None and not sink._thread.is_alive()):
            break
    sink.stop()
    write_stats()
    return 70 if sink.failed else 0


if __name__ == "__main__":
    sys.exit(main())
