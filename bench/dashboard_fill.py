"""The dashboard's synthetic run (bench/dashboard.py, and the data the dashboard tests
render against): two models over a couple of hours, feature drift in one feature of one
model, outcomes, monitor metrics, alerts, dead letters, model versions with learner
snapshots, written into ClickHouse by :func:`fill`."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path
from typing import Any

import pandas as pd

from bench.dashboard_models import model_version_rows, register_models
from bench.dashboard_monitor_rows import alert_rows, metric_rows

CHUNK_ROWS = 2_000_000


@dataclasses.dataclass(frozen=True)
class Run:
    """What :func:`fill` wrote: the time span and where the drift starts."""

    start: dt.datetime
    end: dt.datetime
    drift_at: dt.datetime
    rows: int


# Per row: u(k) is a deterministic uniform in [0, 1) of (row number, k).
_PREDICTIONS = """
INSERT INTO predictions (request_id, model, version, variant, score, label, features_num,
    features_cat, features_null, event_time, ts, latency_ms, kafka_partition, kafka_offset)
SELECT request_id, model, version, variant, score, if(score >= 0.5, '1', '0') AS label,
       features_num, features_cat, [] AS features_null,
       ts - toIntervalMillisecond(toUInt32(latency_ms)) AS event_time, ts, latency_ms,
       toUInt16(number % 3) AS kafka_partition, number AS kafka_offset
FROM (
    SELECT number,
           {start:DateTime64(3, 'UTC')} + toIntervalMillisecond(
               intDiv(number * {span_ms:UInt64}, {rows:UInt64})) AS ts,
           (sipHash64(number, 1) % 1000000) / 1e6 AS u1,
           (sipHash64(number, 2) % 1000000) / 1e6 AS u2,
           (sipHash64(number, 3) % 1000000) / 1e6 AS u3,
           (sipHash64(number, 4) % 1000000) / 1e6 AS u4,
           (sipHash64(number, 5) % 1000000) / 1e6 AS u5,
           (sipHash64(number, 6) % 1000000) / 1e6 AS u6,
           (sipHash64(number, 7) % 1000000) / 1e6 AS u7,
           u1 < 0.7 AS is_fraud,
           if(is_fraud, 'fraud', 'churn') AS model,
           concat(model, '-', toString(number)) AS request_id,
           toUInt32(if(is_fraud AND u2 < 0.1, 2, 1)) AS version,
           if(version = 2, 'challenger', 'champion') AS variant,
           20 + 60 * u3 + if(ts >= {drift_at:DateTime64(3, 'UTC')}, 15, 0) AS age,
           if(is_fraud,
              map('age', age, 'salary', 20000 + 130000 * u4, 'loan', 500000 * u5),
              map('x0', u3, 'x1', u4, 'x2', u5)) AS features_num,
           if(is_fraud, map('plan', ['free', 'silver', 'gold'][toUInt8(1 + floor(u6 * 3))]),
              map()) AS features_cat,
           if(is_fraud, 1 / (1 + exp(-(age - 50) / 8)), u3 * 0.6 + u4 * 0.4) AS score,
           toFloat32(2 + 30 * pow(u7, 3) + if(u6 > 0.995, 400 * u2, 0)) AS latency_ms
    FROM numbers({first:UInt64}, {count:UInt64})
)"""

# The learner's newest snapshot scores half of churn's requests again, in shadow.
_SHADOW = """
INSERT INTO predictions (request_id, model, version, variant, score, label, features_num,
    features_cat, features_null, event_time, ts, latency_ms, kafka_partition, kafka_offset)
SELECT request_id, model, 4, 'shadow', least(score * 1.05, 1.0), label, features_num,
       features_cat, features_null, event_time, ts + toIntervalMillisecond(1),
       latency_ms + 1, kafka_partition, kafka_offset + {base:UInt64}
FROM predictions
WHERE model = 'churn' AND variant = 'champion' AND sipHash64(request_id) % 2 = 0"""

# Labels for 60% of the answered predictions, 5 minutes later (none yet for the
# last 5 minutes). fraud's champion is right 85% of the time before the drift, 70% after.
_OUTCOMES = """
INSERT INTO outcomes (request_id, model, label, value, ts, kafka_partition, kafka_offset)
SELECT request_id, model,
       if(u < if(version = 2, 0.88,
                 if(model = 'fraud' AND ts >= {drift_at:DateTime64(3, 'UTC')}, 0.70, 0.85)),
          label, if(label = '1', '0', '1')) AS label,
       NULL, ts + INTERVAL 5 MINUTE, kafka_partition, kafka_offset
