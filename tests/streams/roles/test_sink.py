"""The sink: topics into ClickHouse, exactly once in effect, through crashes and outages.

Unit tests first (framing, reading values, batch boundaries); then the embedded
stack: the session broker and ClickHouse store, each test in topics and a
database of its own. The crash and outage tests run the sink as a subprocess
(``python -m streams.roles.sink``) and kill it, or stop its ClickHouse, mid-stream.

N, the number of predictions (each with an outcome) in the end-to-end and crash
tests, is 100,000 (``LASTMILE_TEST_SINK_N`` changes it).
"""

from __future__ import annotations

import contextlib
import datetime
import io
import json
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import fastavro
import pytest
from confluent_kafka import Producer
from sample_records import drift_alert

from schemas import Codec, DecodeError
from schemas.wire import encode_long
from streams.config import Settings
from streams.kafka.topics import ensure_topics
from streams.roles.sink import (
    ROUTES,
    AvroFramer,
    Chunk,
    PartitionBuffer,
    RouteReader,
    Sink,
    SinkOptions,
    avro_count,
    non_overlapping,
)
from streams.storage import db

N = int(os.environ.get("LASTMILE_TEST_SINK_N", "100000"))
ROOT = Path(__file__).resolve().parents[3]
NOW = int(time.time() * 1000)


# ------------------------------------------------------------------- test data


def prediction(i: int, now: int = NOW) -> dict[str, Any]:
    return {
        "request_id": f"req-{i:09d}",
        "model": "fraud" if i % 4 else "churn",
        "version": 1 + i % 2,
        "variant": "champion",
        "score": (i % 100) / 100,
        "label": "yes" if i % 2 == 0 else "no",
        "features": {
            "amount": i * 0.5,
            "age": 20 + i % 50,
            "plan": "gold",
            "vip": i % 7 == 0,
            "missing": None,
        },
        "event_time": now - 100,
        "scored_time": now,
        "latency_ms": float(i % 13),
    }


def outcome(i: int, now: int = NOW) -> dict[str, Any]:
    model = "fraud" if i % 4 else "churn"
    return {
        "request_id": f"req-{i:09d}",
        "model": model,
        "label": "yes" if i % 3 == 0 else "no",
        "event_time": now + 1000,
    }


def expected_matches(n: int) -> int:
    """Predictions whose predicted label equals the outcome's, among 0..n-1."""
    return sum(1 for i in range(n) if (i % 2 == 0) == (i % 3 == 0))


def assert_each_stored_once(settings: Settings, predictions: int, outcomes: int) -> None:
    """`predictions` predictions and `outcomes` outcomes in ClickHouse, each stored once."""
    assert count(settings, "SELECT count(), uniqExact(request_id) FROM predictions") == (
        predictions,
        predictions,
    )
    assert count(settings, "SELECT count(), uniqExact(request_id) FROM outcomes") == (
        outcomes,
        outcomes,
    )


def assert_each_stored_once_and_joined(settings: Settings, outcomes: int) -> None:
    """The N predictions stored once each (and rolled up), `outcomes` outcomes stored once
    each, and the join matching what was produced."""
    assert_each_stored_once(settings, N, outcomes)
    assert count(settings, "SELECT sum(n) FROM predictions_1m") == (N,)
    rows, matched, same = count(
        settings,
        """
        SELECT count(), countIf(has_outcome), countIf(has_outcome AND label = outcome_label)
        FROM prediction_outcomes(since = now64(3) - INTERVAL 1 DAY,
                                 until = now64(3) + INTERVAL 1 DAY)""",
    )
    assert (rows, matched, same) == (N, N, expected_matches(N))


