"""Dashboard benchmark: every page's query and render time on a big synthetic run.

    python bench/dashboard.py                 # 10M predictions over 24 h
    python bench/dashboard.py --rows 1000000 --hours 6

Starts its own embedded ClickHouse in a temporary directory, registers the models
in a temporary registry, fills the tables with ``INSERT ... SELECT FROM numbers()``
(the rollups fill themselves: their materialized views fire on every insert into
``predictions``), then renders each page with Streamlit's AppTest, twice: cold
(empty cache, every query runs) and warm (what a viewer gets within one refresh
interval). The queries' own time is what ``dashboard.queries`` logs per execution.

:func:`fill` is also the synthetic run the dashboard tests render against: two
models over a couple of hours, feature drift in one feature of one model, outcomes,
monitor metrics, alerts, dead letters, model versions with learner snapshots.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from dashboard.navigation import PAGE_FILES  # noqa: E402 - the repository is on the path now

APP = ROOT / "dashboard" / "app.py"
PAGES = PAGE_FILES
FRAUD_FEATURES = ("age", "salary", "loan", "plan")
CHURN_FEATURES = ("x0", "x1", "x2")
DRIFTED = ("fraud", "age")  # after the drift point, age is shifted by +15 years
WINDOW_S = 60
CHUNK_ROWS = 2_000_000


@dataclasses.dataclass(frozen=True)
class Run:
    """What :func:`fill` wrote: the time span and where the drift starts."""

    start: dt.datetime
    end: dt.datetime
    drift_at: dt.datetime
    rows: int


# ------------------------------------------------------------------------- registry


def _fraud_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    plans = ("free", "silver", "gold")
    return [
        {
            "age": 20 + 60 * rng.random(),
            "salary": 20_000 + 130_000 * rng.random(),
            "loan": 500_000 * rng.random(),
            "plan": plans[min(int(rng.random() * 3), 2)],
        }
        for _ in range(n)
    ]


def _churn_rows(n: int, rng: random.Random) -> list[dict[str, Any]]:
    return [{f: rng.random() for f in CHURN_FEATURES} for _ in range(n)]


def _trained(rows: list[dict[str, Any]], label: Any) -> Any:
    from river import compose, linear_model, preprocessing

    model = compose.Pipeline(
        compose.Select(*[k for k, v in rows[0].items() if isinstance(v, float)]),
        preprocessing.StandardScaler(),
        linear_model.LogisticRegression(),
    )
    for row in rows:
        model.learn_one(row, label(row))
    return model


def register_models(registry: Path, seed: int = 7) -> None:
    """fraud v1 champion, v2 challenger (90/10); churn v1 champion and learner
    snapshots v2 -> v3 -> v4 (v4 in shadow)."""
    from streams.models import ControlPlane, Registry

    rng = random.Random(seed)
    cp = ControlPlane(None, registry=Registry(registry), publish=False, actor="bench")
    fraud_rows = _fraud_rows(2000, rng)
    fraud = _trained(fraud_rows[:600], lambda r: r["age"] > 50)
    for metrics in ({"accuracy": 0.86}, {"accuracy": 0.88}):
        cp.register_and_publish(
            "fraud",
            fraud,
            "river",
            reference_rows=fraud_rows,
            metrics=metrics,
            registered_by="alice",
        )
    cp.promote("fraud", 1)
    cp.promote("fraud", 2, alias="challenger")
    cp.split("fraud", {"champion": 90, "challenger": 10})
    churn_rows = _churn_rows(1500, rng)
    churn = _trained(churn_rows[:500], lambda r: r["x0"] * 0.6 + r["x1"] * 0.4 > 0.5)
    cp.register_and_publish(
        "churn",
        churn,
        "river",
        reference_rows=churn_rows,
        metrics={"accuracy": 0.8},
        registered_by="bob",
    )
    for parent in (1, 2, 3):
        cp.register_and_publish(
            "churn",
            churn,
            "river",
            reference_rows=churn_rows,
            parent=parent,
            metrics={"accuracy": 0.8 + parent / 100},
            registered_by="learner@worker-1",
        )
    cp.promote("churn", 1)
    cp.shadow("churn", 4)


def _model_version_rows(registry: Path, run: Run) -> pd.DataFrame:
    """model_versions as the sink would have them from models.events, with the learner's
    snapshots spread over the run (the registry stamps them all "now")."""
    import orjson

    from streams.models import EVENT_META_KEYS, ControlPlane, Registry

    reg = Registry(registry)
    cp = ControlPlane(None, registry=reg, publish=False)
    rows = []
    offset = 0
    span = run.end - run.start
    for name in reg.models():
        state = cp.state(name)
        for mv in reg.versions(name):
            created = run.start - dt.timedelta(days=1)
            if "learner" in mv.registered_by:
                created = run.start + span * (mv.version - 1) / 4
            offset += 1
            rows.append(
                {
                    "model": name,
                    "version": mv.version,
                    "flavor": mv.flavor,
                    "sha256": mv.sha256,
                    "path": f"{name}/{mv.version}/model.pkl",
                    "created_at": created,
                    "parent": mv.parent,
                    "retired": False,
                    "meta_json": orjson.dumps(
                        {k: mv.meta.get(k) for k in EVENT_META_KEYS}
                    ).decode(),
                    "aliases": sorted(a for a, v in state.aliases.items() if v == mv.version),
                    "is_shadow": state.shadow == mv.version,
                    "split": dict(state.split),
                    "event_kind": "registered",
                    "event_version": mv.version,
                    "actor": "bench",
                    "updated_at": run.end,
                    "kafka_partition": 0,
                    "kafka_offset": offset,
                }
            )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------ the tables

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


def _metric_rows(run: Run) -> pd.DataFrame:
    """What the monitor would have written: a window per minute per model version."""
    rng = np.random.default_rng(3)
    starts = pd.date_range(run.start, run.end - dt.timedelta(seconds=WINDOW_S), freq=f"{WINDOW_S}s")
    keys = [
        ("fraud", 1, FRAUD_FEATURES),
        ("fraud", 2, FRAUD_FEATURES),
        ("churn", 1, CHURN_FEATURES),
    ]
    out: dict[str, list] = {
        c: [] for c in ("model", "version", "metric", "feature", "value", "n", "window_start")
    }

    def add(model: str, version: int, metric: str, feature: str, values: Any, n: Any) -> None:
        k = len(starts)
        out["model"] += [model] * k
        out["version"] += [version] * k
        out["metric"] += [metric] * k
        out["feature"] += [feature] * k
        out["value"] += list(np.asarray(values, dtype=float))
        out["n"] += list(np.broadcast_to(np.asarray(n, dtype=np.int64), (k,)))
        out["window_start"] += list(starts)

    after = np.asarray(starts >= pd.Timestamp(run.drift_at), dtype=float)
    k = len(starts)
    for model, version, features in keys:
        n = np.full(k, 60 if version == 2 else 300)
        drifted_any = np.zeros(k)
        for feature in (*features, "__score__"):
            shifted = model == DRIFTED[0] and feature in (DRIFTED[1], "__score__")
            base = rng.uniform(0.01, 0.05, k)
            wass = base + (0.3 + rng.uniform(0, 0.1, k)) * after if shifted else base
            psi = wass * 1.5 + rng.uniform(0, 0.02, k)
            js = wass * 0.6
            pval = np.where(wass > 0.1, rng.uniform(0, 0.001, k), rng.uniform(0.1, 0.9, k))
            drift = (wass >= 0.1).astype(float)
            add(model, version, "wasserstein", feature, wass, n)
            add(model, version, "psi", feature, psi, n)
            add(model, version, "jensen_shannon", feature, js, n)
            add(model, version, "ks_p_value", feature, pval, n)
            add(model, version, "drift", feature, drift, n)
            if feature != "__score__":
                drifted_any += drift
                add(model, version, "missing_rate", feature, rng.uniform(0, 0.01, k), n)
        add(model, version, "drift_share", "", drifted_any / len(features), n)
        add(model, version, "count", "", n, n)
        add(model, version, "throughput", "", n / WINDOW_S, n)
        add(model, version, "latency_p50", "", rng.uniform(0.004, 0.006, k), n)
        add(model, version, "latency_p99", "", rng.uniform(0.03, 0.05, k), n)
        acc0 = 0.88 if version == 2 else (0.85 if model == "fraud" else 0.8)
        drop = 0.15 if (model == "fraud" and version == 1) else 0.0
        accuracy = acc0 - drop * after + rng.normal(0, 0.01, k)
        add(model, version, "accuracy", "", accuracy, n)
        add(model, version, "log_loss", "", 0.7 - accuracy * 0.5, n)
        add(model, version, "roc_auc", "", accuracy + 0.05, n)
        add(model, version, "label_delay_p50", "", np.full(k, 300.0), n)
    for model in ("fraud", "churn"):
        add(model, 0, "dead_letter_rate", "", rng.uniform(0, 0.004, k), 300)
    frame = pd.DataFrame(out)
    frame["window_start"] = pd.to_datetime(frame["window_start"], utc=True)
    frame["window_end"] = frame["window_start"] + pd.Timedelta(seconds=WINDOW_S)
    frame["ts"] = frame["window_end"]
    frame["segment"] = ""
    frame["kafka_partition"] = 0
    frame["kafka_offset"] = np.arange(len(frame), dtype=np.uint64)
    return frame


def _alert_rows(run: Run) -> pd.DataFrame:
    from monitors.events import AlertEvent

    def at(t: dt.datetime) -> float:
        return t.timestamp()

    d = run.drift_at
    events = [
        AlertEvent(
            "fraud",
            "1",
            "drift",
            "drift",
            "age",
            1.0,
            0.5,
            "warning",
            "firing",
            "feature_drift",
            at(d + dt.timedelta(minutes=2)),
        ),
        AlertEvent(
            "fraud",
            "1",
            "drift",
            "drift",
            "__score__",
            1.0,
            0.5,
            "warning",
            "firing",
            "score_drift",
            at(d + dt.timedelta(minutes=3)),
        ),
        AlertEvent(
            "fraud",
            "1",
            "performance",
            "accuracy",
            None,
            0.68,
            0.7,
            "critical",
            "firing",
            "accuracy_drop",
            at(d + dt.timedelta(minutes=12)),
        ),
        AlertEvent(
            "churn",
            "1",
            "latency",
            "latency_p99",
            None,
            1.3,
            1.0,
            "warning",
            "firing",
            "latency_p99",
            at(run.start + dt.timedelta(minutes=20)),
        ),
        AlertEvent(
            "churn",
            "1",
            "latency",
            "latency_p99",
            None,
            0.6,
            0.8,
            "warning",
            "resolved",
            "latency_p99",
            at(run.start + dt.timedelta(minutes=35)),
        ),
        AlertEvent(
            "fraud",
            "*",
            "quality",
            "dead_letter_rate",
            None,
            0.02,
            0.01,
            "warning",
            "firing",
            "dead_letters",
            at(d + dt.timedelta(minutes=1)),
        ),
        AlertEvent(
            "fraud",
            "*",
            "quality",
            "dead_letter_rate",
            None,
            0.002,
            0.005,
            "warning",
            "resolved",
            "dead_letters",
            at(d + dt.timedelta(minutes=9)),
        ),
    ]
    rows = []
    for i, a in enumerate(events):
        rows.append(
            {
                "alert_id": a.alert_id,
                "model": a.model,
                "version": int(a.version) if a.version.isdigit() else 0,
                "kind": a.kind,
                "metric": a.metric,
                "feature": a.feature or "",
                "state": a.state,
                "value": a.value,
                "threshold": a.threshold,
                "severity": a.severity,
                "rule": a.rule,
                "ts": dt.datetime.fromtimestamp(a.ts, dt.UTC),
                "message": a.message,
                "kafka_partition": 0,
                "kafka_offset": i,
            }
        )
    return pd.DataFrame(rows)


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
    client.insert_df("model_versions", _model_version_rows(registry, run))
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
    client.insert_df("metrics", _metric_rows(run))
    client.insert_df("alerts", _alert_rows(run))
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


# ---------------------------------------------------------------------------- bench


def _env(port: int, database: str, registry: Path) -> dict[str, str]:
    return {
        "LASTMILE_CLICKHOUSE_PORT": str(port),
        "LASTMILE_CLICKHOUSE_DATABASE": database,
        "LASTMILE_REGISTRY": str(registry),
    }


def _serve_like_the_command() -> None:
    """AppTest would run a switched-to page file on its own (the app has a pages/
    directory); ``lastmile dashboard`` tells Streamlit the app uses st.navigation, so
    every run goes through app.py. Do the same (see dashboard/cli.py)."""
    from streamlit.runtime.pages_manager import PagesManager

    original = PagesManager.__init__

    def init(self: PagesManager, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    PagesManager.__init__ = init  # type: ignore[method-assign]


# (label, page, whole run or the last hour, session state to set before the run)
CASES: list[tuple[str, str, bool, dict[str, Any]]] = [
    *[(page, page, True, {}) for page in PAGES],
    ("overview, 1 h", "overview", False, {}),
    ("drift, 1 h", "drift", False, {}),
    ("drift, 24 h hist", "drift", True, {"lm_drift_window": "whole time range"}),
    ("performance, 1 h", "performance", False, {}),
]


def _render(
    page: str, run: Run, whole: bool, state: dict[str, Any], timeout: float
) -> dict[str, Any]:
    """Render one page cold (empty cache) then warm; the query time is what
    dashboard.queries logged for the cold run's executions."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    from dashboard import queries

    at = AppTest.from_file(str(APP), default_timeout=timeout)
    if whole:
        at.query_params["from"] = run.start.strftime("%Y-%m-%dT%H:%M:%SZ")
        at.query_params["to"] = run.end.strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        at.session_state["lm_range"] = "Last hour"
    at.query_params["model"] = "fraud"
    at.session_state["lm_refresh"] = "off"
    at.run()
    for key, value in state.items():
        at.session_state[key] = value
    at.switch_page(PAGES[page])
    st.cache_data.clear()
    queries.QUERY_LOG.clear()
    started = time.perf_counter()
    at.run()
    cold = time.perf_counter() - started
    log = list(queries.QUERY_LOG)
    started = time.perf_counter()
    at.run()
    warm = time.perf_counter() - started
    errors = [str(e.value)[:200] for e in at.exception] + [str(e.value)[:200] for e in at.error]
    shown = {m.label: m.value for m in at.metric}
    return {
        "cold": cold,
        "warm": warm,
        "queries": len(log),
        "query_s": sum(seconds for _name, seconds, _rows in log),
        "slowest": max(log, key=lambda e: e[1]) if log else ("-", 0.0, 0),
        "errors": errors,
        "shown": shown,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="predictions to insert")
    parser.add_argument("--hours", type=float, default=24.0, help="time span of the run")
    parser.add_argument("--timeout", type=float, default=120.0, help="AppTest timeout per run")
    args = parser.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from streams.config import load_settings
    from streams.local.processes import free_port
    from streams.storage import db
    from streams.storage.store import EmbeddedStore

    with tempfile.TemporaryDirectory(prefix="lastmile-bench-dashboard-") as tmp:
        root = Path(tmp)
        store = EmbeddedStore(root / "clickhouse", free_port(), log_path=root / "store.log")
        with store:
            registry = root / "registry"
            os.environ.update(_env(store.port, "bench", registry))
            for name in (
                "LASTMILE_CLICKHOUSE_URL",
                "LASTMILE_CONFIG",
                "LASTMILE_DASHBOARD_PASSWORD",
            ):
                os.environ.pop(name, None)
            settings = load_settings(toml_path=None)
            db.ensure_schema(settings)
            client = db.connect(settings)
            started = time.perf_counter()
            run = fill(
                client,
                registry,
                rows=args.rows,
                hours=args.hours,
                progress=lambda m: print(f"  {m}", flush=True),
            )
            filled = time.perf_counter() - started
            (n,) = client.query("SELECT count() FROM predictions").result_rows[0]
            (m,) = client.query("SELECT count() FROM predictions_1m").result_rows[0]
            client.close()
            print(
                f"filled {n:,} predictions ({m:,} rollup rows) over {args.hours:g} h "
                f"in {filled:.1f} s ({n / filled:,.0f} rows/s)"
            )
            print(
                f"model fraud; range: the whole run ({args.hours:g} h), or the last hour "
                "(1 h); times in seconds"
            )
            print(
                f"{'page':<18}{'cold render':>12}{'queries':>9}{'query time':>12}"
                f"{'warm render':>13}  slowest query"
            )
            _serve_like_the_command()
            for label, page, whole, state in CASES:
                r = _render(page, run, whole, state, args.timeout)
                name, seconds, _rows = r["slowest"]
                flag = "" if r["cold"] < 2.0 else "  OVER 2 s"
                print(
                    f"{label:<18}{r['cold']:>12.2f}{r['queries']:>9}{r['query_s']:>12.2f}"
                    f"{r['warm']:>13.2f}  {name} {seconds:.2f}{flag}"
                )
                if label == "overview":
                    tiles = ("Predictions/s", "Latency p99", "Active alerts")
                    print(f"{'':<18}shown: " + ", ".join(f"{k} {r['shown'].get(k)}" for k in tiles))
                for error in r["errors"]:
                    print(f"{'':<18}error: {error}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
