"""Benchmark the sink and the dashboard's queries on the embedded stack.

Three parts, each printing its figures (nothing is asserted):

1. **End to end**: N predictions (Avro, as the scorer writes them) are produced to a
   fresh topic first; then the sink starts and the time until every row is in
   ClickHouse is measured, from the sink's start (group join and migrations
   included) and from its first written batch (steady state). Goal: >= 100,000 rows/s.
2. **Write path alternatives** (why the sink frames Avro instead of decoding it):
   the same batch written by decoding with the codec and inserting columns with
   clickhouse-connect, versus framing the raw values for ClickHouse's Avro reader.
3. **Dashboard queries** over M predictions spread over the last 24 h, generated
   inside ClickHouse with INSERT ... SELECT FROM numbers() (the rollup views fill
   as they would from the sink): per-minute throughput, latency quantiles and score
   histogram for the last 24 h from ``predictions_1m`` (goal: each under 200 ms),
   the same from the raw table for comparison, accuracy through the
   ``prediction_outcomes`` view, and a per-feature aggregate over the feature maps
   against a one-row-per-feature side table.

    python bench/sink.py                      # 1,000,000 rows end to end, 10,000,000 for queries
    python bench/sink.py --rows 200000 --dashboard-rows 1000000
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from confluent_kafka import Producer  # noqa: E402

from bench.procstat import cpu_seconds  # noqa: E402
from bench.scratch_store import scratch_store  # noqa: E402
from schemas import Codec  # noqa: E402
from schemas.wire import encode_long  # noqa: E402
from streams.config import Settings, load_settings  # noqa: E402
from streams.kafka.topics import ensure_topics  # noqa: E402
from streams.local.broker import EmbeddedBroker  # noqa: E402
from streams.local.processes import free_port  # noqa: E402
from streams.roles.sink import Sink, SinkOptions  # noqa: E402
from streams.storage import db  # noqa: E402
from streams.storage.store import EmbeddedStore  # noqa: E402

NAN = float("nan")  # a process already gone has no CPU figure


def settings_for(broker: EmbeddedBroker, store: EmbeddedStore, partitions: int) -> Settings:
    suffix = uuid.uuid4().hex[:8]
    topics = {
        f"topic_{role}": f"{name}.{suffix}"
        for role, name in load_settings(env={}, toml_path=None).topics.items()
    }
    return load_settings(
        env={},
        toml_path=None,
        kafka_port=broker.port,
        clickhouse_port=store.port,
        clickhouse_database=f"bench_{suffix}",
        topic_partitions=partitions,
        **topics,
    )


def prediction_values(codec: Codec, n: int, seed: int = 7) -> list[tuple[bytes, bytes, list]]:
    """(key, value, headers) of n predictions: 10 features (8 doubles, an int, a string).

    Encoding a million records with the codec takes a while, so a few hundred are
    encoded and each message gets its own request_id spliced in: request_id is
    the record's first field, an Avro string (length, then bytes).
    """
    rng = random.Random(seed)
    now = int(time.time() * 1000)
    templates = []
    placeholder = "r" * 12
    for i in range(500):
        record = {
            "request_id": placeholder,
            "model": "fraud",
            "version": 1 + i % 2,
            "variant": "champion" if i % 10 else "shadow",
            "score": rng.random(),
            "label": str(i % 2),
            "features": {
                **{f"x{j}": rng.random() for j in range(8)},
                "age": 20 + i % 50,
                "plan": rng.choice(["free", "pro", "gold"]),
            },
            "event_time": now - 50,
            "scored_time": now,
            "latency_ms": rng.expovariate(1 / 3.0),
        }
        value, headers = codec.encode("Prediction", record)
        head = encode_long(len(placeholder)) + placeholder.encode()
        assert value.startswith(head)
        templates.append((value[len(head) :], headers))
    out = []
    for i in range(n):
        rest, headers = templates[i % len(templates)]
        rid = f"b{i:011d}".encode()
        out.append((rid, encode_long(len(rid)) + rid + rest, headers))
    return out


def bench_end_to_end(
    broker: EmbeddedBroker, store: EmbeddedStore, rows: int, partitions: int
) -> None:
    settings = settings_for(broker, store, partitions)
    ensure_topics(settings)
    codec = Codec.from_settings(settings)
    started = time.perf_counter()
    messages = prediction_values(codec, rows)
    print(f"  encoded {rows:,} predictions in {time.perf_counter() - started:.1f} s")
    producer = Producer(settings.producer_config(**{"linger.ms": 50, "batch.size": 1 << 20}))
    started = time.perf_counter()
    for key, value, headers in messages:
        while True:
            try:
                producer.produce(settings.topic_predictions, value, key, headers=headers)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush()
    elapsed = time.perf_counter() - started
    print(f"  produced to {partitions} partitions: {rows / elapsed:,.0f} msg/s")
    del messages

    db.ensure_schema(settings)  # migrations are not what is measured
    sink = Sink(settings, SinkOptions.from_settings(None, env={}))
    cpu_before = (
        cpu_seconds(store.pid, gone=NAN),
        time.process_time(),
        cpu_seconds(broker.pid, gone=NAN),
    )
    started = time.perf_counter()
    first_at = None
    sink.start()
    while True:
        time.sleep(0.05)
        written = sink.stats.rows_written.get("predictions", 0)
        if written and first_at is None:
            first_at = (time.perf_counter(), written)
        if written >= rows or sink.failed:
            break
    done = time.perf_counter()
    cpu_after = (
        cpu_seconds(store.pid, gone=NAN),
        time.process_time(),
        cpu_seconds(broker.pid, gone=NAN),
    )
    stats = sink.stats.as_dict()
    sink.stop()
    client = db.connect(settings)
    count, unique = client.query(
        "SELECT count(), uniqExact(request_id) FROM predictions"
    ).result_rows[0]
    client.close()
    total = done - started
    assert first_at is not None
    steady = done - first_at[0]
    print(f"  sink: {rows:,} rows in {total:.2f} s from its start: {rows / total:,.0f} rows/s")
    print(
        f"  sink: steady state (first batch to last): {(rows - first_at[1]) / steady:,.0f} rows/s"
        f" in {stats['batches']} inserts"
    )
    print(f"  ClickHouse: count() = {count:,}, uniqExact(request_id) = {unique:,}")
    used = [after - before for before, after in zip(cpu_before, cpu_after, strict=True)]
    print(
        f"  CPU seconds meanwhile: ClickHouse store {used[0]:.1f}, sink {used[1]:.1f},"
        f" broker {used[2]:.1f} (wall {total:.1f} s, {os.cpu_count()} cores)"
    )


def fresh_database(store: EmbeddedStore, prefix: str) -> Settings:
    """Settings naming a new database of `store`, its tables created."""
    settings = load_settings(
        env={},
        toml_path=None,
        clickhouse_port=store.port,
        clickhouse_database=f"{prefix}_{uuid.uuid4().hex[:8]}",
    )
    db.ensure_schema(settings)
    return settings


def bench_write_paths(store: EmbeddedStore, rows: int = 50_000) -> None:
    """One batch, two ways into ClickHouse."""
    settings = fresh_database(store, "bench")
    codec = Codec()
    messages = prediction_values(codec, rows, seed=11)
    values = [v for _k, v, _h in messages]
    headers = [h for _k, _v, h in messages]
    client = db.connect(settings)

    from streams.roles.sink import ROUTES, RouteReader

    reader = RouteReader(codec, ROUTES[0], "t")
    times = []
    for rep in range(3):
        started = time.perf_counter()
        statement = f"INSERT INTO `{db.database_name(settings)}`.predictions_in FORMAT Avro\n"
        data = reader.framer.frame(0, list(range(rows)), values, prefix=statement.encode())
        framed = time.perf_counter()
        client.raw_insert(
            None, insert_block=data, settings={"insert_deduplication_token": f"bench-avro-{rep}"}
        )
        times.append((framed - started, time.perf_counter() - framed))
    frame_s, insert_s = min(times, key=sum)
    print(
        f"  Avro framing: frame {frame_s * 1000:.0f} ms + insert {insert_s * 1000:.0f} ms"
        f" for {rows:,} rows: {rows / (frame_s + insert_s):,.0f} rows/s"
    )

    columns = [
        "request_id",
        "model",
        "version",
        "variant",
        "score",
        "label",
        "features_num",
        "features_cat",
        "features_null",
        "event_time",
        "ts",
        "latency_ms",
        "entity_id",
        "caller",
        "metadata",
        "kafka_partition",
        "kafka_offset",
    ]
    import datetime as dt

    times = []
    for _rep in range(2):
        started = time.perf_counter()
        decoded = codec.decode_many(values, headers, "Prediction")
        t_decode = time.perf_counter()
        data_cols: list[list] = [[] for _ in columns]
        utc = dt.UTC
        for offset, r in enumerate(decoded):
            num, cat, nulls = {}, {}, []
            for k, v in r["features"].items():
                if v is None:
                    nulls.append(k)
                elif isinstance(v, str):
                    cat[k] = v
                else:
                    num[k] = float(v)
            row = [
                r["request_id"],
                r["model"],
                r["version"],
                r["variant"],
                r["score"],
                r["label"],
                num,
                cat,
                nulls,
                dt.datetime.fromtimestamp(r["event_time"] / 1000, utc),
                dt.datetime.fromtimestamp(r["scored_time"] / 1000, utc),
                r["latency_ms"],
                r["entity_id"],
                r["caller"],
                r["metadata"],
                0,
                offset,
            ]
            for col, value in zip(data_cols, row, strict=True):
                col.append(value)
        t_cols = time.perf_counter()
        client.insert("predictions", data_cols, column_names=columns, column_oriented=True)
        times.append((t_decode - started, t_cols - t_decode, time.perf_counter() - t_cols))
    d, c, i = min(times, key=sum)
    print(
        f"  codec decode + columnar insert: decode {d * 1000:.0f} ms + columns {c * 1000:.0f} ms"
        f" + insert {i * 1000:.0f} ms: {rows / (d + c + i):,.0f} rows/s"
    )
    client.close()


def timed(client: object, sql: str, repeat: int, **kw: object) -> tuple[float, float, object]:
    runs = []
    result = None
    for _ in range(repeat):
        started = time.perf_counter()
        result = client.query(sql, **kw)  # type: ignore[attr-defined]
        runs.append(time.perf_counter() - started)
    return statistics.median(runs) * 1000, min(runs) * 1000, result


def bench_dashboard(store: EmbeddedStore, rows: int, repeat: int) -> None:
    settings = fresh_database(store, "dash")
    client = db.connect(settings, send_receive_timeout=1800)
    step_ms = max(1, 86_400_000 // rows)
    started = time.perf_counter()
    # One insert per 1M rows keeps the store's memory modest.
    chunk = 1_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        client.command(f"""
            INSERT INTO predictions (request_id, model, version, variant, score, label,
                features_num, features_cat, features_null, event_time, ts, latency_ms,
                kafka_partition, kafka_offset)
            SELECT
                concat('d', toString(number)),
                if(number % 3 = 0, 'churn', 'fraud'),
                1 + intDiv(number, {rows // 2 + 1}),
                if(number % 10 = 0, 'shadow', 'champion'),
                s,
                toString(s > 0.5),
                map('x0', randCanonical(), 'x1', randCanonical(), 'x2', randCanonical(),
                    'x3', randCanonical(), 'x4', randNormal(0, 1), 'x5', randNormal(3, 2),
                    'x6', randExponential(1), 'x7', randCanonical(), 'age', toFloat64(20 + number % 60)),
                map('plan', ['free', 'pro', 'gold'][1 + number % 3]),
                [],
                ts - toIntervalMillisecond(40),
                ts,
                toFloat32(randExponential(0.3)),
                number % 3,
                number
            FROM (
                SELECT number, randCanonical() AS s,
                       now64(3) - toIntervalMillisecond(number * {step_ms}) AS ts
                FROM numbers({start}, {n})
            )""")  # noqa: E501
    gen = time.perf_counter() - started
    started = time.perf_counter()
    client.command(f"""
        INSERT INTO outcomes (request_id, model, label, ts, kafka_partition, kafka_offset)
        SELECT request_id, model, toString(randCanonical() > 0.5), ts + toIntervalSecond(30), 0, 0
        FROM predictions WHERE kafka_offset % 2 = 0 AND kafka_offset < {rows}""")
    gen_outcomes = time.perf_counter() - started
    client.command("OPTIMIZE TABLE predictions_1m FINAL")
    print(
        f"  generated {rows:,} predictions in {gen:.1f} s ({rows / gen:,.0f} rows/s,"
        f" through the rollup view)"
    )
    print(f"  generated {rows // 2:,} outcomes in {gen_outcomes:.1f} s")
    rollup_rows = client.query("SELECT count() FROM predictions_1m").result_rows[0][0]
    print(f"  predictions_1m holds {rollup_rows:,} rows")

    since = "now64(3) - INTERVAL 1 DAY"
    queries = {
        "per-minute throughput, 24 h (rollup)": f"""
            SELECT minute, sum(n) AS predictions FROM predictions_1m
            WHERE model = 'fraud' AND minute >= {since} GROUP BY minute ORDER BY minute""",
        "latency p50/p90/p99 per minute, 24 h (rollup)": f"""
            SELECT minute, quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_q) AS q FROM predictions_1m
            WHERE model = 'fraud' AND minute >= {since} GROUP BY minute ORDER BY minute""",
        "latency p50/p90/p99 per version, 24 h (rollup)": f"""
            SELECT version, variant, quantilesTDigestMerge(0.5, 0.9, 0.99)(latency_q) AS q
            FROM predictions_1m WHERE model = 'fraud' AND minute >= {since}
            GROUP BY version, variant""",
        "score histogram, 24 h (rollup)": f"""
            SELECT version, sumMap(score_hist) AS bins FROM predictions_1m
            WHERE model = 'fraud' AND minute >= {since} GROUP BY version""",
        "per-minute throughput, 24 h (raw table)": f"""
            SELECT toStartOfMinute(ts) AS minute, count() FROM predictions
            WHERE model = 'fraud' AND ts >= {since} GROUP BY minute ORDER BY minute""",
        "latency p50/p90/p99, 24 h (raw table)": f"""
            SELECT version, quantiles(0.5, 0.9, 0.99)(latency_ms) FROM predictions
            WHERE model = 'fraud' AND ts >= {since} GROUP BY version""",
        "score histogram, 24 h (raw table)": f"""
            SELECT version, least(toUInt8(floor(score * 20)), 19) AS bin, count() FROM predictions
            WHERE model = 'fraud' AND ts >= {since} GROUP BY version, bin""",
        "accuracy per version, last hour (prediction_outcomes)": """
            SELECT model, version, countIf(has_outcome) AS labelled,
                   avgIf(label = outcome_label, has_outcome) AS accuracy
            FROM prediction_outcomes(since = now64(3) - INTERVAL 1 HOUR, until = now64(3))
            GROUP BY model, version""",
        "mean of every numeric feature, last hour (raw table)": """
            SELECT name, avg(value) FROM predictions
            ARRAY JOIN mapKeys(features_num) AS name, mapValues(features_num) AS value
            WHERE model = 'fraud' AND ts >= now64(3) - INTERVAL 1 HOUR GROUP BY name""",
    }
    width = max(len(k) for k in queries)
    print(f"  {'query'.ljust(width)}  median     best  (of {repeat})")
    for name, sql in queries.items():
        median, best, _result = timed(client, sql, repeat)
        print(f"  {name.ljust(width)}  {median:6.0f} ms {best:6.0f} ms")

    # Map columns against the alternative, one row per feature in a side table: the
    # same features of the same predictions, written and read both ways.
    side_rows = min(rows, 1_000_000)
    client.command("""
        CREATE TABLE features_map (model LowCardinality(String), ts DateTime64(3, 'UTC'),
            request_id String, features_num Map(LowCardinality(String), Float64))
        ENGINE = MergeTree ORDER BY (model, ts)""")
    client.command("""
        CREATE TABLE features_rows (model LowCardinality(String), name LowCardinality(String),
            ts DateTime64(3, 'UTC'), request_id String, value Float64)
        ENGINE = MergeTree ORDER BY (model, name, ts)""")
    started = time.perf_counter()
    client.command(f"""
        INSERT INTO features_map SELECT model, ts, request_id, features_num FROM predictions
        WHERE kafka_offset < {side_rows}""")
    as_map = time.perf_counter() - started
    started = time.perf_counter()
    client.command(f"""
        INSERT INTO features_rows SELECT model, name, ts, request_id, value FROM predictions
        ARRAY JOIN mapKeys(features_num) AS name, mapValues(features_num) AS value
        WHERE kafka_offset < {side_rows}""")
    as_rows = time.perf_counter() - started
    print(
        f"  features of {side_rows:,} predictions written as a Map column: {as_map:.2f} s;"
        f" as one row per feature: {as_rows:.2f} s"
    )
    reads = {
        "every feature's mean, last hour": (
            """SELECT name, avg(value) FROM features_map
               ARRAY JOIN mapKeys(features_num) AS name, mapValues(features_num) AS value
               WHERE model = 'fraud' AND ts >= now64(3) - INTERVAL 1 HOUR GROUP BY name""",
            """SELECT name, avg(value) FROM features_rows
               WHERE model = 'fraud' AND ts >= now64(3) - INTERVAL 1 HOUR GROUP BY name""",
        ),
        "one feature's mean per minute, all": (
            """SELECT toStartOfMinute(ts) AS m, avg(features_num['x4']) FROM features_map
               WHERE model = 'fraud' GROUP BY m""",
            """SELECT toStartOfMinute(ts) AS m, avg(value) FROM features_rows
               WHERE model = 'fraud' AND name = 'x4' GROUP BY m""",
        ),
    }
    for name, (map_sql, rows_sql) in reads.items():
        map_ms, _, _ = timed(client, map_sql, repeat)
        rows_ms, _, _ = timed(client, rows_sql, repeat)
        print(f"  {name}: Map column {map_ms:.0f} ms, side table {rows_ms:.0f} ms")
    sizes = client.query("""
        SELECT table, formatReadableSize(sum(data_compressed_bytes)) FROM system.parts
        WHERE database = currentDatabase() AND active
          AND table IN ('predictions', 'features_map', 'features_rows', 'predictions_1m')
        GROUP BY table ORDER BY table""").result_rows
    print("  on disk: " + ", ".join(f"{t} {s}" for t, s in sizes))
    client.command(f"DROP DATABASE `{db.database_name(settings)}`")
    client.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench/sink.py",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Prints figures; asserts nothing. Runs its own broker and ClickHouse store.",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="end-to-end rows (1,000,000)")
    parser.add_argument("--partitions", type=int, default=3, help="topic partitions (3)")
    parser.add_argument(
        "--dashboard-rows",
        type=int,
        default=10_000_000,
        help="predictions generated for the queries (10,000,000)",
    )
    parser.add_argument("--repeat", type=int, default=5, help="runs of each query (5)")
    parser.add_argument("--skip-e2e", action="store_true", help="skip the end-to-end part")
    parser.add_argument("--skip-dashboard", action="store_true", help="skip the query part")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    with scratch_store("lastmile-bench-sink-") as (store, base):
        if not args.skip_e2e:
            with EmbeddedBroker(base / "broker", free_port()) as broker:
                print(f"end to end: {args.rows:,} predictions, topic to ClickHouse")
                bench_end_to_end(broker, store, args.rows, args.partitions)
            print("write path, one 50,000-row batch:")
            bench_write_paths(store)
        if not args.skip_dashboard:
            print(f"dashboard queries, {args.dashboard_rows:,} predictions in the last 24 h")
            bench_dashboard(store, args.dashboard_rows, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