class Traffic:
    """Encodes predictions and outcomes once and produces them, optionally paced."""

    def __init__(self, settings: Settings, codec: Codec) -> None:
        self.settings = settings
        self.codec = codec
        self.producer = Producer(settings.producer_config())
        self.failures: list[str] = []

    def _report(self, err: Any, msg: Any) -> None:
        if err is not None:
            self.failures.append(f"{msg.topic()} {msg.key()!r}: {err}")

    def flush(self) -> None:
        remaining = self.producer.flush(60)
        assert remaining == 0 and not self.failures, (remaining, self.failures[:5])

    def produce(self, start: int, count: int, rate: float | None = None) -> None:
        """Predictions and outcomes start..start+count-1, at ``rate`` per second if given."""
        began = time.monotonic()
        p_topic, o_topic = self.settings.topic_predictions, self.settings.topic_outcomes
        for i in range(start, start + count):
            key = f"req-{i:09d}".encode()
            value, headers = self.codec.encode("Prediction", prediction(i), p_topic)
            self._send(p_topic, value, key, headers)
            value, headers = self.codec.encode("Outcome", outcome(i), o_topic)
            self._send(o_topic, value, key, headers)
            if rate and (i - start) % 500 == 0:
                ahead = (i - start) / rate - (time.monotonic() - began)
                if ahead > 0:
                    time.sleep(ahead)
                self.producer.poll(0)
        self.flush()

    def _send(self, topic: str, value: bytes, key: bytes, headers: list) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, headers=headers, on_delivery=self._report)
                return
            except BufferError:
                self.producer.poll(0.05)

    def raw(self, topic: str, value: bytes | None, key: bytes, headers: list | None = None) -> None:
        self._send(topic, value, key, headers or [])
        self.flush()


def wait_for(
    check: Callable[[], bool],
    timeout: float,
    what: str,
    every: float = 0.2,
    detail: Callable[[], object] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(every)
    more = f"\n{detail()}" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}{more}")


def count(settings: Settings, sql: str) -> Any:
    client = db.connect(settings)
    try:
        return client.query(sql).result_rows[0]
    finally:
        client.close()


def try_count(settings: Settings, sql: str) -> Any:
    try:
        return count(settings, sql)
    except Exception:
        return None


@pytest.fixture
def stack(fresh_settings: Callable[..., Settings], clickhouse: Any) -> Settings:
    """Settings with fresh topics (created) and a fresh database."""
    settings = fresh_settings(
        clickhouse_port=clickhouse.port, clickhouse_database=f"t_{uuid.uuid4().hex[:10]}"
    )
    ensure_topics(settings)
    return settings


# -------------------------------------------------------------------------- unit


def test_encode_long_matches_fastavro() -> None:
    for n in (0, 1, -1, 63, 64, -65, 2**31, 2**62, -(2**63)):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, "long", n)
        assert encode_long(n) == out.getvalue()
    # The unrolled encoder of offsets and sizes, across every length boundary.
    rng = random.Random(5)
    checked = [*range(0, 70_000), *(rng.randrange(2**45) for _ in range(20_000))]
    checked += [2**k + d for k in range(7, 63, 7) for d in (-1, 0, 1)]
    assert [avro_count(n) for n in checked] == [encode_long(n) for n in checked]


def test_framed_values_read_back_as_the_records_with_their_offsets() -> None:
    codec = Codec()
    reader = RouteReader(codec, ROUTES[0], "preds")
    records = [prediction(i) for i in range(3)]
    bodies = [codec.encode("Prediction", r)[0] for r in records]
    data = reader.framer.frame(2, [5, 70000, 2**40], bodies)
    read = list(fastavro.reader(io.BytesIO(data)))
    assert [(r["kafka_partition"], r["kafka_offset"]) for r in read] == [
        (2, 5),
        (2, 70000),
        (2, 2**40),
    ]
    for got, want in zip(read, records, strict=True):
        assert got["request_id"] == want["request_id"]
        assert got["features"] == want["features"]
    assert AvroFramer(codec.schema("Outcome").raw).frame(0, [], []).startswith(b"Obj\x01")


