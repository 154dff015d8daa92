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

The modules, one idea each: :mod:`.routes` (topic to table), :mod:`.options`,
:mod:`.stats`, :mod:`.framing` (the sink frames Avro), :mod:`.reader` (values to
bodies), :mod:`.batching` (buffers, chunks, rounds), :mod:`.state`,
:mod:`.deadletters`, :mod:`.clickhouse` (inserts with dedup tokens), :mod:`.journal`,
:mod:`.writer` (the writer thread), :mod:`.consume` (the Kafka loop), :mod:`.role`
(lifecycle) and ``__main__``.

>>> frame = AvroFramer({"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]})
>>> data = frame.frame(1, [7], [b"\\x04"])
>>> import fastavro, io
>>> list(fastavro.reader(io.BytesIO(data)))
[{'kafka_partition': 1, 'kafka_offset': 7, 'x': 2}]
"""

from __future__ import annotations

from streams.roles.sink.batching import Chunk, PartitionBuffer, Round
from streams.roles.sink.consume import PIPELINE
from streams.roles.sink.errors import WriteRetry
from streams.roles.sink.framing import SYNC, AvroFramer, avro_count
from streams.roles.sink.journal import non_overlapping
from streams.roles.sink.options import SinkOptions
from streams.roles.sink.reader import DeadOut, RouteReader
from streams.roles.sink.role import Sink, sink_lane
from streams.roles.sink.routes import ROUTES, Route
from streams.roles.sink.stats import SinkStats

__all__ = [
    "PIPELINE",
    "ROUTES",
    "SYNC",
    "AvroFramer",
    "Chunk",
    "DeadOut",
    "PartitionBuffer",
    "Round",
    "Route",
    "RouteReader",
    "Sink",
    "SinkOptions",
    "SinkStats",
    "WriteRetry",
    "avro_count",
    "non_overlapping",
    "sink_lane",
]
