"""The models of the dashboard's synthetic run (bench/dashboard.py): fraud and churn,
registered into a registry, and the ``model_versions`` rows the sink would have made."""

from __future__ import annotations

import datetime as dt
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    from bench.dashboard_fill import Run

FRAUD_FEATURES = ("age", "salary", "loan", "plan")
CHURN_FEATURES = ("x0", "x1", "x2")


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
    for parent in (None, 1, 2, 3):  # v1, then the learner's snapshots v2 -> v3 -> v4
        cp.register_and_publish(
            "churn",
            churn,
            "river",
            reference_rows=churn_rows,
            parent=parent,
            metrics={"accuracy": 0.8 + (parent or 0) / 100},
            registered_by="bob" if parent is None else "learner@worker-1",
        )
    cp.promote("churn", 1)
    cp.shadow("churn", 4)


def model_version_rows(registry: Path, run: Run) -> pd.DataFrame:
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