def test_route_reader_passes_current_values_through_and_reencodes_the_rest() -> None:
    codec = Codec()
    outcomes = RouteReader(codec, ROUTES[1], "outs")
    value, headers = codec.encode("Outcome", outcome(1))
    assert outcomes.body(value, headers) is value  # the fast path: no copy, no decode
    shuffled = [("trace", b"x"), *reversed(headers)]
    assert outcomes.body(value, shuffled) is value
    as_json = b'{"request_id": "r", "model": "m", "value": 1.5, "event_time": 5}'
    body = outcomes.body(as_json, None)
    assert codec.decode(body, headers, "Outcome") == {
        "request_id": "r",
        "model": "m",
        "label": None,
        "value": 1.5,
        "event_time": 5,
    }
    with pytest.raises(DecodeError):
        outcomes.body(b"not json", None)
    with pytest.raises(DecodeError):
        outcomes.body(b'{"request_id": "r", "model": "m", "value": NaN, "event_time": 5}', None)
    events = RouteReader(codec, ROUTES[4], "events")
    assert events.body(None, None) is None  # a tombstone of the compacted topic


def test_route_reader_takes_schema_registry_values_of_the_current_schema(
    fresh_settings: Callable[..., Settings],
) -> None:
    settings = fresh_settings(schema_registry_url=f"mock://sink-{uuid.uuid4().hex[:6]}")
    codec = Codec.from_settings(settings)
    topic = settings.topic_predictions
    value, headers = codec.encode("Prediction", prediction(3), topic)
    assert headers == [] and value[0] == 0
    reader = RouteReader(codec, ROUTES[0], topic)
    assert reader.body(value, None) == value[5:]
    assert reader.body(value, None) == Codec().encode("Prediction", prediction(3))[0]


def _partition(offsets: list[int]) -> PartitionBuffer:
    part = PartitionBuffer(RouteReader(Codec(), ROUTES[0], "t"), 0)
    for o in offsets:
        part.messages.append(None)  # type: ignore[arg-type]
        part.offsets.append(o)
        part.items.append(b"x")
    part.replay = []
    return part


def test_batches_are_cut_at_journaled_boundaries() -> None:
    part = _partition([10, 11, 12, 14, 15, 16])
    part.replay = [(10, 14)]
    chunk = part.take(limit=2)  # a journaled range ignores the size limit
    assert chunk is not None and (chunk.first, chunk.last, chunk.replayed) == (10, 14, True)
    assert chunk.offsets == [10, 11, 12, 14]
    chunk = part.take(limit=100)
    assert chunk is not None and (chunk.first, chunk.last, chunk.replayed) == (15, 16, False)
    assert part.take(100) is None


def test_an_unfinished_journaled_range_waits_for_its_end() -> None:
    part = _partition([20, 21])
    part.replay = [(20, 25)]
    assert part.take(100) is None  # offsets 22..25 may still come
    part.eof = 23
    assert part.take(100) is None
    part.eof = 26  # the partition ends after the range: offsets 22..25 are gone
    chunk = part.take(100)
    assert chunk is not None and (chunk.first, chunk.last, chunk.offsets) == (20, 25, [20, 21])


def test_offsets_below_a_journaled_range_form_a_free_batch_that_stops_short() -> None:
    part = _partition([5, 6, 7, 8])
    part.replay = [(7, 9)]
    chunk = part.take(100)
    assert chunk is not None and (chunk.first, chunk.last, chunk.replayed) == (5, 6, False)
    part.offsets.append(10)
    part.messages.append(None)  # type: ignore[arg-type]
    part.items.append(b"x")
    chunk = part.take(100)
    assert chunk is not None and (chunk.first, chunk.last, chunk.offsets) == (7, 9, [7, 8])


def test_overlapping_journal_entries_keep_the_latest() -> None:
    assert non_overlapping([(0, 9, 1), (10, 19, 2), (0, 14, 3)]) == [(0, 14)]
    assert non_overlapping([(0, 9, 1), (10, 19, 2)]) == [(0, 9), (10, 19)]


def test_options_from_environment() -> None:
    options = SinkOptions.from_settings(
        None, env={"LASTMILE_SINK_BATCH_SECONDS": "0.5", "LASTMILE_SINK_BUFFER_ROWS": "9"}
    )
    assert (options.batch_seconds, options.buffer_rows, options.batch_rows) == (0.5, 9, 50_000)
    with pytest.raises(ValueError, match="batch_rows"):
        SinkOptions.from_settings(None, env={"LASTMILE_SINK_BATCH_ROWS": "many"})