FROM (SELECT *, (sipHash64(request_id, 9) % 1000) / 1000 AS u FROM predictions
      WHERE variant != 'shadow' AND sipHash64(request_id, 8) % 10 < 6
        AND ts + INTERVAL 5 MINUTE < {end:DateTime64(3, 'UTC')})"""

_DEAD_LETTERS = """
INSERT INTO dead_letters (source_topic, source_partition, source_offset, source_timestamp, stage,
    error, error_type, ts, worker, model, original_key, original_value, original_headers,
    kafka_partition, kafka_offset)
SELECT if(k = 4, 'scoring.outcomes', 'scoring.requests') AS source_topic,
       toUInt32(number % 3), number, ts, stage,
       ['unreadable: not JSON (offset ' || toString(number) || ')',
        'missing field ''features''',
        'unknown model ''nope'' (known: churn, fraud); register it with lastmile models register',
        'feature ''age'' is missing',
        'NaN outcome value'][k + 1] AS error,
       ['undecodable', 'schema_violation', 'unknown_model', 'feature_missing',
        'schema_violation'][k + 1] AS error_type,
       ts, 'worker-1',
       [NULL, NULL, 'nope', 'fraud', 'churn'][k + 1] AS model,
       concat('e', toString(number)),
       ['{"request_id": "r' || toString(number), '{"model": "fraud"}', '{"model": "nope"}',
        '{"model": "fraud", "features": {}}', '{"value": NaN}'][k + 1], [],
       toUInt16(0), number
FROM (
    SELECT number, toUInt8(sipHash64(number, 11) % 5) AS k,
           ['decode', 'validate', 'route', 'score', 'validate'][k + 1] AS stage,
           -- A burst of undecodable input around the drift point, for the story.
           if(number % 4 = 0,
              {drift_at:DateTime64(3, 'UTC')} + toIntervalSecond(number % 600),
              {start:DateTime64(3, 'UTC')} + toIntervalMillisecond(
                  intDiv(number * {span_ms:UInt64}, {count:UInt64}))) AS ts
    FROM numbers({count:UInt64})
)"""


def fill(
    client: Any,
    registry: Path,
    rows: int = 20_000,
    hours: float = 2.0,
    end: dt.datetime | None = None,
    progress: Any = None,
) -> Run:
    """A synthetic run ending at ``end`` (default: the current minute), written into the
    client's (migrated) database; models registered into ``registry``."""
    say = progress or (lambda _msg: None)
    end = end or dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    start = end - dt.timedelta(hours=hours)
    drift_at = start + (end - start) * 0.6
    run = Run(start, end, drift_at.replace(second=0, microsecond=0), rows)
    span_ms = int((end - start).total_seconds() * 1000)

    say("registering models")
    register_models(registry)
    client.insert_df("model_versions", model_version_rows(registry, run))
    say(f"inserting {rows:,} predictions")
    for first in range(0, rows, CHUNK_ROWS):
        count = min(CHUNK_ROWS, rows - first)
        client.command(
            _PREDICTIONS,
            parameters={
                "start": start,
                "span_ms": span_ms,
                "rows": rows,
                "drift_at": run.drift_at,
                "first": first,
                "count": count,
            },
        )
    client.command(_SHADOW, parameters={"base": rows})
    say("inserting outcomes")
    client.command(_OUTCOMES, parameters={"drift_at": run.drift_at, "end": end})
    say("inserting metrics, alerts, dead letters, sink status")
    client.insert_df("metrics", metric_rows(run))
    client.insert_df("alerts", alert_rows(run))
    client.command(
        _DEAD_LETTERS,
        parameters={
            "start": start,
            "span_ms": span_ms,
            "drift_at": run.drift_at,
            "count": max(rows // 200, 20),
        },
    )
    client.insert_df(
        "sink_status",
        pd.DataFrame(
            [
                {
                    "group_id": "lastmile-sink",
                    "worker": "worker-1:4242",
                    "ts": dt.datetime.now(dt.UTC),
                    "lag": 42,
                    "buffered_rows": 0,
                    "paused": False,
                    "rows_written": {"predictions": rows},
                    "dead_letters": 0,
                    "errors": 0,
                    "last_error": "",
                    "last_error_at": None,
                }
            ]
        ),
    )
    return run