def test_bisection_dead_letters_exactly_the_refused_rows(
    fresh_settings: Callable[..., Settings],
) -> None:
    """What ClickHouse refuses after the codec accepted it is found by halving,
    under deterministic tokens (a replay repeats the same inserts)."""
    from clickhouse_connect.driver.exceptions import DatabaseError

    sink = Sink(fresh_settings(), migrate=False)
    codec = sink.codec
    bad = {3, 6}
    bodies = [codec.encode("Outcome", outcome(i))[0] for i in range(8)]

    class FakeMessage:
        def __init__(self, i: int) -> None:
            self.i = i

        def key(self) -> bytes:
            return b"k"

        def value(self) -> bytes:
            return bodies[self.i]

        def headers(self) -> list:
            return []

        def topic(self) -> str:
            return "outs"

        def partition(self) -> int:
            return 0

        def offset(self) -> int:
            return 100 + self.i

        def timestamp(self) -> tuple[int, int]:
            return (0, 0)

    chunk = Chunk(
        RouteReader(codec, ROUTES[1], "outs"),
        0,
        100,
        107,
        [FakeMessage(i) for i in range(8)],
        list(range(100, 108)),
        list(bodies),
        replayed=False,
    )
    written: list[tuple[str, list[int]]] = []

    def fake_insert(c: Chunk, indexes: list[int] | None, token: str) -> None:
        rows = list(range(8)) if indexes is None else indexes
        rows = [i for i in rows if isinstance(c.items[i], bytes)]
        if bad & set(rows):
            raise DatabaseError("Code: 395. value refused", code=395)
        written.append((token, rows))

    sink._insert = fake_insert  # type: ignore[method-assign]
    sink._produce_dead = lambda chunks: None  # type: ignore[method-assign]
    sink._write_chunk(chunk)
    assert chunk.done and chunk.rows == 6
    assert sorted(i for _t, rows in written for i in rows) == [0, 1, 2, 4, 5, 7]
    assert [type(chunk.items[i]).__name__ for i in sorted(bad)] == ["DeadOut", "DeadOut"]
    assert len(chunk.dead_pending) == 2
    tokens = [t for t, _ in written]
    assert all(t.startswith("outs:0:100-107/") for t in tokens)
    # The same chunk again takes the same path with the same tokens.
    again = Chunk(
        chunk.reader,
        0,
        100,
        107,
        chunk.messages,
        list(range(100, 108)),
        list(bodies),
        replayed=True,
    )
    written.clear()
    sink._write_chunk(again)
    assert [t for t, _ in written] == tokens


# ------------------------------------------------------------ in-process, stack


def run_sink(settings: Settings, **options: Any) -> Sink:
    sink = Sink(settings, SinkOptions.from_settings(None, env={}, **options))
    sink.start()
    assert sink.wait_assigned(60), "the sink got no partitions"
    return sink


def test_everything_lands_exactly_once_and_joins(stack: Settings) -> None:
    """N predictions and outcomes in; count() == uniqExact(request_id) == N; the join
    matches; bad input is dead-lettered and lands in dead_letters; every topic has
    its table."""
    settings = stack
    codec = Codec.from_settings(settings)
    traffic = Traffic(settings, codec)
    started = time.monotonic()
    traffic.produce(0, N)
    produced_s = time.monotonic() - started

    # Input the sink must not store as is.
    o_topic = settings.topic_outcomes
    # Recent: rows older than the retention (30 days) are dropped on insert.
    when = datetime.datetime.fromtimestamp(NOW / 1000, datetime.UTC).isoformat()
    traffic.raw(
        o_topic,
        json.dumps(
            {"request_id": "json-1", "model": "fraud", "label": "yes", "event_time": when}
        ).encode(),
        b"json-1",
    )
    traffic.raw(o_topic, b"\x00garbage", b"garbage-1")  # neither Avro nor JSON
    # Bytes that claim to be a current Prediction but are cut short.
    good, headers = codec.encode("Prediction", prediction(10**8))
    traffic.raw(settings.topic_predictions, good[:-4], b"cut-1", headers)
    # An outcome written by another Avro tool, NaN included: the codec refuses it.
    nan = io.BytesIO()
    fastavro.schemaless_writer(
        nan, codec.schema("Outcome").parsed, {**outcome(10**8), "label": None, "value": math.nan}
    )
    traffic.raw(o_topic, nan.getvalue(), b"nan-1", codec.headers_for("Outcome"))

    value, headers = codec.encode(
        "MonitorMetric",
        {
            "model": "fraud",
            "version": None,
            "segment": None,
            "metric": "psi",
            "feature": "age",
            "value": 0.3,
            "n": 500,
            "window_start": NOW - 60_000,
            "window_end": NOW,
            "ts": NOW,
        },
    )
    traffic.raw(settings.topic_metrics, value, b"fraud", headers)
    value, headers = codec.encode("Alert", drift_alert("fraud", NOW))
    traffic.raw(settings.topic_alerts, value, b"fraud", headers)
    version = {
        "flavor": "river",
        "sha256": "ab",
        "path": "fraud/1",
        "created_at": NOW,
        "parent": None,
        "retired": False,
        "meta_json": "{}",
    }
    state = {
        "versions": [{**version, "version": 1}, {**version, "version": 2, "parent": 1}],
        "aliases": {"champion": 2, "challenger": 1},
        "split": {"champion": 1.0},
        "shadow": None,
        "alias_history": [],
    }
    paused = {**state, "pause": {"score": 0.0, "label": "0", "version": None, "since": NOW}}
    for kind, actor, st in (("registered", "ci", state), ("paused", "alice", paused)):
        value, headers = codec.encode(
            "ModelEvent",
            {
                "model": "fraud",
                "kind": kind,
                "version": 2,
                "actor": actor,
                "ts": NOW,
                "state": st,
            },
        )
        traffic.raw(settings.topic_model_events, value, b"fraud", headers)
    traffic.raw(settings.topic_model_events, None, b"deleted-model")  # a tombstone

    sink = run_sink(settings)
    started = time.monotonic()
    try:
        wait_for(
            lambda: (
                (try_count(settings, "SELECT count() FROM predictions") or [0])[0] >= N
                and (try_count(settings, "SELECT count() FROM outcomes") or [0])[0] >= N + 1
            ),
            120,
            "every row",
        )
        written_s = time.monotonic() - started
        # Three dead letters go round: to the DLQ topic, back through the sink.
        wait_for(
            lambda: (try_count(settings, "SELECT count() FROM dead_letters") or [0])[0] >= 3,
            60,
            "the dead letters",
        )
        wait_for(lambda: sink.stats.as_dict()["lag"] == 0, 30, "lag 0")
        stats = sink.stats.as_dict()
    finally:
        sink.stop()
    assert not sink.failed
    print(
        f"\nN={N}: produced in {produced_s:.1f} s, written in {written_s:.1f} s "
        f"after the sink started (group join included)"
    )

    positions = "SELECT uniqExact(kafka_partition, kafka_offset) FROM predictions"
    assert count(settings, positions) == (N,)
    assert_each_stored_once_and_joined(settings, outcomes=N + 1)
    # Features, by type.
    num, cat, nulls = count(
        settings,
        """
        SELECT features_num, features_cat, features_null FROM predictions
        WHERE request_id = 'req-000000007'""",
    )
    assert num == {"amount": 3.5, "age": 27.0, "vip": 1.0} and cat == {"plan": "gold"}
    assert nulls == ["missing"]

    dead = count(
        settings,
        """
        SELECT groupArray((source_topic, stage, error_type)) FROM (
            SELECT * FROM dead_letters FINAL ORDER BY source_topic, stage)""",
    )[0]
    assert sorted((t.rsplit(".", 1)[0], s) for t, s, _e in dead) == [
        ("scoring.outcomes", "decode"),
        ("scoring.outcomes", "validate"),
        ("scoring.predictions", "decode"),
    ]
    assert stats["dead_letters"] == 3

    assert count(settings, "SELECT metric, feature, version, segment FROM metrics") == (
        "psi",
        "age",
        0,
        "",
    )
    assert count(settings, "SELECT alert_id, state FROM alerts") == ("a1", "firing")
    versions = count(
        settings,
        """
        SELECT groupArray((version, aliases, parent, event_kind, actor)) FROM (
            SELECT * FROM model_versions_current ORDER BY version)""",
    )[0]
    assert versions == [
        (1, ["challenger"], None, "paused", "alice"),
        (2, ["champion"], 1, "paused", "alice"),
    ]
    assert stats["rows_written"]["predictions"] == N and stats["lag"] == 0
    # The sink says how it is doing where the dashboard can read it.
    lag, written = count(settings, "SELECT lag, rows_written FROM sink_status_current")
    assert lag >= 0 and written.get("predictions", 0) > 0


def crash_after_writing(settings: Settings, rows: int, batch_rows: int) -> None:
    """A sink that stores ``rows`` predictions in batches of ``batch_rows`` but commits
    no offset (a crash between insert and commit, every time), stopped once they are in."""
    crashed = Sink(settings, SinkOptions.from_settings(None, env={}, batch_rows=batch_rows))
    crashed._commit = lambda consumer: setattr(crashed, "_to_commit", [])  # type: ignore
    crashed.start()
    assert crashed.wait_assigned(60)
    wait_for(lambda: crashed.stats.rows_written.get("predictions", 0) >= rows, 60, "writes")
    crashed.stop()


def test_a_batch_replayed_after_a_crash_is_not_stored_twice(stack: Settings) -> None:
    """The idempotence mechanism by itself: a sink that writes but never commits
    (a crash between insert and commit, every time), then a second sink that
    consumes the same messages again, plus new ones, from the last commit."""
    settings = stack
    traffic = Traffic(settings, Codec.from_settings(settings))
    first = 20_000
    traffic.produce(0, first)

    crash_after_writing(settings, first, batch_rows=3_000)
    assert count(settings, "SELECT count() FROM predictions") == (first,)
    journaled = count(settings, "SELECT count() FROM sink_batches")[0]
    assert journaled >= 6  # batches of at most 3,000 per partition

    traffic.produce(first, 5_000)  # the next owner sees more than each old batch held
    total = first + 5_000
    sink = run_sink(settings)  # default batches: 50,000 rows, which would merge old ones
    try:
        wait_for(
            lambda: (
                sink.stats.rows_written.get("predictions", 0) >= total
                and sink.stats.as_dict()["lag"] == 0
            ),
            60,
            "the replay",
        )
    finally:
        sink.stop()
    assert_each_stored_once(settings, total, total)
    assert count(settings, "SELECT sum(n) FROM predictions_1m") == (total,)


def test_an_idle_sink_pauses_and_stores_what_comes_after_once(stack: Settings) -> None:
    """The idle pause (streams/kafka/idle.py): between rounds of traffic the sink stops
    fetching; each round is still stored, once, soon after it was produced."""
    settings = stack
    traffic = Traffic(settings, Codec.from_settings(settings))
    sink = Sink(settings, SinkOptions.from_settings(None, env={}, batch_seconds=0.1))
    assert sink._idle is not None  # on by default on the embedded broker
    sink._idle.after_s = 0.5
    sink.start()
    try:
        assert sink.wait_assigned(60)
        total = 0
        for round_ in range(3):
            wait_for(lambda: sink.stats.as_dict()["idle_paused"], 30, f"round {round_}: a pause")
            traffic.produce(total, 50)
            total += 50
            sent = time.monotonic()
            wait_for(
                lambda n=total: sink.stats.rows_written.get("predictions", 0) >= n,
                30,
                f"round {round_}: {total} rows",
                every=0.02,
            )
            # One ask interval (0.25 s), the batch's 0.1 s and the insert; slack for a busy host.
            assert time.monotonic() - sent < 3.0
        assert sink._idle.resumes >= 3
    finally:
        sink.stop()
    assert_each_stored_once(settings, total, total)


def test_without_the_journal_a_replay_would_duplicate(stack: Settings) -> None:
    """The control experiment: the same replay with the journal ignored stores
    rows twice, so the test above proves something."""
    settings = stack
    traffic = Traffic(settings, Codec.from_settings(settings))
    traffic.produce(0, 6_000)
    crash_after_writing(settings, 6_000, batch_rows=1_000)
    traffic.produce(6_000, 1_000)

    forgetful = Sink(settings, SinkOptions.from_settings(None, env={}))
    original = forgetful._lookup_journals

    def forget() -> None:
        original()
        for part in forgetful._parts.values():
            if part.replay:
                part.replay = []

    forgetful._lookup_journals = forget  # type: ignore[method-assign]
    forgetful.start()
    assert forgetful.wait_assigned(60)
    try:
        wait_for(
            lambda: (
                forgetful.stats.as_dict()["lag"] == 0
                and forgetful.stats.rows_written.get("predictions", 0) >= 7_000
            ),
            60,
            "writes",
        )
    finally:
        forgetful.stop()
    stored, unique = count(settings, "SELECT count(), uniqExact(request_id) FROM predictions")
    assert unique == 7_000 and stored > 7_000


# ---------------------------------------------------------------- subprocesses


def sink_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LASTMILE_")}
    env.update(
        {
            "LASTMILE_KAFKA_PORT": str(settings.kafka_port),
            "LASTMILE_CLICKHOUSE_PORT": str(settings.clickhouse_port),
            "LASTMILE_CLICKHOUSE_DATABASE": str(settings.clickhouse_database),
            "LASTMILE_DATA_DIR": str(settings.data_dir),
            "LASTMILE_LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    for role, topic in settings.topics.items():
        env[f"LASTMILE_TOPIC_{role.upper()}"] = topic
    return env


class SinkProcess:
    """``python -m streams.roles.sink`` with its stats in a file."""

    def __init__(self, settings: Settings, workdir: Path, *args: str) -> None:
        self.settings = settings
        self.stats_path = workdir / f"stats-{uuid.uuid4().hex[:6]}.json"
        self.log_path = workdir / "sink.log"
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams.roles.sink",
                    "--stats-file",
                    str(self.stats_path),
                    *self.args,
                ],
                cwd=ROOT,
                env=sink_env(self.settings),
                stdout=log,
                stderr=log,
            )

    def stats(self) -> dict[str, Any]:
        try:
            return json.loads(self.stats_path.read_text())
        except (OSError, ValueError):
            return {}

    def rss_kb(self) -> int:
        assert self.process is not None
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-30:])
        return ""


@contextlib.contextmanager
def background(target: Callable[[], None]) -> Iterator[threading.Thread]:
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target()
        except BaseException as err:  # surfaced by the test below
            errors.append(err)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    yield thread
    thread.join(120)
    if errors:
        raise errors[0]


def test_sigkill_three_times_still_ends_at_exactly_n(stack: Settings, tmp_path: Path) -> None:
    settings = stack
    db.ensure_schema(settings)
    traffic = Traffic(settings, Codec.from_settings(settings))
    rng = random.Random()
    kills = []
    # Small batches: many journaled, uncommitted ranges to be caught by a kill.
    args = ("--batch-rows", "4000", "--batch-seconds", "0.3")
    # A backlog, so batches are in flight most of the time, and more traffic while the
    # sink dies and restarts.
    head = N // 4
    traffic.produce(0, head)
    with background(lambda: traffic.produce(head, N - head, rate=(N - head) / 40)):
        for _ in range(3):
            sink = SinkProcess(settings, tmp_path, *args)
            sink.start()
            wait_for(
                lambda s=sink: sum(s.stats().get("rows_written", {}).values()) > 0,  # type: ignore[misc]
                90,
                "the sink to write",
            )
            # A random moment while a batch is on its way: the case that matters.
            time.sleep(rng.uniform(0.0, 1.0))
            wait_for(
                lambda s=sink: s.stats().get("in_flight_rows", 0) > 0,  # type: ignore[misc]
                30,
                "a batch in flight",
                every=0.01,
            )
            sink.kill()
            kills.append(count(settings, "SELECT count() FROM predictions")[0])
    sink = SinkProcess(settings, tmp_path, *args)
    sink.start()
    try:
        wait_for(
            lambda: (
                count(settings, "SELECT count() FROM predictions")[0] >= N
                and count(settings, "SELECT count() FROM outcomes")[0] >= N
                and sink.stats().get("lag") == 0
            ),
            120,
            "N rows after the restarts",
            detail=lambda: (
                count(settings, "SELECT count() FROM predictions"),
                count(settings, "SELECT count() FROM outcomes"),
                sink.stats(),
                sink.log_tail(),
            ),
        )
        time.sleep(1.0)  # anything still arriving would show now
    finally:
        code = sink.stop()
    print(f"\nkilled with SIGKILL at {kills} predictions stored; N={N}")
    assert code == 0, sink.log_tail()
    assert_each_stored_once_and_joined(settings, outcomes=N)
    # The kills did catch batches between insert and commit: some were re-formed.
    replays = sink.log_path.read_text(errors="replace").count("re-forming journaled range")
    print(f"journaled ranges re-formed after the kills: {replays} log line(s)")


def test_clickhouse_down_for_30_s_loses_nothing_and_keeps_memory_bounded(
    fresh_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    from streams.local.processes import free_port
    from streams.storage.store import EmbeddedStore

    store = EmbeddedStore(tmp_path / "ch", free_port(), log_path=tmp_path / "store.log")
    store.start()
    settings = fresh_settings(clickhouse_port=store.port, clickhouse_database="outage")
    ensure_topics(settings)
    db.ensure_schema(settings)
    traffic = Traffic(settings, Codec.from_settings(settings))
    total = 60_000  # predictions, and as many outcomes, over ~50 s
    buffer_rows = 10_000
    sink = SinkProcess(
        settings, tmp_path, "--buffer-rows", str(buffer_rows), "--batch-rows", "5000"
    )
    samples: list[dict[str, Any]] = []
    try:
        sink.start()
        with background(lambda: traffic.produce(0, total, rate=total / 50)):
            wait_for(
                lambda: sum(sink.stats().get("rows_written", {}).values()) > 0, 60, "the first rows"
            )
            rss_before = sink.rss_kb()
            store.stop()
            down_at = time.monotonic()
            while time.monotonic() - down_at < 30:
                time.sleep(0.5)
                samples.append({**sink.stats(), "rss_now": sink.rss_kb()})
            store.start()
        wait_for(
            lambda: (
                (try_count(settings, "SELECT count() FROM predictions") or [0])[0] >= total
                and sink.stats().get("lag") == 0
            ),
            120,
            "catching up",
            detail=lambda: (
                try_count(settings, "SELECT count() FROM predictions"),
                try_count(settings, "SELECT count() FROM outcomes"),
                sink.stats(),
                sink.log_tail(),
            ),
        )
        after = sink.stats()
        code = sink.stop()
        assert code == 0, sink.log_tail()
        assert_each_stored_once(settings, total, total)
        assert count(settings, "SELECT sum(n) FROM predictions_1m") == (total,)
    finally:
        sink.stop()
        store.stop()
    during = [s for s in samples if s]
    peak_buffer = max(s.get("buffered_rows", 0) for s in during)
    peak_rss = max(s["rss_now"] for s in during)
    errors = [s.get("last_error") for s in during if s.get("last_error")]
    print(
        f"\nRSS before the outage {rss_before / 1024:.0f} MB, peak during it "
        f"{peak_rss / 1024:.0f} MB; peak buffer {peak_buffer} messages "
        f"(limit {buffer_rows}); last error: {errors[-1] if errors else None}"
    )
    # It noticed, said so, stopped fetching, and caught up by itself.
    assert errors, "the outage did not show as last_error"
    assert any(s.get("paused") for s in during), "the sink never paused its partitions"
    assert any(s.get("clickhouse_ok") is False for s in during)
    assert after["clickhouse_ok"] is True and after["paused"] is False
    # Bounded: the buffer stops at its limit (plus one consume call), memory with it.
    assert peak_buffer <= buffer_rows + 10_000
    assert peak_rss < rss_before + 150 * 1024, (rss_before, peak_rss)
